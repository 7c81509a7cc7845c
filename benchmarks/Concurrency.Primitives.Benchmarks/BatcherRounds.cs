using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// The Batcher class's shape, round after round in one process, for quick comparisons of two builds: each round submits
/// 100,000 items while the loops cut and answer them, then reads every answer (as <see cref="BatcherBenchmarks"/> does),
/// and its time per item is recorded. Prints the median, least and most of the second half of the rounds, and the thread
/// pool's work items run per item over them (a continuation or a loop start each: where hops go). Per-process
/// medians of this harness move by up to 2× on a shared 2-core machine: compare two builds over many processes,
/// interleaved (<c>-- rounds ours|floor|handrolled BATCHSIZE DISPATCHES [ROUNDS [CALLERS]]</c>; with CALLERS, the callers class's
/// shape instead: that many concurrent callers each awaiting its own item before the next). The comparisons themselves
/// come from the BenchmarkDotNet classes. With <c>CONCURRENCY_PRIMITIVES_ROUNDS_EACH=1</c> it also prints every round:
/// the thread it began and ended on, its time per item split into the submits and the reads (without callers) with how many
/// reads found their answer pending (the reader had caught up with the loops), and for
/// ours its batches (counted from the batch-size histogram, which this mode enables: one record per batch), then the
/// process's processor time per item over the round (at about twice the time per item, both cores were busy throughout:
/// no time went to threads waiting to be woken) and the pool's thread count.
/// With <c>CONCURRENCY_PRIMITIVES_ROUNDS_FROM_MAIN=1</c> (without callers) each round is called and waited for on the main
/// thread, as BenchmarkDotNet's engine calls an async benchmark: the submits then run off the pool, every round.
/// </summary>
internal static class BatcherRounds
{
    private const int Items = 100_000;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length < 3 || args[0] is not ("ours" or "floor" or "handrolled")
            || !int.TryParse(args[1], out var batchSize) || batchSize < 1
            || !int.TryParse(args[2], out var dispatches) || dispatches < 1)
        {
            await Console.Error.WriteLineAsync("usage: rounds ours|floor|handrolled BATCHSIZE DISPATCHES [ROUNDS [CALLERS]]");
            return 2;
        }

        var isOurs = args[0] == "ours";
        var isHand = args[0] == "handrolled";
        var hand = BatcherCases.HandRolled(batchSize, dispatches);
        long workItems = 0;
        var rounds = args.Length > 3 && int.TryParse(args[3], out var r) && r >= 2 ? r : 40;
        var callers = args.Length > 4 && int.TryParse(args[4], out var c) && c >= 1 ? new Task<long>[c] : null;
        var ours = BatcherCases.Ours(batchSize, dispatches, callers is null ? Items : 4096);
        var floor = BatcherCases.Floor(Items, batchSize, dispatches);
        var pending = new ValueTask<int>[Items];
        var times = new List<double>();
        var perRound = Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_ROUNDS_EACH") == "1";
        var fromMain = callers is null && Environment.GetEnvironmentVariable("CONCURRENCY_PRIMITIVES_ROUNDS_FROM_MAIN") == "1";
        long batches = 0;
        using var listener = new MeterListener();
        if (perRound && isOurs)
        {
            // Each round's dispatches, from the batch-size histogram (enabled only in this mode: a record per batch).
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "concurrency.primitives.batcher.batch.size")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<int>((_, _, _, _) => Interlocked.Increment(ref batches));
            listener.Start();
        }

        for (var round = 0; round < rounds; round++)
        {
            var batches0 = Interlocked.Read(ref batches);
            var start = Stopwatch.GetTimestamp();
            var submitted = start;
            var threadAtStart = Environment.CurrentManagedThreadId;
            var waits = 0;
            var work0 = ThreadPool.CompletedWorkItemCount;
            var cpu0 = perRound ? Environment.CpuUsage.TotalTime : default;
            long sum = 0;
            if (callers is not null)
            {
                sum = isHand ? await BatcherCases.RunCallersAsync(hand, static (b, i) => new ValueTask<int>(b.SubmitAsync(i)), callers, Items, static (caller, share) => caller * share)
                    : isOurs
                    ? await BatcherCases.RunCallersAsync(ours, static (b, i) => b.SubmitAsync(i), callers, Items, static (caller, share) => caller * share)
                    : await BatcherCases.RunCallersAsync(floor, static (b, i) => b.SubmitAsync(i), callers, Items, static (caller, share) => caller * share);
            }
            else if (fromMain)
            {
                // As BenchmarkDotNet runs an async benchmark: its engine calls it on the main thread and blocks there for it,
                // so every round's submits run on that (non-pool) thread and only the reads resume on the pool.
#pragma warning disable VSTHRD002, VSTHRD103 // the harness's main thread blocks for each round, as the benchmark engine does
                (sum, submitted, waits) = SubmitAndReadAsync(isHand, isOurs, hand, ours, floor, pending, countWaits: perRound).GetAwaiter().GetResult();
#pragma warning restore VSTHRD002, VSTHRD103
            }
            else
            {
                (sum, submitted, waits) = await SubmitAndReadAsync(isHand, isOurs, hand, ours, floor, pending, countWaits: perRound);
            }

            times.Add(Stopwatch.GetElapsedTime(start).TotalNanoseconds / Items);
            if (perRound)
            {
                var submit = Stopwatch.GetElapsedTime(start, submitted).TotalNanoseconds / Items;
                var split = callers is null ? $" (submit {submit:0.0}, read {times[^1] - submit:0.0}; {waits} reads found their answer pending)" : "";
                var dispatched = Interlocked.Read(ref batches) - batches0;
                var shape = isOurs ? $", {dispatched} batches ({(dispatched == 0 ? 0 : (double)Items / dispatched):0.0} items each)" : "";
                var cpu = (Environment.CpuUsage.TotalTime - cpu0).TotalNanoseconds / Items;
                Console.WriteLine($"round {round} (thread {threadAtStart} -> {Environment.CurrentManagedThreadId}): {times[^1]:0.0} ns/item{split}{shape}; cpu {cpu:0.0} ns/item, {ThreadPool.ThreadCount} pool threads");
            }

            if (round >= rounds / 2)
            {
                workItems += ThreadPool.CompletedWorkItemCount - work0;
            }

            if (sum != (long)Items * (Items - 1) / 2)
            {
                throw new InvalidOperationException($"Round {round}: the answers summed to {sum}.");
            }
        }

        await ours.DisposeAsync();
        await hand.DisposeAsync();
        var measured = times.Skip(rounds / 2).OrderBy(t => t).ToList();
        Console.WriteLine(
            $"rounds {args[0]} {batchSize}x{dispatches}{(callers is null ? "" : $", {callers.Length} callers")}: median {measured[measured.Count / 2]:0.0} least {measured[0]:0.0} most {measured[^1]:0.0} ns/item " +
            $"(the last {measured.Count} of {rounds} rounds; {(double)workItems / Items / measured.Count:0.00} pool work items per item)");
        return 0;
    }

    /// <summary>
    /// One round without callers: every item submitted, then every answer read. Returns the sum, when the submits ended, and
    /// (with <paramref name="countWaits"/>, which the per-round print asks for; otherwise 0, no extra look per read) how many
    /// reads found their answer pending.
    /// </summary>
    private static async Task<(long Sum, long Submitted, int Waits)> SubmitAndReadAsync(
        bool isHand, bool isOurs, HandRolled.ChannelTcsBatcher<int, int> hand, Batcher<int, int> ours, Floors.SlotArrayBatcher floor, ValueTask<int>[] pending, bool countWaits)
    {
        for (var i = 0; i < Items; i++)
        {
            pending[i] = isHand ? new ValueTask<int>(hand.SubmitAsync(i)) : isOurs ? ours.SubmitAsync(i) : floor.SubmitAsync(i);
        }

        var submitted = Stopwatch.GetTimestamp();
        long sum = 0;
        var waits = 0;
        for (var i = 0; i < Items; i++)
        {
            if (countWaits && !pending[i].IsCompleted)
            {
                waits++; // the reader has caught up with the loops: this read parks
            }

            sum += await pending[i];
            pending[i] = default;
        }

        return (sum, submitted, waits);
    }
}
