using System.Reflection;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// Reads a batcher's private state, for tests that hold a loop or a lock at one step and must see where the batcher is:
/// a renamed field fails loudly (a null field), not silently.
/// </summary>
internal static class BatcherInternals
{
    /// <summary>The batcher's count of dispatch loops holding a slot (its submit-side state word): a loop that let go is no longer counted.</summary>
    public static int RunningLoops<TItem, TResult>(Batcher<TItem, TResult> batcher)
    {
        var submit = Field<TItem, TResult>("_submit");
        return (int)submit.FieldType.GetField("Loops")!.GetValue(submit.GetValue(batcher))!;
    }

    /// <summary>The next ring index a loop will cut (the cut word, without its resize flag).</summary>
    public static long CutIndex<TItem, TResult>(Batcher<TItem, TResult> batcher)
    {
        var cut = Field<TItem, TResult>("_cut");
        return (long)cut.FieldType.GetField("Head")!.GetValue(cut.GetValue(batcher))! & SubmitState.IndexMask;
    }

    /// <summary>The lock that guards the batcher's rare paths (timers, callers waiting for room, growth, shutdown).</summary>
    public static object Lock<TItem, TResult>(Batcher<TItem, TResult> batcher) => Field<TItem, TResult>("_lock").GetValue(batcher)!;

    private static FieldInfo Field<TItem, TResult>(string name) =>
        typeof(Batcher<TItem, TResult>).GetField(name, BindingFlags.Instance | BindingFlags.NonPublic)!;
}
