using System;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Concurrency.Primitives.Internal;

/// <summary>Argument validation at the public boundary, the same on every target framework.</summary>
internal static class Guard
{
    /// <summary>The longest finite timeout the timer machinery accepts (<see cref="uint.MaxValue"/> - 1 milliseconds).</summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMilliseconds(uint.MaxValue - 1.0);

    public static T NotNull<T>([NotNull] T? value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
        where T : class
    {
        if (value is null)
        {
            ThrowArgumentNull(paramName);
        }

        return value;
    }

    public static int Positive(int value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value <= 0)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be greater than zero.");
        }

        return value;
    }

    /// <summary>Accepts <see cref="Timeout.InfiniteTimeSpan"/> or a finite, non-negative span the timers can represent.</summary>
    public static TimeSpan Timeout(TimeSpan value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value != System.Threading.Timeout.InfiniteTimeSpan && (value < TimeSpan.Zero || value > MaxTimeout))
        {
            throw new ArgumentOutOfRangeException(
                paramName,
                value,
                $"{paramName} must be non-negative and at most {MaxTimeout.TotalMilliseconds} ms, or Timeout.InfiniteTimeSpan.");
        }

        return value;
    }

    /// <summary>Accepts <see cref="Timeout.InfiniteTimeSpan"/> or a positive span the timers can represent (for a bound where zero means nothing).</summary>
    public static TimeSpan PositiveOrInfinite(TimeSpan value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value != System.Threading.Timeout.InfiniteTimeSpan && (value <= TimeSpan.Zero || value > MaxTimeout))
        {
            throw new ArgumentOutOfRangeException(
                paramName,
                value,
                $"{paramName} must be greater than zero and at most {MaxTimeout.TotalMilliseconds} ms, or Timeout.InfiniteTimeSpan for no bound.");
        }

        return value;
    }

    /// <summary>Accepts only a finite, positive span: for waits that the design requires to be bounded.</summary>
    public static TimeSpan FinitePositive(TimeSpan value, [CallerArgumentExpression(nameof(value))] string? paramName = null)
    {
        if (value <= TimeSpan.Zero || value > MaxTimeout)
        {
            throw new ArgumentOutOfRangeException(
                paramName,
                value,
                $"{paramName} must be greater than zero and at most {MaxTimeout.TotalMilliseconds} ms; this wait must be bounded.");
        }

        return value;
    }

    [DoesNotReturn]
    private static void ThrowArgumentNull(string? paramName) => throw new ArgumentNullException(paramName);
}
