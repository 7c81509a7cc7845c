using System;
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
}
