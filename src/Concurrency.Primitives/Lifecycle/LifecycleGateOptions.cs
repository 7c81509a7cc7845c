using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>What a <see cref="LifecycleGate"/> starts, runs and stops, and how. Read once, at construction.</summary>
public sealed class LifecycleGateOptions
{
    /// <summary>A name for logs, metrics (<c>gate.name</c>) and messages. Defaults to <c>"LifecycleGate"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// Acquires what the component needs; runs at most once per start cycle. Register resources on the
    /// <see cref="LifecycleContext"/> to have them released on stop. Its token is cancelled when a stop is requested
    /// during the start (the stop then waits for the start to return).
    /// </summary>
    public Func<LifecycleContext, CancellationToken, Task>? Start { get; set; }

    /// <summary>
    /// The long-running loop, invoked on the thread pool after every accepted start (with its token already cancelled
    /// if a stop came first). Stop cancels its token and waits for it to return before releasing anything. A run that
    /// faults on its own moves the gate to <see cref="LifecycleState.Faulted"/>; its exception is thrown by the stop.
    /// </summary>
    public Func<CancellationToken, Task>? Run { get; set; }

    /// <summary>
    /// The stop step: runs after the run has returned and before the resources registered during start are released.
    /// Never called for a start that did not succeed. If it throws, the stop fails and can be retried; the step is called again.
    /// </summary>
    public Func<CancellationToken, Task>? Stop { get; set; }

    /// <summary>Whether a stopped gate may be started again. Default <see langword="false"/>.</summary>
    public bool AllowRestart { get; set; }

    /// <summary>How long the run, and then each stop step, may take during a stop. Positive and finite; default 30 seconds.</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When <see langword="true"/>, a run that does not return within <see cref="StopTimeout"/> is abandoned and the
    /// resources are released anyway (the stop still reports it). Default <see langword="false"/>: nothing is released
    /// under a live run, and the stop throws <see cref="LifecycleStopTimeoutException"/> so it can be retried.
    /// </summary>
    public bool AbandonRunOnStopTimeout { get; set; }

    /// <summary>Where the gate logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for stop timeouts. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }
}
