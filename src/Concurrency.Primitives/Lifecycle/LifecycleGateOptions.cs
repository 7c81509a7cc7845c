using System;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>
/// How a <see cref="LifecycleGate"/> behaves: its name, restart rule, shutdown bound, logger and clock. Read once, at
/// construction. What the gate starts, runs and stops is passed to its constructor.
/// </summary>
public sealed class LifecycleGateOptions
{
    /// <summary>A name for logs, metrics (<c>gate.name</c>) and messages. Defaults to <c>"LifecycleGate"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>Whether a stopped gate may be started again. Default <see langword="false"/>.</summary>
    public bool AllowRestart { get; set; }

    /// <summary>
    /// How long the run, and then each stop step, may take during a stop (a bound per step: a timeout names the step
    /// that did not finish). Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When <see langword="true"/>, a run that does not return within <see cref="ShutdownTimeout"/> is abandoned and the
    /// resources are released anyway (the stop still reports it). Default <see langword="false"/>: nothing is released
    /// under a live run, and the stop throws <see cref="LifecycleStopTimeoutException"/> so it can be retried.
    /// </summary>
    public bool AbandonRunOnTimeout { get; set; }

    /// <summary>Where the gate logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for stop timeouts. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the gate's instruments are created: that factory's <c>Concurrency.Primitives</c> meter, as a host's
    /// <see cref="IMeterFactory"/> provides (so two hosts in one process keep separate meters, and a test can observe one).
    /// Defaults to <see langword="null"/>: the library's static meter of the same name (see <see cref="ConcurrencyPrimitivesTelemetry"/>).
    /// Instruments are tagged <c>gate.name</c> either way.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }
}
