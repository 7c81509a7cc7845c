using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// Invariants 5 and 6 in their details: a shutdown disconnects every handle, ready or not; a consumer fault under
/// FaultPump, thrown at once or later by the task the consumer returned, stops the pump, disconnects every handle and
/// ends every post waiting for room at once, before the Removed events it queues are delivered.
/// </summary>
public sealed class PeerEventPumpShutdownDetailTests
{
    [Fact]
    public async Task Shutdown_DisconnectsTheHandlesThatNeverBecameReady_Too()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var neverReady = pump.Connect("never-ready");
        var ready = pump.Connect("ready");
        ready.MarkReady();

        await pump.CloseAsync().OrHang();

        neverReady.State.Should().Be(PeerConnectionState.Disconnected);
        neverReady.Disconnect().Should().BeFalse("the shutdown disconnected it already");
        ready.State.Should().Be(PeerConnectionState.Disconnected);
        handler.HistoryOf("never-ready").Should().BeEmpty();
        handler.HistoryOf("ready").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task AFaultThatStopsThePump_DisconnectsEveryHandle()
    {
        var handler = new RecordingPeerHandler<string>();
        handler.ThrowOn.Add("poison");
        var pump = new PeerEventPump<string, string>(handler, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var ready = pump.Connect("ready");
        var neverReady = pump.Connect("never-ready");
        ready.MarkReady();
        ready.TryPost("poison").Should().BeTrue();

        await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        ready.State.Should().Be(PeerConnectionState.Disconnected);
        neverReady.State.Should().Be(PeerConnectionState.Disconnected);
        ready.Disconnect().Should().BeFalse("the fault disconnected it already");
        neverReady.Disconnect().Should().BeFalse();
        handler.HistoryOf("ready").Should().Equal("added", "poison", "removed");
    }

    [Fact]
    public async Task AConsumerCallThatFailsLater_FaultsThePump_AsOneThatThrowsAtOnce()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var peer = pump.Connect("p");
        peer.MarkReady();
        peer.TryPost("never delivered").Should().BeTrue();
        var added = await consumer.NextCallAsync();

        added.Done.SetException(new InvalidOperationException("the consumer's task failed"));

        var removed = await consumer.NextCallAsync(); // the fault removes the peer it added; its message is discarded
        removed.What.Should().Be("removed");
        removed.Done.SetResult();
        (await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>()).WithMessage("the consumer's task failed");
        peer.State.Should().Be(PeerConnectionState.Disconnected);
    }

    [Fact]
    public async Task AFaultThatStopsThePump_EndsThePostsWaitingForRoomAtOnce_BeforeItDeliversTheRemovedEvents()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { Capacity = 1, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump });
        var peer = pump.Connect("p");
        peer.MarkReady();
        var added = await consumer.NextCallAsync();
        peer.TryPost("poison").Should().BeTrue();
        var first = peer.PostAsync("w1").AsTask(); // gets the place the poison leaves when the loop takes it
        var second = peer.PostAsync("w2").AsTask();
        added.Done.SetResult();
        var poison = await consumer.NextCallAsync();
        poison.What.Should().Be("poison");
        second.IsCompleted.Should().BeFalse("the queue is full again");

        poison.Done.SetException(new InvalidOperationException("poison"));
        var removed = await consumer.NextCallAsync(); // the pump has faulted: it removes the peer, and is busy in that call

        removed.What.Should().Be("removed");
        (await second.OrHang()).Should().Be(PeerPostResult.Closed, "the fault ended the wait at once: nothing will take the message");
        removed.Done.SetResult();
        await pump.Completion.Invoking(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        (await first.OrHang()).Should().BeOneOf(PeerPostResult.Posted, PeerPostResult.Closed); // posted before the fault (then discarded), or refused after it
    }
}
