using System;
using System.Collections.Concurrent;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>LifecycleGroup: dependencies checked at start, and misuse refused at the call that misused it, the group intact.</summary>
public sealed class LifecycleGroupArgumentTests
{
    private readonly ConcurrentQueue<string> _journal = new();

    [Fact]
    public async Task Cycle_IsRefusedAtStart_NamingTheCycle_AndNothingStarts()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(Gate("a"), "b");
        group.Add(Gate("b"), "c");
        group.Add(Gate("c"), "a");
        group.Add(Gate("d"));

        var refused = (await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<LifecycleDependencyException>()).Which;

        refused.Cycle.Should().Equal("a", "b", "c", "a");
        refused.Message.Should().Contain("a → b → c → a");
        refused.MissingDependency.Should().BeNull();
        group.State.Should().Be(LifecycleState.NotStarted);
        _journal.Should().BeEmpty();
    }

    [Fact]
    public async Task SelfDependency_IsACycleOfOne()
    {
        var group = new LifecycleGroup();
        group.Add(Gate("a"), "a");

        (await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<LifecycleDependencyException>()).Which.Cycle.Should().Equal("a", "a");
    }

    [Fact]
    public async Task UnknownDependency_IsRefusedAtStart_NamingIt_AndTheGroupStillAcceptsTheMissingGate()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(Gate("sync"), "db");

        var refused = (await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<LifecycleDependencyException>()).Which;
        refused.GateName.Should().Be("sync");
        refused.MissingDependency.Should().Be("db");
        refused.Message.Should().Contain("'sync' depends on 'db', which is not in the group");
        _journal.Should().BeEmpty();

        group.Add(Gate("db"));
        (await group.StartAsync().OrHang()).Should().BeTrue();
        _journal.Should().Equal("start:db", "running:db", "start:sync", "running:sync");
    }

    [Fact]
    public async Task Add_Misuse_ThrowsAtTheCall_AndLeavesTheGroupIntact()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        var db = Gate("db");
        group.Add(db);

        group.Invoking(g => g.Add((LifecycleGate)null!)).Should().Throw<ArgumentNullException>();
        group.Invoking(g => g.Add(Gate("x"), null!)).Should().Throw<ArgumentNullException>();
        group.Invoking(g => g.Add(Gate("x"), "")).Should().Throw<ArgumentException>().WithMessage("*null or empty*");
        group.Invoking(g => g.Add(Gate("db"))).Should().Throw<ArgumentException>().WithMessage("*already holds a gate named 'db'*");
        new LifecycleGroup(new LifecycleGroupOptions { Name = "other" }).Invoking(g => g.Add(db)).Should().Throw<InvalidOperationException>().WithMessage("*already belongs to group 'node'*");
        group.Invoking(g => g.Add(group)).Should().Throw<InvalidOperationException>().WithMessage("*cannot hold itself*");
        var inner = new LifecycleGroup(new LifecycleGroupOptions { Name = "inner" });
        group.Add(inner);
        inner.Invoking(i => i.Add(group)).Should().Throw<InvalidOperationException>().WithMessage("*cannot hold itself*");

        group.GateNames.Should().Equal("db", "inner");
        await group.StartAsync().OrHang();
        group.Invoking(g => g.Add(Gate("late"))).Should().Throw<InvalidOperationException>().WithMessage("*has started*");
        group.GateNames.Should().Equal("db", "inner");
    }

    [Fact]
    public async Task AGroupThatStartedOrWasClosed_RefusesNewGates_SayingWhichAndWhatToDo_UnderItsDefaultName()
    {
        var started = new LifecycleGroup();
        var closed = new LifecycleGroup();
        started.Invoking(g => g.Add((LifecycleGroup)null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("group");

        await started.StartAsync().OrHang();
        await closed.CloseAsync().OrHang();

        started.Invoking(g => g.Add(Gate("late"))).Should().Throw<InvalidOperationException>()
            .WithMessage("Group 'LifecycleGroup' has started; its gates and dependencies cannot change. Add every gate before the first StartAsync.");
        closed.Invoking(g => g.Add(Gate("late"))).Should().Throw<InvalidOperationException>()
            .WithMessage("Group 'LifecycleGroup' has been closed; its gates and dependencies cannot change. Add every gate before the first StartAsync.");
        closed.GateNames.Should().BeEmpty();
    }

    [Fact]
    public void Options_AreValidated()
    {
        FluentActions.Invoking(() => new LifecycleGroup(new LifecycleGroupOptions { ShutdownTimeout = TimeSpan.FromSeconds(-2) }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*ShutdownTimeout*");
        FluentActions.Invoking(() => new LifecycleGroup(new LifecycleGroupOptions { OnGateFault = (LifecycleGroupFaultPolicy)7 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithMessage("*OnGateFault*");
    }

    [Fact]
    public async Task EmptyGroup_StartsAndStops()
    {
        var group = new LifecycleGroup();

        (await group.StartAsync().OrHang()).Should().BeTrue();
        (await group.StopAsync().OrHang()).Should().BeTrue();
        group.State.Should().Be(LifecycleState.Stopped);
    }

    private LifecycleGate Gate(string name) => new ScriptedGate(name, _journal).Gate;
}
