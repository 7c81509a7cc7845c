using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// A dispatch nobody waits for: when every caller of a dispatched batch has given up (its own token, or its bound), the
/// dispatch's token is cancelled at once, not at <see cref="BatcherOptions.DispatchTimeout"/>; a batch with a caller
/// left keeps running. The clock never reaches DispatchTimeout in these tests.
/// </summary>
public sealed class BatcherAbandonedDispatchTests
{
    private static BatcherOptions Options(ManualTimeProvider time, RecordingLogger? logger = null, int size = 2) => new()
    {
        MaxBatchSize = size,
        MaxDelay = TimeSpan.FromHours(1),
        Timeout = TimeSpan.FromMinutes(10),
        DispatchTimeout = TimeSpan.FromHours(1),
        TimeProvider = time,
        Logger = logger,
    };

    [Fact]
    public async Task ABatchWhoseCallersAllCancelled_HasItsDispatchTokenCancelledAtOnce_AndItsCancellationIsNoFault()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var held = new HeldDispatch();
        var batcher = new Batcher<int, int>(held.DispatchAsync, Options(time, logger));
        using var one = new CancellationTokenSource();
        using var two = new CancellationTokenSource();

        var first = batcher.SubmitAsync(1, one.Token).AsTask();
        var second = batcher.SubmitAsync(2, two.Token).AsTask();
        var token = await held.Entered.Task.OrHang();
        await one.CancelAsync();
        token.IsCancellationRequested.Should().BeFalse("one caller still waits");
        await two.CancelAsync();

        token.IsCancellationRequested.Should().BeTrue("the last caller gave up: the dispatch works for nobody");
        await first.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await second.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await held.Returned.Task.OrHang(); // the dispatch honoured its token and threw OperationCanceledException
        await batcher.CloseAsync().OrHang();
        logger.Entries.Should().Contain(e => e.EventId == 3009);
        logger.Entries.Should().ContainSingle(e => e.EventId == 3010, "the dispatch ended with the cancellation the batcher asked for")
            .Which["Count"].Should().Be(2);
        logger.Entries.Should().NotContain(e => e.Level >= LogLevel.Warning, "a cancellation asked for by the batcher is not a failure");
    }

    [Fact]
    public async Task ABatchWithACallerLeft_KeepsRunning_AndAnswersThatCaller()
    {
        var time = new ManualTimeProvider();
        var held = new HeldDispatch();
        var batcher = new Batcher<int, int>(held.DispatchAsync, Options(time));
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(1, leaving.Token).AsTask();
        var staying = batcher.SubmitAsync(2).AsTask();
        var token = await held.Entered.Task.OrHang();
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        token.IsCancellationRequested.Should().BeFalse();
        held.Release.SetResult();
        (await staying.OrHang()).Should().Be(20);
        held.Answers.Should().Equal(false, true); // the cancelled caller's answer went nowhere
    }

    [Fact]
    public async Task ACallerWhoseBoundPassed_AndOneThatCancelled_TogetherAbandonTheDispatch_BeforeItsTimeout()
    {
        // The first caller's bound passes first (the sweep releases it); the second, with a later bound, cancels. The
        // dispatch's own bound (the last caller's, or DispatchTimeout) is still far away when the token is cancelled.
        var time = new ManualTimeProvider();
        var held = new HeldDispatch();
        var batcher = new Batcher<int, int>(held.DispatchAsync, Options(time));
        using var leaving = new CancellationTokenSource();

        var expiring = batcher.SubmitAsync(1).AsTask();
        time.Advance(TimeSpan.FromMinutes(5));
        var cancelling = batcher.SubmitAsync(2, leaving.Token).AsTask();
        var token = await held.Entered.Task.OrHang();
        time.Advance(TimeSpan.FromMinutes(5)); // the first caller's bound
        (await expiring.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        token.IsCancellationRequested.Should().BeFalse("the second caller still waits");

        await leaving.CancelAsync();

        token.IsCancellationRequested.Should().BeTrue();
        await cancelling.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task EveryCallerOfACoalescedSlotCancelling_AbandonsTheDispatch()
    {
        var time = new ManualTimeProvider();
        var held = new HeldDispatch();
        var options = new BatcherOptions<int>
        {
            MaxBatchSize = 3,
            MaxDelay = TimeSpan.FromHours(1),
            DispatchTimeout = TimeSpan.FromHours(1),
            TimeProvider = time,
            CoalescingComparer = EqualityComparer<int>.Default,
        };
        var batcher = new Batcher<int, int>(held.DispatchAsync, options);
        var sources = Enumerable.Range(0, 3).Select(_ => new CancellationTokenSource()).ToArray();

        var calls = sources.Select(source => batcher.SubmitAsync(7, source.Token).AsTask()).ToArray();
        var token = await held.Entered.Task.OrHang();
        held.Count.Should().Be(1, "three callers of one item share one slot");
        await sources[0].CancelAsync();
        await sources[2].CancelAsync();
        token.IsCancellationRequested.Should().BeFalse();
        await sources[1].CancelAsync();

        token.IsCancellationRequested.Should().BeTrue();
        foreach (var call in calls)
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        }

        foreach (var source in sources)
        {
            source.Dispose();
        }
    }

    [Fact]
    public async Task AnAbandonedDispatchsTokenSource_IsNeverReused_ForTheNextBatch()
    {
        var time = new ManualTimeProvider();
        var held = new HeldDispatch();
        var tokens = new List<CancellationToken>();
        var batcher = new Batcher<int, int>(
            async (batch, token) =>
            {
                tokens.Add(token);
                if (tokens.Count == 1)
                {
                    await held.DispatchAsync(batch, token);
                    return;
                }

                batch.TrySetResult(0, batch[0]);
            },
            Options(time, size: 1));
        using var leaving = new CancellationTokenSource();

        var gone = batcher.SubmitAsync(1, leaving.Token).AsTask();
        await held.Entered.Task.OrHang();
        await leaving.CancelAsync();
        await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await held.Returned.Task.OrHang();

        (await batcher.SubmitAsync(2).OrHang()).Should().Be(2);
        tokens.Should().HaveCount(2);
        tokens[1].IsCancellationRequested.Should().BeFalse("the next batch gets a token of its own");
    }

    [Fact]
    public async Task TwoRunningBatchesLeftWithoutCallersByOneSweep_BothHaveTheirDispatchTokensCancelled()
    {
        // One sweep leaves two running batches without a caller, each its own way: the first batch's bound passes (all its
        // callers time out together), and in the second the one caller left times out while its bound (the cancelled
        // caller's later deadline) has not. Each dispatch works for nobody now: both tokens are cancelled.
        var time = new ManualTimeProvider();
        var tokens = new System.Collections.Concurrent.ConcurrentDictionary<int, CancellationToken>();
        var secondEntered = Bounded.NewGate();
        var options = Options(time, size: 2);
        options.MaxConcurrency = 2;
        var batcher = new Batcher<int, int>(
            async (batch, token) =>
            {
                tokens[batch[0]] = token;
                if (batch[0] == 3)
                {
                    secondEntered.TrySetResult();
                }

                await Bounded.NewGate().Task.WaitAsync(token); // answers nobody: only its token ends it
            },
            options);
        using var leaving = new CancellationTokenSource();

        var firstBatch = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() }; // full: cut at once
        var expiring = batcher.SubmitAsync(3).AsTask();
        time.Advance(TimeSpan.FromMinutes(1));
        var cancelled = batcher.SubmitAsync(4, leaving.Token).AsTask(); // fills the second batch; its deadline is a minute later
        await secondEntered.Task.OrHang();
        await leaving.CancelAsync();
        await cancelled.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        tokens[3].IsCancellationRequested.Should().BeFalse("the second batch's first caller still waits");

        time.Advance(options.Timeout - TimeSpan.FromMinutes(1)); // the first three callers' bound: one sweep

        foreach (var call in firstBatch.Append(expiring))
        {
            await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();
        }

        tokens.Should().HaveCount(2);
        tokens[1].IsCancellationRequested.Should().BeTrue("the first batch's bound passed: no caller is left");
        tokens[3].IsCancellationRequested.Should().BeTrue("the second batch's last caller timed out: no caller is left");
        await batcher.CloseAsync().OrHang();
    }

    /// <summary>A dispatch that waits for its release or its token, and records what it answered.</summary>
    private sealed class HeldDispatch
    {
        public TaskCompletionSource<CancellationToken> Entered { get; } = Bounded.NewGate<CancellationToken>();

        public TaskCompletionSource Release { get; } = Bounded.NewGate();

        public TaskCompletionSource Returned { get; } = Bounded.NewGate();

        public List<bool> Answers { get; } = new();

        public int Count { get; private set; }

        public async ValueTask DispatchAsync(Batch<int, int> batch, CancellationToken token)
        {
            try
            {
                Count = batch.Count;
                Entered.TrySetResult(token);
                await Release.Task.WaitAsync(token);
                for (var i = 0; i < batch.Count; i++)
                {
                    Answers.Add(batch.TrySetResult(i, batch[i] * 10));
                }
            }
            finally
            {
                Returned.TrySetResult();
            }
        }
    }
}
