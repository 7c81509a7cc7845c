using System.Threading.Tasks;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The Bitcoin-node incident: a peer's arrival and departure, sent from two tasks over two channels, reached the sync
/// manager as "done" before "new". The hand-rolled two-channel loop does exactly that; the pump never does.
/// </summary>
public sealed class PeerEventSeedStoryTests
{
    [Fact]
    public async Task TwoChannelDesign_DeliversDoneBeforeNew_ForTheSamePeer()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var loop = new TwoChannelPeerLoop<string, string>(handler);
        loop.NewPeer("warmup");
        await handler.FirstCallEntered.OrHang(); // the loop is busy inside OnAdded(warmup)

        loop.NewPeer("x");                         // the peer's own task: handshake done
        await Task.Run(() => loop.DonePeer("x"));  // the disconnect path, another task
        hold.SetResult();
        await loop.DisposeAsync().AsTask().OrHang();

        handler.HistoryOf("x").Should().Equal(new[] { "removed", "added" }, "done overtook new: the manager saw an unknown peer, then added a dead one");
    }

    [Fact]
    public async Task Pump_TheSameInterleaving_KeepsAddedBeforeRemoved()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler);
        pump.Connect("warmup").MarkReady();
        await handler.FirstCallEntered.OrHang();

        var x = pump.Connect("x");
        x.MarkReady();
        await Task.Run(() => x.Disconnect());
        hold.SetResult();
        await pump.DisposeAsync();

        handler.HistoryOf("x").Should().Equal("added", "removed");
    }
}
