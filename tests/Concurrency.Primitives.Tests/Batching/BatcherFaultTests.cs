using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>Invariants 1-3, 5 and 9 of src/Concurrency.Primitives/Batching/README.md: every waiter is answered, whatever the dispatch does.</summary>
public sealed class BatcherFaultTests
{
    private static BatcherOptions Options(TimeProvider? time = null, int size = 4) => new()
    {
        MaxBatchSize = size,
        MaxDelay = TimeSpan.FromHours(1), // only the size trigger, unless a test moves the clock
        TimeProvider = time,
    };

    [Fact]
    public async Task DispatchThrowingAfterAnsweringHalf_AnsweredKeepTheirResults_TheRestGetTheWrappedFault()
    {
        var batcher = new Batcher<int, string>(
            (batch, _) =>
            {
                batch.TrySetResult(0, "zero");
                batch.TrySetResult(1, "one");
                throw new InvalidOperationException("database stalled");
            },
            Options());

        var calls = Enumerable.Range(0, 4).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await calls[0].OrHang()).Should().Be("zero");
        (await calls[1].OrHang()).Should().Be("one");
        foreach (var call in calls.Skip(2))
        {
            var fault = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which;
            fault.InnerException!.Message.Should().Be("database stalled");
            fault.BatchSize.Should().Be(4);
        }

        (await calls[3].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which.Index.Should().Be(3);
    }

    [Fact]
    public async Task AsyncDispatchFaultingPartWay_ReleasesEveryUnansweredWaiter()
    {
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                batch.TrySetResult(0, 0);
                await Task.Yield();
                throw new TimeoutException("downstream");
            },
            Options(size: 3));

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await calls[0].OrHang()).Should().Be(0);
        await calls[1].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>();
        await calls[2].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>();
    }

    [Fact]
    public async Task DispatchAnsweringNothing_FailsEveryItemWithNotCompleted()
    {
        var batcher = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, Options(size: 2));

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>())
                .Which.Message.Should().Contain("returned without completing");
        }
    }

    [Fact]
    public async Task AnsweringAnIndexTwice_FirstAnswerWins_AndTheSecondReportsFalse()
    {
        var secondAnswers = new List<bool>();
        var batcher = new Batcher<int, string>(
            (batch, _) =>
            {
                batch.TrySetResult(0, "first").Should().BeTrue();
                secondAnswers.Add(batch.TrySetResult(0, "second"));
                secondAnswers.Add(batch.TrySetException(0, new InvalidOperationException()));
                batch.TrySetResult(1, "other");
                return default;
            },
            Options(size: 2));

        var first = batcher.SubmitAsync(1).AsTask();
        var second = batcher.SubmitAsync(2).AsTask();

        (await first.OrHang()).Should().Be("first");
        (await second.OrHang()).Should().Be("other");
        secondAnswers.Should().Equal(false, false);
    }

    [Fact]
    public async Task ResultListShorterThanTheBatch_FailsEveryItem()
    {
        var batcher = new Batcher<int, int>(
            (items, _) => new ValueTask<IReadOnlyList<int>>(items.Take(2).ToArray()),
            Options(size: 3));

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        foreach (var call in calls)
        {
            var failure = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>()).Which;
            failure.ResultCount.Should().Be(2);
            failure.Message.Should().Contain("returned 2 result(s) for a batch of 3");
        }
    }

    [Fact]
    public async Task ResultList_MapsResultsToItemsByPosition_InSubmitOrder()
    {
        var batcher = new Batcher<int, int>(
            (items, _) => new ValueTask<IReadOnlyList<int>>(items.Select(i => i * 10).ToArray()),
            Options(size: 4));

        var calls = Enumerable.Range(1, 4).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(10, 20, 30, 40);
    }

    [Fact]
    public async Task AHungDispatch_HasItsTokenCancelledAtTheDispatchTimeout_AndItsWaitersReleased()
    {
        var time = new ManualTimeProvider();
        var tokenCancelled = Bounded.NewGate();
        var dispatchEntered = Bounded.NewGate();
        var options = Options(time, size: 2);
        options.DispatchTimeout = TimeSpan.FromSeconds(2);
        var batcher = new Batcher<int, int>(
            (_, token) =>
            {
                token.Register(() => tokenCancelled.TrySetResult());
                dispatchEntered.SetResult();
                return new ValueTask(Bounded.NewGate().Task); // never returns
            },
            options);

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await dispatchEntered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));

        await tokenCancelled.Task.OrHang();
        foreach (var call in calls)
        {
            var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
            timeout.WasDispatched.Should().BeTrue();
        }
    }

    [Fact]
    public async Task AnItemSubmittedWhileEverySlotIsHeldByAHungDispatch_IsStillReleasedAtItsDeadline()
    {
        // The one slot is held by a dispatch that ignores its token; an item submitted after that dispatch timed out
        // waits on the submit stack for a dispatch that never finishes. The sweep must still look at it by its deadline.
        var time = new ManualTimeProvider();
        var dispatchEntered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (_, _) =>
            {
                dispatchEntered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // never returns
            },
            new BatcherOptions
            {
                MaxBatchSize = 1,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(30),
                DispatchTimeout = TimeSpan.FromSeconds(2),
                TimeProvider = time,
            });

        var hung = batcher.SubmitAsync(1).AsTask();
        await dispatchEntered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));
        (await hung.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();

        var waiting = batcher.SubmitAsync(2).AsTask();
        time.Advance(TimeSpan.FromSeconds(29));
        waiting.IsCompleted.Should().BeFalse("its bound has not passed yet");
        time.Advance(TimeSpan.FromSeconds(1));

        (await waiting.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
    }

    [Fact]
    public async Task TheDispatchToken_CarriesTheRemainingBoundOfItsCallers()
    {
        var time = new ManualTimeProvider();
        var tokenCancelled = Bounded.NewGate();
        var dispatchEntered = Bounded.NewGate();
        var options = Options(time, size: 1);
        options.Timeout = TimeSpan.FromSeconds(10);
        options.DispatchTimeout = TimeSpan.FromMinutes(10); // longer than the callers' bound
        var batcher = new Batcher<int, int>(
            (_, token) =>
            {
                token.Register(() => tokenCancelled.TrySetResult());
                dispatchEntered.SetResult();
                return new ValueTask(Bounded.NewGate().Task);
            },
            options);

        var call = batcher.SubmitAsync(1).AsTask();
        await dispatchEntered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(9));
        tokenCancelled.Task.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromSeconds(1));

        await tokenCancelled.Task.OrHang();
        await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
    }

    [Fact]
    public async Task ACallerInAnOlderRunningBatch_IsReleasedAtItsBound_ThoughAYoungerBatchOnAnotherLoopStillHasTime()
    {
        // Two loops. Batch B (items at t=1 s and t=5 s) runs on the second loop; batch C (t=6 s) is cut later by the
        // first loop, which the sweep looks at first. B's first caller must be released at its own bound (t=11 s), not
        // when B's dispatch runs out (t=15 s) because C's callers still have time.
        var time = new ManualTimeProvider();
        var holds = new Dictionary<int, TaskCompletionSource>
        {
            [1] = Bounded.NewGate(),
            [10] = Bounded.NewGate(),
            [20] = Bounded.NewGate(),
        };
        var entered = new Dictionary<int, TaskCompletionSource>
        {
            [1] = Bounded.NewGate(),
            [10] = Bounded.NewGate(),
            [20] = Bounded.NewGate(),
        };
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered[batch[0]].TrySetResult();
                await holds[batch[0]].Task;
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }
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

        var a = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await entered[1].Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(1));
        var b1 = batcher.SubmitAsync(10).AsTask();
        time.Advance(TimeSpan.FromSeconds(4));
        var b2 = batcher.SubmitAsync(11).AsTask();
        await entered[10].Task.OrHang();
        holds[1].SetResult();
        await Task.WhenAll(a).OrHang();
        time.Advance(TimeSpan.FromSeconds(1));
        var c = new[] { batcher.SubmitAsync(20).AsTask(), batcher.SubmitAsync(21).AsTask() };
        await entered[20].Task.OrHang();

        time.Advance(TimeSpan.FromSeconds(5)); // t = 11 s: b1's bound (B's dispatch runs out at 15 s, and the clock stays here)

        (await b1.Invoking(t => t.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeFalse();
        b2.IsCompleted.Should().BeFalse();
        holds[10].SetResult();
        holds[20].SetResult();
        (await b2.OrHang()).Should().Be(11);
        (await Task.WhenAll(c).OrHang()).Should().Equal(20, 21);
    }
}
