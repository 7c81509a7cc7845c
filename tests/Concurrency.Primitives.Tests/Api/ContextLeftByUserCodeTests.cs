using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// User code (a Go work, a dispatch, a consumer) may install a synchronization context on the pool thread it runs on
/// (WinForms installs one on a thread that creates a control) and return before its work is done. The primitive's own
/// continuation after that work must run on the pool, never be posted to the context the user code left behind: a UI
/// context posts it to a message loop that may be blocked on the very work being waited for.
/// </summary>
public sealed class ContextLeftByUserCodeTests
{
    [Fact]
    public async Task AGoWorkThatLeavesAContextOnItsThread_DoesNotCaptureTheTrackersContinuation()
    {
        var context = new CountingContext();
        var held = Bounded.NewGate();
        var tracker = new TaskTracker();

        _ = tracker.Go(_ =>
        {
            SynchronizationContext.SetSynchronizationContext(context);
            return held.Task;
        });
        TaskContinuations.WaitUntilAwaited(held.Task); // the tracker waits for the work, on the thread the work left its context on
        held.SetResult();
        await tracker.CloseAsync().OrHang(); // complete only once the work's completion has been observed

        context.Posts.Should().Be(0);
    }

    [Fact]
    public async Task ADispatchThatLeavesAContextOnItsThread_DoesNotCaptureTheBatchersContinuation()
    {
        var context = new CountingContext();
        var held = Bounded.NewGate();
        Batch<int, int>? running = null;
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                if (batch[0] == 2)
                {
                    batch.TrySetResult(0, 2);
                    return default;
                }

                running = batch;
                SynchronizationContext.SetSynchronizationContext(context);
                return new ValueTask(held.Task);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero });

        var first = batcher.SubmitAsync(1).AsTask();
        TaskContinuations.WaitUntilAwaited(held.Task);
        running!.Value.TrySetResult(0, 1).Should().BeTrue();
        held.SetResult();
        (await first.OrHang()).Should().Be(1);
        (await batcher.SubmitAsync(2).AsTask().OrHang()).Should().Be(2); // one dispatch at a time: the first one has finished

        context.Posts.Should().Be(0);
    }

    [Fact]
    public async Task AListDispatchThatLeavesAContextOnItsThread_DoesNotCaptureTheBatchersContinuation()
    {
        var context = new CountingContext();
        var held = Bounded.NewGate<IReadOnlyList<int>>();
        var batcher = new Batcher<int, int>(
            (items, _) =>
            {
                SynchronizationContext.SetSynchronizationContext(context);
                return new ValueTask<IReadOnlyList<int>>(held.Task);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero });

        var first = batcher.SubmitAsync(1).AsTask();
        TaskContinuations.WaitUntilAwaited(held.Task);
        held.SetResult(new[] { 1 });
        (await first.OrHang()).Should().Be(1); // answered by the batcher's continuation, from the list

        context.Posts.Should().Be(0);
    }

    [Fact]
    public async Task AConsumerThatLeavesAContextOnItsThread_DoesNotCaptureThePumpsContinuation()
    {
        var context = new CountingContext();
        var held = Bounded.NewGate();
        var consumer = new ContextLeavingConsumer(context, held.Task);
        await using var pump = new PeerEventPump<string, string>(consumer);

        var peer = pump.Connect("alice");
        peer.MarkReady().Should().BeTrue(); // Added: left pending on the held task, with the context left on the loop's thread
        peer.TryPost("m1").Should().BeTrue();
        TaskContinuations.WaitUntilAwaited(held.Task);
        held.SetResult();
        await consumer.Message.Task.OrHang(); // handled only after the pump's continuation for Added has run

        context.Posts.Should().Be(0);
    }

    private sealed class ContextLeavingConsumer(SynchronizationContext context, Task held) : IPeerEventConsumer<string, string>
    {
        public TaskCompletionSource Message { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken)
        {
            SynchronizationContext.SetSynchronizationContext(context);
            return new ValueTask(held);
        }

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken)
        {
            Message.TrySetResult();
            return default;
        }

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
    }
}
