using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives;

/// <summary>
/// Consumes a <see cref="PeerEventPump{TPeer, TMessage}"/>'s events, one at a time, on the pump's single loop. Per peer it
/// sees either nothing, or <see cref="OnAddedAsync"/>, then that peer's messages in posting order, then exactly one
/// <see cref="OnRemovedAsync"/>.
/// </summary>
/// <typeparam name="TPeer">The peer identity.</typeparam>
/// <typeparam name="TMessage">The message type.</typeparam>
/// <remarks>
/// The pump never calls two methods at once, so the consumer may keep its peer state in plain fields. The token is
/// cancelled only when a shutdown runs past <see cref="PeerEventPumpOptions.ShutdownTimeout"/>. A method that throws is
/// handled by <see cref="PeerEventPumpOptions.FaultPolicy"/>.
/// </remarks>
public interface IPeerEventConsumer<TPeer, TMessage>
    where TPeer : notnull
{
    /// <summary>The peer has completed its handshake and is live.</summary>
    /// <param name="peer">The peer.</param>
    /// <param name="cancellationToken">Cancelled if a shutdown outlasts its timeout.</param>
    /// <returns>A task that completes when the event is handled.</returns>
    ValueTask OnAddedAsync(TPeer peer, CancellationToken cancellationToken);

    /// <summary>A message from a live peer, in the order the peer's handle posted it.</summary>
    /// <param name="peer">The peer.</param>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Cancelled if a shutdown outlasts its timeout.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    ValueTask OnMessageAsync(TPeer peer, TMessage message, CancellationToken cancellationToken);

    /// <summary>The peer is gone: disconnected, replaced by a reconnect, or the pump is shutting down. Called once per added peer.</summary>
    /// <param name="peer">The peer.</param>
    /// <param name="cancellationToken">Cancelled if a shutdown outlasts its timeout.</param>
    /// <returns>A task that completes when the event is handled.</returns>
    ValueTask OnRemovedAsync(TPeer peer, CancellationToken cancellationToken);
}
