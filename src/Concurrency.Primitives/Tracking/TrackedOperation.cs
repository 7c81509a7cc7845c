using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives;

/// <summary>
/// The handle <c>Go</c> and <c>RunAsync</c> pass to their work: while the work runs, the tracker's count includes it,
/// so the tracker cannot complete — which is what makes it safe to register the work's children through it. The
/// tracker releases the registration when the work's task completes; the handle cannot release it (it is not disposable).
/// </summary>
/// <remarks>
/// <para>
/// <b>Children.</b> <see cref="Register"/>, <see cref="Go(Func{CancellationToken, Task}, string?)"/>,
/// <see cref="RunAsync(Func{CancellationToken, Task}, string?)"/> and <see cref="TryGo(Func{CancellationToken, Task}, string?)"/>
/// register a child <i>before</i> it starts, while this operation still holds its count. They are accepted even after
/// the tracker has begun closing (the close waits for the children too); a top-level registration at that point is
/// rejected. This is the fix for the WaitGroup bug in which a child called <c>Add</c> from inside itself after the
/// parent's <c>Done</c> had already taken the counter to zero. Children never wait for a concurrency slot: the parent
/// holds one for its whole unit of work.
/// </para>
/// <para>The handle is a small value; copies refer to the same registration. Thread-safe.</para>
/// </remarks>
public readonly struct TrackedOperation : IEquatable<TrackedOperation>
{
    private readonly TrackedParent _parent;

    internal TrackedOperation(TaskTracker tracker, TrackedNode node, long id) => _parent = new TrackedParent(tracker, node, id);

    /// <summary>The registration's identifier within its tracker (0 for a default handle).</summary>
    public long Id => _parent.Id;

    /// <summary><see langword="true"/> while the work runs; <see langword="false"/> once it has finished, or for a default handle.</summary>
    public bool IsActive => _parent.IsActive;

    /// <summary>The tracker's <see cref="TaskTracker.ClosingToken"/>: cancelled when the tracker begins closing. A default handle's token is never cancelled.</summary>
    public CancellationToken ClosingToken => _parent.ClosingToken;

    /// <summary>Registers a child lease of this operation.</summary>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>The child's lease; dispose it when the child's work is done.</returns>
    /// <exception cref="InvalidOperationException">This operation has finished, or is a default handle.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    /// <exception cref="ObjectDisposedException">The tracker has been disposed and has completed.</exception>
    public TrackedLease Register(string? name = null) => _parent.Register(name);

    /// <summary>Registers child work of this operation, then starts it on the thread pool; returns at once.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <remarks>The child's failure is recorded by the tracker and thrown by its <c>CloseAsync</c>.</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation has finished, or is a default handle.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public void Go(Func<CancellationToken, Task> work, string? name = null) => _parent.Go(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers child work that receives its own handle (to register grandchildren), then starts it; returns at once.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation has finished, or is a default handle.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public void Go(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.Go(null, Internal.Guard.NotNull(work), name);

    /// <summary>Registers child work of this operation, starts it, and returns the child's own task.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>A task that completes as the child's work did (its failure goes to this task only, as with <see cref="TaskTracker.RunAsync(Func{CancellationToken, Task}, string?, CancellationToken)"/>).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation has finished, or is a default handle.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public Task RunAsync(Func<CancellationToken, Task> work, string? name = null) => _parent.RunAsync(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers child work that receives its own handle, starts it, and returns the child's own task.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>A task that completes as the child's work did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This operation has finished, or is a default handle.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public Task RunAsync(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.RunAsync(null, Internal.Guard.NotNull(work), name);

    /// <summary>Registers and starts child work if this operation is active and the tracker accepts it.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started; <see langword="false"/> otherwise (also for a default handle).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<CancellationToken, Task> work, string? name = null) => _parent.TryGo(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers and starts child work that receives its own handle, if this operation is active and the tracker accepts it.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started; <see langword="false"/> otherwise.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.TryGo(null, Internal.Guard.NotNull(work), name);

    /// <inheritdoc />
    public bool Equals(TrackedOperation other) => _parent.Equals(other._parent);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TrackedOperation other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _parent.GetHashCode();

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

/// <summary>
/// A lease from <see cref="TaskTracker.Register"/> (or a handle's <c>Register</c>): the tracker's count includes it until
/// it is disposed, for work you start and finish yourself. Register the work's children through it, as through a
/// <see cref="TrackedOperation"/>.
/// </summary>
/// <remarks>
/// <see cref="Dispose"/> releases the lease exactly once: a second call, on this value or a copy, is a no-op, and so is
/// disposing a default lease. The lease is a small value; copies refer to the same registration. Thread-safe.
/// </remarks>
public readonly struct TrackedLease : IDisposable, IEquatable<TrackedLease>
{
    private readonly TrackedParent _parent;

    internal TrackedLease(TaskTracker tracker, TrackedNode node, long id) => _parent = new TrackedParent(tracker, node, id);

    /// <summary>The registration's identifier within its tracker (0 for a default lease).</summary>
    public long Id => _parent.Id;

    /// <summary><see langword="true"/> until the lease is disposed; <see langword="false"/> afterwards, or for a default lease.</summary>
    public bool IsActive => _parent.IsActive;

    /// <summary>The tracker's <see cref="TaskTracker.ClosingToken"/>: cancelled when the tracker begins closing. A default lease's token is never cancelled.</summary>
    public CancellationToken ClosingToken => _parent.ClosingToken;

    /// <summary>Registers a child lease of this lease.</summary>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>The child's lease.</returns>
    /// <exception cref="InvalidOperationException">This lease has been disposed, or is a default lease.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public TrackedLease Register(string? name = null) => _parent.Register(name);

    /// <summary>Registers child work of this lease, then starts it on the thread pool; returns at once.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This lease has been disposed, or is a default lease.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public void Go(Func<CancellationToken, Task> work, string? name = null) => _parent.Go(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers child work that receives its own handle, then starts it; returns at once.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This lease has been disposed, or is a default lease.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public void Go(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.Go(null, Internal.Guard.NotNull(work), name);

    /// <summary>Registers child work of this lease, starts it, and returns the child's own task.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>A task that completes as the child's work did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This lease has been disposed, or is a default lease.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public Task RunAsync(Func<CancellationToken, Task> work, string? name = null) => _parent.RunAsync(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers child work that receives its own handle, starts it, and returns the child's own task.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns>A task that completes as the child's work did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">This lease has been disposed, or is a default lease.</exception>
    /// <exception cref="ClosedException">The tracker has completed.</exception>
    public Task RunAsync(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.RunAsync(null, Internal.Guard.NotNull(work), name);

    /// <summary>Registers and starts child work if this lease is active and the tracker accepts it.</summary>
    /// <param name="work">The work; it receives the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started; <see langword="false"/> otherwise.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<CancellationToken, Task> work, string? name = null) => _parent.TryGo(Internal.Guard.NotNull(work), null, name);

    /// <summary>Registers and starts child work that receives its own handle, if this lease is active and the tracker accepts it.</summary>
    /// <param name="work">The work; it receives its own handle and the tracker's <see cref="TaskTracker.ClosingToken"/>.</param>
    /// <param name="name">A name for <see cref="TaskTracker.GetOutstanding"/>, logs and timeout messages.</param>
    /// <returns><see langword="true"/> if the work was registered and started; <see langword="false"/> otherwise.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is <see langword="null"/>.</exception>
    public bool TryGo(Func<TrackedOperation, CancellationToken, Task> work, string? name = null) => _parent.TryGo(null, Internal.Guard.NotNull(work), name);

    /// <summary>Releases the lease: the tracker's count goes down by one. A second release, of this value or a copy, is a no-op; so is releasing a default lease.</summary>
    public void Dispose() => _parent.ReleaseLease();

    /// <inheritdoc />
    public bool Equals(TrackedLease other) => _parent.Equals(other._parent);

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is TrackedLease other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => _parent.GetHashCode();

    /// <summary>Whether two leases refer to the same registration.</summary>
    /// <param name="left">The first lease.</param>
    /// <param name="right">The second lease.</param>
    /// <returns><see langword="true"/> if both refer to the same registration.</returns>
    public static bool operator ==(TrackedLease left, TrackedLease right) => left.Equals(right);

    /// <summary>Whether two leases refer to different registrations.</summary>
    /// <param name="left">The first lease.</param>
    /// <param name="right">The second lease.</param>
    /// <returns><see langword="true"/> if they refer to different registrations.</returns>
    public static bool operator !=(TrackedLease left, TrackedLease right) => !left.Equals(right);
}

/// <summary>What a lease and a work handle share: a registration that can register children.</summary>
internal readonly struct TrackedParent : IEquatable<TrackedParent>
{
    private readonly TaskTracker? _tracker;
    private readonly TrackedNode? _node;
    private readonly long _id;

    public TrackedParent(TaskTracker tracker, TrackedNode node, long id)
    {
        _tracker = tracker;
        _node = node;
        _id = id;
    }

    public long Id => _id;

    public bool IsActive => _node is { } node && node.IsLive(_tracker!, _id);

    public CancellationToken ClosingToken => _tracker?.ClosingToken ?? default;

    private TaskTracker Tracker => _tracker ?? throw new InvalidOperationException("This handle is a default value; obtain one from TaskTracker.Register, or from the handle Go and RunAsync pass to their work.");

    public TrackedLease Register(string? name) => Tracker.RegisterChild(_node!, _id, name);

    public void Go(Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name) =>
        _ = Tracker.GoChild(_node!, _id, work, workWithHandle, name, observe: false);

    public Task RunAsync(Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name) =>
        Tracker.GoChild(_node!, _id, work, workWithHandle, name, observe: true);

    public bool TryGo(Func<CancellationToken, Task>? work, Func<TrackedOperation, CancellationToken, Task>? workWithHandle, string? name) =>
        _tracker is { } tracker && tracker.TryGoChild(_node!, _id, work, workWithHandle, name);

    public void ReleaseLease() => _tracker?.ReleaseLease(_node!, _id);

    public bool Equals(TrackedParent other) => ReferenceEquals(_tracker, other._tracker) && ReferenceEquals(_node, other._node) && _id == other._id;

    public override bool Equals(object? obj) => obj is TrackedParent other && Equals(other);

    public override int GetHashCode() => _id.GetHashCode();
}

/// <summary>Describes one failure of tracked work, for <see cref="TaskTracker.WorkFailed"/>.</summary>
public sealed class TrackedWorkFailedEventArgs : EventArgs
{
    /// <summary>Creates the description of a failure (the tracker raises these; a test of a handler may build one).</summary>
    /// <param name="name">The name the work was registered with.</param>
    /// <param name="id">The work's registration id (0 for a failure of a <see cref="TaskTracker.ClosingToken"/> callback).</param>
    /// <param name="exception">The failure.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="exception"/> is <see langword="null"/>.</exception>
    public TrackedWorkFailedEventArgs(string name, long id, Exception exception)
    {
        Name = Internal.Guard.NotNull(name);
        Id = id;
        Exception = Internal.Guard.NotNull(exception);
    }

    /// <summary>The name the work was registered with.</summary>
    public string Name { get; }

    /// <summary>The work's registration id.</summary>
    public long Id { get; }

    /// <summary>The failure.</summary>
    public Exception Exception { get; }
}
