using System.Collections.Generic;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// The per-peer quota under Coyote: a flooding peer posting past its quota (and the pump's capacity) races a quiet
/// peer, its own disconnect, and the pump's shutdown. Every history stays legal, no waiting post is stranded (a lost
/// wake-up is a deadlock, which Coyote reports), and every message has exactly one fate: delivered, or passed to the
/// drop callback, or refused to its caller, never two of them.
/// </summary>
public sealed class PeerEventPumpQuotaSystematicTests
{
    private const uint Iterations = 1_000;
    private const int FloodPosts = 4;
    private const int QuietPosts = 2;
    private readonly ITestOutputHelper _output;

    public PeerEventPumpQuotaSystematicTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(PeerEventPumpFullMode.Wait)]
    [InlineData(PeerEventPumpFullMode.DropOldest)]
    [InlineData(PeerEventPumpFullMode.DropNewest)]
    [InlineData(PeerEventPumpFullMode.DropWrite)]
    public void PerPeerQuota_RacingDisconnectAndShutdown_GivesEveryMessageOneFate(PeerEventPumpFullMode fullMode)
    {
        var report = CoyoteHarness.Explore(
            _output,
            $"PeerEventPump, per-peer quota 1, capacity 2, {fullMode}, a flooding and a quiet peer racing a disconnect and the shutdown",
            Iterations,
            () => QuotaScenarioAsync(fullMode));

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void PerPeerQuota_Wait_EveryWaitingPostIsWokenByTheLoop_AndACancelledOneGivesItsPlaceBack()
    {
        var report = CoyoteHarness.Explore(
            _output,
            "PeerEventPump, per-peer quota 1, capacity 2, Wait, a flooding peer's waits woken by the loop, one cancelled",
            Iterations,
            WaitScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// Nothing but the loop ends these waits (no disconnect, no shutdown until every post has returned): a wake-up the
    /// loop misses, or a place a cancelled post keeps, leaves a post waiting for ever, which Coyote reports as a deadlock.
    /// </summary>
    private static async Task WaitScenarioAsync()
    {
        var checker = new PeerHistoryChecker();
        var pump = new PeerEventPump<string, int>(checker, new PeerEventPumpOptions { PerPeerCapacity = 1, Capacity = 2 });
        var flood = pump.Connect("f");
        var quiet = pump.Connect("q");
        flood.MarkReady();
        quiet.MarkReady();
        using var cancel = new System.Threading.CancellationTokenSource();
        var cancelledPostAccepted = false;

        var flooding = Task.Run(async () =>
        {
            Specification.Assert(await flood.PostAsync(0) == PeerPostResult.Posted, "Post 0 was refused.");
            try
            {
                cancelledPostAccepted = await flood.PostAsync(1, cancel.Token) == PeerPostResult.Posted;
            }
            catch (System.OperationCanceledException)
            {
                // Cancelled while it waited: it must have given its place (if it was granted one) back.
            }

            Specification.Assert(await flood.PostAsync(2) == PeerPostResult.Posted, "Post 2 was refused.");
            Specification.Assert(await flood.PostAsync(3) == PeerPostResult.Posted, "Post 3 was refused.");
        });
        var canceller = Task.Run(async () =>
        {
            await Task.Yield();
            await cancel.CancelAsync();
        });
        var quietPosting = PostAllAsync(quiet, 100, QuietPosts, new Dictionary<int, PeerPostResult>());

        await Task.WhenAll(flooding, canceller, quietPosting);
        await pump.DisposeAsync();

        var expected = cancelledPostAccepted ? new[] { 0, 1, 2, 3 } : new[] { 0, 2, 3 };
        Specification.Assert(string.Join(",", checker.MessagesOf("f")) == string.Join(",", expected), $"The flooding peer's delivered messages {string.Join(",", checker.MessagesOf("f"))}, expected {string.Join(",", expected)}.");
        Specification.Assert(checker.MessagesOf("q").Count == QuietPosts, "A quiet peer's message was lost.");
        Specification.Assert(checker.Live == 0, "Every live peer must be removed by the shutdown.");
    }

    private static async Task QuotaScenarioAsync(PeerEventPumpFullMode fullMode)
    {
        var checker = new PeerHistoryChecker();
        var dropped = new List<(string Peer, int Message)>();
        var pump = new PeerEventPump<string, int>(
            checker,
            new PeerEventPumpOptions { PerPeerCapacity = 1, Capacity = 2, FullMode = fullMode },
            (peer, message) =>
            {
                lock (dropped)
                {
                    dropped.Add((peer, message));
                }
            });
        var flood = pump.Connect("f");
        var quiet = pump.Connect("q");
        flood.MarkReady();
        quiet.MarkReady();
        var results = new Dictionary<int, PeerPostResult>();

        var flooding = PostAllAsync(flood, 0, FloodPosts, results);
        var quietPosting = PostAllAsync(quiet, 100, QuietPosts, results);
        var disconnect = Task.Run(async () =>
        {
            await Task.Yield();
            flood.Disconnect();
        });
        var shutdown = Task.Run(async () =>
        {
            await Task.Yield();
            await pump.DisposeAsync();
        });

        await Task.WhenAll(flooding, quietPosting, disconnect, shutdown);
        await pump.Completion;

        Specification.Assert(checker.Live == 0, "Every live peer must be removed by the shutdown.");
        var delivered = new HashSet<int>(checker.MessagesOf("f"));
        delivered.UnionWith(checker.MessagesOf("q"));
        var droppedMessages = new HashSet<int>();
        foreach (var (peer, message) in dropped)
        {
            Specification.Assert(droppedMessages.Add(message), $"Message {message} was passed to the drop callback twice.");
            Specification.Assert(peer == (message < 100 ? "f" : "q"), $"Message {message} was dropped under the wrong peer, {peer}.");
            Specification.Assert(!delivered.Contains(message), $"Message {message} was both delivered and dropped.");
            Specification.Assert(fullMode != PeerEventPumpFullMode.Wait, $"Wait mode dropped message {message}.");
        }

        foreach (var (message, result) in results)
        {
            var fates = (delivered.Contains(message) ? 1 : 0) + (droppedMessages.Contains(message) ? 1 : 0);
            var expected = result is PeerPostResult.Posted or PeerPostResult.Dropped ? 1 : 0;
            Specification.Assert(fates == expected, $"Message {message} ({result}) was delivered {(delivered.Contains(message) ? "and" : "not")} and dropped {(droppedMessages.Contains(message) ? "yes" : "no")}; it must have exactly {expected} fate(s).");
            Specification.Assert(result != PeerPostResult.Full, $"PostAsync returned Full for message {message}.");
        }

        Specification.Assert(delivered.Count + droppedMessages.Count == results.Count - CountRefused(results), "A message the pump took was neither delivered nor dropped.");
        CheckOrder(checker.MessagesOf("f"));
        CheckOrder(checker.MessagesOf("q"));
    }

    private static async Task PostAllAsync(PeerHandle<string, int> peer, int first, int count, Dictionary<int, PeerPostResult> results)
    {
        await Task.Yield();
        for (var m = first; m < first + count; m++)
        {
            var result = await peer.PostAsync(m);
            lock (results)
            {
                results[m] = result;
            }
        }
    }

    private static int CountRefused(Dictionary<int, PeerPostResult> results)
    {
        var refused = 0;
        foreach (var result in results.Values)
        {
            refused += result is PeerPostResult.Posted or PeerPostResult.Dropped ? 0 : 1;
        }

        return refused;
    }

    private static void CheckOrder(IReadOnlyList<int> delivered)
    {
        for (var i = 1; i < delivered.Count; i++)
        {
            Specification.Assert(delivered[i - 1] < delivered[i], $"Messages out of posting order: {string.Join(",", delivered)}.");
        }
    }
}
