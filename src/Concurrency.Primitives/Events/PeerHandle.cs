using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>Where a <see cref="PeerHandle{TPeer, TMessage}"/> stands, as its producer sees it.</summary>
public enum PeerConnectionState
{
    /// <summary>Connected, handshake not done: nothing has been sent to the handler.</summary>
    Connected = 0,

    /// <summary><see cref="PeerHandle{TPeer, TMessage}.MarkReady"/> succeeded: Added is queued, messages are accepted.</summary>
    Ready = 1,

    /// <summary>Disconnected (by the peer, a reconnect, a shutdown or a pump fault): nothing more is accepted.</summary>
    Disconnected = 2,
}

/// <summary>
/// One connection of a peer to a <see cref="PeerEventPump{TPeer, TMessage}"/>: the sole sender of that connection's added,
/// messages and removed events. Dispose it (or call <see cref="Disconnect"/>) when the connection ends: <c>using var peer =
/// pump.Connect(id);</c> removes the peer even when the code between throws. Thread-safe; a member that no longer applies
/// says so in its result and changes nothing.
/// </summary>
/// <typeparam name="TPeer">The peer identity.</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// <para>
/// <see cref="MarkReady"/> and <see cref="Disconnect"/> racing each other resolve to whichever takes effect first: if
/// <c>MarkReady</c> wins, the handler sees Added then Removed; if <c>Disconnect</c> wins, it sees nothing at all and
/// <c>MarkReady</c> returns <see langword="false"/>. Either way the history is legal.
/// </para>
/// <para>
/// A reconnect under the same identity (<see cref="PeerEventPump{TPeer, TMessage}.Connect"/> again) disconnects this handle
/// and returns a new one with a higher <see cref="Generation"/>; nothing sent through this handle afterwards reaches the handler.
/// </para>
/// </remarks>
public sealed class PeerHandle<TPeer, TMessage> : IDisposable
    where TPeer : notnull
{
    private readonly PeerEventPump<TPeer, TMessage> _pump;

    internal PeerHandle(PeerEventPump<TPeer, TMessage> pump, TPeer peer, long generation)
    {
        _pump = pump;
        Peer = peer;
        Generation = generation;
    }

    /// <summary>The peer's identity.</summary>
    public TPeer Peer { get; }

    /// <summary>This connection's number: higher for every reconnect under the same identity.</summary>
    public long Generation { get; }

    /// <summary>Where the connection stands.</summary>
    public PeerConnectionState State => (PeerConnectionState)Volatile.Read(ref ProducerState);

    // Producer side, guarded by the pump's lock.
    internal int ProducerState;

    // Its place in the pump's list of ready handles (producer side, guarded by the pump's lock).
    internal ListLinks<PeerHandle<TPeer, TMessage>> ReadyLinks;

    // The producer side of its quota (PerPeerCapacity), guarded by the pump's lock; null without one. In an object of its
    // own: producers write it on every post, while the loop writes the fields below on every event of this handle.
    internal PeerQuota<TPeer, TMessage>? Quota;

    // Consumer side, touched only by the pump's loop.
    internal bool LoopLive;
    internal ListLinks<PeerHandle<TPeer, TMessage>> LoopLinks;

    // With a quota: this handle's messages the loop has taken (written by the loop, read by producers when the quota
    // looks full), and the flag a producer raises before it waits for the quota (the loop then wakes it as it takes).
    internal long LoopTaken;
    internal int QuotaRoomWanted;

    /// <summary>The handshake is done: queues Added for the handler. Once only.</summary>
    /// <returns><see langword="true"/> if this call queued Added; <see langword="false"/> if already ready, disconnected, or the pump is shut down.</returns>
    public bool MarkReady() => _pump.MarkReady(this);

    /// <summary>Queues a message, if the peer is ready and not disconnected; never waits.</summary>
    /// <param name="message">The message.</param>
    /// <returns>
    /// <see langword="true"/> if the message will reach the consumer; <see langword="false"/> if it was not queued (the
    /// other overload says why: a full queue, or a handle that should stop sending).
    /// </returns>
    public bool TryPost(TMessage message) => _pump.Post(this, message) == PeerPostResult.Posted;

    /// <summary>Queues a message, if the peer is ready and not disconnected; never waits; says what became of it.</summary>
    /// <param name="message">The message.</param>
    /// <param name="result">
    /// <see cref="PeerPostResult.Posted"/> if the message will reach the consumer; otherwise why not: the queue is full
    /// (<see cref="PeerPostResult.Full"/> in <see cref="PeerEventPumpFullMode.Wait"/> mode, <see cref="PeerPostResult.Dropped"/>
    /// in <see cref="PeerEventPumpFullMode.DropWrite"/> mode), or this handle should stop sending
    /// (<see cref="PeerPostResult.NotReady"/>, <see cref="PeerPostResult.Disconnected"/>, <see cref="PeerPostResult.Closed"/>).
    /// </param>
    /// <returns><see langword="true"/> if the message was queued (<paramref name="result"/> is <see cref="PeerPostResult.Posted"/>).</returns>
    public bool TryPost(TMessage message, out PeerPostResult result)
    {
        result = _pump.Post(this, message);
        return result == PeerPostResult.Posted;
    }

    /// <summary>Queues a message, waiting for room when the queue is full and the full mode is <see cref="PeerEventPumpFullMode.Wait"/>.</summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Abandons the wait for room.</param>
    /// <returns>
    /// As <see cref="TryPost(TMessage, out PeerPostResult)"/>, but never <see cref="PeerPostResult.Full"/>: <see cref="PeerPostResult.Disconnected"/> or
    /// <see cref="PeerPostResult.Closed"/> also if the peer disconnects or the pump shuts down while the post waits.
    /// </returns>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled while waiting.</exception>
    public ValueTask<PeerPostResult> PostAsync(TMessage message, CancellationToken cancellationToken = default) => _pump.PostAsync(this, message, cancellationToken);

    /// <summary>The peer is gone: queues Removed if Added was queued, or nothing if the peer never became ready. Once only.</summary>
    /// <returns><see langword="true"/> if this call disconnected the handle; <see langword="false"/> if it was already disconnected.</returns>
    public bool Disconnect() => _pump.Disconnect(this);

    /// <summary>Disconnects the handle (as <see cref="Disconnect"/>); a no-op if it already is.</summary>
    public void Dispose() => _pump.Disconnect(this);

    /// <summary>The peer and its generation.</summary>
    /// <returns>For example <c>peer-7 (generation 3, Ready)</c>.</returns>
    public override string ToString() => $"{Peer} (generation {Generation}, {State})";
}

/// <summary>Finds a <see cref="PeerHandle{TPeer, TMessage}"/>'s links in the loop's list of live peers.</summary>
/// <typeparam name="TPeer">The peer type.</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
internal readonly struct PeerHandleLinks<TPeer, TMessage> : ILinksOf<PeerHandle<TPeer, TMessage>>
    where TPeer : notnull
{
    public ref ListLinks<PeerHandle<TPeer, TMessage>> Of(PeerHandle<TPeer, TMessage> node) => ref node.LoopLinks;
}

/// <summary>Finds a <see cref="PeerHandle{TPeer, TMessage}"/>'s links in the pump's list of ready handles.</summary>
/// <typeparam name="TPeer">The peer type.</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
internal readonly struct PeerHandleReadyLinks<TPeer, TMessage> : ILinksOf<PeerHandle<TPeer, TMessage>>
    where TPeer : notnull
{
    public ref ListLinks<PeerHandle<TPeer, TMessage>> Of(PeerHandle<TPeer, TMessage> node) => ref node.ReadyLinks;
}
