using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;

using Message = Concurrency.Primitives.Tests.Docs.ReadmeSnippets.Message;
using PeerId = Concurrency.Primitives.Tests.Docs.ReadmeSnippets.PeerId;

#pragma warning disable CA2000 // README code, kept as a reader writes it

namespace Concurrency.Primitives.Tests.Docs;

/// <summary>
/// Every C# snippet of src/Concurrency.Primitives/Events/README.md, verbatim, so that the compiler checks them;
/// <see cref="ReadmeTests"/> checks that each appears here.
/// </summary>
internal sealed class EventsReadmeSnippets
{
    private readonly IPeerEventConsumer<PeerId, Message> syncManager = null!;
    private readonly PeerId id = new();
    private readonly Message message = new();
    private readonly CancellationToken ct = CancellationToken.None;

    public async Task Shape()
    {
        await using var pump = new PeerEventPump<PeerId, Message>(syncManager, new PeerEventPumpOptions { Capacity = 10_000 });
        using var peer = pump.Connect(id);   // nothing reaches the consumer yet
        peer.MarkReady();                    // Added
        await peer.PostAsync(message, ct);   // PeerPostResult.Posted, or why not
    }

    public void HandRolledPerPeerSemaphores()
    {
        var permits = new ConcurrentDictionary<PeerId, SemaphoreSlim>();

        async Task PostAsync(PeerHandle<PeerId, Message> peer, Message message, CancellationToken ct)
        {
            var permit = permits.GetOrAdd(peer.Peer, _ => new SemaphoreSlim(64));
            await permit.WaitAsync(ct);                        // 64 messages per peer in the queue, at most
            if (!peer.TryPost(message)) permit.Release();
        }
        // consumer: OnMessageAsync ends with permits[peer].Release(); OnRemovedAsync calls permits.TryRemove(peer, out _)

        _ = PostAsync(null!, message, ct);
    }

    public async Task QuotaDropCallbackAndWatchdog()
    {
        await using var pump = new PeerEventPump<PeerId, Message>(
            syncManager,
            new PeerEventPumpOptions
            {
                Capacity = 10_000,
                PerPeerCapacity = 64,                          // a flooding peer waits or drops alone
                FullMode = PeerEventPumpFullMode.DropOldest,   // its own oldest message, never another peer's
                HandlerStallThreshold = TimeSpan.FromMinutes(3),
            },
            messageDropped: (peer, message) => ReturnToPool(message)); // each dropped message, once

        pump.HandlerStalled += (_, stall) => stall.Handle.Disconnect(); // the peer the consumer is stuck on
    }

    private static void ReturnToPool(Message message)
    {
    }
}
