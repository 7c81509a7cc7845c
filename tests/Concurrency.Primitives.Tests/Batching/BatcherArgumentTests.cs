using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>Bad input gets a specific exception at the offending call.</summary>
public sealed class BatcherArgumentTests
{
    public static TheoryData<Action<BatcherOptions>, string> BadOptions => new()
    {
        { o => o.MaxBatchSize = 0, "MaxBatchSize" },
        { o => o.MaxConcurrency = -1, "MaxConcurrency" },
        { o => o.Capacity = 1, "Capacity" },
        { o => o.MaxDelay = TimeSpan.FromSeconds(-1), "MaxDelay" },
        { o => o.Timeout = TimeSpan.Zero, "Timeout" },
        { o => o.Timeout = TimeSpan.FromSeconds(-2), "Timeout" },
        { o => o.DispatchTimeout = TimeSpan.FromSeconds(-3), "DispatchTimeout" },
        { o => o.ShutdownTimeout = TimeSpan.FromSeconds(-1), "ShutdownTimeout" },
        { o => o.ShutdownMode = (BatcherShutdownMode)7, "ShutdownMode" },
    };

    [Fact]
    public async Task InfiniteTimeouts_AndAnUnboundedCapacity_AreAccepted()
    {
        var batcher = new Batcher<int, int>(
            (items, _) => new ValueTask<IReadOnlyList<int>>(items.ToArray()),
            new BatcherOptions { Timeout = Timeout.InfiniteTimeSpan, DispatchTimeout = Timeout.InfiniteTimeSpan, ShutdownTimeout = Timeout.InfiniteTimeSpan, Capacity = null, MaxBatchSize = 2, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(7).AsTask().OrHang()).Should().Be(7);
        await batcher.CloseAsync().OrHang();
    }

    [Fact]
    public void NullDispatch_ThrowsArgumentNull()
    {
        var batchForm = () => new Batcher<int, int>((Func<Batch<int, int>, CancellationToken, ValueTask>)null!);
        var batchTaskForm = () => new Batcher<int, int>((Func<Batch<int, int>, CancellationToken, Task>)null!);
        var listForm = () => new Batcher<int, int>((Func<IReadOnlyList<int>, CancellationToken, ValueTask<IReadOnlyList<int>>>)null!);
        var listTaskForm = () => new Batcher<int, int>((Func<IReadOnlyList<int>, CancellationToken, Task<IReadOnlyList<int>>>)null!);

        batchForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
        batchTaskForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
        listForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
        listTaskForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
    }

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void OptionsOutOfRange_AreRejectedAtConstruction_NamingTheOption(Action<BatcherOptions> spoil, string option)
    {
        var options = new BatcherOptions();
        spoil(options);

        var create = () => new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default, options);

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*BatcherOptions.{option}*");
    }

    [Fact]
    public async Task BatchMembers_RejectBadIndexesAndNullExceptions_AndEveryUseAfterTheDispatchReturned()
    {
        Batch<int, int> kept = default;
        Exception? badIndex = null;
        Exception? nullException = null;
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                kept = batch;
                badIndex = Record.Exception(() => batch.TrySetResult(5, 0));
                nullException = Record.Exception(() => batch.TrySetException(0, null!));
                batch.TrySetResult(0, 42);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(42);
        await batcher.CloseAsync().OrHang();

        badIndex.Should().BeOfType<ArgumentOutOfRangeException>();
        nullException.Should().BeOfType<ArgumentNullException>();
        kept.Invoking(b => b.TrySetResult(0, 1)).Should().Throw<InvalidOperationException>().WithMessage("*valid only during its dispatch call*");
        kept.Invoking(b => b.Count).Should().Throw<InvalidOperationException>();
        kept.Invoking(b => b.Items).Should().Throw<InvalidOperationException>();
        default(Batch<int, int>).Invoking(b => b[0]).Should().Throw<InvalidOperationException>().WithMessage("*default value*");
        default(Batch<int, int>).Invoking(b => b.Count).Should().Throw<InvalidOperationException>().WithMessage("*default value*");
    }

    [Fact]
    public async Task BatchItems_IsTheItemsInSubmitOrder_AsAReadOnlyList_WithoutAllocating()
    {
        int[]? seen = null;
        long allocated = -1;
        var passed = false;
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                IReadOnlyList<int> items = batch.Items; // what a bulk call (GetManyAsync(IReadOnlyList<TKey>)) receives
                var count = items.Count;
                var sum = 0;
                for (var i = 0; i < count; i++)
                {
                    sum += items[i];
                }

                allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                passed = sum == 6;
                seen = items.ToArray();
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, items[i]);
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 3, MaxDelay = TimeSpan.FromHours(1) });

        var calls = new[] { batcher.SubmitAsync(3).AsTask(), batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await Task.WhenAll(calls).OrHang();

        seen.Should().Equal(3, 1, 2);
        passed.Should().BeTrue();
        allocated.Should().Be(0, "the view is the batch itself: no copy");
    }

    [Fact]
    public async Task APreCancelledToken_FailsTheSubmitAtOnce_WithoutQueueingIt()
    {
        var dispatches = 0;
        var batcher = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) =>
        {
            dispatches++;
            return default;
        }, new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        await batcher.Invoking(b => b.SubmitAsync(1, new CancellationToken(canceled: true)).AsTask()).Should().ThrowAsync<OperationCanceledException>();
        await batcher.CloseAsync().OrHang();

        dispatches.Should().Be(0);
    }

    [Fact]
    public async Task Count_IsTheItemsAcceptedAndNotYetDispatched()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (batch[0] == 1)
                {
                    entered.SetResult();
                    await release.Task;
                }

                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero });

        batcher.Count.Should().Be(0);
        var first = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        batcher.Count.Should().Be(0, "the first item is in its dispatch");
        var second = batcher.SubmitAsync(2).AsTask();
        var third = batcher.SubmitAsync(3).AsTask();
        batcher.Count.Should().Be(2);

        release.SetResult();
        (await Task.WhenAll(first, second, third).OrHang()).Should().Equal(1, 2, 3);
        batcher.Count.Should().Be(0);
    }
}
