using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>Invariants 5-7 of src/Concurrency.Primitives/Events/README.md: handler faults, shutdown, bounded messages.</summary>
public sealed class PeerEventPumpFaultAndShutdownTests
{
    /// <summary>
    /// An identity whose own GetHashCode throws while its connection is disconnected: the caller gets that exception and
    /// the connection is as it was (it still posts, and a later disconnect works), and a close, which runs no identity's
    /// code, still gives it its one Removed. (The disconnect once marked the handle first and then looked the identity
    /// up; the throw left it marked but listed as ready, with no Removed, and a later close looped for ever.)
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AnIdentityWhoseHashThrowsOnDisconnect_LeavesItsConnectionIntact_AndStillGetsExactlyOneRemoved(bool throwsUntilTheClose)
    {
        var handler = new RecordingPeerHandler<SwitchablePeer>();
        var pump = new PeerEventPump<SwitchablePeer, string>(handler);
        var foo = new SwitchablePeer("foo");
        var bar = new SwitchablePeer("bar");
        var fooHandle = pump.Connect(foo);
        var barHandle = pump.Connect(bar);
        fooHandle.MarkReady().Should().BeTrue();
        barHandle.MarkReady().Should().BeTrue();
        fooHandle.TryPost("m1").Should().BeTrue();
        await handler.WhenHandled(3).OrHang();
        var hold = Bounded.NewGate();
        handler.Hold = hold.Task; // the recording handler looks its peers up too: it waits while the identity throws

        foo.Throws = true;
        FluentActions.Invoking(() => fooHandle.Disconnect()).Should().Throw<InvalidOperationException>().WithMessage("hash fault");
        fooHandle.TryPost("m2").Should().BeTrue("the failed disconnect changed nothing");
        barHandle.Disconnect().Should().BeTrue();

        var expected = new[] { "foo:added", "bar:added", "foo:m1", "foo:m2", "bar:removed", "foo:removed" };
        if (!throwsUntilTheClose)
        {
            foo.Throws = false;
            fooHandle.Disconnect().Should().BeTrue();
        }

        var closing = pump.CloseAsync(); // with the identity still throwing in one case: a close runs no identity's code
        foo.Throws = false;
        hold.SetResult();
        await closing.OrHang();
        await handler.WhenHandled(expected.Length).OrHang();
        handler.Order.Should().Equal(expected);
        fooHandle.Disconnect().Should().BeFalse("it is disconnected now");
    }

    /// <summary>
    /// A reconnect whose identity's GetHashCode throws, at its first or its second use in the reconnect, is refused, and
    /// leaves the live connection as it was: it still posts, and gets its one Removed at the close.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task AReconnectWhoseIdentityHashThrows_IsRefused_AndTheLiveConnectionGoesOn(int failingCall)
    {
        var handler = new RecordingPeerHandler<SwitchablePeer>();
        var pump = new PeerEventPump<SwitchablePeer, string>(handler);
        var foo = new SwitchablePeer("foo");
        var live = pump.Connect(foo);
        live.MarkReady().Should().BeTrue();

        await handler.WhenHandled(1).OrHang();
        var hold = Bounded.NewGate();
        handler.Hold = hold.Task; // the recording handler looks its peers up too: it waits while the identity throws

        foo.FailAtCall(failingCall);
        FluentActions.Invoking(() => pump.Connect(foo)).Should().Throw<InvalidOperationException>().WithMessage("hash fault");
        foo.FailAtCall(0);
        live.TryPost("m1").Should().BeTrue();
        hold.SetResult();

        await Task.Run(() => pump.CloseAsync()).OrHang(); // off this thread: a close that never ends must fail the test, not hang it
        await handler.WhenHandled(3).OrHang();
        handler.Order.Should().Equal("foo:added", "foo:m1", "foo:removed");
    }

    [Theory]
    [InlineData("added")]
    [InlineData("m1")]
    [InlineData("removed")]
    public async Task AThrowingHandler_DoesNotStopThePump_NorLoseARemoved(string throwOn)
    {
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add(throwOn);
        var pump = new PeerEventPump<string, string>(handler);
        var first = pump.Connect("first");
        first.MarkReady();
        first.TryPost("m1");
        first.Disconnect();
        var second = pump.Connect("second");
        second.MarkReady();
        second.TryPost("m2");

        await pump.DisposeAsync();

        handler.HistoryOf("first").Should().Equal("added", "m1", "removed");
        handler.HistoryOf("second").Should().Equal("added", "m2", "removed");
        pump.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task FaultPumpPolicy_StopsDelivering_RemovesEveryAddedPeer_AndFaultsCompletion()
    {
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var a = pump.Connect("a");
        var b = pump.Connect("b");
        var c = pump.Connect("c");
        a.MarkReady();
        b.MarkReady();
        a.TryPost("poison");
        b.TryPost("never delivered");
        c.MarkReady(); // queued after the poison: never added

        var fault = await pump.Invoking(p => p.Completion.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        fault.Which.Message.Should().Contain("poison");
        handler.HistoryOf("a").Should().Equal("added", "poison", "removed");
        handler.HistoryOf("b").Should().Equal("added", "removed");
        handler.HistoryOf("c").Should().BeEmpty();
        b.TryPost("after the fault").Should().BeFalse();
        pump.Invoking(p => p.Connect("d")).Should().Throw<ClosedException>().WithMessage("*faulted*");
        await pump.DisposeAsync(); // the fault stays on Completion
    }

    [Fact]
    public async Task Shutdown_DeliversWhatIsQueued_ThenRemovedForEveryLivePeer_ThenCompletes()
    {
        var handler = new RecordingPeerHandler<int>();
        var pump = new PeerEventPump<int, string>(handler);
        var peers = Enumerable.Range(0, 5).Select(pump.Connect).ToArray();
        foreach (var peer in peers)
        {
            peer.MarkReady();
            peer.TryPost("hello");
        }

        await pump.CloseAsync().OrHang();

        for (var i = 0; i < peers.Length; i++)
        {
            handler.HistoryOf(i).Should().Equal("added", "hello", "removed");
            peers[i].State.Should().Be(PeerConnectionState.Disconnected);
        }

        // The shutdown's Removed events come last, in the order the peers were added.
        handler.Order.Skip(10).Should().Equal(Enumerable.Range(0, 5).Select(i => $"{i}:removed"));
        pump.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task AfterDispose_PostsSayClosed_AndConnectThrowsObjectDisposed()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("x");
        peer.MarkReady();
        await pump.DisposeAsync();

        peer.TryPost("late").Should().BeFalse();
        (await peer.PostAsync("late").AsTask().OrHang()).Should().Be(PeerPostResult.Closed);
        peer.MarkReady().Should().BeFalse();
        peer.Disconnect().Should().BeFalse();
        pump.Invoking(p => p.Connect("y")).Should().Throw<ObjectDisposedException>().WithMessage("*accepts no more connections*");
    }

    [Fact]
    public async Task AfterClose_ConnectThrowsClosed_NotObjectDisposed()
    {
        var pump = new PeerEventPump<string, string>(new RecordingPeerHandler<string>(), new PeerEventPumpOptions { Name = "sync" });
        var peer = pump.Connect("x");
        peer.MarkReady();

        await pump.CloseAsync().OrHang();

        peer.TryPost("late", out var why).Should().BeFalse();
        why.Should().Be(PeerPostResult.Closed);
        pump.Invoking(p => p.Connect("y")).Should().Throw<ClosedException>().Which.Name.Should().Be("sync");
        pump.Name.Should().Be("sync");
    }

    [Fact]
    public async Task CloseAsync_WhenTheConsumerFaultedThePump_ThrowsTheFault_WhileDisposeAsyncDoesNot()
    {
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var peer = pump.Connect("a");
        peer.MarkReady();
        peer.TryPost("poison");

        await pump.Invoking(p => p.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("*poison*");
        await pump.Invoking(p => p.DisposeAsync().AsTask().OrHang()).Should().NotThrowAsync();
        pump.Completion.IsFaulted.Should().BeTrue();
    }

    [Fact]
    public async Task CloseAsync_PastItsTimeout_CancelsTheConsumersToken_AndThrowsShutdownTimeout()
    {
        var time = new ManualTimeProvider();
        var tokenCancelled = Bounded.NewGate();
        var handler = new BlockingHandler(tokenCancelled);
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { Name = "sync", ShutdownTimeout = TimeSpan.FromSeconds(5), TimeProvider = time });
        pump.Connect("stuck").MarkReady();
        await handler.Entered.Task.OrHang();

        var close = pump.CloseAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await close.Invoking(d => d.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>()).Which;
        timeout.Name.Should().Be("sync");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(5));
        timeout.Message.Should().Be("Pump 'sync' did not finish delivering its events within 00:00:05; the consumer's token was cancelled. The pump completes when the consumer returns.");
        await tokenCancelled.Task.OrHang();
    }

    [Fact]
    public async Task AnUnnamedPump_IsCalledPeerEventPump_AndSaysWhyItRefusesAConnection()
    {
        var closed = new PeerEventPump<string, string>(new RecordingPeerHandler<string>());
        await closed.CloseAsync().OrHang();

        closed.Invoking(p => p.Connect("late")).Should().Throw<ClosedException>()
            .WithMessage("Pump 'PeerEventPump' is closed (or closing); it accepts no more connections.")
            .Which.Name.Should().Be("PeerEventPump");
    }

    [Fact]
    public async Task AHandle_DescribesItsPeerItsGenerationAndItsState()
    {
        var pump = new PeerEventPump<string, string>(new RecordingPeerHandler<string>());

        var first = pump.Connect("peer-7");
        first.ToString().Should().Be("peer-7 (generation 1, Connected)");
        first.MarkReady();
        first.ToString().Should().Be("peer-7 (generation 1, Ready)");
        var second = pump.Connect("peer-7"); // the same identity again: a new generation, the old handle disconnected
        second.ToString().Should().Be("peer-7 (generation 2, Connected)");
        first.ToString().Should().Be("peer-7 (generation 1, Disconnected)");
        await pump.DisposeAsync();
    }

    [Fact]
    public async Task DisposeAsync_PastTheShutdownTimeout_CancelsTheConsumersToken_LogsIt_AndDoesNotThrow()
    {
        var (pump, time, log, tokenCancelled) = await StuckConsumerAsync();

        var dispose = pump.DisposeAsync().AsTask();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));

        await dispose.Invoking(d => d.OrHang()).Should().NotThrowAsync();
        await tokenCancelled.Task.OrHang();
        log.Entries.Should().Contain(e => e.EventId == 4006 && e.Level == Microsoft.Extensions.Logging.LogLevel.Error && e.Exception is ShutdownTimeoutException);
    }

    [Fact]
    public async Task DisposeAsync_AfterACloseThatTimedOut_ReturnsAtOnce_NotAfterASecondShutdownTimeout()
    {
        var (pump, time, log, _) = await StuckConsumerAsync();
        var close = pump.CloseAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>();

        await pump.Invoking(p => p.DisposeAsync().OrHang()).Should().NotThrowAsync("the bound was spent by the close");
        log.Entries.Should().Contain(e => e.EventId == 4006 && e.Exception is ShutdownTimeoutException);
    }

    [Fact]
    public async Task FullQueue_WaitMode_PostRefuses_PostAsyncWaitsForRoom_LifecycleEventsStillPass()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 2, FullMode = PeerEventPumpFullMode.Wait });

        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        peer.TryPost("m3").Should().BeFalse("the queue is full and Post does not wait");
        var waiting = peer.PostAsync("m4").AsTask();
        var other = pump.Connect("q");
        other.MarkReady().Should().BeTrue("lifecycle events are never refused for room");
        waiting.IsCompleted.Should().BeFalse();

        hold.SetResult();
        (await waiting.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "m2", "m4", "removed");
        handler.HistoryOf("q").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task FullQueue_WaitMode_PostAsyncIsCancellable()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });
        peer.TryPost("m1");
        using var cancel = new CancellationTokenSource();

        var waiting = peer.PostAsync("m2", cancel.Token).AsTask();
        await cancel.CancelAsync();

        await waiting.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "removed");
    }

    [Fact]
    public async Task FullQueue_WaitMode_APostAsyncWaitingForRoom_EndsWhenItsPeerDisconnects()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 1 });
        peer.TryPost("m1").Should().BeTrue();
        var other = pump.Connect("q");
        other.MarkReady();
        var othersWait = other.PostAsync("q1").AsTask();
        var waiting = peer.PostAsync("m2").AsTask();
        waiting.IsCompleted.Should().BeFalse("the queue is full");

        peer.Disconnect().Should().BeTrue();

        (await waiting.OrHang()).Should().Be(PeerPostResult.Disconnected, "its peer is gone: the message will never be delivered, so the wait ends now");
        othersWait.IsCompleted.Should().BeFalse("another peer's wait is not affected");
        hold.SetResult();
        (await othersWait.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "removed");
        handler.HistoryOf("q").Should().Equal("added", "q1", "removed");
    }

    [Fact]
    public async Task Shutdown_RemovesLivePeersInTheOrderTheyWereAdded()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var a = pump.Connect("a");
        var b = pump.Connect("b");
        var c = pump.Connect("c");
        a.MarkReady();
        b.MarkReady();
        c.MarkReady();
        a.Disconnect();
        var d = pump.Connect("d"); // may reuse the slot a left in any table keyed by peer
        d.MarkReady();

        await pump.CloseAsync().OrHang();

        handler.Order.Where(e => e.EndsWith(":removed", StringComparison.Ordinal)).Should().Equal("a:removed", "b:removed", "c:removed", "d:removed");
    }

    [Fact]
    public async Task FullQueue_DropWrite_DropsTheMessageBeingPosted_AndSaysSo()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 2, FullMode = PeerEventPumpFullMode.DropWrite });

        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        peer.TryPost("m3", out var why).Should().BeFalse();
        why.Should().Be(PeerPostResult.Dropped);
        (await peer.PostAsync("m4")).Should().Be(PeerPostResult.Dropped);

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "m2", "removed");
    }

    [Fact]
    public async Task FullQueue_DropNewest_DropsTheNewestWaitingMessage_AsChannelsDoes_AndAcceptsThePostedOne()
    {
        // BoundedChannelFullMode.DropNewest: "Remove and ignore the newest item in the channel in order to make room
        // for the item being written."
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 2, FullMode = PeerEventPumpFullMode.DropNewest });
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        var other = pump.Connect("q");
        other.MarkReady(); // a lifecycle event queued after the messages: never the one dropped
        peer.TryPost("m3").Should().BeTrue("m2, the newest waiting message, makes room");
        (await peer.PostAsync("m4")).Should().Be(PeerPostResult.Posted);

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m1", "m4", "removed");
        handler.HistoryOf("q").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task FullQueue_DropOldest_DropsTheOldestWaitingMessage_NeverALifecycleEvent()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 2, FullMode = PeerEventPumpFullMode.DropOldest });

        peer.TryPost("m1").Should().BeTrue();
        var other = pump.Connect("q");
        other.MarkReady();
        peer.TryPost("m2").Should().BeTrue();
        peer.TryPost("m3").Should().BeTrue(); // displaces m1
        other.Disconnect();

        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("p").Should().Equal("added", "m2", "m3", "removed");
        handler.HistoryOf("q").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task FullQueue_DropOldest_ManyChunksDeep_KeepsTheNewestMessagesInOrder()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 300, FullMode = PeerEventPumpFullMode.DropOldest });

        for (var i = 0; i < 1_000; i++)
        {
            peer.TryPost($"m{i}").Should().BeTrue();
        }

        hold.SetResult();
        await pump.DisposeAsync();
        var expected = new[] { "added" }.Concat(Enumerable.Range(700, 300).Select(i => $"m{i}")).Append("removed");
        handler.HistoryOf("p").Should().Equal(expected);
    }

    [Fact]
    public async Task FullQueue_WaitMode_ManyChunksDeep_EveryWaitingPostGoesThrough_InOrder()
    {
        var (pump, handler, peer, hold) = await StartHeldInOnAddedAsync(new PeerEventPumpOptions { Capacity = 300 });

        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < 1_000; i++)
            {
                (await peer.PostAsync($"m{i}")).Should().Be(PeerPostResult.Posted);
            }
        });
        hold.SetResult();
        await producer.OrHang();
        await pump.DisposeAsync();

        var expected = new[] { "added" }.Concat(Enumerable.Range(0, 1_000).Select(i => $"m{i}")).Append("removed");
        handler.HistoryOf("p").Should().Equal(expected);
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

    private sealed class BlockingHandler : IPeerEventConsumer<string, string>
    {
        private readonly TaskCompletionSource _tokenCancelled;

        public BlockingHandler(TaskCompletionSource tokenCancelled) => _tokenCancelled = tokenCancelled;

        public TaskCompletionSource Entered { get; } = Bounded.NewGate();

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken)
        {
            cancellationToken.Register(() => _tokenCancelled.TrySetResult());
            Entered.TrySetResult();
            return new ValueTask(Bounded.NewGate().Task);
        }

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
    }

    /// <summary>A pump (ShutdownTimeout 5 s, on a manual clock) whose consumer is stuck in a peer's Added until its token is cancelled.</summary>
    private static async Task<(PeerEventPump<string, string> Pump, ManualTimeProvider Time, RecordingLogger Log, TaskCompletionSource TokenCancelled)> StuckConsumerAsync()
    {
        var log = new RecordingLogger();
        var time = new ManualTimeProvider();
        var tokenCancelled = Bounded.NewGate();
        var handler = new BlockingHandler(tokenCancelled);
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { ShutdownTimeout = TimeSpan.FromSeconds(5), TimeProvider = time, Logger = log });
        pump.Connect("stuck").MarkReady();
        await handler.Entered.Task.OrHang();
        return (pump, time, log, tokenCancelled);
    }

    /// <summary>
    /// An identity (by reference) whose GetHashCode throws while <see cref="Throws"/> is set, or at one call counted from
    /// <see cref="FailAtCall"/>.
    /// </summary>
    public sealed class SwitchablePeer(string name)
    {
        private int _calls;
        private int _failingCall;

        public bool Throws { get; set; }

        /// <summary>From now on, the <paramref name="call"/>th GetHashCode (1 for the next) throws, and only that one.</summary>
        public void FailAtCall(int call) => (_calls, _failingCall) = (0, call);

        public override bool Equals(object? obj) => ReferenceEquals(this, obj);

        public override int GetHashCode() =>
            Throws || ++_calls == _failingCall ? throw new InvalidOperationException("hash fault") : StringComparer.Ordinal.GetHashCode(name);

        public override string ToString() => name;
    }
}
