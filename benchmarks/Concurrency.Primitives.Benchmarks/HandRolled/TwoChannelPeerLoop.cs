using System;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Benchmarks.HandRolled;

/// <summary>
/// The sync manager of the Bitcoin-node incident: "new peer" and messages travel on one channel, "done peer" on another,
/// sent by a different task (the disconnect path); one select-like loop reads both (a semaphore counts what both
/// channels hold, so the loop sleeps until either has something).
/// Flaw: nothing orders a peer's "done" after its "new": the loop can read done first, report an unknown peer, then add a
/// peer that is already dead.
/// </summary>
public sealed class TwoChannelPeerLoop<TPeer, TMessage> : IAsyncDisposable
    where TPeer : notnull
{
    private readonly Channel<(TPeer Peer, bool IsNew, TMessage Message)> _peers =
        Channel.CreateUnbounded<(TPeer, bool, TMessage)>(new UnboundedChannelOptions { SingleReader = true });

    private readonly Channel<TPeer> _done = Channel.CreateUnbounded<TPeer>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _arrived = new(0);
    private readonly IPeerEventConsumer<TPeer, TMessage> _handler;
    private readonly Task _loop;

    public TwoChannelPeerLoop(IPeerEventConsumer<TPeer, TMessage> handler)
    {
        _handler = handler;
        _loop = Task.Run(LoopAsync);
    }

    public void NewPeer(TPeer peer) => Send(_peers.Writer.TryWrite((peer, true, default!)));

    public void Message(TPeer peer, TMessage message) => Send(_peers.Writer.TryWrite((peer, false, message)));

    public void DonePeer(TPeer peer) => Send(_done.Writer.TryWrite(peer));

    public async ValueTask DisposeAsync()
    {
        _peers.Writer.TryComplete();
        _done.Writer.TryComplete();
        _arrived.Release(); // wake the loop to see the end
        await _loop;
        _arrived.Dispose();
    }

    private void Send(bool written)
    {
        if (written)
        {
            _arrived.Release();
        }
    }

    private async Task LoopAsync()
    {
        var peers = _peers.Reader;
        var done = _done.Reader;
        while (true)
        {
            await _arrived.WaitAsync();

            // A select: whichever channel has something; here "done" is looked at first, one of the orders Go's select may pick.
            if (done.TryRead(out var gone))
            {
                await _handler.OnRemovedAsync(gone, default);
            }
            else if (peers.TryRead(out var next))
            {
                await (next.IsNew ? _handler.OnAddedAsync(next.Peer, default) : _handler.OnMessageAsync(next.Peer, next.Message, default));
            }
            else if (peers.Completion.IsCompleted && done.Completion.IsCompleted)
            {
                return;
            }
        }
    }
}
