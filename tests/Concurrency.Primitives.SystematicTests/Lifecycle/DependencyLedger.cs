using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Coyote.Specifications;

namespace Concurrency.Primitives.SystematicTests.Lifecycle;

/// <summary>
/// Records the start and stop delegates of services that depend on each other, and asserts at each step: a service starts
/// only while everything it depends on runs (started, not yet stopping), never twice without a stop between; it stops only
/// after it started, and never while a service that depends on it still runs.
/// </summary>
internal sealed class DependencyLedger
{
    public const string StartedBeforeDependency = "started while a service it depends on was not running";
    public const string DoubleStart = "started twice without a stop in between";
    public const string StopWithoutStart = "stopped although it was not running";
    public const string StoppedUnderDependent = "stopped while a service that depends on it still runs";
    public const string LeftRunning = "still running after the stop returned";

    private readonly object _lock = new();
    private readonly Dictionary<string, string[]> _dependsOn;
    private readonly HashSet<string> _starting = new();
    private readonly HashSet<string> _running = new();

    public DependencyLedger(Dictionary<string, string[]> dependsOn) => _dependsOn = dependsOn;

    public async Task StartAsync(string name)
    {
        lock (_lock)
        {
            foreach (var dependency in _dependsOn[name])
            {
                Specification.Assert(_running.Contains(dependency), $"'{name}' {StartedBeforeDependency} ('{dependency}')");
            }

            Specification.Assert(!_running.Contains(name) && _starting.Add(name), $"'{name}' {DoubleStart}");
        }

        await Task.Yield();
        lock (_lock)
        {
            _starting.Remove(name);
            _running.Add(name);
        }
    }

    public async Task StopAsync(string name)
    {
        lock (_lock)
        {
            Specification.Assert(_running.Remove(name), $"'{name}' {StopWithoutStart}");
            foreach (var dependent in _dependsOn.Where(pair => pair.Value.Contains(name)).Select(pair => pair.Key))
            {
                Specification.Assert(!_running.Contains(dependent), $"'{name}' {StoppedUnderDependent} ('{dependent}')");
            }
        }

        await Task.Yield();
    }

    public void AssertNothingRuns()
    {
        lock (_lock)
        {
            Specification.Assert(_running.Count == 0 && _starting.Count == 0, $"'{string.Join("', '", _running.Concat(_starting))}' {LeftRunning}");
        }
    }
}
