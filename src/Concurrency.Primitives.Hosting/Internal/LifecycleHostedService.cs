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
/// exit code; a run that ends with an <see cref="OperationCanceledException"/> once the host is stopping (a token linked
/// to <see cref="IHostApplicationLifetime.ApplicationStopping"/>, cancelled before this service's turn to stop) has
/// ended in order, as a <c>BackgroundService</c>'s would;</item>
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
    private readonly TaskCompletionSource<Exception?> _stopDuringStart = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Set when the host's token stopped the gate during its start (before that stop ends: the start's cancellation can
    // reach ObserveStartAsync while the stop is still tearing down).
    private volatile bool _stoppedDuringStart;
    private volatile Exception? _loggedRunFault;
    private Task? _closing;
    private volatile bool _hostGaveUp;
    private int _stopOutcomeLogged;

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
            run: lifetime is null ? service.RunAsync : token => RunAsync(service, lifetime, token),
            stop: service.StopAsync,
            options: setup.GateOptions(name, _options));
        _gate.StateChanged += OnStateChanged;
    }

    public LifecycleGate Gate => _gate;

    public string Name => _name;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            if (_lifetime?.ApplicationStopping.IsCancellationRequested == true)
            {
                // The host began to stop before this service's turn to start (an earlier service stopped it): nothing is
                // started, and the host's stop finds nothing to tear down.
                return;
            }

            cancellationToken.ThrowIfCancellationRequested();
        }

        // The host's token is "the host is stopping": it must cancel the start itself, not only this wait (the gate's
        // own token would leave the start running). A stop during the start cancels the start's token and waits for it,
        // each step bounded by the service's ShutdownTimeout.
        var start = _gate.StartAsync(CancellationToken.None);
        if (start.IsCompleted || !cancellationToken.CanBeCanceled)
        {
            await ObserveStartAsync(start).ConfigureAwait(false);
            return;
        }

        using (cancellationToken.Register(static state => ((LifecycleHostedService<TService>)state!).StopDuringStart(), this))
        {
            await Task.WhenAny(start, _stopDuringStart.Task).ConfigureAwait(false);
        }

        if (!start.IsCompleted && await _stopDuringStart.Task.ConfigureAwait(false) is LifecycleStopTimeoutException ignoredToken)
        {
            // The start ignores its token: the host's start would hang on it. Fail it, naming the step.
            HostingLog.StartFailed(_logger, _name, ignoredToken);
            throw ignoredToken;
        }

        await ObserveStartAsync(start).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // One close for the host's stop and the container's dispose: the dispose waits for it, and never begins a second
        // teardown (a gate whose stop failed would resume it, invoking the failed step again).
        var closing = Closing();
        try
        {
            // No bound of its own: each step is bounded by the service's ShutdownTimeout, and the whole by the host's token.
            await WaitAsync(closing, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !closing.IsCompleted)
        {
            _hostGaveUp = true;
            if (_options.AbandonRunOnTimeout)
            {
                HostingLog.StopOutlivedHostAbandoning(_logger, _name, PendingStep());
            }
            else
            {
                HostingLog.StopOutlivedHost(_logger, _name, PendingStep());
            }
        }
        catch (Exception failure)
        {
            LogStopOutcome(failure);
        }
    }

    public async ValueTask DisposeAsync()
    {
        var closing = Volatile.Read(ref _closing);
        if (closing is null)
        {
            // The host never stopped it (its start failed, or no host ran it): close it now, logging what it reports.
            await _gate.DisposeAsync().ConfigureAwait(false);
            return;
        }

        if (closing.IsCompleted && !_hostGaveUp)
        {
            return; // the host's stop saw (and logged) how it ended
        }

        // The host's budget ran out while the teardown went on: wait for it here (each step is bounded), or see how it
        // ended meanwhile, and say so, so that the log tells whether what the service owns was released after all.
        try
        {
            await closing.ConfigureAwait(false);
            if (_hostGaveUp)
            {
                HostingLog.StopFinishedAfterHost(_logger, _name);
            }
        }
        catch (Exception failure)
        {
            LogStopOutcome(failure);
        }
    }

    public void Dispose() => _ = DisposeAsync().AsTask();

    private Task Closing()
    {
        var closing = Volatile.Read(ref _closing);
        if (closing is not null)
        {
            return closing;
        }

        var mine = _gate.CloseAsync(Timeout.InfiniteTimeSpan, CancellationToken.None);
        return Interlocked.CompareExchange(ref _closing, mine, null) ?? mine;
    }

    private static Task WaitAsync(Task task, CancellationToken cancellationToken) =>
#if NET8_0_OR_GREATER
        task.WaitAsync(cancellationToken);
#else
        TimeProviderTaskExtensions.WaitAsync(task, Timeout.InfiniteTimeSpan, TimeProvider.System, cancellationToken);
#endif

    private void LogStopOutcome(Exception failure)
    {
        if (IsLoggedRunFault(failure))
        {
            return; // the run's own fault, logged when it happened; the teardown has now run
        }

        // One close serves the host's stops (a host may call StopAsync twice) and the container's dispose: its failure is
        // logged once.
        if (Interlocked.Exchange(ref _stopOutcomeLogged, 1) == 0)
        {
            HostingLog.StopFailed(_logger, _name, failure);
        }
    }

    /// <summary>
    /// Whether <paramref name="failure"/> is the run's fault, logged already: the gate's stop throws the very exception it
    /// reported when the run faulted (a run task cancelled without an exception of its own included).
    /// </summary>
    private bool IsLoggedRunFault(Exception failure) => _loggedRunFault is { } logged && ReferenceEquals(failure, logged);

    /// <summary>
    /// The service's run, as the gate sees it: an <see cref="OperationCanceledException"/> once the host is stopping is the
    /// run's end, not its fault. The host cancels <see cref="IHostApplicationLifetime.ApplicationStopping"/> before it
    /// stops its services one by one, last registered first; a run that watches that token (linked to its own) ends
    /// before this service's turn to stop, and would otherwise fault the service and set a failing exit code.
    /// </summary>
    private static async Task RunAsync(TService service, IHostApplicationLifetime lifetime, CancellationToken stoppingToken)
    {
        try
        {
            await service.RunAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Ended in order: the host is stopping.
        }
    }

    private string PendingStep() =>
        _gate.PendingStopStep ?? (_gate.State == LifecycleState.Starting ? "start" : "the stop's outcome (state " + _gate.State + ")");

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
        catch (OperationCanceledException) when (_stoppedDuringStart && _lifetime?.ApplicationStopping.IsCancellationRequested == true)
        {
            // The host is stopping (another service's fault, a signal) while this one started: an orderly end of the
            // start, not a failure of the host's start. The host goes on to stop every service, this one included.
        }
        catch (Exception failure) when (failure is not OperationCanceledException || _gate.State == LifecycleState.StartFailed)
        {
            HostingLog.StartFailed(_logger, _name, failure);
            throw;
        }
    }

    private void StopDuringStart()
    {
        _stoppedDuringStart = true;
        // The start's task reports how the start ended; the stop's task says whether the start outlived its bound.
        _ = _gate.StopAsync(CancellationToken.None).ContinueWith(
            static (stop, state) =>
            {
                var self = (LifecycleHostedService<TService>)state!;
                self._stopDuringStart.TrySetResult(stop.Exception?.InnerException);
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
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

/// <summary>
/// The host's entry for a lifecycle service: forwards the host's calls to the adapter, and is not disposable, so that
/// the container disposes the adapter once (as the singleton it is).
/// </summary>
/// <typeparam name="TService">The hosted service.</typeparam>
internal sealed class LifecycleHostedServiceEntry<TService> : IHostedService
    where TService : class, ILifecycleService
{
    private readonly LifecycleHostedService<TService> _adapter;

    public LifecycleHostedServiceEntry(LifecycleHostedService<TService> adapter) => _adapter = adapter;

    public Task StartAsync(CancellationToken cancellationToken) => _adapter.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => _adapter.StopAsync(cancellationToken);
}
