using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// Each of the batcher's log events (README, "Logging and metrics") is written when its situation happens, at its level,
/// with the figures an operator reads: what failed, how many items it took with it, how long it ran.
/// </summary>
public sealed class BatcherLogTests
{
    private static BatcherOptions Options(RecordingLogger logger, TimeProvider? time = null, int size = 4) => new()
    {
        Name = "loader",
        MaxBatchSize = size,
        MaxDelay = TimeSpan.FromHours(1), // only the size trigger
        TimeProvider = time,
        Logger = logger,
    };

    [Fact]
    public async Task AFaultedDispatch_IsLoggedWithItsSizeAndTheItemsItFailed()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, 0);
                throw new InvalidOperationException("database stalled");
            },
            Options(logger, size: 3));

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        await Task.WhenAll(calls).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchDispatchException>();

        var entry = await logger.WaitFor(e => e.EventId == 3001).OrHang();
        entry.Level.Should().Be(LogLevel.Error);
        entry["Batcher"].Should().Be("loader");
        entry["Count"].Should().Be(3);
        entry["Swept"].Should().Be(2);
        entry.Exception!.Message.Should().Be("database stalled");
    }

    [Fact]
    public async Task ADispatchThatLeavesItemsUnanswered_IsLoggedWithHowManyOfHowMany()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                batch.TrySetResult(0, 0);
                return default;
            },
            Options(logger, size: 3));

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();
        await Task.WhenAll(calls).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchItemNotCompletedException>();

        var entry = await logger.WaitFor(e => e.EventId == 3002).OrHang();
        entry.Level.Should().Be(LogLevel.Warning);
        entry["Count"].Should().Be(3);
        entry["Swept"].Should().Be(2);
    }

    [Fact]
    public async Task ADispatchThatAnswersEveryItem_LogsNothingAboveDebug()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, i);
                }

                return default;
            },
            Options(logger, size: 2));

        await Task.WhenAll(batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask()).OrHang();
        await batcher.CloseAsync().OrHang();

        logger.Entries.Should().NotContain(e => e.Level > LogLevel.Information);
        logger.Entries.Should().NotContain(e => e.EventId == 3002, "nothing was left unanswered");
    }

    [Fact]
    public async Task AListDispatchReturningTheWrongNumberOfResults_IsLoggedWithBothCounts()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) => new ValueTask<IReadOnlyList<int>>(new[] { 1 }),
            Options(logger, size: 2));

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await Task.WhenAll(calls).Invoking(t => t.OrHang()).Should().ThrowAsync<Exception>();

        var entry = await logger.WaitFor(e => e.EventId == 3003).OrHang();
        entry.Level.Should().Be(LogLevel.Error);
        entry["Count"].Should().Be(2);
        entry["Results"].Should().Be(1);
    }

    [Fact]
    public async Task AListDispatchReturningNull_IsLoggedAsNoResults()
    {
        var logger = new RecordingLogger();
        var batcher = new Batcher<int, int>(
            (IReadOnlyList<int> items, CancellationToken _) => new ValueTask<IReadOnlyList<int>>((IReadOnlyList<int>)null!),
            Options(logger, size: 2));

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await Task.WhenAll(calls).Invoking(t => t.OrHang()).Should().ThrowAsync<Exception>();

        (await logger.WaitFor(e => e.EventId == 3003).OrHang())["Results"].Should().Be(0);
    }

    [Fact]
    public async Task AHungDispatch_IsLoggedAtItsTimeout_AndAgainWhenItFinallyReturns_WithHowLongItRan()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var options = Options(logger, time, size: 2);
        options.DispatchTimeout = TimeSpan.FromSeconds(2);
        var batcher = new Batcher<int, int>(
            async (_, _) =>
            {
                entered.TrySetResult();
                await release.Task; // ignores its token
            },
            options);

        var calls = new[] { batcher.SubmitAsync(1).AsTask(), batcher.SubmitAsync(2).AsTask() };
        await entered.Task.OrHang();
        time.Advance(TimeSpan.FromSeconds(2));
        await Task.WhenAll(calls).Invoking(t => t.OrHang()).Should().ThrowAsync<BatchTimeoutException>();

        var timedOut = await logger.WaitFor(e => e.EventId == 3004).OrHang();
        timedOut.Level.Should().Be(LogLevel.Warning);
        timedOut["Count"].Should().Be(2);
        timedOut["Timeout"].Should().Be(TimeSpan.FromSeconds(2));
        logger.Entries.Should().NotContain(e => e.EventId == 3005, "the dispatch has not returned yet");

        time.Advance(TimeSpan.FromSeconds(3));
        release.SetResult();

        var returned = await logger.WaitFor(e => e.EventId == 3005).OrHang();
        returned.Level.Should().Be(LogLevel.Information);
        returned["Elapsed"].Should().Be(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task TheShutdown_IsLoggedWithItsModeAndWhatItFound_AndItsTimeoutWithWhatStillRuns()
    {
        var time = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var entered = Bounded.NewGate();
        var options = Options(logger, time, size: 1);
        options.ShutdownMode = BatcherShutdownMode.FailPending;
        options.MaxConcurrency = 1;
        var batcher = new Batcher<int, int>(
            (_, _) =>
            {
                entered.TrySetResult();
                return new ValueTask(Bounded.NewGate().Task); // never returns
            },
            options);

        var running = batcher.SubmitAsync(1).AsTask();
        await entered.Task.OrHang();
        var queued = new[] { batcher.SubmitAsync(2).AsTask(), batcher.SubmitAsync(3).AsTask() };

        var close = batcher.CloseAsync(TimeSpan.FromSeconds(7));
        var started = logger.Entries.Should().ContainSingle(e => e.EventId == 3006).Which;
        started.Level.Should().Be(LogLevel.Information);
        started["Mode"].Should().Be(BatcherShutdownMode.FailPending);
        started["Queued"].Should().Be(2);
        started["InFlight"].Should().Be(1);
        await Task.WhenAll(queued).Invoking(t => t.OrHang()).Should().ThrowAsync<Exception>();

        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(7));
        await close.Invoking(c => c.OrHang()).Should().ThrowAsync<ShutdownTimeoutException>();

        var timedOut = logger.Entries.Should().ContainSingle(e => e.EventId == 3007).Which;
        timedOut.Level.Should().Be(LogLevel.Warning);
        timedOut["Timeout"].Should().Be(TimeSpan.FromSeconds(7));
        timedOut["InFlight"].Should().Be(1);
        running.IsCompleted.Should().BeFalse();
    }
}
