using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Coalescing (BatcherOptions&lt;TItem&gt;.CoalescingComparer): callers of equal items within one batch share one slot;
/// each gets the slot's answer or its failure; a caller that gives up leaves the slot to the others; a slot leaves
/// the batch only when all of its callers have gone before the cut; off by default.
/// </summary>
public sealed class BatcherCoalescingTests
{
    private static BatcherOptions<string> Coalescing(int size, TimeProvider? time = null, TimeSpan? maxDelay = null) => new()
    {
        MaxBatchSize = size,
        MaxDelay = maxDelay ?? TimeSpan.FromHours(1), // only the size trigger, unless a test sets it
        TimeProvider = time,
        CoalescingComparer = StringComparer.OrdinalIgnoreCase,
    };

    [Fact]
    public async Task CallersOfEqualItems_ShareOneSlot_AndEachReceivesItsAnswer()
    {
        var dispatched = new List<string[]>();
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                dispatched.Add(batch.Items.ToArray());
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, $"{batch[i]}#{i}").Should().BeTrue();
                }

                return default;
            },
            Coalescing(size: 5));

        var calls = new[] { "a", "b", "A", "c", "a" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        (await Task.WhenAll(calls).OrHang()).Should().Equal("a#0", "b#1", "a#0", "c#2", "a#0");
        dispatched.Should().ContainSingle().Which.Should().Equal("a", "b", "c"); // the first caller's item stands for its slot, in submit order
    }

    [Fact]
    public async Task TheResultListForm_AnswersEveryCallerOfASlot()
    {
        var batcher = new Batcher<string, int>(
            (items, _) => new ValueTask<IReadOnlyList<int>>(items.Select(item => item.Length).ToArray()),
            new BatcherOptions<string> { MaxBatchSize = 4, MaxDelay = TimeSpan.FromHours(1), CoalescingComparer = StringComparer.Ordinal });

        var calls = new[] { "xx", "yyy", "xx", "xx" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(2, 3, 2, 2);
    }

    [Fact]
    public async Task WhenTheDispatchThrows_EveryCallerOfEverySlotGetsItsOwnWrappedFault()
    {
        var batcher = new Batcher<string, string>(
            (Batch<string, string> _, CancellationToken _) => throw new InvalidOperationException("database stalled"),
            Coalescing(size: 3));

        var calls = new[] { "k", "K", "z" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        var faults = new List<BatchDispatchException>();
        foreach (var call in calls)
        {
            faults.Add((await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which);
        }

        faults.Select(f => f.InnerException!.Message).Should().AllBe("database stalled");
        faults.Select(f => f.Index).Should().Equal(0, 0, 1); // the slot each caller shared
        faults.Should().OnlyHaveUniqueItems("each caller gets an exception of its own");
    }

    [Fact]
    public async Task WhenTheDispatchForgetsASlot_EveryCallerOfItFailsWithNotCompleted()
    {
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                batch.TrySetResult(1, "answered");
                return default; // slot 0 forgotten
            },
            Coalescing(size: 3));

        var calls = new[] { "k", "z", "K" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        (await calls[1].OrHang()).Should().Be("answered");
        await calls[0].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>();
        await calls[2].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>();
    }

    [Fact]
    public async Task WhenTheDispatchHangs_EveryCallerOfASlotIsReleasedAtTheDispatchTimeout()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var options = Coalescing(size: 2, time);
        options.DispatchTimeout = TimeSpan.FromSeconds(2);
        var batcher = new Batcher<string, string>(
            (_, _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // never returns
            },
            options);

        var calls = new[] { "k", "K" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeTrue();
        }
    }

    [Fact]
    public async Task ASlotFailedByTheDispatch_FailsEveryCallerOfIt_AndASecondAnswerChangesNothing()
    {
        var second = new List<bool>();
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                batch.TrySetException(0, new KeyNotFoundException("no such key")).Should().BeTrue();
                second.Add(batch.TrySetResult(0, "late"));
                second.Add(batch.TrySetException(0, new InvalidOperationException()));
                return default;
            },
            Coalescing(size: 2));

        var calls = new[] { "k", "K" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<KeyNotFoundException>()).Which.Message.Should().Be("no such key");
        }

        second.Should().Equal(false, false);
    }

    [Fact]
    public async Task ACoalescedCallerThatCancelsWhileTheSlotIsDispatched_LeavesTheOthersServed()
    {
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var answers = new List<bool>();
        var batcher = new Batcher<string, string>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                answers.Add(batch.TrySetResult(0, "value"));
            },
            Coalescing(size: 3));
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync("k", leaving.Token).AsTask();
        var staying = new[] { batcher.SubmitAsync("k").AsTask(), batcher.SubmitAsync("K").AsTask() };
        await entered.Task.OrHang();
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        release.SetResult();

        (await Task.WhenAll(staying).OrHang()).Should().Equal("value", "value");
        answers.Should().Equal(true);
    }

    [Fact]
    public async Task TheSlotsFirstCallerCancellingBeforeTheCut_LeavesTheSlotToTheCallersAfterIt()
    {
        var time = new ManualTimeProvider();
        var dispatched = new List<string[]>();
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                dispatched.Add(batch.Items.ToArray());
                batch.TrySetResult(0, "value");
                return default;
            },
            Coalescing(size: 10, time, maxDelay: TimeSpan.FromSeconds(1)));
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync("first", leaving.Token).AsTask();
        var staying = new[] { batcher.SubmitAsync("FIRST").AsTask(), batcher.SubmitAsync("First").AsTask() };
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        time.Advance(TimeSpan.FromSeconds(1)); // the batch's MaxDelay: it is cut now

        (await Task.WhenAll(staying).OrHang()).Should().Equal("value", "value");
        dispatched.Should().ContainSingle().Which.Should().Equal("FIRST");
    }

    [Fact]
    public async Task EveryCallerOfASlotCancellingBeforeTheCut_DropsTheSlotFromTheBatch()
    {
        var time = new ManualTimeProvider();
        var dispatched = new List<string[]>();
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                dispatched.Add(batch.Items.ToArray());
                batch.TrySetResult(0, "m's");
                return default;
            },
            Coalescing(size: 10, time, maxDelay: TimeSpan.FromSeconds(1)));
        using var one = new CancellationTokenSource();
        using var two = new CancellationTokenSource();

        var first = batcher.SubmitAsync("k", one.Token).AsTask();
        var second = batcher.SubmitAsync("K", two.Token).AsTask();
        var other = batcher.SubmitAsync("m").AsTask();
        await one.CancelAsync();
        await two.CancelAsync();
        time.Advance(TimeSpan.FromSeconds(1)); // the batch's MaxDelay

        (await other.OrHang()).Should().Be("m's");
        dispatched.Should().ContainSingle().Which.Should().Equal("m");
        await first.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await second.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task CoalescingIsOffByDefault_EqualItemsTakeASlotEach()
    {
        foreach (var options in new BatcherOptions[]
                 {
                     new() { MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1) },
                     new BatcherOptions<string> { MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1) }, // no comparer
                 })
        {
            var dispatched = new List<string[]>();
            var batcher = new Batcher<string, int>(
                (batch, _) =>
                {
                    dispatched.Add(batch.Items.ToArray());
                    for (var i = 0; i < batch.Count; i++)
                    {
                        batch.TrySetResult(i, i);
                    }

                    return default;
                },
                options);

            var calls = new[] { "k", "k", "k" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

            (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2);
            dispatched.Should().ContainSingle().Which.Should().Equal("k", "k", "k");
        }
    }

    [Fact]
    public async Task NullItems_ShareASlotWithEachOther_AndAreNeverPassedToTheComparer()
    {
        var comparer = new RecordingComparer();
        var dispatched = new List<string?[]>();
        var batcher = new Batcher<string?, string>(
            (batch, _) =>
            {
                dispatched.Add(batch.Items.ToArray());
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] ?? "(null)");
                }

                return default;
            },
            new BatcherOptions<string?> { MaxBatchSize = 4, MaxDelay = TimeSpan.FromHours(1), CoalescingComparer = comparer });

        var calls = new[] { null, "a", null, "a" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        (await Task.WhenAll(calls).OrHang()).Should().Equal("(null)", "a", "(null)", "a");
        dispatched.Should().ContainSingle().Which.Should().Equal(null, "a");
        comparer.SawNull.Should().BeFalse();
    }

    [Fact]
    public async Task AComparerThatThrows_FailsTheItemItWasComparing_AndTheRestOfTheBatchIsDispatched()
    {
        var dispatched = new List<string[]>();
        var batcher = new Batcher<string, string>(
            (batch, _) =>
            {
                dispatched.Add(batch.Items.ToArray());
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }

                return default;
            },
            new BatcherOptions<string> { MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1), CoalescingComparer = new ThrowingOn("bad") });

        var calls = new[] { "a", "bad", "b" }.Select(item => batcher.SubmitAsync(item).AsTask()).ToArray();

        (await calls[0].OrHang()).Should().Be("a");
        (await calls[2].OrHang()).Should().Be("b");
        (await calls[1].Invoking(c => c.OrHang()).Should().ThrowAsync<FormatException>()).Which.Message.Should().Be("cannot hash bad");
        dispatched.Should().ContainSingle().Which.Should().Equal("a", "b");
    }

    [Fact]
    public void OptionsForAnotherItemType_AreRefusedAtConstruction()
    {
        var create = () => new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, new BatcherOptions<long> { CoalescingComparer = EqualityComparer<long>.Default });

        create.Should().Throw<ArgumentException>().Which.Message.Should().Contain("BatcherOptions<Int64>").And.Contain("BatcherOptions<Int32>");
    }

    private sealed class RecordingComparer : IEqualityComparer<string?>
    {
        public bool SawNull { get; private set; }

        public bool Equals(string? x, string? y)
        {
            SawNull |= x is null || y is null;
            return string.Equals(x, y, StringComparison.Ordinal);
        }

        public int GetHashCode(string? obj)
        {
            SawNull |= obj is null;
            return obj is null ? 0 : StringComparer.Ordinal.GetHashCode(obj);
        }
    }

    private sealed class ThrowingOn(string poison) : IEqualityComparer<string>
    {
        public bool Equals(string? x, string? y) => string.Equals(x, y, StringComparison.Ordinal);

        public int GetHashCode(string obj) => obj == poison ? throw new FormatException($"cannot hash {obj}") : StringComparer.Ordinal.GetHashCode(obj);
    }
}
