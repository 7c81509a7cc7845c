using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;

#pragma warning disable CS1998 // some snippets are async without awaiting, as README code is
#pragma warning disable VSTHRD103, VSTHRD110, VSTHRD200, CA2000, CA2012 // README code, kept as a reader writes it

namespace Concurrency.Primitives.Tests.Docs;

/// <summary>
/// Every C# snippet of the README, verbatim, each in a method of its own, so that the compiler checks them all.
/// <see cref="ReadmeTests"/> checks that each README snippet appears here, so the two cannot drift apart. The members
/// below the snippets are the stubs the snippets call.
/// </summary>
internal sealed class ReadmeSnippets
{
    private readonly ILogger logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    private readonly IDatabase db = null!;
    private readonly ChannelReader<(Key, TaskCompletionSource<Row>)> reader = null!;
    private readonly Key key = new();
    private readonly CancellationToken ct = CancellationToken.None;
    private readonly IPeerEventConsumer<PeerId, Message> syncManager = null!;
    private readonly PeerId id = new();
    private readonly Message msg = new();
    private readonly Channel<PeerId> newPeers = Channel.CreateUnbounded<PeerId>();
    private readonly Channel<PeerId> donePeers = Channel.CreateUnbounded<PeerId>();
    private readonly Task loopTask = Task.CompletedTask;
    private readonly CancellationTokenSource loopCancellation = new();
    private readonly Database database = null!;
    private readonly ReplicationClient replicationClient = null!;
    private readonly Database _db = null!;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _loop = Task.CompletedTask;
    private bool _started;
    private LifecycleGate _gate = null!;
    private readonly LifecycleGate databaseGate = null!;
    private readonly LifecycleGate replicationGate = null!;
    private readonly LifecycleGate syncGate = null!;
    private readonly LifecycleGate rpcGate = null!;

    public async Task TaskTrackerOverview()
    {
        await using var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node", MaxConcurrency = 8 });

        // Go registers synchronously, then starts the work on the thread pool. Awaiting Go waits for the work to be
        // registered and started (for a free slot, with MaxConcurrency) — not for the work itself.
        await tracker.Go(async (build, closing) =>
        {
            await BuildAsync(closing);
            // A child is registered through its parent's handle, before the parent finishes:
            // accepted even while the tracker is closing, and waited for.
            build.Go(closing => MergeAsync(closing), "merge");
        }, "build");

        // RunAsync returns the work's own task, as Task.Run does: await it for the work's result or failure.
        await tracker.RunAsync(closing => CompactAsync(closing), "compact");

        using (var lease = tracker.Register("db-flush")) { /* work you start yourself */ }

        // Cancels tracker.ClosingToken, rejects new top-level work, waits for everything.
        // On timeout: TaskTrackerTimeoutException lists each outstanding operation with its name and age
        // (and where it was registered, with CaptureRegistrationStackTraces). Failures of tracked work are
        // thrown here, as by Task.WhenAll: await throws the first, the task's Exception holds them all.
        await tracker.CloseAsync(TimeSpan.FromSeconds(30));
    }

    public async Task HandRolledWaitGroup()
    {
        int count = 0; var zero = new TaskCompletionSource();
        void Done() { if (Interlocked.Decrement(ref count) == 0) zero.TrySetResult(); }

        Interlocked.Increment(ref count);
        _ = Task.Run(async () =>
        {
            await BuildAsync();
            _ = Task.Run(async () => { Interlocked.Increment(ref count); await MergeAsync(); Done(); }); // too late
            Done();
        });
        await zero.Task; // may return while MergeAsync still runs
    }

    public async Task TrackedWaitGroup()
    {
        var tracker = new TaskTracker();
        await tracker.Go(async (build, closing) =>
        {
            await BuildAsync();
            build.Go(closing => MergeAsync(), "merge"); // counted before it starts, while build still holds its count
        }, "build");
        await tracker.CloseAsync(TimeSpan.FromSeconds(30)); // returns only after merge finished
    }

    public async Task WatchdogOverview()
    {
        var watched = new TaskTracker(new TaskTrackerOptions
        {
            Name = "node",
            LongRunningThreshold = TimeSpan.FromMinutes(5), // reported once, while it still runs: log 1012, a metric, LongRunning
            CaptureRegistrationStackTraces = true,          // optional: the report says where it was registered
        });
        watched.LongRunning += (_, e) => logger.LogWarning("{Operation} under {Parent}: {Age}", e.Operation.Name, e.ParentName, e.Operation.Age);
        Console.WriteLine(watched.Snapshot()); // each child indented under the operation that registered it
    }

    public async Task HandRolledWatchdog()
    {
        using var timer = new Timer(_ => logger.LogWarning("build is slow"), null, TimeSpan.FromMinutes(5), Timeout.InfiniteTimeSpan);
        await BuildAsync();
    }

    public async Task WatchedWork(TaskTracker watched)
    {
        await watched.Go(ct => BuildAsync(ct), "build"); // reported once at the threshold, with its name, age, parent and site
    }

    public async Task GateOverview()
    {
        await using var gate = new LifecycleGate(
            start: async (context, ct) =>
            {
                var db = context.Own(await Database.OpenAsync(ct));           // released on stop, last
                var replication = context.Own(await db.ReplicateAsync(ct));  // released on stop, first
            },
            run: ct => SyncLoopAsync(ct),                  // invoked after every accepted start
            stop: ct => FlushCheckpointAsync(ct),          // never called if the start failed
            options: new LifecycleGateOptions { Name = "syncer", ShutdownTimeout = TimeSpan.FromSeconds(10) }); // per step

        await gate.StartAsync(ct);   // concurrent callers share one start; ct cancels only this caller's wait
        await gate.StartAsync();     // already running: one volatile read, no allocation
        await gate.StopAsync();      // cancel the run's token -> await the run -> stop -> replication -> db
    }

    public async Task TeardownOverview()
    {
        await using var teardown = new OrderedTeardown(new OrderedTeardownOptions { ShutdownTimeout = TimeSpan.FromSeconds(10) });
        teardown.SetRun(loopTask, loopCancellation);  // cancelled first, then awaited until it has returned
        teardown.Add(database);                       // then disposed, in reverse order of registration
        teardown.Add(replicationClient);
        await teardown.ExecuteAsync();
    }

    public async Task GroupOverview()
    {
        await using var node = new LifecycleGroup(new LifecycleGroupOptions
        {
            Name = "node",
            ShutdownTimeout = TimeSpan.FromSeconds(30),        // the whole stop; each gate's own ShutdownTimeout still bounds its steps
            OnGateFault = LifecycleGroupFaultPolicy.StopGroup, // a gate whose run faults stops the node (Isolate: report it, keep running)
        });
        node.Add(databaseGate);                                // gates are named by LifecycleGateOptions.Name
        node.Add(replicationGate, "database");
        node.Add(syncGate, "database", "replication");
        node.Add(rpcGate, "sync");
        node.GateFaulted += (_, e) => logger.LogError(e.Exception, "{Gate} faulted", e.GateName);

        await node.StartAsync(ct); // database → replication → sync → rpc, each once what it needs is Running
        await node.StopAsync();    // rpc → sync → replication → database, each once what needs it has stopped
    }

    public async Task HandRolledOrderedStart(LifecycleGate db, LifecycleGate replication, LifecycleGate sync)
    {
        await db.StartAsync(); await replication.StartAsync(); await sync.StartAsync();  // replication throws: db runs on
        await sync.StopAsync(); await replication.StopAsync(); await db.StopAsync();     // during the start: stops what never started
    }

    public async Task GroupedStart(LifecycleGate db, LifecycleGate replication, LifecycleGate sync)
    {
        var group = new LifecycleGroup();
        group.Add(db); group.Add(replication, "db"); group.Add(sync, "db", "replication");
        await group.StartAsync(); // a failure stops what started, in reverse, and throws the gate's own exception
        await group.StopAsync();  // a stop during the start cancels it and stops what it had started
    }

    public async Task HandRolledStartedFlag()
    {
        if (!_started) { await StartCoreAsync(); _started = true; }        // two callers both start
        await _db.DisposeAsync(); _cts.Cancel(); await _loop;            // the loop's catch still uses _db
    }

    public async Task GatedStart()
    {
        _gate = new LifecycleGate(start: (context, ct) => OpenAsync(context, ct), run: LoopAsync);
        await _gate.StartAsync();
        await _gate.StopAsync(); // cancel -> await the loop -> dispose, always in that order
    }

    public async Task BatcherOverview()
    {
        await using var batcher = new Batcher<Key, Row>(
            async (batch, ct) =>                      // ct carries the callers' remaining bound: no hidden retries past it
            {
                var rows = await db.GetManyAsync(batch.Items, ct); // the items as a read-only list: no copy
                for (var i = 0; i < batch.Count; i++)
                    batch.TrySetResult(i, rows[i]);   // first answer wins; unanswered items never hang (see below)
            },
            new BatcherOptions
            {
                MaxBatchSize = 64,                     // dispatched as soon as it is full...
                MaxDelay = TimeSpan.FromMilliseconds(2), // ...or 2 ms after its FIRST item (never restarted)
                MaxConcurrency = 4,                    // dispatches at once
                Capacity = 10_000,                     // a full queue makes SubmitAsync wait (cancellably, in line)
                Timeout = TimeSpan.FromSeconds(5),     // every caller's bound: queue + dispatch
            });

        Row row = await batcher.SubmitAsync(key, ct);
    }

    public async Task HandRolledBatcher()
    {
        while (await reader.WaitToReadAsync())
        {
            var batch = Drain(reader, 64);                       // List<(Key, TaskCompletionSource<Row>)>
            try { await DispatchAsync(batch); }                  // sets some results, then throws
            catch (Exception ex) { logger.LogError(ex, "batch failed"); } // the rest are orphaned
        }
    }

    public async Task BatcherReplacement()
    {
        var batcher = new Batcher<Key, Row>(LoadRowsAsync, new BatcherOptions { MaxBatchSize = 64 }); // Task LoadRowsAsync(Batch<Key, Row>, CancellationToken)
        var row = await batcher.SubmitAsync(key, ct);            // answered, failed or timed out — never left waiting
    }

    public async Task CoalescingReplacement()
    {
        var loader = new Batcher<Key, Row>(LoadRowsAsync, new BatcherOptions<Key>
        {
            MaxBatchSize = 64,
            MaxDelay = TimeSpan.FromMilliseconds(2),
            CoalescingComparer = EqualityComparer<Key>.Default,   // equal keys in one batch: one slot, every caller answered
        });
        var row = await loader.SubmitAsync(key, ct);              // each caller's own token and bound still hold
    }

    public async Task PumpOverview()
    {
        await using var pump = new PeerEventPump<PeerId, Message>(syncManager,       // IPeerEventConsumer<PeerId, Message>
            new PeerEventPumpOptions { Capacity = 10_000, FullMode = PeerEventPumpFullMode.Wait });

        using var peer = pump.Connect(id);  // nothing reaches the consumer yet; disposing it disconnects
        peer.MarkReady();                   // handshake done: OnAddedAsync (once; a second call returns false)
        await peer.PostAsync(msg, ct);      // OnMessageAsync, in posting order; returns PeerPostResult.Posted, or why not
        if (!peer.TryPost(msg, out var why)) { /* Full or Dropped: later; NotReady, Disconnected, Closed: stop sending */ }
        peer.Disconnect();                  // OnRemovedAsync after every accepted message (nothing if never ready)
    }

    public void HandRolledTwoChannels(PeerId peer)
    {
        newPeers.Writer.TryWrite(peer);            // from the peer's task
        donePeers.Writer.TryWrite(peer);           // from the disconnect path
        // loop: select over both -> OnRemoved(unknown peer), then OnAdded(dead peer): the sync manager stalls
    }

    public void PumpReplacement(PeerEventPump<PeerId, Message> pump, PeerId peer)
    {
        var handle = pump.Connect(peer);
        handle.MarkReady();
        handle.Disconnect();                       // always after Added, never before
    }

    // The stubs the snippets call.
    private static Task BuildAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    private static Task MergeAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

    private static Task CompactAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task SyncLoopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task FlushCheckpointAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task StartCoreAsync() => Task.CompletedTask;

    private static Task OpenAsync(LifecycleContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task LoopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static List<(Key, TaskCompletionSource<Row>)> Drain(ChannelReader<(Key, TaskCompletionSource<Row>)> source, int max) => new();

    private static Task DispatchAsync(List<(Key, TaskCompletionSource<Row>)> batch) => Task.CompletedTask;

    private static Task LoadRowsAsync(Batch<Key, Row> batch, CancellationToken cancellationToken) => Task.CompletedTask;

    internal interface IDatabase
    {
        Task<IReadOnlyList<Row>> GetManyAsync(IReadOnlyList<Key> keys, CancellationToken cancellationToken);
    }

    /// <summary>The README's hand-rolled de-duplication layer, before coalescing.</summary>
    internal sealed class HandRolledCoalescing
    {
        private readonly Batcher<Key, Row> _batcher = null!;

        private readonly ConcurrentDictionary<Key, Task<Row>> _inFlight = new();

        public Task<Row> GetAsync(Key key, CancellationToken ct) =>
            _inFlight.GetOrAdd(key, k => LoadThenForgetAsync(k));   // the first caller's ct is the only one honoured,
                                                                    // a faulted task is shared until someone removes it,
        async Task<Row> LoadThenForgetAsync(Key key)                // and the entry outlives the batch it was meant for
        {
            try { return await _batcher.SubmitAsync(key); }
            finally { _inFlight.TryRemove(key, out _); }
        }
    }

    internal sealed class Key
    {
    }

    internal sealed class Row
    {
    }

    internal sealed class PeerId
    {
    }

    internal sealed class Message
    {
    }

    /// <summary>A client that is both IAsyncDisposable and IDisposable, as DbConnection is.</summary>
    internal sealed class Database : IAsyncDisposable, IDisposable
    {
        public static Task<Database> OpenAsync(CancellationToken cancellationToken) => Task.FromResult(new Database());

        public Task<ReplicationClient> ReplicateAsync(CancellationToken cancellationToken) => Task.FromResult(new ReplicationClient());

        public ValueTask DisposeAsync() => default;

        public void Dispose()
        {
        }
    }

    /// <summary>A client that is only IDisposable.</summary>
    internal sealed class ReplicationClient : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
