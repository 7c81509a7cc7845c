using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

#pragma warning disable VSTHRD002 // GetResult is called only on completed value tasks, to consume them.

public sealed partial class PeerEventPump<TPeer, TMessage>
{
    private Exception? _fault;
    private long _closeBeganAt = Signals.NotBegun;

    // Before unscheduling itself the loop looks at the queue a few more times, a few hundred nanoseconds in all: a
    // producer in full flow posts again within that time, and a restart (a lock handover and a thread-pool dispatch)
    // costs far more than the wait.
    private const int LooksBeforeIdle = 4;
    private const int SpinIterationsPerLook = 20;
    private static readonly bool IsMultiCore = Environment.ProcessorCount > 1; // on one core, spinning only delays the producer
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "No timer or linked registrations; the handler may still hold its token.")]
    private readonly CancellationTokenSource _abort = new();

    /// <summary>
    /// Closes the pump: stops accepting (connects throw <see cref="ClosedException"/>, posts return
    /// <see cref="PeerPostResult.Closed"/>), disconnects every handle, and waits up to <see cref="PeerEventPumpOptions.ShutdownTimeout"/>
    /// until the loop has delivered what was queued and a Removed for every live peer, in the order the peers were added.
    /// </summary>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns>A task that completes as <see cref="Completion"/> does.</returns>
    /// <exception cref="ShutdownTimeoutException">The loop had not finished in time; the consumer's token was cancelled.</exception>
    /// <exception cref="Exception">The pump faulted (<see cref="PeerEventPumpFaultPolicy.FaultPump"/>): the consumer's exception.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default) => CloseAsync(_shutdownTimeout, cancellationToken);

    /// <summary>Closes the pump as <see cref="CloseAsync(CancellationToken)"/> does, waiting at most <paramref name="timeout"/>.</summary>
    /// <param name="timeout">How long to wait for the loop; <see cref="Timeout.InfiniteTimeSpan"/> for no bound.</param>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns>A task that completes as <see cref="Completion"/> does.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="ShutdownTimeoutException">The loop had not finished in time; the consumer's token was cancelled.</exception>
    /// <exception cref="Exception">The pump faulted (<see cref="PeerEventPumpFaultPolicy.FaultPump"/>): the consumer's exception.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        BeginShutdown();
        return _completion.Task.IsCompleted ? _completion.Task : WaitForCompletionAsync(timeout, cancellationToken);
    }

    /// <summary>
    /// Closes the pump without waiting: refuses every later connect with <see cref="ObjectDisposedException"/>, begins the
    /// shutdown, and returns at once. Never blocks and never throws. Prefer <see cref="DisposeAsync"/>, which waits for it.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Closes the pump as <see cref="CloseAsync(CancellationToken)"/> does, waiting at most <see cref="PeerEventPumpOptions.ShutdownTimeout"/>,
    /// counted from when the close began (a dispose after a close that timed out does not wait a second full bound).
    /// Never throws: a shutdown that does not finish in time is logged at Error (the consumer's token is cancelled), and a
    /// consumer fault stays on <see cref="Completion"/> (it was logged when it happened).
    /// </summary>
    /// <returns>A task that completes when the pump has shut down, or the bound has passed.</returns>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        try
        {
            BeginShutdown();
            await CloseAsync(Signals.Remaining(_shutdownTimeout, Volatile.Read(ref _closeBeganAt), _time), CancellationToken.None).ConfigureAwait(false);
        }
        catch (ShutdownTimeoutException timeout)
        {
            PeerEventPumpLog.DisposeTimedOut(_logger, _name, timeout);
        }
        catch (Exception) when (_completion.Task.IsFaulted)
        {
            // The consumer's fault is reported by Completion (and was logged); disposal itself succeeded.
        }
    }

    private async Task WaitForCompletionAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!await Signals.WaitWithinAsync(_completion.Task, timeout, _time, cancellationToken).ConfigureAwait(false))
        {
            PeerEventPumpLog.ShutdownTimedOut(_logger, _name, timeout);
            CancelQuietly(_abort);
            throw new ShutdownTimeoutException(_name, timeout, $"Pump '{_name}' did not finish delivering its events within {timeout}; the consumer's token was cancelled. The pump completes when the consumer returns.");
        }

        // Finished (a bound that passed just as it did included): the shutdown's own outcome.
        await _completion.Task.ConfigureAwait(false);
    }

    private void BeginShutdown()
    {
        bool schedule;
        lock (_lock)
        {
            if (!_accepting)
            {
                return;
            }

            _accepting = false;
            Volatile.Write(ref _closeBeganAt, _time.GetTimestamp());
            PeerEventPumpLog.ShutdownStarted(_logger, _name, _connected.Count);

            // Ready peers first, in the order they were added, so that their Removed events come in that order; then
            // the handles that never became ready (they queue nothing).
            while (_ready.First is { } ready)
            {
                if (!DisconnectLocked(ready))
                {
                    _ready.Remove(ready); // never the case (a listed handle is Ready); but a close must always end this loop
                }
            }

            foreach (var handle in _connected.Values)
            {
                DisconnectLocked(handle);
            }

            _connected.Clear(); // no identity's Equals or GetHashCode runs in a close
            _roomWaiters.ReleaseAll();

            // The loop completes the pump once it finds nothing more to deliver.
            schedule = ScheduleLocked();
        }

        if (schedule)
        {
            _loop.Start();
        }
    }

    /// <summary>The loop: takes events one at a time and delivers them until nothing is queued; runs as one work item at a time.</summary>
    private void Drain()
    {
        var loop = _loop;

        // Per event the loop touches only its own object, the queue's chunks and the handles, never this object's fields
        // (which producers write); the event is held in a local, stored in the loop only while a handler call is pending.
        while (true)
        {
            if (!loop.Reader.TryTake(out var current) && !TakeOrStop(out current))
            {
                return;
            }

            if (current.Kind == (int)PeerEventKind.Message)
            {
                OnMessageTaken(loop, current.Handle);
            }

            ValueTask handled;
            try
            {
                handled = Deliver(loop, in current);
            }
            catch (Exception exception)
            {
                handled = new ValueTask(Task.FromException(exception));
            }

            if (!handled.IsCompleted)
            {
                loop.Current = current;
                loop.HandlerInFlight = handled;
                loop.AwaitHandler();
                return;
            }

            Observe(loop, handled, in current);
        }
    }

    /// <summary>An asynchronous handler call completed: observe it, then go on draining as a new work item (never on the handler's thread).</summary>
    private void OnHandlerCompleted()
    {
        var loop = _loop;
        var handled = loop.HandlerInFlight;
        var current = loop.Current;
        loop.HandlerInFlight = default;
        loop.Current = default;
        Observe(loop, handled, in current);
        loop.Start();
    }

    private void Observe(PumpLoop loop, ValueTask handled, in PeerEvent<TPeer, TMessage> current)
    {
        if (loop.Watched)
        {
            Volatile.Write(ref loop.CallStartedAt, NoCall); // the call is over: nothing for the watchdog to report
        }

        try
        {
            handled.GetAwaiter().GetResult(); // completed: consumes it, never blocks
        }
        catch (Exception exception)
        {
            OnHandlerFault(exception, in current);
        }
    }

    /// <summary>
    /// The queue looked empty: look again under the lock (producers append under it), and if it is, unschedule the loop
    /// (and complete the pump once shut down). Returns whether an event was taken after all.
    /// </summary>
    private bool TakeOrStop(out PeerEvent<TPeer, TMessage> current)
    {
        var loop = _loop;
        for (var look = IsMultiCore ? 0 : LooksBeforeIdle; look < LooksBeforeIdle; look++)
        {
            Thread.SpinWait(SpinIterationsPerLook);
            if (loop.Reader.TryTake(out current))
            {
                return true;
            }
        }

        lock (_lock)
        {
            if (loop.Reader.TryTake(out current))
            {
                return true;
            }

            _scheduled = false;
            if (!_roomWaiters.IsEmpty)
            {
                WakeRoomLocked();
            }

            if (!_accepting)
            {
                Finish();
            }

            return false;
        }
    }

    /// <summary>Counts a message the loop took (for the pump and, with a quota, for its handle), and wakes callers waiting for the room it made.</summary>
    private void OnMessageTaken(PumpLoop loop, PeerHandle<TPeer, TMessage> handle)
    {
        // Publish the count before reading the flag; a producer sets the flag before reading the count (see TryEnqueueMessageLocked).
        Volatile.Write(ref loop.Taken, loop.Taken + 1);
        if (_metrics.Queued.Enabled)
        {
            _metrics.Queued.Add(-1, _metricTag);
        }

        if (Volatile.Read(ref loop.RoomWanted) != 0)
        {
            lock (_lock)
            {
                WakeRoomLocked();
            }
        }

        if (loop.CountsPerPeer)
        {
            // A full fence between the count and the flag (the producer fences between the flag and the count): either
            // the loop sees the flag or the producer sees the count, so a post waiting for this handle's quota is never
            // left waiting while the loop serves other peers.
            Interlocked.Increment(ref handle.LoopTaken);
            if (Volatile.Read(ref handle.QuotaRoomWanted) != 0)
            {
                lock (_lock)
                {
                    WakePeerRoomLocked(handle, handle.Quota!);
                }
            }
        }
    }

    /// <summary>
    /// Grants the free places to waiting callers, oldest first (each grant reserves its place until that caller posts);
    /// lowers the flag once none waits. Called under the lock.
    /// </summary>
    private void WakeRoomLocked()
    {
        _takenSeen = Volatile.Read(ref _loop.Taken);
        var room = _capacity - (_admitted + _reserved - _takenSeen);
        if (room > 0)
        {
            _reserved += _roomWaiters.Wake(room > int.MaxValue ? int.MaxValue : (int)room);
        }

        if (_roomWaiters.IsEmpty)
        {
            Volatile.Write(ref _loop.RoomWanted, 0);
        }
    }

    private ValueTask Deliver(PumpLoop loop, in PeerEvent<TPeer, TMessage> next)
    {
        var handle = next.Handle;
        var handler = loop.Handler;
        var token = loop.Token;
        switch ((PeerEventKind)next.Kind)
        {
            case PeerEventKind.Added:
                Debug.Assert(!handle.LoopLive, "Added is queued once per handle.");
                LinkLive(handle);
                CountEvent("added");
                StampCall(loop, handle, PeerEventType.Added);
                return handler.OnAddedAsync(handle.Peer, token);
            case PeerEventKind.Message when handle.LoopLive:
                CountEvent("message");
                StampCall(loop, handle, PeerEventType.Message);
                return handler.OnMessageAsync(handle.Peer, next.Message, token);
            case PeerEventKind.Removed when handle.LoopLive:
                UnlinkLive(handle);
                CountEvent("removed");
                StampCall(loop, handle, PeerEventType.Removed);
                return handler.OnRemovedAsync(handle.Peer, token);
            default:
                // A dropped message, or (after a fault) an event of a peer already removed: nothing to deliver.
                return default;
        }
    }

    private void OnHandlerFault(Exception exception, in PeerEvent<TPeer, TMessage> failed)
    {
        var kind = ((PeerEventKind)failed.Kind).ToString();
        var peer = failed.Handle?.Peer.ToString() ?? string.Empty;
        if (_metrics.ConsumerFaults.Enabled)
        {
            _metrics.ConsumerFaults.Add(1, _metricTag);
        }

        PeerEventPumpLog.HandlerFailed(_logger, _name, kind, peer, _faultPolicy, exception);
        if (_faultPolicy != PeerEventPumpFaultPolicy.FaultPump || _fault is not null)
        {
            return;
        }

        // Fault the pump: refuse everything, drop what is queued, and queue a Removed for every peer the handler saw added.
        _fault = exception;
        var discarded = 0;
        System.Collections.Generic.List<DroppedMessage>? reports = null;
        lock (_lock)
        {
            _accepting = false;
            foreach (var handle in new System.Collections.Generic.List<PeerHandle<TPeer, TMessage>>(_connected.Values))
            {
                Volatile.Write(ref handle.ProducerState, Disconnected);
                handle.Quota?.Waiters?.ReleaseAll();
            }

            _connected.Clear();
            while (_ready.First is { } ready)
            {
                _ready.Remove(ready);
            }

            _roomWaiters.ReleaseAll();

            // Drop what is queued (nothing more can be: producers append under this lock), then queue the Removed events.
            // The discarded messages are taken, as far as the counts go, and go to the drop callback once the lock is released.
            while (_loop.Reader.TryTake(out var queued))
            {
                if (queued.Kind == (int)PeerEventKind.Message)
                {
                    discarded++;
                    (reports ??= new System.Collections.Generic.List<DroppedMessage>()).Add(new DroppedMessage(queued.Handle, queued.Message, DropReason.Fault));
                }
            }

            Volatile.Write(ref _loop.Taken, _loop.Taken + discarded);
            if (discarded > 0 && _metrics.Queued.Enabled)
            {
                _metrics.Queued.Add(-discarded, _metricTag);
            }

            for (var handle = _loop.Live.First; handle is not null; handle = IntrusiveList<PeerHandle<TPeer, TMessage>, PeerHandleLinks<TPeer, TMessage>>.NextOf(handle))
            {
                _queue.Enqueue(new PeerEvent<TPeer, TMessage>(PeerEventKind.Removed, handle, default!));
            }
        }

        PeerEventPumpLog.Faulted(_logger, _name, discarded, _loop.LiveCount, exception);
        if (reports is not null)
        {
            // On the loop, before it delivers the Removed events and completes: every dropped message is reported before Completion.
            foreach (var report in reports)
            {
                ReportDropped(in report);
            }
        }
    }

    /// <summary>Called under the lock when the loop is done for good.</summary>
    private void Finish()
    {
        Debug.Assert(_loop.Live.First is null, "Every added peer has been removed before the pump completes.");
        StopWatchdogLocked();
        if (_fault is not null)
        {
            _completion.TrySetException(_fault);
        }
        else
        {
            _completion.TrySetResult(true);
        }
    }

    private void LinkLive(PeerHandle<TPeer, TMessage> handle)
    {
        var loop = _loop;
        handle.LoopLive = true;
        loop.Live.AddLast(handle);
        loop.LiveCount++;
        if (_metrics.LivePeers.Enabled)
        {
            _metrics.LivePeers.Add(1, _metricTag);
        }
    }

    private void UnlinkLive(PeerHandle<TPeer, TMessage> handle)
    {
        handle.LoopLive = false;
        _loop.Live.Remove(handle);
        _loop.LiveCount--;
        if (_metrics.LivePeers.Enabled)
        {
            _metrics.LivePeers.Add(-1, _metricTag);
        }
    }

    private void CountEvent(string kind)
    {
        if (_metrics.Events.Enabled)
        {
            _metrics.Events.Add(1, _metricTag, new System.Collections.Generic.KeyValuePair<string, object?>("event.kind", kind));
        }
    }

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (AggregateException)
        {
            // Callbacks on the handler's token are the handler's own.
        }
    }

    /// <summary>
    /// The loop as a reusable thread-pool work item (starting it costs no allocation), and the loop's own state, touched
    /// only by the one running work item (invariant 1). Kept in its own object, away from the fields producers write, so
    /// that the loop and the producers do not share cache lines.
    /// </summary>
    private sealed class PumpLoop : PoolWorkItem
    {
        private readonly PeerEventPump<TPeer, TMessage> _pump;
        private readonly Action _onHandlerCompleted;

        public PeerEventReader<TPeer, TMessage> Reader;
        public PeerEvent<TPeer, TMessage> Current;
        public ValueTask HandlerInFlight;

        /// <summary>Messages taken from the queue (delivered or not); written by the loop, read by producers when the queue looks full.</summary>
        public long Taken;

        /// <summary>Set by a producer that is about to wait for room; the loop then wakes waiters as it takes messages.</summary>
        public int RoomWanted;

        /// <summary>With <see cref="PeerEventPumpOptions.PerPeerCapacity"/>: the loop counts each handle's messages it takes.</summary>
        public readonly bool CountsPerPeer;

        /// <summary>With <see cref="PeerEventPumpOptions.HandlerStallThreshold"/>: the loop stamps each consumer call for the watchdog.</summary>
        public readonly bool Watched;
        public readonly CoarseClock Clock;

        // The consumer call in progress, for the watchdog (which reads them on its timer): written before the call, in this
        // order, CallStartedAt last; CallStartedAt is NoCall between calls.
        public PeerHandle<TPeer, TMessage>? CallHandle;
        public int CallType;
        public long CallStartedAt = NoCall;
        public IntrusiveList<PeerHandle<TPeer, TMessage>, PeerHandleLinks<TPeer, TMessage>> Live;
        public int LiveCount;

        public PumpLoop(PeerEventPump<TPeer, TMessage> pump)
        {
            _pump = pump;
            // Under a mode that drops queued messages, producers race the loop for each message slot.
            Reader = new PeerEventReader<TPeer, TMessage>(pump._queue, claim: pump._fullMode is PeerEventPumpFullMode.DropOldest or PeerEventPumpFullMode.DropNewest);
            _onHandlerCompleted = pump.OnHandlerCompleted;
            Handler = pump._handler;
            Token = pump._abort.Token;
            CountsPerPeer = pump._perPeerCapacity != int.MaxValue;
            Watched = pump._stallThreshold is not null;
            Clock = new CoarseClock(pump._time);
        }

        public IPeerEventConsumer<TPeer, TMessage> Handler { get; }

        public CancellationToken Token { get; }

        public void Start() => Dispatch(flowContext: false);

        public void AwaitHandler() => ContinueWhenCompleted(ref HandlerInFlight, _onHandlerCompleted);

        protected override void Execute() => _pump.Drain();
    }
}
