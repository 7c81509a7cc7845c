using System;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// A <see cref="TimeProvider"/>'s timestamps, read cheaply. With the system clock (on net8.0 and later) it is the
/// millisecond tick count, read in a few nanoseconds where a high-resolution timestamp costs a clock call; with any
/// other provider (a test's fake clock) it is that provider's own timestamp. For deadlines and ages, not for timing.
/// </summary>
internal readonly struct CoarseClock
{
    private readonly TimeProvider _time;
    private readonly bool _system;

    public CoarseClock(TimeProvider time)
    {
        _time = time;
#if NET8_0_OR_GREATER
        _system = ReferenceEquals(time, TimeProvider.System);
#else
        _system = false;
#endif
    }

    /// <summary>Timestamp units per second.</summary>
    public long TicksPerSecond => _system ? 1000 : _time.TimestampFrequency;

    public long Now() =>
#if NET8_0_OR_GREATER
        _system ? Environment.TickCount64 : _time.GetTimestamp();
#else
        _time.GetTimestamp();
#endif

    /// <summary>The span between two timestamps of this clock (negative spans become zero).</summary>
    public TimeSpan Between(long from, long to) =>
        to <= from ? TimeSpan.Zero : TimeSpan.FromTicks((long)((to - from) * ((double)TimeSpan.TicksPerSecond / TicksPerSecond)));

    /// <summary>A span in this clock's units, rounded up.</summary>
    public long ToTicks(TimeSpan span) => (long)Math.Ceiling(span.TotalSeconds * TicksPerSecond);
}
