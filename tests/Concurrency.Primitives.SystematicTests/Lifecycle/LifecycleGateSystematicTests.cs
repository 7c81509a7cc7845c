using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Concurrency.Primitives.SystematicTests.HandRolled;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Lifecycle;

/// <summary>
/// The "started" flag incident under Coyote: concurrent starts and stops against the hand-rolled flag must be
/// caught double-starting or stopping what was not started; the gate must hold for every schedule explored.
/// </summary>
public sealed class LifecycleGateSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public LifecycleGateSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void HandRolledStartedFlag_ConcurrentStarts_AreCaughtDoubleStarting()
    {
        var report = CoyoteHarness.Explore(_output, "hand-rolled started flag", Iterations, HandRolledScenarioAsync);

        report.ShouldFindBug(LifecycleLedger.DoubleStart);
    }

    [Fact]
    public void LifecycleGate_StartsAndStopsAlternate_AndNoStopStepRunsUnderTheRun()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGate, concurrent start/stop/restart", Iterations, GateScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void LifecycleGate_AStoppedHandlerWaitingForStop_NeverDeadlocks()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGate, a Stopped handler blocking on StopAsync", Iterations, StoppedHandlerWaitsScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// Guava's listener rule: a handler of the Stopped transition that waits synchronously for StopAsync (joining the stop
    /// that raised it, or finding it done) returns, whichever of two concurrent stops drives the teardown and whenever a
    /// third stop arrives. A stop that raised Stopped before releasing its callers deadlocks here.
    /// </summary>
    private static async Task StoppedHandlerWaitsScenarioAsync()
    {
        var gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: async _ => await Task.Yield());
        var handlerReturned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.Stopped)
            {
#pragma warning disable VSTHRD002 // the synchronous wait is the scenario
                gate.StopAsync().Wait();
#pragma warning restore VSTHRD002
                handlerReturned.TrySetResult();
            }
        };
        await gate.StartAsync();

        var stops = new[] { Task.Run(() => gate.StopAsync()), Task.Run(() => gate.StopAsync()), Task.Run(() => gate.StopAsync()) };
        var results = await Task.WhenAll(stops);

        Specification.Assert(Array.FindAll(results, stopped => stopped).Length == 1, "Exactly one stop reports that it stopped the gate.");
        Specification.Assert(gate.State == LifecycleState.Stopped, $"The gate is {gate.State}, not Stopped.");
        await handlerReturned.Task; // never completes if the handler's wait deadlocked: Coyote reports it
    }

    private static async Task HandRolledScenarioAsync()
    {
        var ledger = new LifecycleLedger();
        var service = new StartedFlagService(ledger.StartAsync, ledger.StopAsync);

        var first = Task.Run(service.StartAsync);
        var second = Task.Run(service.StartAsync);
        var stop = Task.Run(service.StopAsync);
        await Task.WhenAll(first, second, stop);
    }

    private static async Task GateScenarioAsync()
    {
        var ledger = new LifecycleLedger();
        var gate = new LifecycleGate(
            start: (_, _) => ledger.StartAsync(),
            run: async token =>
            {
                ledger.RunEntered();
                try
                {
                    await Task.Yield();
                }
                finally
                {
                    ledger.RunReturned();
                }
            },
            stop: _ => ledger.StopAsync(),
            options: new LifecycleGateOptions { AllowRestart = true });

        var callers = new[]
        {
            Task.Run(() => IgnoreExpectedAsync(gate.StartAsync())),
            Task.Run(() => IgnoreExpectedAsync(gate.StartAsync())),
            Task.Run(() => IgnoreExpectedAsync(gate.StopAsync())),
            Task.Run(() => IgnoreExpectedAsync(gate.StartAsync())),
        };
        await Task.WhenAll(callers);
        await gate.DisposeAsync();

        Specification.Assert(gate.State is LifecycleState.Stopped or LifecycleState.NotStarted, $"After dispose the gate must be stopped, not {gate.State}.");
    }

    private static async Task IgnoreExpectedAsync(Task<bool> call)
    {
        try
        {
            await call;
        }
        catch (OperationCanceledException)
        {
            // A start cancelled by a concurrent stop: legal.
        }
        catch (ObjectDisposedException)
        {
            // A start after dispose began: legal.
        }
    }
}
