using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Batching;

/// <summary>
/// Arrivals stamped with clock epochs (the batcher's hot path where the system clock, MaxDelay zero and a Timeout of a
/// second or more allow it; forced here on a stepped clock). Submits race the sweep's epoch advances, a cut reads the
/// epoch of the item it cuts while the sweep may end that epoch, and the sweep's walk reckons each caller's bound from
/// its epoch's end: no caller may be released before its bound.
/// </summary>
public sealed class BatcherArrivalEpochSystematicTests
{
    private const uint Iterations = 1_000;

    private readonly ITestOutputHelper _output;

    public BatcherArrivalEpochSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Timeouts_SubmitsRacingEpochAdvances_ReleaseEveryCallerNoEarlierThanItsBound()
    {
        CoyoteHarness.Explore(_output, "Batcher arrival epochs, submits racing the sweep's advances", Iterations, SubmitsRacingEpochAdvancesScenarioAsync, interleaveVolatiles: true).ShouldHoldEverywhere();
    }

    [Fact]
    public void Timeouts_CutsRacingEpochAdvances_BoundEveryBatchNoEarlierThanItsLastCallersBound()
    {
        CoyoteHarness.Explore(_output, "Batcher arrival epochs, cuts racing the sweep's advances", Iterations, CutsRacingEpochAdvancesScenarioAsync, interleaveVolatiles: true).ShouldHoldEverywhere();
    }

    /// <summary>
    /// Batches of up to two, one loop, a Timeout of 1.28 s (10 ms epochs). Item 0 is dispatched at once and held until
    /// the clock passes 50 ms; two callers submit from tasks of their own meanwhile, each reading the clock just before
    /// and just after its submit, and are queued; when item 0 is let go they are cut, one batch or two, into a dispatch
    /// that answers nobody. The scenario is the only thing that moves the clock: 3 ms at a time (timers due by then fire
    /// inline), skipping the quiet middle once both have submitted and their epochs have ended. After each step it looks at every caller, so a
    /// release is seen at the reading it happened at (or a step later, if it raced the look). A caller released by its
    /// bound must have waited the Timeout from its reading before the submit; and every caller must be released in the
    /// end (once the clock has run 50 Timeouts past the last submit the stepping stops, and a caller still waiting then
    /// hangs the awaits below, which Coyote reports). How late a caller may be is pinned by <c>BatcherArrivalEpochTests</c>,
    /// on a clock whose timers fire on time, not here: the scheduler may hold a task for any number of clock steps
    /// between steps that take no time on a real machine (a loop between its cut and its dispatch phase, where the sweep
    /// cannot take the batch; a sweep fired in a task of its own between its claim of a caller's answer and the write
    /// that publishes it). A 30,000-schedule soak of an earlier version, which flagged a caller still waiting a Timeout
    /// past its bound, found the second (seed 975287004, schedule 43: both running callers' answers claimed by such a
    /// sweep, not yet published, while the clock ran on).
    /// </summary>
    private static Task SubmitsRacingEpochAdvancesScenarioAsync() => EpochsScenarioAsync(holdFirstUntil: TimeSpan.FromMilliseconds(50), maxConcurrency: 1);

    /// <summary>
    /// As <see cref="SubmitsRacingEpochAdvancesScenarioAsync"/>, with nothing held and three dispatch slots: each item is
    /// cut as soon as a loop gets to it, while the sweep may be ending the epoch it was stamped with, and the cut bounds
    /// its batch by that epoch's end (or by its own reading, if the epoch has not ended).
    /// </summary>
    private static Task CutsRacingEpochAdvancesScenarioAsync() => EpochsScenarioAsync(holdFirstUntil: TimeSpan.Zero, maxConcurrency: 3);

    private static async Task EpochsScenarioAsync(TimeSpan holdFirstUntil, int maxConcurrency)
    {
        var time = new SteppedTimeProvider();
        var bound = TimeSpan.FromMilliseconds(1_280);
        var period = bound.Ticks / 128;
        var step = TimeSpan.FromMilliseconds(3).Ticks;
        var letGo = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var never = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                if (batch[0] == 0)
                {
                    await letGo.Task;
                    batch.TrySetResult(0, 0);
                    return;
                }

                await never.Task; // answers nobody: these callers are released by their bounds
            },
            new BatcherOptions
            {
                MaxBatchSize = 2,
                MaxConcurrency = maxConcurrency,
                MaxDelay = TimeSpan.Zero,
                Timeout = bound,
                DispatchTimeout = Timeout.InfiniteTimeSpan,
                TimeProvider = time,
                ArrivalEpochs = true,
            });

        const int callers = 3;
        var before = new long[callers];
        var after = new long[callers];
        var calls = new ValueTask<int>[callers];
        var submitted = new int[callers];
        var releasedAt = new long[callers];

        void Submit(int i)
        {
            before[i] = time.GetTimestamp();
#pragma warning disable CA2012 // kept unawaited on purpose: the scenario looks at IsCompleted after each step (at the reading the release happened at), and awaits each once at the end
            calls[i] = batcher.SubmitAsync(i);
#pragma warning restore CA2012
            after[i] = time.GetTimestamp();
            Volatile.Write(ref submitted[i], 1);
        }

        Submit(0);
        var submitters = new[] { Task.Run(() => Submit(1)), Task.Run(() => Submit(2)) };

        long t = 0;
        while (true)
        {
            var now = time.GetTimestamp();
            var waiting = 0;
            var allSubmitted = true;
            var firstBound = long.MaxValue;
            var lastSubmit = 0L;
            for (var i = 0; i < callers; i++)
            {
                if (Volatile.Read(ref submitted[i]) == 0)
                {
                    allSubmitted = false;
                    waiting++;
                    continue;
                }

                if (calls[i].IsCompleted)
                {
                    if (releasedAt[i] == 0)
                    {
                        releasedAt[i] = now + 1; // + 1: a release at t = 0 still reads as seen
                    }

                    continue;
                }

                waiting++;
                firstBound = Math.Min(firstBound, before[i] + bound.Ticks);
                lastSubmit = Math.Max(lastSubmit, after[i]);
            }

            if (waiting == 0 || (allSubmitted && now > lastSubmit + (50 * bound.Ticks)))
            {
                break; // every caller released; or the clock has run far past every bound, and the awaits below must end
            }

            if (t >= holdFirstUntil.Ticks)
            {
                letGo.TrySetResult();
            }

            t += step;
            if (allSubmitted && letGo.Task.IsCompleted && t >= lastSubmit + (2 * period) + step && t < firstBound - (3 * step))
            {
                // Nothing is due in the quiet middle. (Not before every waiting caller's epoch has ended: this clock fires the
                // timers due within a jump at its end, so an epoch a jump ended would end late by the jump.)
                t = firstBound - (3 * step);
            }

            time.AdvanceTo(TimeSpan.FromTicks(t));
            await Task.Yield();
        }

        await Task.WhenAll(submitters);
        for (var i = 0; i < callers; i++)
        {
            try
            {
                var result = await calls[i];
                Specification.Assert(i == 0 && result == 0, $"Caller {i} received {result}; only caller 0 is answered.");
            }
            catch (BatchTimeoutException)
            {
                var at = releasedAt[i] - 1;
                Specification.Assert(
                    at >= before[i] + bound.Ticks,
                    $"Caller {i}, whose submit began at {before[i]}, was released by its bound at {at}: {before[i] + bound.Ticks - at} ticks early.");
            }
        }

        never.TrySetResult();
        await batcher.CloseAsync(Timeout.InfiniteTimeSpan);
    }
}
