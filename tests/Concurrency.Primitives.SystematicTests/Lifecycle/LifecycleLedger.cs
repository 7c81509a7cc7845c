using System.Threading.Tasks;
using Microsoft.Coyote.Specifications;

namespace Concurrency.Primitives.SystematicTests.Lifecycle;

/// <summary>
/// Records start, run and stop delegates as they execute and asserts, at each step, the lifecycle invariants:
/// starts and stops alternate (never two starts without a stop between, never a stop without a start), and the
/// run is never live while a stop step runs.
/// </summary>
internal sealed class LifecycleLedger
{
    public const string DoubleStart = "The start delegate ran twice without a stop in between";
    public const string StopWithoutStart = "The stop delegate ran for a component that was not started";
    public const string StopUnderRun = "A stop step ran while the run was still live";

    private readonly object _lock = new();
    private int _starts;
    private int _stops;
    private bool _runLive;

    public int Starts
    {
        get
        {
            lock (_lock)
            {
                return _starts;
            }
        }
    }

    public async Task StartAsync()
    {
        lock (_lock)
        {
            Specification.Assert(_starts == _stops, DoubleStart);
            _starts++;
        }

        await Task.Yield();
    }

    public async Task StopAsync()
    {
        lock (_lock)
        {
            Specification.Assert(_starts == _stops + 1, StopWithoutStart);
            Specification.Assert(!_runLive, StopUnderRun);
        }

        await Task.Yield();
        lock (_lock)
        {
            _stops++;
        }
    }

    public void RunEntered()
    {
        lock (_lock)
        {
            _runLive = true;
        }
    }

    public void RunReturned()
    {
        lock (_lock)
        {
            _runLive = false;
        }
    }
}
