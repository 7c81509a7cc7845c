using System.Threading.Tasks;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// The two-channel incident under Coyote: the hand-rolled loop must be caught delivering a peer's Removed before its
/// Added; the pump must keep every peer's history legal through concurrent connects, handshakes, posts, disconnects,
/// reconnects and a shutdown.
/// </summary>
public sealed class PeerEventPumpSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public PeerEventPumpSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void HandRolledTwoChannelLoop_IsCaughtDeliveringRemovedBeforeAdded()
    {
        var report = CoyoteHarness.Explore(_output, "hand-rolled two-channel peer loop", Iterations, HandRolledScenarioAsync);

        // The seed story's illegal history: an event for peer x reaching the loop before x's Added, on the other
        // channel. Which of x's events wins that race depends on the schedule: Removed (the incident) or the message.
        report.ShouldFindBug(PeerHistoryChecker.RemovedBeforeAdded, PeerHistoryChecker.UnknownPeer);
    }

    [Fact]
    public void PeerEventPump_KeepsEveryPeersHistoryLegal()
    {
        var report = CoyoteHarness.Explore(_output, "PeerEventPump, connect/ready/post/disconnect/reconnect/shutdown", Iterations, PumpScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    private static async Task HandRolledScenarioAsync()
    {
        var checker = new PeerHistoryChecker();
        var loop = new TwoChannelPeerLoop<string, int>(checker);
        var handshakeDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var peerTask = Task.Run(() =>
        {
            loop.NewPeer("x");
            loop.Message("x", 1);
            handshakeDone.SetResult();
        });
        var disconnectPath = Task.Run(async () =>
        {
            await handshakeDone.Task; // the peer disconnects after its handshake, but reports it on the other channel
            loop.DonePeer("x");
        });

        await Task.WhenAll(peerTask, disconnectPath);
        await loop.DisposeAsync();
    }

    private static async Task PumpScenarioAsync()
    {
        var checker = new PeerHistoryChecker();
        var pump = new PeerEventPump<string, int>(checker);

        var peerX = Task.Run(async () =>
        {
            var x = pump.Connect("x");
            x.MarkReady();
            x.TryPost(1);
            await Task.Yield();
            x.TryPost(2);
        });
        var peerXAgain = Task.Run(() =>
        {
            // A reconnect under the same identity racing the first connection.
            var again = pump.Connect("x");
            again.TryPost(3);
            again.MarkReady();
            again.Disconnect();
        });
        var peerY = Task.Run(async () =>
        {
            var y = pump.Connect("y");
            var ready = Task.Run(() => y.MarkReady());
            var gone = Task.Run(() => y.Disconnect());
            await Task.WhenAll(ready, gone);
            y.TryPost(4);
        });

        await Task.WhenAll(IgnoreShutdown(peerX), IgnoreShutdown(peerXAgain), IgnoreShutdown(peerY));
        await pump.DisposeAsync();
        Specification.Assert(checker.Live == 0, "Every live peer must be removed by the shutdown.");
        Specification.Assert(pump.Completion.IsCompletedSuccessfully, "The pump completes after its shutdown.");
    }

    private static async Task IgnoreShutdown(Task producer)
    {
        try
        {
            await producer;
        }
        catch (System.ObjectDisposedException)
        {
            // A connect after the shutdown began: legal.
        }
    }
}
