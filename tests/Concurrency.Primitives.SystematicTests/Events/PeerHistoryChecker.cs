using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Coyote.Specifications;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// A handler that checks, as events arrive, that each peer's history is legal: nothing, or Added, messages, then one
/// Removed (and again after a reconnect). It yields inside each call so that Coyote interleaves producers with the loop.
/// </summary>
internal sealed class PeerHistoryChecker : IPeerEventConsumer<string, int>
{
    public const string RemovedBeforeAdded = "Removed arrived for a peer that was not added";
    public const string DoubleAdded = "Added arrived for a peer that was already live";
    public const string UnknownPeer = "A message arrived for a peer that was not live";

    private readonly HashSet<string> _live = new();
    private readonly Dictionary<string, List<int>> _messages = new();
    private int _inCall;

    public int Live => _live.Count;

    /// <summary>The messages delivered to <paramref name="peer"/>, in delivery order.</summary>
    public IReadOnlyList<int> MessagesOf(string peer) => _messages.TryGetValue(peer, out var list) ? list : new List<int>();

    public async ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken)
    {
        Enter();
        await Task.Yield();
        Specification.Assert(_live.Add(peer), $"{DoubleAdded}: {peer}.");
        Exit();
    }

    public async ValueTask OnMessageAsync(string peer, int message, CancellationToken cancellationToken)
    {
        Enter();
        await Task.Yield();
        Specification.Assert(_live.Contains(peer), $"{UnknownPeer}: {peer}.");
        if (!_messages.TryGetValue(peer, out var list))
        {
            _messages[peer] = list = new List<int>();
        }

        list.Add(message);
        Exit();
    }

    public async ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken)
    {
        Enter();
        await Task.Yield();
        Specification.Assert(_live.Remove(peer), $"{RemovedBeforeAdded}: {peer}.");
        Exit();
    }

    private void Enter() => Specification.Assert(Interlocked.Increment(ref _inCall) == 1, "Two handler calls overlapped.");

    private void Exit() => Interlocked.Decrement(ref _inCall);
}
