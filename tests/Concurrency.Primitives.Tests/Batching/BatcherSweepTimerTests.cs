using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.Tests.TestSupport.BatcherHandlers;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariants 4, 5, 12 and 14 of src/Concurrency.Primitives/Batching/README.md, from the deadline sweep's side (one timer
/// for the whole batcher): it releases each caller exactly at its bound, walks past callers that already gave up, comes
/// back for the next bound it saw (a queued caller's, a running caller's, a dispatch's), gives up a dispatch whose last
/// caller it released, and is armed only when something has a bound.
/// </summary>
public sealed class BatcherSweepTimerTests
{
    /// <summary>
    /// Guards the queue walk: a cancelled item at the head is skipped, not taken as the first item still within its
    /// bound; the sweep comes back for the items behind it, releases every expired one, and then arms nothing more.
    /// </summary>
    [Fact]
    public async Task ACancelledItemAtTheHeadOfTheQueue_DoesNotStopTheSweep_FromReleasingTheExpiredItemsBehindIt()
    {
        var name = "sweep-" + Guid.NewGuid().ToString("N");
        using var timeouts = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher.timeouts");
        var time = new ManualTimeProvider();
        var batcher = new Batcher<int, int>(Echo, Queueing(time, name));
        using var cancel = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(1, cancel.Token).AsTask(); // t = 0: the sweep is armed for its bound, t = 30 s
        await cancel.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.Advance(TimeSpan.FromSeconds(5));
        var second = batcher.SubmitAsync(2);                      // t = 5 s: bounds at t = 35 s
        var third = batcher.SubmitAsync(3);

        time.Advance(TimeSpan.FromSeconds(25));                   // t = 30 s: the sweep passes the cancelled item and comes back at t = 35 s
        second.IsCompleted.Should().BeFalse();
        third.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromSeconds(5));                    // t = 35 s

        second.IsCompleted.Should().BeTrue();
        third.IsCompleted.Should().BeTrue();
        (await second.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        (await third.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        timeouts.GetMeasurementSnapshot().Where(m => (string?)m.Tags["batcher.name"] == name).Select(m => m.Value).Should().Equal(2);
        time.ArmedTimers.Should().Be(1, "only the MaxDelay timer is left: no queued caller has a bound to wait for");
    }

    /// <summary>Guards the walk's skip of answered items: a queued caller that gave up is no reason to come back.</summary>
    [Fact]
    public async Task TheSweep_IsNotArmedAgain_ForAQueuedCallerThatAlreadyGaveUp()
    {
        var time = new ManualTimeProvider();
        var batcher = new Batcher<int, int>(Echo, Queueing(time));
        using var cancel = new CancellationTokenSource();

        var expiring = batcher.SubmitAsync(1);                     // t = 0: bound t = 30 s
        time.Advance(TimeSpan.FromSeconds(10));
        var gone = batcher.SubmitAsync(2, cancel.Token).AsTask(); // t = 10 s: bound t = 40 s, but it gives up now
        await cancel.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        time.Advance(TimeSpan.FromSeconds(20));                   // t = 30 s

        expiring.IsCompleted.Should().BeTrue();
        await expiring.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        time.ArmedTimers.Should().Be(1, "only the MaxDelay timer: the one caller left in the queue gave up, so no sweep is due");
    }

    /// <summary>
    /// Guards the sweep over a running batch: its earlier caller is released at its own bound (the batch still runs for
    /// its later caller), the walk over the batch stops at its end, and the sweep is armed again for the dispatch's own
    /// bound, which then cancels the dispatch. The second loop slot, never used, is passed over.
    /// </summary>
    [Fact]
    public async Task ACallerOfARunningBatch_IsReleasedAtItsOwnBound_AndTheSweepComesBackForTheDispatchsBound()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken token) =>
            {
                batch.TrySetResult(1, batch[1]); // answers the later caller at once, then waits for its token
                entered.TrySetResult(token);
                return new ValueTask(Bounded.NewGate().Task.WaitAsync(token));
            },
            new BatcherOptions
            {
                MaxBatchSize = 2,
                MaxConcurrency = 2,
                MaxDelay = TimeSpan.FromHours(1),
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
            });

        var first = batcher.SubmitAsync(1);             // t = 0: bound t = 10 s
        time.Advance(TimeSpan.FromSeconds(5));
        var second = batcher.SubmitAsync(2).AsTask();   // t = 5 s: the batch is full: dispatched, bounded by its last caller (t = 15 s)
        var token = await entered.Task.OrHang();
        (await second.OrHang()).Should().Be(2);

        time.Advance(TimeSpan.FromSeconds(5));          // t = 10 s
        first.IsCompleted.Should().BeTrue();
        var timeout = (await first.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.WasDispatched.Should().BeTrue();
        timeout.DispatchTimedOut.Should().BeFalse();
        token.IsCancellationRequested.Should().BeFalse("the dispatch's own bound is t = 15 s");

        time.Advance(TimeSpan.FromSeconds(5));          // t = 15 s
        token.IsCancellationRequested.Should().BeTrue();
    }

    /// <summary>Guards the sweep over a running batch's followers (coalescing): a follower is released at its own bound, not at the dispatch's.</summary>
    [Fact]
    public async Task AFollowerOfACoalescedSlot_IsReleasedAtItsOwnBound_WhileItsBatchStillRuns()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken token) =>
            {
                batch.TrySetResult(1, 80); // slot 1 (item 8); slot 0 (item 7) waits, as does the dispatch
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task.WaitAsync(token));
            },
            new BatcherOptions<int>
            {
                MaxBatchSize = 3,
                MaxDelay = TimeSpan.FromHours(1),
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
                CoalescingComparer = EqualityComparer<int>.Default,
            });

        var first = batcher.SubmitAsync(7);           // t = 0: bound t = 10 s
        time.Advance(TimeSpan.FromSeconds(1));
        var follower = batcher.SubmitAsync(7);        // t = 1 s: bound t = 11 s, shares item 7's slot
        time.Advance(TimeSpan.FromSeconds(4));
        var other = batcher.SubmitAsync(8).AsTask();  // t = 5 s: full: dispatched until its last caller's bound, t = 15 s
        await entered.Task.OrHang();
        (await other.OrHang()).Should().Be(80);

        time.Advance(TimeSpan.FromSeconds(5));        // t = 10 s
        first.IsCompleted.Should().BeTrue();
        follower.IsCompleted.Should().BeFalse("its bound is a second later");
        time.Advance(TimeSpan.FromSeconds(1));        // t = 11 s
        follower.IsCompleted.Should().BeTrue();

        (await first.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeFalse();
        var timeout = (await follower.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.DispatchTimedOut.Should().BeFalse();
        timeout.WasDispatched.Should().BeTrue();
    }

    /// <summary>Guards the dispatch's bound when callers have none (Timeout infinite): DispatchTimeout alone still cancels the dispatch, exactly on time.</summary>
    [Fact]
    public async Task DispatchTimeout_CancelsTheDispatch_EvenWhenItsCallersHaveNoBound()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            WaitForToken(entered),
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Timeout = Timeout.InfiniteTimeSpan, DispatchTimeout = TimeSpan.FromSeconds(2), TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        var token = await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        token.IsCancellationRequested.Should().BeFalse();
        time.Advance(TimeSpan.FromTicks(1));

        token.IsCancellationRequested.Should().BeTrue();
        var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.DispatchTimedOut.Should().BeTrue();
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(2));
    }

    /// <summary>Guards the dispatch's bound when it has no timeout of its own (DispatchTimeout infinite): its callers' bound still cancels it (invariant 12).</summary>
    [Fact]
    public async Task TheCallersBound_CancelsTheDispatch_EvenWithoutADispatchTimeout()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            WaitForToken(entered),
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(10), DispatchTimeout = Timeout.InfiniteTimeSpan, TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        var token = await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromTicks(1));
        token.IsCancellationRequested.Should().BeFalse();
        time.Advance(TimeSpan.FromTicks(1));

        token.IsCancellationRequested.Should().BeTrue("the dispatch's token carries its caller's remaining bound");
        (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
    }

    /// <summary>Guards the "no bound" case: with Timeout and DispatchTimeout infinite (and MaxDelay zero) nothing is armed on the clock at all.</summary>
    [Fact]
    public async Task WithNoBoundAtAll_NoTimerIsArmed_WhileItemsWaitAndADispatchRuns()
    {
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
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Timeout = Timeout.InfiniteTimeSpan, DispatchTimeout = Timeout.InfiniteTimeSpan, TimeProvider = time });

        var running = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        var queued = batcher.SubmitAsync(2).AsTask();

        time.ArmedTimers.Should().Be(0, "no caller and no dispatch has a bound, and MaxDelay is zero");
        release.SetResult();
        (await Task.WhenAll(running, queued).OrHang()).Should().Equal(1, 2);
    }

    /// <summary>
    /// Guards the sweep's side of abandoned dispatches (invariant 14): when the caller it releases at its bound was the
    /// batch's last one (the other cancelled), the dispatch's token is cancelled at once, not at the dispatch's bound.
    /// </summary>
    [Fact]
    public async Task TheSweepReleasingTheLastCallerOfABatch_AbandonsItsDispatchAtOnce()
    {
        var name = "sweep-" + Guid.NewGuid().ToString("N");
        using var abandoned = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher.dispatch.abandoned");
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            WaitForToken(entered),
            new BatcherOptions
            {
                Name = name,
                MaxBatchSize = 2,
                MaxDelay = TimeSpan.FromHours(1),
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = TimeSpan.FromHours(1),
                TimeProvider = time,
            });
        using var leaving = new CancellationTokenSource();

        var staying = batcher.SubmitAsync(1);                        // t = 0: bound t = 10 s
        time.Advance(TimeSpan.FromSeconds(5));
        var gone = batcher.SubmitAsync(2, leaving.Token).AsTask();  // t = 5 s: full: dispatched until t = 15 s
        var token = await entered.Task.OrHang();
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        token.IsCancellationRequested.Should().BeFalse("item 1's caller still waits");

        time.Advance(TimeSpan.FromSeconds(5));                      // t = 10 s: the sweep releases item 1's caller, the last one

        token.IsCancellationRequested.Should().BeTrue("nobody waits for the dispatch any more: it is abandoned now, not at t = 15 s");
        abandoned.GetMeasurementSnapshot().Where(m => (string?)m.Tags["batcher.name"] == name).Select(m => m.Value).Should().Equal(1);
        staying.IsCompleted.Should().BeTrue();
        (await staying.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeFalse();
    }

    /// <summary>
    /// Guards the sweep against a batch it meets between its cut and its dispatch (a defect until this test): the sweep
    /// cannot take such a batch, so it re-arms for the batch's bound, its last caller's deadline; a first caller whose
    /// bound passed meanwhile must still be released at once when the batch is dispatched, not at that later bound. The
    /// test holds the loop between the two (the cut's admission of a caller waiting for room waits for the batcher's lock,
    /// which the test holds) and fires the sweep then, on the thread that holds the lock.
    /// </summary>
    [Fact]
    public async Task ACallerWhoseBoundPassesWhileItsBatchIsCut_IsReleasedAsTheBatchIsDispatched_NotAtTheBatchsLaterBound()
    {
        var time = new ManualTimeProvider();
        var holdFirst = Bounded.NewGate();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (batch[0] == 10)
                {
                    await holdFirst.Task.ConfigureAwait(false); // the first batch holds the only loop
                    batch.TrySetResult(0, 10);
                    batch.TrySetResult(1, 11);
                    return;
                }

                entered.TrySetResult(); // the second batch: dispatched, and never answered
                await Task.Delay(Timeout.Infinite, _).ConfigureAwait(false);
            },
            new BatcherOptions { MaxBatchSize = 2, Capacity = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromHours(1), Timeout = TimeSpan.FromSeconds(1), TimeProvider = time });
        var first = new[] { batcher.SubmitAsync(10).AsTask(), batcher.SubmitAsync(11).AsTask() }; // t = 0: cut, held in its dispatch
        var early = batcher.SubmitAsync(1);                           // t = 0: queued, bound t = 1 s
        time.Advance(TimeSpan.FromSeconds(0.5));
        var late = batcher.SubmitAsync(2);                            // t = 0.5 s: queued, bound t = 1.5 s; the batch is full
        var waiting = batcher.SubmitAsync(3).AsTask();                // the queue is full: waits for room
        var @lock = BatcherInternals.Lock(batcher);
        var cut = Bounded.NewGate();
        var holder = new Thread(() =>
        {
            try
            {
                lock (@lock)
                {
                    // The loop, let go, cuts [1, 2] and then waits for this lock to admit the waiting caller: the batch is
                    // cut and not yet dispatched. The sweep fires now (t = 1 s), here, and finds it so.
                    holdFirst.TrySetResult();
                    SpinWait.SpinUntil(() => BatcherInternals.CutIndex(batcher) == 4, Bounded.HangLimit).Should().BeTrue("the loop cuts the full batch");
                    time.Advance(TimeSpan.FromSeconds(0.5));
                    early.IsCompleted.Should().BeFalse("the sweep cannot take a batch that is being cut");
                }

                cut.TrySetResult();
            }
            catch (Exception exception)
            {
                cut.TrySetException(exception);
            }
        });
        holder.Start();
        await cut.Task.OrHang();
        await entered.Task.OrHang();                                   // the batch [1, 2] is dispatched

        // Still t = 1 s, and the clock stays there: caller 1's bound passed at t = 1 s and is kept (its batch's bound,
        // t = 1.5 s, is caller 2's). The sweep's timer, re-armed for a moment already past, fires on the pool.
        time.Advance(TimeSpan.Zero);
        (await early.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        late.IsCompleted.Should().BeFalse("caller 2's bound is t = 1.5 s");

        time.Advance(TimeSpan.FromSeconds(0.5));
        late.IsCompleted.Should().BeTrue();
        await late.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        (await Task.WhenAll(first).OrHang()).Should().Equal(10, 11);
        await waiting.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>("caller 3 waited for room from t = 0.5 s");
        await batcher.DisposeAsync();
    }

    /// <summary>Batches up to 10 items that wait an hour for MaxDelay: only the sweep moves them, at their 30 s bound.</summary>
    private static BatcherOptions Queueing(ManualTimeProvider time, string? name = null) => new()
    {
        Name = name,
        MaxBatchSize = 10,
        MaxDelay = TimeSpan.FromHours(1),
        Timeout = TimeSpan.FromSeconds(30),
        TimeProvider = time,
    };

    /// <summary>A dispatch that reports its token, then waits for nothing but that token.</summary>
    private static Func<Batch<int, int>, CancellationToken, ValueTask> WaitForToken(TaskCompletionSource<CancellationToken> entered) =>
        (_, token) =>
        {
            entered.TrySetResult(token);
            return new ValueTask(Bounded.NewGate().Task.WaitAsync(token));
        };

}
