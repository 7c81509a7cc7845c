using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// A post waiting for the pump's room (capacity 1, Wait) is cancelled while something else ends its wait: the loop
/// granting it the place the loop just made, or its peer's disconnect releasing it without one. Whichever comes first,
/// the pump's count of reserved places must come out exact: a place granted and then given up goes to the post waiting
/// behind it (a lost wake-up strands that post: Coyote reports a deadlock), and a wait released without a place gives
/// nothing back. A probe at the end checks the count: with the loop held inside the probe's delivery (the queue empty,
/// no post waiting), exactly one more message fits.
/// </summary>
public sealed class PeerEventPumpRoomGiveBackSystematicTests
{
    private const uint Iterations = 1_000;
    private const int Probe = 1_000;
    private readonly ITestOutputHelper _output;

    public PeerEventPumpRoomGiveBackSystematicTests(ITestOutputHelper output) => _output = output;

    /// <summary>What ends the cancelled post's wait, racing its cancellation.</summary>
    public enum Racer
    {
        TheLoopsGrant,
        ItsPeersDisconnect,
    }

    [Theory]
    [InlineData(Racer.TheLoopsGrant)]
    [InlineData(Racer.ItsPeersDisconnect)]
    public void Wait_APostCancelledAsItsWaitEnds_LeavesThePumpsCountExact(Racer racer)
    {
        var report = CoyoteHarness.Explore(
            _output,
            $"PeerEventPump, capacity 1, Wait, a post waiting for room cancelled as {racer} ends its wait",
            Iterations,
            () => ScenarioAsync(racer));

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// The same race, explored by priorities: a place given back after the loop has gone idle (its idle look found no room,
    /// the cancelled post still holding the grant) must wake the post waiting behind, or nothing ever will. Random
    /// schedules rarely hold the cancelled post's catch back over the loop's whole delivery and idle look; a change of
    /// priorities does.
    /// </summary>
    [Fact]
    public void Wait_APlaceGivenBackAfterTheLoopWentIdle_WakesThePostWaitingBehind()
    {
        var report = CoyoteHarness.Explore(
            _output,
            "PeerEventPump, capacity 1, Wait, a post cancelled as the loop grants it the room (prioritization strategy)",
            Iterations,
            () => ScenarioAsync(Racer.TheLoopsGrant),
            priorityChanges: 2);

        report.ShouldHoldEverywhere();
    }

    private static async Task ScenarioAsync(Racer racer)
    {
        var consumer = new ProbeHolder(new PeerHistoryChecker());
        var pump = new PeerEventPump<string, int>(consumer, new PeerEventPumpOptions { Capacity = 1 });
        var cancelled = pump.Connect("a");
        var behind = pump.Connect("b");
        var probe = pump.Connect("p");
        cancelled.MarkReady();
        behind.MarkReady();
        probe.MarkReady();
        Specification.Assert(await cancelled.PostAsync(0) == PeerPostResult.Posted, "Post 0 was refused: the queue was empty.");

        using var cancel = new CancellationTokenSource();
        var waiting = Task.Run(async () =>
        {
            try
            {
                var result = await cancelled.PostAsync(1, cancel.Token);
                Specification.Assert(
                    result == PeerPostResult.Posted || (racer == Racer.ItsPeersDisconnect && result == PeerPostResult.Disconnected),
                    $"Post 1 came back {result}.");
            }
            catch (OperationCanceledException)
            {
                // Cancelled while it waited: a place granted to it meanwhile goes to the next post.
            }
        });
        var next = racer == Racer.TheLoopsGrant
            ? Task.Run(async () => Specification.Assert(await behind.PostAsync(100) == PeerPostResult.Posted, "Post 100 was refused."))
            : Task.CompletedTask;
        var disconnect = racer == Racer.ItsPeersDisconnect
            ? Task.Run(async () =>
            {
                await Task.Yield();
                cancelled.Disconnect();
            })
            : Task.CompletedTask;
        // CancelAsync runs the token's callbacks on a pool thread the runtime starts, outside Coyote's control, so a run is
        // not replayed exactly; but only that lets the loop come between the cancellation and the cancelled post's catch.
        // With Cancel() on a scheduled task the catch goes on inline, before anything else runs, and the race is never seen.
        var canceller = Task.Run(async () =>
        {
            await Task.Yield();
            await cancel.CancelAsync();
        });
        await Task.WhenAll(waiting, next, disconnect, canceller);

        // Every post has returned. The probe's delivery holds the loop: whatever was posted before it has been taken.
        Specification.Assert(await probe.PostAsync(Probe) == PeerPostResult.Posted, "The probe was refused.");
        await consumer.ProbeEntered;
        Specification.Assert(probe.TryPost(Probe + 1, out var fits), $"With the queue empty and no post waiting, a message did not fit ({fits}): a place given up was never given back.");
        Specification.Assert(!probe.TryPost(Probe + 2, out var over), $"A second message fitted in a queue of capacity 1 ({over}): a place was given back twice.");
        consumer.ReleaseProbe();
        await pump.DisposeAsync();
    }

    /// <summary>Passes every event to the checker, holding the loop inside the probe's delivery until released.</summary>
    private sealed class ProbeHolder : IPeerEventConsumer<string, int>
    {
        private readonly PeerHistoryChecker _checker;
        private readonly TaskCompletionSource<bool> _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<bool> _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ProbeHolder(PeerHistoryChecker checker) => _checker = checker;

        public Task ProbeEntered => _entered.Task;

        public void ReleaseProbe() => _release.TrySetResult(true);

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => _checker.OnAddedAsync(peer, cancellationToken);

        public async ValueTask OnMessageAsync(string peer, int message, CancellationToken cancellationToken)
        {
            if (message == Probe)
            {
                _entered.TrySetResult(true);
                await _release.Task;
            }

            await _checker.OnMessageAsync(peer, message, cancellationToken);
        }

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => _checker.OnRemovedAsync(peer, cancellationToken);
    }
}
