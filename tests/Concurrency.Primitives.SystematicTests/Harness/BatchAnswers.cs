using System.Threading;

namespace Concurrency.Primitives.SystematicTests.Harness;

/// <summary>The scenarios' usual dispatch body: each item answered with ten times its value, each answer that took counted per item.</summary>
public static class BatchAnswers
{
    /// <summary>Answers every item of <paramref name="batch"/> with ten times its value; counts in <paramref name="answered"/>, by value, each answer that took.</summary>
    public static void TimesTen(Batch<int, int> batch, int[] answered)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch.TrySetResult(i, batch[i] * 10))
            {
                Interlocked.Increment(ref answered[batch[i]]);
            }
        }
    }
}
