using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// dotnet/runtime System.Threading.Channels tests (BoundedChannelTests.cs and ChannelTestBase.cs) about writers waiting
/// for room, ported to <see cref="PeerEventPump{TPeer, TMessage}"/>'s bounded message queue.
/// </summary>
/// <remarks>
/// Mapping: <c>Channel.CreateBounded(capacity)</c> is a pump with <c>Capacity = capacity</c>, and
/// <see cref="PeerEventPumpFullMode"/> has <c>BoundedChannelFullMode</c>'s names and meanings; <c>TryWrite</c> is
/// <c>TryPost</c>, <c>WriteAsync</c> is <c>PostAsync</c>, whose <see cref="PeerPostResult"/> says what became of the message;
/// the reader is the pump's loop, and "reading an item" is the loop taking a message (the handler is held on a gate so that
/// nothing is read until the test says). Completing the writer is <c>CloseAsync</c>: where Channels throws
/// <c>ChannelClosedException</c>, the pump's post reports <see cref="PeerPostResult.Closed"/> (its documented behaviour).
/// Lifecycle events (Added, Removed) are never counted against the capacity.
/// </remarks>
public sealed class ChannelsBoundedWriterPumpConformanceTests
{
    private const int DroppedEventId = 4002;

    // Ports BoundedChannelTests.Count_IncrementsDecrementsAsExpected: writes up to the bound succeed, the next TryWrite
    // is refused, and completing the writer (the second iteration there) still lets the reader drain every item in order.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TryPost_AcceptsUpToCapacity_RefusesTheNext_AndCompletingStillDeliversEveryQueuedMessageInOrder(bool completeBeforeReading)
    {
        const int Bound = 3;
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = Bound });

        for (var i = 0; i < Bound; i++)
        {
            peer.TryPost($"m{i}").Should().BeTrue();
        }

        peer.TryPost("m42", out var refused).Should().BeFalse("the queue holds Capacity messages");
        refused.Should().Be(PeerPostResult.Full);
        var completion = completeBeforeReading ? pump.CloseAsync() : Task.CompletedTask;

        hold.SetResult();
        await handler.WhenHandled(1 + Bound).OrHang();
        await completion.OrHang();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m0", "m1", "m2", "removed");
    }

    // Ports BoundedChannelTests.TryWrite_TryRead_Many_Wait: FullMode Wait, TryWrite fills the bound, the next is refused,
    // and the reader sees exactly the accepted items, in order.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task WaitMode_TryPostFillsTheBound_RefusesTheNext_AndTheHandlerSeesExactlyTheAcceptedMessagesInOrder(int capacity)
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = capacity, FullMode = PeerEventPumpFullMode.Wait });

        for (var i = 0; i < capacity; i++)
        {
            peer.TryPost($"{i}").Should().BeTrue();
        }

        peer.TryPost($"{capacity}", out var refused).Should().BeFalse();
        refused.Should().Be(PeerPostResult.Full);

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(0, capacity)));
    }

    // Ports BoundedChannelTests.TryWrite_TryRead_Many_DropOldest and WriteAsync_TryRead_Many_DropOldest: writing twice the
    // bound succeeds every time (WriteAsync synchronously), and the reader sees only the newest `capacity` items, in order.
    [Theory]
    [InlineData(1, false)]
    [InlineData(10, false)]
    [InlineData(10000, false)]
    [InlineData(1, true)]
    [InlineData(10, true)]
    [InlineData(10000, true)]
    public async Task DropOldest_EveryPostSucceedsAtOnce_AndTheHandlerSeesOnlyTheNewestCapacityMessagesInOrder(int capacity, bool postAsync)
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = capacity, FullMode = PeerEventPumpFullMode.DropOldest });

        for (var i = 0; i < capacity * 2; i++)
        {
            (await PostSynchronouslyAsync(peer, $"{i}", postAsync)).Should().Be(PeerPostResult.Posted);
        }

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(capacity, capacity)));
    }

    // Ports BoundedChannelTests.TryWrite_TryRead_Many_DropNewest and WriteAsync_TryRead_Many_DropNewest. The pump's
    // DropNewest has Channels' meaning (PeerEventPumpFullMode docs: "the newest waiting message ... is dropped ... to make
    // room; the posted one is accepted"): every write succeeds, and the reader sees 0..capacity-2, then 2*capacity-1.
    // (The pump's DropNewest used to drop the incoming message instead, a documented difference; that is DropWrite now.)
    [Theory]
    [InlineData(1, false)]
    [InlineData(10, false)]
    [InlineData(10000, false)]
    [InlineData(1, true)]
    [InlineData(10, true)]
    [InlineData(10000, true)]
    public async Task DropNewest_EveryPostSucceedsAtOnce_AndEachPostPastTheBoundReplacesTheNewestQueuedMessage(int capacity, bool postAsync)
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = capacity, FullMode = PeerEventPumpFullMode.DropNewest });

        for (var i = 0; i < capacity * 2; i++)
        {
            (await PostSynchronouslyAsync(peer, $"{i}", postAsync)).Should().Be(PeerPostResult.Posted);
        }

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(0, capacity - 1).Append(capacity * 2 - 1)));
    }

    // Ports BoundedChannelTests.TryWrite_DropNewest_WrappedAroundInternalQueue: one item is read (moving the queue's head),
    // the bound is filled, and one more write arrives. As in Channels, the pump's DropNewest replaces the newest queued
    // message: the write succeeds and the reader sees 2, 3, 5.
    [Fact]
    public async Task DropNewest_AfterTheLoopHasReadAMessage_ReplacesTheNewestQueuedMessage()
    {
        var handler = new HookedHandler();
        var inFirst = handler.HoldAt("p:1");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 3, FullMode = PeerEventPumpFullMode.DropNewest });
        var peer = pump.Connect("p");
        peer.MarkReady();

        peer.TryPost("1").Should().BeTrue();
        await handler.Entered("p:1").OrHang(); // the loop has taken "1": the queue is empty again
        peer.TryPost("2").Should().BeTrue();
        peer.TryPost("3").Should().BeTrue();
        peer.TryPost("4").Should().BeTrue();
        peer.TryPost("5").Should().BeTrue("the queue is full: DropNewest drops the newest queued message, \"4\", to make room");

        inFirst.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "1", "2", "3", "5", "removed");
    }

    // Ports BoundedChannelTests.TryWrite_TryRead_Many_Ignore and WriteAsync_TryRead_Many_Ignore (FullMode DropWrite): the
    // pump's DropWrite has Channels' meaning. Same items delivered (the first `capacity`); DIFFERENCE BY DESIGN: Channels'
    // DropWrite returns true for a dropped write, the pump reports it (documented: "the post returns
    // PeerPostResult.Dropped"; TryPost returns false).
    [Theory]
    [InlineData(1, false)]
    [InlineData(10, false)]
    [InlineData(10000, false)]
    [InlineData(1, true)]
    [InlineData(10, true)]
    [InlineData(10000, true)]
    public async Task DropWrite_DeliversTheFirstCapacityMessages_AndReportsEveryDroppedOneAsDropped(int capacity, bool postAsync)
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = capacity, FullMode = PeerEventPumpFullMode.DropWrite });

        var results = new List<PeerPostResult>();
        for (var i = 0; i < capacity * 2; i++)
        {
            results.Add(await PostSynchronouslyAsync(peer, $"{i}", postAsync));
        }

        results.Should().Equal(Enumerable.Repeat(PeerPostResult.Posted, capacity).Concat(Enumerable.Repeat(PeerPostResult.Dropped, capacity)));
        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(0, capacity)));
    }

    // Ports BoundedChannelTests.DroppedDelegateNotCalledOnWaitMode_SyncWrites. The pump has no itemDropped delegate; a drop
    // is reported by a warning log (event 4002) and the concurrency.primitives.pump.dropped counter. A refused TryPost in
    // Wait mode is not a drop.
    [Fact]
    public async Task WaitMode_ARefusedTryPost_IsNotReportedAsADrop()
    {
        var logger = new RecordingLogger();
        var (pump, _, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1, FullMode = PeerEventPumpFullMode.Wait, Logger = logger });

        peer.TryPost("1").Should().BeTrue();
        peer.TryPost("1", out var refused).Should().BeFalse();

        refused.Should().Be(PeerPostResult.Full, "a refusal in Wait mode, not a drop");
        logger.Entries.Should().NotContain(e => e.EventId == DroppedEventId);
        hold.SetResult();
        await pump.DisposeAsync();
    }

    // Ports BoundedChannelTests.DroppedDelegateNotCalledOnWaitMode_AsyncWrites: the second write waits, a read frees room,
    // the write completes, and nothing was dropped.
    [Fact]
    public async Task WaitMode_APostAsyncThatWaitsAndThenGoesThrough_IsNotReportedAsADrop()
    {
        var logger = new RecordingLogger();
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1, FullMode = PeerEventPumpFullMode.Wait, Logger = logger });

        (await peer.PostAsync("1").AsTask().OrHang()).Should().Be(PeerPostResult.Posted);
        var second = peer.PostAsync("2").AsTask();
        second.IsCompleted.Should().BeFalse("the queue is full");

        hold.SetResult();
        (await second.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "1", "2", "removed");
        logger.Entries.Should().NotContain(e => e.EventId == DroppedEventId);
    }

    // Ports BoundedChannelTests.DroppedDelegateCalledOnChannelFull_SyncWrites and _AsyncWrites (the three drop modes, as
    // there): nothing is reported while the queue has room, then exactly one drop per write past the bound. The reported
    // peer is the dropped message's (for DropOldest and DropNewest, the displaced one's). Every write succeeds, except
    // that DropWrite reports the write it dropped (PeerPostResult.Dropped, where Channels returns true).
    [Theory]
    [InlineData(PeerEventPumpFullMode.DropNewest, false)]
    [InlineData(PeerEventPumpFullMode.DropOldest, false)]
    [InlineData(PeerEventPumpFullMode.DropWrite, false)]
    [InlineData(PeerEventPumpFullMode.DropNewest, true)]
    [InlineData(PeerEventPumpFullMode.DropOldest, true)]
    [InlineData(PeerEventPumpFullMode.DropWrite, true)]
    public async Task DropModes_ReportNothingWhileThereIsRoom_ThenExactlyOneDropPerPostPastTheBound(PeerEventPumpFullMode mode, bool postAsync)
    {
        const int ChannelCapacity = 10;
        var logger = new RecordingLogger();
        var (pump, _, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = ChannelCapacity, FullMode = mode, Logger = logger });

        for (var i = 0; i < ChannelCapacity; i++)
        {
            (await PostSynchronouslyAsync(peer, $"{i}", postAsync)).Should().Be(PeerPostResult.Posted);
        }

        logger.Entries.Should().NotContain(e => e.EventId == DroppedEventId, "no message is dropped while the queue has room");

        for (var i = ChannelCapacity; i < ChannelCapacity + 10; i++)
        {
            (await PostSynchronouslyAsync(peer, $"{i}", postAsync)).Should().Be(mode == PeerEventPumpFullMode.DropWrite ? PeerPostResult.Dropped : PeerPostResult.Posted);
        }

        var drops = logger.Entries.Where(e => e.EventId == DroppedEventId).ToList();
        drops.Should().HaveCount(10);
        drops.Should().OnlyContain(e => (string?)e["Peer"] == "p");
        hold.SetResult();
        await pump.DisposeAsync();
    }

    // Ports BoundedChannelTests.DroppedDelegateCalledAfterLockReleased_SyncWrites: the drop callback (here: the pump's
    // ILogger, the only user code a drop runs) must not run while the primitive's lock is held. The callback writes to
    // the same pump from another thread and waits for that write; if the lock were held, that write could not finish.
    // (The pump's docs promise nothing about where the logger runs; Channels' tests do promise it for the drop callback.)
    [Fact]
    public async Task DropModes_TheDropIsReportedAfterThePumpsLockIsReleased()
    {
        PeerHandle<string, string>? other = null;
        var otherPostFinished = false;
        var reported = 0;
        var logger = new CallbackLogger(entryEventId =>
        {
            if (entryEventId != DroppedEventId || Interlocked.Exchange(ref reported, 1) == 1)
            {
                return;
            }

            using var done = new ManualResetEventSlim();
            ThreadPool.QueueUserWorkItem(_ =>
            {
                other!.TryPost("from another thread");
                done.Set();
            });
            otherPostFinished = done.Wait(TimeSpan.FromSeconds(5)); // bounds the deadlock the port looks for
        });
        var (pump, _, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1, FullMode = PeerEventPumpFullMode.DropOldest, Logger = logger });
        other = pump.Connect("q");
        other.MarkReady();

        peer.TryPost("1").Should().BeTrue();
        peer.TryPost("2").Should().BeTrue(); // displaces "1": reported

        otherPostFinished.Should().BeTrue("a post from another thread must be able to take the pump's lock while the drop is reported");
        hold.SetResult();
        await pump.DisposeAsync();
    }

    // Ports BoundedChannelTests.CancelPendingWrite_Reading_DataTransferredFromCorrectWriter: a waiting write is cancelled,
    // a second write waits after it; the read that frees room transfers the *second* writer's item, and the cancelled one
    // never appears.
    [Fact]
    public async Task CancellingAWaitingPostAsync_LeavesTheRoomToTheNextWaiter_AndItsMessageIsNeverDelivered()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });
        (await peer.PostAsync("42").AsTask().OrHang()).Should().Be(PeerPostResult.Posted);
        using var cts = new CancellationTokenSource();

        var write1 = peer.PostAsync("43", cts.Token).AsTask();
        write1.IsCompleted.Should().BeFalse("the queue is full");
        await cts.CancelAsync();
        var write2 = peer.PostAsync("44").AsTask();

        hold.SetResult();
        await handler.WhenHandled(3).OrHang();
        (await write2.OrHang()).Should().Be(PeerPostResult.Posted);
        var cancelled = await write1.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        cancelled.Which.CancellationToken.Should().Be(cts.Token);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "42", "44", "removed");
    }

    // Ports BoundedChannelTests.SingleProducerConsumer_ConcurrentReadWrite_WithBufferedCapacity_Success: one producer awaits
    // every WriteAsync while the reader runs concurrently; every item arrives, in order.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task OneProducerAwaitingEveryPostAsync_WithTheLoopRunning_DeliversEveryMessageInOrder(int capacity)
    {
        const int NumItems = 10000;
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = capacity });
        var peer = pump.Connect("p");
        peer.MarkReady();

        await Task.Run(async () =>
        {
            for (var i = 0; i < NumItems; i++)
            {
                (await peer.PostAsync($"{i}")).Should().Be(PeerPostResult.Posted);
            }
        }).OrHang();

        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(0, NumItems)));
    }

    // Ports BoundedChannelTests.ManyProducerConsumer_ConcurrentReadWrite_WithBufferedCapacity_Success: ten writers share the
    // items 1..10000 and wait for room as needed; the last one completes the channel; the reader sees every item once. The
    // pump has one consumer, so the ten readers are its loop; each writer is a peer of its own.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    [InlineData(10000)]
    public async Task ManyProducersWaitingForRoom_EveryAcceptedMessageIsDeliveredExactlyOnce(int capacity)
    {
        const int NumWriters = 10;
        const int NumItems = 10000;
        var handler = new RecordingPeerHandler<int>();
        var pump = new PeerEventPump<int, string>(handler, new PeerEventPumpOptions { Capacity = capacity });
        var remainingItems = NumItems;
        var remainingWriters = NumWriters;

        var writers = Enumerable.Range(0, NumWriters).Select(w => Task.Run(async () =>
        {
            var peer = pump.Connect(w);
            peer.MarkReady();
            while (true)
            {
                var value = Interlocked.Decrement(ref remainingItems);
                if (value < 0)
                {
                    break;
                }

                (await peer.PostAsync($"{value + 1}")).Should().Be(PeerPostResult.Posted);
            }

            if (Interlocked.Decrement(ref remainingWriters) == 0)
            {
                await pump.CloseAsync();
            }
        })).ToArray();

        await Task.WhenAll(writers).OrHang();
        await pump.Completion.OrHang();
        var delivered = Enumerable.Range(0, NumWriters).SelectMany(w => handler.HistoryOf(w).Where(e => e is not "added" and not "removed")).Select(long.Parse).ToList();
        delivered.Should().HaveCount(NumItems);
        delivered.Sum().Should().Be(NumItems * (NumItems + 1L) / 2);
    }

    // Ports BoundedChannelTests.WaitToWriteAsync_AfterFullThenRead_ReturnsTrue. The pump has no WaitToWriteAsync (a wait for
    // room that writes nothing); its PostAsync is a reservation, so one read completes exactly one of two waiting posts
    // (Channels completes both WaitToWriteAsync, which only say "there may be room"). Asserted: the oldest waiter gets the
    // one free place and the other keeps waiting until the next read.
    [Fact]
    public async Task OneFreedPlace_CompletesExactlyTheOldestOfTwoWaitingPosts()
    {
        var handler = new HookedHandler();
        var inOne = handler.HoldAt("p:1");
        var inTwo = handler.HoldAt("p:2");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        var blocker = handler.HoldAt("p:added");
        peer.MarkReady();
        await handler.Entered("p:added").OrHang();
        peer.TryPost("1").Should().BeTrue();

        var write1 = peer.PostAsync("2").AsTask();
        var write2 = peer.PostAsync("3").AsTask();
        write1.IsCompleted.Should().BeFalse();
        write2.IsCompleted.Should().BeFalse();

        blocker.SetResult();
        await handler.Entered("p:1").OrHang(); // "1" read: one place free, and the loop is held here
        (await write1.OrHang()).Should().Be(PeerPostResult.Posted);
        write2.IsCompleted.Should().BeFalse("the one freed place went to the first waiter; the queue is full again");

        inOne.SetResult();
        await handler.Entered("p:2").OrHang();
        (await write2.OrHang()).Should().Be(PeerPostResult.Posted);
        inTwo.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "1", "2", "3", "removed");
    }

    // Ports ChannelTestBase.WaitToWriteAsync_AfterComplete_SynchronouslyCompletes: after completion, a wait to write
    // completes at once, with false (here: PeerPostResult.Closed).
    [Fact]
    public async Task AfterCompletion_PostAsyncCompletesSynchronously_WithClosed()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await pump.CloseAsync().OrHang();

        var write = peer.PostAsync("late").AsTask();

        write.IsCompletedSuccessfully.Should().BeTrue();
        (await write).Should().Be(PeerPostResult.Closed);
    }

    // Ports ChannelTestBase.WaitToWriteAsync_EmptyChannel_SynchronouslyCompletes: with room, a write completes at once.
    [Fact]
    public async Task WithRoom_PostAsyncCompletesSynchronously_WithTrue()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();

        var write = peer.PostAsync("1").AsTask();

        write.IsCompletedSuccessfully.Should().BeTrue();
        (await write).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "1", "removed");
    }

    // Ports ChannelTestBase.TryWrite_AfterComplete_ReturnsFalse.
    [Fact]
    public async Task AfterCompletion_TryPostReturnsFalse()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await pump.CloseAsync().OrHang();

        peer.TryPost("late").Should().BeFalse();
        peer.TryPost("late", out var why).Should().BeFalse();
        why.Should().Be(PeerPostResult.Closed);
        handler.HistoryOf("p").Should().Equal("added", "removed");
    }

    // Ports ChannelTestBase.WriteAsync_AfterComplete_ThrowsException and Complete_WithException_PropagatesToNewWriter.
    // DIFFERENCE BY DESIGN: Channels throws (ChannelClosedException, with the completion's exception inside); the pump's
    // PostAsync says so in its result instead, PeerPostResult.Closed ("the pump is closed, closing, disposed or faulted"),
    // and has no completion exception to carry.
    [Fact]
    public async Task AfterCompletion_PostAsyncReportsClosed_InsteadOfThrowing()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await pump.CloseAsync().OrHang();

        (await peer.PostAsync("late").AsTask().OrHang()).Should().Be(PeerPostResult.Closed);
        handler.HistoryOf("p").Should().Equal("added", "removed");
    }

    // Ports ChannelTestBase.Complete_WithException_PropagatesToExistingWriter: a writer waiting on a full channel is
    // released when the channel completes (Channels: ChannelClosedException; the pump: PostAsync returns Closed, documented
    // "Disconnected or Closed also if the peer disconnects or the pump shuts down while the post waits"); the items
    // already queued are still read.
    [Fact]
    public async Task ClosingThePump_ReleasesAWaitingPostAsyncWithClosed_AndStillDeliversTheQueuedMessages()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });
        peer.TryPost("queued").Should().BeTrue();
        var waiting = peer.PostAsync("42").AsTask();
        waiting.IsCompleted.Should().BeFalse("the queue is full");

        var completion = pump.CloseAsync();

        (await waiting.OrHang()).Should().Be(PeerPostResult.Closed, "the pump shut down while the post waited for room");
        hold.SetResult();
        await completion.OrHang();
        handler.HistoryOf("p").Should().Equal("added", "queued", "removed");
    }

    // Ports ChannelTestBase.ManyWriteAsync_ThenManyTryRead_Success: 2000 writes to a channel of capacity 1 (all but the
    // first wait), then 2000 reads: the reads see the writes in the order they were issued, and every write completes.
    // Here all the writes come from one peer's handle, so the pump's own contract says the same thing: the handler sees
    // a peer's messages "in the order the peer's handle posted it".
    [Fact]
    public async Task ManyWaitingPostAsyncs_AreServedInTheOrderTheyWereIssued()
    {
        const int NumItems = 2000;
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });

        var writers = Enumerable.Range(0, NumItems).Select(i => peer.PostAsync($"{i}").AsTask()).ToArray();
        writers.Skip(1).Should().OnlyContain(w => !w.IsCompleted, "the queue is full after the first");

        hold.SetResult();
        (await Task.WhenAll(writers).OrHang()).Should().OnlyContain(result => result == PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(Expected(Enumerable.Range(0, NumItems)));
    }

    // Ports ManyWriteAsync_ThenManyTryRead_Success's hand-over (ChannelTestBase): in Channels a read moves the oldest
    // blocked writer's item into the freed place under the channel's lock, so no write issued later can take that place
    // (a TryWrite racing the read returns false; the blocked writers are served first, in order). Here the handler, run
    // inline on the loop right after the loop took a message and granted the freed place to the waiting post, issues a
    // TryPost: it must not overtake the waiting post.
    [Fact]
    public async Task APostIssuedWhileAWaitingPostAsyncHoldsTheFreedPlace_DoesNotOvertakeIt()
    {
        var handler = new HookedHandler();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        var other = pump.Connect("q");
        var blocker = handler.HoldAt("p:added");
        peer.MarkReady();
        await handler.Entered("p:added").OrHang();
        other.MarkReady();
        peer.TryPost("1").Should().BeTrue();
        var waiting = peer.PostAsync("2").AsTask();
        bool? barged = null;
        handler.OnEvent = evt =>
        {
            if (evt == "p:1")
            {
                barged = other.TryPost("q-late"); // the loop took "1" and granted its place to the waiting "2"
            }
        };

        blocker.SetResult();
        (await waiting.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();

        barged.Should().BeFalse("the freed place belongs to the post that was waiting for it");
        handler.HistoryOf("p").Should().Equal("added", "1", "2", "removed");
    }

    // Ports ChannelTestBase.Precancellation_Writing_ReturnsImmediately: a write with an already-cancelled token completes
    // at once, as cancelled, even though there is room, and writes nothing.
    [Fact]
    public async Task PostAsyncWithAnAlreadyCancelledToken_IsCancelledAtOnce_AndPostsNothing()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Capacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();

        var write = peer.PostAsync("never", new CancellationToken(canceled: true)).AsTask();

        write.IsCanceled.Should().BeTrue();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "removed");
    }

    // Ports ChannelTestBase.ReadAsync_Canceled_WriteAsyncCompletesNextReader, mirrored to the writer side (the brief's
    // "cancellation does not lose the room for the next one"): five waiting writes are cancelled one after another; then
    // seven write-and-read rounds each go through.
    [Fact]
    public async Task CancelledWaitingPostAsyncs_LoseNoRoom_LaterPostsAllGoThrough()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });
        peer.TryPost("filler").Should().BeTrue();

        for (var i = 0; i < 5; i++)
        {
            using var cts = new CancellationTokenSource();
            var write = peer.PostAsync($"cancelled{i}", cts.Token).AsTask();
            await cts.CancelAsync();
            await write.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        }

        hold.SetResult();
        await handler.WhenHandled(2).OrHang();
        for (var i = 0; i < 7; i++)
        {
            (await peer.PostAsync($"{i}").AsTask().OrHang()).Should().Be(PeerPostResult.Posted);
            await handler.WhenHandled(3 + i).OrHang();
        }

        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal(new[] { "added", "filler" }.Concat(Enumerable.Range(0, 7).Select(i => $"{i}")).Append("removed"));
    }

    private static IEnumerable<string> Expected(IEnumerable<int> messages) =>
        new[] { "added" }.Concat(messages.Select(i => $"{i}")).Append("removed");

    /// <summary>TryPost, or PostAsync that must complete synchronously (a drop mode never waits); what became of the message.</summary>
    private static async Task<PeerPostResult> PostSynchronouslyAsync(PeerHandle<string, string> peer, string message, bool postAsync)
    {
        if (!postAsync)
        {
            peer.TryPost(message, out var result).Should().Be(result == PeerPostResult.Posted);
            return result;
        }

        var write = peer.PostAsync(message).AsTask();
        write.IsCompletedSuccessfully.Should().BeTrue("a drop mode never makes PostAsync wait");
        return await write;
    }

    /// <summary>A pump with one ready peer "p", its loop held inside OnAdded (the queue empty again) until <c>hold</c> is set.</summary>
    private static async Task<(PeerEventPump<string, string> Pump, RecordingPeerHandler<string> Handler, PeerHandle<string, string> Peer, TaskCompletionSource Hold)> StartHeldInOnAddedAsync(PeerEventPumpOptions options)
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(handler, options);
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        return (pump, handler, peer, hold);
    }

    /// <summary>
    /// A handler that records each event ("peer:event"), signals when the loop enters one, can hold the loop inside a
    /// chosen event until its gate is set, and can run a synchronous hook on the loop as it enters an event.
    /// </summary>
    private sealed class HookedHandler : IPeerEventConsumer<string, string>
    {
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _holds = new();
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _entered = new();
        private readonly ConcurrentQueue<string> _seen = new();

        public Action<string>? OnEvent { get; set; }

        public TaskCompletionSource HoldAt(string evt) => _holds.GetOrAdd(evt, _ => Bounded.NewGate());

        public Task Entered(string evt) => _entered.GetOrAdd(evt, _ => Bounded.NewGate()).Task;

        public IReadOnlyList<string> HistoryOf(string peer) =>
            _seen.Where(e => e.StartsWith(peer + ":", StringComparison.Ordinal)).Select(e => e[(peer.Length + 1)..]).ToList();

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => RecordAsync($"{peer}:added");

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => RecordAsync($"{peer}:{message}");

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => RecordAsync($"{peer}:removed");

        private async ValueTask RecordAsync(string evt)
        {
            _seen.Enqueue(evt);
            OnEvent?.Invoke(evt);
            _entered.GetOrAdd(evt, _ => Bounded.NewGate()).TrySetResult();
            if (_holds.TryGetValue(evt, out var hold))
            {
                await hold.Task;
            }
        }
    }

    /// <summary>A logger that hands every event id to a callback, synchronously, on the logging thread.</summary>
    private sealed class CallbackLogger : ILogger
    {
        private readonly Action<int> _onLog;

        public CallbackLogger(Action<int> onLog) => _onLog = onLog;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) => _onLog(eventId.Id);
    }
}
