using System;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;
using Concurrency.Primitives.Internal;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Internal;

#pragma warning disable VSTHRD002, xUnit1031 // Reads value tasks that have completed, once each, as the loops' continuations do.

/// <summary>
/// <see cref="PoolWorkItem"/>'s waits for user code that has not finished (a tracked work's task, a pump consumer's or a
/// batcher dispatch's pending <see cref="ValueTask"/>): the loops register their cached continuation on it and let go of
/// their thread. That registration is what keeps the pump's and the batcher's "no allocation per event / per item" true for
/// handlers that complete asynchronously, so it must allocate nothing of ours, for a task, for a <see cref="ValueTask"/>
/// backed by a task or by a pooled <see cref="IValueTaskSource"/>, and for a <see cref="ValueTask{TResult}"/>; and the
/// continuation must run exactly once, when the awaited work completes, never before. Measured on the test's own thread:
/// the registration runs inline on it (a pooled source's continuation too; a task's runs on the pool, the test's thread
/// having a synchronization context).
/// </summary>
public sealed class PoolWorkItemTests
{
    [Fact]
    public void ContinueWhenCompleted_OnAPendingTask_AllocatesNothing_AndRunsTheContinuationOnceTheTaskCompletes()
    {
        var probe = new ContinuationProbe();
        var warmUp = new TaskCompletionSource<bool>(); // the runtime's first use of the path may allocate
        Probe.Continue(warmUp.Task, probe.Continuation);
        warmUp.SetResult(true);
        probe.WaitForRuns(1);

        var source = new TaskCompletionSource<bool>();
        var before = GC.GetAllocatedBytesForCurrentThread();
        Probe.Continue(source.Task, probe.Continuation);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        allocated.Should().Be(0, "the continuation is a cached delegate stored in the task itself");
        probe.Runs.Should().Be(1, "only the warm-up's continuation ran: this task has not completed");
        source.SetResult(true);
        probe.WaitForRuns(2);
    }

    [Fact]
    public void ContinueWhenCompleted_OnAPendingValueTaskOfAPooledSource_AllocatesNothing_AndRunsTheContinuationOnceItCompletes()
    {
        var probe = new ContinuationProbe();
        var source = new PooledSource<int>();
        for (var round = 0; round < 3; round++)
        {
            var pending = new ValueTask(source, source.Version);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Probe.Continue(ref pending, probe.Continuation);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            if (round > 0)
            {
                // Round 0 warms the path up.
                allocated.Should().Be(0, $"round {round}: the registration is the source's own slot, and nothing of ours is created");
            }

            probe.Runs.Should().Be(round, "the source has not completed this round's operation");
            source.Complete(round);
            probe.Runs.Should().Be(round + 1);
            pending.GetAwaiter().GetResult(); // the continuation's consumer: reads the outcome once, as the loops do
            source.Reset();
        }
    }

    [Fact]
    public void ContinueWhenCompleted_OnAPendingValueTaskOfATask_AllocatesNothing_AndRunsTheContinuationOnceItCompletes()
    {
        var probe = new ContinuationProbe();
        var warmUp = new TaskCompletionSource();
        var warmUpPending = new ValueTask(warmUp.Task);
        Probe.Continue(ref warmUpPending, probe.Continuation);
        warmUp.SetResult();
        probe.WaitForRuns(1);

        var source = new TaskCompletionSource();
        var pending = new ValueTask(source.Task);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Probe.Continue(ref pending, probe.Continuation);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        allocated.Should().Be(0);
        probe.Runs.Should().Be(1);
        source.SetResult();
        probe.WaitForRuns(2);
        pending.IsCompletedSuccessfully.Should().BeTrue("what the continuation reads is the awaited work's own outcome");
    }

    [Fact]
    public void ContinueWhenCompleted_OnAPendingValueTaskWithAResult_AllocatesNothing_AndLeavesTheResultForTheContinuation()
    {
        var probe = new ContinuationProbe();
        var source = new PooledSource<string>();
        for (var round = 0; round < 3; round++)
        {
            var pending = new ValueTask<string>(source, source.Version);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Probe.Continue(ref pending, probe.Continuation);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            if (round > 0)
            {
                allocated.Should().Be(0, $"round {round}");
            }

            probe.Runs.Should().Be(round);
            source.Complete("result " + round);
            probe.Runs.Should().Be(round + 1);
            pending.GetAwaiter().GetResult().Should().Be("result " + round, "the continuation reads the result from the value task it was handed back");
            source.Reset();
        }
    }

    [Fact]
    public void ContinueWhenCompleted_OnAFaultedWait_StillRunsTheContinuation_WhichReadsTheFaultItself()
    {
        var probe = new ContinuationProbe();
        var source = new PooledSource<int>();
        var pending = new ValueTask(source, source.Version);
        Probe.Continue(ref pending, probe.Continuation);

        source.Fail(new InvalidOperationException("handler failed"));

        probe.Runs.Should().Be(1);
        var read = () => pending.GetAwaiter().GetResult();
        read.Should().Throw<InvalidOperationException>().WithMessage("handler failed");
    }

    /// <summary>Counts the runs of one cached continuation, as a loop's is.</summary>
    private sealed class ContinuationProbe
    {
        private int _runs;

        public ContinuationProbe() => Continuation = () => Interlocked.Increment(ref _runs);

        public Action Continuation { get; }

        public int Runs => Volatile.Read(ref _runs);

        /// <summary>
        /// Waits until the continuation has run <paramref name="runs"/> times in all (a task's continuation runs on the pool
        /// when the completing thread has a synchronization context, as a test's has), and checks that it ran no more.
        /// </summary>
        public void WaitForRuns(int runs)
        {
            SpinWait.SpinUntil(() => Runs >= runs, Bounded.HangLimit).Should().BeTrue($"the continuation runs once the awaited work completes ({runs} in all)");
            Runs.Should().Be(runs);
        }
    }

    /// <summary>Opens <see cref="PoolWorkItem"/>'s protected helpers to the tests.</summary>
    private sealed class Probe : PoolWorkItem
    {
        public static void Continue(Task task, Action continuation) => ContinueWhenCompleted(task, continuation);

        public static void Continue(ref ValueTask pending, Action continuation) => ContinueWhenCompleted(ref pending, continuation);

        public static void Continue<T>(ref ValueTask<T> pending, Action continuation) => ContinueWhenCompleted(ref pending, continuation);

        protected override void Execute()
        {
        }
    }

    /// <summary>A reusable source, as a pooled handler's would be; its continuations run inline on the completing thread.</summary>
    private sealed class PooledSource<T> : IValueTaskSource, IValueTaskSource<T>
    {
        private ManualResetValueTaskSourceCore<T> _core;

        public short Version => _core.Version;

        public void Complete(T result) => _core.SetResult(result);

        public void Fail(Exception exception) => _core.SetException(exception);

        public void Reset() => _core.Reset();

        public T GetResult(short token) => _core.GetResult(token);

        void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
