using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Benchmarks.HandRolled;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;
using CoyoteRandom = Microsoft.Coyote.Random.Generator;

namespace Concurrency.Primitives.SystematicTests.Batching;

/// <summary>
/// The orphaned-waiter incident under Coyote: the hand-rolled batcher must be caught leaving a caller unanswered after a
/// dispatch fault; the Batcher must complete every item exactly once through faults, forgotten items, cancellations and
/// a shutdown racing the submits.
/// </summary>
public sealed class BatcherSystematicTests
{
    private const string Orphaned = "A caller was never answered after its batch's dispatch returned";
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public BatcherSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void HandRolledBatcher_DispatchFaultPartWay_IsCaughtOrphaningACaller()
    {
        var report = CoyoteHarness.Explore(_output, "hand-rolled Channel+TCS batcher, dispatch fault", Iterations, HandRolledScenarioAsync);

        report.ShouldFindBug(Orphaned);
    }

    [Fact]
    public void Batcher_CompletesEveryItemExactlyOnce_ThroughFaultsCancellationsAndShutdown()
    {
        var report = CoyoteHarness.Explore(_output, "Batcher, faults + cancellations + shutdown", Iterations, BatcherScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void Batcher_AListDispatchThatCompletesLater_AnswersEachItemWithItsOwnResult_ThroughFaultsCancellationsAndShutdown()
    {
        var report = CoyoteHarness.Explore(_output, "Batcher, list dispatch completing later + faults + cancellations + shutdown", Iterations, ListDispatchScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void Batcher_ServesEveryItem_WhenLockFreeSubmitsRaceTheServes()
    {
        var report = CoyoteHarness.Explore(_output, "Batcher, submits racing serves (one slot, back-pressure)", Iterations, SubmitRaceScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void Batcher_TakesInEveryItem_WhenBatchesFormBySizeAndByTheDrain()
    {
        var report = CoyoteHarness.Explore(_output, "Batcher, MaxDelay pending + size trigger + drain", Iterations, SizeAndDrainScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    [Fact]
    public void Batcher_ARoomGrantRacingItsWaitersGiveUp_IsPassedToTheNextWaiter()
    {
        var report = CoyoteHarness.Explore(_output, "Batcher, a room grant racing its waiter's cancellation", Iterations, RoomGrantRacingAGiveUpScenarioAsync);

        report.ShouldHoldEverywhere();
    }

    /// <summary>
    /// One slot, a queue of one: two callers wait for room while the first waiter's token is cancelled at any moment,
    /// including just after the room was granted to it. The second waiter must still get in: a grant lost on a waiter that
    /// gave up leaves it waiting forever, which Coyote reports as a deadlock (the frozen clock never releases it).
    /// </summary>
    private static async Task RoomGrantRacingAGiveUpScenarioAsync()
    {
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] * 10);
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, Capacity = 1, MaxDelay = TimeSpan.Zero, MaxConcurrency = 1, TimeProvider = FrozenTimeProvider.Instance });
        using var cancellation = new CancellationTokenSource();

        var first = Task.Run(async () => await batcher.SubmitAsync(0));
        var second = Task.Run(async () => await batcher.SubmitAsync(1));
        var givingUp = Task.Run(async () =>
        {
            try
            {
                return await batcher.SubmitAsync(2, cancellation.Token);
            }
            catch (OperationCanceledException)
            {
                return -1;
            }
        });
        var waiting = Task.Run(async () => await batcher.SubmitAsync(3));
        var canceller = Task.Run(cancellation.CancelAsync);

        var results = await Task.WhenAll(first, second, givingUp, waiting);
        await canceller;
        await batcher.CloseAsync();

        Specification.Assert(results[0] == 0 && results[1] == 10 && results[3] == 30, $"Callers received {string.Join(", ", results)}.");
        Specification.Assert(results[2] is 20 or -1, $"The cancelled caller received {results[2]}.");
    }

    /// <summary>
    /// Submits push their items without the batcher's lock while a serve may be letting go of its duty, or every slot is
    /// busy (one slot, a batch of one, a queue of two): a lost hand-over leaves a caller waiting forever, which Coyote
    /// reports as a deadlock (the frozen clock never fires a deadline to rescue it).
    /// </summary>
    private static async Task SubmitRaceScenarioAsync()
    {
        const int items = 4;
        var answered = new int[items];
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                BatchAnswers.TimesTen(batch, answered);

                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, Capacity = 2, MaxDelay = TimeSpan.Zero, MaxConcurrency = 1, TimeProvider = FrozenTimeProvider.Instance });

        var callers = Enumerable.Range(0, items).Select(i => Task.Run(async () => await batcher.SubmitAsync(i))).ToArray();
        var results = await Task.WhenAll(callers);
        await batcher.CloseAsync();

        for (var i = 0; i < items; i++)
        {
            Specification.Assert(results[i] == i * 10, $"Item {i} received {results[i]}, not its own result.");
            Specification.Assert(answered[i] == 1, $"Item {i} was answered {answered[i]} times by the dispatch.");
        }
    }

    /// <summary>
    /// MaxDelay never passes (frozen clock): two items make a batch by size, the rest wait, and the drain at shutdown must
    /// take in and dispatch every admitted item, including one still being pushed when the shutdown begins.
    /// </summary>
    private static async Task SizeAndDrainScenarioAsync()
    {
        const int items = 3;
        var answered = new int[items];
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                await Task.Yield();
                BatchAnswers.TimesTen(batch, answered);
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), MaxConcurrency = 2, TimeProvider = FrozenTimeProvider.Instance });

        var callers = Enumerable.Range(0, items).Select(i => Task.Run(async () =>
        {
            try
            {
                return await batcher.SubmitAsync(i);
            }
            catch (ClosedException)
            {
                return -1; // submitted after the shutdown began: refused at once
            }
        })).ToArray();
        var shutdown = Task.Run(() => batcher.CloseAsync());
        var results = await Task.WhenAll(callers);
        await shutdown;

        for (var i = 0; i < items; i++)
        {
            Specification.Assert(results[i] == -1 || results[i] == i * 10, $"Item {i} received {results[i]}, not its own result.");
            Specification.Assert(answered[i] == (results[i] == -1 ? 0 : 1), $"Item {i} was answered {answered[i]} times by the dispatch.");
        }
    }

    private static async Task HandRolledScenarioAsync()
    {
        var dispatchesReturned = 0;
        var batcher = new ChannelTcsBatcher<int, int>(
            batch =>
            {
                try
                {
                    batch[0].Completion.TrySetResult(batch[0].Item);
                    if (batch.Count > 1)
                    {
                        throw new InvalidOperationException("stalled part-way");
                    }

                    return Task.CompletedTask;
                }
                finally
                {
                    Interlocked.Increment(ref dispatchesReturned);
                }
            },
            maxBatchSize: 4);

        var calls = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => Task.Factory.StartNew(() => batcher.SubmitAsync(i), CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default)));
        await batcher.DisposeAsync(); // every dispatch has returned once the loop has drained
        Specification.Assert(calls.All(c => c.IsCompleted), $"{Orphaned} ({calls.Count(c => !c.IsCompleted)} left waiting).");
    }

    private static async Task BatcherScenarioAsync()
    {
        const int items = 4;
        var answeredByDispatch = new int[items];
        var random = CoyoteRandom.Create();
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                await Task.Yield();
                for (var i = 0; i < batch.Count; i++)
                {
                    switch (random.NextInteger(4))
                    {
                        case 0:
                            break; // forgotten: the sweep must answer it
                        case 1:
                            throw new InvalidOperationException("fault part-way"); // the sweep must answer the rest
                        default:
                            if (batch.TrySetResult(i, batch[i] * 10))
                            {
                                Interlocked.Increment(ref answeredByDispatch[batch[i]]);
                            }

                            break;
                    }
                }
            },
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.Zero, MaxConcurrency = 2, TimeProvider = FrozenTimeProvider.Instance });

        using var cancel = new CancellationTokenSource();
        var callers = Enumerable.Range(0, items).Select(i => Task.Run(async () =>
        {
            try
            {
                var result = await batcher.SubmitAsync(i, i == 1 ? cancel.Token : CancellationToken.None);
                Specification.Assert(result == i * 10, $"Item {i} received {result}, not its own result.");
                return 1; // a result
            }
            catch (BatchDispatchException)
            {
                return 2;
            }
            catch (BatchItemNotCompletedException)
            {
                return 2;
            }
            catch (OperationCanceledException)
            {
                return 3;
            }
            catch (ClosedException)
            {
                return 4; // submitted after the shutdown began: refused at once
            }
        })).ToArray();
        var canceller = Task.Run(cancel.CancelAsync);
        var shutdown = Task.Run(() => batcher.CloseAsync());

        var outcomes = await Task.WhenAll(callers);
        await canceller;
        await shutdown;

        for (var i = 0; i < items; i++)
        {
            Specification.Assert(answeredByDispatch[i] <= 1, $"Item {i} was answered {answeredByDispatch[i]} times by the dispatch.");
            Specification.Assert(
                outcomes[i] != 1 || answeredByDispatch[i] == 1,
                $"Item {i} returned a result that the dispatch never set (answered {answeredByDispatch[i]} times).");
        }
    }

    /// <summary>
    /// The list form (results returned, in order) with a dispatch that always finishes after the loop has handed its wait
    /// over (the value task with a result, whose route under Coyote is a task of its own): each caller gets its own item's
    /// result, or the dispatch's fault, or its cancellation, or a refusal after the shutdown began, exactly once; the close
    /// waits for every dispatch.
    /// </summary>
    private static async Task ListDispatchScenarioAsync()
    {
        const int items = 4;
        var dispatched = new int[items];
        var random = CoyoteRandom.Create();
        Func<IReadOnlyList<int>, CancellationToken, ValueTask<IReadOnlyList<int>>> dispatch = async (list, _) =>
        {
            foreach (var item in list)
            {
                Interlocked.Increment(ref dispatched[item]);
            }

            await Task.Yield();
            if (random.NextInteger(4) == 0)
            {
                throw new InvalidOperationException("list dispatch fault");
            }

            return list.Select(item => item * 10).ToArray();
        };
        var batcher = new Batcher<int, int>(
            dispatch,
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.Zero, MaxConcurrency = 2, TimeProvider = FrozenTimeProvider.Instance });

        using var cancel = new CancellationTokenSource();
        var callers = Enumerable.Range(0, items).Select(i => Task.Run(async () =>
        {
            try
            {
                var result = await batcher.SubmitAsync(i, i == 1 ? cancel.Token : CancellationToken.None);
                Specification.Assert(result == i * 10, $"Item {i} received {result}, not its own result.");
                return 1;
            }
            catch (BatchDispatchException)
            {
                return 2;
            }
            catch (OperationCanceledException)
            {
                return 3;
            }
            catch (ClosedException)
            {
                return 4;
            }
        })).ToArray();
        var canceller = Task.Run(cancel.CancelAsync);
        var shutdown = Task.Run(() => batcher.CloseAsync());

        var outcomes = await Task.WhenAll(callers);
        await canceller;
        await shutdown;

        for (var i = 0; i < items; i++)
        {
            Specification.Assert(dispatched[i] <= 1, $"Item {i} was dispatched {dispatched[i]} times.");
            Specification.Assert(outcomes[i] is 3 or 4 || dispatched[i] == 1, $"Item {i} got outcome {outcomes[i]} without being dispatched.");
        }
    }
}
