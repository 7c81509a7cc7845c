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

    [Theory]
    [InlineData(PeerEventPumpFullMode.Wait)]
    [InlineData(PeerEventPumpFullMode.DropOldest)]
    [InlineData(PeerEventPumpFullMode.DropNewest)]
    [InlineData(PeerEventPumpFullMode.DropWrite)]
    public void PeerEventPump_BoundedQueue_DeliversEveryAcceptedMessageInOrder_AndStrandsNoWaiter(PeerEventPumpFullMode fullMode)
    {
        var report = CoyoteHarness.Explore(_output, $"PeerEventPump, capacity 1, {fullMode}, two producers racing the loop", Iterations, () => BoundedScenarioAsync(fullMode));

        report.ShouldHoldEverywhere();
    }

    private static async Task BoundedScenarioAsync(PeerEventPumpFullMode fullMode)
    {
        const int PerPeer = 4;
        var checker = new PeerHistoryChecker();
        var pump = new PeerEventPump<string, int>(checker, new PeerEventPumpOptions { Capacity = 1, FullMode = fullMode });
        var accepted = new int[2];

        var producers = new Task[2];
        for (var p = 0; p < producers.Length; p++)
        {
            var index = p;
            producers[p] = Task.Run(async () =>
            {
                var peer = pump.Connect("p" + index);
                peer.MarkReady();
                for (var m = 0; m < PerPeer; m++)
                {
                    // Wait mode: PostAsync waits for room, so every message must be accepted, and no waiter may be stranded
                    // (a lost wake-up is a deadlock, which Coyote reports). DropOldest/DropNewest: accepted, perhaps displaced
                    // later. DropWrite: accepted or dropped at once.
                    if (await peer.PostAsync((index * 100) + m) == PeerPostResult.Posted)
                    {
                        accepted[index]++;
                    }
                }
            });
        }

        await Task.WhenAll(producers);
        await pump.DisposeAsync();
        var total = 0;
        for (var p = 0; p < producers.Length; p++)
        {
            var delivered = checker.MessagesOf("p" + p);
            Specification.Assert(
                accepted[p] == PerPeer || fullMode == PeerEventPumpFullMode.DropWrite,
                $"p{p}: {accepted[p]} of {PerPeer} messages accepted; PostAsync must accept (waiting, or displacing a queued message).");
            for (var i = 1; i < delivered.Count; i++)
            {
                Specification.Assert(delivered[i - 1] < delivered[i], $"p{p}: messages out of order: {string.Join(",", delivered)}.");
            }

            Specification.Assert(delivered.Count == 0 || (delivered[0] >= p * 100 && delivered[delivered.Count - 1] < (p * 100) + PerPeer), $"p{p}: a message it never posted: {string.Join(",", delivered)}.");
            if (fullMode == PeerEventPumpFullMode.Wait)
            {
                Specification.Assert(delivered.Count == PerPeer, $"p{p}: {delivered.Count} of {PerPeer} accepted messages delivered.");
            }

            total += delivered.Count;
        }

        // A drop mode displaces (or refuses) some messages, but the last message accepted is never displaced.
        Specification.Assert(total >= 1, "No message was delivered at all.");
        Specification.Assert(checker.Live == 0, "Every live peer must be removed by the shutdown.");
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
