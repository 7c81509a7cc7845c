using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Records what a pump's handler sees: each peer's history and the global order. Can hold the loop on a gate, throw on
/// chosen events, and signal once a number of events has been handled. Checks that calls never overlap.
/// </summary>
public sealed class RecordingPeerHandler<TPeer> : IPeerEventConsumer<TPeer, string>
    where TPeer : notnull
{
    private readonly object _gate = new();
    private readonly Dictionary<TPeer, List<string>> _histories = new();
    private readonly List<string> _order = new();
    private readonly List<(int Count, TaskCompletionSource Signal)> _waiters = new();
    private readonly TaskCompletionSource _firstEntered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inCall;

    /// <summary>When set, every call waits for this gate first.</summary>
    public Task? Hold { get; set; }

    /// <summary>Events ("added", "removed" or a message text) on which the handler throws.</summary>
    public HashSet<string> ThrowOn { get; } = new();

    public int Overlaps { get; private set; }

    public IReadOnlyList<string> Order
    {
        get
        {
            lock (_gate)
            {
                return _order.ToList();
            }
        }
    }

    public IReadOnlyList<string> HistoryOf(TPeer peer)
    {
        lock (_gate)
        {
            return _histories.TryGetValue(peer, out var history) ? history.ToList() : new List<string>();
        }
    }

    /// <summary>Completes when the loop is inside its first handler call (before <see cref="Hold"/> is awaited).</summary>
    public Task FirstCallEntered => _firstEntered.Task;

    public Task WhenHandled(int count)
    {
        lock (_gate)
        {
            if (_order.Count >= count)
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((count, signal));
            return signal.Task;
        }
    }

    public ValueTask OnAddedAsync(TPeer peer, CancellationToken cancellationToken) => RecordAsync(peer, "added");

    public ValueTask OnMessageAsync(TPeer peer, string message, CancellationToken cancellationToken) => RecordAsync(peer, message);

    public ValueTask OnRemovedAsync(TPeer peer, CancellationToken cancellationToken) => RecordAsync(peer, "removed");

    private async ValueTask RecordAsync(TPeer peer, string what)
    {
        if (Interlocked.Increment(ref _inCall) != 1)
        {
            Overlaps++;
        }

        try
        {
            _firstEntered.TrySetResult();
            if (Hold is { } hold)
            {
                await hold;
            }

            List<(int Count, TaskCompletionSource Signal)> ready;
            lock (_gate)
            {
                if (!_histories.TryGetValue(peer, out var history))
                {
                    _histories[peer] = history = new List<string>();
                }

                history.Add(what);
                _order.Add($"{peer}:{what}");
                ready = _waiters.Where(w => _order.Count >= w.Count).ToList();
                _waiters.RemoveAll(w => ready.Contains(w));
            }

            foreach (var waiter in ready)
            {
                waiter.Signal.TrySetResult();
            }

            if (ThrowOn.Contains(what))
            {
                throw new InvalidOperationException($"handler fault on {what}");
            }
        }
        finally
        {
            Interlocked.Decrement(ref _inCall);
        }
    }
}
