using System;
using System.Collections.Generic;
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
        { o => o.MaxConcurrentBatches = -1, "MaxConcurrentBatches" },
        { o => o.Capacity = 1, "Capacity" },
        { o => o.MaxDelay = TimeSpan.FromSeconds(-1), "MaxDelay" },
        { o => o.Timeout = TimeSpan.Zero, "Timeout" },
        { o => o.Timeout = Timeout.InfiniteTimeSpan, "Timeout" },
        { o => o.DispatchTimeout = TimeSpan.FromSeconds(-3), "DispatchTimeout" },
        { o => o.ShutdownTimeout = TimeSpan.Zero, "ShutdownTimeout" },
        { o => o.ShutdownMode = (BatcherShutdownMode)7, "ShutdownMode" },
    };

    [Fact]
    public void NullDispatch_ThrowsArgumentNull()
    {
        var batchForm = () => new Batcher<int, int>((Func<Batch<int, int>, CancellationToken, ValueTask>)null!);
        var listForm = () => new Batcher<int, int>((Func<IReadOnlyList<int>, CancellationToken, ValueTask<IReadOnlyList<int>>>)null!);

        batchForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
        listForm.Should().Throw<ArgumentNullException>().WithParameterName("dispatch");
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
        await batcher.CompleteAsync().OrHang();

        badIndex.Should().BeOfType<ArgumentOutOfRangeException>();
        nullException.Should().BeOfType<ArgumentNullException>();
        kept.Invoking(b => b.TrySetResult(0, 1)).Should().Throw<InvalidOperationException>().WithMessage("*valid only during its dispatch call*");
        kept.Invoking(b => b.Count).Should().Throw<InvalidOperationException>();
        default(Batch<int, int>).Invoking(b => b[0]).Should().Throw<InvalidOperationException>();
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
        await batcher.CompleteAsync().OrHang();

        dispatches.Should().Be(0);
    }
}
