using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// PerPeerCapacity: a flooding peer at its quota waits or drops alone while a quiet peer's messages flow; the full modes
/// keep their meanings, counted per peer; a message must fit both bounds; lifecycle events are never counted.
/// </summary>
public sealed class PeerEventPumpQuotaTests
{
    [Fact]
    public async Task Wait_AFloodingPeerAtItsQuota_WaitsAlone_WhileAQuietPeersPostsGoThroughAtOnce()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 2, Capacity = 10, FullMode = PeerEventPumpFullMode.Wait });

        pump.Flood.TryPost("f1").Should().BeTrue();
        pump.Flood.TryPost("f2").Should().BeTrue();
        pump.Flood.TryPost("f3", out var why).Should().BeFalse();
        why.Should().Be(PeerPostResult.Full, "the flooding peer is at its quota and TryPost does not wait");
        var floodWaits = pump.Flood.PostAsync("f4");

        for (var i = 1; i <= 2; i++)
        {
            var quiet = pump.Quiet.PostAsync($"q{i}");
            quiet.IsCompleted.Should().BeTrue("a quiet peer never waits behind a flooding peer's quota (post q{0})", i);
            (await quiet).Should().Be(PeerPostResult.Posted);
        }

        floodWaits.IsCompleted.Should().BeFalse();
        pump.Release();
        (await floodWaits.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "f2", "f4", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "q2", "removed");
        pump.Drops.Seen.Should().BeEmpty();
    }

    [Fact]
    public async Task Wait_APostWaitingForItsQuota_GetsInAsSoonAsTheLoopTakesThatPeersMessage_WhileTheLoopIsStillBusy()
    {
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { PerPeerCapacity = 1 });
        var flood = pump.Connect("flood");
        flood.MarkReady();
        var added = await consumer.NextCallAsync();
        flood.TryPost("f1").Should().BeTrue();
        var waiting = flood.PostAsync("f2");

        added.Done.SetResult();
        var f1 = await consumer.NextCallAsync(); // the loop took f1 and is busy inside its call: it has not gone idle

        (await waiting.OrHang()).Should().Be(PeerPostResult.Posted, "taking f1 made room in the flooding peer's quota");
        f1.Done.SetResult();
        (await consumer.NextCallAsync()).What.Should().Be("f2");
    }

    [Fact]
    public async Task DropOldest_AFloodingPeerAtItsQuota_DropsItsOwnOldestMessages_NeverAQuietPeersOlderOnes()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 2, FullMode = PeerEventPumpFullMode.DropOldest });
        pump.Quiet.TryPost("q1").Should().BeTrue(); // the oldest messages in the queue are the quiet peer's
        pump.Quiet.TryPost("q2").Should().BeTrue();

        for (var i = 1; i <= 5; i++)
        {
            pump.Flood.TryPost($"f{i}", out var result).Should().BeTrue();
            result.Should().Be(PeerPostResult.Posted);
        }

        pump.Release();
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f4", "f5", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "q2", "removed");
        pump.Drops.Seen.Should().Equal("flood:f1", "flood:f2", "flood:f3");
    }

    [Fact]
    public async Task DropNewest_AFloodingPeerAtItsQuota_DropsItsOwnNewestMessage_NeverAQuietPeersNewerOne()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 2, FullMode = PeerEventPumpFullMode.DropNewest });
        pump.Flood.TryPost("f1").Should().BeTrue();
        pump.Flood.TryPost("f2").Should().BeTrue();
        pump.Quiet.TryPost("q1").Should().BeTrue(); // the newest message in the queue is the quiet peer's

        for (var i = 3; i <= 5; i++)
        {
            pump.Flood.TryPost($"f{i}").Should().BeTrue();
        }

        pump.Release();
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "f5", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "removed");
        pump.Drops.Seen.Should().Equal("flood:f2", "flood:f3", "flood:f4");
    }

    [Fact]
    public async Task DropWrite_AFloodingPeerAtItsQuota_HasItsPostedMessageDropped_WhileAQuietPeersIsAccepted()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 1, FullMode = PeerEventPumpFullMode.DropWrite });

        pump.Flood.TryPost("f1").Should().BeTrue();
        (await pump.Flood.PostAsync("f2")).Should().Be(PeerPostResult.Dropped);
        pump.Quiet.TryPost("q1").Should().BeTrue();

        pump.Release();
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "removed");
        pump.Drops.Seen.Should().Equal("flood:f2");
    }

    [Fact]
    public async Task AMessageMustFitBothBounds_ThePeersQuotaAndThePumpsCapacity()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 2, Capacity = 3 });
        pump.Flood.TryPost("f1").Should().BeTrue();
        pump.Flood.TryPost("f2").Should().BeTrue();
        pump.Quiet.TryPost("q1").Should().BeTrue();

        pump.Quiet.TryPost("q2").Should().BeFalse("the quiet peer is under its quota, but the pump holds Capacity messages");
        pump.Flood.TryPost("f3").Should().BeFalse("the flooding peer is at its quota");
        var quietWaits = pump.Quiet.PostAsync("q2");
        var floodWaits = pump.Flood.PostAsync("f3");
        quietWaits.IsCompleted.Should().BeFalse();
        floodWaits.IsCompleted.Should().BeFalse();

        pump.Release();
        (await quietWaits.OrHang()).Should().Be(PeerPostResult.Posted);
        (await floodWaits.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "f2", "f3", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "q2", "removed");
    }

    [Fact]
    public async Task LifecycleEvents_AreNeverCounted_NorRefused_WhenAPeerIsAtItsQuota()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 1, Capacity = 2 });
        pump.Flood.TryPost("f1").Should().BeTrue();
        pump.Quiet.TryPost("q1").Should().BeTrue(); // both bounds are full now
        var floodWaits = pump.Flood.PostAsync("f2");

        var late = pump.Pump.Connect("late");
        late.MarkReady().Should().BeTrue("an Added is never refused for room");
        pump.Flood.Disconnect().Should().BeTrue("a Removed is never refused for room");
        (await floodWaits.OrHang()).Should().Be(PeerPostResult.Disconnected, "its peer is gone: the post stops waiting at once");
        var again = pump.Pump.Connect("flood");
        again.MarkReady().Should().BeTrue();

        pump.Release();
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "removed", "added", "removed");
        pump.Handler.HistoryOf("late").Should().Equal("added", "removed");
        pump.Handler.HistoryOf("quiet").Should().Equal("added", "q1", "removed");
        pump.Drops.Seen.Should().BeEmpty("nothing the pump accepted was dropped; the refused post kept its message");
    }

    [Fact]
    public async Task AReconnectUnderTheSameIdentity_StartsWithAQuotaOfItsOwn()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 1 });
        pump.Flood.TryPost("old").Should().BeTrue();
        pump.Flood.TryPost("refused").Should().BeFalse();

        var again = pump.Pump.Connect("flood");
        again.MarkReady();
        again.TryPost("new").Should().BeTrue("the quota belongs to the connection; the old one's message still waits, and is still delivered");

        pump.Release();
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "old", "removed", "added", "new", "removed");
    }

    [Fact]
    public async Task Wait_APostWaitingForItsQuotaThatIsCancelled_GivesItsTurnToThePeersNextPost()
    {
        var pump = await HeldPumpAsync(new PeerEventPumpOptions { PerPeerCapacity = 1 });
        pump.Flood.TryPost("f1").Should().BeTrue();
        using var cancel = new System.Threading.CancellationTokenSource();
        var cancelled = pump.Flood.PostAsync("gave up", cancel.Token).AsTask();
        var next = pump.Flood.PostAsync("f2");

        await cancel.CancelAsync();
        await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        pump.Release();
        (await next.OrHang()).Should().Be(PeerPostResult.Posted);
        await pump.Handler.WhenHandled(4).OrHang(); // flood's Added, quiet's Added, f1, f2: the loop has taken f2
        pump.Flood.TryPost("f3").Should().BeTrue("the cancelled post kept no place");
        await pump.DisposeAsync();
        pump.Handler.HistoryOf("flood").Should().Equal("added", "f1", "f2", "f3", "removed");
    }

    /// <summary>
    /// A pump with two ready peers, "flood" and "quiet", its loop held inside flood's Added (so messages stay queued until
    /// <see cref="HeldPump.Release"/>), and a drop callback that records "peer:message".
    /// </summary>
    private static async Task<HeldPump> HeldPumpAsync(PeerEventPumpOptions options)
    {
        var hold = Bounded.NewGate();
        var handler = new RecordingPeerHandler<string> { Hold = hold.Task };
        var dropped = new DropRecorder();
        var pump = new PeerEventPump<string, string>(handler, options, dropped.Record);
        var flood = pump.Connect("flood");
        flood.MarkReady();
        await handler.FirstCallEntered.OrHang();
        var quiet = pump.Connect("quiet");
        quiet.MarkReady();
        return new HeldPump(pump, handler, flood, quiet, hold, dropped);
    }

    private sealed record HeldPump(
        PeerEventPump<string, string> Pump,
        RecordingPeerHandler<string> Handler,
        PeerHandle<string, string> Flood,
        PeerHandle<string, string> Quiet,
        TaskCompletionSource Hold,
        DropRecorder Drops) : IAsyncDisposable
    {
        public void Release() => Hold.TrySetResult();

        public ValueTask DisposeAsync()
        {
            Release();
            return Pump.DisposeAsync();
        }
    }
}
