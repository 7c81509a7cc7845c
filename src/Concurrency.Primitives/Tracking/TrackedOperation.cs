using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives;

/// <summary>
/// A handle to one registration in a <see cref="TaskTracker"/>: a lease from <see cref="TaskTracker.Register"/>,
/// or the handle that <c>Go</c> passes to its work. While it is active, the tracker's count includes it, so the
/// tracker cannot complete; that is what makes it safe to register children through it.
/// </summary>
/// <remarks>
/// <para>
/// <b>Children.</b> <see cref="Register"/>, <see cref="Go(Func{CancellationToken, Task}, string?)"/>
/// and <see cref="TryGo(Func{CancellationToken, Task}, string?)"/> register a child <i>before</i> it starts,
/// while this operation still holds its count. They are accepted even after the tracker has begun closing (the
/// close waits for the children too); a top-level registration at that point is rejected. This is the fix for the
/// WaitGroup bug in which a child called <c>Add</c> from inside itself after the parent's <c>Done</c> had already
/// taken the counter to zero.
/// </para>
/// <para>
/// <b>Release.</b> <see cref="Dispose"/> releases a lease exactly once: a second call, on this value or a copy, is a
/// no-op. The handle of <c>Go</c> work is released by the tracker when the work's task completes; disposing it throws.
/// The handle is a small value; copies refer to the same registration. Thread-safe.
/// </para>
/// </remarks>
public readonly struct TrackedOperation : IDisposable, IEquatable<TrackedOperation>
{
    private readonly TaskTracker? _tracker;
    private readonly TrackedNode? _node;
    private readonly long _id;

    internal TrackedOperation(TaskTracker tracker, TrackedNode node, long id)
    {
        _tracker = tracker;
        _node = node;
        _id = id;
    }

    /// <summary>The registration's identifier within its tracker (0 for a default handle).</summary>
    public long Id => _id;

    /// <summary><see langword="true"/> while the registration is outstanding; <see langword="false"/> once released, or for a default handle.</summary>
    public bool IsActive => _node is { } node && node.IsLive(_tracker!, _id);

    /// <summary>The tracker's <see cref="TaskTracker.Stopping"/> token: cancelled when the tracker begins closing.</summary>
    /// <exception cref="InvalidOperationException">This is a default handle.</exception>
    public CancellationToken Stopping => Tracker.Stopping;

    private TaskTracker Tracker => _tracker ?? throw new InvalidOperationException("This TrackedOperation is a default value; obtain one from TaskTracker.Register or from the handle Go passes to its work.");

    /// <summary>Registers a child lease of this operation.</summary>
    /// <param name="name">A name for <see cref="TaskTracker.Snapshot"/>, logs and timeout messages.</param>
    /// <returns>The child's lease; dispose it when the child's work is done.</returns>
    /// <exception cref="InvalidOperationException">This operation is no longer active, or the tracker has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed and has completed.</exception>
    public TrackedOperation Register(string? name = null) => Tracker.RegisterChild(_node!, _id, name);

    /// <summary>Registers child work of this operation, then starts it on the thread pool.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.Stopping"/> token.</param>
    /// <param name="name">A name for <see cref="TaskTracker.Snapshot"/>, logs and timeout messages.</param>
    /// <returns>A task that completes when the work has been registered and started (not when it finishes): at once.</returns>
    /// <remarks>Child work does not take a concurrency slot (see <see cref="TaskTrackerOptions.MaxConcurrency"/>).</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation is no longer active, or the tracker has completed.</exception>
    public Task Go(Func<CancellationToken, Task> work, string? name = null) =>
        Tracker.GoChild(_node!, _id, work, null, name);

    /// <summary>Registers child work of this operation that receives its own handle, then starts it on the thread pool.</summary>
    /// <param name="work">The work; it receives its own handle (to register grandchildren) and the <see cref="TaskTracker.Stopping"/> token.</param>
    /// <param name="name">A name for <see cref="TaskTracker.Snapshot"/>, logs and timeout messages.</param>
    /// <returns>A task that completes when the work has been registered and started (not when it finishes): at once.</returns>
    /// <remarks>Child work does not take a concurrency slot (see <see cref="TaskTrackerOptions.MaxConcurrency"/>).</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation is no longer active, or the tracker has completed.</exception>
    public Task Go(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) =>
        Tracker.GoChild(_node!, _id, null, work, name);

    /// <summary>Registers and starts child work if this operation is active, the tracker accepts it and a slot is free.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.Stopping"/> token.</param>
    /// <param name="name">A name for <see cref="TaskTracker.Snapshot"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<CancellationToken, Task> work, string? name = null) =>
        _tracker is { } tracker && tracker.TryGoChild(_node!, _id, work, null, name);

    /// <summary>Registers and starts child work that receives its own handle, if this operation is active, the tracker accepts it and a slot is free.</summary>
    /// <param name="work">The work; it receives its own handle and the <see cref="TaskTracker.Stopping"/> token.</param>
    /// <param name="name">A name for <see cref="TaskTracker.Snapshot"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) =>
        _tracker is { } tracker && tracker.TryGoChild(_node!, _id, null, work, name);

    /// <summary>
    /// Releases a lease: the tracker's count goes down by one. A second release, of this value or a copy, is a
    /// no-op; so is releasing a default handle.
    /// </summary>
    /// <exception cref="InvalidOperationException">This is the handle of work started by <c>Go</c>, which the tracker releases when the work completes.</exception>
    public void Dispose()
    {
        _tracker?.ReleaseLease(_node!, _id);
    }

    /// <inheritdoc />
    public bool Equals(TrackedOperation other) => ReferenceEquals(_tracker, other._tracker) && ReferenceEquals(_node, other._node) && _id == other._id;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TrackedOperation other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _id.GetHashCode();

    /// <summary>Whether two handles refer to the same registration.</summary>
    /// <param name="left">The first handle.</param>
    /// <param name="right">The second handle.</param>
    /// <returns><see langword="true"/> if both refer to the same registration.</returns>
    public static bool operator ==(TrackedOperation left, TrackedOperation right) => left.Equals(right);

    /// <summary>Whether two handles refer to different registrations.</summary>
    /// <param name="left">The first handle.</param>
    /// <param name="right">The second handle.</param>
    /// <returns><see langword="true"/> if they refer to different registrations.</returns>
    public static bool operator !=(TrackedOperation left, TrackedOperation right) => !left.Equals(right);
}
