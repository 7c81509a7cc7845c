using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Fault injection across threads: dispatches that throw at a random position, forget items, or hang until their
/// token is cancelled; callers that cancel; a shutdown in the middle of every round. After every round: each item was
/// completed exactly once (never answered twice by the dispatch, and a caller's result is the one the dispatch set)
/// and every caller returned within its bound plus a margin.
/// </summary>
public sealed class BatcherStressTests
{
    private const int BaseBatches = 10_000;
    private static readonly TimeSpan CallerBound = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Margin = TimeSpan.FromSeconds(3);
    private readonly ITestOutputHelper _output;

    public BatcherStressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task FaultInjection_EveryItemCompletesExactlyOnce_AndEveryCallerReturnsInTime()
    {
        var target = BaseBatches * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var clock = Stopwatch.StartNew();
        var rounds = await StressSettings.RunRoundsAsync(
            seed, target, () => Volatile.Read(ref totals.Batches), roundSeed => RunRoundAsync(roundSeed, totals), TimeSpan.FromMinutes(2));

        _output.WriteLine(
            $"[stress] Batcher: {totals.Batches} batches in {rounds} rounds (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.Items} items, {totals.Results} results, {totals.Faulted} faulted, {totals.Forgotten} forgotten (swept), " +
            $"{totals.TimedOut} released by timeout, {totals.Cancelled} cancelled, {totals.Refused} refused after shutdown, " +
            $"{totals.Hangs} hung dispatches, slowest caller {totals.SlowestMs} ms, 0 invariant violations");
        totals.Faulted.Should().BeGreaterThan(0);
        totals.Forgotten.Should().BeGreaterThan(0);
        totals.Cancelled.Should().BeGreaterThan(0);
        totals.TimedOut.Should().BeGreaterThan(0);
    }

    [Fact]
    public async Task FaultInjectionWithCoalescing_EveryCallerCompletesExactlyOnce_WithItsOwnItemsAnswer()
    {
        // As above, with coalescing on and 30 % of the callers asking for an item a recent caller asked for.
        var target = BaseBatches * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var clock = Stopwatch.StartNew();
        var rounds = await StressSettings.RunRoundsAsync(
            seed, target, () => Volatile.Read(ref totals.Batches), roundSeed => RunRoundAsync(roundSeed, totals, coalesce: true), TimeSpan.FromMinutes(2));

        _output.WriteLine(
            $"[stress] Batcher with coalescing: {totals.Batches} batches in {rounds} rounds (seed {seed}) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.Items} items ({totals.Duplicates} duplicates of a recent item), {totals.Results} results from {totals.SlotAnswers} slot answers, " +
            $"{totals.Faulted} faulted, {totals.Forgotten} forgotten (swept), {totals.TimedOut} released by timeout, {totals.Cancelled} cancelled, " +
            $"{totals.Refused} refused after shutdown, {totals.Hangs} hung dispatches, slowest caller {totals.SlowestMs} ms, 0 invariant violations");
        totals.Results.Should().BeGreaterThan(totals.SlotAnswers, "callers of equal items shared slots");
        totals.Faulted.Should().BeGreaterThan(0);
        totals.Forgotten.Should().BeGreaterThan(0);
        totals.Cancelled.Should().BeGreaterThan(0);
    }

    private static async Task RunRoundAsync(int seed, Totals totals, bool coalesce = false)
    {
        var random = new Random(seed);
        const int ItemsPerRound = 2_000;
        var answered = new int[ItemsPerRound];
        var gotResult = new bool[ItemsPerRound];
        var batcher = new Batcher<int, int>(
            async (batch, token) =>
            {
                Interlocked.Increment(ref totals.Batches);
                int behaviour;
                lock (random)
                {
                    behaviour = random.Next(500);
                }

                if (behaviour == 0)
                {
                    // Hangs until its token is cancelled (at the dispatch timeout), and even then answers nothing.
                    Interlocked.Increment(ref totals.Hangs);
                    var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    using (token.Register(() => cancelled.TrySetResult()))
                    {
                        await cancelled.Task;
                    }

                    return;
                }

                if (behaviour % 3 == 0)
                {
                    await Task.Yield();
                }

                var throwAt = behaviour % 11 == 0 ? behaviour % batch.Count : -1;
                for (var i = 0; i < batch.Count; i++)
                {
                    if (i == throwAt)
                    {
                        throw new InvalidOperationException("injected fault");
                    }

                    if ((behaviour + i) % 13 == 0)
                    {
                        continue; // forgotten
                    }

                    if (batch.TrySetResult(i, batch[i] * 2))
                    {
                        Interlocked.Increment(ref answered[batch[i]]);
                        Interlocked.Increment(ref totals.SlotAnswers);
                    }
                }
            },
            new BatcherOptions<int>
            {
                CoalescingComparer = coalesce ? EqualityComparer<int>.Default : null,
                MaxBatchSize = random.Next(1, 9),
                MaxConcurrency = random.Next(1, 5),
                MaxDelay = random.Next(2) == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(1),
                Capacity = 64,
                Timeout = CallerBound,
                DispatchTimeout = TimeSpan.FromMilliseconds(50),
                ShutdownMode = random.Next(2) == 0 ? BatcherShutdownMode.Drain : BatcherShutdownMode.FailPending,
            });

        var shutdownAt = random.Next(ItemsPerRound / 2, ItemsPerRound);
        var next = -1;
        Task? shutdown = null;
        var workers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            var local = new Random(seed + w + 1);
            int id;
            while ((id = Interlocked.Increment(ref next)) < ItemsPerRound)
            {
                if (id == shutdownAt)
                {
                    shutdown = batcher.CloseAsync(); // a shutdown in the middle
                }

                using var cancel = new CancellationTokenSource();
                var cancellable = local.Next(20) == 0;
                var key = id;
                if (coalesce && local.Next(10) < 3)
                {
                    key = Math.Max(0, id - local.Next(1, 8)); // an item a recent caller asked for
                    Interlocked.Increment(ref totals.Duplicates);
                }

                var started = Stopwatch.GetTimestamp();
                var call = batcher.SubmitAsync(key, cancellable ? cancel.Token : CancellationToken.None);
                if (cancellable)
                {
                    await cancel.CancelAsync();
                }

                Interlocked.Increment(ref totals.Items);
                try
                {
                    var result = await call;
                    Check(result == key * 2, $"caller {id} of item {key} received {result}");
                    gotResult[key] = true;
                    Interlocked.Increment(ref totals.Results);
                }
                catch (BatchDispatchException)
                {
                    Interlocked.Increment(ref totals.Faulted);
                }
                catch (BatchItemNotCompletedException)
                {
                    Interlocked.Increment(ref totals.Forgotten);
                }
                catch (BatchTimeoutException)
                {
                    Interlocked.Increment(ref totals.TimedOut);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref totals.Cancelled);
                }
                catch (ClosedException)
                {
                    Interlocked.Increment(ref totals.Refused);
                }

                var elapsed = Stopwatch.GetElapsedTime(started);
                Check(elapsed <= CallerBound + Margin, $"item {id} returned after {elapsed}, past its bound");
                InterlockedMax(ref totals.SlowestMs, (long)elapsed.TotalMilliseconds);
            }
        })).ToArray();

        await Task.WhenAll(workers); // every caller returned
        await (shutdown ?? batcher.CloseAsync());
        await batcher.DisposeAsync();
        for (var i = 0; i < ItemsPerRound; i++)
        {
            // Without coalescing an item is dispatched once; with it, an item asked for again after its batch was cut is
            // dispatched again (coalescing lasts one batch), so only "a result comes from a dispatch" holds for it.
            Check(coalesce || answered[i] <= 1, $"item {i} was answered {answered[i]} times");
            Check(!gotResult[i] || (coalesce ? answered[i] >= 1 : answered[i] == 1), $"item {i} got a result the dispatch did not set");
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
        {
            current = Volatile.Read(ref target);
        }
    }

    private static void Check(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new InvalidOperationException("Batcher invariant violated: " + invariant);
        }
    }

    private sealed class Totals
    {
        public long Batches;
        public long Items;
        public long Results;
        public long Faulted;
        public long Forgotten;
        public long TimedOut;
        public long Cancelled;
        public long Refused;
        public long Hangs;
        public long SlowestMs;
        public long Duplicates;
        public long SlotAnswers;
    }
}
