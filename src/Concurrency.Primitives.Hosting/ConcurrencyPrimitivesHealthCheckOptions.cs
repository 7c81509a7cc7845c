namespace Concurrency.Primitives.Hosting;

/// <summary>Settings of the health checks that <c>AddConcurrencyPrimitives</c> adds.</summary>
public sealed class ConcurrencyPrimitivesHealthCheckOptions
{
    /// <summary>The default of <see cref="DegradedQueueShare"/>: 0.8.</summary>
    public const double DefaultDegradedQueueShare = 0.8;

    /// <summary>
    /// The share of a batcher's or pump's capacity (between 0 and 1) at which its queue reports Degraded. Default 0.8.
    /// A queue without a capacity is never Degraded.
    /// </summary>
    public double DegradedQueueShare { get; set; } = DefaultDegradedQueueShare;
}
