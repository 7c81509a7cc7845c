using System;

namespace Concurrency.Primitives.Hosting;

/// <summary>What the host does when a lifecycle service's run faults on its own.</summary>
public enum LifecycleServiceRunFaultBehavior
{
    /// <summary>
    /// Log the fault at Critical with its cause, set a non-zero process exit code (<see cref="LifecycleServiceOptions.ExitCode"/>)
    /// and stop the host. The default, as for <c>BackgroundServiceExceptionBehavior.StopHost</c>, whose exit code is zero.
    /// </summary>
    StopHost = 0,

    /// <summary>
    /// Log the fault at Error and keep the host running; the service stays faulted (its health check reports it) and
    /// its teardown runs at the host's stop.
    /// </summary>
    Ignore = 1,
}

/// <summary>
/// Settings of a service registered with <c>AddLifecycleService</c>. Bind them from configuration with the returned
/// options builder (<c>.BindConfiguration("Services:Poller")</c>); they are validated when the host starts.
/// </summary>
public sealed class LifecycleServiceOptions
{
    /// <summary>The service's name in logs, metrics (<c>gate.name</c>) and health checks. Defaults to the registration's name.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// How long the run may take to return once cancelled, and then each stop step (<see cref="LifecycleGateOptions.ShutdownTimeout"/>).
    /// Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound. The host's own
    /// <c>HostOptions.ShutdownTimeout</c> still bounds the whole stop: past it, the host moves on and the step it waited
    /// for is named in the log.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When the run does not return within <see cref="ShutdownTimeout"/> of its cancellation: <see langword="false"/> (the
    /// default) keeps what the start acquired (nothing is released under a live run); <see langword="true"/> abandons the
    /// run and releases it anyway (see <see cref="LifecycleGateOptions.AbandonRunOnTimeout"/>).
    /// </summary>
    public bool AbandonRunOnTimeout { get; set; }

    /// <summary>What the host does when the run faults on its own. Default <see cref="LifecycleServiceRunFaultBehavior.StopHost"/>.</summary>
    public LifecycleServiceRunFaultBehavior RunFaultBehavior { get; set; }

    /// <summary>
    /// The process exit code that <see cref="LifecycleServiceRunFaultBehavior.StopHost"/> sets
    /// (<see cref="Environment.ExitCode"/>, unless something already set a non-zero one). Default 1; at least 1.
    /// </summary>
    public int ExitCode { get; set; } = 1;
}
