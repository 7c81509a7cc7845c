using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.SystematicTests.HandRolled;

/// <summary>
/// The hand-rolled WaitGroup found in many codebases: an <see cref="Interlocked"/> counter plus a
/// <see cref="TaskCompletionSource"/>.
/// Flaw: nothing stops a positive Add from zero after Wait was released, so a child that calls Add
/// inside itself, after its parent's Done took the count to zero, is not waited for.
/// </summary>
internal sealed class InterlockedWaitGroup
{
    // Continuations run inline in Done (the TCS default): a continuation queued to the pool by the TCS itself is a
    // thread-pool work item Coyote does not control, which it can report as a deadlock instead of the seeded bug.
    private readonly TaskCompletionSource _zero = new();
    private int _count;

    public void Add() => Interlocked.Increment(ref _count);

    public void Done()
    {
        if (Interlocked.Decrement(ref _count) == 0)
        {
            _zero.TrySetResult();
        }
    }

    public Task WaitAsync() => Volatile.Read(ref _count) == 0 ? Task.CompletedTask : _zero.Task;
}
