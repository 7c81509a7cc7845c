using System;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives;

/// <summary>
/// What a <see cref="PeerEventPump{TPeer, TMessage}"/> does with a message when <see cref="PeerEventPumpOptions.Capacity"/>
/// messages are already waiting, or its peer's <see cref="PeerEventPumpOptions.PerPeerCapacity"/> are. The names and meanings
/// are <c>System.Threading.Channels.BoundedChannelFullMode</c>'s; lifecycle events (added, removed) are never dropped nor
/// refused. Every dropped message is counted, logged and passed to the pump's message-dropped callback.
/// </summary>
public enum PeerEventPumpFullMode
{
    /// <summary><c>PostAsync</c> waits (cancellably) for room; <c>TryPost</c> refuses with <see cref="PeerPostResult.Full"/>.</summary>
    Wait = 0,

    /// <summary>
    /// The newest waiting message (of any peer; of the posting peer when it is at its <see cref="PeerEventPumpOptions.PerPeerCapacity"/>)
    /// is dropped and counted to make room; the posted one is accepted.
    /// </summary>
    DropNewest = 1,

    /// <summary>
    /// The oldest waiting message (of any peer; of the posting peer when it is at its <see cref="PeerEventPumpOptions.PerPeerCapacity"/>)
    /// is dropped and counted to make room; the posted one is accepted.
    /// </summary>
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

    /// <summary>
    /// How many messages of one connection (one <see cref="PeerHandle{TPeer, TMessage}"/>) may wait for the loop, so that one
    /// chatty peer cannot fill <see cref="Capacity"/> for everyone: a peer at its quota waits or drops under
    /// <see cref="FullMode"/> alone, while the other peers' messages flow. <see langword="null"/> (the default) means no
    /// quota. At least 1.
    /// </summary>
    /// <remarks>
    /// <para>
    /// A message must fit both bounds: its peer's quota first, then <see cref="Capacity"/>. <see cref="FullMode"/> applies to
    /// each bound with the same meaning, counted per peer for the quota: under <see cref="PeerEventPumpFullMode.Wait"/> a
    /// post of a peer at its quota waits (in line behind that peer's earlier waiting posts) without holding up any other
    /// peer; under <see cref="PeerEventPumpFullMode.DropOldest"/> and <see cref="PeerEventPumpFullMode.DropNewest"/> the peer's
    /// own oldest or newest waiting message makes room, never another peer's; under
    /// <see cref="PeerEventPumpFullMode.DropWrite"/> the posted message is dropped.
    /// </para>
    /// <para>
    /// Lifecycle events (added, removed) are never counted, dropped or refused. The quota belongs to the connection: a
    /// reconnect under the same identity gets a new handle with a count of its own (what the old connection queued is still
    /// delivered, and still counted by <see cref="Capacity"/>). Keep <c>PerPeerCapacity</c> times the number of peers that
    /// may flood at once below <see cref="Capacity"/>, or a quiet peer can still meet a full queue.
    /// </para>
    /// </remarks>
    public int? PerPeerCapacity { get; set; }

    /// <summary>
    /// What happens to a message when <see cref="Capacity"/> messages are waiting, or its peer's <see cref="PerPeerCapacity"/>
    /// are. Default <see cref="PeerEventPumpFullMode.Wait"/>.
    /// </summary>
    public PeerEventPumpFullMode FullMode { get; set; }

    /// <summary>What happens when the consumer throws. Default <see cref="PeerEventPumpFaultPolicy.LogAndContinue"/>.</summary>
    public PeerEventPumpFaultPolicy FaultPolicy { get; set; }

    /// <summary>
    /// How long <c>CloseAsync</c> and <c>DisposeAsync</c> wait for the loop to deliver what is queued and remove every live
    /// peer; then the consumer's token is cancelled (a close throws <see cref="ShutdownTimeoutException"/>, a dispose logs
    /// it). Default 30 seconds; <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> for no bound.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long one consumer call (<c>OnAddedAsync</c>, <c>OnMessageAsync</c> or <c>OnRemovedAsync</c>) may run before the
    /// pump reports it as stalled: once per stalled call, with the peer, the event type and how long the call has run, as
    /// a Warning log (event 4009), the <c>concurrency.primitives.pump.handler_stalls</c> counter and the
    /// <see cref="PeerEventPump{TPeer, TMessage}.HandlerStalled"/> event. <see langword="null"/> (the default) turns the
    /// watchdog off. At least 1 millisecond, and at most <see cref="uint.MaxValue"/> - 1 milliseconds.
    /// </summary>
    /// <remarks>
    /// The loop stamps each call's start (a clock read and a few field writes); one timer per pump, on
    /// <see cref="TimeProvider"/>, looks at the stamp while the loop is active and is not armed while the loop is idle. A
    /// call is reported once it has run for <c>HandlerStallThreshold</c> (give or take the timer's and the clock's
    /// resolution); the report does not interrupt it, and its token is not cancelled.
    /// </remarks>
    public TimeSpan? HandlerStallThreshold { get; set; }

    /// <summary>Where the pump logs. Defaults to a logger that discards everything.</summary>
    public ILogger? Logger { get; set; }

    /// <summary>The clock for the shutdown timeout and the stall watchdog. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; set; }

    /// <summary>
    /// Where the pump's instruments are created: that factory's <c>Concurrency.Primitives</c> meter, as a host's
    /// <see cref="IMeterFactory"/> provides (so two hosts in one process keep separate meters, and a test can observe one).
    /// Defaults to <see langword="null"/>: the library's static meter of the same name (see <see cref="ConcurrencyPrimitivesTelemetry"/>).
    /// Instruments are tagged <c>pump.name</c> either way.
    /// </summary>
    public IMeterFactory? MeterFactory { get; set; }
}
