using System;
using System.Collections.Generic;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>The pooled per-item wait: invariant 1 of src/Concurrency.Primitives/Batching/README.md across the item's reuse.</summary>
public sealed class BatchItemTests
{
    [ThreadStatic]
    private static bool t_registering;

    [Fact]
    public async Task ADeadlineTimerThatFiresLate_CannotAnswerTheItemsNextUse()
    {
        // ITimer.Dispose does not wait for a callback that has already started: a deadline timer of one use of a pooled
        // item can run after that use was answered, consumed and recycled. It must find the next use and leave it alone.
        var owner = NewOwner();
        var time = new CallbackCapturingTimeProvider();
        BatchItem<int, int>? returned = null;

        var item = RentInUse(owner, ref returned, 1);
        item.ArmOwnDeadline(time, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        item.TrySetResult(10).Should().BeTrue();
        (await new ValueTask<int>(item, item.Version)).Should().Be(10); // the caller lets go
        item.ReleaseByBatcher();                                          // and the batcher: recycled into this thread's cache

        var next = RentInUse(owner, ref returned, 2);
        next.Should().BeSameAs(item);
        time.FireAllCaptured(); // the first use's timer, disposed when that use was answered, fires now

        next.IsCompleted.Should().BeFalse("a late timer of the first use must not answer the second");
        next.TrySetResult(20).Should().BeTrue();
        (await new ValueTask<int>(next, next.Version)).Should().Be(20);
    }

    [Fact]
    public async Task ARecycledItem_HoldsNoReferenceToItsBatcher()
    {
        // Thread caches of pooled items outlive batchers: an item kept for reuse must not keep its last batcher alive.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        item.TrySetResult(10).Should().BeTrue();
        item.ReleaseByBatcher();
        (await new ValueTask<int>(item, item.Version)).Should().Be(10);

        typeof(BatchItem<int, int>).GetField("_owner", BindingFlags.Instance | BindingFlags.NonPublic)!.GetValue(item).Should().BeNull();
    }

    [Fact]
    public void AResultReadTwice_Throws_AndLeavesTheItemWithTheBatcher()
    {
        // A ValueTask consumed twice (awaited, then .Result) reads the same answer again before the item is recycled.
        // The second read must throw, and must not let go of the item a second time: the batcher still holds it.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;
        item.TrySetResult(10).Should().BeTrue();

        ReadAnswer(source, version).Should().Be(10);
        FluentActions.Invoking(() => ReadAnswer(source, version)).Should().Throw<InvalidOperationException>().WithMessage("*awaited only once*");

        BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(item, "the batcher has not let go of the item yet");
        item.ReleaseByBatcher();
        BatchItem<int, int>.Rent(owner, ref returned).Should().BeSameAs(item, "both owners have let go once each");
    }

    [Fact]
    public async Task AStaleResultRead_Throws_AndLeavesTheItemsNextCallerAlone()
    {
        // After its first use is recycled, the item serves another caller. A read through the first use's ValueTask must
        // throw without touching the new use: the new caller still holds the item until it reads its own answer.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var stale = item.Version;
        item.TrySetResult(10).Should().BeTrue();
        ReadAnswer(item, stale).Should().Be(10);
        item.ReleaseByBatcher();

        var next = RentInUse(owner, ref returned, 2);
        next.Should().BeSameAs(item);
        var current = new ValueTask<int>(next, next.Version);
        FluentActions.Invoking(() => ReadAnswer(next, stale)).Should().Throw<InvalidOperationException>();

        next.TrySetResult(20).Should().BeTrue();
        next.ReleaseByBatcher();
        BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(next, "its second caller has not read its answer yet");
        (await current).Should().Be(20);
    }

    [Fact]
    public async Task AnItemFailedByItsCallersToken_IsNotRecycledWhileTheFailureIsStillBeingSignalled()
    {
        // The item reads as answered before its signal is over (the core marks itself completed, then looks for the
        // continuation). A caller that reads the answer in that window, with the batcher letting go too, must not get
        // the item recycled under the cancelling thread. A context whose Post blocks holds that thread inside the signal.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        using var cancellation = new CancellationTokenSource();
        var item = RentInUse(owner, ref returned, 1, cancellation.Token);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;

        using var context = new HoldingContext();
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            source.OnCompleted(static _ => { }, null, version, ValueTaskSourceOnCompletedFlags.UseSchedulingContext);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        var cancelling = Task.Run(cancellation.Cancel);
        try
        {
            context.Entered.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue("the cancelling thread signals the item's failure");

            FluentActions.Invoking(() => ReadAnswer(source, version)).Should().Throw<OperationCanceledException>();
            item.ReleaseByBatcher();
            BatchItem<int, int>.Rent(owner, ref returned).Should().NotBeSameAs(item, "the cancelling thread is still inside the item's signal");
        }
        finally
        {
            context.Release.Set();
        }

        await cancelling.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task AnAnswerThroughABatch_GoesOnlyToTheUseTheBatchWasCutWith()
    {
        // A call on a Batch that passed its "still dispatching" check just as the dispatch returned can meet its item
        // already released, read by its caller and serving another caller. Build that state: the batch still reads as
        // dispatching, but its item is in its next use. The late answer must fail and leave the next caller's item alone.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var core = new BatchCore<int, int>(owner, capacity: 1) { Count = 1, State = BatchCore<int, int>.Phase.Dispatching };
        core.Items[0] = item;
        core.Uses[0] = item.Use;
        var batch = new Batch<int, int>(core, core.Version);

        batch.TrySetResult(0, 10).Should().BeTrue();
        ReadAnswer(item, item.Version).Should().Be(10);
        item.ReleaseByBatcher();
        var next = RentInUse(owner, ref returned, 2);
        next.Should().BeSameAs(item);
        var current = new ValueTask<int>(next, next.Version);

        batch.TrySetResult(0, 99).Should().BeFalse("the batch was cut with the item's first use");
        batch.TrySetException(0, new InvalidOperationException("late")).Should().BeFalse();
        next.IsCompleted.Should().BeFalse();
        next.TrySetResult(20).Should().BeTrue();
        (await current).Should().Be(20);
    }

    [Fact]
    public async Task EveryCallThroughAStaleToken_ThrowsTheReusedMessage_AndLeavesTheItemsNextUseAlone()
    {
        // A ValueTask kept after its answer was read carries the token of a use that is over. Reading it, asking its
        // status or awaiting it must say so (not "not available yet": that would send the caller to await it again), and
        // must not touch the use the item now serves.
        BatchItem<int, int>? returned = null;
        var (next, stale) = RentSecondUse(NewOwner(), ref returned);
        var source = (IValueTaskSource<int>)next;
        next.Version.Should().NotBe(stale, "each use of the item has its own token");
        var current = new ValueTask<int>(next, next.Version);

        FluentActions.Invoking(() => source.GetResult(stale)).Should().Throw<InvalidOperationException>().WithMessage("*already been read and reused*");
        FluentActions.Invoking(() => source.GetStatus(stale)).Should().Throw<InvalidOperationException>().WithMessage("*already been read and reused*");
        var ran = false;
        FluentActions.Invoking(() => source.OnCompleted(_ => ran = true, null, stale, ValueTaskSourceOnCompletedFlags.None))
            .Should().Throw<InvalidOperationException>().WithMessage("*already been read and reused*");

        current.IsCompleted.Should().BeFalse("the stale calls left the new use pending");
        next.TrySetResult(20).Should().BeTrue();
        (await current).Should().Be(20);
        ran.Should().BeFalse("a continuation refused for a stale token is never run");
    }

    [Fact]
    public void AResultReadBeforeTheAnswer_Throws_TellingTheCallerToAwait()
    {
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        FluentActions.Invoking(() => ReadAnswer(item, item.Version)).Should().Throw<InvalidOperationException>().WithMessage("*not available yet*await*");

        item.TrySetResult(10).Should().BeTrue();
        ReadAnswer(item, item.Version).Should().Be(10, "the early read took nothing: the answer is still there for the caller");
    }

    [Fact]
    public void ANullContinuation_IsRefusedWithArgumentNullException()
    {
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        FluentActions.Invoking(() => source.OnCompleted(null!, null, item.Version, ValueTaskSourceOnCompletedFlags.None))
            .Should().Throw<ArgumentNullException>().WithParameterName("continuation");
    }

    [Fact]
    public async Task ASecondAwaitOfAPendingItem_IsRefused_AndTheFirstStillGetsTheAnswer()
    {
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;
        var first = Bounded.NewGate();
        var second = false;

        source.OnCompleted(_ => first.TrySetResult(), null, version, ValueTaskSourceOnCompletedFlags.None);
        FluentActions.Invoking(() => source.OnCompleted(_ => second = true, null, version, ValueTaskSourceOnCompletedFlags.None))
            .Should().Throw<InvalidOperationException>().WithMessage("*already awaited*");

        item.TrySetResult(10).Should().BeTrue();
        await first.Task.OrHang();
        ReadAnswer(item, version).Should().Be(10);
        second.Should().BeFalse("the refused continuation was never registered");
    }

    [Fact]
    public async Task AnAwaitRegisteredAfterTheAnswer_RunsItsContinuation_NeverOnTheRegisteringThread()
    {
        // Between a caller's look at the status (pending) and its registration, the answer can land: the registration then
        // finds the item published and must schedule the continuation, on the pool, not run it on the caller's stack.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;
        source.GetStatus(version).Should().Be(ValueTaskSourceStatus.Pending);
        item.TrySetResult(10).Should().BeTrue();
        source.GetStatus(version).Should().Be(ValueTaskSourceStatus.Succeeded);

        var ran = Bounded.NewGate<bool>();
        t_registering = true; // seen as true only by code running on this thread inside the registration
        try
        {
            source.OnCompleted(_ => ran.TrySetResult(t_registering), null, version, ValueTaskSourceOnCompletedFlags.None);
        }
        finally
        {
            t_registering = false;
        }

        (await ran.Task.OrHang()).Should().BeFalse("the continuation ran after the registration returned, not inside it");
        ReadAnswer(item, version).Should().Be(10);
    }

    [Fact]
    public async Task AnAwaitWithNoContextToResumeIn_ResumesAsAPoolWorkItem_NotInsideAStartedTask()
    {
        // The common await (UseSchedulingContext, on the pool: no synchronization context, the default scheduler) captures
        // nothing, and the answer queues the continuation as a pool work item: no task or wrapper is allocated for it. On
        // net8.0 and later that work item is no task, so Task.CurrentId is null inside it.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;
        var resumed = Bounded.NewGate<int?>();

        await Task.Run(() => source.OnCompleted(_ => resumed.TrySetResult(Task.CurrentId), null, version, ValueTaskSourceOnCompletedFlags.UseSchedulingContext)).OrHang();
        item.TrySetResult(10).Should().BeTrue();

        (await resumed.Task.OrHang()).Should().BeNull("the continuation ran as a plain pool work item, not wrapped in a task");
        ReadAnswer(item, version).Should().Be(10);
    }

    [Fact]
    public async Task AnAwaitThatFlowsItsExecutionContext_ResumesInIt_OffTheAnsweringThread()
    {
        // OnCompleted with FlowExecutionContext (an awaiter's OnCompleted rather than UnsafeOnCompleted): the continuation
        // runs in the registering caller's execution context, not the answering thread's, and never on that thread.
        var owner = NewOwner();
        BatchItem<int, int>? returned = null;
        var item = RentInUse(owner, ref returned, 1);
        var source = (IValueTaskSource<int>)item;
        var version = item.Version;
        var flowed = new AsyncLocal<string?>();
        var resumed = Bounded.NewGate<(string? Value, bool OnAnsweringThread)>();

        await Task.Run(() =>
        {
            flowed.Value = "caller";
            source.OnCompleted(_ => resumed.TrySetResult((flowed.Value, t_registering)), null, version, ValueTaskSourceOnCompletedFlags.FlowExecutionContext);
        }).OrHang();
        flowed.Value = "answerer";
        t_registering = true; // seen as true only by code running on this thread inside the answer
        try
        {
            item.TrySetResult(10).Should().BeTrue();
        }
        finally
        {
            t_registering = false;
            flowed.Value = null;
        }

        var (value, onAnsweringThread) = await resumed.Task.OrHang();
        value.Should().Be("caller", "the continuation runs in the execution context captured when it was registered");
        onAnsweringThread.Should().BeFalse("the answer queues the continuation; it never runs it on the answering thread");
        ReadAnswer(item, version).Should().Be(10);
    }

    [Fact]
    public async Task ARecycledItemAwaitedBeforeItsAnswer_StaysPendingUntilTheAnswer()
    {
        // A caller that registers its continuation and then asks the status (an awaiter's IsCompleted, say) must see its
        // own use pending: the previous use's completion is cleared when the item is recycled.
        BatchItem<int, int>? returned = null;
        var (next, _) = RentSecondUse(NewOwner(), ref returned);
        var source = (IValueTaskSource<int>)next;
        var version = next.Version;
        var ran = Bounded.NewGate();
        source.OnCompleted(_ => ran.TrySetResult(), null, version, ValueTaskSourceOnCompletedFlags.None);
        source.GetStatus(version).Should().Be(ValueTaskSourceStatus.Pending, "this use has no answer yet");

        next.TrySetResult(20).Should().BeTrue();
        await ran.Task.OrHang();
        source.GetStatus(version).Should().Be(ValueTaskSourceStatus.Succeeded);
        ReadAnswer(next, version).Should().Be(20);
    }

    private static Batcher<int, int> NewOwner() => new((Batch<int, int> _, CancellationToken _) => default);

    /// <summary>Rents an item (from this thread's cache first, as a submit does) and starts its next use.</summary>
    private static BatchItem<int, int> RentInUse(Batcher<int, int> owner, ref BatchItem<int, int>? returned, int value, CancellationToken token = default)
    {
        var item = BatchItem<int, int>.Rent(owner, ref returned);
        item.Initialize(value, deadline: 0, token);
        return item;
    }

    /// <summary>
    /// Takes an item through one use (answered 10, read by its caller, let go by the batcher, so recycled into this
    /// thread's cache) and rents it again for a second use (value 2). Returns the item in that use and the first use's token.
    /// </summary>
    private static (BatchItem<int, int> Next, short Stale) RentSecondUse(Batcher<int, int> owner, ref BatchItem<int, int>? returned)
    {
        var item = RentInUse(owner, ref returned, 1);
        var stale = item.Version;
        item.TrySetResult(10).Should().BeTrue();
        ReadAnswer(item, stale).Should().Be(10);
        item.ReleaseByBatcher();

        var next = RentInUse(owner, ref returned, 2);
        next.Should().BeSameAs(item, "the recycled item is the first this thread rents again");
        return (next, stale);
    }

    /// <summary>What an await does once the answer is in: the caller reads it (it never blocks; it throws if there is none).</summary>
    private static int ReadAnswer(IValueTaskSource<int> source, short version) => source.GetResult(version);

    /// <summary>A context whose <see cref="Post"/> blocks until released: it holds the thread that signals a completion.</summary>
    private sealed class HoldingContext : SynchronizationContext, IDisposable
    {
        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public override void Post(SendOrPostCallback d, object? state)
        {
            Entered.Set();
            Release.Wait(TimeSpan.FromSeconds(30));
        }

        public void Dispose()
        {
            Entered.Dispose();
            Release.Dispose();
        }
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
