using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Batching;

/// <summary>
/// The batcher's ring under Coyote: submits that claim and publish without the lock racing the loops that cut without
/// it, a caller's cancellation racing the cut, submits racing the shutdown flag in the claim word, and a dispatch
/// timeout racing the dispatch's own answers. Each scenario has a mutant of the ring code that it catches
/// (<c>tests/Concurrency.Primitives.SystematicTests/Mutants/</c>, run by <c>run-mutants.sh</c>).
/// </summary>
public sealed class BatcherRingSystematicTests
{
    private const uint Iterations = 1_000;
    private readonly ITestOutputHelper _output;

    public BatcherRingSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Ring_ASubmitRacingALoopThatLeaves_IsCutByOneOfThem()
    {
        CoyoteHarness.Explore(_output, "Batcher ring, submits racing the cut and a loop that leaves", Iterations, SubmitRacingACutScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Ring_ACancellationRacingTheCut_LeavesTheItemOutIfItCameFirst()
    {
        CoyoteHarness.Explore(_output, "Batcher ring, a cancellation racing the cut", Iterations, CancellationRacingACutScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Ring_SubmitsRacingShutdown_AreEachRefusedOrDrainedBeforeCompletion()
    {
        CoyoteHarness.Explore(_output, "Batcher ring, submits racing the shutdown", Iterations, SubmitsRacingShutdownScenarioAsync).ShouldHoldEverywhere();
    }

    [Fact]
    public void Ring_ADispatchTimeoutRacingTheDispatchsAnswers_AnswersEachCallerOnce()
    {
        CoyoteHarness.Explore(_output, "Batcher ring, a dispatch timeout racing the answers", Iterations, DeadlineRacingTheAnswersScenarioAsync).ShouldHoldEverywhere();
    }

    /// <summary>
    /// One loop, batches of one, no delay: three submits race the loop, which may find the ring empty and leave just as
    /// one of them claims (and reads the loop count before the loop lets go). An item left with no loop waits forever,
    /// which Coyote reports as a deadlock (the frozen clock rescues no one).
    /// </summary>
    private static async Task SubmitRacingACutScenarioAsync()
    {
        const int items = 3;
        var answered = new int[items];
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                BatchAnswers.TimesTen(batch, answered);

                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, Capacity = 4, TimeProvider = FrozenTimeProvider.Instance });

        var results = await Task.WhenAll(Enumerable.Range(0, items).Select(i => Task.Run(async () => await batcher.SubmitAsync(i))));
        await batcher.CloseAsync();
        for (var i = 0; i < items; i++)
        {
            Specification.Assert(results[i] == i * 10, $"Item {i} received {results[i]}, not its own result.");
            Specification.Assert(answered[i] == 1, $"Item {i} was answered {answered[i]} times by the dispatch.");
        }
    }

    /// <summary>
    /// One loop, held in the first item's dispatch, batches of up to two. Item 1's caller cancels and sees its cancellation
    /// before the loop is let go, so the cut that takes item 1 (with item 3, which is dispatched) comes after it: the
    /// dispatch must never see item 1. Item 2's caller cancels while the loop is let go and cuts: either outcome is
    /// allowed, but exactly one, and a result only from the dispatch.
    /// </summary>
    private static async Task CancellationRacingACutScenarioAsync()
    {
        var seen = new int[4];
        var answered = new int[4];
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batcher = new Batcher<int, int>(
            async (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    Interlocked.Increment(ref seen[batch[i]]);
                }

                if (batch[0] == 0)
                {
                    await hold.Task;
                }

                BatchAnswers.TimesTen(batch, answered);
            },
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, TimeProvider = FrozenTimeProvider.Instance });
        using var first = new CancellationTokenSource();
        using var second = new CancellationTokenSource();

        var held = batcher.SubmitAsync(0).AsTask();
        var cancelledFirst = batcher.SubmitAsync(1, first.Token).AsTask();
        var live = batcher.SubmitAsync(3).AsTask(); // cut with item 1: a batch that is dispatched, so item 1 must be left out of it
        var racing = batcher.SubmitAsync(2, second.Token).AsTask();
        await first.CancelAsync();
        var firstOutcome = await Outcome(cancelledFirst);
        Specification.Assert(firstOutcome == -1, $"Item 1's caller cancelled before any cut could take it, yet received {firstOutcome}.");

        var canceller = Task.Run(second.CancelAsync);
        var release = Task.Run(() => hold.SetResult());
        var outcomes = await Task.WhenAll(Outcome(held), Outcome(racing), Outcome(live));
        await Task.WhenAll(canceller, release);
        await batcher.CloseAsync();

        Specification.Assert(seen[1] == 0, "The dispatch was handed item 1, whose caller had cancelled before its batch was cut.");
        Specification.Assert(outcomes[0] == 0, $"Item 0 received {outcomes[0]}.");
        Specification.Assert(outcomes[1] is 20 or -1, $"Item 2 received {outcomes[1]}.");
        Specification.Assert(outcomes[1] != 20 || answered[2] == 1, "Item 2 received a result the dispatch did not set.");
        Specification.Assert(answered[2] <= 1, $"Item 2 was answered {answered[2]} times.");
        Specification.Assert(outcomes[2] == 30 && answered[3] == 1, $"Item 3 received {outcomes[2]}, answered {answered[3]} times.");
    }

    /// <summary>
    /// Three submits race CloseAsync (Drain, MaxDelay never passes, batches of two): each is refused or accepted, every
    /// accepted item is dispatched, and all of them before <see cref="Batcher{TItem, TResult}.Completion"/> completes.
    /// </summary>
    private static async Task SubmitsRacingShutdownScenarioAsync()
    {
        const int items = 3;
        var answered = 0;
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    if (batch.TrySetResult(i, batch[i] * 10))
                    {
                        Interlocked.Increment(ref answered);
                    }
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromHours(1), TimeProvider = FrozenTimeProvider.Instance });
        var answeredAtCompletion = -1;
        var completion = batcher.Completion.ContinueWith(
            _ => answeredAtCompletion = Volatile.Read(ref answered), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        var callers = Enumerable.Range(0, items).Select(i => Task.Run(async () =>
        {
            try
            {
                return await batcher.SubmitAsync(i);
            }
            catch (ClosedException)
            {
                return -1;
            }
        })).ToArray();
        var shutdown = Task.Run(() => batcher.CloseAsync());
        var results = await Task.WhenAll(callers);
        await shutdown;
        await completion;

        var accepted = results.Count(r => r != -1);
        for (var i = 0; i < items; i++)
        {
            Specification.Assert(results[i] is -1 || results[i] == i * 10, $"Item {i} received {results[i]}.");
        }

        Specification.Assert(answered == accepted, $"{accepted} item(s) were accepted and {answered} answered.");
        Specification.Assert(answeredAtCompletion == accepted, $"Completion completed with {answeredAtCompletion} of the {accepted} accepted item(s) answered.");
    }

    /// <summary>
    /// A dispatch timeout (its timer fires whenever the scheduler lets it) races a dispatch that answers its items after
    /// a yield, then a second round reuses the loop's batch: every caller receives exactly one outcome (its own result, or
    /// the dispatch timeout), a result only from the dispatch, and the second round's dispatch starts with a live token.
    /// </summary>
    private static async Task DeadlineRacingTheAnswersScenarioAsync()
    {
        const int perRound = 4;
        var answered = new int[2 * perRound];
        var cancelledAtStart = 0;
        var clock = new FiringTimeProvider();
        var secondRoundStarted = 0L;
        var batcher = new Batcher<int, int>(
            async (batch, token) =>
            {
                // Cancelled at its start while its own bound (a second after its round began, at the earliest) has not
                // passed: the token is a timed-out batch's. (A sweep that fires at the bound as the dispatch starts, or a
                // first-round batch that starts late, after its callers timed out, has it cancelled legitimately.)
                var roundStart = batch[0] < perRound ? 0 : Volatile.Read(ref secondRoundStarted);
                if (token.IsCancellationRequested && clock.GetTimestamp() < roundStart + TimeSpan.TicksPerSecond)
                {
                    Interlocked.Increment(ref cancelledAtStart);
                }

                await Task.Yield();
                BatchAnswers.TimesTen(batch, answered);
            },
            new BatcherOptions
            {
                MaxBatchSize = perRound,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromSeconds(10),
                DispatchTimeout = TimeSpan.FromSeconds(1),
                TimeProvider = clock,
            });

        var first = Enumerable.Range(0, perRound).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        var outcomes = await Task.WhenAll(first.Select(Outcome));
        Volatile.Write(ref secondRoundStarted, clock.GetTimestamp());
        var second = Enumerable.Range(perRound, perRound).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        outcomes = outcomes.Concat(await Task.WhenAll(second.Select(Outcome))).ToArray();
        await batcher.CloseAsync(Timeout.InfiniteTimeSpan);

        for (var i = 0; i < outcomes.Length; i++)
        {
            Specification.Assert(outcomes[i] == i * 10 || outcomes[i] == -2, $"Item {i} received {outcomes[i]}.");
            Specification.Assert(answered[i] <= 1, $"Item {i} was answered {answered[i]} times.");
            Specification.Assert(outcomes[i] != i * 10 || answered[i] == 1, $"Item {i} received a result the dispatch did not set.");
        }

        Specification.Assert(cancelledAtStart == 0, "A dispatch started with a token that was already cancelled before its own bound (a timed-out batch's token was reused).");
    }

    /// <summary>The caller's outcome: its result, -1 for a cancellation, -2 for a timeout.</summary>
    private static async Task<int> Outcome(Task<int> call)
    {
        try
        {
            return await call;
        }
        catch (OperationCanceledException)
        {
            return -1;
        }
        catch (BatchTimeoutException)
        {
            return -2;
        }
    }
}
