using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>
/// Closes the registered trackers, batchers and pumps when the host has stopped its hosted services (the web server
/// and every lifecycle service among them, so nothing submits any more), and before the container disposes the
/// singletons their work uses: trackers first (their work may still submit to a batcher or post to a pump), then
/// batchers, then pumps; within a kind, the latest created first. Each close is bounded by the primitive's own
/// <c>ShutdownTimeout</c> and the whole by the host's shutdown token. Nothing is thrown to the host: what a close
/// reports (stragglers by name and age, failures) is logged.
/// </summary>
internal sealed class PrimitivesShutdownService : IHostedLifecycleService
{
    private readonly CreatedPrimitives _registry;
    private readonly ILogger _logger;

    public PrimitivesShutdownService(CreatedPrimitives registry, PrimitiveOptionsSetup setup)
    {
        _registry = registry;
        _logger = setup.LoggerFactory.CreateLogger(HostingLog.Category);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        foreach (var (_, instance) in _registry.CreatedOfKind(PrimitiveKind.TaskTracker))
        {
            await CloseTrackerAsync((TaskTracker)instance, cancellationToken).ConfigureAwait(false);
        }

        foreach (var (name, instance) in _registry.CreatedOfKind(PrimitiveKind.Batcher))
        {
            await CloseAsync("Batcher", name, ((IClosable)instance).CloseAsync, cancellationToken).ConfigureAwait(false);
        }

        foreach (var (name, instance) in _registry.CreatedOfKind(PrimitiveKind.PeerEventPump))
        {
            await CloseAsync("PeerEventPump", name, ((IClosable)instance).CloseAsync, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task CloseTrackerAsync(TaskTracker tracker, CancellationToken cancellationToken)
    {
        try
        {
            await tracker.CloseAsync(cancellationToken).ConfigureAwait(false);
            HostingLog.Closed(_logger, "TaskTracker", tracker.Name);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            HostingLog.TrackerOutlivedHost(_logger, tracker.Name, "the host's shutdown timeout", Describe(tracker.Count, tracker.GetOutstanding()), null);
        }
        catch (TaskTrackerTimeoutException timeout)
        {
            HostingLog.TrackerOutlivedHost(_logger, tracker.Name, $"its ShutdownTimeout ({timeout.Timeout})", Describe(timeout.Outstanding.Count + timeout.UnnamedCount, timeout.Outstanding), timeout);
        }
        catch (Exception failure)
        {
            HostingLog.TrackerCloseFailed(_logger, tracker.Name, failure);
        }
    }

    private static string Describe(int count, IReadOnlyList<TrackedOperationInfo> outstanding) =>
        count.ToString(CultureInfo.InvariantCulture) + " registration(s)" + (outstanding.Count == 0
            ? string.Empty
            : ": " + string.Join(", ", outstanding.Select(o => $"'{o.Name}' (#{o.Id}, running {o.Age.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s)")));

    private async Task CloseAsync(string kind, string name, Func<CancellationToken, Task> close, CancellationToken cancellationToken)
    {
        try
        {
            await close(cancellationToken).ConfigureAwait(false);
            HostingLog.Closed(_logger, kind, name);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            HostingLog.CloseOutlivedHost(_logger, kind, name);
        }
        catch (Exception failure)
        {
            HostingLog.CloseFailed(_logger, kind, name, failure);
        }
    }
}

/// <summary>A batcher or pump of any type arguments, as the shutdown sees it.</summary>
internal interface IClosable
{
    Task CloseAsync(CancellationToken cancellationToken);
}

/// <summary>Wraps a registered batcher or pump for the shutdown, whatever its type arguments.</summary>
internal sealed class Closable : IClosable
{
    private readonly Func<CancellationToken, Task> _close;

    public Closable(Func<CancellationToken, Task> close) => _close = close;

    public Task CloseAsync(CancellationToken cancellationToken) => _close(cancellationToken);
}
