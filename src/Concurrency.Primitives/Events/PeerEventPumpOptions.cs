using System;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>
/// What a <see cref="PeerEventPump{TPeer, TMessage}"/> does with a message when <see cref="PeerEventPumpOptions.Capacity"/>
/// messages are already waiting. The names and meanings are <c>System.Threading.Channels.BoundedChannelFullMode</c>'s;
/// lifecycle events (added, removed) are never dropped nor refused.
/// </summary>
public enum PeerEventPumpFullMode
{
    /// <summary><c>PostAsync</c> waits (cancellably) for room; <c>TryPost</c> refuses with <see cref="PeerPostResult.Full"/>.</summary>
    Wait = 0,

    /// <summary>The newest waiting message (of any peer) is dropped and counted to make room; the posted one is accepted.</summary>
    DropNewest = 1,

    /// <summary>The oldest waiting message (of any peer) is dropped and counted to make room; the posted one is accepted.</summary>
    DropOldest = 2,

    /// <summary>The message being posted is dropped and counted; the post returns <see cref="PeerPostResult.Dropped"/>.</summary>
    DropWrite = 3,
}

/// <summary>What a <see cref="PeerEventPump{TPeer, TMessage}"/> does when its consumer throws.</summary>
public enum PeerEventPumpFaultPolicy
{
    /// <summary>Log, count and go on with the next event. The peer stays live; its <c>OnRemovedAsync</c> still comes.</summary>
    LogAndContinue = 0,

    /// <summary>
    /// Fault the pump: it stops delivering events and accepting posts, delivers <c>OnRemovedAsync</c> to every peer that
    /// was added, then completes with the consumer's exception.
    /// </summary>
    FaultPump = 1,
}

/// <summary>Settings for a <see cref="PeerEventPump{TPeer, TMessage}"/>. Read and validated once, at construction.</summary>
public sealed class PeerEventPumpOptions
{
    /// <summary>A name for logs, metrics (<c>pump.name</c>) and messages. Defaults to <c>"PeerEventPump"</c>.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// How many messages may wait for the loop; lifecycle events (added, removed) are never counted or dropped.
    /// <see langword="null"/> (the default) means no bound. At least 1.
    /// </summary>
    /// <remarks>
    /// The queue grows in fixed chunks and keeps the chunks of its deepest backlog for reuse, so that a steady flow
    /// allocates nothing. A bound limits how far it grows with messages; lifecycle events are never refused, and a message
    /// dropped from the queue (<see cref="PeerEventPumpFullMode.DropOldest"/>, <see cref="PeerEventPumpFullMode.DropNewest"/>)
    /// leaves an empty slot (its message released at once) until the loop passes it.
    /// </remarks>
    public int? Capacity { get; set; }

    /// <summary>What happens to a message when <see cref="Capacity"/> messages are waiting. Default <see cref="PeerEventPumpFullMode.Wait"/>.</summary>
    public PeerEventPumpFullMode FullMode { get; set; }

    /// <summary>What happens when the consumer throws. Default <see cref="PeerEventPumpFaultPolicy.LogAndContinue"/>.</summary>
    public PeerEventPumpFaultPolicy FaultPolicy { get; set; }

    /// <summary>
    /// How long <c>CloseAsync</c> and <c>DisposeAsync</c> wait for the loop to deliver what is queued and remove every live
    /// peer; then the consumer's token is cancelled (a close throws <see cref="ShutdownTimeoutException"/>, a dispose logs
    /// it). Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Where the pump logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for the shutdown timeout. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the pump's instruments are created: that factory's <c>Concurrency.Primitives</c> meter, as a host's
    /// <see cref="IMeterFactory"/> provides (so two hosts in one process keep separate meters, and a test can observe one).
    /// Defaults to <see langword="null"/>: the library's static meter of the same name (see <see cref="ConcurrencyPrimitivesTelemetry"/>).
    /// Instruments are tagged <c>pump.name</c> either way.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }
}
