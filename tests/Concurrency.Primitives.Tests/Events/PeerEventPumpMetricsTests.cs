using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The pump's instruments add up: every event delivered is counted under its kind, and the live-peer and queued gauges
/// return to zero once every peer is removed and every message taken, delivered or discarded by a fault. A fault that
/// stops the pump also ends every post still waiting for room, in the pump or in its peer's quota.
/// </summary>
public sealed class PeerEventPumpMetricsTests
{
    [Fact]
    public async Task OverAWholeLife_EachEventKindIsCounted_AndTheLivePeerAndQueuedGaugesReturnToZero()
    {
        using var metrics = new PumpMetricRecorder("metered");
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = "metered" });
        var a = pump.Connect("a");
        a.MarkReady();
        a.TryPost("m1").Should().BeTrue();
        a.TryPost("m2").Should().BeTrue();
        var b = pump.Connect("b");
        b.MarkReady();
        b.TryPost("m3").Should().BeTrue();
        a.Disconnect();

        await pump.DisposeAsync();

        handler.HistoryOf("a").Should().Equal("added", "m1", "m2", "removed");
        handler.HistoryOf("b").Should().Equal("added", "m3", "removed");
        metrics.Sum("events", "event.kind", "added").Should().Be(2);
        metrics.Sum("events", "event.kind", "message").Should().Be(3);
        metrics.Sum("events", "event.kind", "removed").Should().Be(2);
        metrics.Sum("live_peers").Should().Be(0, "each Added counted up, each Removed down");
        metrics.Sum("queued").Should().Be(0, "each message counted in when posted and out when the loop took it");
        metrics.Sum("consumer_faults").Should().Be(0);
    }

    [Fact]
    public async Task AFaultThatStopsThePump_IsCounted_TakesTheDiscardedMessagesOffTheQueue_AndEndsThePostsWaitingForRoom()
    {
        using var metrics = new PumpMetricRecorder("faulting");
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions
        {
            Name = "faulting", Capacity = 2, FullMode = PeerEventPumpFullMode.Wait, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump,
        });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang(); // held in OnAdded
        peer.TryPost("poison").Should().BeTrue();
        peer.TryPost("x1").Should().BeTrue();
        var first = peer.PostAsync("x2").AsTask(); // gets the place the poison leaves when the loop takes it
        var second = peer.PostAsync("x3").AsTask(); // still waiting when the poison faults the pump
        second.IsCompleted.Should().BeFalse("the queue is full");

        hold.SetResult();

        await pump.Invoking(p => p.Completion.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        (await second.OrHang()).Should().NotBe(PeerPostResult.Posted, "the fault ended its wait: nothing will take its message");
        await first.OrHang();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "poison", "removed");
        metrics.Sum("consumer_faults").Should().Be(1);
        metrics.Sum("queued").Should().Be(0, "the messages the fault discarded are taken off the queue");
        metrics.Sum("live_peers").Should().Be(0);
    }

    [Fact]
    public async Task AFaultThatStopsThePump_EndsThePostsWaitingForTheirPeersQuota()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions
        {
            PerPeerCapacity = 1, Capacity = 10, FullMode = PeerEventPumpFullMode.Wait, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump,
        });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        peer.TryPost("poison").Should().BeTrue();
        var first = peer.PostAsync("x1").AsTask(); // gets the quota the poison leaves when the loop takes it
        var second = peer.PostAsync("x2").AsTask(); // still waiting for its peer's quota when the pump faults
        second.IsCompleted.Should().BeFalse("the peer is at its quota");

        hold.SetResult();

        await pump.Invoking(p => p.Completion.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        (await second.OrHang()).Should().NotBe(PeerPostResult.Posted);
        await first.OrHang();
        await pump.DisposeAsync();
    }
}
