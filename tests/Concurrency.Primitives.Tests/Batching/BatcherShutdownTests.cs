using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>Invariant 8 of src/Concurrency.Primitives/Batching/README.md: shutdown never hangs and never crashes.</summary>
public sealed class BatcherShutdownTests
{
    private static ValueTask<IReadOnlyList<int>> Echo(IReadOnlyList<int> items, CancellationToken token) => new(items.ToArray());

    [Fact]
    public async Task SubmitAfterDispose_FailsAtOnceWithObjectDisposed()
    {
        var batcher = new Batcher<int, int>(Echo);
        await batcher.DisposeAsync();

        var call = batcher.SubmitAsync(1);

        call.IsCompleted.Should().BeTrue("it fails at once, without waiting");
        await call.AsTask().Invoking(c => c).Should().ThrowAsync<ObjectDisposedException>().WithMessage("*accepts no more items*");
    }

    [Fact]
    public async Task SubmitAfterClose_FailsAtOnceWithClosed_NotObjectDisposed_BecauseNothingWasDisposed()
    {
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { Name = "rows" });
        await batcher.CloseAsync().OrHang();

        var call = batcher.SubmitAsync(1);

        call.IsCompleted.Should().BeTrue("it fails at once, without waiting");
        (await call.AsTask().Invoking(c => c).Should().ThrowAsync<ClosedException>()).Which.Name.Should().Be("rows");
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task DrainMode_DispatchesQueuedItems_BeforeCompleting()
    {
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromHours(1) });
        var calls = Enumerable.Range(1, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        await batcher.CloseAsync().OrHang();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(1, 2, 3);
    }

    [Fact]
    public async Task FailPendingMode_FailsQueuedItems_AndAwaitsRunningDispatches()
    {
        var release = Bounded.NewGate();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                entered.TrySetResult();
                await release.Task;
                batch.TrySetResult(0, batch[0]);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, ShutdownMode = BatcherShutdownMode.FailPending });
        var running = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        var queued = batcher.SubmitAsync(2).AsTask();

        var shutdown = batcher.CloseAsync();

        (await queued.Invoking(q => q.OrHang()).Should().ThrowAsync<ClosedException>()).Which.Message.Should().Contain("FailPending");
        shutdown.IsCompleted.Should().BeFalse("a dispatch is still running");
        release.SetResult();
        await shutdown.OrHang();
        (await running.OrHang()).Should().Be(1);
    }

    [Fact]
    public async Task Shutdown_ReleasesSubmittersWaitingForRoom()
    {
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                await release.Task;
                batch.TrySetResult(0, 0);
            },
            new BatcherOptions { MaxBatchSize = 1, Capacity = 1, MaxDelay = TimeSpan.Zero, ShutdownMode = BatcherShutdownMode.FailPending });
        _ = batcher.SubmitAsync(1).AsTask();
        _ = batcher.SubmitAsync(2).AsTask();
        var waiting = batcher.SubmitAsync(3).AsTask();

        var shutdown = batcher.CloseAsync();

        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<ClosedException>();
        release.SetResult();
        await shutdown.OrHang();
    }

    [Fact]
    public async Task ShutdownTimeout_IsReported_WhenADispatchNeverReturns()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, ShutdownTimeout = TimeSpan.FromSeconds(3), TimeProvider = time });
        _ = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();

        var shutdown = batcher.CloseAsync();
        await time.WhenTimersArmed(2).OrHang(); // the deadline sweep and the shutdown timeout
        time.Advance(TimeSpan.FromSeconds(3));

        (await shutdown.Invoking(s => s.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>().WithMessage("*1 dispatch(es) running*")).Which.Timeout.Should().Be(TimeSpan.FromSeconds(3));
        batcher.Completion.IsCompleted.Should().BeFalse("the dispatch still runs");
    }

    [Fact]
    public async Task DisposeAsync_WithAStuckDispatch_ReturnsAtTheShutdownTimeout_WithoutThrowing_AndLogsIt()
    {
        var (batcher, time, log) = await StuckDispatchAsync();

        var dispose = batcher.DisposeAsync().AsTask();
        await time.WhenTimersArmed(2).OrHang();
        time.Advance(TimeSpan.FromSeconds(3));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        var report = log.Entries.Single(e => e.EventId == 3008);
        report.Level.Should().Be(Microsoft.Extensions.Logging.LogLevel.Error);
        report.Exception.Should().BeOfType<ShutdownTimeoutException>().Which.Message.Should().Contain("1 dispatch(es) running");
        await batcher.SubmitAsync(2).AsTask().Invoking(c => c).Should().ThrowAsync<ObjectDisposedException>();
    }

    [Fact]
    public async Task DisposeAsync_AfterACloseThatTimedOut_ReturnsAtOnce_NotAfterASecondShutdownTimeout()
    {
        var (batcher, time, log) = await StuckDispatchAsync();
        var close = batcher.CloseAsync();
        await time.WhenTimersArmed(2).OrHang();
        time.Advance(TimeSpan.FromSeconds(3));
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>();

        await batcher.Invoking(b => b.DisposeAsync().OrHang()).Should().NotThrowAsync("the bound was spent by the close");
        log.Entries.Should().Contain(e => e.EventId == 3008 && e.Exception is ShutdownTimeoutException);
    }

    /// <summary>A batcher (ShutdownTimeout 3 s, on a manual clock) whose one dispatch ignores its token and never returns.</summary>
    private static async Task<(Batcher<int, int> Batcher, ManualTimeProvider Time, RecordingLogger Log)> StuckDispatchAsync()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // ignores its token, never returns
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, ShutdownTimeout = TimeSpan.FromSeconds(3), TimeProvider = time, Logger = log });
        _ = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        return (batcher, time, log);
    }
}
