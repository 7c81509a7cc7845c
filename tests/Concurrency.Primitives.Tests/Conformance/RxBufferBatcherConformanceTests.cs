using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

// dotnet/reactive's tests of Buffer with a time span and a count, and of Buffer with a time span alone, ported to
// Batcher<TItem, TResult> (Rx.NET/Source/tests/Tests.System.Reactive/Tests/Linq/Observable/BufferTest.cs, region Time).
//
// Mapping: Buffer(timeSpan, count) is a batcher with MaxBatchSize = count and MaxDelay = timeSpan; Buffer(timeSpan) has
// no count, and is a MaxBatchSize above the number of items; OnNext is SubmitAsync (which also waits for the item's
// answer); an emitted buffer is a batch handed to the dispatch, and the virtual time it is emitted at is the manual
// clock's time when the batch is cut; OnCompleted is CloseAsync with BatcherShutdownMode.Drain (the last partial batch
// is still dispatched); OnError is CloseAsync with FailPending (the partial batch is dropped: its callers fail with
// ClosedException; a dispatch's own fault, which fails only its batch, is asserted by the Dataflow suite's
// ADispatchThatFaults_FailsEveryUnansweredCallerOfItsBatch_AndTheBatcherGoesOn); disposing the subscription is
// DisposeAsync with FailPending (later submits fail with ObjectDisposedException). The TestScheduler's virtual time is
// the manual clock, one upstream tick read as 1 ms from the batcher's creation (times below are in upstream ticks, as
// in the test data); upstream's hot observables
// begin at the subscription (200), so their items before it (OnNext(100, 1)) have no counterpart and are left out. The
// dispatch is HeldBatchDispatch with every gate open, so each batch is answered as soon as it is entered, and one batch
// runs at a time (MaxConcurrency 1).
//
// DIFFERENCE BY DESIGN (every trace): Rx cuts fixed windows, one after another from the subscription, each restarted
// when a full buffer is emitted, and emits an empty buffer for a window that got no item; a batcher's partial batch is
// cut when MaxDelay has passed since its first item arrived (the timer is armed by that item, never restarted by later
// ones), so no batch is ever empty, and the cut times, and with a count the groups, differ. Rx's Buffer(70 ticks, 3) of
// BufferWithTimeOrCount_Basic emits 1,2,3 (240), 4 (310), 5,6,7 (370), 8 (440), 9 (510), empty (580, 600); the batcher
// cuts 1,2,3 (240, full), 4,5 (350), 6,7 (420), 8,9 (490). Rx's Buffer(100 ticks) of BufferWithTime_Basic_Same emits
// 2,3,4 (300), 5,6,7 (400), 8,9 (500), empty (600); the batcher cuts the same groups at 310, 420 and 520. An item that
// arrives when the batch before it falls due (350, 420) joins the next batch: the trace submits it once that cut is seen.
//
// Ported (upstream test -> test here):
//   BufferWithTimeOrCount_Basic, BufferWithTimeOrCount_Default; BufferWithTime_Basic_Same, BufferWithTime_Basic_Same_Periodic
//   (its buffers), BufferWithTime_Default     -> ItemsOnTheManualClock_AreCutWhenABatchFillsOrAtMaxDelayAfterItsFirstItem_...
//   BufferWithTimeOrCount_Error, BufferWithTime_Basic_Same_Periodic_Error
//                                              -> the same test, ending in CloseAsync with FailPending at 480. Upstream's
//     BufferWithTimeOrCount_Error fails at 600, when its only open buffer is empty; the batcher has no partial batch
//     then, so the error is moved to 480, as in BufferWithTime_Basic_Same_Periodic_Error, where it meets one (8, 9).
//   BufferWithTimeOrCount_Disposed             -> the same test, ending in DisposeAsync with FailPending at 370 (the
//     items of the batch still open are failed, later submits are refused, and its MaxDelay timer dispatches nothing).
//   BufferWithTime_TickWhileOnCompleted        -> ADispatchOfTheDrainedBatch_ThatMovesTheClockPastItsMaxDelay_...
//   BufferWithTimeOrCount_ArgumentChecking (count 0, time span -1 tick)
//                                              -> MaxBatchSizeAndMaxDelay_AreValidatedAtTheirBounds_NamingTheOption
//     DIFFERENCE BY DESIGN: Rx takes any time span from zero up; MaxDelay must be one a timer can represent (at most
//     4,294,967,294 ms, about 49.7 days).
//
// Skipped (no counterpart in the batcher's contract, or asserted elsewhere):
//   Buffer_Closings_*, Buffer_OpeningClosings_Basic, Buffer_Boundaries_*: no closing or boundary sequences; a batch is
//     cut only when full, at MaxDelay, or at the close.
//   BufferWithTime_Basic1, _Basic2, _Error, _Disposed (timeSpan with timeShift); Buffer_Count_Skip_Less, _Skip_More and
//     BufferWithCount_Basic, _Disposed, _Error, _Default (count with skip): no shift or skip; every item goes into
//     exactly one batch, so batches never overlap and leave no item out.
//   Buffer_Count_PartialWindow, _FullWindows, _FullAndPartialWindows, _Error (count alone): asserted by the Dataflow
//     suite (FullBatchesAreCutByTheSubmitThatFillsThem_..., ClosingWithDrain_DispatchesTheBufferedPartialBatch_...,
//     ClosingWithFailPending_FailsTheBufferedItemsAtOnce_...).
//   Buffer_Single_ArgumentChecking, Buffer_Time_ArgumentChecking, BufferWithCount_ArgumentChecking,
//     BufferWithTime_ArgumentChecking and the null parts of BufferWithTimeOrCount_ArgumentChecking: no source or
//     scheduler argument (a null TimeProvider is the system clock); their count and time-span parts are those above.
//   The subscription assertions (xs.Subscriptions: Subscribe(200, 600)): items come from SubmitAsync, not from a
//     subscribed source.
//   BufferWithTime_Basic_Same_Periodic's timer assertion (one periodic timer, ticking at 300, 400, 500): no periodic
//     timer; the MaxDelay timer is armed per batch, from its first item, and the trace asserts when it cuts.
public sealed class RxBufferBatcherConformanceTests
{
    private const string TimeOrCountItems = "205:1 210:2 240:3 280:4 320:5 350:6 370:7 420:8 470:9";
    private const string TimeOnlyItems = "210:2 240:3 280:4 320:5 350:6 380:7 420:8 470:9";
    private const int MsPerTick = 1;
    private const int OneDay = 86_400_000 / MsPerTick;

    /// <summary>How a trace ends: Rx's OnCompleted, OnError, or the subscription's disposal.</summary>
    public enum Ending
    {
        /// <summary>CloseAsync, ShutdownMode Drain.</summary>
        Completed,

        /// <summary>CloseAsync, ShutdownMode FailPending.</summary>
        Error,

        /// <summary>DisposeAsync, ShutdownMode FailPending.</summary>
        Disposed,
    }

    // Ports BufferWithTimeOrCount_Basic, _Error, _Disposed and _Default, BufferWithTime_Basic_Same (and the buffers of
    // its _Periodic twin), BufferWithTime_Basic_Same_Periodic_Error and BufferWithTime_Default. Items are submitted at
    // upstream's times on the manual clock ("tick:item"); each expected batch ("tick:items") must be entered at exactly
    // that time, in that order, and no other: one millisecond before each, nothing is cut, and Count (accepted, not yet cut)
    // holds every item submitted and not yet in a batch. A batch due by MaxDelay is awaited before the items that arrive
    // at its due time are submitted. At the end (CloseAsync or DisposeAsync) the partial batch is dispatched at once
    // (Drain) or its callers fail with ClosedException (FailPending); items after the end are refused at once
    // (ClosedException, or ObjectDisposedException once disposed), and a MaxDelay timer left from before it cuts nothing.
    // Every dispatched caller gets its own item back. The Default tests' Range, submitted all at once with a day's
    // MaxDelay, is cut by count alone (Buffer(3).Skip(1).First() is 4, 5, 6) and its rest by the close.
    [Theory]
    [InlineData(3, 70, TimeOrCountItems, Ending.Completed, 600, "240:1,2,3 350:4,5 420:6,7 490:8,9")]
    [InlineData(3, 70, TimeOrCountItems, Ending.Error, 480, "240:1,2,3 350:4,5 420:6,7")]
    [InlineData(3, 70, TimeOrCountItems, Ending.Disposed, 370, "240:1,2,3 350:4,5")]
    [InlineData(3, OneDay, "0:1 0:2 0:3 0:4 0:5 0:6 0:7 0:8 0:9 0:10", Ending.Completed, 0, "0:1,2,3 0:4,5,6 0:7,8,9 0:10")]
    [InlineData(64, 100, TimeOnlyItems, Ending.Completed, 600, "310:2,3,4 420:5,6,7 520:8,9")]
    [InlineData(64, 100, TimeOnlyItems, Ending.Error, 480, "310:2,3,4 420:5,6,7")]
    [InlineData(64, OneDay, "0:0 0:1 0:2 0:3 0:4 0:5 0:6 0:7 0:8 0:9", Ending.Completed, 0, "0:0,1,2,3,4,5,6,7,8,9")]
    public async Task ItemsOnTheManualClock_AreCutWhenABatchFillsOrAtMaxDelayAfterItsFirstItem_AndTheEndDrainsOrFailsTheRest(
        int maxBatchSize, int maxDelayTicks, string items, Ending ending, int endAtTick, string expected)
    {
        var arrivals = Parse(items).Select(a => (a.At, Item: a.Items.Single())).ToArray();
        var batches = Parse(expected);
        var maxDelay = TimeSpan.FromMilliseconds(maxDelayTicks * MsPerTick);
        var endAt = endAtTick * MsPerTick;
        var (batcher, dispatch, time) = NewBatcher(maxBatchSize, maxDelay, ending == Ending.Completed ? BatcherShutdownMode.Drain : BatcherShutdownMode.FailPending);
        dispatch.OpenAll();
        var calls = new Dictionary<int, Task<int>>();
        var now = 0;
        var entered = 0;

        async Task ExpectCutsAsync(int at, Func<int[], bool> which)
        {
            while (entered < batches.Length && batches[entered].At == at && which(batches[entered].Items))
            {
                (await dispatch.NextAsync()).Items.Should().Equal(batches[entered].Items, "batch {0} is cut at {1} ms", entered, at);
                entered++;
            }
        }

        var points = arrivals.Select(a => a.At)
            .Concat(batches.SelectMany(b => new[] { b.At - 1, b.At }))
            .Append(endAt)
            .Where(t => t >= 0 && t <= endAt)
            .Distinct()
            .Order();
        foreach (var t in points)
        {
            time.Advance(TimeSpan.FromMilliseconds(t - now));
            now = t;
            await ExpectCutsAsync(t, batch => batch.All(calls.ContainsKey)); // due by MaxDelay: every item came earlier
            foreach (var (_, item) in arrivals.Where(a => a.At == t))
            {
                calls.Add(item, batcher.SubmitAsync(item).AsTask());
            }

            if (t == endAt)
            {
                await (ending == Ending.Disposed ? batcher.DisposeAsync().AsTask() : batcher.CloseAsync()).OrHang();
            }

            await ExpectCutsAsync(t, _ => true); // cut by the submit that filled it, or by the end
            dispatch.Batches.Should().HaveCount(entered, "no other batch is cut by {0} ms", t);
            batcher.Count.Should().Be(
                t == endAt ? 0 : calls.Count - batches.Take(entered).Sum(b => b.Items.Length),
                "every item submitted by {0} ms and not yet in a batch is counted", t);
        }

        entered.Should().Be(batches.Length);
        var refusal = ending == Ending.Disposed ? typeof(ObjectDisposedException) : typeof(ClosedException);
        foreach (var (at, item) in arrivals.Where(a => a.At > endAt))
        {
            time.Advance(TimeSpan.FromMilliseconds(at - now));
            now = at;
            var late = batcher.SubmitAsync(item).AsTask();
            late.IsCompleted.Should().BeTrue("a submit after the end is refused at once ({0} ms)", at);
            (await late.Invoking(l => l.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeOfType(refusal);
        }

        var dispatched = batches.SelectMany(b => b.Items).ToHashSet();
        foreach (var (item, call) in calls)
        {
            if (dispatched.Contains(item))
            {
                (await call.OrHang()).Should().Be(item);
            }
            else
            {
                ending.Should().NotBe(Ending.Completed, "a drain dispatches every accepted item (item {0})", item);
                await call.Invoking(c => c.OrHang()).Should().ThrowExactlyAsync<ClosedException>("item {0} was pending at the end", item);
            }
        }

        time.Advance(maxDelay);
        dispatch.Batches.Should().HaveCount(batches.Length, "a MaxDelay timer armed before the end cuts nothing after it");
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports BufferWithTime_TickWhileOnCompleted (Observable.Return(1).Buffer(1 ms, 2 ms): the observer of the buffer
    // emitted at OnCompleted advances the scheduler by 1 ms, the window's tick, and nothing may throw). Here one item is
    // submitted with MaxDelay 1 ms and the batcher is closed (Drain) at once: the drained batch's dispatch moves the clock
    // 1 ms, so the MaxDelay timer its item armed falls due, inside the dispatch and during the close, and fires there. The
    // close completes, the caller gets its answer, and the timer cuts no second (empty) batch.
    [Fact]
    public async Task ADispatchOfTheDrainedBatch_ThatMovesTheClockPastItsMaxDelay_FiresTheTimerHarmlessly_AndTheCloseCompletes()
    {
        var time = new ManualTimeProvider();
        var batches = new ConcurrentQueue<int[]>();
        var armed = new ConcurrentQueue<(int Before, int After)>();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batches.Enqueue(batch.Items.ToArray());
                var before = time.ArmedTimers;
                time.Advance(TimeSpan.FromMilliseconds(1));
                armed.Enqueue((before, time.ArmedTimers));
                batch.TrySetResult(0, batch[0]);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 64, MaxDelay = TimeSpan.FromMilliseconds(1), TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        await batcher.CloseAsync().OrHang();

        (await call.OrHang()).Should().Be(1);
        batches.Should().ContainSingle().Which.Should().Equal(1);
        var (before, after) = armed.Should().ContainSingle().Subject;
        after.Should().Be(before - 1, "the item's MaxDelay timer was armed and fired inside the dispatch");
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
        time.Advance(TimeSpan.FromMilliseconds(1));
        batches.Should().ContainSingle("nothing is left to cut");
    }

    // Ports BufferWithTimeOrCount_ArgumentChecking (count 0 and a time span of -1 tick are refused with
    // ArgumentOutOfRangeException) at the bounds on both sides: a MaxBatchSize of 1 and a MaxDelay of zero are accepted,
    // as Rx accepts a count of 1 and a zero span. DIFFERENCE BY DESIGN: the longest MaxDelay is the longest span a timer
    // takes (4,294,967,294 ms); a millisecond more is refused, where Rx takes any span.
    [Theory]
    [InlineData(0, 700_000L, "MaxBatchSize")]
    [InlineData(1, 700_000L, null)]
    [InlineData(3, -1L, "MaxDelay")]
    [InlineData(3, 0L, null)]
    [InlineData(3, 42_949_672_940_000L, null)]
    [InlineData(3, 42_949_672_950_000L, "MaxDelay")]
    public void MaxBatchSizeAndMaxDelay_AreValidatedAtTheirBounds_NamingTheOption(int maxBatchSize, long maxDelayTicks, string? refused)
    {
        var create = () => new Batcher<int, int>(
            BatcherHandlers.Echo,
            new BatcherOptions { MaxBatchSize = maxBatchSize, MaxDelay = TimeSpan.FromTicks(maxDelayTicks), TimeProvider = new ManualTimeProvider() });

        if (refused is null)
        {
            create.Should().NotThrow();
        }
        else
        {
            create.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*BatcherOptions.{refused}*");
        }
    }

    /// <summary>Reads "tick:a,b tick:c" as the times (in milliseconds) and item lists of a trace.</summary>
    private static (int At, int[] Items)[] Parse(string trace) => trace
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)
        .Select(entry => entry.Split(':'))
        .Select(parts => (
            int.Parse(parts[0], CultureInfo.InvariantCulture) * MsPerTick,
            parts[1].Split(',').Select(item => int.Parse(item, CultureInfo.InvariantCulture)).ToArray()))
        .ToArray();

    private static (Batcher<int, int> Batcher, HeldBatchDispatch Dispatch, ManualTimeProvider Time) NewBatcher(
        int maxBatchSize, TimeSpan maxDelay, BatcherShutdownMode mode)
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions { MaxBatchSize = maxBatchSize, MaxDelay = maxDelay, ShutdownMode = mode, TimeProvider = time });
        return (batcher, dispatch, time);
    }
}
