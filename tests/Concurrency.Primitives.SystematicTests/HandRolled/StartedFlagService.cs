using System;
using System.Threading.Tasks;

namespace Concurrency.Primitives.SystematicTests.HandRolled;

/// <summary>
/// The "started" flag of the high-availability incident: a volatile bool checked, then set.
/// Flaw: check-then-act. Two concurrent starts both see false and both start; a stop racing a start can
/// see the flag before the start set it and skip, or stop a start that has not finished.
/// </summary>
internal sealed class StartedFlagService
{
    private readonly Func<Task> _start;
    private readonly Func<Task> _stop;
    private volatile bool _started;

    public StartedFlagService(Func<Task> start, Func<Task> stop)
    {
        _start = start;
        _stop = stop;
    }

    public async Task StartAsync()
    {
        if (_started)
        {
            return;
        }

        await _start();
        _started = true;
    }

    public async Task StopAsync()
    {
        if (!_started)
        {
            return;
        }

        _started = false;
        await _stop();
    }
}
