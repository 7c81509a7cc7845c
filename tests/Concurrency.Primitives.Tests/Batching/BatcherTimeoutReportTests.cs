using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// A running dispatch's bound is its own DispatchTimeout or its last caller's Timeout, whichever passes first; the sweep
/// tells each caller which one it was. When the callers' bound passed first, each is told its own bound passed
/// (<see cref="BatchTimeoutException.DispatchTimedOut"/> false, <see cref="BatchTimeoutException.Timeout"/> the caller's
/// Timeout), and the dispatch, which nobody waits for any more, has its token cancelled as an abandoned one.
/// </summary>
public sealed class BatcherTimeoutReportTests
{
    [Theory]
    [InlineData(-1)]  // DispatchTimeout infinite
    [InlineData(600)] // DispatchTimeout 10 min, far longer than the caller's 10 s
    public async Task ACallerReleasedAtItsOwnBound_IsNotToldItsDispatchRanPastDispatchTimeout(int dispatchTimeoutSeconds)
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var entered = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken token) =>
            {
                entered.TrySetResult(token);
                return new ValueTask(Bounded.NewGate().Task.WaitAsync(token));
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = dispatchTimeoutSeconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(dispatchTimeoutSeconds),
                TimeProvider = time,
                Logger = log,
            });

        time.Advance(TimeSpan.FromDays(1)); // timestamps far from zero: the dispatch's age is a difference of two of them
        var call = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(10)); // the caller's bound; the dispatch's own timeout is far away (or none)

        var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(10), "the bound that passed is the caller's Timeout");
        timeout.DispatchTimedOut.Should().BeFalse("the dispatch did not run past its DispatchTimeout; its caller's own bound passed");
        timeout.WasDispatched.Should().BeTrue();
        (await entered.Task).IsCancellationRequested.Should().BeTrue("every caller has gone: the dispatch is abandoned");
        await batcher.CloseAsync().OrHang(); // the dispatch has ended with its cancellation
        log.Entries.Should().Contain(e => e.EventId == 3010, "an abandoned dispatch that ends with its cancellation says so");
        log.Entries.Should().NotContain(e => e.EventId == 3001 || e.EventId == 3004, "it neither failed nor ran past its own timeout");
    }

    /// <summary>
    /// Two dispatches whose callers' bound passes at the same instant are both abandoned by the one sweep that finds
    /// them: each has its token cancelled, not only the last one the sweep looked at.
    /// </summary>
    [Fact]
    public async Task TwoDispatchesWhoseCallersBoundPassesInOneSweep_AreBothAbandoned()
    {
        var time = new ManualTimeProvider();
        var first = Bounded.NewGate<CancellationToken>();
        var second = Bounded.NewGate<CancellationToken>();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> batch, CancellationToken token) =>
            {
                (batch[0] == 1 ? first : second).TrySetResult(token);
                return new ValueTask(Bounded.NewGate().Task.WaitAsync(token));
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                MaxConcurrency = 2,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = Timeout.InfiniteTimeSpan,
                TimeProvider = time,
            });

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() }; // the same instant: the same bound
        var tokens = new[] { await first.Task.OrHang(), await second.Task.OrHang() };
        time.Advance(TimeSpan.FromSeconds(10)); // one sweep finds both dispatches past their callers' bound

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeFalse();
        }

        tokens.Should().OnlyContain(token => token.IsCancellationRequested, "nobody waits for either dispatch any more");
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>
    /// A caller that waits for room is told at its bound that its item was never dispatched, also when the item it was
    /// given is a recycled one: an item's ring index is its last use's until it is admitted, and an index the cut has
    /// passed would otherwise read as "dispatched". Four warm-up items are outstanding at once and their answers read on
    /// this thread, after each dispatch's answer let go of the batcher's hold, so all four come back to this thread's pool
    /// (batches of one on two loops: items are pooled, never left in their ring cells); the four submits that follow run on
    /// this thread too, with no await between them, and take those items.
    /// </summary>
    [Fact]
    public async Task ACallerWaitingForRoom_GivenARecycledItem_IsToldAtItsBoundThatItWasNeverDispatched()
    {
        var time = new ManualTimeProvider();
        var running = 0;
        var letGo = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> batch, CancellationToken _) =>
            {
                if (batch[0] >= 10)
                {
                    Interlocked.Increment(ref running);
                    await letGo.Task;
                }

                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 2, Capacity = 1, MaxDelay = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(10), TimeProvider = time });

#pragma warning disable CA2012 // each is read once, below, on this thread (the point: their items come back here)
        var warm = new[] { batcher.SubmitAsync(0), batcher.SubmitAsync(1), batcher.SubmitAsync(2), batcher.SubmitAsync(3) };
#pragma warning restore CA2012
        for (var i = 0; i < warm.Length; i++)
        {
            Bounded.UntilOnThisThread(() => warm[i].IsCompleted, "the warm-up items' answers");
            ReadHere(warm[i]).Should().Be(i);
        }

        var dispatched = new[] { batcher.SubmitAsync(10).AsTask(), batcher.SubmitAsync(11).AsTask() };
        Bounded.UntilOnThisThread(() => Volatile.Read(ref running) == 2, "both dispatches running");
        var queued = batcher.SubmitAsync(12).AsTask();
        batcher.Count.Should().Be(1);
        var waiting = batcher.SubmitAsync(13).AsTask(); // no room: it waits, with a timer of its own for its bound
        time.Advance(TimeSpan.FromSeconds(10));

        var timeout = (await waiting.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.WasDispatched.Should().BeFalse("the item never left the line of callers waiting for room");
        timeout.Message.Should().Contain("never dispatched");
        (await queued.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        foreach (var call in dispatched)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        }

        letGo.TrySetResult();
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>Reads the completed <paramref name="answer"/> on this thread, so that its item comes back to this thread's pool.</summary>
    private static int ReadHere(ValueTask<int> answer)
    {
        answer.IsCompleted.Should().BeTrue();
#pragma warning disable VSTHRD002 // completed already: the read on this thread, not a wait, is the point
        return answer.Result;
#pragma warning restore VSTHRD002
    }
}
