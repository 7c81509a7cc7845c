using System.Threading;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Atomic bit operations that return the value they replaced: <see cref="Interlocked"/>'s own on net8.0, a
/// compare-and-swap loop on netstandard2.0 (which lacks <c>Interlocked.And</c> and <c>Interlocked.Or</c>).
/// </summary>
internal static class AtomicBits
{
    /// <summary>Sets <paramref name="bits"/> in <paramref name="location"/>; returns the value before.</summary>
    public static int Set(ref int location, int bits)
    {
#if NET8_0_OR_GREATER
        return Interlocked.Or(ref location, bits);
#else
        var value = Volatile.Read(ref location);
        while (Interlocked.CompareExchange(ref location, value | bits, value) is var seen && seen != value)
        {
            value = seen;
        }

        return value;
#endif
    }

    /// <summary>Clears <paramref name="bits"/> in <paramref name="location"/>; returns the value before.</summary>
    public static int Clear(ref int location, int bits)
    {
#if NET8_0_OR_GREATER
        return Interlocked.And(ref location, ~bits);
#else
        var value = Volatile.Read(ref location);
        while (Interlocked.CompareExchange(ref location, value & ~bits, value) is var seen && seen != value)
        {
            value = seen;
        }

        return value;
#endif
    }
}
