using System;
using System.Threading;

namespace Concurrency.Primitives.SystematicTests.Harness;

/// <summary>
/// A clock that never moves: timers can be created and changed but never fire. Under Coyote every interleaving must
/// come from the controlled scheduler, so deadlines are exercised by the deterministic tests instead.
/// </summary>
internal sealed class FrozenTimeProvider : TimeProvider
{
    public static readonly FrozenTimeProvider Instance = new();

    public override DateTimeOffset GetUtcNow() => new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override long GetTimestamp() => 0;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new FrozenTimer();

    private sealed class FrozenTimer : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => true;

        public void Dispose()
        {
        }

        public System.Threading.Tasks.ValueTask DisposeAsync() => default;
    }
}
