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
//  7/9. Capacity (and PerPeerCapacity, per handle) counts messages only: lifecycle events are never dropped nor refused
//     for room. No priority lane. Every message dropped by a full mode or discarded by a fault goes to the drop callback once.
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
/// Messages may be bounded for the whole pump (<see cref="PeerEventPumpOptions.Capacity"/>) and per connection
/// (<see cref="PeerEventPumpOptions.PerPeerCapacity"/>), so that a flooding peer waits or drops alone. A consumer call that
/// runs too long is reported (<see cref="PeerEventPumpOptions.HandlerStallThreshold"/>, <see cref="HandlerStalled"/>).
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
    private readonly Action<TPeer, TMessage>? _messageDropped;
    private readonly int _capacity;
    private readonly int _perPeerCapacity;
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
        : this(consumer, options, messageDropped: null)
    {
    }

    /// <summary>Creates a pump and its loop, with a callback for every message it drops.</summary>
    /// <param name="consumer">Receives every event, one at a time.</param>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <param name="messageDropped">
    /// Receives each message the pump accepted or was given and will never deliver, with its peer, exactly once: a
    /// message dropped by <see cref="PeerEventPumpOptions.FullMode"/> (the one displaced under
    /// <see cref="PeerEventPumpFullMode.DropOldest"/> or <see cref="PeerEventPumpFullMode.DropNewest"/>, the one posted
    /// under <see cref="PeerEventPumpFullMode.DropWrite"/>, for <see cref="PeerEventPumpOptions.Capacity"/> and
    /// <see cref="PeerEventPumpOptions.PerPeerCapacity"/> alike), and every message still queued when the consumer faults
    /// the pump (<see cref="PeerEventPumpFaultPolicy.FaultPump"/>). Use it to return pooled buffers, as
    /// <c>Channel.CreateBounded(options, itemDropped)</c> does. <see langword="null"/> for none.
    /// </param>
    /// <remarks>
    /// <para>
    /// A message the pump never took is not passed: a post refused as <see cref="PeerPostResult.Full"/>,
    /// <see cref="PeerPostResult.NotReady"/>, <see cref="PeerPostResult.Disconnected"/> or <see cref="PeerPostResult.Closed"/>,
    /// or a <c>PostAsync</c> cancelled while it waited, leaves the message with its caller. A disconnect or a shutdown
    /// discards nothing: what was accepted is delivered before the peer's Removed.
    /// </para>
    /// <para>
    /// The callback runs outside every lock of the pump, on the thread that dropped the message: the posting thread (before
    /// its post returns), or the pump's loop for a fault (before <see cref="Completion"/> completes, so it must not wait
    /// for the pump). It may be called from several threads at once. An exception it throws is logged (event 4008) and
    /// counted (<c>concurrency.primitives.pump.callback_faults</c>), and reaches neither the poster nor the pump.
    /// </para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="consumer"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range; the message names it.</exception>
    public PeerEventPump(IPeerEventConsumer<TPeer, TMessage> consumer, PeerEventPumpOptions? options, Action<TPeer, TMessage>? messageDropped)
    {
        _handler = Guard.NotNull(consumer);
        options ??= new PeerEventPumpOptions();
        _messageDropped = messageDropped;
        _capacity = options.Capacity is { } capacity
            ? capacity >= 1 ? capacity : throw new ArgumentOutOfRangeException(nameof(options), capacity, "PeerEventPumpOptions.Capacity must be at least 1, or null for no bound.")
            : int.MaxValue;
        _perPeerCapacity = options.PerPeerCapacity is { } quota
            ? quota >= 1 ? quota : throw new ArgumentOutOfRangeException(nameof(options), quota, "PeerEventPumpOptions.PerPeerCapacity must be at least 1, or null for no quota.")
            : int.MaxValue;
        _stallThreshold = options.HandlerStallThreshold is { } threshold
            ? threshold >= TimeSpan.FromMilliseconds(1) && threshold <= Guard.MaxTimeout
                ? threshold
                : throw new ArgumentOutOfRangeException(nameof(options), threshold, $"PeerEventPumpOptions.HandlerStallThreshold must be at least 1 ms and at most {Guard.MaxTimeout.TotalMilliseconds} ms, or null for no stall watchdog.")
            : null;
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
        _watchdog = _stallThreshold is null ? null : _time.CreateTimer(static state => ((PeerEventPump<TPeer, TMessage>)state!).OnWatchdog(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
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

            // The identity's own Equals and GetHashCode run in these two lookups, before any connection changes: if
            // either throws, the caller gets that exception and every connection stays as it was (a generation number
            // may go unused; generations need only increase).
            _connected.TryGetValue(peer, out var previous);
            handle = new PeerHandle<TPeer, TMessage>(this, peer, ++_generation);
            _connected[peer] = handle;
            if (_perPeerCapacity != int.MaxValue)
            {
                handle.Quota = new PeerQuota<TPeer, TMessage>();
            }

            schedule = previous is not null && DisconnectLocked(previous) && ScheduleLocked();
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

            // The identity's own Equals and GetHashCode run here, before anything changes: if either throws, the caller
            // gets that exception and the connection stays as it was (a close still removes it).
            if (_connected.TryGetValue(handle.Peer, out var current) && ReferenceEquals(current, handle))
            {
                _connected.Remove(handle.Peer);
            }

            schedule = DisconnectLocked(handle) && ScheduleLocked();
        }

        if (schedule)
        {
            _loop.Start();
        }

        return true;
    }

    /// <summary>
    /// Disconnects a handle; returns whether a Removed was queued. Called under the lock, by a caller that has taken the
    /// handle out of the identity map (or is about to drop the map): no user code runs here, so nothing can leave the
    /// handle half disconnected (marked, but still in the ready list, or without its Removed).
    /// </summary>
    private bool DisconnectLocked(PeerHandle<TPeer, TMessage> handle)
    {
        var wasReady = handle.ProducerState == Ready;
        Volatile.Write(ref handle.ProducerState, Disconnected);
        if (!_roomWaiters.IsEmpty)
        {
            // A post of this handle waiting for room would be refused once room came: end its wait now.
            _roomWaiters.Release(handle);
        }

        if (handle.Quota?.Waiters is { IsEmpty: false } peerWaiters)
        {
            peerWaiters.ReleaseAll(); // the same for its posts waiting for its quota
        }

        if (wasReady)
        {
            _ready.Remove(handle);

            // After every message this handle queued: the FIFO keeps Removed last.
            _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Removed, handle, default!));
        }

        return wasReady;
    }

    /// <summary>Marks the loop scheduled; returns whether the caller must start it (after leaving the lock).</summary>
    private bool ScheduleLocked()
    {
        if (_scheduled)
        {
            return false;
        }

        _scheduled = true;
        if (_watchdog is not null && !_watchdogArmed)
        {
            ArmWatchdogLocked(_stallThreshold!.Value); // it looks while the loop is active, and sleeps when it finds it idle
        }

        return true;
    }
}
