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
}
