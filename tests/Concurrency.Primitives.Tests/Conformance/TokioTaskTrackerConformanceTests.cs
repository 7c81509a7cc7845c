using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// tokio-util's <c>TaskTracker</c> tests (tokio-rs/tokio tokio-util/tests/task_tracker.rs) and the examples of its
/// documentation (tokio-util/src/task/task_tracker.rs), ported onto the tracker. Both trackers wait until they are closed
/// and empty. <c>TaskTracker::new()</c> is <c>new TaskTracker()</c>; <c>token()</c> is a lease from
/// <see cref="TaskTracker.Register"/> (dropping the token is disposing the lease; <see cref="TaskTracker.Add"/> and
/// <see cref="TaskTracker.RunAsync(Func{CancellationToken, Task}, string?, CancellationToken)"/> count the same way);
/// <c>spawn</c> is <see cref="TaskTracker.Go(Func{CancellationToken, Task}, string?, CancellationToken)"/> and
/// <c>track_future</c> plus a spawn is <c>RunAsync</c>; <c>close()</c> is <see cref="TaskTracker.CloseAsync(TimeSpan, CancellationToken)"/>
/// (begun here without a time bound; its task is also a wait); <c>is_closed()</c> is <see cref="TaskTracker.IsClosing"/>;
/// <c>wait()</c> is <see cref="TaskTracker.Completion"/>, which completes once the tracker is closed and its count is zero;
/// <c>len()</c> is <see cref="TaskTracker.Count"/> and <c>is_empty()</c> a count of zero. The <c>CancellationToken</c>
/// that the graceful-shutdown example cancels next to <c>close()</c> is <see cref="TaskTracker.ClosingToken"/>, which the
/// close cancels itself. Polling a wait future is reading whether the task has completed.
/// <para>
/// Map (upstream test -> test here):
/// open_close -> <see cref="NewTracker_IsOpenAndEmpty_AndACloseLeavesItClosedEmptyAndComplete_AgainAfterASecondClose"/>;
/// token_len -> <see cref="EachRegistration_CountsOne_AndEachReleaseTakesOneOff"/> (a lease, an <c>Add</c> and held
/// <c>RunAsync</c> work); notify_immediately -> <see cref="Wait_OnATrackerClosedEmpty_IsCompleteAtOnce"/>;
/// notify_immediately_on_reopen, notify_on_close_reopen and the reopen calls of open_close ->
/// <see cref="NoReopen_ACloseIsFinal_WaitsTakenBeforeAndAfterItStayComplete_AndANewLeaseIsRefused"/>; notify_on_close ->
/// <see cref="Completion_TakenBeforeTheClose_IsPendingUntilItAndCompletesAtIt"/>; notify_on_last_task ->
/// <see cref="Completion_OfAClosingTrackerHoldingOneLease_CompletesWhenTheLeaseIsDisposed"/>; notify_on_last_task_respawn ->
/// <see cref="ClosingTracker_ReachingZero_IsCompleteForGood_AndTheRespawnIsRefused"/>; no_notify_on_respawn_if_open ->
/// <see cref="Completion_OfAnOpenTracker_StaysPendingThroughAZeroAndANewLease"/>; close_during_exit ->
/// <see cref="Completion_WithFiveLeases_CompletesOnlyOnceClosedAndTheLastIsDisposed_WhereverTheCloseFalls"/>; notify_many ->
/// <see cref="TenWaitersOnCompletion_AreAllReleasedByOneClose"/>; spawn::spawn_then_close and the example "Spawn tasks and
/// wait for them to exit" -> <see cref="GoAndRunAsync_SixteenPieces_ThenClose_TheCloseCompletesAfterAllOfThem"/>;
/// spawn_local::spawn_after_close -> <see cref="TopLevelGo_AfterTheCloseBegan_IsRefused_NothingRuns_AndTheCloseCompletes"/>;
/// spawn_local_on::local_set::close_then_spawn -> <see cref="DuringAClose_ARunningParentStartsEightChildren_AndTheCloseWaitsForThem"/>;
/// spawn_local_on::local_set::spawn_then_drop -> <see cref="Dispose_WithEightPendingPieces_DoesNotAbortThem_AndTheyFinishAfterwards"/>;
/// the <c>track_future</c> examples -> <see cref="RunAsync_CountsTheWorkFromTheCall_AndItsTaskCarriesTheWorksOutcome"/>;
/// <c>TaskTrackerToken::clone</c> -> <see cref="ACopyOfALease_IsTheSameRegistration_AndAnotherIsRegisteredThroughIt"/>; the
/// documented ABA resistance of <c>wait()</c> -> <see cref="WaitAsync_BegunBeforeATransientZero_CompletesThoughALeaseFollowsAtOnce"/>.
/// </para>
/// <para>
/// DIFFERENCES BY DESIGN, each asserted where a test relies on it: there is no <c>reopen()</c>, and a close is final: once
/// a closing tracker's count is zero it is complete, its <c>Completion</c> stays complete and every later registration is
/// refused with <see cref="ClosedException"/> (tokio reopens, and accepts spawns after a close, which make a closed tracker
/// non-empty again). Top-level registrations are refused as soon as the close has begun; work already running registers
/// children through its handle, and the close waits for them (tokio accepts any spawn after a close). <c>close()</c>
/// answers whether this call closed the tracker; <c>CloseAsync</c> answers nothing of the kind, and a second call waits for
/// the same completion. A copy of a lease is the same registration (disposing both releases one), where cloning a token
/// registers another. Disposing the tracker begins its close and cancels <see cref="TaskTracker.ClosingToken"/> (dropping
/// a tokio tracker signals nothing); neither aborts running work. <see cref="TaskTracker.WaitAsync"/> is the WaitGroup
/// wait, which needs no close: the counterpart of <c>wait()</c> is <c>Completion</c>.
/// </para>
/// <para>
/// Not ported: spawn_local::panic_outside_any_runtime and panic_in_multi_thread_runtime (no local runtime: work always runs
/// on the thread pool, so no call is made outside a runtime); spawn_local::spawn_then_close and
/// spawn_local_on::local_runtime::spawn_then_close (spawn::spawn_then_close on a <c>LocalSet</c> with a value that is not
/// <c>Send</c>: no local set and no <c>Send</c> bound here; the tracking is the one spawn::spawn_then_close asserts); the
/// <c>Clone</c> and <c>ptr_eq</c> examples (a tracker is a reference: copies of it are the same object); the
/// <c>track_future</c> rule that a future leaves the tracker when dropped rather than when ready (nothing is dropped in
/// .NET: work leaves when its task completes). On a tracker closed while empty, every registration is refused; that case of
/// spawn_after_close is already asserted by
/// <see cref="RuntimeCountdownEventConformanceTests.EveryRegistration_OnATrackerClosedAtZero_IsRefused_AndNothingRuns"/>,
/// so the port here closes a tracker that still holds a lease. The example "Wait for tasks to exit" (ten tasks sleeping in
/// a loop on paused time, a close at 2 s, 50 ms cleanups) is not ported: on the manual clock each task arms its next sleep
/// in a continuation after the clock has moved, so a step of the clock can come before a task has armed its sleep, and the
/// sleeps counted differ from run to run; what it shows of the tracker (the close waits for every cleanup, and completes
/// with the last) is asserted by spawn_then_close's port and the close_during_exit cases.
/// </para>
/// </summary>
public sealed class TokioTaskTrackerConformanceTests
{
    // Ports tokio-util task_tracker.rs open_close: a new tracker is open and empty (len 0); close() makes it closed and still
    // empty; then reopen/close cycles. Here the close of an empty tracker also completes it; a second close waits for the
    // same, already complete, completion. DIFFERENCE BY DESIGN: no reopen (see NoReopen_...); the tracker stays closing.
    [Fact]
    public async Task NewTracker_IsOpenAndEmpty_AndACloseLeavesItClosedEmptyAndComplete_AgainAfterASecondClose()
    {
        var tracker = new TaskTracker();
        tracker.IsClosing.Should().BeFalse();
        tracker.Count.Should().Be(0);
        tracker.IsCompleted.Should().BeFalse("an open tracker is not complete, even when empty");

        var close = Close(tracker);

        ShouldBeClosedEmptyAndComplete(tracker);
        await close.OrHang();

        var second = Close(tracker);

        second.IsCompletedSuccessfully.Should().BeTrue("the second close finds the same completion, already complete");
        ShouldBeClosedEmptyAndComplete(tracker);
    }

    // Ports tokio-util task_tracker.rs token_len: ten tokens, len() going up by one with each; then each dropped in turn,
    // len() going down by one with each. Rows: a lease (the token), an anonymous Add, and RunAsync work held by a gate
    // (released when its task has completed).
    [Theory]
    [InlineData(Registration.Lease)]
    [InlineData(Registration.Add)]
    [InlineData(Registration.RunAsync)]
    public async Task EachRegistration_CountsOne_AndEachReleaseTakesOneOff(Registration kind)
    {
        var tracker = new TaskTracker();
        var releases = new Func<Task>[10];
        for (var i = 0; i < releases.Length; i++)
        {
            tracker.Count.Should().Be(i);
            releases[i] = Hold(tracker, kind);
        }

        tracker.Count.Should().Be(10);

        for (var i = 0; i < releases.Length; i++)
        {
            await releases[i]();
            tracker.Count.Should().Be(9 - i);
        }
    }

    // Ports tokio-util task_tracker.rs notify_immediately: on a closed, empty tracker, a wait created afterwards is ready at
    // its first poll. Here Completion, a second close and the WaitGroup wait are all complete at once.
    [Fact]
    public async Task Wait_OnATrackerClosedEmpty_IsCompleteAtOnce()
    {
        var tracker = new TaskTracker();
        await Close(tracker).OrHang();

        tracker.Completion.IsCompletedSuccessfully.Should().BeTrue();
        Close(tracker).IsCompletedSuccessfully.Should().BeTrue();
        tracker.WaitAsync().IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports tokio-util task_tracker.rs notify_immediately_on_reopen (close, take a wait, reopen: the wait is ready) and
    // notify_on_close_reopen (take a wait, close, reopen: the wait is ready), with open_close's reopen calls. DIFFERENCE BY
    // DESIGN: there is no reopen; a close that found the tracker empty is final. So the waits taken before and after the
    // close are complete and stay so, the tracker stays closing and complete, and a new lease, the nearest thing to
    // reopening it, is refused.
    [Fact]
    public void NoReopen_ACloseIsFinal_WaitsTakenBeforeAndAfterItStayComplete_AndANewLeaseIsRefused()
    {
        var tracker = new TaskTracker();
        var before = tracker.Completion;
        before.IsCompleted.Should().BeFalse();

        _ = Close(tracker);
        var after = tracker.Completion;

        tracker.Invoking(t => t.Register("reopen")).Should().Throw<ClosedException>().WithMessage("*has completed*");
        before.IsCompletedSuccessfully.Should().BeTrue();
        after.IsCompletedSuccessfully.Should().BeTrue();
        ShouldBeClosedEmptyAndComplete(tracker); // nothing reopens it
    }

    // Ports tokio-util task_tracker.rs notify_on_close: a wait taken on an open, empty tracker is pending, and ready once
    // the tracker is closed.
    [Fact]
    public async Task Completion_TakenBeforeTheClose_IsPendingUntilItAndCompletesAtIt()
    {
        var tracker = new TaskTracker();
        var wait = AwaitCompletionAsync(tracker);
        wait.IsCompleted.Should().BeFalse("open, though empty");

        _ = Close(tracker);

        tracker.Completion.IsCompletedSuccessfully.Should().BeTrue("the close found the tracker empty");
        await wait.OrHang();
    }

    // Ports tokio-util task_tracker.rs notify_on_last_task: close, take a token, take a wait (pending); dropping the token
    // makes it ready. DIFFERENCE BY DESIGN: a top-level registration after the close has begun is refused (see
    // TopLevelGo_AfterTheCloseBegan_...), so the lease is taken before the close.
    [Fact]
    public async Task Completion_OfAClosingTrackerHoldingOneLease_CompletesWhenTheLeaseIsDisposed()
    {
        var tracker = new TaskTracker();
        var token = tracker.Register("token");
        var close = Close(tracker);

        var wait = tracker.Completion;
        wait.IsCompleted.Should().BeFalse("the lease is outstanding");
        tracker.IsClosing.Should().BeTrue();
        token.Dispose();

        wait.IsCompletedSuccessfully.Should().BeTrue("the last registration is gone and the tracker is closed");
        await close.OrHang();
    }

    // Ports tokio-util task_tracker.rs notify_on_last_task_respawn: closed, one token, a pending wait; the token is dropped
    // and a second token taken at once; the wait is ready all the same (the tracker was closed and empty for a moment).
    // DIFFERENCE BY DESIGN: that moment is final here: the tracker completes, and the second registration is refused with
    // ClosedException (Add and Register alike) instead of making it non-empty again; the wait stays complete.
    [Fact]
    public void ClosingTracker_ReachingZero_IsCompleteForGood_AndTheRespawnIsRefused()
    {
        var tracker = new TaskTracker();
        var token = tracker.Register("token");
        _ = Close(tracker);
        var wait = tracker.Completion;
        wait.IsCompleted.Should().BeFalse();

        token.Dispose();

        tracker.Invoking(t => t.Register("token2")).Should().Throw<ClosedException>().WithMessage("*has completed*");
        tracker.Invoking(t => t.Add()).Should().Throw<ClosedException>();
        wait.IsCompletedSuccessfully.Should().BeTrue();
        ShouldBeClosedEmptyAndComplete(tracker);
    }

    // Ports tokio-util task_tracker.rs no_notify_on_respawn_if_open: open, one token, a pending wait; the token is dropped
    // and a second one taken; the wait is still pending (the tracker was never closed). Here the close then completes the
    // wait, but only once the second lease is disposed.
    [Fact]
    public async Task Completion_OfAnOpenTracker_StaysPendingThroughAZeroAndANewLease()
    {
        var tracker = new TaskTracker();
        var token = tracker.Register("token");
        var wait = tracker.Completion;
        wait.IsCompleted.Should().BeFalse();

        token.Dispose();
        var token2 = tracker.Register("token2");

        wait.IsCompleted.Should().BeFalse("the tracker is open: its zero did not complete it");
        tracker.IsCompleted.Should().BeFalse();
        tracker.Count.Should().Be(1);
        var close = Close(tracker);
        wait.IsCompleted.Should().BeFalse("closed, but the second lease is outstanding");
        token2.Dispose();
        await close.OrHang();
        wait.IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports the documented ABA resistance of tokio-util's wait(): "if the TaskTracker becomes both closed and empty for a
    // short amount of time, then it is guaranteed that all wait futures that were created before the short time interval
    // will trigger". A closed, empty tracker is final here, so the guarantee is checked on the WaitGroup wait, whose zero is
    // not final: a WaitAsync begun before the last lease is disposed completes though a new lease is taken at once.
    [Fact]
    public async Task WaitAsync_BegunBeforeATransientZero_CompletesThoughALeaseFollowsAtOnce()
    {
        var tracker = new TaskTracker();
        var token = tracker.Register("token");
        var wait = tracker.WaitAsync();
        wait.IsCompleted.Should().BeFalse();

        token.Dispose();
        var token2 = tracker.Register("token2");

        tracker.Count.Should().Be(1);
        await wait.OrHang();
        tracker.WaitAsync().IsCompleted.Should().BeFalse("a wait begun now waits for the next zero");
        token2.Dispose();
    }

    // Ports tokio-util task_tracker.rs close_during_exit: five tokens and a wait; the tokens are dropped one by one, and
    // the close comes before the drop of token `closeSpot` (or after the last, for 5). The wait is pending at every step
    // until the tracker is both closed and empty, and ready then.
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Completion_WithFiveLeases_CompletesOnlyOnceClosedAndTheLastIsDisposed_WhereverTheCloseFalls(int closeSpot)
    {
        const int iters = 5;
        var tracker = new TaskTracker();
        var tokens = Enumerable.Range(0, iters).Select(i => tracker.Register($"token {i}")).ToArray();
        var wait = tracker.Completion;
        Task? close = null;

        for (var i = 0; i < iters; i++)
        {
            wait.IsCompleted.Should().BeFalse($"before token {i} is disposed");
            if (i == closeSpot)
            {
                close = Close(tracker);
                wait.IsCompleted.Should().BeFalse($"closed with {iters - i} tokens outstanding");
            }

            tokens[i].Dispose();
        }

        if (closeSpot == iters)
        {
            wait.IsCompleted.Should().BeFalse("empty, but not closed");
            close = Close(tracker);
        }

        wait.IsCompletedSuccessfully.Should().BeTrue();
        await close!.OrHang();
    }

    // Ports tokio-util task_tracker.rs notify_many: ten waits on an open, empty tracker are all pending; one close makes
    // every one of them ready.
    [Fact]
    public async Task TenWaitersOnCompletion_AreAllReleasedByOneClose()
    {
        var tracker = new TaskTracker();
        var waits = Enumerable.Range(0, 10).Select(_ => AwaitCompletionAsync(tracker)).ToArray();
        waits.Should().OnlyContain(w => !w.IsCompleted);

        _ = Close(tracker);

        await Task.WhenAll(waits).OrHang();
    }

    // Ports tokio-util task_tracker.rs spawn::spawn_then_close (8 spawn and 8 spawn_on, then close and wait: empty and
    // closed) and the example "Spawn tasks and wait for them to exit" (the line after the wait prints after every task).
    // spawn is Go; spawn_on (a given runtime) is the tracker's other way to start work, RunAsync. The work is held by one
    // gate, so the close is seen waiting for it, and the close completes only after all sixteen pieces ran.
    [Fact]
    public async Task GoAndRunAsync_SixteenPieces_ThenClose_TheCloseCompletesAfterAllOfThem()
    {
        const int n = 8;
        var tracker = new TaskTracker();
        var gate = Bounded.NewGate();
        var ran = 0;
        async Task Work(CancellationToken _)
        {
            await gate.Task;
            Interlocked.Increment(ref ran);
        }

        for (var i = 0; i < n; i++)
        {
            await tracker.Go(Work, $"spawn {i}");
        }

        var runs = Enumerable.Range(0, n).Select(i => tracker.RunAsync(Work, $"spawn_on {i}")).ToArray();

        var close = Close(tracker);
        tracker.Completion.IsCompleted.Should().BeFalse("the work is held by its gate");
        gate.SetResult();
        await close.OrHang();

        Volatile.Read(ref ran).Should().Be(2 * n, "the close completes after every piece of work");
        runs.Should().OnlyContain(r => r.IsCompletedSuccessfully);
        ShouldBeClosedEmptyAndComplete(tracker);
    }

    // Ports tokio-util task_tracker.rs spawn_local::spawn_after_close: close, then spawn 8 tasks; the wait returns, closed
    // and empty. DIFFERENCE BY DESIGN: top-level work is refused once the close has begun. The close here still waits on a
    // lease (closed while empty, the tracker would be complete: see the class remarks), each of the 8 Go calls throws
    // ClosedException and its work never runs, and the close completes when the lease goes, with the count at zero.
    [Fact]
    public async Task TopLevelGo_AfterTheCloseBegan_IsRefused_NothingRuns_AndTheCloseCompletes()
    {
        const int n = 8;
        var tracker = new TaskTracker();
        var lease = tracker.Register("held");
        var close = Close(tracker);
        var ran = 0;
        Task Work(CancellationToken _)
        {
            Interlocked.Increment(ref ran);
            return Task.CompletedTask;
        }

        for (var i = 0; i < n; i++)
        {
            FluentActions.Invoking(() => { _ = tracker.Go(Work, $"late {i}"); }).Should().Throw<ClosedException>().WithMessage("*is closing*");
        }

        tracker.Count.Should().Be(1, "only the lease is outstanding");
        lease.Dispose();
        await close.OrHang();

        Volatile.Read(ref ran).Should().Be(0);
        ShouldBeClosedEmptyAndComplete(tracker);
    }

    // Ports tokio-util task_tracker.rs spawn_local_on::local_set::close_then_spawn: close first, then spawn 8 tasks, then
    // wait: the wait returns after them, closed and empty. DIFFERENCE BY DESIGN: after the close has begun, only work
    // already running may start more, through its handle; so a running parent holds the tracker through the close and
    // starts the 8 there (a top-level Go at that moment is refused), and the close waits until all 8 have finished.
    [Fact]
    public async Task DuringAClose_ARunningParentStartsEightChildren_AndTheCloseWaitsForThem()
    {
        const int n = 8;
        var tracker = new TaskTracker();
        var closeBegun = Bounded.NewGate();
        var spawned = Bounded.NewGate();
        var childGate = Bounded.NewGate();
        var ran = 0;
        await tracker.Go(
            async (parent, _) =>
            {
                await closeBegun.Task;
                for (var i = 0; i < n; i++)
                {
                    parent.Go(
                        async _ =>
                        {
                            await childGate.Task;
                            Interlocked.Increment(ref ran);
                        },
                        $"child {i}");
                }

                spawned.SetResult();
            },
            "parent");

        var close = Close(tracker);
        FluentActions.Invoking(() => { _ = tracker.Go(_ => Task.CompletedTask, "top-level"); }).Should().Throw<ClosedException>();
        closeBegun.SetResult();
        await spawned.Task.OrHang();

        tracker.Count.Should().BeGreaterOrEqualTo(n, "the children are registered and held by their gate");
        tracker.Completion.IsCompleted.Should().BeFalse();
        childGate.SetResult();
        await close.OrHang();

        Volatile.Read(ref ran).Should().Be(n);
        ShouldBeClosedEmptyAndComplete(tracker);
    }

    // Ports tokio-util task_tracker.rs spawn_local_on::local_set::spawn_then_drop: 8 tasks pending forever, then the tracker
    // is dropped; the tasks are not aborted (none of them drops its sender). Here Dispose is the drop: the 8 pieces of work,
    // which ignore the token, are still outstanding and unfinished afterwards, and finish when their gate opens, which
    // completes the tracker. DIFFERENCE BY DESIGN: Dispose begins the close and cancels ClosingToken.
    [Fact]
    public async Task Dispose_WithEightPendingPieces_DoesNotAbortThem_AndTheyFinishAfterwards()
    {
        const int n = 8;
        var tracker = new TaskTracker();
        var forever = Bounded.NewGate();
        var allStarted = Bounded.NewGate();
        var started = 0;
        var finished = 0;
        for (var i = 0; i < n; i++)
        {
            await tracker.Go(
                async _ =>
                {
                    if (Interlocked.Increment(ref started) == n)
                    {
                        allStarted.SetResult();
                    }

                    await forever.Task;
                    Interlocked.Increment(ref finished);
                },
                $"pending {i}");
        }

        await allStarted.Task.OrHang();

#pragma warning disable VSTHRD103 // the synchronous Dispose is the drop under test: it returns at once, the work still running
        tracker.Dispose();
#pragma warning restore VSTHRD103

        tracker.ClosingToken.IsCancellationRequested.Should().BeTrue();
        tracker.IsClosing.Should().BeTrue();
        tracker.Count.Should().Be(n, "disposing aborts nothing");
        Volatile.Read(ref finished).Should().Be(0);
        tracker.Completion.IsCompleted.Should().BeFalse();
        forever.SetResult();
        await tracker.Completion.OrHang();
        Volatile.Read(ref finished).Should().Be(n);
    }

    // Ports the track_future examples (tokio::spawn(tracker.track_future(f)), and the same on a JoinSet): the future counts
    // as a task from the track_future call until it is gone, and its handle yields the future's own output. RunAsync is the
    // tracked spawn: the work counts from the call, before it has run; the returned task completes as the work did (a failure
    // goes to that task only, so the close does not throw it), and by then the work no longer counts.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RunAsync_CountsTheWorkFromTheCall_AndItsTaskCarriesTheWorksOutcome(bool fails)
    {
        var tracker = new TaskTracker();
        var gate = Bounded.NewGate();
        var failure = new InvalidOperationException("my_async_fn failed");
        async Task MyAsyncFn(CancellationToken _)
        {
            await gate.Task;
            if (fails)
            {
                throw failure;
            }
        }

        var run = tracker.RunAsync(MyAsyncFn, "my_async_fn");

        tracker.Count.Should().Be(1, "counted from the call");
        run.IsCompleted.Should().BeFalse();
        gate.SetResult();
        if (fails)
        {
            (await run.Invoking(r => r.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(failure);
        }
        else
        {
            await run.OrHang();
        }

        tracker.Count.Should().Be(0);
        await Close(tracker).OrHang();
    }

    // Ports TaskTrackerToken::clone's documentation ("equivalent to token.task_tracker().token()": a second task).
    // DIFFERENCE BY DESIGN: a lease is a value; a copy is the same registration, so disposing the original and the copy
    // releases one registration, once (the second dispose is a no-op). A second registration is taken through the lease,
    // as its child, and counts until it is disposed.
    [Fact]
    public async Task ACopyOfALease_IsTheSameRegistration_AndAnotherIsRegisteredThroughIt()
    {
        var tracker = new TaskTracker();
        var token = tracker.Register("token");
        var copy = token;
        tracker.Count.Should().Be(1, "the copy registers nothing");
        var second = token.Register("second");
        tracker.Count.Should().Be(2);

        copy.Dispose();
        token.IsActive.Should().BeFalse("the copy and the original are one registration");
        token.Dispose();
        tracker.Count.Should().Be(1, "the second dispose was a no-op");

        var close = Close(tracker);
        tracker.Completion.IsCompleted.Should().BeFalse("the second registration is outstanding");
        second.Dispose();
        await close.OrHang();
    }

    /// <summary>How a row registers one count: a lease, an anonymous Add, or work started by RunAsync and held by a gate.</summary>
    public enum Registration
    {
        Lease,
        Add,
        RunAsync,
    }

    /// <summary>tokio's <c>close()</c>: begins the close; the task, which also waits, has no time bound.</summary>
    private static Task Close(TaskTracker tracker) => tracker.CloseAsync(Timeout.InfiniteTimeSpan);

    /// <summary>tokio's <c>assert!(tracker.is_closed()); assert!(tracker.is_empty());</c>, and so complete here.</summary>
    private static void ShouldBeClosedEmptyAndComplete(TaskTracker tracker)
    {
        tracker.IsClosing.Should().BeTrue();
        tracker.Count.Should().Be(0);
        tracker.IsCompleted.Should().BeTrue("closed and empty");
    }

    /// <summary>A wait future of tokio's <c>wait()</c>: an awaiter of the tracker's completion.</summary>
    private static async Task AwaitCompletionAsync(TaskTracker tracker) => await tracker.Completion;

    /// <summary>Registers one count of <paramref name="kind"/>; returns what releases it (once the release has been counted).</summary>
    private static Func<Task> Hold(TaskTracker tracker, Registration kind)
    {
        if (kind == Registration.Lease)
        {
            var lease = tracker.Register("token");
            return () =>
            {
                lease.Dispose();
                return Task.CompletedTask;
            };
        }

        if (kind == Registration.Add)
        {
            tracker.Add();
            return () =>
            {
                tracker.Done();
                return Task.CompletedTask;
            };
        }

        var gate = Bounded.NewGate();
        var run = tracker.RunAsync(_ => gate.Task, "token");
        return async () =>
        {
            gate.SetResult();
            await run.OrHang();
        };
    }

    /// <summary>The example's <c>background_task(num)</c>: ten sleeps of 100 * num ms, each counted when it has ended.</summary>
    private static async Task BackgroundTaskAsync(int num, TimeProvider clock, int[] iterations, CancellationToken cancellationToken)
    {
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100 * num), clock, cancellationToken);
            iterations[num]++;
        }
    }
}
