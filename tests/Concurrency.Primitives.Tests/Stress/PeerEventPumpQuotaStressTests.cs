using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Rounds of one flooding peer and eight quiet ones on a pump with a per-peer quota, in a random full mode, the flooding
/// peer sometimes disconnecting mid-flood. Every round checks: no quiet post ever waits or is refused (the flooding
/// peer's quota holds it alone), every message of the flooding peer has one fate (delivered in posting order, or passed
/// to the drop callback once), Wait mode drops nothing, and every history is legal.
/// </summary>
public sealed class PeerEventPumpQuotaStressTests
{
    private const int QuietPeers = 8;
    private const int QuietPosts = 16;
    private const int FloodPosts = 2_000;
    private const int Quota = 4;
    private const long BaseEvents = 300_000;
    private static readonly PeerEventPumpFullMode[] Modes = { PeerEventPumpFullMode.Wait, PeerEventPumpFullMode.DropOldest, PeerEventPumpFullMode.DropNewest, PeerEventPumpFullMode.DropWrite };
    private readonly ITestOutputHelper _output;

    public PeerEventPumpQuotaStressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task AFloodingPeerPerRound_WaitsOrDropsAlone_AndEveryMessageHasOneFate()
    {
        var target = BaseEvents * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var clock = Stopwatch.StartNew();

        var rounds = await StressSettings.RunRoundsAsync(seed, target, () => totals.Events, roundSeed => RoundAsync(roundSeed, totals), Bounded.HangLimit);

        _output.WriteLine(
            $"[stress] PeerEventPump per-peer quota ({Quota}, one flooding and {QuietPeers} quiet peers a round, every full mode): {totals.Events} events in {rounds} rounds (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.FloodDelivered} flooding messages delivered and {totals.FloodDropped} dropped, {totals.FloodWaited} flooding posts waited, {totals.QuietDelivered} quiet messages delivered, 0 quiet posts waited or refused, {totals.Disconnects} mid-flood disconnects, 0 violations");
        totals.FloodDropped.Should().BeGreaterThan(0, "the drop modes must have dropped");
        totals.FloodWaited.Should().BeGreaterThan(0, "Wait mode must have made the flooding peer wait");
    }

    private static async Task RoundAsync(int seed, Totals totals)
    {
        var random = new Random(seed);
        var mode = Modes[random.Next(Modes.Length)];
        var disconnectAt = random.Next(3) == 0 ? random.Next(FloodPosts) : -1;
        var consumer = new CheckingConsumer(QuietPeers + 1);
        var dropped = new List<int>();
        var droppedOfQuietPeers = 0;
        var pump = new PeerEventPump<int, int>(
            consumer,
            // Room for every peer's quota and two more (a message the loop is claiming is still counted until the loop
            // counts it, and a drop that finds it claimed lets the post in): only the flooding peer's quota is ever full.
            new PeerEventPumpOptions { PerPeerCapacity = Quota, Capacity = Quota + QuietPeers + 2, FullMode = mode },
            (peer, message) =>
            {
                lock (dropped)
                {
                    droppedOfQuietPeers += peer == 0 ? 0 : 1;
                    dropped.Add(message);
                }
            });
        var handles = Enumerable.Range(0, QuietPeers + 1).Select(pump.Connect).ToArray();
        foreach (var handle in handles)
        {
            handle.MarkReady();
        }

        var accepted = new List<int>();
        var waited = 0;
        var flood = Task.Run(async () =>
        {
            for (var m = 0; m < FloodPosts; m++)
            {
                if (m == disconnectAt)
                {
                    handles[0].Disconnect();
                }

                var post = handles[0].PostAsync(m);
                waited += post.IsCompleted ? 0 : 1;
                var result = await post;
                if (result is PeerPostResult.Posted or PeerPostResult.Dropped)
                {
                    accepted.Add(m); // DropWrite's refused post is passed to the callback too
                }
                else
                {
                    result.Should().Be(PeerPostResult.Disconnected);
                }
            }
        });
        var quiet = Enumerable.Range(1, QuietPeers).Select(peer => Task.Run(async () =>
        {
            for (var m = 0; m < QuietPosts; m++)
            {
                var delivered = consumer.WhenDelivered(peer, m);
                var post = handles[peer].PostAsync(m);
                post.IsCompleted.Should().BeTrue("quiet peer {0} never waits on the flooding peer's quota ({1})", peer, mode);
                (await post).Should().Be(PeerPostResult.Posted);
                await delivered; // one message at a time: never at its own quota
            }
        })).ToArray();

        await Task.WhenAll(quiet.Append(flood));
        await pump.DisposeAsync();

        consumer.Violations.Should().BeEmpty();
        droppedOfQuietPeers.Should().Be(0, "only the flooding peer reaches its quota ({0})", mode);
        var deliveredFlood = consumer.MessagesOf(0);
        deliveredFlood.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        dropped.Should().OnlyHaveUniqueItems().And.NotIntersectWith(deliveredFlood);
        deliveredFlood.Concat(dropped).Should().BeEquivalentTo(accepted, "every accepted message is delivered or dropped ({0})", mode);
        if (mode == PeerEventPumpFullMode.Wait)
        {
            dropped.Should().BeEmpty();
        }

        for (var peer = 1; peer <= QuietPeers; peer++)
        {
            consumer.MessagesOf(peer).Should().Equal(Enumerable.Range(0, QuietPosts));
        }

        totals.Add(consumer.Events, deliveredFlood.Count, dropped.Count, waited, QuietPeers * QuietPosts, disconnectAt >= 0 ? 1 : 0);
    }

    private sealed class Totals
    {
        private long _events;

        public long Events => Interlocked.Read(ref _events);

        public long FloodDelivered { get; private set; }

        public long FloodDropped { get; private set; }

        public long FloodWaited { get; private set; }

        public long QuietDelivered { get; private set; }

        public long Disconnects { get; private set; }

        public void Add(long events, long floodDelivered, long floodDropped, long floodWaited, long quietDelivered, long disconnects)
        {
            Interlocked.Add(ref _events, events);
            FloodDelivered += floodDelivered;
            FloodDropped += floodDropped;
            FloodWaited += floodWaited;
            QuietDelivered += quietDelivered;
            Disconnects += disconnects;
        }
    }

    /// <summary>
    /// Checks each event as it arrives (legal histories, no overlapping calls), records the messages per peer, slows down
    /// on the flooding peer's messages so that it reaches its quota, and signals each quiet message's delivery.
    /// </summary>
    private sealed class CheckingConsumer : IPeerEventConsumer<int, int>
    {
        private readonly List<int>[] _messages;
        private readonly bool[] _live;
        private readonly Dictionary<(int Peer, int Message), TaskCompletionSource> _waiters = new();
        private int _inCall;

        public CheckingConsumer(int peers)
        {
            _messages = Enumerable.Range(0, peers).Select(_ => new List<int>()).ToArray();
            _live = new bool[peers];
        }

        public List<string> Violations { get; } = new();

        public long Events { get; private set; }

        public IReadOnlyList<int> MessagesOf(int peer) => _messages[peer];

        public Task WhenDelivered(int peer, int message)
        {
            lock (_waiters)
            {
                var signal = Bounded.NewGate();
                _waiters[(peer, message)] = signal;
                return signal.Task;
            }
        }

        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => Handle(() =>
        {
            Expect(!_live[peer], $"peer {peer}: Added while live");
            _live[peer] = true;
        });

        public ValueTask OnMessageAsync(int peer, int message, CancellationToken cancellationToken) => Handle(() =>
        {
            Expect(_live[peer], $"peer {peer}: message {message} while not live");
            _messages[peer].Add(message);
            if (peer == 0)
            {
                Thread.SpinWait(200); // the flooding peer posts faster than the loop takes
            }
            else
            {
                TaskCompletionSource? signal;
                lock (_waiters)
                {
                    _waiters.Remove((peer, message), out signal);
                }

                signal?.TrySetResult();
            }
        });

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => Handle(() =>
        {
            Expect(_live[peer], $"peer {peer}: Removed while not live");
            _live[peer] = false;
        });

        private ValueTask Handle(Action check)
        {
            Expect(Interlocked.Increment(ref _inCall) == 1, "two consumer calls overlapped");
            Events++;
            check();
            Interlocked.Decrement(ref _inCall);
            return default;
        }

        private void Expect(bool condition, string violation)
        {
            if (!condition)
            {
                Violations.Add(violation);
            }
        }
    }
}
