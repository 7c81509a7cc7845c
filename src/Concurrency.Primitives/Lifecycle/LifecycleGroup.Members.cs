using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>The group's plan and its three passes over the gates: start, watch, stop.</summary>
public sealed partial class LifecycleGroup
{
    private StartPass? _startPass;
    private StopPass? _stopPass;
    private TaskCompletionSource<Exception>? _faultSignal;

    /// <summary>Checks the dependencies and fixes the order; from then on the group cannot change.</summary>
    private void Plan()
    {
        lock (_lock)
        {
            if (_plan is not null || _closed)
            {
                return; // a closed group's start is refused by its gate, with the usual exception
            }

            // Resolve every name first: an unknown dependency is reported as such, not as a broken cycle search.
            var dependencies = new Member[_members.Count][];
            for (var i = 0; i < _members.Count; i++)
            {
                var member = _members[i];
                member.Index = i;
                dependencies[i] = new Member[member.DependsOn.Length];
                for (var d = 0; d < member.DependsOn.Length; d++)
                {
                    dependencies[i][d] = _byName.TryGetValue(member.DependsOn[d], out var dependency)
                        ? dependency
                        : throw new LifecycleDependencyException(_name, member.Gate.Name, member.DependsOn[d]);
                }
            }

            // Depth-first, dependencies before dependents; a dependency met again while its own search is open closes a cycle.
            var order = new List<Member>(_members.Count);
            var marks = new byte[_members.Count]; // 0 unvisited, 1 open, 2 placed
            var path = new List<Member>();
            foreach (var member in _members)
            {
                Visit(member);
            }

            var plan = order.ToArray();
            for (var i = 0; i < plan.Length; i++)
            {
                plan[i].Dependencies = dependencies[plan[i].Index];
            }

            for (var i = 0; i < plan.Length; i++)
            {
                plan[i].Index = i;
                foreach (var dependency in plan[i].Dependencies)
                {
                    dependency.Dependents.Add(plan[i]);
                }
            }

            Volatile.Write(ref _plan, plan);

            void Visit(Member member)
            {
                if (marks[member.Index] == 2)
                {
                    return;
                }

                if (marks[member.Index] == 1)
                {
                    var cycle = new List<string>();
                    for (var i = path.IndexOf(member); i < path.Count; i++)
                    {
                        cycle.Add(path[i].Gate.Name);
                    }

                    cycle.Add(member.Gate.Name);
                    throw new LifecycleDependencyException(_name, cycle);
                }

                marks[member.Index] = 1;
                path.Add(member);
                foreach (var dependency in dependencies[member.Index])
                {
                    Visit(dependency);
                }

                path.RemoveAt(path.Count - 1);
                marks[member.Index] = 2;
                order.Add(member);
            }
        }
    }

    /// <summary>The group gate's start: every member, each once its dependencies run. Its first act registers the stop of them all.</summary>
    private async Task StartMembersAsync(LifecycleContext context, CancellationToken cancellationToken)
    {
        var plan = _plan!;
        var pass = new StartPass(plan);
        Volatile.Write(ref _startPass, pass);
        Volatile.Write(ref _faultSignal, Signals.Create<Exception>());

        // Registered before anything starts: a failed or cancelled start releases through it, as a stop does.
        context.OnStop(StopMembersAsync, "gates");
        if (plan.Length == 0)
        {
            return;
        }

        lock (pass)
        {
            foreach (var member in plan)
            {
                if (member.Dependencies.Length == 0)
                {
                    LaunchLocked(pass, member);
                }
            }
        }

        // A stop during the start cancels the token: return at once; the stop step stops what started or is starting.
        await Signals.WaitAsync(pass.Done.Task, cancellationToken).ConfigureAwait(false);
        Exception? failure;
        Member? failed;
        lock (pass)
        {
            failure = pass.Failure;
            failed = pass.FailedMember;
        }

        if (failure is null)
        {
            // A gate that started and faulted before the group got here: the group does not reach Running without it.
            foreach (var member in plan)
            {
                if (member.Gate.State != LifecycleState.Running)
                {
                    (failed, failure) = (member, NotRunning(member));
                    break;
                }
            }
        }

        if (failure is not null)
        {
            LifecycleGroupLog.GateStartFailed(_logger, _name, failed!.Gate.Name, failure);
            ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    /// <summary>
    /// Starts <paramref name="member"/>; called under the pass's lock, so a stop that closes the pass (under the same
    /// lock) either sees this member starting, and stops it, or starts nothing more.
    /// </summary>
    private void LaunchLocked(StartPass pass, Member member)
    {
        Debug.Assert(Monitor.IsEntered(pass) && !pass.Closed, "Members start under the open pass's lock.");
        pass.AssertInvariants();
        Task<bool> start;
        try
        {
            // Synchronous up to its first wait: the member is Starting when this returns (no user code runs here).
            start = member.Gate.StartAsync(CancellationToken.None);
        }
        catch (Exception exception)
        {
            start = Task.FromException<bool>(exception); // a nested group's own dependency error
        }

        // Observed on the pool, never inline: a start already complete must not re-enter the pass's lock from here.
        _ = Task.Run(() => ObserveStartAsync(pass, member, start), CancellationToken.None);
    }

    private async Task ObserveStartAsync(StartPass pass, Member member, Task<bool> start)
    {
        Exception? failure = null;
        try
        {
            await start.ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            failure = exception;
        }

        OnMemberStarted(pass, member, failure);
    }

    private void OnMemberStarted(StartPass pass, Member member, Exception? failure)
    {
        bool done;
        lock (pass)
        {
            pass.AssertInvariants();
            if (failure is not null)
            {
                pass.Fail(member, failure);
            }
            else
            {
                pass.Started++;
                foreach (var dependent in member.Dependents)
                {
                    if (pass.Closed || --pass.Waiting[dependent.Index] > 0)
                    {
                        continue;
                    }

                    // Every dependency has started; each must still be running when the dependent starts.
                    var stopped = Array.Find(dependent.Dependencies, dependency => dependency.Gate.State != LifecycleState.Running);
                    if (stopped is not null)
                    {
                        pass.Fail(stopped, NotRunning(stopped));
                    }
                    else
                    {
                        LaunchLocked(pass, dependent);
                    }
                }
            }

            done = pass.Closed || pass.Started == pass.Waiting.Length;
        }

        if (done)
        {
            pass.Done.TrySetResult(true);
        }
    }

    private Exception NotRunning(Member member) =>
        member.Gate.Fault ?? new InvalidOperationException(
            $"Group '{_name}': gate '{member.Gate.Name}' is {member.Gate.State}, not Running, so the group cannot start. Do not stop a group's gates directly.");

    /// <summary>The group gate's run: waits for a member's fault and, with <see cref="LifecycleGroupFaultPolicy.StopGroup"/>, ends with it.</summary>
    private async Task WatchForFaultsAsync(CancellationToken cancellationToken)
    {
        var signal = Volatile.Read(ref _faultSignal)!;
        var stopping = Signals.Create();
        using (cancellationToken.Register(static state => ((TaskCompletionSource<bool>)state!).TrySetResult(true), stopping))
        {
            var first = await Task.WhenAny(signal.Task, stopping.Task).ConfigureAwait(false);
            if (first == signal.Task && _policy == LifecycleGroupFaultPolicy.StopGroup)
            {
                // The run faults with the gate's own exception: the group becomes RunFaulted, and its handler stops it.
                ExceptionDispatchInfo.Capture(await signal.Task.ConfigureAwait(false)).Throw();
            }

            await stopping.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Reports a member's fault while the group starts or runs (on that member's event work item).</summary>
    private void OnMemberStateChanged(object? sender, LifecycleStateChangedEventArgs change)
    {
        if (change.Current != LifecycleState.RunFaulted || change.Exception is not { } fault || sender is not ILifecycleMember gate
            || State is not (LifecycleState.Starting or LifecycleState.Running) || !ReferenceEquals(gate.Fault, fault))
        {
            // A fault during the group's stop is that stop's to report; one whose event comes after the gate has moved on
            // (stopped, and perhaps started again in the group's next cycle) is past.
            return;
        }

        LifecycleGroupLog.GateFaulted(_logger, _name, gate.Name, _policy, fault);
        if (_metrics.GroupGateFaults.Enabled)
        {
            _metrics.GroupGateFaults.Add(1, new KeyValuePair<string, object?>("group.name", _name), new KeyValuePair<string, object?>("gate.name", gate.Name));
        }

        Raise(GateFaulted, new LifecycleGateFaultedEventArgs(gate.Name, fault, _policy));
        Volatile.Read(ref _faultSignal)?.TrySetResult(fault);
    }

    /// <summary>
    /// The group gate's one stop step: every member in reverse dependency order, within <see cref="_shutdownTimeout"/>.
    /// A step resumed after a timeout joins the pass still in progress.
    /// </summary>
    private async Task StopMembersAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _startPass) is { } starting)
        {
            lock (starting)
            {
                starting.Closed = true; // no member starts from now on
            }

            starting.Done.TrySetResult(true);
        }

        StopPass pass;
        lock (_lock)
        {
            if (_stopPass is not { All.IsCompleted: false })
            {
                _stopPass = new StopPass(_plan!.Length);
                _stopPass.Begin(this, _plan);
            }

            pass = _stopPass;
        }

        if (!await Signals.WaitWithinAsync(pass.All, _shutdownTimeout, _time, CancellationToken.None).ConfigureAwait(false))
        {
            throw StillStopping(_shutdownTimeout);
        }

        await pass.All.ConfigureAwait(false);

        var failures = pass.Failures;
        if (failures.Count == 1)
        {
            ExceptionDispatchInfo.Capture(failures[0]).Throw();
        }

        if (failures.Count > 1)
        {
            throw new AggregateException($"Group '{_name}': {failures.Count} gates did not stop; the gates they depend on are left running. Stop the group again to resume.", failures);
        }
    }

    /// <summary>Stops one member once every member that depends on it has stopped.</summary>
    private async Task<bool> StopMemberAsync(StopPass pass, Member member)
    {
        foreach (var dependent in member.Dependents)
        {
            if (!await pass.Stops[dependent.Index]!.ConfigureAwait(false))
            {
                return false; // a dependent is still up: so is this member
            }
        }

        Volatile.Write(ref pass.Begun[member.Index], true);
        try
        {
            await member.Gate.StopAsync(CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception exception) when (member.Gate.State is LifecycleState.Stopped or LifecycleState.NotStarted or LifecycleState.StartFailed)
        {
            // Torn down completely; the stop threw the run's earlier fault, which was reported when it happened.
            LifecycleGroupLog.GateStoppedWithFault(_logger, _name, member.Gate.Name, exception);
            return true;
        }
        catch (Exception exception)
        {
            LifecycleGroupLog.GateStopFailed(_logger, _name, member.Gate.Name, exception);
            pass.AddFailure(exception);
            return false;
        }
    }

    private LifecycleGroupStopTimeoutException StillStopping(TimeSpan timeout)
    {
        StopPass? pass;
        lock (_lock)
        {
            pass = _stopPass;
        }

        return pass is not null && Volatile.Read(ref _plan) is { } plan
            ? pass.TimedOut(_name, timeout, plan)
            : new LifecycleGroupStopTimeoutException(_name, timeout, new Dictionary<string, string>(), Array.Empty<string>());
    }

    private List<string> DescribeStopping()
    {
        var stopping = new List<string>();
        foreach (var member in Volatile.Read(ref _plan) ?? Array.Empty<Member>())
        {
            if (member.Gate.State == LifecycleState.Stopping)
            {
                stopping.Add($"{member.Gate.Name}: {member.Gate.PendingStopStep ?? "stop"}");
            }
        }

        return stopping;
    }
}
