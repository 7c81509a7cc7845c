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
    private readonly TaskCompletionSource _zero = new(TaskCreationOptions.RunContinuationsAsynchronously);
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
