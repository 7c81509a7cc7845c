using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// A gate whose start, run and stop write to a shared journal (<c>start:name</c>, <c>stop:name</c>) and can be held,
/// failed or faulted by the test through gates: what a group test arranges its gates with.
/// </summary>
public sealed class ScriptedGate
{
    private readonly ConcurrentQueue<string> _journal;
    private TaskCompletionSource<Exception> _runFault = Bounded.NewGate<Exception>();

    public ScriptedGate(string name, ConcurrentQueue<string> journal, LifecycleGateOptions? options = null)
    {
        _journal = journal;
        options ??= new LifecycleGateOptions();
        options.Name = name;
        Gate = new LifecycleGate(StartAsync, RunAsync, StopAsync, options);
    }

    public LifecycleGate Gate { get; }

    /// <summary>Completes when the start delegate has begun.</summary>
    public TaskCompletionSource StartEntered { get; set; } = Bounded.NewGate();

    /// <summary>Completes when the stop delegate has begun.</summary>
    public TaskCompletionSource StopEntered { get; } = Bounded.NewGate();

    /// <summary>When set, the start waits for it (or for its token) before it returns.</summary>
    public Task? HoldStart { get; set; }

    /// <summary>When set, the stop waits for it before it returns.</summary>
    public Task? HoldStop { get; set; }

    /// <summary>When set, the start throws it.</summary>
    public Exception? StartFailure { get; set; }

    /// <summary>
    /// Makes the run end on its own with <paramref name="fault"/>: the run now in progress, or the next one. A run that
    /// ends with it uses it up, so the run of a later cycle (after a restart) lasts until its own fault or stop.
    /// </summary>
    public void FaultRun(Exception fault) => Volatile.Read(ref _runFault).TrySetResult(fault);

    private async Task StartAsync(LifecycleContext context, CancellationToken token)
    {
        _journal.Enqueue("start:" + Gate.Name);
        StartEntered.TrySetResult();
        if (HoldStart is { } hold)
        {
            await hold.WaitAsync(token);
        }

        if (StartFailure is { } failure)
        {
            throw failure;
        }

        _journal.Enqueue("running:" + Gate.Name);
    }

    private async Task RunAsync(CancellationToken token)
    {
        var cancelled = Bounded.NewGate();
        var fault = Volatile.Read(ref _runFault);
        using (token.Register(() => cancelled.TrySetResult()))
        {
            if (await Task.WhenAny(fault.Task, cancelled.Task) == fault.Task)
            {
                Interlocked.CompareExchange(ref _runFault, Bounded.NewGate<Exception>(), fault); // used up by this run
                throw await fault.Task;
            }
        }
    }

    private async Task StopAsync(CancellationToken token)
    {
        _journal.Enqueue("stop:" + Gate.Name);
        StopEntered.TrySetResult();
        if (HoldStop is { } hold)
        {
            await hold;
        }
    }
}
