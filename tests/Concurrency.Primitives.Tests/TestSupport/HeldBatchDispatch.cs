using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>One dispatch call as a test sees it: the batch's items (a copy), the gate that lets it answer them and return, and the token it was given.</summary>
public sealed record EnteredBatch(int[] Items, TaskCompletionSource Release, CancellationToken Token);

/// <summary>
/// A batcher's dispatch held on gates: it announces each batch it enters, in the order entered, then waits for that
/// batch's gate (or for <see cref="OpenAll"/>) and answers every item with itself. It honours its token: a cancellation
/// ends the wait with <see cref="System.OperationCanceledException"/>, answering nothing. Counts how many run at once.
/// </summary>
public sealed class HeldBatchDispatch
{
    private readonly Channel<EnteredBatch> _entered = Channel.CreateUnbounded<EnteredBatch>();
    private readonly ConcurrentQueue<int[]> _batches = new();
    private readonly TaskCompletionSource _open = Bounded.NewGate();
    private int _running;
    private int _maxRunning;

    /// <summary>Every batch entered so far, in the order entered.</summary>
    public IReadOnlyList<int[]> Batches => _batches.ToArray();

    /// <summary>The most dispatches that were running at once.</summary>
    public int MaxRunning => Volatile.Read(ref _maxRunning);

    /// <summary>The next batch entered (bounded by <see cref="Bounded.HangLimit"/>).</summary>
    public async Task<EnteredBatch> NextAsync() => await _entered.Reader.ReadAsync().AsTask().OrHang();

    /// <summary>From now on no dispatch waits for its gate (those waiting go on at once).</summary>
    public void OpenAll() => _open.TrySetResult();

    /// <summary>The dispatch: pass it (as a method group) to the batcher.</summary>
    public async ValueTask DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken)
    {
        var running = Interlocked.Increment(ref _running);
        for (var seen = Volatile.Read(ref _maxRunning); running > seen; seen = Volatile.Read(ref _maxRunning))
        {
            if (Interlocked.CompareExchange(ref _maxRunning, running, seen) == seen)
            {
                break;
            }
        }

        var items = batch.Items.ToArray();
        var release = Bounded.NewGate();
        _batches.Enqueue(items);
        _entered.Writer.TryWrite(new EnteredBatch(items, release, cancellationToken));
        try
        {
            await Task.WhenAny(release.Task, _open.Task).WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
        }

        for (var i = 0; i < items.Length; i++)
        {
            batch.TrySetResult(i, items[i]);
        }
    }
}
