using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Concurrency.Primitives;

// LifecycleGroup keeps these invariants (Lifecycle/README.md, "LifecycleGroup"):
//  1. Its own lifecycle is a LifecycleGate's (_gate): the same states, events, signals, idempotent start and stop, close
//     and dispose. The gate's start starts the members, its run watches them for faults, and the one stop step it
//     registers first in the start stops them; so a failed start rolls back through the same path as a stop.
//  2. The dependencies are checked when a start is accepted (unknown names, cycles) and frozen from then on.
//  3. A member starts only once every member it depends on has started and is Running; members whose dependencies are
//     met start concurrently. After a failure no member starts any more.
//  4. A member stops only once every member that depends on it has stopped; a member whose dependent did not stop is
//     left running. Independent members stop concurrently. The whole stop is bounded by ShutdownTimeout.
//  5. No member is driven under _lock, and no user code runs under it.

/// <summary>
/// Starts and stops a set of <see cref="LifecycleGate"/>s (and nested groups) by their dependencies: a gate starts only
/// after every gate it depends on is running, and stops only after every gate that depends on it has stopped.
/// </summary>
/// <remarks>
/// <para>
/// Add each gate with the names of the gates it depends on (<see cref="Add(LifecycleGate, string[])"/>), then start the
/// group. The dependencies are checked when the group starts (<see cref="LifecycleDependencyException"/> names an unknown
/// dependency or the cycle) and cannot change afterwards. Gates whose dependencies are running start concurrently. If a
/// gate fails to start, no other gate starts; the gates that started (or are starting) are stopped in reverse dependency
/// order, and the start throws the failing gate's own exception.
/// </para>
/// <para>
/// A stop brings the gates down in reverse dependency order, concurrently where they do not depend on each other, each
/// gate bounded by its own <see cref="LifecycleGateOptions.ShutdownTimeout"/> and the whole stop by
/// <see cref="LifecycleGroupOptions.ShutdownTimeout"/>. A gate that fails to stop keeps the gates it depends on running;
/// the group is then <see cref="LifecycleState.StopFailed"/> and a new stop resumes.
/// </para>
/// <para>
/// A gate whose run faults while the group runs is reported (<see cref="GateFaulted"/>, a log entry, the
/// <c>concurrency.primitives.group.gate_faults</c> metric); with <see cref="LifecycleGroupFaultPolicy.StopGroup"/> the group
/// then stops everything. A gate that faults while the group is starting fails the start.
/// </para>
/// <para>
/// The group has a gate's surface and semantics (states, <see cref="StateChanged"/>, <see cref="WhenRunning"/>,
/// <see cref="WhenStopped"/>, idempotent and concurrent start and stop, close and dispose) and can itself be added to
/// another group. The group drives its gates: do not start or stop them yourself while it holds them. It stops them but
/// does not dispose them. All members are thread-safe.
/// </para>
/// </remarks>
[DebuggerDisplay("{Name,nq}: {State}, {_members.Count} gate(s)")]
public sealed partial class LifecycleGroup : IAsyncDisposable, IDisposable, ILifecycleMember
{
    private readonly object _lock = new();
    private readonly string _name;
    private readonly LifecycleGroupFaultPolicy _policy;
    private readonly TimeSpan _shutdownTimeout;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly LifecycleGateMetrics _metrics;
    private readonly LifecycleGate _gate;
    private readonly List<Member> _members = new();
    private readonly Dictionary<string, Member> _byName = new(StringComparer.Ordinal);
    private Member[]? _plan; // the members in dependency order, once a start has been accepted; then never changes
    private bool _closed;
    private LifecycleGroup? _group;

    /// <summary>Creates an empty group.</summary>
    /// <param name="options">Settings; <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <see cref="LifecycleGroupOptions.ShutdownTimeout"/> is negative and not infinite, or
    /// <see cref="LifecycleGroupOptions.OnGateFault"/> is not a defined policy.
    /// </exception>
    public LifecycleGroup(LifecycleGroupOptions? options = null)
    {
        options ??= new LifecycleGroupOptions();
        _shutdownTimeout = Guard.Timeout(options.ShutdownTimeout, "LifecycleGroupOptions.ShutdownTimeout");
        if (options.OnGateFault is not (LifecycleGroupFaultPolicy.StopGroup or LifecycleGroupFaultPolicy.Isolate))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.OnGateFault, "LifecycleGroupOptions.OnGateFault must be StopGroup or Isolate.");
        }

        _name = string.IsNullOrEmpty(options.Name) ? "LifecycleGroup" : options.Name!;
        _policy = options.OnGateFault;
        _logger = options.Logger ?? NullLogger.Instance;
        _time = options.TimeProvider ?? TimeProvider.System;
        _metrics = LifecycleGateMetrics.For(options.MeterFactory);

        // The group's own lifecycle. Its stop step is the group's (bounded by ShutdownTimeout there, with a timeout that
        // names the gates), so the gate itself waits without a bound of its own.
        _gate = new LifecycleGate(
            StartMembersAsync,
            WatchForFaultsAsync,
            stop: null,
            new LifecycleGateOptions
            {
                Name = _name,
                AllowRestart = options.AllowRestart,
                ShutdownTimeout = Timeout.InfiniteTimeSpan,
                Logger = _logger,
                TimeProvider = _time,
                MeterFactory = options.MeterFactory,
            });
        _gate.StateChanged += OnOwnStateChanged;
    }

    /// <summary>Raised after every state transition of the group, in order, as <see cref="LifecycleGate.StateChanged"/> is.</summary>
    public event EventHandler<LifecycleStateChangedEventArgs>? StateChanged;

    /// <summary>
    /// Raised when a gate faults while the group is starting or running, before the group acts on it. Handlers run on the
    /// faulted gate's event work item (after its own <see cref="LifecycleGate.StateChanged"/> handlers), one at a time,
    /// never under a lock; one that throws is logged and the others still run.
    /// </summary>
    public event EventHandler<LifecycleGateFaultedEventArgs>? GateFaulted;

    /// <summary>The group's name, from <see cref="LifecycleGroupOptions.Name"/>.</summary>
    public string Name => _name;

    /// <summary>The group's state, with a gate's meaning: <see cref="LifecycleState.Running"/> once every gate runs.</summary>
    public LifecycleState State => _gate.State;

    /// <summary>The exception that put the group in its failure state; <see langword="null"/> in any other state.</summary>
    public Exception? Fault => _gate.Fault;

    /// <summary>
    /// While the group stops: each gate whose stop is in progress and what it waits for (<c>"db: run, rpc: stop"</c>);
    /// <see langword="null"/> in every other state.
    /// </summary>
    public string? PendingStopStep
    {
        get
        {
            if (State != LifecycleState.Stopping)
            {
                return null;
            }

            var pending = DescribeStopping();
            return pending.Count == 0 ? _gate.PendingStopStep : string.Join(", ", pending);
        }
    }

    /// <summary>The names of the gates in the group, in the order they were added.</summary>
    public IReadOnlyList<string> GateNames
    {
        get
        {
            lock (_lock)
            {
                return _members.ConvertAll(member => member.Gate.Name);
            }
        }
    }

    /// <summary>Completes when the group is running, as <see cref="LifecycleGate.WhenRunning"/> does.</summary>
    public Task WhenRunning => _gate.WhenRunning;

    /// <summary>Completes when the group is stopped, as <see cref="LifecycleGate.WhenStopped"/> does.</summary>
    public Task WhenStopped => _gate.WhenStopped;

    /// <summary>Completes when the group has been closed and torn down, as <see cref="LifecycleGate.Completion"/> does.</summary>
    public Task Completion => _gate.Completion;

    LifecycleGroup? ILifecycleMember.Group => Volatile.Read(ref _group);

    /// <summary>Adds a gate that depends on the gates named in <paramref name="dependsOn"/>.</summary>
    /// <param name="gate">The gate; its <see cref="LifecycleGate.Name"/> is its name in the group.</param>
    /// <param name="dependsOn">The names of the gates it needs running before it starts (and stopped only after it).</param>
    /// <exception cref="ArgumentNullException"><paramref name="gate"/> or <paramref name="dependsOn"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">A gate of that name is already in the group, or a dependency name is null or empty.</exception>
    /// <exception cref="InvalidOperationException">The group has started or been closed, or the gate belongs to a group already.</exception>
    /// <remarks>Dependencies may name gates added later; they are checked when the group starts.</remarks>
    public void Add(LifecycleGate gate, params string[] dependsOn) => AddMember(Guard.NotNull(gate), dependsOn);

    /// <summary>Adds a nested group that depends on the gates named in <paramref name="dependsOn"/>; it starts and stops as one gate.</summary>
    /// <param name="group">The group; its <see cref="Name"/> is its name in this group.</param>
    /// <param name="dependsOn">The names of the gates it needs running before it starts (and stopped only after it).</param>
    /// <exception cref="ArgumentNullException"><paramref name="group"/> or <paramref name="dependsOn"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">A gate of that name is already in the group, or a dependency name is null or empty.</exception>
    /// <exception cref="InvalidOperationException">
    /// This group has started or been closed, the group belongs to a group already, or it is this group or contains it.
    /// </exception>
    public void Add(LifecycleGroup group, params string[] dependsOn)
    {
        Guard.NotNull(group);
        for (var outer = this; outer is not null; outer = Volatile.Read(ref outer._group))
        {
            if (ReferenceEquals(outer, group))
            {
                throw new InvalidOperationException($"Group '{group.Name}' is group '{_name}' or contains it; a group cannot hold itself.");
            }
        }

        AddMember(group, dependsOn);
    }

    /// <summary>
    /// Starts the group, or joins the start in progress: every gate, in dependency order. Concurrent callers share one start,
    /// as with <see cref="LifecycleGate.StartAsync"/>.
    /// </summary>
    /// <param name="cancellationToken">Cancels only this caller's wait; the start goes on for everyone else.</param>
    /// <returns><see langword="true"/> if this call started the group; <see langword="false"/> if it was running or another caller started it.</returns>
    /// <exception cref="LifecycleDependencyException">A gate depends on a name not in the group, or gates depend on each other in a cycle; nothing started.</exception>
    /// <exception cref="ObjectDisposedException">The group has been disposed.</exception>
    /// <exception cref="ClosedException">The group has been closed.</exception>
    /// <exception cref="InvalidOperationException">The group is stopped and does not allow a restart, or a stop must finish first.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled, or a stop cancelled the start.</exception>
    /// <remarks>A gate's start failure is thrown as is, after the gates that started have been stopped again.</remarks>
    public Task<bool> StartAsync(CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _plan) is null)
        {
            Plan();
        }

        return _gate.StartAsync(cancellationToken);
    }

    /// <summary>Stops the group, or joins the stop in progress, or resumes a stop that failed: every gate, in reverse dependency order.</summary>
    /// <param name="cancellationToken">Abandons only this caller's wait: the stop goes on, bounded by <see cref="LifecycleGroupOptions.ShutdownTimeout"/>.</param>
    /// <returns><see langword="true"/> if this call stopped the group; <see langword="false"/> if it was not started, already stopped, or another caller's stop did it.</returns>
    /// <exception cref="LifecycleGroupStopTimeoutException">The stop did not finish within <see cref="LifecycleGroupOptions.ShutdownTimeout"/>; it names the gates still stopping.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    /// <remarks>
    /// A gate's stop failure is thrown as is (an <see cref="AggregateException"/> when several failed), with the group
    /// <see cref="LifecycleState.StopFailed"/>. After a fault with <see cref="LifecycleGroupFaultPolicy.StopGroup"/>, the
    /// stop throws the faulted gate's exception once every gate has stopped.
    /// </remarks>
    public Task<bool> StopAsync(CancellationToken cancellationToken = default) => _gate.StopAsync(cancellationToken);

    /// <summary>Closes the group: stops it and refuses every later start with <see cref="ClosedException"/>.</summary>
    /// <param name="cancellationToken">Abandons only this caller's wait; the stop goes on.</param>
    /// <returns>A task that completes when the group is closed and every gate stopped.</returns>
    /// <exception cref="LifecycleGroupStopTimeoutException">The stop did not finish in time; close (or stop) again to resume.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(CancellationToken cancellationToken = default)
    {
        MarkClosed();
        return _gate.CloseAsync(cancellationToken);
    }

    /// <summary>Closes the group as <see cref="CloseAsync(CancellationToken)"/> does, waiting at most <paramref name="timeout"/> in all.</summary>
    /// <param name="timeout">The bound on this wait; <see cref="Timeout.InfiniteTimeSpan"/> for none (the stop is still bounded by <see cref="LifecycleGroupOptions.ShutdownTimeout"/>).</param>
    /// <param name="cancellationToken">Abandons only this caller's wait; the stop goes on.</param>
    /// <returns>A task that completes when the group is closed and every gate stopped.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    /// <exception cref="LifecycleGroupStopTimeoutException">The close did not finish in time; it names the gates still stopping.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public Task CloseAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        Guard.Timeout(timeout);
        MarkClosed();
        return CloseWithinAsync(timeout, cancellationToken);
    }

    /// <summary>
    /// Closes the group without waiting: begins the stop, refuses every later start, and returns at once. Never throws;
    /// what the stop would throw is logged at Error. Prefer <see cref="DisposeAsync"/>.
    /// </summary>
    public void Dispose() => _ = DisposeAsync().AsTask();

    /// <summary>
    /// Closes the group and waits for its stop, bounded by <see cref="LifecycleGroupOptions.ShutdownTimeout"/>. Never throws:
    /// what the stop would throw is logged at Error and stays readable (<see cref="Fault"/>, <see cref="Completion"/>). The
    /// gates are stopped, not disposed.
    /// </summary>
    /// <returns>A task that completes when the group is stopped, or its stop has failed.</returns>
    public ValueTask DisposeAsync()
    {
        MarkClosed();
        return _gate.DisposeAsync();
    }

    bool ILifecycleMember.TryJoin(LifecycleGroup group) => Interlocked.CompareExchange(ref _group, group, null) is null;

    private void MarkClosed()
    {
        lock (_lock)
        {
            _closed = true;
        }
    }

    private void AddMember(ILifecycleMember gate, string[] dependsOn)
    {
        Guard.NotNull(dependsOn);
        var dependencies = new List<string>(dependsOn.Length);
        foreach (var dependency in dependsOn)
        {
            if (string.IsNullOrEmpty(dependency))
            {
                throw new ArgumentException($"A dependency of gate '{gate.Name}' is null or empty; name each gate it depends on.", nameof(dependsOn));
            }

            if (!dependencies.Contains(dependency))
            {
                dependencies.Add(dependency);
            }
        }

        lock (_lock)
        {
            if (_closed || _plan is not null)
            {
                throw new InvalidOperationException(
                    $"Group '{_name}' has {(_closed ? "been closed" : "started")}; its gates and dependencies cannot change. Add every gate before the first StartAsync.");
            }

            if (_byName.ContainsKey(gate.Name))
            {
                throw new ArgumentException($"Group '{_name}' already holds a gate named '{gate.Name}'; names identify gates in dependencies, so each must be unique.", nameof(gate));
            }

            if (!gate.TryJoin(this))
            {
                throw new InvalidOperationException(
                    $"Gate '{gate.Name}' already belongs to group '{gate.Group?.Name}'; a gate is driven by one group only.");
            }

            var member = new Member(gate, dependencies.ToArray());
            _members.Add(member);
            _byName.Add(gate.Name, member);
        }

        gate.StateChanged += OnMemberStateChanged;
    }

    /// <summary>Raises the group's <see cref="StateChanged"/> for a transition of its gate, on that gate's event work item.</summary>
    private void OnOwnStateChanged(object? sender, LifecycleStateChangedEventArgs change)
    {
        if (change.Current == LifecycleState.RunFaulted && _policy == LifecycleGroupFaultPolicy.StopGroup && change.Exception is { } fault)
        {
            // The watcher ended the run with a gate's fault: stop everything — unless this event comes late, after the
            // group was stopped and started again (events run on their own work item): then that fault is past.
            _ = StopAfterFaultQuietlyAsync(fault);
        }

        Raise(StateChanged, change);
    }

    private async Task CloseWithinAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _gate.CloseAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (LifecycleStopTimeoutException) when (State != LifecycleState.Stopped)
        {
            // The gate names its one step; the group names its gates.
            throw StillStopping(timeout);
        }
    }

    private async Task StopAfterFaultQuietlyAsync(Exception fault)
    {
        try
        {
            await _gate.StopAfterFaultAsync(fault).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The gate's fault, rethrown by the stop: logged when it happened (2012) and readable as the stop's result.
        }
    }

    private void Raise<TArgs>(EventHandler<TArgs>? handlers, TArgs args) =>
        IsolatedHandlers.Raise(handlers, this, args, _logger, _name, LifecycleGroupLog.HandlerFailed);

    /// <summary>One gate of the group and its place in the dependency graph.</summary>
    [DebuggerDisplay("{Gate.Name,nq}: {Gate.State}")]
    private sealed class Member
    {
        public Member(ILifecycleMember gate, string[] dependsOn)
        {
            Gate = gate;
            DependsOn = dependsOn;
        }

        public ILifecycleMember Gate { get; }

        public string[] DependsOn { get; }

        /// <summary>The members it depends on; set when the plan is made.</summary>
        public Member[] Dependencies { get; set; } = Array.Empty<Member>();

        /// <summary>The members that depend on it; set when the plan is made.</summary>
        public List<Member> Dependents { get; } = new();

        /// <summary>Its position in the plan.</summary>
        public int Index { get; set; }
    }
}
