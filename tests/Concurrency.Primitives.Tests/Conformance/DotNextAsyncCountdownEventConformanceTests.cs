using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// DotNext's <c>AsyncCountdownEvent</c> and <c>AsyncBarrier</c> tests (dotnet/dotNext
/// src/DotNext.Tests/Threading/AsyncCountdownEventTests.cs and AsyncBarrierTests.cs), ported onto the tracker's anonymous
/// count. For the event: <c>new AsyncCountdownEvent(n)</c> is a new tracker plus <c>Add(n)</c>, <c>AddCount()</c> is
/// <see cref="TaskTracker.Add"/>, <c>Signal()</c> is <see cref="TaskTracker.Done"/> (<c>Signal(n)</c> is n calls; its
/// "was the event set" answer is read from the wait), <c>CurrentCount</c> is <see cref="TaskTracker.Count"/>,
/// <c>IsSet</c> is a count of zero, <c>WaitAsync(token)</c> is <see cref="TaskTracker.WaitAsync"/>, and
/// <c>WaitAsync(timeout, token)</c> is <see cref="TaskTracker.WaitAsync"/> with a token that the timeout cancels (a
/// <see cref="CancellationTokenSource"/> on a fake clock): a timed-out wait throws
/// <see cref="OperationCanceledException"/> instead of returning <see langword="false"/>. For the barrier: a participant
/// is one <c>Add</c>, <c>SignalAndWaitAsync()</c> is <c>Done()</c> then <c>WaitAsync()</c>, <c>RemoveParticipant()</c>
/// is <c>Done()</c> (or a lease's dispose), <c>ParticipantsRemaining</c> is <see cref="TaskTracker.Count"/>.
/// <para>
/// DIFFERENCES BY DESIGN, each asserted where a test relies on it: the tracker has no <c>Reset</c> and no initial
/// count (it is reused by adding again after a zero, as a WaitGroup is); nothing interrupts a pending wait but its own
/// token (DotNext's <c>Reset</c> faults waiters with <c>PendingTaskInterruptedException</c>); an <c>Add</c> at zero
/// is reuse, not an error (DotNext's <c>AddCount</c> on a set event throws, <c>TryAddCount</c> returns false): only a
/// closed, completed tracker refuses it; and a barrier starts its next phase by itself, the tracker stays at zero.
/// </para>
/// <para>
/// Not ported: the <c>takeAllAtOnce</c> half of <c>CheckStateTransitions</c> as written (there is no <c>Done(n)</c>;
/// its rows release the count from two threads at once instead); <c>AsyncBarrierTests.PhaseCompletion</c>'s
/// <c>CurrentPhaseNumber</c> (no phase number; the phases themselves are ported); <c>SignalAndWaitAsync(timeout)</c>
/// with <c>InfiniteTimeSpan</c> (a wait without a token is the same call); the Raft
/// <c>ReplicationBarrierTests</c> (a cluster replication barrier, not a countdown); and
/// <c>AsyncSharedLockTests</c>, which use the event only as scaffolding for the lock's tests.
/// </para>
/// </summary>
public sealed class DotNextAsyncCountdownEventConformanceTests
{
    // Ports DotNext AsyncCountdownEventTests.Counting (the untimed half): a count of 4; one Signal leaves 3 and the event
    // unset; Signal(3), here three Done calls, sets it, and only the last of them completes the wait.
    [Fact]
    public async Task Done_CountingDownFromFour_CompletesThePendingWaitOnlyAtTheLastOne()
    {
        var countdown = new TaskTracker();
        countdown.Add(4);
        var wait = countdown.WaitAsync();
        wait.IsCompleted.Should().BeFalse();

        countdown.Done();
        countdown.Count.Should().Be(3);
        wait.IsCompleted.Should().BeFalse();

        countdown.Done();
        countdown.Done();
        countdown.Count.Should().Be(1);
        wait.IsCompleted.Should().BeFalse("one signal is still missing");

        countdown.Done();
        countdown.Count.Should().Be(0);
        wait.IsCompleted.Should().BeTrue("the last Done set the event");
        await wait.OrHang();
        countdown.WaitAsync().IsCompletedSuccessfully.Should().BeTrue("the event stays set");
    }

    // Ports DotNext AsyncCountdownEventTests.Counting (the timed half): WaitAsync(100 ms) on an unset event answers false
    // and changes nothing; on a set event WaitAsync(40 ms) answers true at once. DIFFERENCE BY DESIGN: the tracker's wait
    // takes a token, not a timeout; a token the timeout cancels (on a fake clock here) ends the wait with
    // OperationCanceledException, exactly at the timeout and not before, and leaves the count alone.
    [Fact]
    public async Task WaitAsync_WithATimeoutToken_IsAbandonedExactlyAtTheTimeout_AndLeavesTheCount_ButASetEventAnswersAtOnce()
    {
        var clock = new ManualTimeProvider();
        var countdown = new TaskTracker();
        countdown.Add(4);
        using var hundredMs = new CancellationTokenSource(TimeSpan.FromMilliseconds(100), clock);
        var timed = countdown.WaitAsync(hundredMs.Token);

        clock.Advance(TimeSpan.FromMilliseconds(99));
        timed.IsCompleted.Should().BeFalse("the timeout has not passed yet");
        clock.Advance(TimeSpan.FromMilliseconds(1));

        await timed.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        countdown.Count.Should().Be(4, "an abandoned wait releases nothing");
        for (var i = 0; i != 4; i++)
        {
            countdown.Done();
        }

        using var fortyMs = new CancellationTokenSource(TimeSpan.FromMilliseconds(40), clock);
        countdown.WaitAsync(fortyMs.Token).IsCompletedSuccessfully.Should().BeTrue("the event is set: no time needs to pass");
    }

    // Ports DotNext AsyncCountdownEventTests.CheckStateTransitions: an initial count, `increms` AddCount calls (the count
    // checked after each), then signals down to zero: the event is unset until the last, then set with a count of 0.
    // takeAllAtOnce (Signal(n)) has no analogue; its rows release the count from two threads at once, and no Done may
    // throw. Then Reset() restores the initial count. DIFFERENCE BY DESIGN: no Reset; the tracker is reused by adding
    // the initial count again, which makes a new wait pending (a count of 0 adds nothing and stays set).
    [Theory]
    [MemberData(nameof(CountdownRows.StateTransitions), MemberType = typeof(CountdownRows))]
    public async Task AddThenDone_CountsUpAndDownToZero_AndTheTrackerIsReusedByAddingAgain(int initCount, int increms, bool takeAllAtOnce)
    {
        var countdown = new TaskTracker();
        AddInitialCount(countdown, initCount);
        countdown.Count.Should().Be(initCount);
        for (var i = 1; i < increms + 1; i++)
        {
            countdown.Add();
            countdown.Count.Should().Be(initCount + i);
        }

        var total = initCount + increms;
        var wait = countdown.WaitAsync();
        if (takeAllAtOnce)
        {
            await ReleaseFromTwoThreadsAsync(countdown, total);
        }
        else
        {
            var setEarly = -1;
            for (var i = 0; i < total; i++)
            {
                if (setEarly < 0 && wait.IsCompleted)
                {
                    setEarly = i;
                }

                countdown.Done();
            }

            setEarly.Should().Be(-1, "the event must not be set before the last signal");
        }

        wait.IsCompletedSuccessfully.Should().BeTrue();
        countdown.Count.Should().Be(0);

        // "Reset": add the initial count again.
        AddInitialCount(countdown, initCount);

        countdown.Count.Should().Be(initCount);
        countdown.WaitAsync().IsCompleted.Should().Be(initCount == 0);
    }

    // Ports DotNext AsyncCountdownEventTests.AbortSuspendedCallers: a wait pending on a count of 4; Reset() resumes it
    // with PendingTaskInterruptedException. DIFFERENCE BY DESIGN: nothing on the tracker interrupts a wait; a pending
    // wait ends early only through its own token, with OperationCanceledException, and that touches neither the count
    // nor another caller's wait.
    [Fact]
    public async Task APendingWait_IsEndedEarlyOnlyByItsOwnToken_LeavingTheCountAndOtherWaitsAlone()
    {
        var countdown = new TaskTracker();
        countdown.Add(4);
        using var cancel = new CancellationTokenSource();
        var suspended = countdown.WaitAsync(cancel.Token);
        var other = countdown.WaitAsync();

        await cancel.CancelAsync();

        await suspended.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        other.IsCompleted.Should().BeFalse("another caller's wait was not interrupted");
        countdown.Count.Should().Be(4);
        for (var i = 0; i != 4; i++)
        {
            countdown.Done();
        }

        await other.OrHang();
    }

    // Ports DotNext AsyncCountdownEventTests.AbortSuspendedCallersAndSetCounter: a wait pending on a count of 4;
    // Reset(4) sets the counter and resumes the wait with PendingTaskInterruptedException. DIFFERENCE BY DESIGN: the
    // counter is set by adding to it, which interrupts nobody: the wait neither faults nor completes, and lasts until the
    // new count has been released in full.
    [Fact]
    public async Task Add_WhileAWaitIsPending_DoesNotInterruptIt_AndTheWaitLastsUntilTheWholeNewCountIsDone()
    {
        const int initialCount = 4;
        var countdown = new TaskTracker();
        countdown.Add(initialCount);
        var suspended = countdown.WaitAsync();

        countdown.Add(initialCount);

        suspended.IsCompleted.Should().BeFalse("neither interrupted nor completed");
        countdown.Count.Should().Be(2 * initialCount);
        for (var i = 0; i != (2 * initialCount) - 1; i++)
        {
            countdown.Done();
        }

        suspended.IsCompleted.Should().BeFalse("one Done is still missing");
        countdown.Done();
        await suspended.OrHang();
    }

    // Ports the documented AsyncCountdownEvent.AddCount / TryAddCount contract (no upstream test of its own; it is the
    // state CheckStateTransitions ends in): on a set event AddCount throws InvalidOperationException and TryAddCount
    // returns false. DIFFERENCE BY DESIGN: at a zero that is not final the tracker accepts Add (reuse); it is refused
    // only once the tracker closed and reached zero, with ClosedException (an InvalidOperationException), or false from
    // TryGo, and the count stays 0. While a close is still waiting, Add is accepted (the WaitGroup rule).
    [Fact]
    public async Task Add_AtAZeroBeforeClose_IsReuse_ButAfterTheCloseCompletedItIsRefused_AndTheCountStaysZero()
    {
        var countdown = new TaskTracker();
        countdown.Add(1);
        countdown.Done();
        countdown.Add();
        countdown.Count.Should().Be(1, "a zero before close is not final");

        var close = countdown.CloseAsync();
        close.IsCompleted.Should().BeFalse();
        countdown.Add();
        countdown.Count.Should().Be(2, "Add is accepted while the close still waits");
        countdown.Done();
        close.IsCompleted.Should().BeFalse();
        countdown.Done();
        await close.OrHang();

        countdown.Invoking(c => c.Add()).Should().Throw<ClosedException>().Which.Should().BeAssignableTo<InvalidOperationException>();
        countdown.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        countdown.Count.Should().Be(0);
        countdown.IsCompleted.Should().BeTrue();
    }

    // Ports DotNext AsyncBarrierTests.RemovingWaitingParticipants: 4 participants; one signals and waits (3 remain);
    // RemoveParticipants(2) leaves 1; RemoveParticipants(20) throws and leaves 1; RemoveParticipant() releases the wait.
    // The last participant is a lease, so the over-removal is a Done with no Add left to release: it throws
    // InvalidOperationException (not ArgumentOutOfRangeException) and, as upstream, changes nothing.
    [Fact]
    public async Task RemovingParticipants_WhileOneWaits_ReleasesItAtZero_AndAnOverRemovalIsRefusedWithoutEffect()
    {
        var barrier = new TaskTracker();
        barrier.Add(3);
        var last = barrier.Register("last participant");
        var task = SignalAndWaitAsync(barrier);
        barrier.Count.Should().Be(3);

        barrier.Done();
        barrier.Done();
        barrier.Count.Should().Be(1);

        barrier.Invoking(b => b.Done()).Should().Throw<InvalidOperationException>();
        barrier.Count.Should().Be(1);
        last.IsActive.Should().BeTrue("a refused Done cannot eat the lease's count");
        task.IsCompleted.Should().BeFalse();

        last.Dispose();
        barrier.Count.Should().Be(0);
        await task.OrHang();
    }

    // Ports DotNext AsyncBarrierTests.AddRemoveParticipant: 100 rounds of 4 threads, each adding and removing a participant
    // 400 times, on a barrier of 0; the participant count ends at 0. Here every Done follows its own thread's Add, so none
    // may throw; and the test holds one Add of its own through the round, so a lost or doubled update would show as a
    // wait that completes before the test's own Done (or as a count other than 1 once the threads are done).
    [Fact]
    public async Task ConcurrentAddDonePairs_FromFourThreads_NeverThrow_NorReachZeroEarly_AndLeaveTheCountAtZero()
    {
        for (var round = 0; round < 100; round++)
        {
            var barrier = new TaskTracker();
            barrier.Add(1);
            var wait = barrier.WaitAsync();
            var start = Bounded.NewGate();
            var threads = new Task[4];
            for (var k = 0; k < threads.Length; k++)
            {
                threads[k] = Task.Run(async () =>
                {
                    await start.Task;
                    for (var i = 0; i < 400; i++)
                    {
                        barrier.Add();
                        barrier.Done();
                    }
                });
            }

            start.SetResult();
            await Task.WhenAll(threads).OrHang();

            barrier.Count.Should().Be(1, $"round {round}: only the test's own Add is left");
            wait.IsCompleted.Should().BeFalse($"round {round}: the count never reached zero");
            barrier.Done();
            await wait.OrHang();
            barrier.Count.Should().Be(0, $"round {round}");
        }
    }

    // Ports DotNext AsyncBarrierTests.PhaseCompletion: a barrier of 3; three SignalAndWaitAsync calls all complete, twice.
    // Here the phases are checked one call at a time: the first two participants wait until the third signals. The
    // barrier starts its second phase by itself; the tracker (DIFFERENCE BY DESIGN) is re-armed by adding 3 again, and
    // the second phase's waits are pending again until its third participant signals.
    [Fact]
    public async Task ThreeParticipants_SignallingAndWaiting_AreReleasedTogetherByTheLast_InEachOfTwoPhases()
    {
        var barrier = new TaskTracker();
        for (var phase = 0; phase != 2; phase++)
        {
            barrier.Add(3);
            var first = SignalAndWaitAsync(barrier);
            var second = SignalAndWaitAsync(barrier);
            first.IsCompleted.Should().BeFalse($"phase {phase}: two of three have signalled");
            second.IsCompleted.Should().BeFalse($"phase {phase}");

            var third = SignalAndWaitAsync(barrier);

            await Task.WhenAll(first, second, third).OrHang();
            barrier.Count.Should().Be(0);
        }
    }

    // Ports DotNext AsyncBarrierTests.RegressionIssue73: a barrier of 2; two tasks on the pool each SignalAndWaitAsync,
    // then return 24 and 42: both are released and each returns its own value.
    [Fact]
    public async Task TwoParticipantsOnThePool_AreBothReleased_AndEachReturnsItsOwnResult()
    {
        var barrier = new TaskTracker();
        barrier.Add(2);

        var results = await Task.WhenAll(
            Task.Run(async () =>
            {
                await SignalAndWaitAsync(barrier);
                return 24;
            }),
            Task.Run(async () =>
            {
                await SignalAndWaitAsync(barrier);
                return 42;
            })).OrHang();

        results.Should().Equal(24, 42);
    }

    // Ports DotNext AsyncBarrierTests.RegressionIssue205: a barrier of 1 plus AddParticipant(); two tasks SignalAndWaitAsync
    // and then see ParticipantsRemaining == 2 (the barrier has started its next phase). DIFFERENCE BY DESIGN: the tracker
    // does not re-arm, so each released participant sees a count of 0, and a later wait completes at once.
    [Fact]
    public async Task TwoParticipants_OneAddedLater_AreReleasedTogether_AndSeeTheCountStayAtZero()
    {
        var barrier = new TaskTracker();
        barrier.Add(1);
        barrier.Add();

        var seen = await Task.WhenAll(
            Task.Run(async () =>
            {
                await SignalAndWaitAsync(barrier);
                return barrier.Count;
            }),
            Task.Run(async () =>
            {
                await SignalAndWaitAsync(barrier);
                return barrier.Count;
            })).OrHang();

        seen.Should().Equal(0, 0);
        barrier.WaitAsync().IsCompletedSuccessfully.Should().BeTrue();
    }

    /// <summary>The event's initial count, which may be 0 (the tracker's Add takes at least 1).</summary>
    private static void AddInitialCount(TaskTracker countdown, int initCount)
    {
        if (initCount > 0)
        {
            countdown.Add(initCount);
        }
    }

    /// <summary>The barrier's <c>SignalAndWaitAsync</c>: this participant's Done, then a wait for everybody's.</summary>
    private static Task SignalAndWaitAsync(TaskTracker barrier)
    {
        barrier.Done();
        return barrier.WaitAsync();
    }

    /// <summary>Releases <paramref name="total"/> Add registrations with Done calls from two threads started together.</summary>
    private static async Task ReleaseFromTwoThreadsAsync(TaskTracker countdown, int total)
    {
        var start = Bounded.NewGate();
        var firstHalf = total / 2;
        var one = Task.Run(() => DoneAfterAsync(start.Task, countdown, firstHalf));
        var two = Task.Run(() => DoneAfterAsync(start.Task, countdown, total - firstHalf));
        start.SetResult();
        await Task.WhenAll(one, two).OrHang();
    }

    private static async Task DoneAfterAsync(Task start, TaskTracker countdown, int times)
    {
        await start;
        for (var i = 0; i < times; i++)
        {
            countdown.Done();
        }
    }
}
