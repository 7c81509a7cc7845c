using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>A context like a UI thread's that is blocked: it accepts posted work and never runs it.</summary>
public sealed class BlockedContext : SynchronizationContext
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private int _posts;

    public int Posts => Volatile.Read(ref _posts);

    /// <summary>Starts the calls on a thread whose context never runs posted work, blocks on each, and returns how many posts it got.</summary>
    public static int BlockOn(Func<IReadOnlyList<Task>> calls)
    {
        var context = new BlockedContext();
        var previous = Current;
        SetSynchronizationContext(context);
        try
        {
            foreach (var call in calls())
            {
#pragma warning disable VSTHRD002 // a synchronous wait on the blocked context is the point of the test
                call.Wait(Bound).Should().BeTrue("a call blocked on by its caller's context must complete without that context");
#pragma warning restore VSTHRD002
            }
        }
        finally
        {
            SetSynchronizationContext(previous);
        }

        return context.Posts;
    }

    public override void Post(SendOrPostCallback d, object? state) => Interlocked.Increment(ref _posts);

    public override void Send(SendOrPostCallback d, object? state) => throw new InvalidOperationException("The context is blocked.");
}

/// <summary>A context that counts what is posted to it and runs it on the thread pool (so that a capture shows in the count, not as a hang).</summary>
public sealed class CountingContext : SynchronizationContext
{
    private int _posts;

    public int Posts => Volatile.Read(ref _posts);

    public override void Post(SendOrPostCallback d, object? state)
    {
        Interlocked.Increment(ref _posts);
        ThreadPool.QueueUserWorkItem(_ => d(state));
    }
}
