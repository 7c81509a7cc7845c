using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Benchmarks.HandRolled;

/// <summary>
/// The hurried WaitGroup: an Interlocked counter plus a TaskCompletionSource, renewed when the count leaves zero.
/// Flaw: an Add from zero after Wait was released is accepted, so a child that registers itself is not waited for.
/// </summary>
public sealed class TcsWaitGroup
{
    private int _count;
    private TaskCompletionSource _zero = NewSignal(completed: true);

    public void Add()
    {
        if (Interlocked.Increment(ref _count) == 1)
        {
            Volatile.Write(ref _zero, NewSignal(completed: false));
        }
    }

    public void Done()
    {
        if (Interlocked.Decrement(ref _count) == 0)
        {
            Volatile.Read(ref _zero).TrySetResult();
        }
    }

    public Task WaitAsync() => Volatile.Read(ref _zero).Task;

    private static TaskCompletionSource NewSignal(bool completed)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (completed)
        {
            signal.SetResult();
        }

        return signal;
    }
}
