using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>Bad input gets a specific exception, or a documented false.</summary>
public sealed class PeerEventPumpArgumentTests
{
    [Fact]
    public void NullConsumer_ThrowsArgumentNull()
    {
        var create = () => new PeerEventPump<string, string>(null!);

        create.Should().Throw<ArgumentNullException>().WithParameterName("consumer");
    }

    [Fact]
    public async Task NullPeer_ThrowsArgumentNull()
    {
        await using var pump = new PeerEventPump<string, string>(new RecordingPeerHandler<string>());

        pump.Invoking(p => p.Connect(null!)).Should().Throw<ArgumentNullException>().WithParameterName("peer");
    }

    public static TheoryData<Action<PeerEventPumpOptions>, string> BadOptions => new()
    {
        { o => o.Capacity = 0, "Capacity" },
        { o => o.FullMode = (PeerEventPumpFullMode)9, "FullMode" },
        { o => o.FaultPolicy = (PeerEventPumpFaultPolicy)9, "FaultPolicy" },
        { o => o.ShutdownTimeout = TimeSpan.FromSeconds(-1), "ShutdownTimeout" },
        { o => o.PerPeerCapacity = 0, "PerPeerCapacity" },
        { o => o.PerPeerCapacity = -1, "PerPeerCapacity" },
        { o => o.HandlerStallThreshold = TimeSpan.Zero, "HandlerStallThreshold" },
        { o => o.HandlerStallThreshold = TimeSpan.FromTicks(9_999), "HandlerStallThreshold" },
        { o => o.HandlerStallThreshold = Timeout.InfiniteTimeSpan, "HandlerStallThreshold" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void OptionsOutOfRange_AreRejectedAtConstruction(Action<PeerEventPumpOptions> spoil, string option)
    {
        var options = new PeerEventPumpOptions();
        spoil(options);

        var create = () => new PeerEventPump<string, string>(new RecordingPeerHandler<string>(), options);

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*PeerEventPumpOptions.{option}*");
    }

    [Fact]
    public async Task AHandleReusedAfterDisconnect_ReturnsFalseEverywhere()
    {
        var handler = new RecordingPeerHandler<string>();
        await using var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("p");
        peer.MarkReady();
        peer.Disconnect();

        peer.MarkReady().Should().BeFalse();
        peer.TryPost("m").Should().BeFalse();
        (await peer.PostAsync("m")).Should().Be(PeerPostResult.Disconnected);
        peer.Disconnect().Should().BeFalse();
        peer.State.Should().Be(PeerConnectionState.Disconnected);
    }

    [Fact]
    public async Task DisposingAHandle_DisconnectsItsPeer_WhenCodeInsideTheUsingThrows_AndASecondDisposeDoesNothing()
    {
        var handler = new RecordingPeerHandler<string>();
        await using var pump = new PeerEventPump<string, string>(handler);
        PeerHandle<string, string>? escaped = null;

        var fail = () =>
        {
            using var peer = pump.Connect("p");
            escaped = peer;
            peer.MarkReady();
            peer.TryPost("m").Should().BeTrue();
            throw new InvalidOperationException("the session failed");
        };

        fail.Should().Throw<InvalidOperationException>();
        escaped!.State.Should().Be(PeerConnectionState.Disconnected);
        await handler.WhenHandled(3).OrHang();
        handler.HistoryOf("p").Should().Equal("added", "m", "removed");

        escaped.Invoking(h => h.Dispose()).Should().NotThrow();
        await pump.CloseAsync().OrHang();
        handler.HistoryOf("p").Should().Equal("added", "m", "removed");
    }

    [Fact]
    public async Task DisposingAHandle_AfterThePumpWasDisposed_ThrowsNothing()
    {
        var handler = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(handler);
        var peer = pump.Connect("p");
        peer.MarkReady();

        await pump.DisposeAsync();

        peer.Invoking(h => h.Dispose()).Should().NotThrow();
        peer.State.Should().Be(PeerConnectionState.Disconnected);
        handler.HistoryOf("p").Should().Equal("added", "removed");
    }

    [Fact]
    public async Task Count_IsTheMessagesAcceptedAndNotYetTaken_WithoutLifecycleEvents()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handler = new RecordingPeerHandler<string> { Hold = release.Task };
        await using var pump = new PeerEventPump<string, string>(handler);
        using var peer = pump.Connect("p");
        peer.MarkReady();
        await handler.FirstCallEntered.OrHang(); // the loop holds Added

        pump.Count.Should().Be(0, "Added is not a message");
        peer.TryPost("m1").Should().BeTrue();
        peer.TryPost("m2").Should().BeTrue();
        pump.Count.Should().Be(2);

        release.SetResult();
        await handler.WhenHandled(3).OrHang();
        pump.Count.Should().Be(0);
    }
}
