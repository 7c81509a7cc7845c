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
        using var dropped = new DropCount(name);
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
            $"{handler.Added} added, {handler.Messages} messages of {posted} posted ({dropped.Value} dropped), {handler.Removed} removed, {handler.Faults} handler faults, 0 illegal histories");
        handler.Faults.Should().BeGreaterThan(0);
        handler.Messages.Should().Be(posted - dropped.Value, "every accepted message is delivered or counted as dropped, never both, never neither");
        if (dropsAllowed)
        {
            dropped.Value.Should().BeGreaterThan(0, "a capacity of {0} under {1} peers must overflow", capacity, Peers);
        }
        else
        {
            dropped.Value.Should().Be(0);
        }
    }

    /// <summary>
    /// Drop-oldest at capacity 1: every post that finds the queue full drops the one queued message, which the loop is taking
    /// at that moment as often as not. The loop and a dropping producer race for the slot (the loop claims it with a
    /// compare-and-swap under the dropping modes); whichever wins, the message has one fate: delivered or counted dropped,
    /// never both, never neither, and never delivered empty.
    /// </summary>
    [Fact]
    public async Task DropOldest_ProducersRacingTheLoopForTheQueuedMessage_GiveEachMessageOneFate()
    {
        var target = 400_000L * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var name = $"stress-race-{Guid.NewGuid():N}";
        using var dropped = new DropCount(name);
        var handler = new CountingHandler();
        var pump = new PeerEventPump<int, long>(handler, new PeerEventPumpOptions { Name = name, Capacity = 1, FullMode = PeerEventPumpFullMode.DropOldest });
        var producers = Math.Max(1, Environment.ProcessorCount - 1); // a core left for the loop
        var perProducer = target / producers;
        var clock = Stopwatch.StartNew();
        using var limit = new CancellationTokenSource(StressSettings.TimeLimit);
        var posted = 0L;
        var runs = Enumerable.Range(0, producers).Select(p => Task.Factory.StartNew(() =>
        {
            var handle = pump.Connect(p);
            handle.MarkReady();
            var random = new Random(seed + p);
            for (var m = 1L; m <= perProducer && !limit.IsCancellationRequested; m++)
            {
                Thread.SpinWait(random.Next(64)); // a little work between posts, so that the loop keeps pace about half the time
                if (handle.TryPost(((long)p << 40) | m, out var result) || result == PeerPostResult.Dropped)
                {
                    Interlocked.Increment(ref posted); // accepted (a Dropped result is the oldest's fate, counted by the metric)
                }
            }

            handle.Disconnect();
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray(); // threads of their own: the pool is the loop's

        await Task.WhenAll(runs).WaitAsync(StressSettings.TimeLimit);
        await pump.DisposeAsync();

        _output.WriteLine(
            $"[stress] PeerEventPump (DropOldest, capacity 1, {producers} producer(s) racing the loop, seed {seed}): {Interlocked.Read(ref posted)} messages accepted in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{handler.Messages} delivered, {dropped.Value} dropped, {handler.Duplicates} delivered twice, {handler.Empty} delivered empty");
        handler.Empty.Should().Be(0, "a delivered message carries what was posted");
        handler.Duplicates.Should().Be(0, "no message is delivered twice");
        (handler.Messages + dropped.Value).Should().Be(Interlocked.Read(ref posted), "every accepted message is delivered or counted as dropped, never both, never neither");
        dropped.Value.Should().BeGreaterThan(0, "posts from {0} producer(s) into a capacity of 1 must overflow", producers);
        handler.Messages.Should().BeGreaterThan(0, "the loop takes messages while the producers post");
    }

    /// <summary>The <c>concurrency.primitives.pump.dropped</c> measurements of one pump (by its name).</summary>
    private sealed class DropCount : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _value;

        public DropCount(string pumpName)
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name == "concurrency.primitives.pump.dropped")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "pump.name" && Equals(tag.Value, pumpName))
                    {
                        Interlocked.Add(ref _value, value);
                    }
                }
            });
            _listener.Start();
        }

        public long Value => Interlocked.Read(ref _value);

        public void Dispose() => _listener.Dispose();
    }

    /// <summary>Counts the messages it is given (one call at a time: the pump's loop), and any delivered twice or empty.</summary>
    private sealed class CountingHandler : IPeerEventConsumer<int, long>
    {
        private readonly HashSet<long> _seen = new();

        public long Messages { get; private set; }

        public long Duplicates { get; private set; }

        public long Empty { get; private set; }

        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(int peer, long message, CancellationToken cancellationToken)
        {
            Messages++;
            if (message == 0)
            {
                Empty++;
            }
            else if (!_seen.Add(message))
            {
                Duplicates++;
            }

            return default;
        }

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => default;
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
