using System;
using System.Collections.Generic;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>The pooled per-item wait: invariant 1 of design.md section 3 across the item's reuse.</summary>
public sealed class BatchItemTests
{
    [Fact]
    public async Task ADeadlineTimerThatFiresLate_CannotAnswerTheItemsNextUse()
    {
        // ITimer.Dispose does not wait for a callback that has already started: a deadline timer of one use of a pooled
        // item can run after that use was answered, consumed and recycled. It must find the next use and leave it alone.
        var owner = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default);
        var time = new CallbackCapturingTimeProvider();
        BatchItem<int, int>? returned = null;

        var item = BatchItem<int, int>.Rent(owner, ref returned);
        item.Initialize(1, deadline: 0, CancellationToken.None);
        item.ArmOwnDeadline(time, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        item.TrySetResult(10).Should().BeTrue();
        (await new ValueTask<int>(item, item.Version)).Should().Be(10); // the caller lets go
        item.ReleaseByBatcher();                                          // and the batcher: recycled into this thread's cache

        var next = BatchItem<int, int>.Rent(owner, ref returned);
        next.Should().BeSameAs(item);
        next.Initialize(2, deadline: 0, CancellationToken.None);
        time.FireAllCaptured(); // the first use's timer, disposed when that use was answered, fires now

        next.IsCompleted.Should().BeFalse("a late timer of the first use must not answer the second");
        next.TrySetResult(20).Should().BeTrue();
        (await new ValueTask<int>(next, next.Version)).Should().Be(20);
    }

    [Fact]
    public async Task ARecycledItem_HoldsNoReferenceToItsBatcher()
    {
        // Thread caches of pooled items outlive batchers: an item kept for reuse must not keep its last batcher alive.
        var owner = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default);
        BatchItem<int, int>? returned = null;
        var item = BatchItem<int, int>.Rent(owner, ref returned);
        item.Initialize(1, deadline: 0, CancellationToken.None);
        item.TrySetResult(10).Should().BeTrue();
        item.ReleaseByBatcher();
        (await new ValueTask<int>(item, item.Version)).Should().Be(10);

        typeof(BatchItem<int, int>).GetField("_owner", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(item).Should().BeNull();
    }

    /// <summary>Keeps every timer's callback, so that a test can run it as if it had started before the timer was disposed.</summary>
    private sealed class CallbackCapturingTimeProvider : TimeProvider
    {
        private readonly List<(TimerCallback Callback, object? State)> _captured = new();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            _captured.Add((callback, state));
            return new InertTimer();
        }

        public void FireAllCaptured()
        {
            foreach (var (callback, state) in _captured)
            {
                callback(state);
            }
        }

        private sealed class InertTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => default;
        }
    }
}
