using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The message-dropped callback: every message the pump drops (by a full mode, for either bound) or discards (a fault)
/// is passed once, with its peer, outside the pump's locks; one that throws is logged and counted, and harms no one.
/// Messages the pump never took (refused, cancelled) stay with their caller and are not passed.
/// </summary>
public sealed class PeerEventPumpDropCallbackTests
{
    [Theory]
    [InlineData(PeerEventPumpFullMode.DropOldest, new[] { "m1", "m2", "m3", "m4" }, new[] { "m5", "m6" })]
    [InlineData(PeerEventPumpFullMode.DropNewest, new[] { "m2", "m3", "m4", "m5" }, new[] { "m1", "m6" })]
    [InlineData(PeerEventPumpFullMode.DropWrite, new[] { "m3", "m4", "m5", "m6" }, new[] { "m1", "m2" })]
    public async Task EveryMessageDroppedForCapacity_IsPassedToTheCallbackOnce_AndCounted(PeerEventPumpFullMode mode, string[] dropped, string[] delivered)
    {
        var name = "drops-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var log = new RecordingLogger();
        var (pump, handler, peer, hold, seen) = await HeldAsync(new PeerEventPumpOptions { Name = name, Capacity = 2, FullMode = mode, Logger = log });

        for (var i = 1; i <= 6; i++)
        {
            peer.TryPost($"m{i}", out _);
        }

        hold.SetResult();
        await pump.DisposeAsync();
        seen.Seen.Should().Equal(dropped.Select(m => $"p:{m}"));
        handler.HistoryOf("p").Should().Equal(new[] { "added" }.Concat(delivered).Append("removed"));
        metrics.Sum("dropped", "drop.reason", "capacity").Should().Be(4);
        log.Entries.Count(e => e.EventId == 4002).Should().Be(4);
    }

    [Fact]
    public async Task EveryMessageDroppedForAPeersQuota_IsPassedOnce_CountedAsPeerCapacity_AndLoggedWithTheQuota()
    {
        var name = "quota-drops-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var log = new RecordingLogger();
        var (pump, _, peer, hold, seen) = await HeldAsync(new PeerEventPumpOptions { Name = name, PerPeerCapacity = 1, FullMode = PeerEventPumpFullMode.DropOldest, Logger = log });

        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        peer.TryPost("m3").Should().BeTrue();

        hold.SetResult();
        await pump.DisposeAsync();
        seen.Seen.Should().Equal("p:m1", "p:m2");
        metrics.Sum("dropped", "drop.reason", "peer_capacity").Should().Be(2);
        metrics.Sum("dropped", "drop.reason", "capacity").Should().Be(0);
        log.Entries.Where(e => e.EventId == 4007).Should().HaveCount(2).And.OnlyContain(e => Equals(e["Quota"], 1) && Equals(e["Peer"], "p"));
    }

    [Fact]
    public async Task ACallbackThatThrows_IsLoggedAndCounted_ThePosterSeesOnlyItsResult_AndThePumpGoesOn()
    {
        var name = "throwing-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var log = new RecordingLogger();
        var calls = 0;
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(
            handler,
            new PeerEventPumpOptions { Name = name, Capacity = 1, FullMode = PeerEventPumpFullMode.DropOldest, Logger = log },
            (_, _) =>
            {
                Interlocked.Increment(ref calls);
                throw new InvalidOperationException("the pool is gone");
            });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();

        peer.TryPost("m1", out var first).Should().BeTrue();
        first.Should().Be(PeerPostResult.Posted);
        peer.Invoking(p => p.TryPost("m2")).Should().NotThrow().Which.Should().BeTrue();
        (await peer.PostAsync("m3").AsTask().OrHang()).Should().Be(PeerPostResult.Posted);

        hold.SetResult();
        await pump.CloseAsync().OrHang();
        calls.Should().Be(2, "m1 and m2 were displaced, once each");
        handler.HistoryOf("p").Should().Equal("added", "m3", "removed");
        pump.Completion.IsCompletedSuccessfully.Should().BeTrue();
        log.Entries.Where(e => e.EventId == 4008).Should().HaveCount(2).And.OnlyContain(e => e.Level == LogLevel.Error && e.Exception is InvalidOperationException);
        metrics.Sum("callback_faults", "callback", "message_dropped").Should().Be(2);
    }

    [Fact]
    public async Task TheCallback_RunsOutsideThePumpsLock_SoItMayWaitForAnotherThreadThatPosts()
    {
        PeerHandle<string, string>? other = null;
        var postedFromAnotherThread = PeerPostResult.Closed;
        var postFinishedInTime = false;
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var pump = new PeerEventPump<string, string>(
            handler,
            new PeerEventPumpOptions { PerPeerCapacity = 1, FullMode = PeerEventPumpFullMode.DropWrite },
            (_, _) =>
            {
                // Under the pump's lock this would block until the bound (the other thread needs the lock to post).
                var post = Task.Run(() => other!.TryPost("from another thread", out postedFromAnotherThread));
#pragma warning disable VSTHRD002 // the callback is synchronous: a blocking wait is the point of the test
                postFinishedInTime = post.Wait(Bounded.HangLimit); // asserted outside: the pump isolates the callback's exceptions
#pragma warning restore VSTHRD002
            });
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        other = pump.Connect("q");
        other.MarkReady();
        peer.TryPost("m1").Should().BeTrue();

        peer.TryPost("dropped", out var result).Should().BeFalse();

        result.Should().Be(PeerPostResult.Dropped);
        postFinishedInTime.Should().BeTrue("the callback holds no lock the other poster needs");
        postedFromAnotherThread.Should().Be(PeerPostResult.Posted);
        hold.SetResult();
        await pump.DisposeAsync();
        handler.HistoryOf("q").Should().Equal("added", "from another thread", "removed");
    }

    [Fact]
    public async Task AFault_DiscardsWhatIsQueued_AndPassesEachDiscardedMessage_BeforeCompletionCompletes()
    {
        var name = "fault-drops-" + Guid.NewGuid().ToString("N");
        using var metrics = new PumpMetricRecorder(name);
        var log = new RecordingLogger();
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        handler.ThrowOn.Add("poison");
        var seen = new DropRecorder();
        var pump = new PeerEventPump<string, string>(
            handler,
            new PeerEventPumpOptions { Name = name, FaultPolicy = PeerEventPumpFaultPolicy.FaultPump, Logger = log },
            seen.Record);
        var a = pump.Connect("a");
        a.MarkReady();
        await handler.FirstCallEntered.OrHang();
        var b = pump.Connect("b");
        b.MarkReady();
        a.TryPost("poison");
        a.TryPost("a2");
        b.TryPost("b1");
        b.TryPost("b2");

        hold.SetResult();
        await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        seen.Seen.Should().Equal("a:a2", "b:b1", "b:b2");
        metrics.Sum("dropped", "drop.reason", "fault").Should().Be(3);
        log.Entries.Should().ContainSingle(e => e.EventId == 4005).Which["Messages"].Should().Be(3);
        pump.Count.Should().Be(0, "discarded messages no longer wait");
    }

    [Fact]
    public async Task MessagesThePumpNeverTook_RefusedOrCancelled_StayWithTheirCaller_AndAreNotPassed()
    {
        var (pump, handler, peer, hold, seen) = await HeldAsync(new PeerEventPumpOptions { Capacity = 1, PerPeerCapacity = 1 });
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("full", out var full).Should().BeFalse();
        full.Should().Be(PeerPostResult.Full);
        using var cancel = new CancellationTokenSource();
        var cancelled = peer.PostAsync("cancelled", cancel.Token).AsTask();
        await cancel.CancelAsync();
        await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        var waiting = peer.PostAsync("disconnected").AsTask();
        var neverReady = pump.Connect("never");
        neverReady.TryPost("not ready", out var notReady).Should().BeFalse();
        notReady.Should().Be(PeerPostResult.NotReady);

        peer.Disconnect();
        (await waiting.OrHang()).Should().Be(PeerPostResult.Disconnected);
        hold.SetResult();
        await pump.DisposeAsync();
        peer.TryPost("closed", out var closed).Should().BeFalse();
        closed.Should().Be(PeerPostResult.Closed);

        seen.Seen.Should().BeEmpty("a disconnect or a shutdown discards nothing; a refused post keeps its message");
        handler.HistoryOf("p").Should().Equal("added", "m1", "removed");
    }

    /// <summary>A pump with one ready peer "p", its loop held inside p's Added until <c>hold</c> is set, and a drop callback that records "peer:message".</summary>
    private static async Task<(PeerEventPump<string, string> Pump, RecordingPeerHandler<string> Handler, PeerHandle<string, string> Peer, TaskCompletionSource Hold, DropRecorder Seen)> HeldAsync(PeerEventPumpOptions options)
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var seen = new DropRecorder();
        var pump = new PeerEventPump<string, string>(handler, options, seen.Record);
        var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang();
        return (pump, handler, peer, hold, seen);
    }
}
