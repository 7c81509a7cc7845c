using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
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
    public async Task Wait_APeersPostWaitingForItsQuota_TakesNoPlaceInThePump_WhileTheQuotaIsHeldByAPostWaitingForThePump()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 2, PerPeerCapacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        var c = pump.Connect("c");
        c.MarkReady();
        var d = pump.Connect("d");
        d.MarkReady();
        b.TryPost("b1").Should().BeTrue();
        c.TryPost("c1").Should().BeTrue(); // the pump is full
        var a1 = a.PostAsync("a1").AsTask(); // waits for the pump, holding a's one place in its quota
        var a2 = a.PostAsync("a2").AsTask(); // a is at its quota: waits in a's own line

        // A look at a's line while a1 holds a's place: a's quota has no room, so a2 must stay in a's line.
        a.TryPost("a3", out var refused).Should().BeFalse();
        refused.Should().Be(PeerPostResult.Full);

        // Had the look granted a2 a place in a's quota, a2 would go on (on a pool thread) into the pump's line behind a1: wait
        // until a2 is in one line or the other, so that what follows does not depend on when that continuation runs.
        var quota = a.Quota!;
        var pumpLock = PumpLock(pump);
        SpinWait.SpinUntil(
            () =>
            {
                lock (pumpLock)
                {
                    return quota.Waiters is { IsEmpty: false } || PumpLineLength(pump) == 2;
                }
            },
            Bounded.HangLimit).Should().BeTrue("a2 waits in a's line (or, granted a place it should not have, in the pump's)");
        addedA.Done.SetResult();
        await StepAsync(consumer, "added", "added", "added"); // b's, c's and d's
        var b1 = await consumer.NextCallAsync(); // the loop took b1: its place went to a1, first in the pump's line
        b1.What.Should().Be("b1");
        b1.Done.SetResult();
        var c1 = await consumer.NextCallAsync(); // the loop took c1: a place in the pump is free, for no post of a

        d.TryPost("d1", out var posted).Should().BeTrue("a2 waits for a's quota, which a1 holds: it has no claim on the pump's free place");
        posted.Should().Be(PeerPostResult.Posted);
        a2.IsCompleted.Should().BeFalse("a1, not yet taken, holds a's one place");
        (await a1.OrHang()).Should().Be(PeerPostResult.Posted);
        c1.Done.SetResult();
        await StepAsync(consumer, "a1", "d1", "a2");
        (await a2.OrHang()).Should().Be(PeerPostResult.Posted);

        await CloseAsync(pump, consumer, livePeers: 4);
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

    [Fact]
    public async Task Wait_APostArrivingAsTheLoopTakesAMessage_DoesNotOvertakeThePostAlreadyWaitingForThatRoom()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("m1").Should().BeTrue();
        var m2 = peer.PostAsync("m2").AsTask(); // waits for the room the loop's take of m1 makes
        m2.IsCompleted.Should().BeFalse();

        // m3 comes between the loop's count of m1 and its wake of m2: the room is m2's, and m3 must not take it.
        var (m3Posted, m3Result) = await InTheLoopsWakeWindowAsync(pump, added, () => (peer.TryPost("m3", out var result), result));

        m3Posted.Should().BeFalse("m2 was waiting for the room m1's take made: a post arriving meanwhile must not overtake it");
        m3Result.Should().Be(PeerPostResult.Full);
        (await m2.OrHang()).Should().Be(PeerPostResult.Posted);
        var m1Call = await consumer.NextCallAsync();
        m1Call.What.Should().Be("m1");
        m1Call.Done.SetResult();
        var m2Call = await consumer.NextCallAsync();
        m2Call.What.Should().Be("m2", "the peer's messages are delivered in the order their posts were accepted");
        m2Call.Done.SetResult();
        await CloseAsync(pump, consumer, livePeers: 1);
    }

    [Fact]
    public async Task Wait_APostArrivingAsTheLoopTakesAMessage_IsNotHeldBackByAWaiterThatLeft()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("m1").Should().BeTrue();
        using var cancel = new CancellationTokenSource();
        var m2 = peer.PostAsync("m2", cancel.Token).AsTask();
        await cancel.CancelAsync();
        await m2.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>(); // its entry in the line is stale now

        // m3 comes between the loop's count of m1 and its wake of the line: the line holds only the entry of a post that
        // left, so the room m1's take made is m3's.
        var (m3Posted, m3Result) = await InTheLoopsWakeWindowAsync(pump, added, () => (peer.TryPost("m3", out var result), result));

        m3Posted.Should().BeTrue("no post waits for the room m1's take made: the cancelled one left the line");
        m3Result.Should().Be(PeerPostResult.Posted);
        await StepAsync(consumer, "m1", "m3");
        await CloseAsync(pump, consumer, livePeers: 1);
    }

    [Fact]
    public async Task Wait_APeersPostArrivingAsTheLoopTakesThatPeersMessage_IsNotHeldBackByAWaiterThatLeftThePeersLine()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { PerPeerCapacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("m1").Should().BeTrue(); // the peer's quota is full
        using var cancel = new CancellationTokenSource();
        var m2 = peer.PostAsync("m2", cancel.Token).AsTask();
        await cancel.CancelAsync();
        await m2.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>(); // its entry in the peer's line is stale now
        var loopTaken = typeof(PeerHandle<string, string>).GetField("LoopTaken", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance)!;

        // m3 comes between the loop's count of the peer's m1 and its wake of the peer's line: the line holds only the entry
        // of a post that left, so the place m1's take made in the peer's quota is m3's.
        var (m3Posted, m3Result) = await InTheLoopsWakeWindowAsync(
            pump, added, () => Convert.ToInt64(loopTaken.GetValue(peer), CultureInfo.InvariantCulture), () => (peer.TryPost("m3", out var result), result));

        m3Posted.Should().BeTrue("no post of the peer waits for the place m1's take made: the cancelled one left the line");
        m3Result.Should().Be(PeerPostResult.Posted);
        await StepAsync(consumer, "m1", "m3");

        await CloseAsync(pump, consumer, livePeers: 1);
    }

    [Fact]
    public async Task Wait_APostCancelledAsItsPeerDisconnects_GivesBackNoPlace_SoThePumpHoldsNoMoreThanItsCapacity()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        var b = pump.Connect("b");
        b.MarkReady();
        a.TryPost("a1").Should().BeTrue(); // the queue is full
        using var cancel = new CancellationTokenSource();
        var a2 = a.PostAsync("a2", cancel.Token).AsTask();

        // a2's wait is cancelled, and before its catch looks at the wait, the disconnect ends that wait without a place.
        await WhileACancelledPostWaitsForThePumpsLockAsync(pump, cancel, () => a.Disconnect().Should().BeTrue());

        await a2.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        b.TryPost("b1", out var result).Should().BeFalse("a1 still fills the queue: the cancelled post held no place, so it gave none back");
        result.Should().Be(PeerPostResult.Full);
        addedA.Done.SetResult();
        await StepAsync(consumer, "added", "a1", "removed");

        await CloseAsync(pump, consumer, livePeers: 1);
    }

    [Fact]
    public async Task Wait_APostCancelledAsTheRoomIsGrantedToIt_GivesThePlaceBack()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var a = pump.Connect("a");
        a.MarkReady();
        var addedA = await consumer.NextCallAsync();
        a.TryPost("a1").Should().BeTrue(); // the queue is full
        var b = pump.Connect("b");
        b.MarkReady();
        using var cancel = new CancellationTokenSource();
        var a2 = a.PostAsync("a2", cancel.Token).AsTask();
        var (loop, taken) = LoopCount(pump);

        // a2's wait is cancelled, and before its catch looks at the wait, the room the loop's take of a1 made is granted to
        // it (by b1's look at the line, b1 then finding the queue full).
        await WhileACancelledPostWaitsForThePumpsLockAsync(pump, cancel, () =>
        {
            addedA.Done.SetResult(); // the loop goes on, on a pool thread: it takes a1 and counts it, then waits for the lock
            SpinWait.SpinUntil(() => (long)taken.GetValue(loop)! == 1, Bounded.HangLimit).Should().BeTrue("the loop takes a1");
            b.TryPost("b1", out var full).Should().BeFalse();
            full.Should().Be(PeerPostResult.Full, "the room went to a2, first in line");
        });

        await a2.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        var a1 = await consumer.NextCallAsync();
        a1.What.Should().Be("a1");
        b.TryPost("b2", out var result).Should().BeTrue("a2 gave back the place granted to it as it was cancelled: a1's room is free");
        result.Should().Be(PeerPostResult.Posted);
        a1.Done.SetResult();
        await StepAsync(consumer, "added", "b2");

        await CloseAsync(pump, consumer, livePeers: 2);
    }

    /// <summary>
    /// Cancels <paramref name="cancel"/> on a thread of its own while the test holds the pump's lock: the cancelled post
    /// goes on inline on that thread up to its catch, which takes the lock, and waits there while <paramref name="meanwhile"/>
    /// runs (under the lock, re-entered by the test's own calls).
    /// </summary>
    private static async Task WhileACancelledPostWaitsForThePumpsLockAsync(PeerEventPump<string, string> pump, CancellationTokenSource cancel, Action meanwhile)
    {
        var pumpLock = PumpLock(pump);
        await Task.Factory.StartNew(
            () =>
            {
                var canceller = new Thread(() => cancel.Cancel()) { IsBackground = true };
                lock (pumpLock)
                {
                    canceller.Start();
                    SpinWait.SpinUntil(() => (canceller.ThreadState & ThreadState.WaitSleepJoin) != 0, Bounded.HangLimit)
                        .Should().BeTrue("the cancelled post's catch waits for the pump's lock");
                    meanwhile();
                }

                canceller.Join(Bounded.HangLimit).Should().BeTrue("the cancelled post's catch takes the lock once the test lets go of it");
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).OrHang();
    }

    private static object PumpLock(PeerEventPump<string, string> pump) =>
        typeof(PeerEventPump<string, string>).GetField("_lock", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(pump)!;

    /// <summary>How many entries the pump's line of posts waiting for its capacity holds (stale ones too). Call under the pump's lock.</summary>
    private static int PumpLineLength(PeerEventPump<string, string> pump)
    {
        var line = typeof(PeerEventPump<string, string>).GetField("_roomWaiters", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(pump)!;
        return ((System.Collections.ICollection)line.GetType().GetField("_waiters", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(line)!).Count;
    }

    private static (object Loop, FieldInfo Taken) LoopCount(PeerEventPump<string, string> pump)
    {
        var loop = typeof(PeerEventPump<string, string>).GetField("_loop", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(pump)!;
        return (loop, loop.GetType().GetField("Taken")!);
    }

    /// <summary>
    /// Runs <paramref name="post"/> in the window between the loop's count of the message it takes next and its wake of the
    /// posts waiting for the room that take made (under the pump's lock, right after): the test holds the pump's lock,
    /// lets the loop go on from <paramref name="held"/>, sees it publish the count, and posts, still holding the lock
    /// (a post takes it too, re-entering), so the loop's wake waits until the post has returned.
    /// </summary>
    private static Task<T> InTheLoopsWakeWindowAsync<T>(PeerEventPump<string, string> pump, (string What, TaskCompletionSource Done) held, Func<T> post)
    {
        var (loop, taken) = LoopCount(pump);
        return InTheLoopsWakeWindowAsync(pump, held, () => (long)taken.GetValue(loop)!, post);
    }

    /// <summary>As above, with the count the loop publishes before the wake: <paramref name="count"/> (the pump's, or a peer's for its quota).</summary>
    private static async Task<T> InTheLoopsWakeWindowAsync<T>(PeerEventPump<string, string> pump, (string What, TaskCompletionSource Done) held, Func<long> count, Func<T> post)
    {
        var pumpLock = PumpLock(pump);
        var before = count();
        return await Task.Factory.StartNew(
            () =>
            {
                lock (pumpLock)
                {
                    held.Done.SetResult(); // the loop goes on, on a pool thread: it takes the next message and counts it
                    SpinWait.SpinUntil(() => count() > before, Bounded.HangLimit).Should().BeTrue("the loop takes the message queued next");
                    return post();
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).OrHang();
    }

    /// <summary>Lets through the consumer's next calls, which must be <paramref name="expected"/>, in order.</summary>
    private static async Task StepAsync(SteppingConsumer consumer, params string[] expected)
    {
        foreach (var what in expected)
        {
            var call = await consumer.NextCallAsync();
            call.What.Should().Be(what);
            call.Done.SetResult();
        }
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
