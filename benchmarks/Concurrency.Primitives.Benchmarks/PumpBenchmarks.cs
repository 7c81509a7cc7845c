using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using System.Threading.Tasks.Dataflow;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.Reporting;
using Concurrency.Primitives.Benchmarks.HandRolled;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// 200,000 messages from peers already added, posted round-robin by one producer and handled by one consumer that counts
/// them; the run ends when the consumer has seen them all. Time and allocation are per event. The pump runs three ways:
/// without a per-peer quota; with a quota no peer reaches in a run (what counting per peer costs); and with a quota of 64
/// that the producer keeps hitting, so that its posts wait for the loop (what waiting costs).
/// </summary>
[MemoryDiagnoser]
public class PumpBenchmarks
{
    private const int Events = 200_000;
    private const int BindingQuota = 64;

    private CountingHandler _handler = null!;
    private PeerEventPump<int, int> _pump = null!;
    private PeerHandle<int, int>[] _handles = null!;
    private PeerEventPump<int, int> _quotaPump = null!;
    private PeerHandle<int, int>[] _quotaHandles = null!;
    private PeerEventPump<int, int> _bindingQuotaPump = null!;
    private PeerHandle<int, int>[] _bindingQuotaHandles = null!;
    private TwoChannelPeerLoop<int, int> _twoChannel = null!;
    private ActionBlock<(int Peer, int Message)> _actionBlock = null!;
    private Channel<(int Peer, int Message)> _channel = null!;
    private Task _channelLoop = null!;

    [ParamsSource(nameof(PeerCounts))]
    public int Peers { get; set; }

    /// <summary>Quick: 16 (a service's connections); full: 1, 16 and 1,000.</summary>
    public static IEnumerable<int> PeerCounts => Profile.Pick(quick: new[] { 16 }, full: new[] { 1, 16, 1_000 });

    [GlobalSetup]
    public void Setup()
    {
        _handler = new CountingHandler();
        _pump = new PeerEventPump<int, int>(_handler);
        _handles = new PeerHandle<int, int>[Peers];
        _quotaPump = new PeerEventPump<int, int>(_handler, new PeerEventPumpOptions { PerPeerCapacity = (Events / Peers) + 1 });
        _quotaHandles = new PeerHandle<int, int>[Peers];
        _bindingQuotaPump = new PeerEventPump<int, int>(_handler, new PeerEventPumpOptions { PerPeerCapacity = BindingQuota });
        _bindingQuotaHandles = new PeerHandle<int, int>[Peers];
        _twoChannel = new TwoChannelPeerLoop<int, int>(_handler);
        for (var i = 0; i < Peers; i++)
        {
            _handles[i] = _pump.Connect(i);
            _handles[i].MarkReady();
            _quotaHandles[i] = _quotaPump.Connect(i);
            _quotaHandles[i].MarkReady();
            _bindingQuotaHandles[i] = _bindingQuotaPump.Connect(i);
            _bindingQuotaHandles[i].MarkReady();
            _twoChannel.NewPeer(i);
        }

        _actionBlock = new ActionBlock<(int Peer, int Message)>(e => _handler.OnMessageAsync(e.Peer, e.Message, default).AsTask());
        _channel = Channel.CreateUnbounded<(int, int)>(new UnboundedChannelOptions { SingleReader = true });
        _channelLoop = Task.Run(async () =>
        {
            var reader = _channel.Reader;
            while (await reader.WaitToReadAsync())
            {
                while (reader.TryRead(out var e))
                {
                    await _handler.OnMessageAsync(e.Item1, e.Item2, default);
                }
            }
        });
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _pump.DisposeAsync();
        await _quotaPump.DisposeAsync();
        await _bindingQuotaPump.DisposeAsync();
        await _twoChannel.DisposeAsync();
        _actionBlock.Complete();
        _channel.Writer.TryComplete();
        await _channelLoop;
    }

    [Case(CaseKind.Floor)]
    [Benchmark(Description = "raw Channel<T> drain loop (floor)", OperationsPerInvoke = Events)]
    public Task RawChannel()
    {
        var done = _handler.Expect(Events);
        var writer = _channel.Writer;
        for (var i = 0; i < Events; i++)
        {
            writer.TryWrite((i % Peers, i));
        }

        return done;
    }

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "hand-rolled two-channel loop", OperationsPerInvoke = Events)]
    public Task TwoChannel()
    {
        var done = _handler.Expect(Events);
        for (var i = 0; i < Events; i++)
        {
            _twoChannel.Message(i % Peers, i);
        }

        return done;
    }

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Dataflow ActionBlock", OperationsPerInvoke = Events)]
    public Task ActionBlock()
    {
        var done = _handler.Expect(Events);
        for (var i = 0; i < Events; i++)
        {
            _actionBlock.Post((i % Peers, i));
        }

        return done;
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "PeerEventPump", OperationsPerInvoke = Events)]
    public Task Pump() => TryPostAll(_handles);

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "PeerEventPump, per-peer quota not reached", OperationsPerInvoke = Events)]
    public Task PumpWithQuota() => TryPostAll(_quotaHandles);

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "PeerEventPump, per-peer quota 64, posts wait", OperationsPerInvoke = Events)]
    public async Task PumpWithBindingQuota()
    {
        var done = _handler.Expect(Events);
        var handles = _bindingQuotaHandles;
        for (var i = 0; i < Events; i++)
        {
            await handles[i % handles.Length].PostAsync(i);
        }

        await done;
    }

    /// <summary>Posts the run's messages round-robin over <paramref name="handles"/>, never waiting; completes when the consumer has seen them all.</summary>
    private Task TryPostAll(PeerHandle<int, int>[] handles)
    {
        var done = _handler.Expect(Events);
        for (var i = 0; i < Events; i++)
        {
            handles[i % handles.Length].TryPost(i);
        }

        return done;
    }

    /// <summary>Counts messages and completes the expected total; added and removed events are not counted.</summary>
    private sealed class CountingHandler : IPeerEventConsumer<int, int>
    {
        private int _remaining;
        private TaskCompletionSource? _done;

        public Task Expect(int count)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _remaining, count);
            return _done.Task;
        }

        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(int peer, int message, CancellationToken cancellationToken)
        {
            if (Interlocked.Decrement(ref _remaining) == 0)
            {
                _done!.TrySetResult();
            }

            return default;
        }

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => default;
    }
}
