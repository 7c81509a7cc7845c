using System;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using Concurrency.Primitives.Benchmarks.Reporting;
using Concurrency.Primitives.Benchmarks.HandRolled;

namespace Concurrency.Primitives.Benchmarks;

/// <summary>StartAsync on a component that is already running: the call every request path makes.</summary>
[MemoryDiagnoser]
public class GateStartRunningBenchmarks
{
    private const int Calls = 1_000;

    private LifecycleGate _gate = null!;
    private SemaphoreStartedFlag _flag = null!;
    private Lazy<Task> _lazy = null!;
    private Nito.AsyncEx.AsyncLazy<bool> _asyncLazy = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _gate = new LifecycleGate(start: (_, _) => Task.CompletedTask);
        await _gate.StartAsync();
        _flag = new SemaphoreStartedFlag(() => Task.CompletedTask, () => Task.CompletedTask);
        await _flag.StartOnceAsync();
#pragma warning disable VSTHRD011 // the alternative users write; its factory here cannot deadlock
        _lazy = new Lazy<Task>(() => Task.CompletedTask);
#pragma warning restore VSTHRD011
        await _lazy.Value;
        _asyncLazy = new Nito.AsyncEx.AsyncLazy<bool>(() => Task.FromResult(true));
        await _asyncLazy;
    }

    [GlobalCleanup]
    public void Cleanup() => _flag.Dispose();

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "SemaphoreSlim-guarded flag", OperationsPerInvoke = Calls)]
    public async Task Flag()
    {
        for (var i = 0; i < Calls; i++)
        {
            await _flag.StartOnceAsync();
        }
    }

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Lazy<Task>", OperationsPerInvoke = Calls)]
    public async Task LazyTask()
    {
        for (var i = 0; i < Calls; i++)
        {
            await _lazy.Value;
        }
    }

    [Case(CaseKind.Alternative)]
    [Benchmark(Description = "Nito AsyncLazy", OperationsPerInvoke = Calls)]
    public async Task AsyncLazy()
    {
        for (var i = 0; i < Calls; i++)
        {
            await _asyncLazy;
        }
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "LifecycleGate.StartAsync", OperationsPerInvoke = Calls)]
    public async Task Gate()
    {
        for (var i = 0; i < Calls; i++)
        {
            await _gate.StartAsync();
        }
    }
}

/// <summary>A full start and stop of a component with trivial start and stop delegates.</summary>
[MemoryDiagnoser]
public class GateCycleBenchmarks
{
    private LifecycleGate _gate = null!;
    private LifecycleGate _gateWithRun = null!;
    private SemaphoreStartedFlag _flag = null!;

    [GlobalSetup]
    public void Setup()
    {
        _gate = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            stop: _ => Task.CompletedTask,
            options: new LifecycleGateOptions { AllowRestart = true });
        _gateWithRun = new LifecycleGate(
            start: (_, _) => Task.CompletedTask,
            run: token => Task.Delay(System.Threading.Timeout.Infinite, token),
            stop: _ => Task.CompletedTask,
            options: new LifecycleGateOptions { AllowRestart = true });
        _flag = new SemaphoreStartedFlag(() => Task.CompletedTask, () => Task.CompletedTask);
    }

    [GlobalCleanup]
    public void Cleanup() => _flag.Dispose();

    [Case(CaseKind.HandRolled)]
    [Benchmark(Baseline = true, Description = "mutex-held startOnce/stopIfStarted")]
    public async Task Flag()
    {
        await _flag.StartOnceAsync();
        await _flag.StopIfStartedAsync();
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "LifecycleGate start+stop")]
    public async Task Gate()
    {
        await _gate.StartAsync();
        await _gate.StopAsync();
    }

    [Case(CaseKind.Ours)]
    [Benchmark(Description = "LifecycleGate start+run+stop")]
    public async Task GateWithRun()
    {
        await _gateWithRun.StartAsync();
        await _gateWithRun.StopAsync();
    }
}
