using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives;

/// <summary>
/// What a <see cref="LifecycleGroup"/> drives: a <see cref="LifecycleGate"/>, or another group. Both keep the gate's
/// state machine, so a group can stand wherever a gate does.
/// </summary>
internal interface ILifecycleMember
{
    string Name { get; }

    LifecycleState State { get; }

    string? PendingStopStep { get; }

    Exception? Fault { get; }

    event EventHandler<LifecycleStateChangedEventArgs>? StateChanged;

    Task<bool> StartAsync(CancellationToken cancellationToken);

    Task<bool> StopAsync(CancellationToken cancellationToken);

    /// <summary>Claims the member for <paramref name="group"/>; <see langword="false"/> if another group already holds it.</summary>
    bool TryJoin(LifecycleGroup group);

    /// <summary>The group that holds this member, if any.</summary>
    LifecycleGroup? Group { get; }
}
