using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>LifecycleGroup (src/Concurrency.Primitives/Lifecycle/README.md): start and stop order, concurrency, rollback, nesting.</summary>
public sealed class LifecycleGroupOrderTests
{
    private readonly ConcurrentQueue<string> _journal = new();

    [Fact]
    public async Task Chain_StartsEachGateAfterItsDependencyRuns_AndStopsInReverse()
    {
        var group = new LifecycleGroup();
        group.Add(Gate("rpc").Gate, "sync");
        group.Add(Gate("sync").Gate, "db", "replication");
        group.Add(Gate("replication").Gate, "db");
        group.Add(Gate("db").Gate);

        (await group.StartAsync().OrHang()).Should().BeTrue();
        Entries("start:").Should().Equal("db", "replication", "sync", "rpc");
        Entries("running:").Should().Equal("db", "replication", "sync", "rpc");
        group.State.Should().Be(LifecycleState.Running);

        (await group.StopAsync().OrHang()).Should().BeTrue();
        Entries("stop:").Should().Equal("rpc", "sync", "replication", "db");
        group.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task Diamond_StartsTheSharedDependencyFirstAndTheJoinLast_AndStopsInReverse()
    {
        var group = new LifecycleGroup();
        group.Add(Gate("d").Gate, "b", "c");
        group.Add(Gate("b").Gate, "a");
        group.Add(Gate("c").Gate, "a");
        group.Add(Gate("a").Gate);

        await group.StartAsync().OrHang();
        var starts = Entries("start:");
        starts.First().Should().Be("a");
        starts.Last().Should().Be("d");
        starts.Should().HaveCount(4).And.Contain(new[] { "b", "c" });
        EachStartsAfterRunning("b", "a");
        EachStartsAfterRunning("c", "a");
        EachStartsAfterRunning("d", "b");
        EachStartsAfterRunning("d", "c");

        await group.StopAsync().OrHang();
        var stops = Entries("stop:");
        stops.First().Should().Be("d");
        stops.Last().Should().Be("a");
        stops.Should().HaveCount(4);
    }

    [Fact]
    public async Task IndependentGates_StartConcurrently_EachWaitingForTheOtherToBegin()
    {
        var b = Gate("b");
        var c = Gate("c");
        b.HoldStart = c.StartEntered.Task; // b returns only once c has begun: a group that started them one by one hangs here
        c.HoldStart = b.StartEntered.Task;
        var group = new LifecycleGroup();
        group.Add(Gate("a").Gate);
        group.Add(b.Gate, "a");
        group.Add(c.Gate, "a");

        (await group.StartAsync().OrHang()).Should().BeTrue();

        group.State.Should().Be(LifecycleState.Running);
    }

    [Fact]
    public async Task IndependentGates_StopConcurrently_EachWaitingForTheOtherToBegin()
    {
        var b = Gate("b");
        var c = Gate("c");
        b.HoldStop = c.StopEntered.Task;
        c.HoldStop = b.StopEntered.Task;
        var group = new LifecycleGroup();
        group.Add(Gate("a").Gate);
        group.Add(b.Gate, "a");
        group.Add(c.Gate, "a");
        await group.StartAsync().OrHang();

        (await group.StopAsync().OrHang()).Should().BeTrue();

        Entries("stop:").Last().Should().Be("a");
    }

    [Fact]
    public async Task FailedStart_StopsOnlyWhatStarted_InReverse_AndThrowsTheGatesOwnException()
    {
        var failure = new InvalidOperationException("replication refused");
        var replication = Gate("replication");
        replication.StartFailure = failure;
        var cache = Gate("cache");
        var group = new LifecycleGroup();
        group.Add(Gate("db").Gate);
        group.Add(cache.Gate, "db");
        group.Add(replication.Gate, "db");
        group.Add(Gate("sync").Gate, "replication", "cache");
        cache.HoldStart = replication.StartEntered.Task; // cache is still starting when replication fails

        var thrown = await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        thrown.Which.Should().BeSameAs(failure);
        group.State.Should().Be(LifecycleState.StartFailed);
        group.Fault.Should().BeSameAs(failure);
        Entries("start:").Should().NotContain("sync");
        Entries("stop:").Should().Equal("cache", "db"); // replication's stop delegate never runs: its start failed
        replication.Gate.State.Should().Be(LifecycleState.StartFailed);
        _journal.ToList().IndexOf("stop:db").Should().BeGreaterThan(_journal.ToList().IndexOf("stop:cache"));
    }

    [Fact]
    public async Task StopDuringStart_CancelsTheGateStillStarting_AndStopsTheOnesThatStarted()
    {
        var never = Bounded.NewGate();
        var replication = Gate("replication");
        replication.HoldStart = never.Task; // returns only when its token is cancelled
        var group = new LifecycleGroup();
        group.Add(Gate("db").Gate);
        group.Add(replication.Gate, "db");
        group.Add(Gate("sync").Gate, "replication");

        var start = group.StartAsync();
        await replication.StartEntered.Task.OrHang();
        await group.StopAsync().OrHang();

        await start.Awaiting(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        Entries("start:").Should().Equal("db", "replication");
        Entries("stop:").Should().Equal("db");
        group.State.Should().Be(LifecycleState.Stopped);
        replication.Gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task NestedGroup_StartsAndStopsAsOneGate_InItsPlaceInTheOrder()
    {
        var inner = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        inner.Add(Gate("replication").Gate);
        inner.Add(Gate("sync").Gate, "replication");
        var outer = new LifecycleGroup(new LifecycleGroupOptions { Name = "process" });
        outer.Add(Gate("db").Gate);
        outer.Add(inner, "db");
        outer.Add(Gate("rpc").Gate, "node");

        await outer.StartAsync().OrHang();
        Entries("start:").Should().Equal("db", "replication", "sync", "rpc");
        inner.State.Should().Be(LifecycleState.Running);

        await outer.StopAsync().OrHang();
        Entries("stop:").Should().Equal("rpc", "sync", "replication", "db");
        inner.State.Should().Be(LifecycleState.Stopped);
        outer.State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task ConcurrentStartsAndStops_ShareOneStartAndOneStop()
    {
        var group = new LifecycleGroup();
        group.Add(Gate("db").Gate);
        group.Add(Gate("sync").Gate, "db");

        var starts = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => group.StartAsync()))).OrHang();
        var stops = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => group.StopAsync()))).OrHang();

        starts.Count(started => started).Should().Be(1);
        stops.Count(stopped => stopped).Should().Be(1);
        Entries("start:").Should().Equal("db", "sync");
        Entries("stop:").Should().Equal("sync", "db");
        await group.Awaiting(g => g.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>("a stopped group restarts only with AllowRestart");
    }

    [Fact]
    public async Task StateChanged_ReportsTheGroupsTransitions_WithTheGroupAsSender()
    {
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node" });
        group.Add(Gate("db").Gate);
        var seen = new ConcurrentQueue<(object? Sender, LifecycleState State)>();
        var stopped = Bounded.NewGate();
        group.StateChanged += (sender, e) =>
        {
            seen.Enqueue((sender, e.Current));
            if (e.Current == LifecycleState.Stopped)
            {
                stopped.TrySetResult();
            }
        };

        await group.StartAsync().OrHang();
        await group.WhenRunning.OrHang();
        await group.StopAsync().OrHang();
        await group.WhenStopped.OrHang();
        await stopped.Task.OrHang();

        seen.Select(s => s.State).Should().Equal(LifecycleState.Starting, LifecycleState.Running, LifecycleState.Stopping, LifecycleState.Stopped);
        seen.Should().OnlyContain(s => ReferenceEquals(s.Sender, group));
    }

    private ScriptedGate Gate(string name) => new(name, _journal);

    private List<string> Entries(string prefix) =>
        _journal.Where(entry => entry.StartsWith(prefix, StringComparison.Ordinal)).Select(entry => entry[prefix.Length..]).ToList();

    private void EachStartsAfterRunning(string dependent, string dependency)
    {
        var entries = _journal.ToList();
        entries.IndexOf("start:" + dependent).Should().BeGreaterThan(entries.IndexOf("running:" + dependency), $"{dependent} starts only once {dependency} runs");
    }
}
