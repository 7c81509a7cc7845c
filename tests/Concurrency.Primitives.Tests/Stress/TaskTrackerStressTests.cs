using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Xunit.Abstractions;

namespace Concurrency.Primitives.Tests.Stress;

/// <summary>
/// Hammers TaskTracker from many threads: go / child go / lease / Add-Done / close cycles with random
/// faults, cancellations and close timing. Every cycle checks: the count is back to zero, every fault was
/// surfaced by close, and no registration was live after close returned.
/// </summary>
public sealed class TaskTrackerStressTests
{
    private const int BaseCycles = 100_000;
    private readonly ITestOutputHelper _output;

    public TaskTrackerStressTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task GoRegisterCloseCycles_KeepEveryInvariant()
    {
        var target = BaseCycles * StressSettings.Scale;
        var seed = StressSettings.Seed;
        var totals = new Totals();
        var next = -1;
        var clock = Stopwatch.StartNew();
        using var limit = new CancellationTokenSource(StressSettings.TimeLimit);

        var workers = Enumerable.Range(0, StressSettings.Workers).Select(w => Task.Run(async () =>
        {
            var random = new Random(seed + w);
            while (Interlocked.Increment(ref next) < target)
            {
                limit.Token.ThrowIfCancellationRequested();
                await RunCycleAsync(random, totals).WaitAsync(TimeSpan.FromSeconds(60), limit.Token); // bounds a hang only
            }
        }));
        await Task.WhenAll(workers);

        _output.WriteLine(
            $"[stress] TaskTracker: {target} cycles (seed {seed}, {StressSettings.Workers} workers) in {clock.Elapsed.TotalSeconds:0.0} s: " +
            $"{totals.Registered} registrations, {totals.Faults} faults surfaced, {totals.Cancelled} slot waits cancelled, " +
            $"{totals.Rejected} top-level registrations rejected while closing, 0 invariant violations");
        totals.Faults.Should().BeGreaterThan(0);
        totals.Cancelled.Should().BeGreaterThan(0);
        totals.Rejected.Should().BeGreaterThan(0);
    }

    private static async Task RunCycleAsync(Random random, Totals totals)
    {
        var limited = random.Next(4) == 0;
        var tracker = new TaskTracker(new TaskTrackerOptions
        {
            CancelOnFirstFailure = random.Next(4) == 0,
            MaxConcurrency = limited ? 1 : null,
        });
        var state = new CycleState();
        var operations = random.Next(1, 6);
        var closeAt = random.Next(2) == 0 ? operations : random.Next(operations + 1);
        Task? close = null;
        Task[] pending = new Task[operations];

        for (var i = 0; i < operations; i++)
        {
            if (i == closeAt)
            {
                close = CloseAndObserveAsync(tracker, state);
            }

            pending[i] = StartOperationAsync(tracker, random.Next(6), random.Next(5) == 0, random.Next(2) == 0, state);
        }

        close ??= CloseAndObserveAsync(tracker, state);
        await Task.WhenAll(pending);
        await close;

        // Invariants checked after every cycle.
        Check(tracker.Count == 0, "count back to zero");
        Check(tracker.IsCompleted, "tracker complete");
        Check(state.FaultsSurfaced == Volatile.Read(ref state.FaultsThrown), $"every fault surfaced ({state.FaultsSurfaced} of {state.FaultsThrown})");
        Check(Volatile.Read(ref state.Finished) == Volatile.Read(ref state.Registered), "every registration finished before close returned");
        Check(Volatile.Read(ref state.LiveAfterClose) == 0, "no registration live after close returned");
        Check(!tracker.TryGo(_ => Task.CompletedTask), "no registration after completion");

        Interlocked.Add(ref totals.Registered, state.Registered);
        Interlocked.Add(ref totals.Faults, state.FaultsSurfaced);
        Interlocked.Add(ref totals.Cancelled, state.Cancelled);
        Interlocked.Add(ref totals.Rejected, state.Rejected);
    }

    private static async Task StartOperationAsync(TaskTracker tracker, int kind, bool fault, bool yield, CycleState state)
    {
        try
        {
            switch (kind)
            {
                case 0:
                    await tracker.Go(async _ =>
                    {
                        state.OnStart(tracker);
                        await MaybeYield(yield);
                        state.OnFinish(tracker, fault);
                    });
                    break;
                case 1:
                    await tracker.Go(async (parent, _) =>
                    {
                        state.OnStart(tracker);
                        await MaybeYield(yield);
                        parent.Go(async _ =>
                        {
                            state.OnStart(tracker);
                            await MaybeYield(!yield);
                            state.OnFinish(tracker, fault);
                        });
                        state.OnFinish(tracker, fault: false);
                    });
                    break;
                case 2:
                    var lease = tracker.Register("lease");
                    state.OnStart(tracker);
                    await Task.Run(async () =>
                    {
                        await MaybeYield(yield);
                        using var child = lease.Register("child");
                        state.OnFinish(tracker, fault: false);
                        lease.Dispose();
                        lease.Dispose(); // a second release must be a no-op
                    });
                    break;
                case 3:
                    tracker.Add();
                    state.OnStart(tracker);
                    await Task.Run(async () =>
                    {
                        await MaybeYield(yield);
                        state.OnFinish(tracker, fault: false);
                        tracker.Done();
                    });
                    break;
                case 4:
                    // Work that honours Stopping: a cancelled task is not a fault.
                    await tracker.Go(stopping =>
                    {
                        state.OnStart(tracker);
                        state.OnFinish(tracker, fault: false);
                        return stopping.IsCancellationRequested ? Task.FromCanceled(stopping) : Task.CompletedTask;
                    });
                    break;
                default:
                    // A slot wait that is cancelled (only waits when the tracker has a limit and it is busy).
                    using (var cancel = new CancellationTokenSource())
                    {
                        var go = tracker.Go(_ =>
                        {
                            state.OnStart(tracker);
                            state.OnFinish(tracker, fault);
                            return Task.CompletedTask;
                        }, "cancellable", cancel.Token);
                        await cancel.CancelAsync();
                        try
                        {
                            await go;
                        }
                        catch (OperationCanceledException)
                        {
                            Interlocked.Increment(ref state.Cancelled);
                        }
                    }

                    break;
            }
        }
        catch (InvalidOperationException) when (tracker.IsClosing)
        {
            Interlocked.Increment(ref state.Rejected);
        }
    }

    private static async Task CloseAndObserveAsync(TaskTracker tracker, CycleState state)
    {
        var close = tracker.CloseAsync(TimeSpan.FromMinutes(1));
        try
        {
            await close;
        }
        catch (InvalidOperationException)
        {
            // await throws the first failure; the task carries them all.
            var failures = close.Exception!.InnerExceptions;
            state.FaultsSurfaced = failures.Count;
            Check(failures.All(e => e is InvalidOperationException { Message: "fault" }), "only the injected faults are surfaced");
        }

        Volatile.Write(ref state.CloseReturned, 1);
    }

    private static Task MaybeYield(bool yield) => yield ? Task.Yield().AsTask() : Task.CompletedTask;

    private static void Check(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new InvalidOperationException("TaskTracker invariant violated: " + invariant);
        }
    }

    private sealed class CycleState
    {
        public int Registered;
        public int Finished;
        public int FaultsThrown;
        public int FaultsSurfaced;
        public int Cancelled;
        public int Rejected;
        public int CloseReturned;
        public int LiveAfterClose;

        public void OnStart(TaskTracker tracker)
        {
            Interlocked.Increment(ref Registered);
            if (Volatile.Read(ref CloseReturned) == 1)
            {
                Interlocked.Increment(ref LiveAfterClose);
            }
        }

        public void OnFinish(TaskTracker tracker, bool fault)
        {
            if (Volatile.Read(ref CloseReturned) == 1)
            {
                Interlocked.Increment(ref LiveAfterClose);
            }

            Interlocked.Increment(ref Finished);
            if (fault)
            {
                Interlocked.Increment(ref FaultsThrown);
                throw new InvalidOperationException("fault");
            }
        }
    }

    private sealed class Totals
    {
        public long Registered;
        public long Faults;
        public long Cancelled;
        public long Rejected;
    }
}

internal static class TaskYieldExtensions
{
    public static async Task AsTask(this System.Runtime.CompilerServices.YieldAwaitable yield) => await yield;
}
