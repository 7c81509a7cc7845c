using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.Reporting;
using Concurrency.Primitives.Benchmarks.HandRolled;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>
/// One registration plus its release, per operation: the WaitGroup's hot path. With more than one thread,
/// the threads share one counter (contention).
/// </summary>
[MemoryDiagnoser]
public class TrackerRegisterDoneBenchmarks
{
    private const int Operations = 100_000;

    private int _interlocked;
    private TcsWaitGroup _handRolled = null!;
    private CountdownEvent _countdown = null!;
    private Nito.AsyncEx.AsyncCountdownEvent _nito = null!;
    private DotNext.Threading.AsyncCountdownEvent _dotNext = null!;
    private TaskTracker _tracker = null!;
    private TaskTracker _watched = null!;

    [ParamsSource(nameof(ThreadCounts))]
    public int Threads { get; set; }

    /// <summary>Quick: 2 (two threads contending for the count); full: 1 and 2.</summary>
    public static IEnumerable<int> ThreadCounts => Profile.Pick(quick: new[] { 2 }, full: new[] { 1, 2 });

    [GlobalSetup]
    public void Setup()
    {
        _handRolled = new TcsWaitGroup();
        _countdown = new CountdownEvent(1);
        _nito = new Nito.AsyncEx.AsyncCountdownEvent(1);
        _dotNext = new DotNext.Threading.AsyncCountdownEvent(1);
        _tracker = new TaskTracker();
        _watched = new TaskTracker(new TaskTrackerOptions { LongRunningThreshold = TimeSpan.FromMinutes(1) });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _countdown.Dispose();
        _dotNext.Dispose();
    }

    // Each operation is a struct so that the JIT specialises and inlines it into the loop: the loop costs the
    // same for every row and the ratios compare only the operations.
    private interface IOperation
    {
        void Invoke(TrackerRegisterDoneBenchmarks b);
    }

    [Case(CaseKind.Floor)]
    [Benchmark(Description = "Interlocked pair (floor)", OperationsPerInvoke = Operations)]
    public void InterlockedPair() => Run<InterlockedOp>();

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "hand-rolled TCS WaitGroup", OperationsPerInvoke = Operations)]
    public void HandRolled() => Run<HandRolledOp>();

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "CountdownEvent", OperationsPerInvoke = Operations)]
    public void Countdown() => Run<CountdownOp>();

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Nito AsyncCountdownEvent", OperationsPerInvoke = Operations)]
    public void Nito() => Run<NitoOp>();

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "DotNext AsyncCountdownEvent", OperationsPerInvoke = Operations)]
    public void DotNext() => Run<DotNextOp>();

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "TaskTracker Add/Done", OperationsPerInvoke = Operations)]
    public void TrackerAddDone() => Run<TrackerOp>();

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "TaskTracker named lease", OperationsPerInvoke = Operations)]
    public void TrackerLease() => Run<LeaseOp>();

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "TaskTracker named lease, watchdog on", OperationsPerInvoke = Operations)]
    public void TrackerLeaseWatched() => Run<WatchedLeaseOp>();

    private void Run<TOperation>()
        where TOperation : struct, IOperation
    {
        if (Threads == 1)
        {
            for (var i = 0; i < Operations; i++)
            {
                default(TOperation).Invoke(this);
            }

            return;
        }

        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ =>
        {
            for (var i = 0; i < Operations / Threads; i++)
            {
                default(TOperation).Invoke(this);
            }
        });
    }

    private struct InterlockedOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            Interlocked.Increment(ref b._interlocked);
            Interlocked.Decrement(ref b._interlocked);
        }
    }

    private struct HandRolledOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            b._handRolled.Add();
            b._handRolled.Done();
        }
    }

    private struct CountdownOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            b._countdown.AddCount();
            b._countdown.Signal();
        }
    }

    private struct NitoOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            b._nito.AddCount();
            b._nito.Signal();
        }
    }

    private struct DotNextOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            b._dotNext.AddCount();
            b._dotNext.Signal();
        }
    }

    private struct TrackerOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b)
        {
            b._tracker.Add();
            b._tracker.Done();
        }
    }

    private struct LeaseOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b) => b._tracker.Register("lease").Dispose();
    }

    private struct WatchedLeaseOp : IOperation
    {
        public void Invoke(TrackerRegisterDoneBenchmarks b) => b._watched.Register("lease").Dispose();
    }
}

/// <summary>Starting N pieces of work on the thread pool and waiting for all of them.</summary>
[MemoryDiagnoser]
public class TrackerGoCloseBenchmarks
{
    private static readonly Func<CancellationToken, Task> SyncWork = static _ => Task.CompletedTask;
    private static readonly Func<CancellationToken, Task> YieldingWork = static async _ => await Task.Yield();

    private Func<CancellationToken, Task> _work = null!;

    [Params(1_000)]
    public int Tasks { get; set; }

    [ParamsSource(nameof(WorkKinds))]
    public string Work { get; set; } = "sync";

    /// <summary>Quick: "yield" (work that really awaits); full: "sync" and "yield".</summary>
    public static IEnumerable<string> WorkKinds => Profile.Pick(quick: new[] { "yield" }, full: new[] { "sync", "yield" });

    [GlobalSetup]
    public void Setup() => _work = Work == "sync" ? SyncWork : YieldingWork;

    [Case(CaseKind.Alternative)]
    [Benchmark(Baseline = true, Description = "Task.Run + Task.WhenAll")]
    public Task RunWhenAll()
    {
        var work = _work;
        var tasks = new Task[Tasks];
        for (var i = 0; i < tasks.Length; i++)
        {
            tasks[i] = Task.Run(() => work(CancellationToken.None));
        }

        return Task.WhenAll(tasks);
    }

    [Case(CaseKind.HandRolled)]
    [Benchmark(Description = "hand-rolled WaitGroup + Task.Run")]
    public Task HandRolledWaitGroup()
    {
        var work = _work;
        var group = new TcsWaitGroup();
        for (var i = 0; i < Tasks; i++)
        {
            group.Add();
            _ = Task.Run(async () =>
            {
                try
                {
                    await work(CancellationToken.None);
                }
                finally
                {
                    group.Done();
                }
            });
        }

        return group.WaitAsync();
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "TaskTracker Go + CloseAsync")]
    public Task TrackerGoClose()
    {
        var tracker = new TaskTracker();
        for (var i = 0; i < Tasks; i++)
        {
            _ = tracker.Go(_work);
        }

        return tracker.CloseAsync();
    }
}
