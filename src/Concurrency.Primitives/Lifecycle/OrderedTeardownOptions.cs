using System;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>Settings for an <see cref="OrderedTeardown"/>. Read once, at construction.</summary>
public sealed class OrderedTeardownOptions
{
    /// <summary>A name for logs and messages. Defaults to <c>"OrderedTeardown"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// How long the run, and then each step, may take: the bound of <see cref="OrderedTeardown.ExecuteAsync(System.Threading.CancellationToken)"/>
    /// and of <see cref="OrderedTeardown.DisposeAsync"/>. Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// When <see langword="true"/>, a run that does not return within <see cref="ShutdownTimeout"/> after its token was
    /// cancelled is abandoned and the steps run anyway (the execution then reports it with
    /// <see cref="LifecycleStopTimeoutException.RunAbandoned"/> set). Default <see langword="false"/>: nothing is released
    /// under a run that is still live.
    /// </summary>
    public bool AbandonRunOnTimeout { get; set; }

    /// <summary>Where the teardown logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for step timeouts. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }
}
