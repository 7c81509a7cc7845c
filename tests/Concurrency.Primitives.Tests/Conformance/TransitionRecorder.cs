using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// The counterpart of Guava's <c>RecordingListener</c>: records every <see cref="LifecycleGate.StateChanged"/> (or
/// <see cref="LifecycleGroup.StateChanged"/>) event in the order it was raised, and lets a test wait until a number of
/// events has been seen (Guava's completion latch). A gate or group releases StartAsync, StopAsync, WhenRunning and
/// WhenStopped before it raises the event of that transition, so a test waits here before it reads the history.
/// </summary>
public sealed class TransitionRecorder
{
    private readonly object _sync = new();
    private readonly List<LifecycleStateChangedEventArgs> _events = new();
    private readonly List<(Func<LifecycleStateChangedEventArgs, bool> Match, TaskCompletionSource<LifecycleStateChangedEventArgs> Signal)> _waiters = new();
    private readonly List<int> _threads = new();

    public TransitionRecorder(LifecycleGate gate)
    {
        ArgumentNullException.ThrowIfNull(gate);
        gate.StateChanged += (_, e) => Record(e);
    }

    public TransitionRecorder(LifecycleGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        group.StateChanged += (_, e) => Record(e);
    }

    public IReadOnlyList<LifecycleStateChangedEventArgs> Events
    {
        get
        {
            lock (_sync)
            {
                return _events.ToList();
            }
        }
    }

    /// <summary>Each event as (previous, current).</summary>
    public IReadOnlyList<(LifecycleState From, LifecycleState To)> Transitions => Events.Select(e => (e.Previous, e.Current)).ToList();

    /// <summary>The managed thread each event was raised on, in order.</summary>
    public IReadOnlyList<int> Threads
    {
        get
        {
            lock (_sync)
            {
                return _threads.ToList();
            }
        }
    }

    /// <summary>Completes when <paramref name="count"/> events have been recorded.</summary>
    public Task WhenSeen(int count)
    {
        var seen = 0;
        return WhenMatched(_ => ++seen >= count);
    }

    /// <summary>Completes with the first event into <paramref name="state"/> (one recorded earlier counts).</summary>
    public Task<LifecycleStateChangedEventArgs> WhenReached(LifecycleState state) => WhenMatched(e => e.Current == state);

    private Task<LifecycleStateChangedEventArgs> WhenMatched(Func<LifecycleStateChangedEventArgs, bool> match)
    {
        lock (_sync)
        {
            foreach (var earlier in _events)
            {
                if (match(earlier))
                {
                    return Task.FromResult(earlier);
                }
            }

            var signal = new TaskCompletionSource<LifecycleStateChangedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, signal));
            return signal.Task;
        }
    }

    private void Record(LifecycleStateChangedEventArgs e)
    {
        List<TaskCompletionSource<LifecycleStateChangedEventArgs>> matched;
        lock (_sync)
        {
            _events.Add(e);
            _threads.Add(Environment.CurrentManagedThreadId);
            matched = _waiters.Where(w => w.Match(e)).Select(w => w.Signal).ToList();
            _waiters.RemoveAll(w => matched.Contains(w.Signal));
        }

        foreach (var signal in matched)
        {
            signal.TrySetResult(e);
        }
    }
}
