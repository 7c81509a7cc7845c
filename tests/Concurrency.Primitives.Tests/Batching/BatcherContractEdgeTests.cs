using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.Tests.TestSupport.BatcherHandlers;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Edges of the batcher's public contract that the other Batching tests do not reach: its default name, the exact
/// bounds and messages of the batch's guards, a stale <see cref="Batch{TItem, TResult}"/> during the next dispatch on the
/// same loop, the context a dispatch runs in, dispatches that complete (or fault) synchronously or through a pooled
/// value task, room given to waiting callers at the cut, and what a caller's cancellation says.
/// </summary>
public sealed class BatcherContractEdgeTests
{
    /// <summary>Guards the default name: "Batcher", in the batcher's Name and in the refusals it gives once closed.</summary>
    [Fact]
    public async Task ABatcherWithoutAName_IsCalledBatcher_InItsNameAndItsRefusals()
    {
        var batcher = new Batcher<int, int>(Echo);
        batcher.Name.Should().Be("Batcher");
        await batcher.CloseAsync().OrHang();

        var refused = (await batcher.SubmitAsync(1).AsTask().Invoking(c => c).Should().ThrowAsync<ClosedException>()).Which;

        refused.Name.Should().Be("Batcher");
        refused.Message.Should().Be("Batcher 'Batcher' is closed (or closing); it accepts no more items.");
    }

    /// <summary>Guards the index checks of Batch.TrySetResult/TrySetException and of the item list at their upper edge (index == Count), with the message naming the count.</summary>
    [Fact]
    public async Task BatchIndexes_AreRefusedFromCountUp_WithAMessageThatNamesTheCount()
    {
        var refusals = new List<Exception?>();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                refusals.Add(Record.Exception(() => batch.TrySetResult(batch.Count, 0)));
                refusals.Add(Record.Exception(() => batch.TrySetException(batch.Count, new InvalidOperationException())));
                refusals.Add(Record.Exception(() => batch[batch.Count]));
                refusals.Add(Record.Exception(() => batch.Items[batch.Count]));
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1) });

        (await Task.WhenAll(batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask()).OrHang()).Should().Equal(1, 2);

        refusals.Should().HaveCount(4);
        foreach (var refusal in refusals)
        {
            var outOfRange = refusal.Should().BeOfType<ArgumentOutOfRangeException>().Which;
            outOfRange.ParamName.Should().Be("index");
            outOfRange.ActualValue.Should().Be(2);
            outOfRange.Message.Should().StartWith("The batch holds 2 item(s).");
        }
    }

    /// <summary>Guards the result-list form's item list (the batch itself): kept past its dispatch, it refuses to be read, saying why.</summary>
    [Fact]
    public async Task AnItemListKeptPastItsDispatch_RefusesToBeRead_AndSaysToCopyIt()
    {
        IReadOnlyList<int>? kept = null;
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) =>
            {
                kept = items;
                return new ValueTask<IReadOnlyList<int>>(items.ToArray());
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(7).AsTask().OrHang()).Should().Be(7);
        await batcher.CloseAsync().OrHang(); // the loop has finished the batch

        kept!.Invoking(list => list[0]).Should().Throw<InvalidOperationException>()
            .WithMessage("This item list is valid only during its dispatch call; copy it if you need it afterwards.");
    }

    /// <summary>
    /// Guards the batch's version check: a Batch kept from one dispatch is refused while the next batch is dispatched on
    /// the same loop (same core, same phase), so it can never answer another batch's caller.
    /// </summary>
    [Fact]
    public async Task AStaleBatch_IsRefused_WhileTheNextBatchIsDispatchedOnTheSameLoop()
    {
        Batch<int, int> kept = default;
        Exception? stale = null;
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                if (batch[0] == 1)
                {
                    kept = batch;
                }
                else
                {
                    stale = Record.Exception(() => kept.TrySetResult(0, 99));
                }

                batch.TrySetResult(0, batch[0]);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero });

        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);
        (await batcher.SubmitAsync(2).AsTask().OrHang()).Should().Be(2, "the stale batch must not answer the next batch's caller");

        stale.Should().BeOfType<InvalidOperationException>().Which.Message.Should().Contain("valid only during its dispatch call");
    }

    /// <summary>
    /// Guards the context dispatches run in: the batcher's own, never that of the caller whose submit started the loop,
    /// so that one caller's AsyncLocal values (culture, activity, identity) do not leak into every later dispatch.
    /// </summary>
    [Fact]
    public async Task ADispatch_DoesNotSeeTheAsyncLocalsOfTheCallerWhoseSubmitStartedItsLoop()
    {
        var local = new AsyncLocal<string?>();
        var seen = new List<string?>();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                seen.Add(local.Value);
                batch.TrySetResult(0, batch[0]);
                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        local.Value = "first caller";
        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);
        local.Value = "second caller";
        (await batcher.SubmitAsync(2).AsTask().OrHang()).Should().Be(2);

        seen.Should().Equal(new string?[] { null, null });
    }

    /// <summary>Guards a Task-form dispatch that returns an already faulted task (no throw): its fault is observed, and every item gets it wrapped.</summary>
    [Fact]
    public async Task ADispatchReturningAnAlreadyFaultedTask_FailsEveryItemWithTheDispatchsFault()
    {
        var batcher = new Batcher<int, int>(
            (Batch<int, int> _, CancellationToken _) => Task.FromException(new InvalidOperationException("rejected")),
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1) });

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };

        foreach (var call in calls)
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchDispatchException>()).Which.InnerException!.Message.Should().Be("rejected");
        }
    }

    /// <summary>
    /// Guards the result-list form's asynchronous path: a dispatch that returns a pending value task backed by a pooled
    /// source (here a channel read, not a Task) is awaited, never read before it completes.
    /// </summary>
    [Fact]
    public async Task AListDispatchReturningAPendingPooledValueTask_IsAwaited_NotReadBeforeItCompletes()
    {
        var results = Channel.CreateUnbounded<IReadOnlyList<int>>();
        var entered = Bounded.NewGate<int[]>();
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken token) =>
            {
                entered.TrySetResult(items.ToArray());
                return results.Reader.ReadAsync(token); // pending: the channel's pooled operation
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1) });

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        (await entered.Task.OrHang()).Should().Equal(1, 2);
        results.Writer.TryWrite(new[] { 10, 20 }).Should().BeTrue();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(10, 20);
    }

    /// <summary>
    /// Guards the batch form's asynchronous path: a dispatch that returns a pending value task backed by a pooled source
    /// (not a Task) is awaited, never read before it completes; reading it early would throw, and the batch would be
    /// logged as a failed dispatch though it answered every item.
    /// </summary>
    [Fact]
    public async Task ADispatchReturningAPendingPooledValueTask_IsAwaited_NotReadBeforeItCompletes()
    {
        var log = new RecordingLogger();
        var source = new PooledSource();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, batch[0] * 10);
                entered.TrySetResult();
                return new ValueTask(source, source.Version); // pending until the test completes it
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Logger = log });

        var call = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        source.Complete();

        (await call.OrHang()).Should().Be(10);
        await batcher.CloseAsync().OrHang(); // the dispatch has finished
        log.Entries.Should().NotContain(e => e.EventId == 3001, "the dispatch did not fail: it was read only once it had completed");
    }

    /// <summary>A value task source of the kind pooled operations use: reading it before it completes throws.</summary>
    private sealed class PooledSource : System.Threading.Tasks.Sources.IValueTaskSource
    {
        private System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

        public short Version => _core.Version;

        public void Complete() => _core.SetResult(true);

        public void GetResult(short token) => _core.GetResult(token);

        public System.Threading.Tasks.Sources.ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, System.Threading.Tasks.Sources.ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>
    /// Guards room at the cut (invariant 6): a caller waiting for room is admitted by the cut that makes it — while the
    /// next batch is being dispatched — not only when the loop next runs out of work.
    /// </summary>
    [Fact]
    public async Task ACallerWaitingForRoom_IsAdmittedByTheCutThatMakesRoom_WhileTheNextBatchIsDispatched()
    {
        var entered = new Dictionary<int, TaskCompletionSource> { [1] = Bounded.NewGate(), [3] = Bounded.NewGate() };
        var holds = new Dictionary<int, TaskCompletionSource> { [1] = Bounded.NewGate(), [3] = Bounded.NewGate() };
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (entered.TryGetValue(batch[0], out var signal))
                {
                    signal.TrySetResult();
                    await holds[batch[0]].Task;
                }

                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }
            },
            new BatcherOptions { MaxBatchSize = 2, Capacity = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromHours(1) });

        var first = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() }; // dispatched, and held
        await entered[1].Task.OrHang();
        var second = new[] { batcher.SubmitAsync(3).AsTask(), batcher.SubmitAsync(4).AsTask() }; // fill the queue
        var waiting = batcher.SubmitAsync(5).AsTask();
        batcher.DebuggerDisplay.Should().Be("2 admitted, 2 queued, 1 dispatching, 1 waiting for room");

        holds[1].SetResult(); // the loop cuts items 3 and 4, which makes room for item 5, then dispatches them (held)
        await entered[3].Task.OrHang();

        batcher.Count.Should().Be(1, "item 5 was admitted when items 3 and 4 were cut");
        batcher.DebuggerDisplay.Should().Be("1 admitted, 1 queued, 1 dispatching");
        holds[3].SetResult();
        (await Task.WhenAll(first.Concat(second)).OrHang()).Should().Equal(1, 2, 3, 4);
        await batcher.CloseAsync().OrHang(); // drains item 5's batch
        (await waiting.OrHang()).Should().Be(5);
    }

    /// <summary>Guards the stuck-dispatch log: a dispatch that returns within its timeout is never reported as a stuck one returning (event 3005).</summary>
    [Fact]
    public async Task ADispatchThatReturnsInTime_IsNeverLoggedAsAStuckDispatchReturning()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, Logger = logger });

        (await batcher.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);
        (await batcher.SubmitAsync(2).AsTask().OrHang()).Should().Be(2);
        await batcher.CloseAsync().OrHang(); // both dispatches have been finished

        logger.Entries.Should().NotContain(e => e.EventId == 3005);
    }

    /// <summary>Guards what a caller's cancellation says: its own message, and the caller's own token.</summary>
    [Fact]
    public async Task ACallerThatCancels_GetsACancellationThatSaysSo_CarryingItsOwnToken()
    {
        var batcher = new Batcher<int, int>(Echo, new BatcherOptions { MaxBatchSize = 10, MaxDelay = TimeSpan.FromHours(1) });
        using var cancel = new CancellationTokenSource();

        var call = batcher.SubmitAsync(1, cancel.Token);
        await cancel.CancelAsync();

        call.IsCompleted.Should().BeTrue("the caller is released by its own token at once");
        var cancelled = (await Record.ExceptionAsync(async () => await call)).Should().BeOfType<OperationCanceledException>().Which;
        cancelled.Message.Should().Be("The caller cancelled its wait for this batched item.");
        cancelled.CancellationToken.Should().Be(cancel.Token);
    }

}
