using System;

namespace Concurrency.Primitives;

/// <summary>
/// A graceful shutdown (<c>CloseAsync</c>, or a gate's <c>StopAsync</c>) did not finish within its bound. The message says
/// what it still waited for; the derived types carry it as data (<see cref="TaskTrackerTimeoutException"/>: the
/// operations still outstanding; <see cref="LifecycleStopTimeoutException"/>: the step that did not finish).
/// </summary>
/// <remarks>
/// Nothing was abandoned by the timeout: the shutdown goes on, and calling it again waits again. <c>DisposeAsync</c> never
/// throws this: it logs it at Error and returns.
/// </remarks>
public class ShutdownTimeoutException : TimeoutException
{
    /// <summary>Creates an exception with a default message.</summary>
    public ShutdownTimeoutException()
        : this("The shutdown did not finish in time.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public ShutdownTimeoutException(string message)
        : base(message)
    {
        Name = string.Empty;
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public ShutdownTimeoutException(string message, Exception innerException)
        : base(message, innerException)
    {
        Name = string.Empty;
    }

    /// <summary>Creates an exception for the shutdown of a named primitive.</summary>
    /// <param name="name">The name of the primitive whose shutdown timed out.</param>
    /// <param name="timeout">The bound that elapsed.</param>
    /// <param name="message">What the shutdown still waited for.</param>
    public ShutdownTimeoutException(string name, TimeSpan timeout, string message)
        : base(message)
    {
        Name = name ?? string.Empty;
        Timeout = timeout;
    }

    /// <summary>The name of the primitive whose shutdown timed out; empty when not known.</summary>
    public string Name { get; }

    /// <summary>The bound that elapsed.</summary>
    public TimeSpan Timeout { get; }
}
