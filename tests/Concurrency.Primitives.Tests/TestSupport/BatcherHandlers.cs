using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>What the Batcher tests share: the echoing list handler, and one batcher's measurements on the shared meter.</summary>
public static class BatcherHandlers
{
    /// <summary>A list handler that answers each item with itself.</summary>
    public static ValueTask<IReadOnlyList<int>> Echo(IReadOnlyList<int> items, CancellationToken token) => new(items.ToArray());

    /// <summary>The static meter is shared by every batcher of the test run: this batcher's measurements only, in order.</summary>
    public static T[] Values<T>(MetricCollector<T> collector, string batcher)
        where T : struct =>
        collector.GetMeasurementSnapshot().Where(m => m.Tags.TryGetValue("batcher.name", out var value) && (string?)value == batcher).Select(m => m.Value).ToArray();
}
