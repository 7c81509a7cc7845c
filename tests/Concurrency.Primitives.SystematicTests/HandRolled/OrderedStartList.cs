using System;
using System.Collections.Generic;
using System.Threading.Tasks;

namespace Concurrency.Primitives.SystematicTests.HandRolled;

/// <summary>
/// The hand-rolled ordered start: services in a list, started one by one in a loop, stopped in reverse, no rollback.
/// Flaw: nothing orders a stop against a start in progress. The stop walks the list backwards while the start is still
/// walking it forwards: it stops services that have not started, stops a dependency under a dependent the start then
/// brings up, and returns while the start goes on starting services nobody will stop. A start that fails part-way leaves
/// what it started running.
/// </summary>
internal sealed class OrderedStartList
{
    private readonly List<(Func<Task> Start, Func<Task> Stop)> _services = new();

    public void Add(Func<Task> start, Func<Task> stop) => _services.Add((start, stop));

    public async Task StartAsync()
    {
        foreach (var service in _services)
        {
            await service.Start();
        }
    }

    public async Task StopAsync()
    {
        for (var i = _services.Count - 1; i >= 0; i--)
        {
            await _services[i].Stop();
        }
    }
}
