using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>The state of one start and one stop of the group's gates.</summary>
public sealed partial class LifecycleGroup
{
    /// <summary>One start of the members. Its lock orders every launch against the stop that closes it.</summary>
    private sealed class StartPass
    {
        public StartPass(Member[] plan)
        {
            Waiting = new int[plan.Length];
            for (var i = 0; i < plan.Length; i++)
            {
                Waiting[i] = plan[i].Dependencies.Length;
            }
        }

        /// <summary>Per member, how many of its dependencies have not started yet.</summary>
        public int[] Waiting { get; }

        public TaskCompletionSource<bool> Done { get; } = Signals.Create();

        /// <summary>How many members have started. Guarded by this pass's lock.</summary>
        public int Started { get; set; }

        /// <summary>No member starts any more: one failed, or a stop began. Guarded by this pass's lock.</summary>
        public bool Closed { get; set; }

        public Exception? Failure { get; private set; }

        public Member? FailedMember { get; private set; }

        /// <summary>What holds under this pass's lock: no count below zero, no more starts than members, a failure closes the pass.</summary>
        [Conditional("DEBUG")]
        public void AssertInvariants()
        {
            Debug.Assert(Monitor.IsEntered(this), "The pass's lock must be held.");
            Debug.Assert(Started <= Waiting.Length, "No more members start than the plan holds.");
            Debug.Assert(Array.TrueForAll(Waiting, waiting => waiting >= 0), "A member waits for no fewer than zero dependencies.");
            Debug.Assert(Failure is null || Closed, "A failure closes the pass.");
        }

        public void Fail(Member member, Exception failure)
        {
            if (Failure is null && !Closed)
            {
                (Failure, FailedMember) = (failure, member);
            }

            Closed = true;
        }
    }

    /// <summary>One stop of the members: a task per member, each awaiting those of the members that depend on it.</summary>
    private sealed class StopPass
    {
        private readonly List<Exception> _failures = new();

        public StopPass(int count)
        {
            Stops = new Task<bool>?[count];
            Begun = new bool[count];
            All = Task.CompletedTask;
        }

        public Task<bool>?[] Stops { get; }

        /// <summary>Per member, whether its own stop has begun (its dependents are down).</summary>
        public bool[] Begun { get; }

        public Task All { get; private set; }

        public List<Exception> Failures
        {
            get
            {
                lock (_failures)
                {
                    return new List<Exception>(_failures);
                }
            }
        }

        public void Begin(LifecycleGroup group, Member[] plan)
        {
            // Dependents come after their dependencies in the plan: walking it backwards creates each member's dependents' tasks first.
            for (var i = plan.Length - 1; i >= 0; i--)
            {
                var member = plan[i];
                Stops[i] = Task.Run(() => group.StopMemberAsync(this, member), CancellationToken.None);
            }

            All = Task.WhenAll(Stops!);
        }

        public void AddFailure(Exception failure)
        {
            lock (_failures)
            {
                _failures.Add(failure);
            }
        }

        public LifecycleGroupStopTimeoutException TimedOut(string groupName, TimeSpan timeout, Member[] plan)
        {
            var stillStopping = new Dictionary<string, string>(StringComparer.Ordinal);
            var notYetStopped = new List<string>();
            for (var i = plan.Length - 1; i >= 0; i--)
            {
                if (Stops[i]!.IsCompleted)
                {
                    continue;
                }

                var gate = plan[i].Gate;
                if (Volatile.Read(ref Begun[i]) || !HeldBackByADependent(plan[i]))
                {
                    // Its stop is under way, or free to begin (queued, its dependents down): not held back by anyone.
                    stillStopping[gate.Name] = gate.PendingStopStep ?? (gate.State == LifecycleState.Starting ? "start" : gate.State.ToString());
                }
                else
                {
                    notYetStopped.Add(gate.Name);
                }
            }

            return new LifecycleGroupStopTimeoutException(groupName, timeout, stillStopping, notYetStopped);
        }

        /// <summary>Whether some member that depends on <paramref name="member"/> has not stopped (still stopping, or failed to).</summary>
        private bool HeldBackByADependent(Member member)
        {
            foreach (var dependent in member.Dependents)
            {
                var stop = Stops[dependent.Index]!;
                if (stop.Status != TaskStatus.RanToCompletion || !stop.Result)
                {
                    return true;
                }
            }

            return false;
        }
    }
}
