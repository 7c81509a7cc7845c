using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Benchmarks.Floors;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// Where a batcher's time goes per item, phase by phase, without the phases overlapping: 100,000 items are submitted
/// while the first dispatch of the round is held (submit), then the dispatch is let go and the loop cuts, dispatches,
/// answers and releases every item (drain), then every result is read (await, all answered). One dispatch, the
/// benchmarks' trivial answer. A Stopwatch harness for profiles (<c>-- phases ours|floor|both BATCHSIZE [ROUNDS]</c>); the
/// comparisons themselves come from the BenchmarkDotNet classes. Prints the median of the second half of the rounds.
/// <c>both</c> runs ours and the floor in the same process, a round of each in turn (ROUNDS of each): the process-wide
/// effects (which way the JIT compiled the hot paths, where the objects lie, what the VM's other tenants do) then weigh
/// on both alike, and a change of a few nanoseconds per item shows where separate processes scatter by half as much again.
/// <c>CONCURRENCY_PRIMITIVES_PHASES_ITEMS=n</c> submits n items a round instead (2,000 fit the caches: what is left is
/// the code's own cost, not the memory traffic).
/// </summary>
internal static class BatcherPhases
{
    // 100,000 unless CONCURRENCY_PRIMITIVES_PHASES_ITEMS says otherwise (a smaller count fits the caches: how much of a
    // phase's time is memory traffic).
    private static readonly int Items = int.TryParse(Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_PHASES_ITEMS"), out var items) && items > 0 ? items : 100_000;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 2 || args[0] is not ("ours" or "floor" or "both") || !int.TryParse(args[1], out var batchSize) || batchSize < 1)
        {
            await Console.Error.WriteLineAsync("usage: phases ours|floor|both BATCHSIZE [ROUNDS]");
            return 2;
        }

        var rounds = args.Length > 2 && int.TryParse(args[2], out var r) && r >= 2 ? r : 40;
        var run = new Round();
        var ours = new Batcher<int, int>(
            (batch, _) =>
            {
                run.HoldIfFirst();
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i]);
                }

                run.Answered(batch.Count);
                return default;
            },
            new BatcherOptions { MaxBatchSize = batchSize, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, Capacity = Items });
        var floor = new SlotArrayBatcher(
            (slots, first, count, mask) =>
            {
                run.HoldIfFirst();
                for (var i = 0; i < count; i++)
                {
                    var slot = slots[(first + i) & mask];
                    slot.SetResult(slot.Value);
                }

                run.Answered(count);
            },
            Items,
            batchSize,
            1);

        var pending = new ValueTask<int>[Items];
        var both = args[0] == "both";
        var lists = new[] { (new List<double>(), new List<double>(), new List<double>()), (new List<double>(), new List<double>(), new List<double>()) };
        for (var round = 0; round < rounds * (both ? 2 : 1); round++)
        {
            var useOurs = both ? round % 2 == 0 : args[0] == "ours";
            var (submit, drain, read) = lists[useOurs ? 0 : 1];
            run.Reset();
            var start = Stopwatch.GetTimestamp();
            if (useOurs)
            {
                SubmitAll(ours, pending);
            }
            else
            {
                SubmitAll(floor, pending);
            }

            var submitted = Stopwatch.GetTimestamp();
            var drainStart = run.Release();
            var drained = run.WaitForAll();
            var readStart = Stopwatch.GetTimestamp();
            long sum = 0;
            for (var i = 0; i < Items; i++)
            {
                sum += await pending[i];
                pending[i] = default;
            }

            var readEnd = Stopwatch.GetTimestamp();
            if (sum != (long)Items * (Items - 1) / 2)
            {
                throw new InvalidOperationException($"Round {round}: the answers summed to {sum}.");
            }

            submit.Add(PerItem(start, submitted));
            drain.Add(PerItem(drainStart, drained));
            read.Add(PerItem(readStart, readEnd));
        }

        await ours.DisposeAsync();
        foreach (var (name, (submit, drain, read)) in new[] { ("ours", lists[0]), ("floor", lists[1]) })
        {
            if (submit.Count > 0)
            {
                Console.WriteLine($"phases {name} batch size {batchSize}: submit {Median(submit):0.0} drain {Median(drain):0.0} await {Median(read):0.0} ns/item (median of the last {rounds - (rounds / 2)} of {rounds} rounds)");
            }
        }
        return 0;
    }

    // The submit loops live in methods of their own, called once a round, so that they are compiled as every other hot
    // method is (tier 1 after 30 rounds), not only as an on-stack replacement of the harness's loop.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SubmitAll(Batcher<int, int> batcher, ValueTask<int>[] pending)
    {
        for (var i = 0; i < pending.Length; i++)
        {
            pending[i] = batcher.SubmitAsync(i);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SubmitAll(SlotArrayBatcher floor, ValueTask<int>[] pending)
    {
        for (var i = 0; i < pending.Length; i++)
        {
            pending[i] = floor.SubmitAsync(i);
        }
    }

    private static double PerItem(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalNanoseconds / Items;

    private static double Median(List<double> values)
    {
        var measured = values.Skip(values.Count / 2).OrderBy(v => v).ToList();
        return measured[measured.Count / 2];
    }

    /// <summary>One round's hold on its first dispatch, and its count of answered items.</summary>
    private sealed class Round
    {
        private readonly ManualResetEventSlim _gate = new(false);
        private int _answered;
        private long _lastAnswer;
        private volatile bool _holdNext;
        private volatile bool _held;

        public void Reset()
        {
            _answered = 0;
            _held = false;
            _gate.Reset();
            _holdNext = true;
        }

        /// <summary>In the dispatch: holds the round's first one until <see cref="Release"/>.</summary>
        public void HoldIfFirst()
        {
            if (_holdNext)
            {
                _holdNext = false;
                _held = true;
                _gate.Wait();
            }
        }

        public void Answered(int count)
        {
            if ((_answered += count) == Items)
            {
                Volatile.Write(ref _lastAnswer, Stopwatch.GetTimestamp());
            }
        }

        /// <summary>Waits until the first dispatch is held (every item is submitted by then), lets it go; returns when.</summary>
        public long Release()
        {
            var spinner = default(SpinWait);
            while (!_held)
            {
                spinner.SpinOnce();
            }

            var now = Stopwatch.GetTimestamp();
            _gate.Set();
            return now;
        }

        /// <summary>Waits until every item is answered; returns when the last answer was given.</summary>
        public long WaitForAll()
        {
            var spinner = default(SpinWait);
            while (Volatile.Read(ref _answered) != Items)
            {
                spinner.SpinOnce();
            }

            return Volatile.Read(ref _lastAnswer);
        }
    }
}
