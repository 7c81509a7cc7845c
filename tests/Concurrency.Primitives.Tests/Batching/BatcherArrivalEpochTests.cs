using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Invariant 4 of src/Concurrency.Primitives/Batching/README.md where arrivals are stamped with clock epochs (the system
/// clock, MaxDelay zero, a Timeout of a second or more; forced here on the test's clock): a caller is released no earlier
/// than Timeout after its submit, however late in its epoch it came, and at most two epoch periods (Timeout/64) later.
/// With a 30 s Timeout an epoch period is 234.375 ms.
/// </summary>
public sealed class BatcherArrivalEpochTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Period = TimeSpan.FromTicks(Bound.Ticks / 128);
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    /// <summary>
    /// Guards the upper end of an epoch: a caller that came 100 ms after its epoch began is not released at the epoch's
    /// start plus the Timeout (100 ms early), but at its own bound, at most two periods late.
    /// </summary>
    [Fact]
    public async Task ACallerThatCameLateInItsEpoch_IsReleasedNoEarlierThanItsOwnBound_AndAtMostTwoPeriodsLater()
    {
        var time = new ManualTimeProvider();
        var hold = Bounded.NewGate();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(Holding(entered, hold), Stamped(time, maxBatchSize: 1));
        batcher.KeepsArrivalEpochs.Should().BeTrue();

        var running = batcher.SubmitAsync(1);          // t = 0, as the batcher's first epoch began: dispatched at once
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromMilliseconds(100));
        var queued = batcher.SubmitAsync(2);           // t = 100 ms, still in the first epoch: its bound is t = 30.1 s

        time.Advance(Bound - TimeSpan.FromMilliseconds(100) - Tick);
        running.IsCompleted.Should().BeFalse("caller 1's bound is t = 30 s");
        time.Advance(Tick);                            // t = 30 s
        running.IsCompleted.Should().BeTrue("caller 1 was cut in the epoch it came in, which had not ended: its batch is bounded by the cut's own reading");
        (await running.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();

        time.Advance(TimeSpan.FromMilliseconds(100) - Tick); // t = 30.1 s less a tick
        queued.IsCompleted.Should().BeFalse("caller 2 came at t = 100 ms; released at its epoch's start plus the Timeout it would be early");
        time.Advance(Tick + Period + Period);
        queued.IsCompleted.Should().BeTrue("a caller is released at most two epoch periods after its bound");
        (await queued.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();

        hold.TrySetResult();
        await batcher.DisposeAsync();
    }

    /// <summary>
    /// Guards the sweep's period: a batch's first caller, whose bound is 10 s before the batch's (its last caller's), is
    /// found by the sweep at its own bound, at most two periods late, and not only when the batch's bound passes.
    /// </summary>
    [Fact]
    public async Task TheFirstCallerOfARunningBatch_IsReleasedAtItsOwnBound_NotAtItsLastCallers()
    {
        var time = new ManualTimeProvider();
        var first = Bounded.NewGate();
        var hold = Bounded.NewGate();
        var secondEntered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> batch, CancellationToken _) =>
            {
                if (batch[0] == 0)
                {
                    await first.Task;
                    batch.TrySetResult(0, 0);
                    return;
                }

                secondEntered.TrySetResult();
                await hold.Task; // answers nobody
            },
            Stamped(time, maxBatchSize: 2));

        var opening = batcher.SubmitAsync(0);         // t = 0: a batch of one, held
        var early = batcher.SubmitAsync(1);           // t = 0, queued: bound t = 30 s
        time.Advance(TimeSpan.FromSeconds(10));
        var late = batcher.SubmitAsync(2);            // t = 10 s, queued: bound t = 40 s
        first.TrySetResult();
        (await opening.OrHang()).Should().Be(0);
        await secondEntered.Task.OrHang();            // callers 1 and 2 now run in one batch, bounded by caller 2 (t = 40 s)

        time.Advance(TimeSpan.FromSeconds(20) - Tick);
        early.IsCompleted.Should().BeFalse("caller 1's bound is t = 30 s");
        time.Advance(Tick + Period + Period);
        early.IsCompleted.Should().BeTrue("the sweep fires at least once a period while a batch runs, and finds caller 1's bound passed");
        (await early.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        late.IsCompleted.Should().BeFalse("caller 2's bound is t = 40 s");

        time.Advance(TimeSpan.FromSeconds(10));
        late.IsCompleted.Should().BeTrue();
        await late.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();

        hold.TrySetResult();
        await batcher.DisposeAsync();
    }

    /// <summary>
    /// Guards the idle batcher: a caller that comes long after the last epoch began (nothing outstanding, so nothing
    /// advanced it) is not released as if it came then.
    /// </summary>
    [Fact]
    public async Task ACallerAfterALongIdleSpell_IsReleasedAtItsOwnBound()
    {
        var time = new ManualTimeProvider();
        var hold = Bounded.NewGate();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(Holding(entered, hold), Stamped(time, maxBatchSize: 1));

        time.Advance(TimeSpan.FromMinutes(5));        // idle: the first epoch, begun at t = 0, is still the current one
        var call = batcher.SubmitAsync(1);            // t = 5 min: bound t = 5.5 min
        await entered.Task.OrHang();                  // its dispatch runs (the sweep takes a batch only once it does)

        time.Advance(Bound - Tick);
        call.IsCompleted.Should().BeFalse("the caller came at t = 5 min, not when its epoch began");
        time.Advance(Tick + Period + Period);
        call.IsCompleted.Should().BeTrue();
        await call.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();

        hold.TrySetResult();
        await batcher.DisposeAsync();
    }

    /// <summary>Epochs are kept only where they cannot change what a caller sees: the system clock, MaxDelay zero and a Timeout of 1,024 ms or more.</summary>
    [Theory]
    [InlineData(true, 0, 30_000, true)]
    [InlineData(true, 0, 1_024, true)]
    [InlineData(true, 0, 1_000, false)] // a period under 8 ms
    [InlineData(true, 0, -1, false)]    // no Timeout: nothing to stamp
    [InlineData(true, 5, 30_000, false)] // MaxDelay counts from an exact arrival
    [InlineData(false, 0, 30_000, false)] // a provider's own clock is read per submit (unless a test forces epochs)
    public void EpochsAreKept_OnlyWithTheSystemClock_MaxDelayZero_AndATimeoutOfASecondOrMore(bool systemClock, int maxDelayMilliseconds, int timeoutMilliseconds, bool kept)
    {
        var options = new BatcherOptions
        {
            MaxDelay = TimeSpan.FromMilliseconds(maxDelayMilliseconds),
            Timeout = timeoutMilliseconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(timeoutMilliseconds),
            TimeProvider = systemClock ? TimeProvider.System : new ManualTimeProvider(),
        };

        using var batcher = new Batcher<int, int>(BatcherHandlers.Echo, options);

        batcher.KeepsArrivalEpochs.Should().Be(kept);
    }

    /// <summary>
    /// The system clock end to end: a caller queued behind a held dispatch, with a 1.1 s Timeout (8.6 ms epochs), is
    /// released no earlier than its bound by a stopwatch started before its submit (less the tick count's own
    /// granularity, which a per-submit read has too), and well within two periods and a scheduling margin after it.
    /// </summary>
    [Fact]
    public async Task WithTheSystemClock_AQueuedCaller_IsReleasedNoEarlierThanItsBound()
    {
        var timeout = TimeSpan.FromMilliseconds(1_100);
        var hold = Bounded.NewGate();
        var entered = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            Holding(entered, hold),
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, Timeout = timeout, DispatchTimeout = TimeSpan.FromHours(1) });
        batcher.KeepsArrivalEpochs.Should().BeTrue();
        var running = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();

        var stopwatch = Stopwatch.StartNew();
        var queued = batcher.SubmitAsync(2).AsTask();
        await queued.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        var waited = stopwatch.Elapsed;

        waited.Should().BeGreaterThan(timeout - TimeSpan.FromMilliseconds(20), "a caller is never released before its bound (to within the tick count's granularity)");
        waited.Should().BeLessThan(timeout + TimeSpan.FromSeconds(5), "and soon after it");
        await running.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        hold.TrySetResult();
        await batcher.DisposeAsync();
    }

    /// <summary>A dispatch that says it has begun, then answers nobody (every caller is released by its bound) until <paramref name="hold"/> completes.</summary>
    private static Func<Batch<int, int>, CancellationToken, ValueTask> Holding(TaskCompletionSource entered, TaskCompletionSource hold) =>
        (_, _) =>
        {
            entered.TrySetResult();
            return new ValueTask(hold.Task);
        };

    private static BatcherOptions Stamped(ManualTimeProvider time, int maxBatchSize) => new()
    {
        MaxBatchSize = maxBatchSize,
        MaxConcurrency = 1,
        MaxDelay = TimeSpan.Zero,
        Timeout = Bound,
        DispatchTimeout = TimeSpan.FromHours(1),
        TimeProvider = time,
        ArrivalEpochs = true,
    };
}
