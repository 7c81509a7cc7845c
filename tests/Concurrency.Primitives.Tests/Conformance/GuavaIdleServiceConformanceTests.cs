using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// Guava's AbstractIdleServiceTest ported to <see cref="LifecycleGate"/>: an idle service is a gate with a Start
/// (startUp) and a Stop (shutDown) and no Run.
/// </summary>
public sealed class GuavaIdleServiceConformanceTests
{
    [Fact]
    public async Task AGateWithoutARun_StartsAndStops()
    {
        // Ports Guava AbstractIdleServiceTest.FunctionalTest.testServiceStartStop
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => Task.CompletedTask);

        await gate.StartAsync().OrHang();
        gate.State.Should().Be(Running);
        await gate.StopAsync().OrHang();
        gate.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AFailingStartUp_IsThrownByStartAsyncAsTheSameInstance_AndLeavesTheGateStartFailed()
    {
        // Ports Guava AbstractIdleServiceTest.FunctionalTest.testStart_failed
        var exception = new Exception("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.FromException(exception), stop: _ => Task.CompletedTask);

        (await gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<Exception>()).Which.Should().BeSameAs(exception);

        gate.State.Should().Be(StartFailed);
    }

    [Fact]
    public async Task AFailingShutDown_IsThrownByStopAsyncAsTheSameInstance_AndLeavesTheGateStopFailed()
    {
        // Ports Guava AbstractIdleServiceTest.FunctionalTest.testStop_failed
        var exception = new Exception("deliberate");
        var gate = new LifecycleGate(start: (_, _) => Task.CompletedTask, stop: _ => Task.FromException(exception));
        await gate.StartAsync().OrHang();

        (await gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<Exception>()).Which.Should().BeSameAs(exception);

        gate.State.Should().Be(StopFailed);
    }

    [Fact]
    public async Task StartUp_RunsOnce_InStarting()
    {
        // Ports Guava AbstractIdleServiceTest.testStart
        var service = new TestService();
        service.StartUpCalls.Should().Be(0);

        await service.Gate.StartAsync().OrHang();

        service.StartUpCalls.Should().Be(1);
        service.Gate.State.Should().Be(Running);
        service.TransitionStates.Should().Equal(Starting);
        await service.Gate.StopAsync().OrHang();
    }

    [Fact]
    public async Task AStartUpThatFails_IsCalledOnce_InStarting_AndLeavesTheGateStartFailed()
    {
        // Ports Guava AbstractIdleServiceTest.testStart_failed
        var exception = new Exception("deliberate");
        var service = new TestService(startUpFailure: exception);

        (await service.Gate.Invoking(g => g.StartAsync().OrHang()).Should().ThrowAsync<Exception>()).Which.Should().BeSameAs(exception);

        service.StartUpCalls.Should().Be(1);
        service.Gate.State.Should().Be(StartFailed);
        service.TransitionStates.Should().Equal(Starting);
    }

    [Fact]
    public async Task StopWithoutStart_CallsNeitherStartUpNorShutDown()
    {
        // Ports Guava AbstractIdleServiceTest.testStop_withoutStart
        // Differs by design: Guava's stop of a NEW service terminates it; the gate's stop before start reports false and
        // the gate stays NotStarted.
        var service = new TestService();

        (await service.Gate.StopAsync().OrHang()).Should().BeFalse();

        (service.StartUpCalls, service.ShutDownCalls).Should().Be((0, 0));
        service.Gate.State.Should().Be(NotStarted);
        service.TransitionStates.Should().BeEmpty();
    }

    [Fact]
    public async Task StartThenStop_CallStartUpAndShutDownOnceEach_InStartingThenStopping()
    {
        // Ports Guava AbstractIdleServiceTest.testStop_afterStart
        var service = new TestService();
        await service.Gate.StartAsync().OrHang();
        (service.StartUpCalls, service.ShutDownCalls).Should().Be((1, 0));

        await service.Gate.StopAsync().OrHang();

        (service.StartUpCalls, service.ShutDownCalls).Should().Be((1, 1));
        service.Gate.State.Should().Be(Stopped);
        service.TransitionStates.Should().Equal(Starting, Stopping);
    }

    [Fact]
    public async Task AShutDownThatFails_IsCalledOnce_InStopping_AndLeavesTheGateStopFailed()
    {
        // Ports Guava AbstractIdleServiceTest.testStop_failed
        var exception = new Exception("deliberate");
        var service = new TestService(shutDownFailure: exception);
        await service.Gate.StartAsync().OrHang();
        (service.StartUpCalls, service.ShutDownCalls).Should().Be((1, 0));

        (await service.Gate.Invoking(g => g.StopAsync().OrHang()).Should().ThrowAsync<Exception>()).Which.Should().BeSameAs(exception);

        (service.StartUpCalls, service.ShutDownCalls).Should().Be((1, 1));
        service.Gate.State.Should().Be(StopFailed);
        service.TransitionStates.Should().Equal(Starting, Stopping);
    }

    [Fact]
    public async Task TheGatesName_IdentifiesItInItsMessages_AndItsStateFollowsTheLifecycle()
    {
        // Ports Guava AbstractIdleServiceTest.testServiceToString ("TestService [NEW]", "[RUNNING]", "[TERMINATED]")
        // The gate has no ToString contract; its identity is Name (default "LifecycleGate"), used in its messages.
        new LifecycleGate(start: (_, _) => Task.CompletedTask).Name.Should().Be("LifecycleGate");
        var service = new TestService();
        service.Gate.Name.Should().Be("TestService");
        service.Gate.State.Should().Be(NotStarted);

        await service.Gate.StartAsync().OrHang();
        service.Gate.State.Should().Be(Running);
        await service.Gate.StopAsync().OrHang();
        service.Gate.State.Should().Be(Stopped);

        await service.Gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().WithMessage("Gate 'TestService' has been stopped*");
    }

    [Fact]
    public async Task WaitingForWhenRunningWithATimeout_TimesOutWhileTheStartIsPending_AndTheGateStaysStarting()
    {
        // Ports Guava AbstractIdleServiceTest.testTimeout ("Timed out waiting for Foo [STARTING] to reach the RUNNING state.")
        // The gate's awaitRunning(timeout) is a bounded wait on WhenRunning; the start it waits for goes on.
        var time = new ManualTimeProvider();
        var startMayReturn = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: async (_, _) => await startMayReturn.Task, // an executor that never runs its commands, until released
            options: new LifecycleGateOptions { Name = "Foo" });
        var start = gate.StartAsync();

        var wait = gate.WhenRunning.WaitAsync(TimeSpan.FromMilliseconds(1), time);
        time.Advance(TimeSpan.FromMilliseconds(1));

        await wait.Invoking(w => w.OrHang()).Should().ThrowAsync<TimeoutException>();
        gate.State.Should().Be(Starting);
        startMayReturn.SetResult();
        (await start.OrHang()).Should().BeTrue();
        await gate.WhenRunning.OrHang();
        await gate.StopAsync().OrHang();
    }

    /// <summary>Guava's TestService: counts startUp and shutDown calls and records the state each one ran in.</summary>
    private sealed class TestService
    {
        private readonly ConcurrentQueue<LifecycleState> _transitionStates = new();
        private int _startUpCalls;
        private int _shutDownCalls;

        public TestService(Exception? startUpFailure = null, Exception? shutDownFailure = null)
        {
            Gate = new LifecycleGate(
                start: (_, _) =>
                {
                    ShutDownCalls.Should().Be(0);
                    Interlocked.Increment(ref _startUpCalls).Should().Be(1);
                    _transitionStates.Enqueue(Gate!.State);
                    return startUpFailure is null ? Task.CompletedTask : Task.FromException(startUpFailure);
                },
                stop: _ =>
                {
                    StartUpCalls.Should().Be(1);
                    Interlocked.Increment(ref _shutDownCalls).Should().Be(1);
                    _transitionStates.Enqueue(Gate!.State);
                    return shutDownFailure is null ? Task.CompletedTask : Task.FromException(shutDownFailure);
                },
                options: new LifecycleGateOptions { Name = "TestService" });
        }

        public LifecycleGate Gate { get; }

        public int StartUpCalls => Volatile.Read(ref _startUpCalls);

        public int ShutDownCalls => Volatile.Read(ref _shutDownCalls);

        public LifecycleState[] TransitionStates => _transitionStates.ToArray();
    }
}
