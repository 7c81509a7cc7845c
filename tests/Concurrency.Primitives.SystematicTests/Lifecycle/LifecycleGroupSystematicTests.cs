using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Concurrency.Primitives.SystematicTests.HandRolled;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Lifecycle;

/// <summary>
/// Ordered start and stop under Coyote. The hand-rolled list (start in a loop, stop in reverse) must be caught when its
/// stop races its start; the group must keep the dependency order for every schedule: its start racing its stop, and a
/// dependency's fault racing its dependents' start.
/// </summary>
public sealed class LifecycleGroupSystematicTests
{
    private const uint Iterations = 1_000;

    // replication and cache both need db (independent of each other: they start and stop concurrently); sync needs
    // both. Listed in a valid start order for the hand-rolled list.
    private static readonly Dictionary<string, string[]> Node = new()
    {
        ["db"] = Array.Empty<string>(),
        ["replication"] = new[] { "db" },
        ["cache"] = new[] { "db" },
        ["sync"] = new[] { "replication", "cache" },
    };

    private readonly ITestOutputHelper _output;

    public LifecycleGroupSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void HandRolledOrderedStart_StopRacingStart_IsCaughtBreakingTheOrder()
    {
        var report = CoyoteHarness.Explore(_output, "hand-rolled ordered start, stop racing start", Iterations, HandRolledScenarioAsync);

        report.ShouldFindBug(DependencyLedger.StopWithoutStart, DependencyLedger.StoppedUnderDependent, DependencyLedger.LeftRunning);
    }

    [Fact]
    public void LifecycleGroup_StartRacingStop_KeepsTheDependencyOrder_AndLeavesNothingRunning()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGroup, start racing stop", Iterations, StartRacingStopScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void LifecycleGroup_ADependencysFaultRacingItsDependentsStart_KeepsTheOrder_AndStopsEverything()
    {
        var report = CoyoteHarness.Explore(_output, "LifecycleGroup, a dependency's fault racing its dependents' start", Iterations, FaultRacingStartScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    private static async Task HandRolledScenarioAsync()
    {
        var ledger = new DependencyLedger(Node);
        var list = new OrderedStartList();
        foreach (var name in Node.Keys)
        {
            list.Add(() => ledger.StartAsync(name), () => ledger.StopAsync(name));
        }

        var start = Task.Run(list.StartAsync);
        var stop = Task.Run(list.StopAsync);
        await Task.WhenAll(start, stop);
        ledger.AssertNothingRuns();
    }

    private static async Task StartRacingStopScenarioAsync()
    {
        var ledger = new DependencyLedger(Node);
        var group = NewGroup(ledger, faulting: null, LifecycleGroupFaultPolicy.StopGroup);

        var start = Task.Run(() => IgnoreExpectedAsync(group.StartAsync()));
        var stop = Task.Run(() => IgnoreExpectedAsync(group.StopAsync()));
        await Task.WhenAll(start, stop);
        await IgnoreExpectedAsync(group.StopAsync()); // whichever came first, a stop after both leaves nothing running

        Specification.Assert(group.State is LifecycleState.Stopped or LifecycleState.NotStarted, $"The group is {group.State} after its stop.");
        ledger.AssertNothingRuns();
    }

    private static async Task FaultRacingStartScenarioAsync()
    {
        var ledger = new DependencyLedger(Node);
        var group = NewGroup(ledger, faulting: "replication", LifecycleGroupFaultPolicy.StopGroup, allowRestart: true);

        // Two cycles: the first cycle's fault (and the stop it causes) may still be on its way while the second starts.
        for (var cycle = 0; cycle < 2; cycle++)
        {
            try
            {
                await IgnoreExpectedAsync(group.StartAsync(), cancellationExpected: false); // fails (the fault came during the start) or succeeds and then stops itself
            }
            catch (OperationCanceledException)
            {
                Specification.Assert(false, "A start was cancelled, though nobody asked for a stop during it.");
            }

            await IgnoreExpectedAsync(group.StopAsync());
            Specification.Assert(group.State is LifecycleState.Stopped or LifecycleState.StartFailed, $"The group is {group.State} after its stop.");
            ledger.AssertNothingRuns();
        }
    }

    private static LifecycleGroup NewGroup(DependencyLedger ledger, string? faulting, LifecycleGroupFaultPolicy policy, bool allowRestart = false)
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { OnGateFault = policy, AllowRestart = allowRestart });
        foreach (var (name, dependsOn) in Node)
        {
            var gate = new LifecycleGate(
                start: (_, _) => ledger.StartAsync(name),
                run: async token =>
                {
                    await Task.Yield();
                    if (name == faulting)
                    {
                        throw new InvalidOperationException($"{name} faulted");
                    }
                },
                stop: _ => ledger.StopAsync(name),
                options: new LifecycleGateOptions { Name = name, AllowRestart = allowRestart });
            group.Add(gate, dependsOn);
        }

        return group;
    }

    private static async Task IgnoreExpectedAsync(Task call, bool cancellationExpected = true)
    {
        try
        {
            await call;
        }
        catch (OperationCanceledException) when (cancellationExpected)
        {
            // A start cancelled by the concurrent stop: legal.
        }
        catch (InvalidOperationException exception) when (exception.Message.EndsWith("faulted", StringComparison.Ordinal))
        {
            // The faulting gate's own exception: thrown by the start it failed, or by the stop after the group stopped on it.
        }
    }
}
