using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.Tests.TestSupport.BatcherHandlers;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// The batcher's instruments (BatcherMetrics), observed with the maintained <c>MetricCollector</c> on the library's
/// static meter and counted for one batcher only (its <c>batcher.name</c> tag). Each records exactly what happened: one
/// measurement per event, carrying the event's size, and nothing at all for a dispatch, sweep or shutdown that had
/// nothing to report.
/// </summary>
public sealed class BatcherMetricsTests
{
    /// <summary>
    /// Guards the queued up-down counter on the submit and cut paths: +1 as each item is published, and −n when a cut
    /// of n items hands them to a dispatch (so that it reads zero once nothing waits).
    /// </summary>
    [Fact]
    public async Task Queued_RisesByOnePerSubmit_AndFallsByTheWholeBatchAtItsCut()
    {
        var name = NewName();
        using var queued = Collect("queued");
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { Name = name, MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1), TimeProvider = new ManualTimeProvider() });

        var first = batcher.SubmitAsync(1).AsTask();
        var second = batcher.SubmitAsync(2).AsTask();
        Values(queued, name).Should().Equal(1, 1);

        var third = batcher.SubmitAsync(3).AsTask(); // fills the batch: this submit cuts it before it returns
        Values(queued, name).Should().Equal(1, 1, 1, -3);

        (await Task.WhenAll(first, second, third).OrHang()).Should().Equal(1, 2, 3);
    }

    /// <summary>Guards the queued counter on the FailPending shutdown path: the items the close fails leave the queue in one step.</summary>
    [Fact]
    public async Task Queued_FallsByEveryItemAFailPendingCloseFails()
    {
        var name = NewName();
        using var queued = Collect("queued");
        var batcher = new Batcher<int, int>(
            Echo,
            new BatcherOptions { Name = name, MaxBatchSize = 10, MaxDelay = TimeSpan.FromHours(1), ShutdownMode = BatcherShutdownMode.FailPending, TimeProvider = new ManualTimeProvider() });
        var calls = Enumerable.Range(1, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        await batcher.CloseAsync().OrHang();

        foreach (var call in calls)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<ClosedException>();
        }

        Values(queued, name).Should().Equal(1, 1, 1, -3);
    }

    /// <summary>Guards the dispatch-duration histogram: one measurement per dispatch, the time from its cut to its return.</summary>
    [Fact]
    public async Task DispatchDuration_IsTheTimeFromTheCutToTheDispatchsReturn()
    {
        var name = NewName();
        using var durations = new MetricCollector<double>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher.dispatch.duration");
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions { Name = name, MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));
        release.SetResult();
        (await call.OrHang()).Should().Be(1);
        await batcher.CloseAsync().OrHang(); // the drain ends after the loop has finished the batch (and recorded it)

        Values(durations, name).Should().Equal(2.0);
    }

    /// <summary>
    /// Guards the fault and orphan counters of the Batch form: every dispatch that threw is a fault — also one that
    /// answered its items first, and one that threw a cancellation of its own (only a cancellation the batcher asked
    /// for, of an abandoned dispatch, is not) — while orphans count only the items the post-dispatch sweep answered.
    /// </summary>
    [Fact]
    public async Task DispatchFaults_CountEveryDispatchThatThrew_AndOrphans_OnlyTheItemsItLeftUnanswered()
    {
        var name = NewName();
        using var faults = Collect("dispatch.faults");
        using var orphans = Collect("orphans_prevented");
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken _) =>
            {
                switch (batch[0])
                {
                    case 2: // answers its item, then throws: a fault that leaves nothing for the sweep
                        batch.TrySetResult(0, 2);
                        throw new InvalidOperationException("after answering");
                    case 3: // throws a cancellation of its own (the batcher asked for none) before answering
                        throw new OperationCanceledException("gave up by itself");
                    case 4: // answers, then throws a cancellation of its own: a fault, not an abandoned dispatch
                        batch.TrySetResult(0, 4);
                        throw new OperationCanceledException("after answering");
                    default: // a clean dispatch
                        batch.TrySetResult(0, batch[0]);
                        return default;
                }
            },
            new BatcherOptions { Name = name, MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);
        (await batcher.SubmitAsync(2).AsTask().OrHang()).Should().Be(2);
        (await batcher.SubmitAsync(3).AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>())
            .Which.InnerException.Should().BeOfType<OperationCanceledException>();
        (await batcher.SubmitAsync(4).AsTask().OrHang()).Should().Be(4);
        await batcher.CloseAsync().OrHang(); // every dispatch has been finished (and counted)

        Values(faults, name).Should().Equal(new long[] { 1, 1, 1 }, "dispatches 2, 3 and 4 threw; dispatch 1 did not");
        Values(orphans, name).Should().Equal(new long[] { 1 }, "only dispatch 3 left an item unanswered");
    }

    /// <summary>Guards the fault and orphan counters of the result-list form: a list of the wrong length is a fault, and fails (orphans) every item.</summary>
    [Fact]
    public async Task DispatchFaults_CountAResultListOfTheWrongLength_AndOrphans_EveryItemItFailed()
    {
        var name = NewName();
        using var faults = Collect("dispatch.faults");
        using var orphans = Collect("orphans_prevented");
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> _, CancellationToken _) => new ValueTask<IReadOnlyList<int>>(new[] { 1 }),
            new BatcherOptions { Name = name, MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1) });

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        foreach (var call in calls)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>();
        }

        await batcher.CloseAsync().OrHang();

        Values(faults, name).Should().Equal(1);
        Values(orphans, name).Should().Equal(2);
    }

    /// <summary>Guards the orphan count with coalescing: a forgotten slot fails each of its callers, and each is counted (and logged).</summary>
    [Fact]
    public async Task Orphans_CountEveryCallerOfACoalescedSlotTheDispatchForgot()
    {
        var name = NewName();
        using var orphans = Collect("orphans_prevented");
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(1, 80); // slot 1 (item 8); slot 0 (item 7, two callers) is forgotten
                return default;
            },
            new BatcherOptions<int> { Name = name, MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1), CoalescingComparer = EqualityComparer<int>.Default, Logger = logger });

        var sevens = new[] { batcher.SubmitAsync(7).AsTask(), batcher.SubmitAsync(7).AsTask() };
        var eight = batcher.SubmitAsync(8).AsTask();

        (await eight.OrHang()).Should().Be(80);
        foreach (var call in sevens)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>();
        }

        await batcher.CloseAsync().OrHang();
        Values(orphans, name).Should().Equal(2);
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 3002).Which;
        entry["Swept"].Should().Be(2);
        entry["Count"].Should().Be(2, "the dispatch saw two slots");
    }

    /// <summary>
    /// Guards the timeout counter on the deadline sweep: one measurement per sweep that released callers, carrying how
    /// many — and none for a sweep that fired and found every caller already answered.
    /// </summary>
    [Fact]
    public async Task Timeouts_CountTheCallersASweepReleases_AndNothingForASweepThatReleasesNone()
    {
        var name = NewName();
        using var timeouts = Collect("timeouts");
        var time = new ManualTimeProvider();
        var batcher = new Batcher<int, int>(
            Echo,
            new BatcherOptions { Name = name, MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(30), TimeProvider = time });

        var first = batcher.SubmitAsync(1).AsTask();  // t = 0: the sweep is armed for its bound, t = 30 s
        time.Advance(TimeSpan.FromSeconds(10));
        var second = batcher.SubmitAsync(2).AsTask(); // t = 10 s: the batch is full, dispatched and answered
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(1, 2);

        time.Advance(TimeSpan.FromSeconds(20));       // t = 30 s: the sweep fires and finds nobody to release
        Values(timeouts, name).Should().BeEmpty("that sweep released no caller");

        var late = batcher.SubmitAsync(3).AsTask();   // t = 30 s: queued, never dispatched (MaxDelay is an hour)
        time.Advance(TimeSpan.FromSeconds(30));       // t = 60 s: its bound
        (await late.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        Values(timeouts, name).Should().Equal(1);
    }

    /// <summary>
    /// Guards the own-deadline path of a caller that waited for room (it is not in the queue, so the sweep cannot see
    /// it): its own timer releases it at its bound, with a timeout that says it was never dispatched, and counts it.
    /// </summary>
    [Fact]
    public async Task Timeouts_CountACallerReleasedByItsOwnDeadline_WhileItWaitedForRoom()
    {
        var name = NewName();
        using var timeouts = Collect("timeouts");
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // ignores its token and never returns: the slot stays taken
            },
            new BatcherOptions
            {
                Name = name,
                MaxBatchSize = 1,
                Capacity = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
            });

        var running = batcher.SubmitAsync(1).AsTask(); // t = 0: dispatched, bounded by its caller (t = 30 s)
        await entered.Task.OrHang();
        var queued = batcher.SubmitAsync(2).AsTask();  // t = 0: fills the queue
        time.Advance(TimeSpan.FromSeconds(10));
        var waiting = batcher.SubmitAsync(3);          // t = 10 s: waits for room, with its own deadline (t = 40 s)

        time.Advance(TimeSpan.FromSeconds(20));        // t = 30 s: the sweep releases the first two callers
        await running.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        (await queued.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        waiting.IsCompleted.Should().BeFalse("its own bound is 10 s later");
        Values(timeouts, name).Should().Equal(2);

        time.Advance(TimeSpan.FromSeconds(10));        // t = 40 s: its own deadline timer fires
        waiting.IsCompleted.Should().BeTrue();
        var timeout = (await waiting.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(30));
        timeout.WasDispatched.Should().BeFalse();
        timeout.DispatchTimedOut.Should().BeFalse();
        timeout.Message.Should().Contain("never dispatched");
        Values(timeouts, name).Should().Equal(2, 1);
    }

    /// <summary>
    /// Guards the stuck-dispatch counter: a dispatch past its DispatchTimeout is counted (and logged) once, when it
    /// times out, though every later sweep still finds it running.
    /// </summary>
    [Fact]
    public async Task StuckDispatches_CountADispatchOnce_ThoughLaterSweepsStillFindItRunning()
    {
        var name = NewName();
        using var stuck = Collect("dispatch.stuck");
        using var timeouts = Collect("timeouts");
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // ignores its token, never returns
            },
            new BatcherOptions
            {
                Name = name,
                MaxBatchSize = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromSeconds(2),
                TimeProvider = time,
                Logger = logger,
            });

        var hung = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));         // t = 2 s: the dispatch times out
        (await hung.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeTrue();
        Values(stuck, name).Should().Equal(1);

        var next = batcher.SubmitAsync(2).AsTask();    // t = 2 s: queued behind the stuck dispatch, bound t = 32 s
        time.Advance(TimeSpan.FromSeconds(30));        // t = 32 s: a sweep that finds the stuck dispatch still running
        (await next.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();

        Values(stuck, name).Should().Equal(new long[] { 1 }, "the dispatch got stuck once");
        logger.Entries.Count(e => e.EventId == 3004).Should().Be(1);
        Values(timeouts, name).Should().Equal(1, 1);
    }

    /// <summary>Guards the sweep's list of timed-out dispatches: two that time out in one sweep are each counted and each cancelled.</summary>
    [Fact]
    public async Task StuckDispatches_TwoTimingOutInOneSweep_AreEachCountedAndCancelled()
    {
        var name = NewName();
        using var stuck = Collect("dispatch.stuck");
        using var timeouts = Collect("timeouts");
        var time = new ManualTimeProvider();
        var tokens = new ConcurrentQueue<CancellationToken>();
        var bothEntered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken token) =>
            {
                tokens.Enqueue(token);
                if (tokens.Count == 2)
                {
                    bothEntered.TrySetResult();
                }

                return new ValueTask(Bounded.NewGate().Task); // ignores its token, never returns
            },
            new BatcherOptions
            {
                Name = name,
                MaxBatchSize = 1,
                MaxConcurrency = 2,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromSeconds(2),
                TimeProvider = time,
            });

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await bothEntered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2)); // one sweep, at both dispatches' bound

        tokens.Should().HaveCount(2).And.OnlyContain(token => token.IsCancellationRequested);
        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeTrue();
        }

        Values(stuck, name).Should().Equal(1, 1);
        Values(timeouts, name).Should().Equal(2);
    }

    /// <summary>Guards the timeout count of a dispatch timeout with coalescing: every caller of every slot is released and counted, followers included.</summary>
    [Fact]
    public async Task Timeouts_ADispatchTimeout_CountsEveryCallerOfEveryCoalescedSlot()
    {
        var name = NewName();
        using var timeouts = Collect("timeouts");
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // ignores its token, never returns
            },
            new BatcherOptions<int>
            {
                Name = name,
                MaxBatchSize = 3,
                MaxDelay = TimeSpan.FromHours(1),
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromSeconds(2),
                TimeProvider = time,
                CoalescingComparer = EqualityComparer<int>.Default,
            });

        var calls = new[] { 7, 7, 8 }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray(); // two slots, three callers
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeTrue();
        }

        Values(timeouts, name).Should().Equal(3);
    }

    /// <summary>Guards the abandoned-dispatch counter: counted once, when the last caller gives up, and the cancellation it caused is no fault.</summary>
    [Fact]
    public async Task AbandonedDispatches_CountADispatchOnce_WhenItsLastCallerGivesUp()
    {
        var name = NewName();
        using var abandoned = Collect("dispatch.abandoned");
        using var faults = Collect("dispatch.faults");
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> _, CancellationToken token) =>
            {
                entered.TrySetResult(token);
                await Bounded.NewGate().Task.WaitAsync(token); // waits for nothing but its token
            },
            new BatcherOptions { Name = name, MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), TimeProvider = new ManualTimeProvider() });
        using var one = new CancellationTokenSource();
        using var two = new CancellationTokenSource();

        var first = batcher.SubmitAsync(1, one.Token).AsTask();
        var second = batcher.SubmitAsync(2, two.Token).AsTask();
        var token = await entered.Task.OrHang();
        await one.CancelAsync();
        Values(abandoned, name).Should().BeEmpty("one caller still waits");
        await two.CancelAsync();

        token.IsCancellationRequested.Should().BeTrue();
        Values(abandoned, name).Should().Equal(1);
        await first.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await second.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await batcher.CloseAsync().OrHang(); // the dispatch has returned (with the cancellation) and been finished

        Values(abandoned, name).Should().Equal(1);
        Values(faults, name).Should().BeEmpty("the cancellation the batcher asked for is no fault");
    }

    private static string NewName() => "metrics-" + Guid.NewGuid().ToString("N");

    private static MetricCollector<long> Collect(string instrument) =>
        new(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher." + instrument);


}
