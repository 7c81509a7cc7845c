using System;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Settings for a <see cref="TaskTracker"/>. Read once, when the tracker is constructed.</summary>
public sealed class TaskTrackerOptions
{
    /// <summary>
    /// A name for the tracker, used in exception messages, logs and the <c>tracker.name</c> metric tag.
    /// Defaults to <c>"TaskTracker"</c>.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>
    /// The most pieces of work started by <see cref="TaskTracker.Go(Func{System.Threading.CancellationToken, System.Threading.Tasks.Task}, string?, System.Threading.CancellationToken)"/>
    /// that may run at once (Go's <c>errgroup.SetLimit</c>). <see langword="null"/> (the default) means no limit.
    /// When the limit is reached, <c>Go</c> waits asynchronously for a slot and <c>TryGo</c> returns <see langword="false"/>.
    /// Leases from <c>Register</c> and <c>Add</c> do not take slots, and neither does child work started through a
    /// <see cref="TrackedOperation"/> handle: it belongs to its running parent, and waiting for a slot the parent
    /// itself holds would deadlock.
    /// </summary>
    public int? MaxConcurrency { get; set; }

    /// <summary>
    /// When <see langword="true"/>, the first failure of tracked work cancels <see cref="TaskTracker.ClosingToken"/>,
    /// as Go's <c>errgroup.WithContext</c> does. The failure is still surfaced by <c>CloseAsync</c>. Default <see langword="false"/>.
    /// </summary>
    public bool CancelOnFirstFailure { get; set; }

    /// <summary>
    /// When <see langword="true"/>, every <c>Go</c> and <c>Register</c> records the stack trace of its caller, and
    /// <see cref="TaskTracker.GetOutstanding"/> and <see cref="TaskTrackerTimeoutException"/> report it. Costs a stack walk
    /// per registration; meant for diagnosing leaks. Default <see langword="false"/>.
    /// </summary>
    public bool CaptureRegistrationStackTraces { get; set; }

    /// <summary>
    /// How long <see cref="TaskTracker.CloseAsync(System.Threading.CancellationToken)"/> and <see cref="TaskTracker.DisposeAsync"/>
    /// wait for outstanding work. Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> waits forever.
    /// A close that times out throws <see cref="TaskTrackerTimeoutException"/>; a dispose logs it instead.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How many failures of tracked work the tracker keeps for <c>CloseAsync</c> and <see cref="TaskTracker.Completion"/>:
    /// the first ones (the root cause is usually among them). Later failures are still logged, counted and raised as
    /// <see cref="TaskTracker.WorkFailed"/>. Default 100; zero keeps none.
    /// </summary>
    public int MaxRecordedFailures { get; set; } = 100;

    /// <summary>
    /// The watchdog: an operation still outstanding this long after its registration is reported once, while it still
    /// runs — logged at Warning with its name, age, parent and registration site (with
    /// <see cref="CaptureRegistrationStackTraces"/>), counted (<c>concurrency.primitives.tracker.long_running</c>) and raised
    /// as <see cref="TaskTracker.LongRunning"/>. Default <see langword="null"/>: off. One timer per tracker, on
    /// <see cref="TimeProvider"/>: a registration that finds it idle arms it, and it goes idle again at the first firing that
    /// finds nothing outstanding unreported. Nothing per registration.
    /// </summary>
    public TimeSpan? LongRunningThreshold { get; set; }

    /// <summary>Where the tracker logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for ages and timeouts. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the tracker's instruments are created: that factory's <c>Concurrency.Primitives</c> meter, as a host's
    /// <see cref="IMeterFactory"/> provides (so two hosts in one process keep separate meters, and a test can observe one).
    /// Defaults to <see langword="null"/>: the library's static meter of the same name (see <see cref="ConcurrencyPrimitivesTelemetry"/>).
    /// Instruments are tagged <c>tracker.name</c> either way.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }
}
