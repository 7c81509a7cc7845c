using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Hundreds of peers connect, handshake, post, disconnect and reconnect at random, from many threads, while the handler
/// throws now and then. The handler checks every event as it arrives: each peer's history is legal (nothing, or Added,
/// its messages in posting order, one Removed), calls never overlap, and after shutdown no peer is left live.
/// </summary>
public sealed class PeerEventPumpStressTests
{
    private const int Peers = 300;
    private const int BaseCycles = 10_000;
    private readonly ITestOutputHelper _output;

    public PeerEventPumpStressTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData(PeerEventPumpFullMode.Wait, 256)]
    [InlineData(PeerEventPumpFullMode.DropOldest, 1)]
    public async Task RandomPeerLifecycles_KeepEveryHistoryLegal(PeerEventPumpFullMode fullMode, int capacity)
    {
        var target = BaseCycles * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var dropsAllowed = fullMode == PeerEventPumpFullMode.DropOldest;
        var handler = new CheckingHandler(seed, dropsAllowed);
        var name = $"stress-{fullMode}-{Guid.NewGuid():N}";
        var dropped = 0L;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "concurrency.primitives.pump.dropped")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "pump.name" && Equals(tag.Value, name))
                {
                    Interlocked.Add(ref dropped, value);
                }
            }
        });
        listener.Start();
        var pump = new PeerEventPump<int, (long Generation, int Sequence)>(handler, new PeerEventPumpOptions { Name = name, Capacity = capacity, FullMode = fullMode });
        var cycles = 0;
        var posted = 0L;
        var clock = Stopwatch.StartNew();
        using var limit = new CancellationTokenSource(StressSettings.TimeLimit);

        var peers = Enumerable.Range(0, Peers).Select(id => Task.Run(async () =>
        {
            var random = new Random(seed + id);
            while (Interlocked.Increment(ref cycles) <= target)
            {
                limit.Token.ThrowIfCancellationRequested();
                var handle = pump.Connect(id);
                var sequence = 0;
                if (random.Next(8) == 0)
                {
                    handle.TryPost((handle.Generation, sequence)).Should().BeFalse("a message before the handshake is refused");
                }

                var ready = random.Next(6) != 0;
                Task disconnect = Task.CompletedTask;
                if (ready && random.Next(4) == 0)
                {
                    // Handshake and disconnect racing, from two tasks.
                    var readyTask = Task.Run(() => handle.MarkReady());
                    disconnect = Task.Run(() => handle.Disconnect());
                    await Task.WhenAll(readyTask, disconnect);
                }
                else if (ready)
                {
                    handle.MarkReady();
                }

                for (var m = random.Next(6); m > 0; m--)
                {
                    if (random.Next(3) == 0)
                    {
                        await Task.Yield();
                    }

                    var message = (handle.Generation, sequence);
                    if (await handle.PostAsync(message, limit.Token) == PeerPostResult.Posted)
                    {
                        sequence++;
                        Interlocked.Increment(ref posted);
                    }
                }

                if (random.Next(5) != 0)
                {
                    handle.Disconnect(); // otherwise the next Connect replaces it
                }
            }
        })).ToArray();

        await Task.WhenAll(peers).WaitAsync(StressSettings.TimeLimit);
        await pump.DisposeAsync();

        handler.Violations.Should().BeEmpty();
        handler.LivePeers.Should().Be(0, "the shutdown removes every live peer");
        _output.WriteLine(
            $"[stress] PeerEventPump ({fullMode}, capacity {capacity}): {target} connect/ready/post/disconnect cycles over {Peers} peers (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{handler.Added} added, {handler.Messages} messages of {posted} posted ({Interlocked.Read(ref dropped)} dropped), {handler.Removed} removed, {handler.Faults} handler faults, 0 illegal histories");
        handler.Faults.Should().BeGreaterThan(0);
        handler.Messages.Should().Be(posted - Interlocked.Read(ref dropped), "every accepted message is delivered or counted as dropped, never both, never neither");
        if (dropsAllowed)
        {
            Interlocked.Read(ref dropped).Should().BeGreaterThan(0, "a capacity of {0} under {1} peers must overflow", capacity, Peers);
        }
        else
        {
            Interlocked.Read(ref dropped).Should().Be(0);
        }
    }

    private sealed class CheckingHandler : IPeerEventConsumer<int, (long Generation, int Sequence)>
    {
        private readonly Dictionary<int, int> _nextSequence = new();
        private readonly Random _random;
        private readonly bool _dropsAllowed;
        private int _inCall;

        public CheckingHandler(int seed, bool dropsAllowed)
        {
            _random = new Random(seed);
            _dropsAllowed = dropsAllowed;
        }

        public List<string> Violations { get; } = new();

        public int LivePeers => _nextSequence.Count;

        public long Added { get; private set; }

        public long Messages { get; private set; }

        public long Removed { get; private set; }

        public long Faults { get; private set; }

        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => Handle(() =>
        {
            Added++;
            Expect(_nextSequence.TryAdd(peer, 0), $"peer {peer}: Added while already live");
        });

        public ValueTask OnMessageAsync(int peer, (long Generation, int Sequence) message, CancellationToken cancellationToken) => Handle(() =>
        {
            Messages++;
            if (_nextSequence.TryGetValue(peer, out var expected))
            {
                // Each session (Added .. Removed) numbers its messages from 0, in posting order; under DropOldest some may be missing.
                Expect(_dropsAllowed ? message.Sequence >= expected : message.Sequence == expected, $"peer {peer}: message {message.Sequence} out of order (expected {expected})");
                _nextSequence[peer] = message.Sequence + 1;
            }
            else
            {
                Violations.Add($"peer {peer}: message while not live");
            }
        });

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => Handle(() =>
        {
            Removed++;
            Expect(_nextSequence.Remove(peer), $"peer {peer}: Removed while not live");
        });

        private async ValueTask Handle(Action check)
        {
            if (Interlocked.Increment(ref _inCall) != 1)
            {
                Violations.Add("two handler calls overlapped");
            }

            try
            {
                check();
                var roll = _random.Next(100);
                if (roll < 3 && !_dropsAllowed)
                {
                    await Task.Yield();
                }
                else if (roll < 10 && _dropsAllowed)
                {
                    // Under DropOldest the loop is slowed without leaving its thread: it falls behind the producers now and
                    // then (so messages are displaced) but keeps taking messages while they are being displaced, which is
                    // the race each slot's compare-and-swap settles. A loop that yielded would queue behind hundreds of
                    // producers and see messages only after the last post.
                    Thread.SpinWait(500);
                }

                if (roll == 50)
                {
                    Faults++;
                    throw new InvalidOperationException("injected handler fault");
                }
            }
            finally
            {
                Interlocked.Decrement(ref _inCall);
            }
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
