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
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2213:Disposable fields should be disposed", Justification = "No timer or linked registrations; the handler may still hold its token.")]
    private readonly CancellationTokenSource _abort = new();

    /// <summary>
    /// Stops accepting (connects throw, posts return <see langword="false"/>), disconnects every handle, and waits until the
    /// loop has delivered what was queued and a Removed for every live peer, in the order the peers were added.
    /// </summary>
    /// <param name="cancellationToken">Abandons this wait; the shutdown goes on.</param>
    /// <returns><see cref="Completion"/>, bounded by the caller's token.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CompleteAsync(CancellationToken cancellationToken = default)
    {
        BeginShutdown();
        return Signals.WaitAsync(_completion.Task, cancellationToken);
    }

    /// <summary>
    /// Shuts down as <see cref="CompleteAsync"/> does, waiting at most <see cref="PeerEventPumpOptions.ShutdownTimeout"/>. A handler
    /// fault is not rethrown here: it stays on <see cref="Completion"/>.
    /// </summary>
    /// <returns>A task that completes when the pump has shut down.</returns>
    /// <exception cref="TimeoutException">The loop had not finished in time; the handler's token was cancelled.</exception>
    public async ValueTask DisposeAsync()
    {
        BeginShutdown();
        try
        {
            await Signals.WaitAsync(_completion.Task, _shutdownTimeout, _time, CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            PeerEventPumpLog.ShutdownTimedOut(_logger, _name, _shutdownTimeout);
            CancelQuietly(_abort);
            throw new TimeoutException($"Pump '{_name}' did not finish delivering its events within {_shutdownTimeout}; the handler's token was cancelled.");
        }
        catch (Exception) when (_completion.Task.IsFaulted)
        {
            // The handler's fault is reported by Completion (and was logged); disposal itself succeeded.
        }
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
            PeerEventPumpLog.ShutdownStarted(_logger, _name, _connected.Count);
            foreach (var handle in new System.Collections.Generic.List<PeerHandle<TPeer, TMessage>>(_connected.Values))
            {
                DisconnectLocked(handle);
            }

            _roomWaiters.ReleaseAll();

            // The loop completes the pump once it finds nothing more to deliver.
            schedule = ScheduleLocked();
        }

        if (schedule)
        {
            _loop.Start();
        }
    }

    /// <summary>The loop: drains whole buffers, one event at a time, until nothing is queued; runs as one work item at a time.</summary>
    private void Drain()
    {
        var loop = _loop;
        while (true)
        {
            if (loop.Index == loop.Draining.Count && !Refill())
            {
                return;
            }

            ValueTask handled;
            try
            {
                handled = Deliver(ref loop.Draining.Items[loop.Index++]);
            }
            catch (Exception exception)
            {
                handled = new ValueTask(Task.FromException(exception));
            }

            if (!handled.IsCompleted)
            {
                loop.HandlerInFlight = handled;
                loop.AwaitHandler();
                return;
            }

            Observe(handled);
        }
    }

    /// <summary>An asynchronous handler call completed: observe it, then go on draining as a new work item (never on the handler's thread).</summary>
    private void OnHandlerCompleted()
    {
        var handled = _loop.HandlerInFlight;
        _loop.HandlerInFlight = default;
        Observe(handled);
        _loop.Start();
    }

    private void Observe(ValueTask handled)
    {
        try
        {
            handled.GetAwaiter().GetResult(); // completed: consumes it, never blocks
        }
        catch (Exception exception)
        {
            OnHandlerFault(exception, in _loop.Draining.Items[_loop.Index - 1]);
        }
    }

    /// <summary>Swaps the producers' buffer in; returns <see langword="false"/> (and unschedules the loop) when nothing is queued.</summary>
    private bool Refill()
    {
        var loop = _loop;
        loop.Draining.Clear();
        loop.Index = 0;
        lock (_lock)
        {
            if (_pending.Count == 0)
            {
                _scheduled = false;
                if (!_accepting)
                {
                    Finish();
                }

                return false;
            }

            (_pending, loop.Draining) = (loop.Draining, _pending);
            var freed = _pendingMessages;
            _pendingMessages = 0;
            if (freed > 0 && PeerEventPumpMetrics.Queued.Enabled)
            {
                PeerEventPumpMetrics.Queued.Add(-freed, _metricTag);
            }

            _roomWaiters.Wake(freed);
        }

        return true;
    }

    private ValueTask Deliver(ref PeerEvent<TPeer, TMessage> next)
    {
        var handle = next.Handle;
        var handler = _loop.Handler;
        var token = _loop.Token;
        switch (next.Kind)
        {
            case PeerEventKind.Added:
                Debug.Assert(!handle.LoopLive, "Added is queued once per handle.");
                LinkLive(handle);
                Count("added");
                return handler.OnAddedAsync(handle.Peer, token);
            case PeerEventKind.Message when handle.LoopLive:
                Count("message");
                return handler.OnMessageAsync(handle.Peer, next.Message, token);
            case PeerEventKind.Removed when handle.LoopLive:
                UnlinkLive(handle);
                Count("removed");
                return handler.OnRemovedAsync(handle.Peer, token);
            default:
                // A dropped message, or (after a fault) an event of a peer already removed: nothing to deliver.
                return default;
        }
    }

    private void OnHandlerFault(Exception exception, in PeerEvent<TPeer, TMessage> failed)
    {
        var kind = failed.Kind.ToString();
        var peer = failed.Handle?.Peer.ToString() ?? string.Empty;
        if (PeerEventPumpMetrics.HandlerFaults.Enabled)
        {
            PeerEventPumpMetrics.HandlerFaults.Add(1, _metricTag);
        }

        PeerEventPumpLog.HandlerFailed(_logger, _name, kind, peer, _faultPolicy, exception);
        if (_faultPolicy != PeerHandlerFaultPolicy.FaultPump || _fault is not null)
        {
            return;
        }

        // Fault the pump: refuse everything, drop what is queued, and queue a Removed for every peer the handler saw added.
        _fault = exception;
        PeerEventPumpLog.Faulted(_logger, _name, _loop.LiveCount, exception);
        lock (_lock)
        {
            _accepting = false;
            foreach (var handle in new System.Collections.Generic.List<PeerHandle<TPeer, TMessage>>(_connected.Values))
            {
                Volatile.Write(ref handle.ProducerState, Disconnected);
            }

            _connected.Clear();
            _pending.Clear();
            _pendingMessages = 0;
            _roomWaiters.ReleaseAll();

            for (var handle = _loop.Live.First; handle is not null; handle = IntrusiveList<PeerHandle<TPeer, TMessage>, PeerHandleLinks<TPeer, TMessage>>.NextOf(handle))
            {
                _pending.Add(new PeerEvent<TPeer, TMessage>(PeerEventKind.Removed, handle, default!));
            }
        }

        // Skip the rest of the buffer being drained; the Removed events come next.
        _loop.Index = _loop.Draining.Count;
    }

    /// <summary>Called under the lock when the loop is done for good.</summary>
    private void Finish()
    {
        Debug.Assert(_loop.Live.First is null, "Every added peer has been removed before the pump completes.");
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
        if (PeerEventPumpMetrics.LivePeers.Enabled)
        {
            PeerEventPumpMetrics.LivePeers.Add(1, _metricTag);
        }
    }

    private void UnlinkLive(PeerHandle<TPeer, TMessage> handle)
    {
        handle.LoopLive = false;
        _loop.Live.Remove(handle);
        _loop.LiveCount--;
        if (PeerEventPumpMetrics.LivePeers.Enabled)
        {
            PeerEventPumpMetrics.LivePeers.Add(-1, _metricTag);
        }
    }

    private void Count(string kind)
    {
        if (PeerEventPumpMetrics.Events.Enabled)
        {
            PeerEventPumpMetrics.Events.Add(1, _metricTag, new System.Collections.Generic.KeyValuePair<string, object?>("event.kind", kind));
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

        public PeerEventBuffer<TPeer, TMessage> Draining = new();
        public int Index;
        public ValueTask HandlerInFlight;
        public IntrusiveList<PeerHandle<TPeer, TMessage>, PeerHandleLinks<TPeer, TMessage>> Live;
        public int LiveCount;

        public PumpLoop(PeerEventPump<TPeer, TMessage> pump)
        {
            _pump = pump;
            _onHandlerCompleted = pump.OnHandlerCompleted;
            Handler = pump._handler;
            Token = pump._abort.Token;
        }

        public IPeerEventHandler<TPeer, TMessage> Handler { get; }

        public CancellationToken Token { get; }

        public void Start() => Dispatch(flowContext: false);

        public void AwaitHandler() => ContinueWhenCompleted(ref HandlerInFlight, _onHandlerCompleted);

        protected override void Execute() => _pump.Drain();
    }
}
