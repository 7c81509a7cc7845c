using System;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>What a <see cref="LifecycleGroup"/> does when one of its gates faults while running (its run ends on its own with an exception).</summary>
public enum LifecycleGroupFaultPolicy
{
    /// <summary>
    /// The group stops everything: it becomes <see cref="LifecycleState.RunFaulted"/> with the gate's exception, then stops
    /// every gate in reverse dependency order and ends <see cref="LifecycleState.Stopped"/>; the stop throws the gate's exception.
    /// </summary>
    StopGroup = 0,

    /// <summary>
    /// The fault is reported (event, log, metric) and the group keeps running: the faulted gate stays
    /// <see cref="LifecycleState.RunFaulted"/> until the group stops, which finishes its teardown.
    /// </summary>
    Isolate = 1,
}

/// <summary>How a <see cref="LifecycleGroup"/> behaves: its name, fault policy, total stop bound, logger and clock. Read once, at construction.</summary>
public sealed class LifecycleGroupOptions
{
    /// <summary>A name for logs, metrics (<c>gate.name</c>, <c>group.name</c>) and messages. Defaults to <c>"LifecycleGroup"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>What the group does when a gate faults while running. Default <see cref="LifecycleGroupFaultPolicy.StopGroup"/>.</summary>
    public LifecycleGroupFaultPolicy OnGateFault { get; set; }

    /// <summary>
    /// Whether a stopped group may be started again. Default <see langword="false"/>. Its gates are started again too, so
    /// each needs <see cref="LifecycleGateOptions.AllowRestart"/> as well.
    /// </summary>
    public bool AllowRestart { get; set; }

    /// <summary>
    /// The bound on a whole stop of the group: every gate, level after level (each gate's own
    /// <see cref="LifecycleGateOptions.ShutdownTimeout"/> still bounds each of its steps). On timeout the stop throws
    /// <see cref="LifecycleGroupStopTimeoutException"/>, naming each gate still stopping and its step. Default 30 seconds;
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no total bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the group logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for the stop bound. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the group's instruments are created (see <see cref="LifecycleGateOptions.MeterFactory"/>). Defaults to
    /// <see langword="null"/>: the library's static meter.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }
}

/// <summary>Describes a gate of a <see cref="LifecycleGroup"/> that faulted while running.</summary>
public sealed class LifecycleGateFaultedEventArgs : EventArgs
{
    /// <summary>Creates the description of a fault (the group raises these; a test of a handler may build one).</summary>
    /// <param name="gateName">The name of the gate (or nested group) that faulted.</param>
    /// <param name="exception">Its run's exception.</param>
    /// <param name="policy">What the group does about it.</param>
    /// <exception cref="ArgumentNullException"><paramref name="gateName"/> or <paramref name="exception"/> is <see langword="null"/>.</exception>
    public LifecycleGateFaultedEventArgs(string gateName, Exception exception, LifecycleGroupFaultPolicy policy)
    {
        GateName = Internal.Guard.NotNull(gateName);
        Exception = Internal.Guard.NotNull(exception);
        Policy = policy;
    }

    /// <summary>The name of the gate (or nested group) that faulted.</summary>
    public string GateName { get; }

    /// <summary>The exception its run ended with.</summary>
    public Exception Exception { get; }

    /// <summary>What the group does about it: stops everything, or keeps running.</summary>
    public LifecycleGroupFaultPolicy Policy { get; }
}
