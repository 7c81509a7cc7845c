using System;
using System.Threading;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// A caller's arrival known to within a clock epoch, without a clock read per submit. The epoch is a number that the
/// deadline sweep advances, under the batcher's lock, at most every half <see cref="Period"/> and, while anything is
/// outstanding, at least every <see cref="Period"/> (the sweep is armed no later than that after the current epoch's
/// start). A submit reads the number (it shares the claim word's cache line, which the submit holds already) and stamps
/// its item with it. The epoch's start, read before the number was published, is no later than any arrival stamped with
/// it; its end, read after the next number was published with a full fence, is no earlier than any. A deadline reckoned
/// from the end is therefore never early, and late by at most the epoch's length.
/// </summary>
/// <remarks>
/// Records are kept for the last <see cref="Length"/> epochs, which span at least <see cref="Length"/> half periods (twice
/// the Timeout the period is taken from): an item whose epoch's record is gone arrived before the end of every epoch
/// still recorded, and the oldest of those ends stands in for its own (later, so never early).
/// </remarks>
internal sealed class ClockEpochs
{
    /// <summary>Epochs recorded; a power of two.</summary>
    public const int Length = 512;

    /// <summary>An epoch lasts at most this fraction of the Timeout (plus the sweep timer's own lateness).</summary>
    public const int PerTimeout = 128;

    private const int Mask = Length - 1;

    // A deadline field holding an epoch stamp (see Stamp): far below any clock's timestamp plus a Timeout.
    private const long StampBase = long.MinValue;

    private readonly long[] _starts = new long[Length];
    private readonly long[] _ends = new long[Length];
    private readonly long _shortest;

    // The last epoch whose end is recorded (-1: none yet).
    private long _ended = -1;

    /// <param name="now">The clock's reading now: the start of epoch 0.</param>
    /// <param name="period">The longest an epoch should last, in the clock's units (at least 1).</param>
    public ClockEpochs(long now, long period)
    {
        _starts[0] = now;
        Period = period;
        _shortest = Math.Max(1, period / 2);
    }

    /// <summary>The longest an epoch lasts while anything is outstanding, in the clock's units.</summary>
    public long Period { get; }

    /// <summary>The deadline field's value for an item stamped with <paramref name="epoch"/>.</summary>
    public static long Stamp(long epoch) => StampBase + epoch;

    /// <summary>Whether a deadline field holds an epoch stamp rather than a deadline read from the clock.</summary>
    public static bool IsStamp(long deadline) => deadline < StampBase / 2;

    /// <summary>The epoch an epoch stamp (see <see cref="IsStamp"/>) was made with.</summary>
    public static long EpochOf(long stamp) => stamp - StampBase;

    /// <summary>
    /// Starts the next epoch if the current one (<paramref name="published"/>, the number submits read) has lasted half a
    /// period by <paramref name="now"/>. Called under the owner's lock: one advance at a time.
    /// </summary>
    public void AdvanceIfDue(ref long published, long now, in CoarseClock clock)
    {
        var epoch = published;
        if (now - _starts[epoch & Mask] < _shortest)
        {
            return;
        }

        // The next start first (a reader that finds the next number finds its start), then the number with a full fence:
        // a submit that read the old number read it before this. Then the old epoch's end, read after the fence, and the
        // count of ended epochs that lets readers trust it.
        Volatile.Write(ref _starts[(epoch + 1) & Mask], now);
        Interlocked.Exchange(ref published, epoch + 1);
        Volatile.Write(ref _ends[epoch & Mask], clock.Now());
        Volatile.Write(ref _ended, epoch);
    }

    /// <summary>The start of epoch <paramref name="epoch"/>: no later than the arrival of any item stamped with it. For arming only (a record overwritten since reads later).</summary>
    public long Start(long epoch) => Volatile.Read(ref _starts[epoch & Mask]);

    /// <summary>
    /// A time no earlier than the arrival of any item stamped with <paramref name="epoch"/>: its epoch's end, if that is
    /// recorded, else <paramref name="unended"/> (a reading the caller knows to be later: say one taken after it read the
    /// item from the queue). A record overwritten meanwhile reads as a later epoch's end: later still.
    /// </summary>
    public long ArrivedBy(long epoch, long unended)
    {
        var ended = Volatile.Read(ref _ended);
        if (epoch > ended)
        {
            return unended;
        }

        if (epoch <= ended - Length)
        {
            epoch = ended - Length + 1; // its record is gone; this one's end is later
        }

        return Volatile.Read(ref _ends[epoch & Mask]);
    }
}
