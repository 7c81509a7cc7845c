using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// The gate's and the group's calls that must really wait (for a stop in flight) complete under a caller's context that
/// never runs what is posted to it (a UI thread blocked on the call), and the gate's own continuations are never posted
/// to a context that user code left on a thread it ran on. (Api/SynchronizationContextTests holds the other primitives'.)
/// </summary>
public sealed class LifecycleSynchronizationContextTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task AStartThatWaitsForAStopInFlight_CompletesUnderABlockedContext()
    {
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { AllowRestart = true });
        await gate.StartAsync().OrHang();
        var stop = gate.StopAsync();
        await stopEntered.Task.OrHang();

        var posted = OnBlockedContext(() =>
        {
            var start = gate.StartAsync();
            start.IsCompleted.Should().BeFalse("it waits for the stop, released below");
            _ = Task.Run(stopMayReturn.SetResult);
            return new Task[] { start };
        });

        posted.Should().Be(0);
        (await stop.OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Running);
    }

    [Fact]
    public async Task AGroupsBoundedCloseThatMustWait_CompletesUnderABlockedContext()
    {
        var stopEntered = Bounded.NewGate();
        var stopMayReturn = Bounded.NewGate();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(new LifecycleGate(
            stop: async _ =>
            {
                stopEntered.TrySetResult();
                await stopMayReturn.Task;
            },
            options: new LifecycleGateOptions { Name = "db" }));
        await group.StartAsync().OrHang();

        var posted = OnBlockedContext(() =>
        {
            var close = group.CloseAsync(TimeSpan.FromMinutes(5));
            close.IsCompleted.Should().BeFalse("it waits for the gate's stop, released below");
            _ = Task.Run(async () =>
            {
                await stopEntered.Task;
                stopMayReturn.SetResult();
            });
            return new[] { close };
        });

        posted.Should().Be(0);
        group.State.Should().Be(LifecycleState.Stopped);
    }

    /// <summary>
    /// A stop during a start cancels the start's token on the stop's own thread: the start's cancellation callbacks run
    /// there, and one may leave a context behind (registered without the execution context, nothing restores it). The
    /// stop's wait for the start must not come back through that context.
    /// </summary>
    [Fact]
    public async Task AStopWaitingForAStart_IsNotPostedToAContextTheStartsCancellationCallbackLeftOnItsThread()
    {
        var context = new CountingContext();
        var clock = new ManualTimeProvider();
        var startEntered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, token) =>
            {
                token.UnsafeRegister(static state => SynchronizationContext.SetSynchronizationContext((SynchronizationContext)state!), context);
                startEntered.TrySetResult();
                await startMayReturn.Task; // ignores its token
            },
            options: new LifecycleGateOptions { TimeProvider = clock });
        var start = gate.StartAsync();
        await startEntered.Task.OrHang();

        var stop = gate.StopAsync();
        await clock.WhenTimersArmed().OrHang(); // the stop cancelled the start's token and waits for the start, bounded
        startMayReturn.SetResult();

        (await stop.OrHang()).Should().BeTrue();
        (await start.OrHang()).Should().BeTrue("the start ignored its token and succeeded");
        context.Posts.Should().Be(0, "the stop went on without the context left on its thread");
    }

    /// <summary>Starts the calls on a thread whose context never runs posted work, blocks on each, and returns how many posts it got.</summary>
    private static int OnBlockedContext(Func<IReadOnlyList<Task>> calls)
    {
        var context = new BlockedContext();
        var previous = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            foreach (var call in calls())
            {
#pragma warning disable VSTHRD002 // a synchronous wait on the blocked context is the point of the test
                call.Wait(Bound).Should().BeTrue("a call blocked on by its caller's context must complete without that context");
#pragma warning restore VSTHRD002
            }
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(previous);
        }

        return context.Posts;
    }

    /// <summary>A context like a UI thread's that is blocked: it accepts posted work and never runs it.</summary>
    private sealed class BlockedContext : SynchronizationContext
    {
        private int _posts;

        public int Posts => Volatile.Read(ref _posts);

        public override void Post(SendOrPostCallback d, object? state) => Interlocked.Increment(ref _posts);

        public override void Send(SendOrPostCallback d, object? state) => throw new InvalidOperationException("The context is blocked.");
    }

    /// <summary>A context that counts what is posted to it and runs it on the thread pool.</summary>
    private sealed class CountingContext : SynchronizationContext
    {
        private int _posts;

        public int Posts => Volatile.Read(ref _posts);

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref _posts);
            ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }
}
