using System;
using System.Collections.Concurrent;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>A resource that records every use after it was disposed, and the order of disposals in a shared journal.</summary>
public sealed class TrackedResource : IAsyncDisposable
{
    private readonly ConcurrentQueue<string>? _journal;
    private int _disposed;
    private int _usesAfterDispose;

    public TrackedResource(string name, ConcurrentQueue<string>? journal = null)
    {
        Name = name;
        _journal = journal;
    }

    public string Name { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) == 1;

    public int UsesAfterDispose => Volatile.Read(ref _usesAfterDispose);

    /// <summary>Uses the resource; a use after disposal is recorded (as a real client would throw or corrupt data).</summary>
    public void Use()
    {
        if (IsDisposed)
        {
            Interlocked.Increment(ref _usesAfterDispose);
        }
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _journal?.Enqueue("dispose " + Name);
        }

        return default;
    }
}
