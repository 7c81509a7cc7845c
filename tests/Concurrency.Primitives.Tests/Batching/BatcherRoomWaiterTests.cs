using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>Back-pressure: callers waiting for room never strand one another (invariant 6, and "no waiter is orphaned").</summary>
public sealed class BatcherRoomWaiterTests
{
    [Fact]
    public async Task ARoomWaiterThatGivesUpAsItIsGrantedRoom_PassesTheRoomToTheNextWaiter()
    {
        // Item 1 holds the only dispatch slot, item 2 fills the queue; W1 and W2 wait for room. When item 1's dispatch
        // returns, cutting item 2 grants the room to W1, and item 2's dispatch (run inline, on the same thread, right
        // after the grant) cancels W1's token before W1 can take the room. W2 must then get it. (A waiter released by
        // its deadline gives up through the same path; the systematic tests interleave both.)
        var time = new ManualTimeProvider(); // no deadline passes: W2 is not released by its bound
        using var releaseFirst = new ManualResetEventSlim();
        using var w1Cancellation = new CancellationTokenSource();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                switch (batch[0])
                {
                    case 1:
                        releaseFirst.Wait(Bounded.HangLimit); // a gate: returns synchronously, so item 2 runs inline next
                        break;
                    case 2:
#pragma warning disable VSTHRD103 // synchronously, on purpose: W1 must give up before any other thread runs
                        w1Cancellation.Cancel();
#pragma warning restore VSTHRD103
                        break;
                }

                batch.TrySetResult(0, batch[0]);
                return default;
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                Capacity = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(3),
                TimeProvider = time,
            });

        var first = batcher.SubmitAsync(1).AsTask();
        var second = batcher.SubmitAsync(2).AsTask();
        var w1 = batcher.SubmitAsync(3, w1Cancellation.Token).AsTask();
        var w2 = batcher.SubmitAsync(4).AsTask();
        w1.IsCompleted.Should().BeFalse("the queue is full");
        w2.IsCompleted.Should().BeFalse("the queue is full");

        releaseFirst.Set();

        (await first.OrHang()).Should().Be(1);
        (await second.OrHang()).Should().Be(2);
        await w1.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        (await w2.OrHang()).Should().Be(4, "the room W1 gave up passes to W2, although nothing else happens in the batcher");
    }
}
