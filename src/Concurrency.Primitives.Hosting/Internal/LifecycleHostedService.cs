using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>
/// Hosts one <see cref="ILifecycleService"/> through a <see cref="LifecycleGate"/>, mapping the host's calls and tokens
/// onto the gate's rules:
/// <list type="bullet">
/// <item>the host's start token, cancelled when the host stops during the start, stops the gate, which cancels the
/// start and reports the start's own error if it had one (not a <see cref="TaskCanceledException"/> that hides it);</item>
/// <item>the host's stop closes the gate (cancel the run, wait for it, stop step, release in reverse, each step bounded
/// by the service's <c>ShutdownTimeout</c>); the host's stop token means the host's budget is spent, so the call
/// returns then, naming the step the teardown still waits for, and never releases anything under the run;</item>
/// <item>a run that faults on its own is logged with its root cause and, by default, stops the host with a non-zero
/// exit code;</item>
/// <item>nothing is thrown to the host from its stop or from the container's dispose: both log instead.</item>
/// </list>
/// </summary>
/// <typeparam name="TService">The hosted service.</typeparam>
internal sealed class LifecycleHostedService<TService> : IHostedService, IAsyncDisposable, IDisposable
    where TService : class, ILifecycleService
{
    private readonly LifecycleGate _gate;
    private readonly LifecycleServiceOptions _options;
    private readonly IHostApplicationLifetime? _lifetime;
    private readonly ILogger _logger;
    private readonly string _name;
    private volatile Exception? _loggedRunFault;

    public LifecycleHostedService(
        TService service,
        string name,
        IOptionsMonitor<LifecycleServiceOptions> options,
        PrimitiveOptionsSetup setup,
        IHostApplicationLifetime? lifetime)
    {
        _options = options.Get(name);
        _name = _options.Name ?? name;
        _lifetime = lifetime;
        _logger = setup.LoggerFactory.CreateLogger(HostingLog.Category);
        _gate = new LifecycleGate(
            start: service.StartAsync,
            run: service.RunAsync,
            stop: service.StopAsync,
            options: setup.GateOptions(name, _options));
        _gate.StateChanged += OnStateChanged;
    }

    public LifecycleGate Gate => _gate;

    public string Name => _name;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // The host's token is "the host is stopping": it must cancel the start itself, not only this wait (the gate's
        // own token would leave the start running). A stop during the start cancels the start's token and waits for it.
        var start = _gate.StartAsync(CancellationToken.None);
        if (!start.IsCompleted && cancellationToken.CanBeCanceled)
        {
            using (cancellationToken.Register(static state => ((LifecycleHostedService<TService>)state!).StopDuringStart(), this))
            {
                await ObserveStartAsync(start).ConfigureAwait(false);
            }

            return;
        }

        await ObserveStartAsync(start).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            // No bound of its own: each step is bounded by the service's ShutdownTimeout, and the whole by the host's token.
            await _gate.CloseAsync(Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            HostingLog.StopOutlivedHost(_logger, _name, _gate.PendingStopStep ?? "start");
        }
        catch (Exception failure) when (ReferenceEquals(failure, _loggedRunFault))
        {
            // The run's own fault, logged when it happened; the teardown has now run.
        }
        catch (Exception failure)
        {
            HostingLog.StopFailed(_logger, _name, failure);
        }
    }

    public ValueTask DisposeAsync() => _gate.DisposeAsync();

    public void Dispose() => _gate.Dispose();

    private static string RootCause(Exception fault)
    {
        var root = fault;
        while (root is AggregateException { InnerExceptions.Count: 1 } || (root.InnerException is not null && root is System.Reflection.TargetInvocationException))
        {
            root = root.InnerException!;
        }

        var innermost = root.GetBaseException();
        return innermost == root ? $"{root.GetType().Name}: {root.Message}" : $"{root.GetType().Name}: {root.Message} (caused by {innermost.GetType().Name}: {innermost.Message})";
    }

    private async Task ObserveStartAsync(Task<bool> start)
    {
        try
        {
            await start.ConfigureAwait(false);
        }
        catch (Exception failure) when (failure is not OperationCanceledException)
        {
            HostingLog.StartFailed(_logger, _name, failure);
            throw;
        }
    }

    private void StopDuringStart()
    {
        // Observed by the start's caller: the start's task reports how the start ended.
        _ = _gate.StopAsync(CancellationToken.None).ContinueWith(
            static t => _ = t.Exception,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void OnStateChanged(object? sender, LifecycleStateChangedEventArgs change)
    {
        if (change.Current != LifecycleState.RunFaulted || change.Exception is not { } fault)
        {
            return;
        }

        _loggedRunFault = fault;
        if (_options.RunFaultBehavior == LifecycleServiceRunFaultBehavior.Ignore)
        {
            HostingLog.RunFaultIgnored(_logger, _name, RootCause(fault), fault);
            return;
        }

        if (Environment.ExitCode == 0)
        {
            Environment.ExitCode = _options.ExitCode;
        }

        HostingLog.RunFaultStopsHost(_logger, _name, RootCause(fault), Environment.ExitCode, fault);
        _lifetime?.StopApplication();
    }
}
