using System;

namespace Concurrency.Primitives;

/// <summary>Which of its consumer's methods a <see cref="PeerEventPump{TPeer, TMessage}"/> was calling.</summary>
public enum PeerEventType
{
    /// <summary><see cref="IPeerEventConsumer{TPeer, TMessage}.OnAddedAsync"/>.</summary>
    Added = 0,

    /// <summary><see cref="IPeerEventConsumer{TPeer, TMessage}.OnMessageAsync"/>.</summary>
    Message = 1,

    /// <summary><see cref="IPeerEventConsumer{TPeer, TMessage}.OnRemovedAsync"/>.</summary>
    Removed = 2,
}

/// <summary>
/// Describes a consumer call that has run past <see cref="PeerEventPumpOptions.HandlerStallThreshold"/>, for
/// <see cref="PeerEventPump{TPeer, TMessage}.HandlerStalled"/>. Raised once per stalled call.
/// </summary>
/// <typeparam name="TPeer">The peer identity.</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
public sealed class PeerHandlerStalledEventArgs<TPeer, TMessage> : EventArgs
    where TPeer : notnull
{
    /// <summary>Creates the description of a stall (the pump raises these; a test of a listener may build one).</summary>
    /// <param name="handle">The connection whose event the consumer is handling.</param>
    /// <param name="eventType">Which consumer method is running.</param>
    /// <param name="elapsed">How long the call has run so far.</param>
    /// <param name="threshold">The threshold it ran past.</param>
    /// <exception cref="ArgumentNullException"><paramref name="handle"/> is <see langword="null"/>.</exception>
    public PeerHandlerStalledEventArgs(PeerHandle<TPeer, TMessage> handle, PeerEventType eventType, TimeSpan elapsed, TimeSpan threshold)
    {
        Handle = Internal.Guard.NotNull(handle);
        EventType = eventType;
        Elapsed = elapsed;
        Threshold = threshold;
    }

    /// <summary>
    /// The connection whose event the consumer is handling. A listener may <see cref="PeerHandle{TPeer, TMessage}.Disconnect"/>
    /// it (as a node drops a sync peer that makes no progress): its Removed is queued after the stalled call.
    /// </summary>
    public PeerHandle<TPeer, TMessage> Handle { get; }

    /// <summary>The peer, as <see cref="Handle"/>'s <see cref="PeerHandle{TPeer, TMessage}.Peer"/>.</summary>
    public TPeer Peer => Handle.Peer;

    /// <summary>Which consumer method is running.</summary>
    public PeerEventType EventType { get; }

    /// <summary>How long the call had run when it was reported.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The <see cref="PeerEventPumpOptions.HandlerStallThreshold"/> it ran past.</summary>
    public TimeSpan Threshold { get; }
}
