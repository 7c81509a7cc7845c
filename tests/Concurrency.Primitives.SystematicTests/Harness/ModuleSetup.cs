using System.Runtime.CompilerServices;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives.SystematicTests.Harness;

internal static class ModuleSetup
{
    /// <summary>
    /// Coyote 1.7 schedules tasks, not raw thread-pool work items: route the library's thread-pool
    /// dispatches through tasks so that the scheduler controls them (behaviour is otherwise the same).
    /// </summary>
    [ModuleInitializer]
    internal static void RouteDispatchesThroughTasks() => PoolWorkItem.UseTaskScheduling = true;

    /// <summary>
    /// A tracker's registrations sweep its released records only once the registry has grown a little; in these small
    /// scenarios every registration sweeps, so that each sweep races the releases of the work before it.
    /// </summary>
    [ModuleInitializer]
    internal static void SweepOnEveryRegistration() => TaskTracker.MinSweepAt = 1;
}
