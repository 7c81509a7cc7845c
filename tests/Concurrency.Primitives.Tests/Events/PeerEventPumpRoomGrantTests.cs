using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// Wait mode's places (README, invariant 7 and "Per-peer quotas"): posts waiting for room get it in the order they came,
/// a place granted or held is its post's alone and is given back when that post is refused or cancelled, a post waiting
/// for the pump's capacity holds its place in its peer's quota (so the peer's next post waits in its own line, not ahead
/// of other peers), and a post refused as Full keeps no claim at all. The loop is stepped one consumer call at a time.
/// </summary>
public sealed class PeerEventPumpRoomGrantTests
{
    [Fact]
    public async Task Wait_APostRefusedAsFull_KeepsNoPlace_SoTheRoomTheLoopMakesGoesToTheNextPost()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2", out var refused).Should().BeFalse();
        refused.Should().Be(PeerPostResult.Full);

        added.Done.SetResult();
        var m1 = await consumer.NextCallAsync(); // the loop took m1: there is room for one message again

        peer.TryPost("m3", out var result).Should().BeTrue("the post refused as Full left no claim on the room m1 made");
        result.Should().Be(PeerPostResult.Posted);
        m1.Done.SetResult();
        var m3 = await consumer.NextCallAsync();
        m3.What.Should().Be("m3");
        m3.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 1);
    }

    [Fact]
    public async Task Wait_APostWaitingForThePumpHoldsItsPeersPlace_SoThePeersNextPostWaitsInItsOwnLine_NotAheadOfAnotherPeer()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1, PerPeerCapacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        var c = pump.Connect("c");
        c.MarkReady();
        b.TryPost("b1").Should().BeTrue(); // the pump is full
        var a1 = a.PostAsync("a1").AsTask(); // waits for the pump, holding a's one place in its quota
        var a2 = a.PostAsync("a2").AsTask(); // a is at its quota: waits in a's own line
        var c1 = c.PostAsync("c1").AsTask(); // waits for the pump, behind a1 alone

        addedA.Done.SetResult();
        (await consumer.NextCallAsync()).Done.SetResult(); // b's Added
        (await consumer.NextCallAsync()).Done.SetResult(); // c's Added
        var b1 = await consumer.NextCallAsync(); // the loop took b1: its place went to a1, first in the pump's line
        b1.What.Should().Be("b1");
        (await a1.OrHang()).Should().Be(PeerPostResult.Posted);
        b1.Done.SetResult();
        var a1Call = await consumer.NextCallAsync(); // the loop took a1: the pump's place goes to c1, a's place to a2
        a1Call.What.Should().Be("a1");

        (await c1.OrHang()).Should().Be(PeerPostResult.Posted, "c1 waited for the pump behind a1 only: a2 waited in a's own line");
        a2.IsCompleted.Should().BeFalse("a2 has its peer's place now, and waits for the pump's behind c1");
        a1Call.Done.SetResult();
        var c1Call = await consumer.NextCallAsync();
        c1Call.What.Should().Be("c1");
        (await a2.OrHang()).Should().Be(PeerPostResult.Posted, "waiting first for its quota, then for the pump, it is posted once it has both");
        c1Call.Done.SetResult();
        var a2Call = await consumer.NextCallAsync();
        a2Call.What.Should().Be("a2");
        a.TryPost("a3", out var again).Should().BeTrue("every place a's posts held was used: a has no message waiting");
        again.Should().Be(PeerPostResult.Posted);
        a2Call.Done.SetResult();
        var a3Call = await consumer.NextCallAsync();
        a3Call.What.Should().Be("a3");
        a3Call.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 3);
    }

    [Fact]
    public async Task Wait_APostWaitingForThePumpThatIsCancelled_GivesItsPeersPlaceToThePeersNextPost()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1, PerPeerCapacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        b.TryPost("b1").Should().BeTrue(); // the pump is full
        using var cancel = new CancellationTokenSource();
        var a1 = a.PostAsync("a1", cancel.Token).AsTask(); // waits for the pump, holding a's one place
        var a2 = a.PostAsync("a2").AsTask(); // waits in a's own line for that place

        await cancel.CancelAsync();
        await a1.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        addedA.Done.SetResult();
        (await consumer.NextCallAsync()).Done.SetResult(); // b's Added
        var b1 = await consumer.NextCallAsync(); // the loop took b1: the pump has room for a2

        (await a2.OrHang()).Should().Be(PeerPostResult.Posted, "the cancelled post gave its place in a's quota to a's next post at once");
        b1.Done.SetResult();
        var a2Call = await consumer.NextCallAsync();
        a2Call.What.Should().Be("a2");
        a2Call.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 2);
    }

    [Fact]
    public async Task Wait_APostWaitingForThePumpThatIsCancelled_LeavesItsPeerFreeToPostOnceThereIsRoom()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1, PerPeerCapacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        b.TryPost("b1").Should().BeTrue();
        using var cancel = new CancellationTokenSource();
        var a1 = a.PostAsync("a1", cancel.Token).AsTask(); // the only post of a: waits for the pump, holding a's place

        await cancel.CancelAsync();

        await a1.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        addedA.Done.SetResult();
        (await consumer.NextCallAsync()).Done.SetResult(); // b's Added
        var b1 = await consumer.NextCallAsync(); // the loop took b1: the pump has room again
        a.TryPost("a2", out var result).Should().BeTrue("the cancelled post kept no place in a's quota");
        result.Should().Be(PeerPostResult.Posted);
        b1.Done.SetResult();
        var a2Call = await consumer.NextCallAsync();
        a2Call.What.Should().Be("a2");
        a2Call.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 2);
    }

    [Fact]
    public async Task Wait_SeveralPostsWaitingForTheirPeersQuota_AllStayInLine_AndGetInInTheOrderTheyCame()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { PerPeerCapacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        peer.TryPost("m1").Should().BeTrue();
        var m2 = peer.PostAsync("m2").AsTask();
        var m3 = peer.PostAsync("m3").AsTask();
        m2.IsCompleted.Should().BeFalse();
        m3.IsCompleted.Should().BeFalse();

        hold.SetResult();

        (await m2.OrHang()).Should().Be(PeerPostResult.Posted);
        (await m3.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "m2", "m3", "removed");
    }

    [Fact]
    public async Task Wait_PostsWaitingForTheirPeersQuota_WhileItsEarlierPostsHoldPlacesForThePump_GetInOneAtATime_InOrder()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1, PerPeerCapacity = 2 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        b.TryPost("b1").Should().BeTrue(); // the pump is full
        var posts = new[] { "a1", "a2", "a3", "a4" }.Select(m => a.PostAsync(m).AsTask()).ToArray(); // a1, a2 wait for the pump holding a's two places; a3, a4 wait in a's line
        addedA.Done.SetResult();
        (await consumer.NextCallAsync()).Done.SetResult(); // b's Added
        var history = new List<string>();

        for (var i = 0; i < 5; i++)
        {
            var call = await consumer.NextCallAsync();
            history.Add(call.What);
            call.Done.SetResult();
        }

        history.Should().Equal("b1", "a1", "a2", "a3", "a4");
        foreach (var post in posts)
        {
            (await post.OrHang()).Should().Be(PeerPostResult.Posted);
        }

        await CloseAsync(pump, consumer, livePeers: 2);
    }

    [Fact]
    public async Task Wait_ACancelledWait_ThrowsOperationCanceledException_WithTheCallersToken()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 2, PerPeerCapacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        await handler.FirstCallEntered.OrHang();
        var b = pump.Connect("b");
        b.MarkReady();
        a.TryPost("a1").Should().BeTrue(); // a is at its quota
        b.TryPost("b1").Should().BeTrue(); // the pump is full
        var c = pump.Connect("c");
        c.MarkReady();
        using var cancel = new CancellationTokenSource();
        var forTheQuota = a.PostAsync("a2", cancel.Token).AsTask();
        var forThePump = c.PostAsync("c1", cancel.Token).AsTask(); // c is under its quota
        forTheQuota.IsCompleted.Should().BeFalse();
        forThePump.IsCompleted.Should().BeFalse();

        await cancel.CancelAsync();

        foreach (var wait in new[] { forTheQuota, forThePump })
        {
            var thrown = await Record.ExceptionAsync(() => wait.OrHang());
            thrown.Should().BeAssignableTo<OperationCanceledException>("not wrapped in another exception").Which.CancellationToken.Should().Be(cancel.Token);
        }

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("a").Should().Equal("added", "a1", "removed");
        handler.HistoryOf("b").Should().Equal("added", "b1", "removed");
        handler.HistoryOf("c").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task Wait_ATryPostNeverOvertakesItsPeersPostsWaitingForTheQuota()
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { PerPeerCapacity = 2 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        var m3 = peer.PostAsync("m3").AsTask(); // waits for the peer's quota

        peer.TryPost("m4", out var result).Should().BeFalse("m3 waits for the peer's quota first");

        result.Should().Be(PeerPostResult.Full);
        hold.SetResult();
        (await m3.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "m2", "m3", "removed");
    }

    [Fact]
    public async Task Wait_APostWaitingForTheQueuesRoom_GetsInAsSoonAsTheLoopTakesAMessage_WhileTheLoopIsStillBusy()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("m1").Should().BeTrue();
        var m2 = peer.PostAsync("m2");

        added.Done.SetResult();
        var m1 = await consumer.NextCallAsync(); // the loop took m1 and is busy inside its call: it has not gone idle

        (await m2.OrHang()).Should().Be(PeerPostResult.Posted, "taking m1 made room in the queue");
        m1.Done.SetResult();
        var m2Call = await consumer.NextCallAsync();
        m2Call.What.Should().Be("m2");
        m2Call.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 1);
    }

    /// <summary>Closes a pump whose stepping consumer has no call pending, letting through the Removed of each of <paramref name="livePeers"/>.</summary>
    private static async Task CloseAsync(PeerEventPump<string, string> pump, SteppingConsumer consumer, int livePeers)
    {
        var close = pump.CloseAsync(Timeout.InfiniteTimeSpan);
        for (var i = 0; i < livePeers; i++)
        {
            var removed = await consumer.NextCallAsync();
            removed.What.Should().Be("removed");
            removed.Done.SetResult();
        }

        await close.OrHang();
    }
}
