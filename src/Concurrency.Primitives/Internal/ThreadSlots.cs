using System;
using System.Threading;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// Per-thread slots for the caches of generic types. A thread-static field of a generic type is reached through a
/// runtime helper on every access; this class is not generic, so its one thread-static field is read inline, and each
/// generic type that needs a per-thread object takes a slot number once (<see cref="Register"/>).
/// </summary>
internal static class ThreadSlots
{
    [ThreadStatic]
    private static object?[]? t_slots;

    private static int s_registered;

    /// <summary>A new slot number, for one generic type's per-thread object.</summary>
    public static int Register() => Interlocked.Increment(ref s_registered) - 1;

    /// <summary>This thread's object in <paramref name="slot"/>, or <see langword="null"/>.</summary>
    public static object? Get(int slot)
    {
        var slots = t_slots;
        return slots is not null && (uint)slot < (uint)slots.Length ? slots[slot] : null;
    }

    /// <summary>Sets this thread's object in <paramref name="slot"/>.</summary>
    public static void Set(int slot, object value)
    {
        var slots = t_slots;
        if (slots is null || slot >= slots.Length)
        {
            var grown = new object?[Math.Max(slot + 1, Math.Max(4, (slots?.Length ?? 0) * 2))];
            slots?.CopyTo(grown, 0);
            t_slots = slots = grown;
        }

        slots[slot] = value;
    }
}
