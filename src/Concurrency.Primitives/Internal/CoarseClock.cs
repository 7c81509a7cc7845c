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

    /// <summary>Whether this is the system clock read as the tick count (milliseconds), rather than a provider's own timestamps.</summary>
    public bool IsSystem => _system;

    /// <summary>Timestamp units per second.</summary>
    public long TicksPerSecond => _system ? 1000 : _time.TimestampFrequency;

    public long Now() =>
#if NET8_0_OR_GREATER
        _system ? Environment.TickCount64 : _time.GetTimestamp();
#else
        _time.GetTimestamp();
#endif

    /// <summary>
    /// The span between two timestamps of this clock (negative spans become zero), rounded up to a whole
    /// <see cref="TimeSpan"/> tick: a timer set for it fires no earlier than the later timestamp.
    /// </summary>
    public TimeSpan Between(long from, long to) =>
        to <= from ? TimeSpan.Zero : TimeSpan.FromTicks(ScaleUp(to - from, TimeSpan.TicksPerSecond, TicksPerSecond));

    /// <summary>
    /// A span (zero or more) in this clock's units, rounded up: a whole number of units stays that number (in integers,
    /// not floating point, where 70 ms came out as 700,001 ticks and a deadline or a MaxDelay a unit late).
    /// </summary>
    public long ToTicks(TimeSpan span) => span <= TimeSpan.Zero ? 0 : ScaleUp(span.Ticks, TicksPerSecond, TimeSpan.TicksPerSecond);

    /// <summary>
    /// <paramref name="value"/> × <paramref name="multiplier"/> ÷ <paramref name="divisor"/>, rounded up, exactly, for a
    /// positive <paramref name="value"/>; <see cref="long.MaxValue"/> where it does not fit.
    /// </summary>
    private static long ScaleUp(long value, long multiplier, long divisor)
    {
        if (multiplier % divisor == 0)
        {
            var factor = multiplier / divisor;
            return value > long.MaxValue / factor ? long.MaxValue : value * factor;
        }

        if (divisor % multiplier == 0)
        {
            var step = divisor / multiplier;
            return (value / step) + (value % step == 0 ? 0 : 1);
        }

        // Any other pair of frequencies (a clock with its own): exact in decimal for every long times any frequency
        // below about 8 GHz, and rare (a timer armed, a duration logged), so its cost does not matter.
        var scaled = decimal.Ceiling((decimal)value * multiplier / divisor);
        return scaled >= long.MaxValue ? long.MaxValue : (long)scaled;
    }
}
