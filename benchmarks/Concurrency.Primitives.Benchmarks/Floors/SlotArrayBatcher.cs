using System;
using System.Threading;
using System.Threading.Tasks;
using System.Threading.Tasks.Sources;

namespace Concurrency.Primitives.Benchmarks.Floors;

/// <summary>
/// The batcher floor, for the tables only: about the least work that can hand awaited items from a caller to dispatch
/// loops and back. A submit takes the next slot of a preallocated ring (one atomic increment) and the slot itself is
/// the caller's awaitable; up to <c>loops</c> thread-pool loops claim runs of up to the batch size and answer them.
/// It keeps none of the guarantees a batcher owes its callers: no back-pressure (the ring must be larger than the
/// number of items in flight), no cancellation, deadlines, fault sweep, dispatch timeout, shutdown or re-entrancy
/// check, and no time trigger.
/// </summary>
internal sealed class SlotArrayBatcher
{
    private readonly Slot[] _slots;
    private readonly int _mask;
    private readonly int _batchSize;
    private readonly int _loops;
    private readonly Action<Slot[], long, int, int> _dispatch;
    private readonly Action<object?> _runLoop;
    private long _tail;
    private long _head;
    private int _running;

    /// <param name="dispatch">Answers a run: the ring, the index of its first item, its length, and the ring's index mask.</param>
    /// <param name="capacity">At least the number of items in flight at once.</param>
    /// <param name="batchSize">The most items one dispatch is handed.</param>
    /// <param name="loops">How many dispatch loops may run at once.</param>
    public SlotArrayBatcher(Action<Slot[], long, int, int> dispatch, int capacity, int batchSize, int loops)
    {
        var size = 1;
        while (size < capacity)
        {
            size <<= 1;
        }

        _slots = new Slot[size];
        for (var i = 0; i < size; i++)
        {
            _slots[i] = new Slot();
        }

        _mask = size - 1;
        _batchSize = batchSize;
        _loops = loops;
        _dispatch = dispatch;
        _runLoop = _ => RunLoop();
    }

    public ValueTask<int> SubmitAsync(int value)
    {
        var index = Interlocked.Increment(ref _tail) - 1;
        var slot = _slots[index & _mask];
        var version = slot.Version;
        slot.Value = value;
        Volatile.Write(ref slot.Sequence, index + 1); // published
        if (Volatile.Read(ref _running) < _loops)
        {
            TryStartLoop();
        }

        return new ValueTask<int>(slot, version);
    }

    private void TryStartLoop()
    {
        if (TryTakeLoopSlot())
        {
            ThreadPool.UnsafeQueueUserWorkItem(_runLoop, null, preferLocal: false);
        }
    }

    private void RunLoop()
    {
        while (true)
        {
            var head = Volatile.Read(ref _head);
            var tail = Volatile.Read(ref _tail);
            if (head >= tail)
            {
                // Leave, then look again: a submit that read the old count after its increment is seen here.
                Interlocked.Decrement(ref _running);
                if (Volatile.Read(ref _tail) > Volatile.Read(ref _head) && TryTakeLoopSlot())
                {
                    continue;
                }

                return;
            }

            var count = (int)Math.Min(_batchSize, tail - head);
            if (Interlocked.CompareExchange(ref _head, head + count, head) != head)
            {
                continue;
            }

            for (var i = 0; i < count; i++)
            {
                var slot = _slots[(head + i) & _mask];
                var spinner = default(SpinWait);
                while (Volatile.Read(ref slot.Sequence) != head + i + 1)
                {
                    spinner.SpinOnce(-1); // its submit has taken the index and is about to publish it
                }
            }

            _dispatch(_slots, head, count, _mask);
        }
    }

    /// <summary>Counts one more running loop, unless <c>loops</c> already run.</summary>
    private bool TryTakeLoopSlot()
    {
        var running = Volatile.Read(ref _running);
        while (running < _loops)
        {
            var seen = Interlocked.CompareExchange(ref _running, running + 1, running);
            if (seen == running)
            {
                return true;
            }

            running = seen;
        }

        return false;
    }

    /// <summary>One ring slot: the item, its publication mark, and the caller's wait.</summary>
    internal sealed class Slot : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };

        public int Value;

        public long Sequence;

        public short Version => _core.Version;

        public void SetResult(int result) => _core.SetResult(result);

        public int GetResult(short token)
        {
            var result = _core.GetResult(token);
            _core.Reset();
            return result;
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
