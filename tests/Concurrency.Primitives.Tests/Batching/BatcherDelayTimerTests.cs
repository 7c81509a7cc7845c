using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariants 6 and 11 of src/Concurrency.Primitives/Batching/README.md, from the dispatch loop's side: a loop that looks
/// at a partial batch before its first item's MaxDelay has passed leaves it, and arms the MaxDelay timer for it, rather
/// than cutting it early; the batch is dispatched when that timer fires, not a tick sooner.
/// </summary>
public sealed class BatcherDelayTimerTests
{
    /// <summary>
    /// MaxDelay and Timeout are converted to the clock's units exactly: a partial batch is cut, and a caller released,
    /// when the span has passed, not a unit later (35, 70 and 101 ms once became a tick more on a clock counting
    /// TimeSpan ticks, so the cut and the release waited for the clock to pass the span).
    /// </summary>
    [Theory]
    [InlineData(35)]
    [InlineData(70)]
    [InlineData(100)]
    [InlineData(101)]
    public async Task APartialBatch_IsCutWhenMaxDelayHasPassed_AndACallerReleasedWhenTimeoutHas_NotATickLater(int milliseconds)
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        dispatch.OpenAll();
        await using var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions { MaxBatchSize = 3, MaxDelay = TimeSpan.FromMilliseconds(milliseconds), TimeProvider = time });

        var call = batcher.SubmitAsync(1).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(milliseconds));

        (await dispatch.NextAsync()).Items.Should().Equal(1);
        (await call.OrHang()).Should().Be(1);

        var held = new HeldBatchDispatch();
        await using var bounded = new Batcher<int, int>(
            held.DispatchAsync,
            new BatcherOptions { MaxBatchSize = 1, Timeout = TimeSpan.FromMilliseconds(milliseconds), TimeProvider = time });
        var waiting = bounded.SubmitAsync(2).AsTask();
        await held.NextAsync(); // dispatched, and held
        time.Advance(TimeSpan.FromMilliseconds(milliseconds));

        await waiting.Awaiting(w => w.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        held.OpenAll();
    }

    /// <summary>
    /// Guards TryCut's "not full and not due" branch and ArmDelay: a loop woken by a timer armed for an earlier batch
    /// finds the next batch not yet due, leaves it, and arms the timer for that batch's first item.
    /// </summary>
    [Fact]
    public async Task ALoopThatFindsAPartialBatchNotYetDue_LeavesIt_AndArmsTheTimerForItsFirstItem()
    {
        var time = new ManualTimeProvider();
        var batches = new ConcurrentQueue<int[]>();
        var thirdDispatched = Bounded.NewGate();
        var batcher = NewBatcher(time, batches, thirdDispatched);

        var first = batcher.SubmitAsync(1).AsTask();  // t = 0: the MaxDelay timer is armed for t = 5 s
        var second = batcher.SubmitAsync(2).AsTask(); // the batch is full: cut and dispatched at once
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(1, 2);
        time.ArmedTimers.Should().Be(1, "the timer armed for item 1 is still on the clock");

        time.Advance(TimeSpan.FromSeconds(2));
        var third = batcher.SubmitAsync(3).AsTask();  // t = 2 s: a new batch, due at t = 7 s
        time.Advance(TimeSpan.FromSeconds(3));        // t = 5 s: the timer armed for item 1 fires, and a loop looks at item 3's batch

        // The loop either cuts the batch (too early) or arms the timer again for it: wait for whichever it does.
        await Task.WhenAny(time.WhenTimersArmed(), thirdDispatched.Task).OrHang();
        thirdDispatched.Task.IsCompleted.Should().BeFalse("item 3 arrived at t = 2 s: its batch is not due before t = 7 s");

        time.Advance(TimeSpan.FromSeconds(2) - TimeSpan.FromTicks(1));
        thirdDispatched.Task.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromTicks(1));          // t = 7 s: the timer the loop armed fires

        (await third.OrHang()).Should().Be(3);
        batches.Should().BeEquivalentTo(new[] { new[] { 1, 2 }, new[] { 3 } }, o => o.WithStrictOrdering());
    }

    /// <summary>
    /// Guards the loop's exit (LeaveLoop, IsCutDue) and the timer's record of its due time: a loop that finishes a
    /// dispatch, finds the next batch partial and not yet due (its timer having fired for the batch before), arms the
    /// timer for it and really leaves — it does not keep re-reading the clock until the batch falls due — and the timer
    /// is armed once per batch, not again by a later submit while it waits.
    /// </summary>
    [Fact]
    public async Task ALoopThatLeavesAPartialBatchToTheTimer_ArmsItOnce_AndDoesNotKeepLookingAtIt()
    {
        var time = new ManualTimeProvider();
        var clock = new WatchedClock(time);
        var batches = new ConcurrentQueue<int[]>();
        var thirdDispatched = Bounded.NewGate();
        var holdFirst = Bounded.NewGate();
        var batcher = NewBatcher(clock, batches, thirdDispatched, holdFirst);

        var first = batcher.SubmitAsync(1).AsTask();  // t = 0: the MaxDelay timer is armed for t = 5 s
        var second = batcher.SubmitAsync(2).AsTask(); // the batch is full: cut, and its dispatch held
        time.Advance(TimeSpan.FromSeconds(2));
        var third = batcher.SubmitAsync(3).AsTask();  // t = 2 s: a new batch, due at t = 7 s; the timer (t = 5 s) covers it
        time.Advance(TimeSpan.FromSeconds(3));        // t = 5 s: the timer fires; the only loop is busy, so nobody looks yet
        clock.WatchTheNextArming();
        holdFirst.SetResult();                        // the loop finishes the first batch, looks at item 3's, arms the timer for it
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(1, 2);
        await Task.WhenAny(time.WhenTimersArmed(), thirdDispatched.Task).OrHang();
        thirdDispatched.Task.IsCompleted.Should().BeFalse("item 3's batch is not due before t = 7 s");

        clock.StopWatching().Should().Be(0, "once it has armed the timer for the batch, the loop leaves it: it reads the clock no more");
        time.Advance(TimeSpan.FromSeconds(2));        // t = 7 s
        (await third.OrHang()).Should().Be(3);

        clock.Armings.Should().Be(2, "the timer was armed once for item 1's batch and once for item 3's");
        batches.Should().BeEquivalentTo(new[] { new[] { 1, 2 }, new[] { 3 } }, o => o.WithStrictOrdering());
    }

    /// <summary>
    /// Batches of two, MaxDelay 5 s, no bounds (no deadline sweep: the MaxDelay timer is the only timer on the clock);
    /// the first batch's dispatch waits for <paramref name="holdFirst"/>, if given.
    /// </summary>
    private static Batcher<int, int> NewBatcher(TimeProvider time, ConcurrentQueue<int[]> batches, TaskCompletionSource thirdDispatched, TaskCompletionSource? holdFirst = null) => new(
        async (IReadOnlyList<int> items, CancellationToken _) =>
        {
            var copy = items.ToArray();
            batches.Enqueue(copy);
            if (copy.Contains(3))
            {
                thirdDispatched.TrySetResult();
            }

            if (copy.Contains(1) && holdFirst is not null)
            {
                await holdFirst.Task;
            }

            return copy;
        },
        new BatcherOptions
        {
            MaxBatchSize = 2,
            MaxDelay = TimeSpan.FromSeconds(5),
            Timeout = Timeout.InfiniteTimeSpan,
            DispatchTimeout = Timeout.InfiniteTimeSpan,
            TimeProvider = time,
        });

    /// <summary>
    /// The manual clock, seen through a provider that counts how often its timers are armed, and how often the thread
    /// that arms a timer, once watched, reads the clock afterwards.
    /// </summary>
    private sealed class WatchedClock(ManualTimeProvider inner) : TimeProvider
    {
        private int _armings;
        private int _watchNext;
        private int _watchedThread = -1;
        private int _readsByWatchedThread;

        public int Armings => Volatile.Read(ref _armings);

        public override long TimestampFrequency => inner.TimestampFrequency;

        /// <summary>The thread that next arms a timer is watched: its later reads of the clock are counted.</summary>
        public void WatchTheNextArming() => Volatile.Write(ref _watchNext, 1);

        /// <summary>Stops counting; returns how often the watched thread read the clock after it armed the timer.</summary>
        public int StopWatching()
        {
            Volatile.Write(ref _watchedThread, -1);
            return Volatile.Read(ref _readsByWatchedThread);
        }

        public override long GetTimestamp()
        {
            if (Volatile.Read(ref _watchedThread) == Environment.CurrentManagedThreadId)
            {
                Interlocked.Increment(ref _readsByWatchedThread);
            }

            return inner.GetTimestamp();
        }

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            new CountingTimer(this, inner.CreateTimer(callback, state, dueTime, period));

        private void OnArming()
        {
            Interlocked.Increment(ref _armings);
            if (Interlocked.Exchange(ref _watchNext, 0) == 1)
            {
                Volatile.Write(ref _watchedThread, Environment.CurrentManagedThreadId);
            }
        }

        private sealed class CountingTimer(WatchedClock owner, ITimer timer) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                owner.OnArming();
                return timer.Change(dueTime, period);
            }

            public void Dispose() => timer.Dispose();

            public ValueTask DisposeAsync() => timer.DisposeAsync();
        }
    }
}
