using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Concurrency.Primitives;

/// <summary>
/// Thrown when closing or disposing a <see cref="TaskTracker"/> does not finish within its timeout. It names
/// what is still outstanding, so that a leak can be traced to the code that registered it.
/// </summary>
/// <remarks>The tracker stays closing: outstanding work keeps running, and a later <c>CloseAsync</c> can wait again.</remarks>
public sealed class TaskTrackerTimeoutException : ShutdownTimeoutException
{
    private const int MaxListed = 20;

    /// <summary>Creates an exception with a default message.</summary>
    public TaskTrackerTimeoutException()
        : this("Closing the task tracker timed out.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public TaskTrackerTimeoutException(string message)
        : base(message)
    {
        Outstanding = Array.Empty<TrackedOperationInfo>();
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public TaskTrackerTimeoutException(string message, Exception innerException)
        : base(message, innerException)
    {
        Outstanding = Array.Empty<TrackedOperationInfo>();
    }

    /// <summary>Creates the exception a tracker throws when its close times out (a test of a handler may build one).</summary>
    /// <param name="trackerName">The tracker's name.</param>
    /// <param name="timeout">The timeout that elapsed.</param>
    /// <param name="outstanding">The operations still outstanding, oldest first.</param>
    /// <param name="unnamedCount">How many anonymous <c>Add</c> registrations were outstanding.</param>
    /// <exception cref="ArgumentNullException"><paramref name="trackerName"/> or <paramref name="outstanding"/> is <see langword="null"/>.</exception>
    public TaskTrackerTimeoutException(string trackerName, TimeSpan timeout, IReadOnlyList<TrackedOperationInfo> outstanding, int unnamedCount)
        : base(Internal.Guard.NotNull(trackerName), timeout, FormatMessage(trackerName, timeout, Internal.Guard.NotNull(outstanding), unnamedCount))
    {
        Outstanding = outstanding;
        UnnamedCount = unnamedCount;
    }

    /// <summary>The operations from <c>Go</c> and <c>Register</c> still outstanding when the timeout elapsed, oldest first.</summary>
    public IReadOnlyList<TrackedOperationInfo> Outstanding { get; }

    /// <summary>How many anonymous <c>Add</c> registrations were still outstanding (they carry no name).</summary>
    public int UnnamedCount { get; }

    private static string FormatMessage(string trackerName, TimeSpan timeout, IReadOnlyList<TrackedOperationInfo> outstanding, int unnamedCount)
    {
        var text = new StringBuilder();
        text.AppendFormat(
            CultureInfo.InvariantCulture,
            "Closing task tracker '{0}' timed out after {1} with {2} operation(s) outstanding (the tracker stays closing; the work keeps running)",
            trackerName,
            timeout,
            outstanding.Count + unnamedCount);
        text.Append(outstanding.Count > 0 ? " (each child under the operation that registered it):" : ".");
        OperationTree.Append(text, outstanding, MaxListed, "  ");

        if (unnamedCount > 0)
        {
            text.AppendLine().AppendFormat(CultureInfo.InvariantCulture, "  plus {0} anonymous Add() registration(s) without a matching Done()", unnamedCount);
        }

        return text.ToString();
    }
}
