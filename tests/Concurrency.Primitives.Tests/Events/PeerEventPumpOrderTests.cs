using System;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>Invariants 1-4 and 9 of src/Concurrency.Primitives/Events/README.md: per-peer histories, one FIFO, idempotent handles, reconnects.</summary>
public sealed class PeerEventPumpOrderTests
{
    [Fact]
    public async Task AReadyPeer_SeesAdded_ItsMessagesInOrder_ThenRemoved()
    {
        var handler = new RecordingPeerHandler<string>();
        await using var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("alice");

        peer.MarkReady().Should().BeTrue();
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        peer.Disconnect().Should().BeTrue();
        await handler.WhenHandled(4).OrHang();

        handler.HistoryOf("alice").Should().Equal("added", "m1", "m2", "removed");
        handler.Overlaps.Should().Be(0, "the handler runs one event at a time");
    }

    [Fact]
    public async Task DisconnectBeforeReady_DeliversNothingAtAll()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("bob");

        peer.Disconnect().Should().BeTrue();
        peer.MarkReady().Should().BeFalse();
        peer.TryPost("late").Should().BeFalse();
        await pump.DisposeAsync();

        handler.HistoryOf("bob").Should().BeEmpty();
        handler.Order.Should().BeEmpty();
    }

    [Fact]
    public async Task ReadyAndDisconnectAtTheSameMoment_ResolveToALegalHistory_DecidedByWhichTookEffectFirst()
    {
        var handler = new RecordingPeerHandler<int>();
        var pump = new PeerEventPump<int, string>(handler);
        var handles = Enumerable.Range(0, 500).Select(pump.Connect).ToArray();
        var readyWon = new bool[handles.Length];

        await Task.WhenAll(handles.Select((handle, i) => Task.WhenAll(
            Task.Run(() => readyWon[i] = handle.MarkReady()),
            Task.Run(() => handle.Disconnect()))));
        await pump.DisposeAsync();

        for (var i = 0; i < handles.Length; i++)
        {
            var history = handler.HistoryOf(i);
            if (readyWon[i])
            {
                history.Should().Equal(new[] { "added", "removed" }, "MarkReady took effect first");
            }
            else
            {
                history.Should().BeEmpty("Disconnect took effect first");
            }
        }
    }

    [Fact]
    public async Task TheSameSequenceOfCalls_AlwaysGivesTheSameHistory()
    {
        for (var run = 0; run < 20; run++)
        {
            var handler = new RecordingPeerHandler<string>();
            var pump = new PeerEventPump<string, string>(handler);
            var first = pump.Connect("p");
            first.MarkReady();
            first.Disconnect();
            var second = pump.Connect("q");
            second.Disconnect();
            second.MarkReady().Should().BeFalse();
            await pump.DisposeAsync();

            handler.Order.Should().Equal("p:added", "p:removed");
        }
    }

    [Fact]
    public async Task MarkReadyTwice_AndDisconnectTwice_AreNoOpsThatReturnFalse()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("carol");

        peer.MarkReady().Should().BeTrue();
        peer.MarkReady().Should().BeFalse();
        peer.Disconnect().Should().BeTrue();
        peer.Disconnect().Should().BeFalse();
        await pump.DisposeAsync();

        handler.HistoryOf("carol").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task MessagesPostedBeforeReady_OrAfterDisconnect_AreRefused()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("dave");

        peer.TryPost("too early").Should().BeFalse();
        peer.TryPost("too early", out var why).Should().BeFalse();
        why.Should().Be(PeerPostResult.NotReady, "a sender can tell 'not yet' from 'stop sending'");
        (await peer.PostAsync("too early, async")).Should().Be(PeerPostResult.NotReady);
        peer.MarkReady();
        peer.TryPost("ok").Should().BeTrue();
        peer.Disconnect();
        peer.TryPost("too late", out why).Should().BeFalse();
        why.Should().Be(PeerPostResult.Disconnected);
        (await peer.PostAsync("too late, async")).Should().Be(PeerPostResult.Disconnected);
        await pump.DisposeAsync();

        handler.HistoryOf("dave").Should().Equal("added", "ok", "removed");
    }

    [Fact]
    public async Task EventsOfDifferentPeers_AreDeliveredInTheGlobalOrderTheyWereAccepted()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var a = pump.Connect("a");
        var b = pump.Connect("b");

        a.MarkReady();
        b.MarkReady();
        b.TryPost("b1");
        a.TryPost("a1");
        a.Disconnect();
        b.TryPost("b2");
        await pump.DisposeAsync();

        handler.Order.Should().Equal("a:added", "b:added", "b:b1", "a:a1", "a:removed", "b:b2", "b:removed");
    }

    [Fact]
    public async Task AReconnect_RemovesTheOldConnectionFirst_AndTheOldHandleNeverTouchesTheNewOne()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var old = pump.Connect("eve");
        old.MarkReady();
        old.TryPost("old message");

        var renewed = pump.Connect("eve");
        renewed.MarkReady();
        old.TryPost("stale").Should().BeFalse();
        old.Disconnect().Should().BeFalse("the reconnect already disconnected it");
        renewed.TryPost("new message");
        await pump.DisposeAsync();

        renewed.Generation.Should().BeGreaterThan(old.Generation);
        old.State.Should().Be(PeerConnectionState.Disconnected);
        handler.HistoryOf("eve").Should().Equal("added", "old message", "removed", "added", "new message", "removed");
    }
}
