using System.Runtime.InteropServices;

namespace Concurrency.Primitives.Internal;

/// <summary>
/// An <see cref="int"/> on a cache line of its own: one thread writing it does not slow threads reading the fields
/// beside it, and writes to those fields do not slow threads reading it.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedInt
{
    [FieldOffset(64)]
    public int Value;
}
