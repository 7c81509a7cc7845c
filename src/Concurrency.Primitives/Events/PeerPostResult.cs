namespace Concurrency.Primitives;

/// <summary>What became of a message posted through a <see cref="PeerHandle{TPeer, TMessage}"/>.</summary>
/// <remarks>
/// Only <see cref="Posted"/> means the message will reach the consumer (unless a later post displaces it under
/// <see cref="PeerEventPumpFullMode.DropOldest"/> or <see cref="PeerEventPumpFullMode.DropNewest"/>). <see cref="Full"/> and
/// <see cref="Dropped"/> say the queue had no room: post again later, or wait with <c>PostAsync</c>. <see cref="NotReady"/>,
/// <see cref="Disconnected"/> and <see cref="Closed"/> say to stop sending on this handle.
/// </remarks>
public enum PeerPostResult
{
    /// <summary>The message is queued for the consumer.</summary>
    Posted = 0,

    /// <summary>The queue is full (<see cref="PeerEventPumpFullMode.Wait"/>) and <c>TryPost</c> does not wait: post again, or use <c>PostAsync</c>.</summary>
    Full = 1,

    /// <summary>The queue is full and the message was dropped by <see cref="PeerEventPumpFullMode.DropWrite"/> (counted in the dropped metric).</summary>
    Dropped = 2,

    /// <summary>The handshake is not done: <see cref="PeerHandle{TPeer, TMessage}.MarkReady"/> has not been called.</summary>
    NotReady = 3,

    /// <summary>The handle is disconnected (by <c>Disconnect</c>, <c>Dispose</c>, or a reconnect under the same identity), or it disconnected while the post waited for room.</summary>
    Disconnected = 4,

    /// <summary>The pump is closed, closing, disposed or faulted.</summary>
    Closed = 5,
}
