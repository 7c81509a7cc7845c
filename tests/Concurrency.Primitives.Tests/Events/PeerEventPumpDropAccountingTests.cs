using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// A message displaced by DropOldest or DropNewest no longer waits: it leaves <see cref="PeerEventPump{TPeer, TMessage}.Count"/>
/// and the queued gauge at once, and (for a peer's quota) frees its place, so a peer whose messages the loop has taken
/// posts up to its quota again without a drop.
/// </summary>
public sealed class PeerEventPumpDropAccountingTests
{
    [Theory]
    [InlineData(PeerEventPumpFullMode.DropOldest)]
    [InlineData(PeerEventPumpFullMode.DropNewest)]
    public async Task FullQueue_ADisplacedMessage_LeavesCountAndTheQueuedGauge(PeerEventPumpFullMode mode)
    {
        var name = "displacing-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = name, Capacity = 2, FullMode = mode });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();

        for (var i = 1; i <= 4; i++)
        {
            peer.TryPost($"m{i}").Should().BeTrue();
            pump.Count.Should().Be(Math.Min(i, 2), "at most Capacity messages wait: a displaced one waits no more (after m{0})", i);
        }

        metrics.Sum("queued").Should().Be(2);
        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().HaveCount(4, "added, the two messages left, removed");
        metrics.Sum("dropped", "drop.reason", "capacity").Should().Be(2);
        metrics.Sum("queued").Should().Be(0, "each message counted in when posted and out when displaced or taken");
    }

    [Fact]
    public async Task AFaultThatDiscardsNothing_MovesTheQueuedGaugeOnlyForWhatWasPostedAndTaken()
    {
        var name = "clean-fault-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = name, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var peer = pump.Connect("p");
        peer.MarkReady();

        peer.TryPost("poison").Should().BeTrue(); // the only message: nothing is left to discard when it faults the pump

        await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        metrics.Values("queued").Should().Equal(new long[] { 1, -1 }, "one message posted, then taken; the fault discarded none");
    }

    [Fact]
    public async Task PeerQuota_DropOldest_DisplacedMessagesLeaveCount_AndFreeThePeersQuota()
    {
        var name = "peer-displacing-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var consumer = new SteppingConsumer();
        var drops = new DropRecorder();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Name = name, PerPeerCapacity = 2, FullMode = PeerEventPumpFullMode.DropOldest }, drops.Record);
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("f1").Should().BeTrue();
        peer.TryPost("f2").Should().BeTrue();
        peer.TryPost("f3").Should().BeTrue(); // displaces f1

        pump.Count.Should().Be(2, "f1 was displaced: f2 and f3 wait");
        metrics.Sum("queued").Should().Be(2);
        drops.Seen.Should().Equal("p:f1");
        added.Done.SetResult();
        for (var i = 2; i <= 3; i++)
        {
            var call = await consumer.NextCallAsync();
            call.What.Should().Be($"f{i}");
            call.Done.SetResult();
        }

        peer.TryPost("g1").Should().BeTrue();
        var g1 = await consumer.NextCallAsync(); // the loop took every message of the peer but g1, and is inside g1's call
        g1.What.Should().Be("g1");
        peer.TryPost("g2").Should().BeTrue();
        peer.TryPost("g3").Should().BeTrue();
        drops.Seen.Should().Equal(new[] { "p:f1" }, "g2 and g3 are the peer's only waiting messages: within its quota of two");
        peer.TryPost("g4").Should().BeTrue(); // the quota is full now: displaces g2
        drops.Seen.Should().Equal("p:f1", "p:g2");
        pump.Count.Should().Be(2);

        g1.Done.SetResult();
        foreach (var expected in new[] { "g3", "g4" })
        {
            var call = await consumer.NextCallAsync();
            call.What.Should().Be(expected);
            call.Done.SetResult();
        }

        var close = pump.CloseAsync(Timeout.InfiniteTimeSpan);
        (await consumer.NextCallAsync()).Done.SetResult(); // Removed
        await close.OrHang();
        metrics.Sum("dropped", "drop.reason", "peer_capacity").Should().Be(2);
        metrics.Sum("queued").Should().Be(0);
    }
}
