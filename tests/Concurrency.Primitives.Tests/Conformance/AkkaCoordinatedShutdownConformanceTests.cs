using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using static Concurrency.Primitives.LifecycleState;

namespace Concurrency.Primitives.Tests.Conformance;

// Akka.NET's CoordinatedShutdownSpec (src/core/Akka.Tests/Actor/CoordinatedShutdownSpec.cs) ported to OrderedTeardown and,
// where phases depend on each other, LifecycleGroup.
//
// Mapping: a CoordinatedShutdown runs named phases in the topological order of their depends-on sets, each phase's tasks
// together, each phase bounded by its timeout. On one OrderedTeardown, the phases in order are its steps in the order they
// run (the reverse of their registration), one step per task, one after another; a phase timeout is
// OrderedTeardownOptions.ShutdownTimeout (the bound of each step), here on a ManualTimeProvider. Where phases depend on
// each other, a phase is a gate of a LifecycleGroup: the group starts its gates in the topological order of their
// dependencies and stops them in reverse, so a phase that must run after phase X during the shutdown is a gate that X
// depends on, and the tasks of one phase are gates that do not depend on each other (they stop together, as a phase's
// tasks run together). Run is ExecuteAsync (StopAsync for a group); a phase's task is a step (a ScriptedGate's stop
// delegate), and TestActor.Tell is the journal.
//
// Ported (upstream test -> test here):
//   CoordinatedShutdown_must_sort_phases_in_topological_order
//                                             -> Gates_StartInTheTopologicalOrderOfTheirDependencies_AndStopInReverse (9 cases)
//     DIFFERENCE BY DESIGN: TopologicalSort places a phase that is only named as a dependency ({ b: [a] } sorts as a, b);
//     a group refuses a dependency on a gate it does not hold -> ADependencyOnAGateNotInTheGroup_IsRefusedAtStart_...
//   CoordinatedShutdown_must_detect_cycles_in_phases_non_DAG
//                                             -> DependencyCycles_AreRefusedAtStart_NamingTheCycle_AndNothingStarts (4 cases)
//     DIFFERENCE BY DESIGN: the refusal is a LifecycleDependencyException (an InvalidOperationException, not an
//     ArgumentException) thrown by StartAsync, naming the cycle. Upstream's third and fourth cases add the key "c" (and
//     "d") twice to a Dictionary, which throws ArgumentException before the sort runs; they are ported as meant: c depends
//     on a and b while b depends on c; d depends on a and c, c on b, b on d.
//   CoordinatedShutdown_must_run_ordered_phases
//                                             -> Steps_RunInTheirOrder_EachOnlyOnceThePreviousHasCompleted
//                                              and PhasesAsGates_StopInDependencyOrder_TheGatesOfOnePhaseTogether
//     DIFFERENCE BY DESIGN: an OrderedTeardown runs its steps one at a time, so b1 and b2 run one after the other; the
//     tasks of one phase run together only as gates of a group. Upstream's 100 ms delay in b2 is a held step (a held stop).
//   CoordinatedShutdown_must_only_run_once    -> ASecondExecution_JoinsTheOneInProgress_AndAfterItRunsNoStepAgain
//                                              and ASecondStop_JoinsTheOneInProgress_AndAfterItHasNothingToStop
//     DIFFERENCE BY DESIGN: there is no shutdown reason. A second ExecuteAsync joins the execution in progress and
//     completes at once after it; a second StopAsync joins the stop in progress and returns false (it did not stop the
//     group), as does a stop after the group stopped.
//   CoordinatedShutdown_must_continue_after_timeout_or_failure
//                                             -> AFailedOrTimedOutStep_EndsTheExecutionThere_AndTheNextExecutionResumesAtIt
//     DIFFERENCE BY DESIGN: there is no recover = on. A step that throws or times out ends the execution there: the
//     exception (a LifecycleStopTimeoutException naming the step, for a timeout) reaches the callers and the later steps
//     do not run, as with recover = off. The next ExecuteAsync resumes at that step: a failed step is invoked again, a
//     timed-out one (told through its token) is awaited again, never invoked twice. Each later step runs once in the end.
//   CoordinatedShutdown_must_abort_if_recover_is_off
//                                             -> AStepThatTimesOut_EndsTheExecutionWithATimeoutNamingIt_AndNoLaterStepRuns
//                                              and AGroupStopThatTimesOut_NamesTheGateStillStopping_AndStopsNothingItDependsOn
//     The group's bound is on the whole stop (LifecycleGroupOptions.ShutdownTimeout), not on each phase.
//   CoordinatedShutdown_must_be_possible_to_add_tasks_in_later_phase_from_earlier_phase
//                                             -> AStepAddedDuringTheTeardown_IsRefused_AndNeverRuns
//     DIFFERENCE BY DESIGN: once the teardown has begun it accepts no step (ClosedException): a step registered while
//     others run could be registered after its turn has passed, and would then never run; the caller releases the
//     resource itself. A group accepts no gate once started (LifecycleGroupArgumentTests).
//
// Skipped:
//   CoordinatedShutdown_must_run_from_given_phase: neither OrderedTeardown nor LifecycleGroup can run a teardown from a
//     later step or gate; the teardown always begins with the run, the group's stop with the gates nothing depends on.
//   CoordinatedShutdown_must_predefined_phases_from_config, CoordinatedShutdown_must_be_possible_to_parse_phases_from_config:
//     there are no predefined phases and no configuration (HOCON) to read them from; steps and gates are added in code.
//   CoordinatedShutdown_must_terminate_ActorSystem, CoordinatedShutdown_must_be_run_by_ActorSystem_Terminate,
//   CoordinatedShutdown_must_not_be_run_by_ActorSystem_Terminate_when_run_by_actor_system_terminate_is_off,
//   CoordinatedShutdown_must_not_allow_terminate_actor_system_set_to_off_and_run_by_actor_system_terminate_set_to_on:
//     an ActorSystem's termination and its settings; there is no actor system, and no shutdown reason.
public sealed class AkkaCoordinatedShutdownConformanceTests
{
    /// <summary>Upstream's timeout of phase b.</summary>
    private static readonly TimeSpan PhaseTimeout = TimeSpan.FromMilliseconds(100);

    private readonly ConcurrentQueue<string> _journal = new();

    [Theory]
    [InlineData("")]
    [InlineData("a")]
    [InlineData("a b:a")]
    [InlineData("a c:a b:a")]
    [InlineData("a b:a c:b")]
    [InlineData("a b:a c:a,b")]
    [InlineData("a b c:a,b")]
    [InlineData("a b:a c:b d:b,c e:d")]
    [InlineData("a1 a2:a1 a3:a2 b1 b2:b1 b3:b2")]
    public async Task Gates_StartInTheTopologicalOrderOfTheirDependencies_AndStopInReverse(string phases)
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_sort_phases_in_topological_order
        var (group, gates) = Build(phases);

        (await group.StartAsync().OrHang()).Should().BeTrue();
        (await group.StopAsync().OrHang()).Should().BeTrue();

        var journal = _journal.ToList();
        journal.Should().HaveCount(3 * gates.Count, "each gate started, ran and stopped once");
        foreach (var (name, dependsOn) in Parse(phases))
        {
            journal.Should().ContainSingle(entry => entry == "start:" + name);
            journal.Should().ContainSingle(entry => entry == "stop:" + name);
            foreach (var dependency in dependsOn)
            {
                journal.IndexOf("start:" + name).Should().BeGreaterThan(
                    journal.IndexOf("running:" + dependency), $"'{name}' depends on '{dependency}': it starts once that one runs ({string.Join(", ", journal)})");
                journal.IndexOf("stop:" + dependency).Should().BeGreaterThan(
                    journal.IndexOf("stop:" + name), $"'{name}' depends on '{dependency}': that one stops after it ({string.Join(", ", journal)})");
            }
        }

        gates.Values.Should().NotContain(gate => gate.Gate.State != Stopped);
        group.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task ADependencyOnAGateNotInTheGroup_IsRefusedAtStart_NamingIt_AndOnceAddedItIsOrderedFirst()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_sort_phases_in_topological_order ({ b: [a] })
        var (group, gates) = Build("b:a");

        var refused = (await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<LifecycleDependencyException>()).Which;

        (refused.GateName, refused.MissingDependency).Should().Be(("b", "a"));
        refused.Message.Should().Contain("gate 'b' depends on 'a', which is not in the group");
        _journal.Should().BeEmpty();
        group.State.Should().Be(NotStarted);

        var a = Gate("a");
        group.Add(a.Gate);
        (await group.StartAsync().OrHang()).Should().BeTrue();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        _journal.Should().Equal("start:a", "running:a", "start:b", "running:b", "stop:b", "stop:a");
        (a.Gate.State, gates["b"].Gate.State).Should().Be((Stopped, Stopped));
    }

    [Theory]
    [InlineData("a:a", "a")]
    [InlineData("b:a a:b", "a,b")]
    [InlineData("a c:a,b b:c", "b,c")]
    [InlineData("a b:d c:b d:a,c", "b,c,d")]
    public async Task DependencyCycles_AreRefusedAtStart_NamingTheCycle_AndNothingStarts(string phases, string inTheCycle)
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_detect_cycles_in_phases_non_DAG
        var (group, _) = Build(phases);
        var dependencies = Parse(phases).ToDictionary(phase => phase.Name, phase => phase.DependsOn);

        var refused = (await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<LifecycleDependencyException>()).Which;

        var cycle = refused.Cycle;
        cycle.Should().HaveCountGreaterThan(1);
        cycle[^1].Should().Be(cycle[0], "the first gate of the cycle is repeated at its end");
        cycle.Distinct().Should().BeEquivalentTo(inTheCycle.Split(','));
        for (var i = 0; i + 1 < cycle.Count; i++)
        {
            dependencies[cycle[i]].Should().Contain(cycle[i + 1], "each gate of the cycle depends on the next");
        }

        refused.GateName.Should().Be(cycle[0]);
        refused.MissingDependency.Should().BeNull();
        refused.Message.Should().Contain(string.Join(" → ", cycle));
        _journal.Should().BeEmpty();
        group.State.Should().Be(NotStarted);
    }

    [Fact]
    public async Task Steps_RunInTheirOrder_EachOnlyOnceThePreviousHasCompleted()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_run_ordered_phases
        var teardown = Teardown();
        var b2Entered = Bounded.NewGate();
        var b2Release = Bounded.NewGate();
        teardown.Add(Step("C"), "c1"); // registered last to first: they run in reverse order of registration
        teardown.Add(
            async _ =>
            {
                b2Entered.TrySetResult();
                await b2Release.Task;
                _journal.Enqueue("B");
            },
            "b2");
        teardown.Add(Step("B"), "b1");
        teardown.Add(Step("A"), "a1");

        var execution = teardown.ExecuteAsync();
        await b2Entered.Task.OrHang();

        _journal.Should().Equal("A", "B");
        teardown.PendingStep.Should().Be("b2");
        execution.IsCompleted.Should().BeFalse("c1 waits for b2");

        b2Release.SetResult();
        await execution.OrHang();

        _journal.Should().Equal("A", "B", "B", "C");
        teardown.IsCompleted.Should().BeTrue();
        teardown.PendingStep.Should().BeNull();
    }

    [Fact]
    public async Task PhasesAsGates_StopInDependencyOrder_TheGatesOfOnePhaseTogether()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_run_ordered_phases: phases a, b (after a) and
        // c (after a and b); b's two tasks are gates b1 and b2, which depend on nothing of each other.
        var (group, gates) = Build("c b1:c b2:c a:b1,b2,c");
        var release = Bounded.NewGate();
        gates["b1"].HoldStop = gates["b2"].StopEntered.Task; // b1's stop returns only once b2's has begun: they stop together
        gates["b2"].HoldStop = release.Task;
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await gates["b1"].Gate.WhenStopped.OrHang();

        Stops().Should().HaveCount(3).And.StartWith("stop:a").And.Contain(new[] { "stop:b1", "stop:b2" });
        gates["c"].StopEntered.Task.IsCompleted.Should().BeFalse("c is not stopped before every gate of b has");
        gates["c"].Gate.State.Should().Be(Running);
        stop.IsCompleted.Should().BeFalse();

        release.SetResult();
        (await stop.OrHang()).Should().BeTrue();

        Stops().Should().HaveCount(4).And.EndWith("stop:c");
        gates.Values.Should().OnlyContain(gate => gate.Gate.State == Stopped);
    }

    [Fact]
    public async Task ASecondExecution_JoinsTheOneInProgress_AndAfterItRunsNoStepAgain()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_only_run_once
        var teardown = Teardown();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var invocations = 0;
        teardown.Add(
            async _ =>
            {
                Interlocked.Increment(ref invocations);
                entered.TrySetResult();
                await release.Task;
                _journal.Enqueue("A");
            },
            "a1");

        var first = teardown.ExecuteAsync();
        await entered.Task.OrHang();
        var second = teardown.ExecuteAsync();
        second.IsCompleted.Should().BeFalse("it joins the execution in progress");

        release.SetResult();
        await Task.WhenAll(first, second).OrHang();
        var third = teardown.ExecuteAsync();

        third.IsCompleted.Should().BeTrue("the teardown has completed");
        await third;
        invocations.Should().Be(1);
        _journal.Should().Equal("A");
    }

    [Fact]
    public async Task ASecondStop_JoinsTheOneInProgress_AndAfterItHasNothingToStop()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_only_run_once
        var (group, gates) = Build("a b:a");
        var release = Bounded.NewGate();
        gates["a"].HoldStop = release.Task;
        await group.StartAsync().OrHang();

        var first = group.StopAsync();
        await gates["a"].StopEntered.Task.OrHang();
        var second = group.StopAsync();
        second.IsCompleted.Should().BeFalse("it joins the stop in progress");

        release.SetResult();
        (await Task.WhenAll(first, second).OrHang()).Should().Equal(true, false);
        (await group.StopAsync().OrHang()).Should().BeFalse("the group has stopped");

        Stops().Should().Equal("stop:b", "stop:a");
        group.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AFailedOrTimedOutStep_EndsTheExecutionThere_AndTheNextExecutionResumesAtIt()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_continue_after_timeout_or_failure
        var clock = new ManualTimeProvider();
        var teardown = Teardown(clock);
        var boom = new InvalidOperationException("boom");
        var a1Invocations = 0;
        var b1Invocations = 0;
        var b1Entered = Bounded.NewGate<CancellationToken>();
        var b1 = Bounded.NewGate();
        teardown.Add(Step("C"), "c1");
        teardown.Add(
            token =>
            {
                Interlocked.Increment(ref b1Invocations);
                _journal.Enqueue("B");
                b1Entered.TrySetResult(token);
                return b1.Task; // completed only by the test, after its timeout
            },
            "b1");
        teardown.Add(Step("A2"), "a2");
        teardown.Add(
            _ =>
            {
                _journal.Enqueue("A1");
                return Interlocked.Increment(ref a1Invocations) == 1 ? Task.FromException(boom) : Task.CompletedTask;
            },
            "a1");

        (await teardown.Awaiting(t => t.ExecuteAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(boom);
        _journal.Should().Equal(new[] { "A1" }, "the failed step ends the execution");
        teardown.IsCompleted.Should().BeFalse();

        var second = teardown.ExecuteAsync();
        var b1Token = await b1Entered.Task.OrHang();
        await clock.WhenTimersArmed(2).OrHang();
        clock.Advance(PhaseTimeout);

        var timeout = (await second.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.Step.Should().Be("b1");
        b1Token.IsCancellationRequested.Should().BeTrue("the timed-out step is told its time is up");
        _journal.Should().Equal(new[] { "A1", "A1", "A2", "B" }, "the execution resumed at the failed step and ended at the timed-out one");
        teardown.IsCompleted.Should().BeFalse();

        b1.SetResult();
        await teardown.ExecuteAsync().OrHang();

        _journal.Should().Equal("A1", "A1", "A2", "B", "C");
        (a1Invocations, b1Invocations).Should().Be((2, 1), "a failed step is invoked again, a timed-out one awaited again");
        teardown.IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task AStepThatTimesOut_EndsTheExecutionWithATimeoutNamingIt_AndNoLaterStepRuns()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_abort_if_recover_is_off
        var clock = new ManualTimeProvider();
        var teardown = Teardown(clock);
        var b1Entered = Bounded.NewGate();
        teardown.Add(Step("C"), "c1");
        teardown.Add(
            _ =>
            {
                _journal.Enqueue("B");
                b1Entered.TrySetResult();
                return Bounded.NewGate().Task; // never completed
            },
            "b1");

        var execution = teardown.ExecuteAsync();
        await b1Entered.Task.OrHang();
        await clock.WhenTimersArmed(2).OrHang();
        clock.Advance(PhaseTimeout);

        var timeout = (await execution.Awaiting(e => e.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.Should().BeAssignableTo<TimeoutException>();
        (timeout.Step, timeout.RunAbandoned).Should().Be(("b1", false));
        _journal.Should().Equal(new[] { "B" }, "c1 does not run after the timeout");
        teardown.IsCompleted.Should().BeFalse();
        teardown.PendingStep.Should().BeNull();
    }

    [Fact]
    public async Task AGroupStopThatTimesOut_NamesTheGateStillStopping_AndStopsNothingItDependsOn()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_abort_if_recover_is_off: phase b's task never
        // completes, and phase c (after b) does not run.
        var clock = new ManualTimeProvider();
        var (group, gates) = Build("c b:c", new LifecycleGroupOptions { Name = "shutdown", ShutdownTimeout = PhaseTimeout, TimeProvider = clock });
        var release = Bounded.NewGate();
        gates["b"].HoldStop = release.Task;
        await group.StartAsync().OrHang();

        var stop = group.StopAsync();
        await gates["b"].StopEntered.Task.OrHang();
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(PhaseTimeout);

        var timeout = (await stop.Awaiting(s => s.OrHang()).Should().ThrowAsync<LifecycleGroupStopTimeoutException>()).Which;
        timeout.Should().BeAssignableTo<TimeoutException>();
        timeout.StillStopping.Should().BeEquivalentTo(new Dictionary<string, string> { ["b"] = "stop" });
        timeout.NotYetStopped.Should().Equal("c");
        gates["c"].StopEntered.Task.IsCompleted.Should().BeFalse("c is not stopped while b has not stopped");
        (group.State, gates["b"].Gate.State, gates["c"].Gate.State).Should().Be((StopFailed, Stopping, Running));

        release.SetResult();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        Stops().Should().Equal("stop:b", "stop:c");
        group.State.Should().Be(Stopped);
    }

    [Fact]
    public async Task AStepAddedDuringTheTeardown_IsRefused_AndNeverRuns()
    {
        // Ports Akka.NET CoordinatedShutdownSpec.CoordinatedShutdown_must_be_possible_to_add_tasks_in_later_phase_from_earlier_phase
        var teardown = Teardown();
        Exception? refused = null;
        teardown.Add(Step("B"), "b0");
        teardown.Add(
            _ =>
            {
                _journal.Enqueue("A");
                refused = Record.Exception(() => teardown.Add(Step("late"), "b1"));
                return Task.CompletedTask;
            },
            "a1");

        await teardown.ExecuteAsync().OrHang();

        refused.Should().BeOfType<ClosedException>().Which.Message.Should().Be(
            "Teardown 'shutdown' has begun; it accepts no more steps. Release the resource yourself.");
        _journal.Should().Equal("A", "B");
        teardown.IsCompleted.Should().BeTrue();
    }

    private static (string Name, string[] DependsOn)[] Parse(string phases) =>
        phases.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(phase => phase.Split(':'))
            .Select(parts => (parts[0], parts.Length > 1 ? parts[1].Split(',') : Array.Empty<string>()))
            .ToArray();

    /// <summary>A group holding one gate per phase (<c>"name:dependency,dependency"</c>, space-separated), added in that order.</summary>
    private (LifecycleGroup Group, Dictionary<string, ScriptedGate> Gates) Build(string phases, LifecycleGroupOptions? options = null)
    {
        var group = new LifecycleGroup(options ?? new LifecycleGroupOptions { Name = "shutdown" });
        var gates = new Dictionary<string, ScriptedGate>();
        foreach (var (name, dependsOn) in Parse(phases))
        {
            gates[name] = Gate(name);
            group.Add(gates[name].Gate, dependsOn);
        }

        return (group, gates);
    }

    private ScriptedGate Gate(string name) => new(name, _journal);

    private List<string> Stops() => _journal.Where(entry => entry.StartsWith("stop:", StringComparison.Ordinal)).ToList();

    private static OrderedTeardown Teardown(ManualTimeProvider? clock = null) => new(new OrderedTeardownOptions
    {
        Name = "shutdown",
        ShutdownTimeout = PhaseTimeout,
        TimeProvider = clock ?? new ManualTimeProvider(), // a clock no test moves bounds nothing it did not mean to
    });

    private Func<CancellationToken, Task> Step(string message) => _ =>
    {
        _journal.Enqueue(message);
        return Task.CompletedTask;
    };
}
