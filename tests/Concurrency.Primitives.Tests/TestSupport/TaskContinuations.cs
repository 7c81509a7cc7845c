using System;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Tells a test when code under test has handed its wait for a task over (registered a continuation on it), so that the
/// test completes the task only then: completed earlier, the code would find it done and never register at all. Reads
/// the runtime's own field for a task's continuations (stable since .NET Core 1.0; the tests run on one runtime).
/// </summary>
public static class TaskContinuations
{
    private static readonly FieldInfo Continuation = typeof(Task).GetField("m_continuationObject", BindingFlags.NonPublic | BindingFlags.Instance)
        ?? throw new InvalidOperationException("This runtime's Task has no m_continuationObject field: TaskContinuations needs another way to see a registration.");

    /// <summary>Returns once something awaits <paramref name="task"/> (still pending); fails the test after <see cref="Bounded.HangLimit"/>.</summary>
    public static void WaitUntilAwaited(Task task)
    {
        if (!SpinWait.SpinUntil(() => Continuation.GetValue(task) is not null, Bounded.HangLimit))
        {
            throw new TimeoutException("Nothing registered a continuation on the task within the hang limit.");
        }
    }
}
