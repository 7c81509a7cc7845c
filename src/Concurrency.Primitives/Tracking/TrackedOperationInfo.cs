using System;
using System.Globalization;

namespace Concurrency.Primitives;

/// <summary>What a tracked operation is: a lease from <c>Register</c>, or work started by <c>Go</c>.</summary>
public enum TrackedOperationKind
{
    /// <summary>A lease from <c>Register</c>, released by <see cref="TrackedLease.Dispose"/>.</summary>
    Lease = 0,

    /// <summary>Work started by <c>Go</c>, <c>RunAsync</c> or <c>TryGo</c>, released when the work's task completes.</summary>
    Work = 1,
}

/// <summary>
/// A point-in-time description of one outstanding operation, as returned by <see cref="TaskTracker.GetOutstanding"/>
/// and carried by <see cref="TaskTrackerTimeoutException"/>.
/// </summary>
public sealed class TrackedOperationInfo
{
    /// <summary>Creates a description of an operation (the tracker builds these; a test of a handler may build one).</summary>
    /// <param name="id">The operation's identifier.</param>
    /// <param name="parentId">The identifier of the operation that registered it, or <see langword="null"/> for top-level work.</param>
    /// <param name="name">Its name.</param>
    /// <param name="kind">Lease or work.</param>
    /// <param name="waitingForSlot">Whether it is work waiting for a concurrency slot.</param>
    /// <param name="age">How long ago it was registered.</param>
    /// <param name="registrationStackTrace">Where it was registered, if captured.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is <see langword="null"/>.</exception>
    public TrackedOperationInfo(long id, long? parentId, string name, TrackedOperationKind kind, bool waitingForSlot, TimeSpan age, string? registrationStackTrace)
    {
        Internal.Guard.NotNull(name);
        Id = id;
        ParentId = parentId;
        Name = name;
        Kind = kind;
        IsWaitingForSlot = waitingForSlot;
        Age = age;
        RegistrationStackTrace = registrationStackTrace;
    }

    /// <summary>The operation's identifier, unique within its tracker, increasing in registration order.</summary>
    public long Id { get; }

    /// <summary>The <see cref="Id"/> of the operation that registered this one as its child, or <see langword="null"/> for top-level work.</summary>
    public long? ParentId { get; }

    /// <summary>The name given at registration, or <c>"(unnamed)"</c>.</summary>
    public string Name { get; }

    /// <summary>Whether this is a lease or started work.</summary>
    public TrackedOperationKind Kind { get; }

    /// <summary><see langword="true"/> while work is registered but waits for a concurrency slot and has not started yet.</summary>
    public bool IsWaitingForSlot { get; }

    /// <summary>How long ago the operation was registered, measured on the tracker's <see cref="TimeProvider"/>.</summary>
    public TimeSpan Age { get; }

    /// <summary>
    /// Where the operation was registered, when <see cref="TaskTrackerOptions.CaptureRegistrationStackTraces"/> is on;
    /// otherwise <see langword="null"/>.
    /// </summary>
    public string? RegistrationStackTrace { get; }

    /// <summary>A one-line description: name, identifier, kind and age.</summary>
    /// <returns>For example <c>build #1 (work, age 2.5 s)</c>.</returns>
    public override string ToString()
    {
        var kind = Kind == TrackedOperationKind.Work ? (IsWaitingForSlot ? "work waiting for a slot" : "work") : "lease";
        var parent = ParentId is { } p ? string.Format(CultureInfo.InvariantCulture, ", child of #{0}", p) : string.Empty;
        return string.Format(CultureInfo.InvariantCulture, "{0} #{1} ({2}{3}, age {4:0.###} s)", Name, Id, kind, parent, Age.TotalSeconds);
    }
}
