using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// Each of the gate's and the group's log events (README, "Logging and metrics") is written when its situation happens,
/// at its level, naming the gate (and the group) and carrying the exception.
/// </summary>
public sealed class LifecycleLogTests
{
    [Fact]
    public async Task EveryTransition_IsLoggedAtDebug_InOrder()
    {
        var logger = new RecordingLogger();
        var gate = new LifecycleGate(options: new LifecycleGateOptions { Name = "db", Logger = logger });

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await logger.WaitFor(e => e.EventId == 2001 && Equals(e["Current"], LifecycleState.Stopped)).OrHang(); // raised after the callers are released

        var transitions = logger.Entries.Where(e => e.EventId == 2001).ToList();
        transitions.Should().OnlyContain(e => e.Level == LogLevel.Debug && Equals(e["Gate"], "db"));
        transitions.Select(e => $"{e["Previous"]}->{e["Current"]}").Should().Equal(
            "NotStarted->Starting", "Starting->Running", "Running->Stopping", "Stopping->Stopped");
    }

    [Fact]
    public async Task AFailedStart_IsLoggedWithItsException()
    {
        var logger = new RecordingLogger();
        var gate = new LifecycleGate(
            start: (_, _) => throw new InvalidOperationException("port in use"),
            options: new LifecycleGateOptions { Name = "rpc", Logger = logger });

        await gate.Awaiting(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2002).Which;
        entry.Level.Should().Be(LogLevel.Error);
        entry["Gate"].Should().Be("rpc");
        entry.Exception!.Message.Should().Be("port in use");
    }

    [Fact]
    public async Task AFailedStop_IsLoggedWithItsException()
    {
        var logger = new RecordingLogger();
        var gate = new LifecycleGate(
            stop: _ => throw new InvalidOperationException("flush failed"),
            options: new LifecycleGateOptions { Name = "rpc", Logger = logger });
        await gate.StartAsync().OrHang();

        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2004).Which;
        entry.Level.Should().Be(LogLevel.Error);
        entry["Gate"].Should().Be("rpc");
        entry.Exception!.Message.Should().Be("flush failed");
    }

    [Fact]
    public async Task AGroupMemberThatFailsToStart_IsLoggedByTheGroupNamingIt()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger });
        group.Add(new LifecycleGate(options: new LifecycleGateOptions { Name = "db" }));
        group.Add(new LifecycleGate(start: (_, _) => throw new InvalidOperationException("port in use"), options: new LifecycleGateOptions { Name = "rpc" }), "db");

        await group.Awaiting(g => g.StartAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2013).Which;
        entry.Level.Should().Be(LogLevel.Error);
        entry["Group"].Should().Be("node");
        entry["Gate"].Should().Be("rpc");
        entry.Exception!.Message.Should().Be("port in use");
    }

    [Fact]
    public async Task AGroupMemberThatFailsToStop_IsLoggedByTheGroupNamingIt()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger });
        group.Add(new LifecycleGate(stop: _ => throw new InvalidOperationException("flush failed"), options: new LifecycleGateOptions { Name = "db" }));
        await group.StartAsync().OrHang();

        await group.Awaiting(g => g.StopAsync()).Should().ThrowAsync<Exception>().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2014).Which;
        entry.Level.Should().Be(LogLevel.Error);
        entry["Group"].Should().Be("node");
        entry["Gate"].Should().Be("db");
        entry.Exception!.Message.Should().Be("flush failed");
    }

    [Fact]
    public async Task AGroupMemberWhoseRunHadFaulted_IsLoggedAsStoppedWithItsFault_AtWarning()
    {
        var logger = new RecordingLogger();
        var group = new LifecycleGroup(new LifecycleGroupOptions { Name = "node", Logger = logger, OnGateFault = LifecycleGroupFaultPolicy.Isolate });
        var faulted = Bounded.NewGate();
        var fault = Bounded.NewGate();

        // The run faults only once the group runs: a member that faults before the group's start has finished fails that
        // start instead (the group does not reach Running without it), which is not what this test is about.
        var gate = new LifecycleGate(
            run: async _ =>
            {
                await fault.Task.ConfigureAwait(false);
                throw new InvalidOperationException("sync lost");
            },
            options: new LifecycleGateOptions { Name = "sync" });
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        group.Add(gate);
        await group.StartAsync().OrHang();
        fault.SetResult();
        await faulted.Task.OrHang();

        await group.StopAsync().OrHang(); // the fault was reported when it happened; the gate did stop

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2015).Which;
        entry.Level.Should().Be(LogLevel.Warning);
        entry["Group"].Should().Be("node");
        entry["Gate"].Should().Be("sync");
        entry.Exception!.Message.Should().Be("sync lost");
        logger.Entries.Should().NotContain(e => e.EventId == 2014, "the gate did stop");
    }
}
