using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>
/// The watchdog (TaskTrackerOptions.LongRunningThreshold) on a fake clock: an operation outstanding past the threshold is
/// reported once, while it runs; nothing is reported for work that finished in time; one timer, armed only while needed.
/// </summary>
public sealed class TaskTrackerWatchdogTests
{
    private static readonly TimeSpan Threshold = TimeSpan.FromSeconds(10);
    private readonly ManualTimeProvider _clock = new();
    private readonly RecordingLogger _logger = new();
    private readonly ConcurrentQueue<TrackedOperationLongRunningEventArgs> _reports = new();

    [Fact]
    public async Task AnOperationStillRunningAtTheThreshold_IsReportedOnce_WithNameAgeAndMetric()
    {
        var name = "watchdog-" + Guid.NewGuid().ToString("N");
        using var counted = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.tracker.long_running");
        var tracker = NewTracker(name);
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task, "build");
        await _clock.WhenTimersArmed(1).OrHang();

        _clock.Advance(Threshold - TimeSpan.FromMilliseconds(1));
        _reports.Should().BeEmpty();
        _clock.Advance(TimeSpan.FromMilliseconds(1));

        var report = _reports.Should().ContainSingle().Which;
        report.Operation.Name.Should().Be("build");
        report.Operation.Age.Should().Be(Threshold);
        report.Operation.ParentId.Should().BeNull();
        report.Threshold.Should().Be(Threshold);
        var entry = _logger.Entries.Should().ContainSingle(e => e.EventId == 1012).Which;
        entry["Operation"].Should().Be("build");
        entry["Age"].Should().Be(Threshold);
        entry["Parent"].Should().Be("none");
        counted.GetMeasurementSnapshot().Where(m => (string?)m.Tags["tracker.name"] == name).Sum(m => m.Value).Should().Be(1);

        _clock.Advance(TimeSpan.FromMinutes(10));
        _reports.Should().ContainSingle("an operation is reported once, however long it runs");
        _clock.ArmedTimers.Should().Be(0, "nothing unreported is outstanding: the timer is idle");

        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task WorkThatFinishesBeforeTheThreshold_IsNeverReported_AndTheTimerGoesIdle()
    {
        var tracker = NewTracker();
        var lease = tracker.Register("quick");
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task, "also quick");
        _clock.Advance(Threshold - TimeSpan.FromSeconds(1));
        lease.Dispose();
        release.SetResult();
        await tracker.WaitAsync().OrHang();

        _clock.Advance(TimeSpan.FromMinutes(1));

        _reports.Should().BeEmpty();
        _logger.Entries.Should().NotContain(e => e.EventId == 1012);
        _clock.ArmedTimers.Should().Be(0);
    }

    [Fact]
    public void EachOperation_IsReportedAtItsOwnThreshold_AndNotAgain()
    {
        var tracker = NewTracker();
        using var first = tracker.Register("first");
        _clock.Advance(TimeSpan.FromSeconds(4));
        using var second = tracker.Register("second");

        _clock.Advance(TimeSpan.FromSeconds(6));
        _reports.Select(r => r.Operation.Name).Should().Equal("first");

        _clock.Advance(TimeSpan.FromSeconds(3.999));
        _reports.Select(r => r.Operation.Name).Should().Equal("first");
        _clock.Advance(TimeSpan.FromMilliseconds(1));
        _reports.Select(r => r.Operation.Name).Should().Equal("first", "second");
        _reports.Last().Operation.Age.Should().Be(Threshold);

        using var third = tracker.Register("third");
        _clock.Advance(TimeSpan.FromSeconds(30));
        _reports.Select(r => r.Operation.Name).Should().Equal("first", "second", "third");
    }

    [Fact]
    public void OneTimerPerTracker_ArmedOnlyWhileSomethingIsOutstanding()
    {
        var tracker = NewTracker();
        _clock.ArmedTimers.Should().Be(0, "nothing is outstanding yet");

        var leases = Enumerable.Range(0, 100).Select(i => tracker.Register("lease " + i)).ToList();
        _clock.ArmedTimers.Should().Be(1, "one timer for the whole tracker, not one per operation");

        leases.ForEach(lease => lease.Dispose());
        _clock.Advance(Threshold);
        _clock.ArmedTimers.Should().Be(0);
        _reports.Should().BeEmpty();

        using var again = tracker.Register("again");
        _clock.ArmedTimers.Should().Be(1, "a registration arms the idle timer");
    }

    [Fact]
    public async Task AReport_NamesTheParentAndWhereTheOperationWasRegistered()
    {
        var tracker = NewTracker(captureStackTraces: true);
        var release = Bounded.NewGate();
        var childRegistered = Bounded.NewGate();
        await tracker.Go(
            async (build, _) =>
            {
                using (build.Register("merge"))
                {
                    childRegistered.SetResult();
                    await release.Task;
                }
            },
            "build");
        await childRegistered.Task.OrHang();

        _clock.Advance(Threshold);

        var merge = _reports.Should().ContainSingle(r => r.Operation.Name == "merge").Which;
        merge.ParentName.Should().Be("build");
        merge.Operation.RegistrationStackTrace.Should().Contain(nameof(AReport_NamesTheParentAndWhereTheOperationWasRegistered));
        var entry = _logger.Entries.Single(e => e.EventId == 1012 && (string?)e["Operation"] == "merge");
        ((string)entry["Parent"]!).Should().StartWith("'build' #");
        ((string)entry["RegistrationSite"]!).Should().Contain(nameof(AReport_NamesTheParentAndWhereTheOperationWasRegistered));
        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public void AThrowingHandler_IsLogged_AndTheOtherHandlersStillRun()
    {
        var tracker = NewTracker();
        tracker.LongRunning += (_, _) => throw new InvalidOperationException("handler bug");
        var after = 0;
        tracker.LongRunning += (_, _) => after++;
        using var lease = tracker.Register("stuck");

        _clock.Advance(Threshold);

        after.Should().Be(1);
        _logger.Entries.Should().Contain(e => e.EventId == 1013 && e.Exception!.Message == "handler bug");
    }

    [Fact]
    public void AThrowingLogger_CannotEndTheProcessFromTheTimer_AndTheEventStillReports()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { LongRunningThreshold = Threshold, TimeProvider = _clock, Logger = new ThrowingLogger() });
        tracker.LongRunning += (_, e) => _reports.Enqueue(e);
        using var lease = tracker.Register("stuck");

        _clock.Invoking(c => c.Advance(Threshold)).Should().NotThrow();

        _reports.Should().ContainSingle().Which.Operation.Name.Should().Be("stuck");
    }

    [Fact]
    public async Task TheTimerIsDisposed_WhenTheTrackerCompletes()
    {
        var tracker = NewTracker();
        using (tracker.Register("a"))
        {
            _clock.ArmedTimers.Should().Be(1);
        }

        await tracker.CloseAsync().OrHang();

        _clock.ArmedTimers.Should().Be(0);
        _clock.Advance(Threshold * 2);
        _reports.Should().BeEmpty();
    }

    [Fact]
    public void Threshold_MustBePositiveAndFinite()
    {
        FluentActions.Invoking(() => new TaskTracker(new TaskTrackerOptions { LongRunningThreshold = TimeSpan.Zero }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*LongRunningThreshold*");
        FluentActions.Invoking(() => new TaskTracker(new TaskTrackerOptions { LongRunningThreshold = System.Threading.Timeout.InfiniteTimeSpan }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*LongRunningThreshold*");
    }

    [Fact]
    public void RegisterAndRelease_WithTheWatchdogOn_AllocatesNothing()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { LongRunningThreshold = TimeSpan.FromMinutes(1) });
        for (var i = 0; i < 100; i++)
        {
            tracker.Register("warm").Dispose(); // the pool and the timer warm up
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            tracker.Register("lease").Dispose();
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    private TaskTracker NewTracker(string? name = null, bool captureStackTraces = false)
    {
        var tracker = new TaskTracker(new TaskTrackerOptions
        {
            Name = name,
            LongRunningThreshold = Threshold,
            TimeProvider = _clock,
            Logger = _logger,
            CaptureRegistrationStackTraces = captureStackTraces,
        });
        tracker.LongRunning += (_, e) => _reports.Enqueue(e);
        return tracker;
    }

    private sealed class ThrowingLogger : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Warning;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException("logger down");
    }
}
