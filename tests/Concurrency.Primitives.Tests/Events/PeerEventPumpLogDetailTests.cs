using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The figures and names the pump's logs carry: the peer of each peer event (an empty name, never null, for a peer whose
/// ToString returns null), the live peers a fault removes, the connections a shutdown finds open, and no "dropped for
/// room" warning for the messages a fault discards (those are the fault's, logged once as 4005).
/// </summary>
public sealed class PeerEventPumpLogDetailTests
{
    private static readonly TimeSpan Threshold = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task APeerWhoseNameIsNull_IsLoggedWithAnEmptyName_InEveryPeerEvent()
    {
        var time = new ManualTimeProvider();
        var log = new RecordingLogger();
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<NamelessPeer> { Hold = hold.Task };
        handler.ThrowOn.Add("m1");
        var pump = new PeerEventPump<NamelessPeer, string>(
            handler,
            new PeerEventPumpOptions
            {
                Logger = log, TimeProvider = time, HandlerStallThreshold = Threshold, ShutdownTimeout = Timeout.InfiniteTimeSpan,
                PerPeerCapacity = 1, FullMode = PeerEventPumpFullMode.DropWrite,
            },
            (_, _) => throw new InvalidOperationException("the pool is gone"));
        var peer = pump.Connect(new NamelessPeer(7));
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang(); // held in Added
        await time.WhenTimersArmed().OrHang();

        time.Advance(Threshold); // the Added call stalls (4009)
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2", out var dropped).Should().BeFalse(); // over the quota: dropped (4007), the callback throws (4008)
        dropped.Should().Be(PeerPostResult.Dropped);
        hold.SetResult(); // m1 makes the consumer throw (4001)
        await log.WaitFor(e => e.EventId == 4001).OrHang();
        await pump.DisposeAsync();

        foreach (var eventId in new[] { 4001, 4007, 4008, 4009 })
        {
            log.Entries.Should().ContainSingle(e => e.EventId == eventId).Which["Peer"].Should().Be(string.Empty, "event {0} names the peer by its ToString, which is null", eventId);
        }
    }

    [Fact]
    public async Task ADropCallbackThatThrows_IsLoggedWithThePeerOfTheDroppedMessage()
    {
        var log = new RecordingLogger();
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(
            handler,
            new PeerEventPumpOptions { Logger = log, Capacity = 1, FullMode = PeerEventPumpFullMode.DropWrite },
            (_, _) => throw new InvalidOperationException("the pool is gone"));
        var peer = pump.Connect("peer-7");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        peer.TryPost("m1").Should().BeTrue();

        peer.TryPost("m2").Should().BeFalse();

        log.Entries.Should().ContainSingle(e => e.EventId == 4008).Which["Peer"].Should().Be("peer-7");
        hold.SetResult();
        await pump.DisposeAsync();
    }

    [Fact]
    public async Task TheFaultLog_CountsThePeersStillLive_NotThoseAlreadyRemoved()
    {
        var log = new RecordingLogger();
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Logger = log, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var a = pump.Connect("a");
        var b = pump.Connect("b");
        var c = pump.Connect("c");
        a.MarkReady();
        b.MarkReady();
        c.MarkReady();
        a.Disconnect(); // a's Removed is delivered before the poison
        b.TryPost("poison").Should().BeTrue();

        await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        log.Entries.Should().ContainSingle(e => e.EventId == 4005).Which["Peers"].Should().Be(2, "b and c are live; a was added and removed");
        handler.HistoryOf("a").Should().Equal("added", "removed");
        handler.HistoryOf("b").Should().Equal("added", "poison", "removed");
        handler.HistoryOf("c").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task TheShutdownLog_CountsOnlyTheConnectionsStillOpen()
    {
        var log = new RecordingLogger();
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Logger = log });
        var neverReady = pump.Connect("never-ready");
        var left = pump.Connect("left");
        left.MarkReady();
        pump.Connect("open").MarkReady();
        neverReady.Disconnect().Should().BeTrue();
        left.Disconnect().Should().BeTrue();

        await pump.CloseAsync().OrHang();

        log.Entries.Should().ContainSingle(e => e.EventId == 4003).Which["Peers"].Should().Be(1, "two of the three connections had already ended");
    }

    [Fact]
    public async Task AFault_DiscardsTheQueuedMessages_WithoutWarningThatTheyWereDroppedForRoom()
    {
        var log = new RecordingLogger();
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        handler.ThrowOn.Add("poison");
        var drops = new DropRecorder();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Logger = log, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump }, drops.Record);
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        peer.TryPost("poison").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();

        hold.SetResult();

        await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        drops.Seen.Should().Equal("p:m2");
        log.Entries.Should().ContainSingle(e => e.EventId == 4005).Which["Messages"].Should().Be(1);
        log.Entries.Should().NotContain(e => e.EventId == 4002 || e.EventId == 4007, "no queue or quota was full: the fault discarded m2");
    }

    /// <summary>A peer identity whose ToString returns null (a type the pump does not own may do that).</summary>
    private sealed record NamelessPeer(int Id)
    {
        public override string ToString() => null!;
    }
}
