using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// dotnet/runtime System.Threading.Channels tests (ChannelTestBase.cs and UnboundedChannelTests.cs) about the reader side,
/// completion and unbounded channels, ported to <see cref="PeerEventPump{TPeer, TMessage}"/>.
/// </summary>
/// <remarks>
/// <para>
/// Mapping: <c>Channel.CreateUnbounded</c> is a pump without <c>Capacity</c>; <c>TryWrite</c> is <c>TryPost</c>,
/// <c>WriteAsync</c> is <c>PostAsync</c>. The single reader is the pump's loop: "reading an item" is the loop handing a
/// message to the consumer, and a reader waiting for data is the loop idle with nothing queued. <c>Reader.Count</c> is
/// <see cref="PeerEventPump{TPeer, TMessage}.Count"/>. <c>Writer.Complete()</c> / <c>TryComplete()</c> is <c>CloseAsync</c>
/// (per peer, <c>Disconnect</c>, whose result has <c>TryComplete</c>'s meaning); <c>Reader.Completion</c> is
/// <see cref="PeerEventPump{TPeer, TMessage}.Completion"/>. <c>Complete(exception)</c> has no writer-side counterpart: the
/// only faulted completion is the consumer's own fault under <see cref="PeerEventPumpFaultPolicy.FaultPump"/>, which is
/// what the "completion with an exception" tests drive. Where Channels throws <c>ChannelClosedException</c> at a writer,
/// the pump's post reports <see cref="PeerPostResult.Closed"/> and a connect throws <see cref="ClosedException"/>.
/// Completing also delivers a Removed for every live peer (invariant 6), which Channels has no notion of.
/// </para>
/// <para>
/// Ported (test → upstream): Completion_IsOneTask_PendingWhileOpen_ThenRanToCompletion → Completion_Idempotent;
/// ClosingAPumpWithNothingQueued_CompletesIt → Complete_AfterEmpty_NoWaiters_TriggersCompletion,
/// Complete_AfterEmpty_WaitingReader_TriggersCompletion, Complete_BeforeEmpty_WaitingReaders_TriggersCompletion;
/// ClosingTwice_IsHarmless_AndACloseOfACompletedPumpCompletesSynchronously → TryComplete_Twice_ReturnsTrueThenFalse,
/// Complete_Twice_ThrowsInvalidOperationException, WaitToReadAsync_AfterComplete_SynchronouslyCompletes;
/// DisconnectTwice_ReturnsTrueThenFalse_AndQueuesOneRemoved → TryComplete_Twice_ReturnsTrueThenFalse;
/// AConsumerFault_FaultsCompletionWithThatSameException_AndCloseThrowsItWhileDisposeDoesNot → TryComplete_ErrorsPropage,
/// Complete_WithException_PropagatesToCompletion, Complete_WithCancellationException_PropagatesToCompletion;
/// AConsumerFault_ReleasesAWaitingPost_DiscardsTheQueuedMessages_AndRemovesEveryAddedPeer →
/// Complete_WithException_PropagatesToExistingWriter; AfterAConsumerFault_NewPostsReportClosed_AndConnectsThrow →
/// Complete_WithException_PropagatesToNewWriter, Complete_WithException_PropagatesToNewWaitingWriter,
/// ReadAsync_AfterFaultedChannel_Throws; CompletionWaitsForEveryMessagePostedBeforeTheClose_DeliveredInOrder →
/// UnboundedChannelTests.Complete_BeforeEmpty_NoWaiters_TriggersCompletion and WriteMany_ThenComplete_SuccessfullyReadAll;
/// Unbounded_EveryTryPostIsAccepted_CountFollowsPostsAndReads_AndTheConsumerSeesThemInOrder →
/// UnboundedChannelTests.TryWrite_TryRead_Many and Count_IncrementsDecrementsAsExpected;
/// Unbounded_OneProducerTryPostingWhileTheLoopDrains_ThenClosing_DeliversEveryMessageInOrder →
/// SingleReaderUnboundedChannelTests.Stress_TryWrite_TryRead, SingleProducerConsumer_ConcurrentReadWrite_Success;
/// Unbounded_ManyConcurrentProducers_EveryMessageDeliveredExactlyOnce_EachProducersInItsOwnOrder →
/// ManyProducerConsumer_ConcurrentReadWrite_Success; AnIdleLoop_WakesForEachPost →
/// ReadAsync_ThenWriteAsync_Succeeds, ReadAsync_ConsecutiveReadsSucceed, WaitToReadAsync_ConsecutiveReadsSucceed,
/// WaitToReadAsync_DataAvailableAfter_CompletesAsynchronously, UnboundedChannelTests.TryWrite_TryRead_OneAtATime;
/// TheConsumerNeverRunsInlineOnTheCallersThread →
/// UnboundedChannelTests.AllowSynchronousContinuations_WaitToReadAsync_ContinuationsInvokedAccordingToSetting (the
/// asynchronous setting); CompletionContinuations_DoNotRunInsideThePumpsLock →
/// UnboundedChannelTests.AllowSynchronousContinuations_CompletionTask_ContinuationsInvokedAccordingToSetting;
/// APostRacingTheClose_IsEitherDeliveredOrRefused_AndCompletionAlwaysCompletes →
/// UnboundedChannelTests.Completion_CompletesAfterConcurrentTryReadAndTryComplete;
/// AWaitingPostCancelledBeforeTheClose_IsNeitherDeliveredNorDropped_AndCompletionCompletes →
/// SingleReaderUnboundedChannelTests.WaitToReadAsync_ReturnsFalse_WhenReadAsyncWasCancelledAndChannelCompleted and
/// ReadAsync_Canceled_CanceledAsynchronously, mirrored to the waiting writer.
/// </para>
/// <para>
/// Skipped (already ported in <see cref="ChannelsBoundedWriterPumpConformanceTests"/>): TryWrite_AfterComplete_ReturnsFalse,
/// WriteAsync_AfterComplete_ThrowsException, WaitToWriteAsync_AfterComplete_SynchronouslyCompletes,
/// WaitToWriteAsync_EmptyChannel_SynchronouslyCompletes, Precancellation_Writing_ReturnsImmediately,
/// ManyWriteAsync_ThenManyTryRead_Success, ReadAsync_Canceled_WriteAsyncCompletesNextReader (mirrored there).
/// Skipped (no counterpart: the reader is the pump's own loop, the consumer has no read call, awaiter or token of its own):
/// TryRead_*, TryPeek_*, ReadAsync_*/WaitToReadAsync_* about precancellation, cancellation, faulted or cancelled channels
/// and already-completed channels (Complete_WithException_PropagatesToExistingWaitingReader and _NewWaitingReader,
/// ReadAsync_AlreadyCompleted_Throws, ReadAsync_SubsequentlyCompleted_Throws, ReadAsync_AfterCanceledChannel_Throws,
/// Precancellation_ReadAsync/WaitToReadAsync_ReturnsImmediately, WaitToReadAsync_NoDataWritten_Canceled_CompletesAsCanceled,
/// WaitToReadAsync_DataWritten_CompletesSuccessfully, WaitToReadAsync_DataAvailableBefore_CompletesSynchronously,
/// WaitForReadAsync_DataAvailable_CompletesSynchronously, Write_WaitToReadAsync_CompletesSynchronously,
/// WaitToReadAsync_BeforeComplete_AsynchronouslyCompletes, WaitToReadAsync_AfterComplete_SynchronouslyCompletes beyond the
/// close); SingleReaderUnboundedChannelTests.MultipleWaiters_CancelsPreviousWaiter and MultipleReaders_CancelsPreviousReader
/// (no second reader can exist); ReadAsync_WriteAsync_ and ReadAsync_TryWrite_ManyConcurrentReaders_SerializedWriters_Success,
/// WaitToWriteAsync_ManyConcurrent_SatisifedByReaders, WaitToWriteAsync_BlockedReader_ReturnsTrue (many readers, or a
/// wait for room that writes nothing: no such API); SingleProducerConsumer_PingPong_Success (two channels and a reader
/// that writes back: only a throughput check here); every *_MultipleContinuations_Throws, *_AwaitThenGetResult_Throws,
/// ValueTask_GetResultWhenNotCompleted_Throws, ValueTask_MultipleContinuations_Throws and
/// Reader_ContinuesOnCurrentSynchronizationContext/TaskSchedulerIfDesired (the rules of Channels' pooled IValueTaskSource
/// awaiters, which the pump does not use for reads); Count_ThrowsIfUnsupported (Count is always supported);
/// ValidateDebuggerAttributes, ValidateInternalDebuggerAttributes, Cast_MatchesInOut (no debugger views, no reader/writer
/// casts); the AllowSynchronousContinuations = true variants (the pump has no such option: it never runs user code inline).
/// </para>
/// </remarks>
public sealed class ChannelsReaderAndCompletionPumpConformanceTests
{
    // Ports ChannelTestBase.Completion_Idempotent: Completion is one task, the same before and after completing, pending
    // until then and RanToCompletion after.
    [Fact]
    public async Task Completion_IsOneTask_PendingWhileOpen_ThenRanToCompletion()
    {
        var consumer = new ScriptedConsumer();
        var (pump, peer) = StartWithReadyPeer(consumer);
        peer.TryPost("1").Should().BeTrue();
        await consumer.WhenSeen(2).OrHang();

        var completion = pump.Completion;
        completion.IsCompleted.Should().BeFalse("the pump is open, even with nothing queued");
        pump.Completion.Should().BeSameAs(completion);

        await pump.CloseAsync().OrHang();

        pump.Completion.Should().BeSameAs(completion);
        completion.Status.Should().Be(TaskStatus.RanToCompletion);
    }

    // Ports ChannelTestBase.Complete_AfterEmpty_NoWaiters_TriggersCompletion, Complete_AfterEmpty_WaitingReader_TriggersCompletion
    // and Complete_BeforeEmpty_WaitingReaders_TriggersCompletion: completing an empty channel completes Completion. With no
    // peer the consumer sees nothing; with an idle ready peer (the loop "waiting to read") it sees only that peer's Removed
    // (DIFFERENCE BY DESIGN: a shutdown removes every live peer, invariant 6).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClosingAPumpWithNothingQueued_CompletesIt(bool withAnIdlePeer)
    {
        var consumer = new ScriptedConsumer();
        var pump = new PeerEventPump<string, string>(consumer);
        if (withAnIdlePeer)
        {
            pump.Connect("p").MarkReady().Should().BeTrue();
            await consumer.WhenSeen(1).OrHang();
        }

        await pump.CloseAsync().OrHang();

        pump.Completion.Status.Should().Be(TaskStatus.RanToCompletion);
        consumer.Order.Should().Equal(withAnIdlePeer ? new[] { "p:added", "p:removed" } : Array.Empty<string>());
    }

    // Ports ChannelTestBase.TryComplete_Twice_ReturnsTrueThenFalse and Complete_Twice_ThrowsInvalidOperationException, and
    // WaitToReadAsync_AfterComplete_SynchronouslyCompletes. DIFFERENCE BY DESIGN: closing is idempotent (invariant 4: "Disconnect
    // (and Dispose) is idempotent"; CloseAsync returns "a task that completes as Completion does"), so a second close
    // neither throws nor reports false: it completes at once, and nothing is delivered twice.
    [Fact]
    public async Task ClosingTwice_IsHarmless_AndACloseOfACompletedPumpCompletesSynchronously()
    {
        var consumer = new ScriptedConsumer();
        var (pump, peer) = StartWithReadyPeer(consumer);
        await pump.CloseAsync().OrHang();

        var second = pump.CloseAsync();

        second.IsCompletedSuccessfully.Should().BeTrue("the pump has already completed");
        peer.Disconnect().Should().BeFalse("the shutdown already disconnected the handle");
        await pump.DisposeAsync();
        pump.Completion.Status.Should().Be(TaskStatus.RanToCompletion);
        consumer.Order.Should().Equal("p:added", "p:removed");
    }

    // Ports ChannelTestBase.TryComplete_Twice_ReturnsTrueThenFalse at a peer's level: the first Disconnect returns true and
    // queues the one Removed; the next ones return false and queue nothing.
    [Fact]
    public async Task DisconnectTwice_ReturnsTrueThenFalse_AndQueuesOneRemoved()
    {
        var consumer = new ScriptedConsumer();
        var (pump, peer) = StartWithReadyPeer(consumer);

        peer.Disconnect().Should().BeTrue();
        peer.Disconnect().Should().BeFalse();
        peer.Disconnect().Should().BeFalse();

        await consumer.WhenSeen(2).OrHang();
        await pump.CloseAsync().OrHang();
        consumer.Order.Should().Equal("p:added", "p:removed");
    }

    // Ports ChannelTestBase.TryComplete_ErrorsPropage, Complete_WithException_PropagatesToCompletion and
    // Complete_WithCancellationException_PropagatesToCompletion: Completion carries the very exception the channel was
    // completed with. Here that is the consumer's exception under FaultPump ("faults with the consumer's exception"), and
    // the pump completes on its own, with no close. CloseAsync throws it; DisposeAsync never throws. DIFFERENCE BY DESIGN:
    // an OperationCanceledException makes Channels' Completion Canceled; the pump's Completion is documented to fault with
    // whatever the consumer threw, so it is Faulted, holding that same exception.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AConsumerFault_FaultsCompletionWithThatSameException_AndCloseThrowsItWhileDisposeDoesNot(bool cancellation)
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        Exception fault = cancellation ? new OperationCanceledException(cancelled.Token) : new FormatException();
        var consumer = new ScriptedConsumer { Script = ThrowOnBoom(fault) };
        var (pump, peer) = StartWithReadyPeer(consumer, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });

        peer.TryPost("boom").Should().BeTrue();

        var thrown = await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<Exception>();
        thrown.Which.Should().BeSameAs(fault);
        pump.Completion.IsFaulted.Should().BeTrue();
        pump.Completion.Exception!.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(fault);
        (await pump.Invoking(p => p.CloseAsync().OrHang()).Should().ThrowAsync<Exception>()).Which.Should().BeSameAs(fault);
        await pump.Invoking(p => p.DisposeAsync().AsTask().OrHang()).Should().NotThrowAsync();
        consumer.Order.Should().Equal("p:added", "p:boom", "p:removed");
    }

    // Ports ChannelTestBase.Complete_WithException_PropagatesToExistingWriter: a writer waiting on a full channel is released
    // when the channel completes with an error (Channels: ChannelClosedException; the pump: PeerPostResult.Closed, "the pump
    // is closed, closing, disposed or faulted"). DIFFERENCE BY DESIGN: Channels still lets the reader drain what was
    // written; the pump's fault is the reader's own failure, so the queued messages are discarded (each passed to
    // messageDropped) and every added peer gets its Removed, in the order added (FaultPump's documented behaviour). The
    // consumer faults in an Added event, before the loop has taken any message: taking one makes room, and the waiting post
    // would then race the fault for it.
    [Fact]
    public async Task AConsumerFault_ReleasesAWaitingPost_DiscardsTheQueuedMessages_AndRemovesEveryAddedPeer()
    {
        var fault = new FormatException();
        var hold = Bounded.NewGate();
        var consumer = new ScriptedConsumer
        {
            Script = evt => evt switch
            {
                "p:added" => new ValueTask(hold.Task),
                "q:added" => ValueTask.FromException(fault),
                _ => default,
            },
        };
        var drops = new DropRecorder();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 2, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump }, drops.Record);
        var p = pump.Connect("p");
        var q = pump.Connect("q");
        p.MarkReady();
        q.MarkReady();
        p.TryPost("p1").Should().BeTrue();
        q.TryPost("q1").Should().BeTrue();
        var waiting = p.PostAsync("42").AsTask();
        waiting.IsCompleted.Should().BeFalse("the queue is full and the loop is held in p's Added");

        hold.SetResult();

        (await waiting.OrHang()).Should().Be(PeerPostResult.Closed);
        await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<FormatException>();
        consumer.Order.Should().Equal("p:added", "q:added", "p:removed", "q:removed");
        drops.Seen.Should().Equal("p:p1", "q:q1");
    }

    // Ports ChannelTestBase.Complete_WithException_PropagatesToNewWriter, Complete_WithException_PropagatesToNewWaitingWriter
    // and ReadAsync_AfterFaultedChannel_Throws: after the faulted completion, every new write is refused at once. DIFFERENCE
    // BY DESIGN: Channels throws ChannelClosedException wrapping the completion's exception; the pump's posts report Closed
    // (PostAsync synchronously), a handle that was not yet ready can no longer become ready, and Connect throws
    // ClosedException ("the pump is closed, closing, or faulted").
    [Fact]
    public async Task AfterAConsumerFault_NewPostsReportClosed_AndConnectsThrow()
    {
        var consumer = new ScriptedConsumer { Script = ThrowOnBoom(new FormatException()) };
        var (pump, peer) = StartWithReadyPeer(consumer, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var notReady = pump.Connect("n");
        peer.TryPost("boom").Should().BeTrue();
        await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<FormatException>();

        var late = peer.PostAsync("late").AsTask();

        late.IsCompletedSuccessfully.Should().BeTrue();
        (await late).Should().Be(PeerPostResult.Closed);
        peer.TryPost("late", out var refused).Should().BeFalse();
        refused.Should().Be(PeerPostResult.Closed);
        notReady.MarkReady().Should().BeFalse();
        pump.Invoking(p => p.Connect("r")).Should().Throw<ClosedException>();
        consumer.Order.Should().Equal("p:added", "p:boom", "p:removed");
    }

    // Ports UnboundedChannelTests.Complete_BeforeEmpty_NoWaiters_TriggersCompletion and WriteMany_ThenComplete_SuccessfullyReadAll:
    // items written before completion are all read, in order, and Completion stays pending until the last one has been
    // read. Two peers, so the global order and the Removed order (the order the peers were added) are checked too.
    [Theory]
    [InlineData(1)]
    [InlineData(10)]
    public async Task CompletionWaitsForEveryMessagePostedBeforeTheClose_DeliveredInOrder(int perPeer)
    {
        var hold = Bounded.NewGate();
        PeerEventPump<string, string>? pump = null;
        var completedWhenHandled = new List<bool>();
        var consumer = new ScriptedConsumer();
        consumer.Script = evt =>
        {
            completedWhenHandled.Add(pump!.Completion.IsCompleted);
            return evt == "p:added" ? new ValueTask(hold.Task) : default;
        };
        pump = new PeerEventPump<string, string>(consumer);
        var p = pump.Connect("p");
        var q = pump.Connect("q");
        p.MarkReady();
        q.MarkReady();
        var expected = new List<string> { "p:added", "q:added" };
        for (var i = 0; i < perPeer; i++)
        {
            p.TryPost($"{i}").Should().BeTrue();
            q.TryPost($"{i}").Should().BeTrue();
            expected.Add($"p:{i}");
            expected.Add($"q:{i}");
        }

        var close = pump.CloseAsync();
        close.IsCompleted.Should().BeFalse("the loop has not read anything yet");
        pump.Completion.IsCompleted.Should().BeFalse();

        hold.SetResult();
        await close.OrHang();
        consumer.Order.Should().Equal(expected.Append("p:removed").Append("q:removed"));
        completedWhenHandled.Should().HaveCount(expected.Count + 2).And.OnlyContain(completed => !completed);
    }

    // Ports UnboundedChannelTests.TryWrite_TryRead_Many and Count_IncrementsDecrementsAsExpected: without a bound every
    // TryWrite succeeds; Count rises by one with each write and falls by one with each read; the reader sees every item in
    // order. Here Count is read by the test after each post and by the consumer as it receives each message.
    [Fact]
    public async Task Unbounded_EveryTryPostIsAccepted_CountFollowsPostsAndReads_AndTheConsumerSeesThemInOrder()
    {
        const int NumItems = 100_000;
        var hold = Bounded.NewGate();
        PeerEventPump<string, string>? pump = null;
        var countWhenRead = new List<int>(NumItems);
        var consumer = new ScriptedConsumer();
        consumer.Script = evt =>
        {
            if (evt == "p:added")
            {
                return new ValueTask(hold.Task);
            }

            if (evt != "p:removed")
            {
                countWhenRead.Add(pump!.Count);
            }

            return default;
        };
        (pump, var peer) = StartWithReadyPeer(consumer);

        var countWhenPosted = new List<int>(NumItems);
        for (var i = 0; i < NumItems; i++)
        {
            peer.TryPost($"{i}").Should().BeTrue();
            countWhenPosted.Add(pump.Count);
        }

        hold.SetResult();
        await pump.CloseAsync().OrHang();
        pump.Count.Should().Be(0);
        countWhenPosted.Should().Equal(Enumerable.Range(1, NumItems));
        countWhenRead.Should().Equal(Enumerable.Range(0, NumItems).Reverse());
        consumer.HistoryOf("p").Should().Equal(Numbered(NumItems));
    }

    // Ports SingleReaderUnboundedChannelTests.Stress_TryWrite_TryRead and ChannelTestBase.SingleProducerConsumer_ConcurrentReadWrite_Success
    // (unbounded): one producer TryWrites while the reader drains concurrently, then completes; the reader sees every item
    // in order, and completion comes after the last one.
    [Fact]
    public async Task Unbounded_OneProducerTryPostingWhileTheLoopDrains_ThenClosing_DeliversEveryMessageInOrder()
    {
        const int NumItems = 100_000;
        var consumer = new ScriptedConsumer();
        var (pump, peer) = StartWithReadyPeer(consumer);

        var refused = await Task.Run(() =>
        {
            var notPosted = 0;
            for (var i = 0; i < NumItems; i++)
            {
                notPosted += peer.TryPost($"{i}") ? 0 : 1;
            }

            return notPosted;
        }).OrHang();
        await pump.CloseAsync().OrHang();

        refused.Should().Be(0);
        consumer.HistoryOf("p").Should().Equal(Numbered(NumItems));
    }

    // Ports ChannelTestBase.ManyProducerConsumer_ConcurrentReadWrite_Success (unbounded; the pump has one reader, its loop):
    // writers share the items 1..NumItems, the last one to finish completes the channel, and every item is read exactly
    // once. Each writer is a peer; the pump also promises each peer's messages in posting order, and a writer takes its
    // items from a shared countdown, so each peer's messages must arrive strictly decreasing.
    [Theory]
    [InlineData(2)]
    [InlineData(10)]
    public async Task Unbounded_ManyConcurrentProducers_EveryMessageDeliveredExactlyOnce_EachProducersInItsOwnOrder(int numWriters)
    {
        const int NumItems = 10_000;
        var consumer = new ScriptedConsumer();
        var pump = new PeerEventPump<string, string>(consumer);
        var remainingItems = NumItems;
        var remainingWriters = numWriters;

        var writers = Enumerable.Range(0, numWriters).Select(w => Task.Run(async () =>
        {
            var peer = pump.Connect($"w{w}");
            peer.MarkReady();
            int value;
            while ((value = Interlocked.Decrement(ref remainingItems)) >= 0)
            {
                peer.TryPost($"{value + 1}").Should().BeTrue();
            }

            if (Interlocked.Decrement(ref remainingWriters) == 0)
            {
                await pump.CloseAsync();
            }
        })).ToArray();

        await Task.WhenAll(writers).OrHang();
        await pump.Completion.OrHang();
        var perWriter = Enumerable.Range(0, numWriters)
            .Select(w => consumer.HistoryOf($"w{w}").Where(e => e is not "added" and not "removed").Select(int.Parse).ToList())
            .ToList();
        perWriter.SelectMany(values => values).Order().Should().Equal(Enumerable.Range(1, NumItems));
        perWriter.Should().OnlyContain(values => values.Zip(values.Skip(1), (earlier, later) => earlier > later).All(decreasing => decreasing));
    }

    // Ports ChannelTestBase.ReadAsync_ThenWriteAsync_Succeeds, ReadAsync_ConsecutiveReadsSucceed, WaitToReadAsync_ConsecutiveReadsSucceed,
    // WaitToReadAsync_DataAvailableAfter_CompletesAsynchronously and UnboundedChannelTests.TryWrite_TryRead_OneAtATime: a
    // reader waiting for data gets each write as it comes. Here the loop has delivered everything before each post, so
    // each post finds it idle (or going idle) and must wake it.
    [Fact]
    public async Task AnIdleLoop_WakesForEachPost()
    {
        var consumer = new ScriptedConsumer();
        var (pump, peer) = StartWithReadyPeer(consumer);
        await consumer.WhenSeen(1).OrHang();

        for (var i = 0; i < 10; i++)
        {
            peer.TryPost($"{i}").Should().BeTrue();
            await consumer.WhenSeen(2 + i).OrHang();
            consumer.Order[^1].Should().Be($"p:{i}");
        }

        await pump.CloseAsync().OrHang();
        consumer.HistoryOf("p").Should().Equal(Numbered(10));
    }

    // Ports UnboundedChannelTests.AllowSynchronousContinuations_WaitToReadAsync_ContinuationsInvokedAccordingToSetting with
    // AllowSynchronousContinuations = false (the pump's only setting): a write never runs the waiting reader inline on the
    // writer's thread. Each call below finds the loop idle; the consumer checks whether it runs inside that call.
    [Fact]
    public async Task TheConsumerNeverRunsInlineOnTheCallersThread()
    {
        var ranInline = new List<string>();
        var consumer = new ScriptedConsumer();
        consumer.Script = evt =>
        {
            if (t_insideCaller)
            {
                ranInline.Add(evt);
            }

            return default;
        };
        var pump = new PeerEventPump<string, string>(consumer);
        var peer = pump.Connect("p");

        InsideCaller(() => peer.MarkReady());
        await consumer.WhenSeen(1).OrHang();
        InsideCaller(() => peer.TryPost("1"));
        await consumer.WhenSeen(2).OrHang();
        InsideCaller(() => peer.PostAsync("2").AsTask().IsCompletedSuccessfully);
        await consumer.WhenSeen(3).OrHang();
        InsideCaller(() => peer.Disconnect());
        await consumer.WhenSeen(4).OrHang();

        await pump.CloseAsync().OrHang();
        consumer.Order.Should().Equal("p:added", "p:1", "p:2", "p:removed");
        ranInline.Should().BeEmpty();
    }

    // Ports UnboundedChannelTests.AllowSynchronousContinuations_CompletionTask_ContinuationsInvokedAccordingToSetting with
    // AllowSynchronousContinuations = false: a continuation registered on Completion (even ExecuteSynchronously) does not
    // run inline where the completion happens. The pump completes Completion under its lock, so a continuation run inline
    // would hold that lock; here it asks another thread to connect (which takes the lock) and waits for it, bounded.
    // (The pump's docs do not name the thread of Completion's continuations; Channels' test promises this one.)
    [Fact]
    public async Task CompletionContinuations_DoNotRunInsideThePumpsLock()
    {
        var consumer = new ScriptedConsumer();
        var (pump, _) = StartWithReadyPeer(consumer);
        Exception? connectOutcome = null;
        var connectFinished = false;
        var continuation = pump.Completion.ContinueWith(
            completed =>
            {
                using var done = new ManualResetEventSlim();
                ThreadPool.QueueUserWorkItem(_ =>
                {
                    connectOutcome = Record.Exception(() => pump.Connect("late"));
                    done.Set();
                });
                connectFinished = done.Wait(TimeSpan.FromSeconds(5)); // bounds the deadlock the port looks for
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        await pump.CloseAsync().OrHang();
        await continuation.OrHang();

        connectFinished.Should().BeTrue("a connect from another thread must be able to take the pump's lock while Completion's continuation runs");
        connectOutcome.Should().BeOfType<ClosedException>();
    }

    // Ports UnboundedChannelTests.Completion_CompletesAfterConcurrentTryReadAndTryComplete: a read and a completion race, and
    // Completion must still complete. Here the loop drains two messages while, on two threads released together, a third
    // post races CloseAsync: the post is either accepted and delivered before the Removed, or refused as Closed, and the
    // pump always completes.
    [Fact]
    public async Task APostRacingTheClose_IsEitherDeliveredOrRefused_AndCompletionAlwaysCompletes()
    {
        const int Iterations = 300;
        for (var iteration = 0; iteration < Iterations; iteration++)
        {
            var consumer = new ScriptedConsumer();
            var (pump, peer) = StartWithReadyPeer(consumer);
            peer.TryPost("1").Should().BeTrue();
            peer.TryPost("2").Should().BeTrue();

            using var start = new Barrier(2);
            var post = StartOnOwnThread(() =>
            {
                start.SignalAndWait();
                peer.TryPost("3", out var result);
                return result;
            });
            var close = StartOnOwnThread(() =>
            {
                start.SignalAndWait();
                return pump.CloseAsync();
            });

            var posted = await post.OrHang();
            await (await close.OrHang()).OrHang();
            await pump.Completion.OrHang();

            posted.Should().BeOneOf(PeerPostResult.Posted, PeerPostResult.Closed);
            consumer.HistoryOf("p").Should().Equal(posted == PeerPostResult.Posted
                ? new[] { "added", "1", "2", "3", "removed" }
                : new[] { "added", "1", "2", "removed" });
        }
    }

    // Ports SingleReaderUnboundedChannelTests.WaitToReadAsync_ReturnsFalse_WhenReadAsyncWasCancelledAndChannelCompleted and
    // ChannelTestBase.ReadAsync_Canceled_CanceledAsynchronously, mirrored to the writer that waits: the operation is pending
    // until its token is cancelled, then completes as cancelled with that token; a completion afterwards is not disturbed by
    // it. Here the cancelled post's message is never delivered nor passed to messageDropped ("a PostAsync cancelled while it
    // waited leaves the message with its caller"), and the close completes after the queued message.
    [Fact]
    public async Task AWaitingPostCancelledBeforeTheClose_IsNeitherDeliveredNorDropped_AndCompletionCompletes()
    {
        var hold = Bounded.NewGate();
        var consumer = new ScriptedConsumer { Script = evt => evt == "p:added" ? new ValueTask(hold.Task) : default };
        var drops = new DropRecorder();
        var (pump, peer) = StartWithReadyPeer(consumer, new PeerEventPumpOptions { Capacity = 1 }, drops);
        peer.TryPost("queued").Should().BeTrue();
        using var cts = new CancellationTokenSource();
        var waiting = peer.PostAsync("cancelled", cts.Token).AsTask();
        waiting.IsCompleted.Should().BeFalse("the queue is full");

        await cts.CancelAsync();
        var cancelled = await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        cancelled.Which.CancellationToken.Should().Be(cts.Token);
        var close = pump.CloseAsync();
        hold.SetResult();

        await close.OrHang();
        consumer.Order.Should().Equal("p:added", "p:queued", "p:removed");
        drops.Seen.Should().BeEmpty();
    }

    /// <summary>A pump over <paramref name="consumer"/> with one ready peer, "p".</summary>
    private static (PeerEventPump<string, string> Pump, PeerHandle<string, string> Peer) StartWithReadyPeer(
        ScriptedConsumer consumer,
        PeerEventPumpOptions? options = null,
        DropRecorder? drops = null)
    {
        var pump = new PeerEventPump<string, string>(consumer, options, drops is null ? null : new Action<string, string>(drops.Record));
        var peer = pump.Connect("p");
        peer.MarkReady().Should().BeTrue();
        return (pump, peer);
    }

    /// <summary>A script under which the consumer throws <paramref name="fault"/> on p's message "boom".</summary>
    private static Func<string, ValueTask> ThrowOnBoom(Exception fault) =>
        evt => evt == "p:boom" ? ValueTask.FromException(fault) : default;

    private static IEnumerable<string> Numbered(int count) =>
        Enumerable.Range(0, count).Select(i => $"{i}").Prepend("added").Append("removed");

    /// <summary>Set on a thread only while <see cref="InsideCaller"/> runs a call there.</summary>
    [ThreadStatic]
    private static bool t_insideCaller;

    private static void InsideCaller(Func<bool> call)
    {
        t_insideCaller = true;
        try
        {
            call().Should().BeTrue();
        }
        finally
        {
            t_insideCaller = false;
        }
    }

    /// <summary>Runs <paramref name="body"/> on a dedicated thread (not the pool's, which a blocking barrier could starve).</summary>
    private static Task<T> StartOnOwnThread<T>(Func<T> body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>
    /// A consumer that records every event (through <see cref="RecordingPeerHandler{TPeer}"/>: "peer:event", in the order the
    /// loop delivers them), then runs an optional script on the loop for that event: it may return a pending task to hold
    /// the loop there, or a faulted one to throw.
    /// </summary>
    private sealed class ScriptedConsumer : IPeerEventConsumer<string, string>
    {
        private readonly RecordingPeerHandler<string> _recorder = new();

        public Func<string, ValueTask>? Script { get; set; }

        public IReadOnlyList<string> Order => _recorder.Order;

        public IReadOnlyList<string> HistoryOf(string peer) => _recorder.HistoryOf(peer);

        /// <summary>Completes once the loop has entered <paramref name="count"/> events.</summary>
        public Task WhenSeen(int count) => _recorder.WhenHandled(count);

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) =>
            ThenScriptAsync(_recorder.OnAddedAsync(peer, cancellationToken), $"{peer}:added");

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) =>
            ThenScriptAsync(_recorder.OnMessageAsync(peer, message, cancellationToken), $"{peer}:{message}");

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) =>
            ThenScriptAsync(_recorder.OnRemovedAsync(peer, cancellationToken), $"{peer}:removed");

        private async ValueTask ThenScriptAsync(ValueTask recorded, string evt)
        {
            await recorded;
            if (Script is { } script)
            {
                await script(evt);
            }
        }
    }
}
