using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Benchmarks.HandRolled;

/// <summary>
/// The mutex-held start-once / stop-if-started fix of the high-availability incident.
/// Flaw: the semaphore is held for the whole start and stop, so every concurrent caller queues behind a slow start
/// (and cannot cancel once inside); it owns no run and no teardown order.
/// </summary>
public sealed class SemaphoreStartedFlag : IDisposable
{
    private readonly SemaphoreSlim _mutex = new(1, 1);
    private readonly Func<Task> _start;
    private readonly Func<Task> _stop;
    private bool _started;

    public SemaphoreStartedFlag(Func<Task> start, Func<Task> stop)
    {
        _start = start;
        _stop = stop;
    }

    public async Task<bool> StartOnceAsync()
    {
        await _mutex.WaitAsync();
        try
        {
            if (_started)
            {
                return false;
            }

            await _start();
            _started = true;
            return true;
        }
        finally
        {
            _mutex.Release();
        }
    }

    public async Task<bool> StopIfStartedAsync()
    {
        await _mutex.WaitAsync();
        try
        {
            if (!_started)
            {
                return false;
            }

            await _stop();
            _started = false;
            return true;
        }
        finally
        {
            _mutex.Release();
        }
    }

    public void Dispose() => _mutex.Dispose();
}
