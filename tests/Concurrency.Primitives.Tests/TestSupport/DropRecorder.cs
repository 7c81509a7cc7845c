using System.Collections.Generic;
using System.Linq;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>A pump's message-dropped callback that records each call as "peer:message", in the order of the calls.</summary>
public sealed class DropRecorder
{
    private readonly List<string> _seen = new();

    public IReadOnlyList<string> Seen
    {
        get
        {
            lock (_seen)
            {
                return _seen.ToList();
            }
        }
    }

    public void Record<TPeer, TMessage>(TPeer peer, TMessage message)
    {
        lock (_seen)
        {
            _seen.Add($"{peer}:{message}");
        }
    }
}
