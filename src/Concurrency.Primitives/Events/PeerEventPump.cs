using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// PeerEventPump keeps these invariants (Events/README.md):
//  1. One owner: the handler runs only on the pump's loop (one work item at a time, _scheduled), one event at a time;
//     the loop alone touches the consumer-side peer state (LoopLive and the live list).
//  2. Per peer: nothing, or Added -> messages -> exactly one Removed. A handle's producer state machine
//     (Connected -> Ready -> Disconnected, under _lock) admits Added once, messages only while Ready, and Removed only
//     after Added; the single FIFO queue keeps that order.
//  3. One FIFO queue for every kind of event, in the order accepted.
//  4. MarkReady twice and Disconnect twice are no-ops that return false; ready and disconnect racing are serialized by _lock.
//  5. A throwing handler is logged and the loop goes on (or, by policy, the pump faults and still removes every added peer).
//  6. Shutdown disconnects every handle (queuing Removed for ready ones), drains the queue, then completes.
//  7/9. Capacity counts messages only: lifecycle events are never dropped nor refused for room. No priority lane.
//  8. Events are stored by value in one chunked queue: producers append under _lock, the loop takes without it (it
//     takes _lock only when it has found the queue empty for a few hundred nanoseconds, to unschedule itself, or to
//     wake callers waiting for room). A steady flow allocates nothing: finished chunks are reused.

/// <summary>
/// Delivers peers' lifecycle events and messages to one handler, on one loop, in one order: per peer, either nothing,
/// or Added, then its messages in posting order, then exactly one Removed. Never "removed" before "added", never an
/// event for an unknown peer, never a message after Removed.
/// </summary>
/// <typeparam name="TPeer">The peer identity (compared with the default equality comparer).</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// <para>
/// Each connection gets a <see cref="PeerHandle{TPeer, TMessage}"/> from <see cref="Connect"/>; that handle is the sole
/// sender of the connection's events. Events from all peers are delivered in the order they were accepted.
/// </para>
/// <para>
/// Shutdown (<see cref="CloseAsync(TimeSpan, CancellationToken)"/>, <see cref="DisposeAsync"/>) stops accepting, delivers what
/// is queued and a Removed for every live peer (in the order they were added), then completes <see cref="Completion"/>.
/// <c>CloseAsync</c> throws what the shutdown ends with (a timeout, the consumer's fault); <c>DisposeAsync</c> never throws.
/// All members are thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{_name,nq}")]
public sealed partial class PeerEventPump<TPeer, TMessage> : IAsyncDisposable, IDisposable
    where TPeer : notnull
{
    private const int Connected = (int)PeerConnectionState.Connected;
    private const int Ready = (int)PeerConnectionState.Ready;
    private const int Disconnected = (int)PeerConnectionState.Disconnected;

    // Field order matters here: the runtime lays out reference fields first, in this order, so the eight cold references
    // below keep the fields every post touches (_lock, _queue and the counters after them) at least a cache line away from
    // whatever object was allocated just before the pump (often the handler, which the loop writes on every event).
    private readonly IPeerEventConsumer<TPeer, TMessage> _handler;
    private readonly string _name;
    private readonly int _capacity;
    private readonly PeerEventPumpFullMode _fullMode;
    private readonly PeerEventPumpFaultPolicy _faultPolicy;
    private readonly TimeSpan _shutdownTimeout;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KeyValuePair<string, object?> _metricTag;
    private readonly PeerEventPumpMetrics _metrics;
    private readonly Dictionary<TPeer, PeerHandle<TPeer, TMessage>> _connected = new();

    // The ready handles, in the order they were marked ready (the order the consumer sees them added): shutdown removes
    // them in this order. Guarded by _lock, as is _connected.
    private IntrusiveList<PeerHandle<TPeer, TMessage>, PeerHandleReadyLinks<TPeer, TMessage>> _ready;
    private readonly RoomWaiters _roomWaiters = new();
    private readonly TaskCompletionSource<bool> _completion = Signals.Create();
    private readonly PumpLoop _loop;
    private readonly object _lock = new();
    private readonly PeerEventQueue<TPeer, TMessage> _queue = new();

    // Messages accepted and not dropped (producers, under _lock), and the last count of messages the loop had taken that
    // a producer read: their difference bounds the messages waiting from above. Read the loop's count again only when full.
    private long _admitted;
    private long _takenSeen;

    // Places granted to callers waiting for room (Wait mode) who have not posted yet: nobody else may take them. A woken
    // waiter posts into its place, so waiters go in the order they came and a newer post never overtakes them.
    private long _reserved;
    private bool _scheduled;
    private bool _accepting = true;
    private volatile bool _disposed;
    private long _generation;

    /// <summary>Creates a pump and its loop.</summary>
    /// <param name="consumer">Receives every event, one at a time.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="consumer"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    public PeerEventPump(IPeerEventConsumer<TPeer, TMessage> consumer, PeerEventPumpOptions? options = null)
    {
        _handler = Guard.NotNull(consumer);
        options ??= new PeerEventPumpOptions();
        _capacity = options.Capacity is { } capacity
            ? capacity >= 1 ? capacity : throw new ArgumentOutOfRangeException(nameof(options), capacity, "PeerEventPumpOptions.Capacity must be at least 1, or null for no bound.")
            : int.MaxValue;
        _fullMode = options.FullMode is PeerEventPumpFullMode.Wait or PeerEventPumpFullMode.DropNewest or PeerEventPumpFullMode.DropOldest or PeerEventPumpFullMode.DropWrite
            ? options.FullMode
            : throw new ArgumentOutOfRangeException(nameof(options), options.FullMode, "PeerEventPumpOptions.FullMode is not a defined value.");
        _faultPolicy = options.FaultPolicy is PeerEventPumpFaultPolicy.LogAndContinue or PeerEventPumpFaultPolicy.FaultPump
            ? options.FaultPolicy
            : throw new ArgumentOutOfRangeException(nameof(options), options.FaultPolicy, "PeerEventPumpOptions.FaultPolicy is not a defined value.");
        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "PeerEventPumpOptions.ShutdownTimeout");
        _name = string.IsNullOrEmpty(options.Name) ? "PeerEventPump" : options.Name!;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _metricTag = new KeyValuePair<string, object?>("pump.name", _name);
        _metrics = PeerEventPumpMetrics.For(options.MeterFactory);
        _loop = new PumpLoop(this);
    }

    /// <summary>The pump's name, from <see cref="PeerEventPumpOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>
    /// Messages accepted and not yet taken by the pump's loop: a snapshot, to compare with
    /// <see cref="PeerEventPumpOptions.Capacity"/> (health checks, dashboards). Added and Removed events are not counted,
    /// as they are not by the capacity.
    /// </summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                var waiting = _admitted - Volatile.Read(ref _loop.Taken);
                return waiting <= 0 ? 0 : waiting >= int.MaxValue ? int.MaxValue : (int)waiting;
            }
        }
    }

    /// <summary>
    /// Completes when the pump has shut down and the consumer has seen Removed for every peer it saw added; faults with the
    /// consumer's exception if the pump faulted under <see cref="PeerEventPumpFaultPolicy.FaultPump"/>.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Opens a connection for <paramref name="peer"/>. Nothing reaches the handler until <see cref="PeerHandle{TPeer, TMessage}.MarkReady"/>.</summary>
    /// <param name="peer">The peer's identity.</param>
    /// <returns>The connection's handle.</returns>
    /// <remarks>
    /// If the identity already has a connection, that one is disconnected first (the handler sees its Removed, if it
    /// saw its Added), and the new handle has a higher generation: events of the old connection never touch the new one.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="peer"/> is <see langword="null"/>.</exception>
    /// <exception cref="ClosedException">The pump is closed, closing, or faulted.</exception>
    /// <exception cref="ObjectDisposedException">The pump has been disposed.</exception>
    public PeerHandle<TPeer, TMessage> Connect(TPeer peer)
    {
        if (peer is null)
        {
            throw new ArgumentNullException(nameof(peer));
        }

        PeerHandle<TPeer, TMessage> handle;
        bool schedule;
        lock (_lock)
        {
            if (!_accepting)
            {
                throw _disposed
                    ? new ObjectDisposedException(nameof(PeerEventPump<TPeer, TMessage>), $"Pump '{_name}' has been disposed; it accepts no more connections.")
                    : new ClosedException(_name, _fault is null ? $"Pump '{_name}' is closed (or closing); it accepts no more connections." : $"Pump '{_name}' faulted (its consumer threw); it accepts no more connections.");
            }

            schedule = _connected.TryGetValue(peer, out var previous) && DisconnectLocked(previous) && ScheduleLocked();
            handle = new PeerHandle<TPeer, TMessage>(this, peer, ++_generation);
            _connected[peer] = handle;
        }

        if (schedule)
        {
            _loop.Start();
        }

        return handle;
    }

    internal bool MarkReady(PeerHandle<TPeer, TMessage> handle)
    {
        bool schedule;
        lock (_lock)
        {
            if (!_accepting || handle.ProducerState != Connected)
            {
                return false;
            }

            Volatile.Write(ref handle.ProducerState, Ready);
            _ready.AddLast(handle);
            _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Added, handle, default!));
            schedule = ScheduleLocked();
        }

        if (schedule)
        {
            _loop.Start();
        }

        return true;
    }

    internal bool Disconnect(PeerHandle<TPeer, TMessage> handle)
    {
        bool schedule;
        lock (_lock)
        {
            if (handle.ProducerState == Disconnected)
            {
                return false;
            }

            schedule = DisconnectLocked(handle) && ScheduleLocked();
        }

        if (schedule)
        {
            _loop.Start();
        }

        return true;
    }

    internal PeerPostResult Post(PeerHandle<TPeer, TMessage> handle, TMessage message)
    {
        PeerPostResult result;
        PeerHandle<TPeer, TMessage>? dropped;
        bool schedule;
        lock (_lock)
        {
            result = TryEnqueueMessageLocked(handle, message, canWait: false, reserved: false, out _, out dropped) ?? PeerPostResult.Full;
            schedule = result == PeerPostResult.Posted && ScheduleLocked();
        }

        AfterPost(schedule, dropped);
        return result;
    }

    internal ValueTask<PeerPostResult> PostAsync(PeerHandle<TPeer, TMessage> handle, TMessage message, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return new ValueTask<PeerPostResult>(Task.FromCanceled<PeerPostResult>(cancellationToken));
        }

        PeerPostResult result;
        PeerHandle<TPeer, TMessage>? dropped;
        bool schedule;
        lock (_lock)
        {
            if (TryEnqueueMessageLocked(handle, message, canWait: true, reserved: false, out var room, out dropped) is not { } outcome)
            {
                return WaitForRoomThenPostAsync(handle, message, room!, cancellationToken);
            }

            result = outcome;
            schedule = result == PeerPostResult.Posted && ScheduleLocked();
        }

        AfterPost(schedule, dropped);
        return new ValueTask<PeerPostResult>(result);
    }

    /// <summary>After a post, outside the lock: starts the loop if it must, and reports a dropped message (the logger is user code).</summary>
    private void AfterPost(bool schedule, PeerHandle<TPeer, TMessage>? dropped)
    {
        if (schedule)
        {
            _loop.Start();
        }

        if (dropped is not null)
        {
            CountDropped(dropped);
        }
    }

    /// <summary>
    /// Queues a message if the handle is ready. Returns what became of it, or <see langword="null"/> (with a waiter in
    /// <paramref name="room"/>) when the caller may wait for room. <paramref name="reserved"/>: the caller was granted a
    /// place while it waited, and posts into it. A message dropped to make room (or refused by DropWrite) is returned in
    /// <paramref name="dropped"/>, to be reported after the lock is released.
    /// </summary>
    private PeerPostResult? TryEnqueueMessageLocked(PeerHandle<TPeer, TMessage> handle, TMessage message, bool canWait, bool reserved, out TaskCompletionSource<bool>? room, out PeerHandle<TPeer, TMessage>? dropped)
    {
        room = null;
        dropped = null;
        if (reserved)
        {
            _reserved--;
        }

        var refusal = !_accepting ? PeerPostResult.Closed
            : handle.ProducerState == Connected ? PeerPostResult.NotReady
            : handle.ProducerState == Disconnected ? PeerPostResult.Disconnected
            : (PeerPostResult?)null;
        if (refusal is { } refused)
        {
            if (reserved && _accepting)
            {
                WakeRoomLocked(); // the place it was granted goes to the next waiter
            }

            return refused;
        }

        if (!reserved && IsFullForNewPostsLocked())
        {
            switch (_fullMode)
            {
                case PeerEventPumpFullMode.DropWrite:
                    dropped = handle;
                    return PeerPostResult.Dropped;
                case PeerEventPumpFullMode.DropOldest or PeerEventPumpFullMode.DropNewest:
                    var readerChunk = Volatile.Read(ref _loop.Reader.Chunk);
                    dropped = _fullMode == PeerEventPumpFullMode.DropOldest ? _queue.DropOldestMessage(readerChunk) : _queue.DropNewestMessage(readerChunk);
                    if (dropped is not null)
                    {
                        _admitted--;
                        if (_metrics.Queued.Enabled)
                        {
                            _metrics.Queued.Add(-1, _metricTag);
                        }
                    }

                    break;
                case PeerEventPumpFullMode.Wait when canWait:
                    // Tell the loop that someone waits, then look again: a message it took meanwhile may have made room
                    // (the loop reads the flag after publishing every message it takes).
                    Interlocked.Exchange(ref _loop.RoomWanted, 1);
                    if (IsFullForNewPostsLocked())
                    {
                        room = _roomWaiters.Add(handle);
                        return null;
                    }

                    break;
                default:
                    return PeerPostResult.Full;
            }
        }

        _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Message, handle, message));
        _admitted++;
        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(1, _metricTag);
        }

        return PeerPostResult.Posted;
    }

    /// <summary>
    /// Whether a post that holds no reserved place finds the queue full: <see cref="PeerEventPumpOptions.Capacity"/> messages
    /// wait or are reserved, or (Wait mode) callers are still in line for room, whom it must not overtake. Called under the lock.
    /// </summary>
    private bool IsFullForNewPostsLocked()
    {
        if (_fullMode == PeerEventPumpFullMode.Wait && !_roomWaiters.IsEmpty)
        {
            WakeRoomLocked(); // room there is goes to them first (and stale entries of waiters that left are dropped)
            if (!_roomWaiters.IsEmpty)
            {
                return true;
            }
        }

        return _admitted + _reserved - _takenSeen >= _capacity && IsFullLocked();
    }

    private async ValueTask<PeerPostResult> WaitForRoomThenPostAsync(PeerHandle<TPeer, TMessage> handle, TMessage message, TaskCompletionSource<bool> room, CancellationToken cancellationToken)
    {
        bool granted;
        try
        {
            // True: a place is reserved for this post. False: the wait ended without one (the handle disconnected, or the
            // pump shut down); the look below says which.
            granted = await Signals.WaitAsync(room.Task, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // A waiter that gave up must not keep a place granted to it meanwhile: it goes to the next waiter.
            if (!room.TrySetCanceled(cancellationToken))
            {
                lock (_lock)
                {
                    _reserved--;
                    WakeRoomLocked();
                }
            }

            throw;
        }

        PeerPostResult result;
        bool schedule;
        lock (_lock)
        {
            // A granted post never waits again; one released without a place is refused (disconnected or closed).
            result = TryEnqueueMessageLocked(handle, message, canWait: false, reserved: granted, out _, out _) ?? PeerPostResult.Full;
            schedule = result == PeerPostResult.Posted && ScheduleLocked();
        }

        AfterPost(schedule, null);
        return result;
    }

    /// <summary>Disconnects a handle; returns whether a Removed was queued. Called under the lock.</summary>
    private bool DisconnectLocked(PeerHandle<TPeer, TMessage> handle)
    {
        var wasReady = handle.ProducerState == Ready;
        Volatile.Write(ref handle.ProducerState, Disconnected);
        if (_connected.TryGetValue(handle.Peer, out var current) && ReferenceEquals(current, handle))
        {
            _connected.Remove(handle.Peer);
        }

        if (!_roomWaiters.IsEmpty)
        {
            // A post of this handle waiting for room would be refused once room came: end its wait now.
            _roomWaiters.Release(handle);
        }

        if (wasReady)
        {
            _ready.Remove(handle);

            // After every message this handle queued: the FIFO keeps Removed last.
            _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Removed, handle, default!));
        }

        return wasReady;
    }

    /// <summary>Whether <see cref="PeerEventPumpOptions.Capacity"/> messages wait (or are reserved), by the loop's latest count. Called under the lock.</summary>
    private bool IsFullLocked()
    {
        _takenSeen = Volatile.Read(ref _loop.Taken);
        return _admitted + _reserved - _takenSeen >= _capacity;
    }

    /// <summary>Marks the loop scheduled; returns whether the caller must start it (after leaving the lock).</summary>
    private bool ScheduleLocked()
    {
        if (_scheduled)
        {
            return false;
        }

        _scheduled = true;
        return true;
    }

    private void CountDropped(PeerHandle<TPeer, TMessage> handle)
    {
        if (_metrics.Dropped.Enabled)
        {
            _metrics.Dropped.Add(1, _metricTag);
        }

        if (_logger.IsEnabled(LogLevel.Warning))
        {
            PeerEventPumpLog.MessageDropped(_logger, _name, handle.Peer.ToString() ?? string.Empty, _fullMode);
        }
    }
}
