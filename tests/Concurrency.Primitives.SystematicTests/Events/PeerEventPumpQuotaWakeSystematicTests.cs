using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// A post that joins its peer's line for the quota while the loop takes that peer's message: its look at the quota may
/// wake the post ahead of it (with the room the loop just made), and it must still leave the loop knowing that it waits.
/// Nothing else wakes it here (no later post of the peer, no disconnect, no shutdown until both posts returned): a
/// wake-up the loop misses leaves it waiting for ever, which Coyote reports as a deadlock.
/// </summary>
public sealed class PeerEventPumpQuotaWakeSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public PeerEventPumpQuotaWakeSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void PerPeerQuota_Wait_APostJoiningThePeersLineAsTheLoopTakesItsMessage_IsWokenByTheLoop()
    {
        var report = CoyoteHarness.Explore(
            _output,
            "PeerEventPump, per-peer quota 1, Wait, a second post of the peer joining its line as the loop takes the peer's message",
            Iterations,
            ScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    private static async Task ScenarioAsync()
    {
        var checker = new PeerHistoryChecker();
        var pump = new PeerEventPump<string, int>(checker, new PeerEventPumpOptions { PerPeerCapacity = 1 });
        var peer = pump.Connect("p");
        peer.MarkReady();
        Specification.Assert(peer.TryPost(0), "Post 0 was refused: the quota was empty.");
        var first = peer.PostAsync(1).AsTask(); // waits in the peer's line until the loop takes 0 (unless it has)
        var second = Task.Run(async () => await peer.PostAsync(2)); // races the loop's take of 0 (and of 1)

        Specification.Assert(await first == PeerPostResult.Posted, "Post 1 was refused.");
        Specification.Assert(await second == PeerPostResult.Posted, "Post 2 was refused.");
        await pump.DisposeAsync();
        Specification.Assert(string.Join(",", checker.MessagesOf("p")) == "0,1,2", $"Delivered {string.Join(",", checker.MessagesOf("p"))}, expected 0,1,2.");
    }
}
