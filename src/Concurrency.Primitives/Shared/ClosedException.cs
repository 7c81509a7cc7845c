using System;

namespace Concurrency.Primitives;

/// <summary>
/// The primitive has been closed (its <c>CloseAsync</c> began) and accepts no more work: the call that threw asked it for
/// something new. As <c>ChannelClosedException</c> is for a channel: nothing was disposed, the primitive is shutting down
/// or shut down. After <c>DisposeAsync</c> (or <c>Dispose</c>) the same calls throw <see cref="ObjectDisposedException"/>.
/// </summary>
/// <remarks>
/// Also the failure of a <see cref="Batcher{TItem, TResult}"/> item that was accepted but never dispatched because the
/// batcher closed with <see cref="BatcherShutdownMode.FailPending"/>.
/// </remarks>
public sealed class ClosedException : InvalidOperationException
{
    /// <summary>Creates an exception with a default message.</summary>
    public ClosedException()
        : this("The primitive has been closed and accepts no more work.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public ClosedException(string message)
        : base(message)
    {
        Name = string.Empty;
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public ClosedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Name = string.Empty;
    }

    /// <summary>Creates an exception that names the closed primitive.</summary>
    /// <param name="name">The name of the primitive that was closed (its options' <c>Name</c>).</param>
    /// <param name="message">The message: what was refused, and what to do instead.</param>
    public ClosedException(string name, string message)
        : base(message)
    {
        Name = name ?? string.Empty;
    }

    /// <summary>The name of the primitive that was closed; empty when not known.</summary>
    public string Name { get; }
}
