using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// Each of the pump's log events (README, "Logging and metrics") is written when its situation happens, at its level,
/// with the peer, the event kind and the figures an operator reads.
/// </summary>
public sealed class PeerEventPumpLogTests
{
    [Theory]
    [InlineData("added", "Added", PeerEventPumpFaultPolicy.LogAndContinue)]
    [InlineData("m1", "Message", PeerEventPumpFaultPolicy.LogAndContinue)]
    [InlineData("removed", "Removed", PeerEventPumpFaultPolicy.LogAndContinue)]
    [InlineData("m1", "Message", PeerEventPumpFaultPolicy.FaultPump)]
    public async Task AConsumerFault_IsLoggedWithThePeerTheEventKindAndThePolicy(string throwOn, string kind, PeerEventPumpFaultPolicy policy)
    {
        var logger = new RecordingLogger();
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add(throwOn);
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = "sync", Logger = logger, FaultPolicy = policy });
        var peer = pump.Connect("peer-7");
        peer.MarkReady();
        peer.TryPost("m1");
        peer.Disconnect();

        var entry = await logger.WaitFor(e => e.EventId == 4001).OrHang();
        await pump.DisposeAsync();

        entry.Level.Should().Be(LogLevel.Error);
        entry["Pump"].Should().Be("sync");
        entry["Kind"].Should().Be(kind);
        entry["Peer"].Should().Be("peer-7");
        entry["Policy"].Should().Be(policy);
        entry.Exception!.Message.Should().Be($"handler fault on {throwOn}");
    }

    [Fact]
    public async Task TheShutdown_IsLoggedWithTheConnectedPeers_AndItsTimeout()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = "sync", Logger = logger, TimeProvider = time });
        pump.Connect("a").MarkReady();
        pump.Connect("b").MarkReady();
        await handler.WhenHandled(2).OrHang();
        handler.Hold = hold.Task; // the Removed events wait

        var close = pump.CloseAsync(TimeSpan.FromSeconds(4));
        var started = logger.Entries.Should().ContainSingle(e => e.EventId == 4003).Which;
        started.Level.Should().Be(LogLevel.Information);
        started["Peers"].Should().Be(2);

        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(4));
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>();

        var timedOut = logger.Entries.Should().ContainSingle(e => e.EventId == 4004).Which;
        timedOut.Level.Should().Be(LogLevel.Warning);
        timedOut["Timeout"].Should().Be(TimeSpan.FromSeconds(4));
        hold.SetResult();
        await pump.Completion.OrHang();
    }
}
