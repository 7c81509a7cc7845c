using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// dotnet/runtime's <c>System.Threading.CountdownEvent</c> tests (src/libraries/System.Threading/tests/CountdownEventTests.cs
/// and CountdownEventCancellationTests.cs), with the wait and cancellation tests of <c>ManualResetEventSlim</c> that apply
/// (ManualResetEventSlimTests.cs and ManualResetEventSlimCancellationTests.cs), ported onto the tracker. A countdown event
/// is a one-shot latch: once its count reaches zero it is set, and <c>AddCount</c> is refused. The tracker's latch is a
/// closing tracker: the zero it reaches while closing is final. So <c>new CountdownEvent(n)</c> is a tracker holding
/// <c>Add(n)</c> whose close has begun, <c>AddCount</c> is <see cref="TaskTracker.Add"/> (<c>TryAddCount</c>:
/// <see cref="TaskTracker.TryGo(Func{CancellationToken, Task}, string?)"/>), <c>Signal()</c> is <see cref="TaskTracker.Done"/>,
/// <c>CurrentCount</c> is <see cref="TaskTracker.Count"/>, <c>IsSet</c> is <see cref="TaskTracker.IsCompleted"/>,
/// <c>Wait(timeout, token)</c> is <see cref="TaskTracker.CloseAsync(TimeSpan, CancellationToken)"/> (a timeout throws
/// <see cref="TaskTrackerTimeoutException"/>, naming what is outstanding, instead of returning <see langword="false"/>) or,
/// without closing, <see cref="TaskTracker.WaitAsync"/>, and <c>Dispose</c> is <see cref="TaskTracker.Dispose"/>. For the
/// manual-reset event: <c>Set()</c> is the <c>Done</c> that releases the one registration, <c>Reset()</c> is <c>Add()</c>,
/// <c>IsSet</c> is a <c>WaitAsync</c> that is already complete.
/// <para>
/// Map (upstream test -> test here):
/// RunCountdownEventTest0_StateTrans -> <see cref="ClosingTracker_CountedUpAndDown_CompletesOnlyAtTheLastDone_AndIsNotReset"/>;
/// RunCountdownEventTest1_SimpleTimeout and ManualResetEventSlimTests.RunManualResetEventSlimTest2_TimeoutWait (the same
/// Wait(0) / Wait(100) on an event never set) -> <see cref="CloseAsync_OnACountOf999_TimesOutAtItsTimeout_NamingWhatIsOutstanding_AndAgainForASecondClose"/>;
/// RunCountdownEventTest2_Exceptions, in three parts: <c>new CountdownEvent(0).AddCount(1)</c> ->
/// <see cref="EveryRegistration_OnATrackerClosedAtZero_IsRefused_AndNothingRuns"/>; the <c>Wait</c> timeout range checks
/// (and RunManualResetEventSlimTest6_Exceptions, the same values) ->
/// <see cref="CloseAsync_WithATimeoutOutOfRange_Throws_AndDoesNotBeginClosing"/>; <c>Dispose()</c> then <c>Wait()</c> (and
/// RunManualResetEventSlimTest5_Dispose / _Dispose_Negative) ->
/// <see cref="Dispose_WithACountOfTwo_ReturnsAtOnce_RefusesNewWorkAsDisposed_AndAWaitIsNotAnError"/>;
/// CountdownEventCancellationTests.CancelBeforeWait and ManualResetEventCancellationTests.CancelBeforeWait ->
/// <see cref="WaitAndClose_WithAnAlreadyCancelledToken_ThrowOperationCanceledWithThatToken"/>;
/// CountdownEventCancellationTests.CancelAfterWait and ManualResetEventCancellationTests.CancelAfterWait ->
/// <see cref="PendingWaitAndClose_CancelledFromAnotherThread_ThrowWithThatToken_AndTheTrackerStaysClosing"/>;
/// RunManualResetEventSlimTest0_StateTrans (and RunManualResetEventSlimTest4_CombinedStateTests, a single Set) ->
/// <see cref="WaitAsync_AcrossFiftyDoneAddCycles_IsCompleteAtEachZero_AndPendingWhileTheCountIsHeld"/>.
/// </para>
/// <para>
/// Already covered by the other countdown suites: RunCountdownEventTest0_StateTrans is the test DotNext's
/// <c>CheckStateTransitions</c> copies, ported on the anonymous count without a close (reuse by adding again) in
/// <see cref="DotNextAsyncCountdownEventConformanceTests"/>; it is ported again here because the runtime's event is a
/// latch, so here it runs on a closing tracker. From RunCountdownEventTest2_Exceptions,
/// <see cref="NitoAsyncCountdownEventConformanceTests"/> already asserts <c>new CountdownEvent(-1)</c> and
/// <c>AddCount(0)</c> (an <c>Add</c> below 1 throws <see cref="ArgumentOutOfRangeException"/>), <c>Signal()</c> at zero
/// and <c>Signal(2)</c> on a count of 1 (a <c>Done</c> too many throws <see cref="InvalidOperationException"/> and leaves
/// the count), and <c>AddCount(20)</c> near <c>int.MaxValue</c> (an <c>Add</c> past the documented maximum throws
/// <see cref="InvalidOperationException"/>); the assertions are the same, so they are not repeated. A pending
/// <c>WaitAsync</c> ended by its own token (part of CancelAfterWait) is in the DotNext suite; here the token it carries
/// and the close are asserted.
/// </para>
/// <para>
/// DIFFERENCE BY DESIGN: the tracker has no <c>Reset</c> and no <c>InitialCount</c>: a tracker whose close reached zero is
/// terminal, and every registration (<c>Add</c> too) is refused with <see cref="ClosedException"/> (or
/// <see cref="ObjectDisposedException"/> after dispose); a new tracker is the reset. An <c>Add</c> at a zero reached
/// before any close is reuse, not an error (the DotNext suite asserts it); the refusal comes with the close. A close
/// whose token is already cancelled still begins closing (only the wait is abandoned), where <c>Wait(token)</c> changes
/// nothing. After <c>Dispose</c>, waiting is not an error: <c>WaitAsync</c> and <c>CloseAsync</c> wait for (or report)
/// the same completion instead of throwing <see cref="ObjectDisposedException"/>, and <c>Dispose</c> itself neither
/// blocks nor throws while work is outstanding.
/// </para>
/// <para>
/// Not ported: <c>Signal(0)</c> and the <c>takeAllAtOnce</c> rows' <c>Signal(n)</c> as one call (there is no
/// <c>Done(n)</c>; those rows release the count from two threads at once instead); <c>Reset(-1)</c> (no <c>Reset</c>);
/// <c>WaitHandle</c> and <c>WaitHandle.WaitOne</c> (no wait handle; the second wait of SimpleTimeout is a second close);
/// RunManualResetEventSlimTest1_SimpleWait (three events handing a thread over, with no assertion of its own);
/// RunManualResetEventSlimTest3_ConstructorTests and the spin-count halves of TimeoutWait and _Exceptions (no spin count).
/// </para>
/// </summary>
public sealed class RuntimeCountdownEventConformanceTests
{
    // Ports CountdownEventTests.RunCountdownEventTest0_StateTrans: CountdownEvent(initCount), `increms` AddCount calls (the
    // count checked after each), then Signal down to zero, IsSet false before each signal; then IsSet, a count of 0, and
    // Reset() back to the initial count. Here the close begins at once (the event's zero is final), and the Adds are
    // accepted while it waits; takeAllAtOnce releases the count from two threads at once, and the tracker completes
    // exactly once. DIFFERENCE BY DESIGN: the "Reset" Add is refused with ClosedException and the count stays 0.
    [Theory]
    [MemberData(nameof(CountdownRows.StateTransitions), MemberType = typeof(CountdownRows))]
    public async Task ClosingTracker_CountedUpAndDown_CompletesOnlyAtTheLastDone_AndIsNotReset(int initCount, int increms, bool takeAllAtOnce)
    {
        var ev = new TaskTracker();
        if (initCount > 0)
        {
            ev.Add(initCount);
        }

        var close = ev.CloseAsync(Timeout.InfiniteTimeSpan);
        ev.Count.Should().Be(initCount);
        ev.IsCompleted.Should().Be(initCount == 0, "a countdown of zero is set from the start");

        for (var i = 1; i < increms + 1; i++)
        {
            ev.Add();
            ev.Count.Should().Be(initCount + i);
        }

        var total = initCount + increms;
        if (takeAllAtOnce)
        {
            await DoneFromTwoThreadsAsync(ev, total);
        }
        else
        {
            var setAfter = -1;
            for (var i = 0; i < total; i++)
            {
                if (setAfter < 0 && (ev.IsCompleted || ev.Completion.IsCompleted))
                {
                    setAfter = i;
                }

                ev.Done();
            }

            setAfter.Should().Be(-1, "the tracker must not complete before the last Done");
        }

        ev.IsCompleted.Should().BeTrue();
        ev.Completion.IsCompletedSuccessfully.Should().BeTrue("the Done that reached zero completed the tracker");
        ev.Count.Should().Be(0);
        await close.OrHang();

        ev.Invoking(t => t.Add()).Should().Throw<ClosedException>("a completed tracker is not reset");
        ev.Count.Should().Be(0);
    }

    // Ports CountdownEventTests.RunCountdownEventTest1_SimpleTimeout and ManualResetEventSlimTests
    // .RunManualResetEventSlimTest2_TimeoutWait: on a count of 999, Wait(ms) returns false, IsSet stays false, and
    // WaitHandle.WaitOne(ms) returns false too. Here (on a fake clock) the close throws TaskTrackerTimeoutException exactly
    // at its timeout (a timeout of 0 at once), naming the one named registration and counting the 998 anonymous ones; the
    // tracker stays closing and not complete; a second close waits its own full timeout and times out the same way.
    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public async Task CloseAsync_OnACountOf999_TimesOutAtItsTimeout_NamingWhatIsOutstanding_AndAgainForASecondClose(int ms)
    {
        var clock = new ManualTimeProvider();
        var ev = new TaskTracker(new TaskTrackerOptions { Name = "countdown", TimeProvider = clock });
        ev.Add(998);
        var straggler = ev.Register("straggler");
        var timeout = TimeSpan.FromMilliseconds(ms);

        for (var attempt = 0; attempt != 2; attempt++)
        {
            var close = ev.CloseAsync(timeout);
            if (ms > 0)
            {
                clock.Advance(timeout - TimeSpan.FromMilliseconds(1));
                close.IsCompleted.Should().BeFalse($"attempt {attempt}: the timeout has not passed yet");
                clock.Advance(TimeSpan.FromMilliseconds(1));
            }
            else
            {
                close.IsCompleted.Should().BeTrue("a timeout of zero polls");
            }

            var timedOut = (await close.Invoking(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
            timedOut.Timeout.Should().Be(timeout);
            timedOut.Outstanding.Select(o => (o.Name, o.Kind)).Should().Equal(("straggler", TrackedOperationKind.Lease));
            timedOut.UnnamedCount.Should().Be(998);
            timedOut.Message.Should().Contain("999 operation(s) outstanding").And.Contain("straggler #1 (lease").And.Contain("998 anonymous Add()");
            ev.IsCompleted.Should().BeFalse("the event is not set");
            ev.IsClosing.Should().BeTrue();
            ev.Count.Should().Be(999);
        }

        straggler.Dispose();
        for (var i = 0; i != 998; i++)
        {
            ev.Done();
        }

        await ev.Completion.OrHang();
        ev.IsCompleted.Should().BeTrue();
    }

    // Ports the AddCount half of CountdownEventTests.RunCountdownEventTest2_Exceptions: new CountdownEvent(0).AddCount(1)
    // throws InvalidOperationException, the "add after zero" the tracker exists to refuse. A tracker closed at zero is
    // complete at once, and every way in is refused: Add, Register, Go and RunAsync with ClosedException (an
    // InvalidOperationException), TryGo with false; the count stays 0 and no work runs.
    [Fact]
    public async Task EveryRegistration_OnATrackerClosedAtZero_IsRefused_AndNothingRuns()
    {
        var ev = new TaskTracker();
        await ev.CloseAsync().OrHang();
        ev.IsCompleted.Should().BeTrue("a countdown of zero is set");
        var ran = 0;
        Task Work(CancellationToken _)
        {
            Interlocked.Increment(ref ran);
            return Task.CompletedTask;
        }

        ev.Invoking(t => t.Add(1)).Should().Throw<ClosedException>().Which.Should().BeAssignableTo<InvalidOperationException>();
        ev.Invoking(t => t.Register("late")).Should().Throw<ClosedException>();
        FluentActions.Invoking(() => { _ = ev.Go(Work, "late"); }).Should().Throw<ClosedException>();
        FluentActions.Invoking(() => { _ = ev.RunAsync(Work, "late"); }).Should().Throw<ClosedException>();
        ev.TryGo(Work, "late").Should().BeFalse();

        ev.Count.Should().Be(0);
        ev.GetOutstanding().Should().BeEmpty();
        Volatile.Read(ref ran).Should().Be(0);
    }

    // Ports the Wait range checks of CountdownEventTests.RunCountdownEventTest2_Exceptions (and ManualResetEventSlimTests
    // .RunManualResetEventSlimTest6_Exceptions, the same values): Wait(-2), Wait(TimeSpan.FromDays(-1)) and
    // Wait(TimeSpan.MaxValue), with and without a token, throw ArgumentOutOfRangeException. Here the close throws before
    // it begins: the tracker is not closing and still accepts top-level work; an infinite timeout (-1 ms, as upstream's
    // Wait(-1)) is accepted and waits for that work.
    [Theory]
    [InlineData(-2 * TimeSpan.TicksPerMillisecond, false)]
    [InlineData(-TimeSpan.TicksPerDay, false)]
    [InlineData(long.MaxValue, false)]
    [InlineData(-TimeSpan.TicksPerDay, true)]
    [InlineData(long.MaxValue, true)]
    public async Task CloseAsync_WithATimeoutOutOfRange_Throws_AndDoesNotBeginClosing(long timeoutTicks, bool withToken)
    {
        var ev = new TaskTracker();
        using var cancel = new CancellationTokenSource();
        var token = withToken ? cancel.Token : CancellationToken.None;
        var timeout = TimeSpan.FromTicks(timeoutTicks);

        FluentActions.Invoking(() => { _ = ev.CloseAsync(timeout, token); }).Should().Throw<ArgumentOutOfRangeException>();

        ev.IsClosing.Should().BeFalse("the timeout is checked before the close begins");
        ev.ClosingToken.IsCancellationRequested.Should().BeFalse();
        var lease = ev.Register("after the refused close");
        var close = ev.CloseAsync(Timeout.InfiniteTimeSpan, token);
        close.IsCompleted.Should().BeFalse();
        lease.Dispose();
        await close.OrHang();
        ev.IsCompleted.Should().BeTrue();
    }

    // Ports the Dispose half of CountdownEventTests.RunCountdownEventTest2_Exceptions (and ManualResetEventSlimTests
    // .RunManualResetEventSlimTest5_Dispose / _Dispose_Negative): on a count of 2, Dispose() returns, then Wait() throws
    // ObjectDisposedException (and Reset, Wait(0) too). Here Dispose returns at once without throwing and begins the close;
    // new top-level work is refused with ObjectDisposedException. DIFFERENCE BY DESIGN: waiting is not an error: a wait
    // begun after the dispose is pending until the two Dones, then the tracker is complete, a later wait and close complete
    // at once, and "Reset" (Add) is refused with ObjectDisposedException.
    [Fact]
    public async Task Dispose_WithACountOfTwo_ReturnsAtOnce_RefusesNewWorkAsDisposed_AndAWaitIsNotAnError()
    {
        var ev = new TaskTracker(new TaskTrackerOptions { TimeProvider = new ManualTimeProvider() });
        ev.Add(2);

#pragma warning disable VSTHRD103 // the synchronous Dispose is the path under test: it must return at once
        ev.Dispose();
#pragma warning restore VSTHRD103

        ev.IsClosing.Should().BeTrue();
        ev.IsCompleted.Should().BeFalse();
        ev.Invoking(t => t.Register("late")).Should().Throw<ObjectDisposedException>();
        FluentActions.Invoking(() => { _ = ev.Go(_ => Task.CompletedTask, "late"); }).Should().Throw<ObjectDisposedException>();
        var wait = ev.WaitAsync();
        wait.IsCompleted.Should().BeFalse("a wait on a disposed tracker waits for its count");
        ev.Count.Should().Be(2);

        ev.Done();
        wait.IsCompleted.Should().BeFalse();
        ev.Done();

        await wait.OrHang();
        await ev.Completion.OrHang();
        ev.IsCompleted.Should().BeTrue();
        ev.WaitAsync().IsCompletedSuccessfully.Should().BeTrue();
        ev.CloseAsync().IsCompletedSuccessfully.Should().BeTrue();
        ev.Invoking(t => t.Add()).Should().Throw<ObjectDisposedException>();
        ev.Count.Should().Be(0);
    }

    // Ports CountdownEventCancellationTests.CancelBeforeWait and ManualResetEventCancellationTests.CancelBeforeWait: on an
    // event not set (a count of 2), Wait(ct), Wait(100, ct) and Wait(new TimeSpan(100), ct) with a cancelled token each
    // throw OperationCanceledException carrying that token. Here WaitAsync(ct) and CloseAsync with the same three timeouts
    // do; the count is untouched. DIFFERENCE BY DESIGN: the first close begins closing even so (only its wait is
    // abandoned), and the tracker completes at the two Dones.
    [Fact]
    public async Task WaitAndClose_WithAnAlreadyCancelledToken_ThrowOperationCanceledWithThatToken()
    {
        var ev = new TaskTracker(new TaskTrackerOptions { TimeProvider = new ManualTimeProvider() });
        ev.Add(2);
        using var cancel = new CancellationTokenSource();
        await cancel.CancelAsync();
        var ct = cancel.Token;

        (await ev.WaitAsync(ct).Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);
        ev.IsClosing.Should().BeFalse("WaitAsync does not close");
        (await ev.CloseAsync(ct).Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);
        (await ev.CloseAsync(TimeSpan.FromMilliseconds(100), ct).Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);
        (await ev.CloseAsync(new TimeSpan(100), ct).Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);

        ev.Count.Should().Be(2);
        ev.IsClosing.Should().BeTrue("the close began; only its wait was cancelled");
        ev.IsCompleted.Should().BeFalse();
        ev.Done();
        ev.Done();
        await ev.Completion.OrHang();
        ev.IsCompleted.Should().BeTrue();
    }

    // Ports CountdownEventCancellationTests.CancelAfterWait and ManualResetEventCancellationTests.CancelAfterWait: a count
    // of 2 blocks the wait; another thread cancels the token; the wait throws OperationCanceledException carrying it. Here
    // a pending WaitAsync(ct) and a pending CloseAsync(ct) both end that way when a pool thread cancels; the count stays 2,
    // the tracker stays closing (new top-level work refused), and a later close completes at the two Dones.
    [Fact]
    public async Task PendingWaitAndClose_CancelledFromAnotherThread_ThrowWithThatToken_AndTheTrackerStaysClosing()
    {
        var ev = new TaskTracker(new TaskTrackerOptions { TimeProvider = new ManualTimeProvider() });
        ev.Add(2);
        using var cancel = new CancellationTokenSource();
        var ct = cancel.Token;
        var wait = ev.WaitAsync(ct);
        var close = ev.CloseAsync(ct);
        wait.IsCompleted.Should().BeFalse();
        close.IsCompleted.Should().BeFalse();

        await Task.Run(() => cancel.CancelAsync()).OrHang();

        (await wait.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);
        (await close.Invoking(t => t.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(ct);
        ev.Count.Should().Be(2);
        ev.IsClosing.Should().BeTrue();
        ev.IsCompleted.Should().BeFalse();
        ev.Invoking(t => t.Register("late")).Should().Throw<ClosedException>();

        var again = ev.CloseAsync(Timeout.InfiniteTimeSpan);
        ev.Done();
        again.IsCompleted.Should().BeFalse();
        ev.Done();
        await again.OrHang();
        ev.IsCompleted.Should().BeTrue();
    }

    // Ports ManualResetEventSlimTests.RunManualResetEventSlimTest0_StateTrans (init true and false): IsSet is init; then 50
    // times Set() makes IsSet true and Reset() false. Here a count of 0 is set and a count of 1 is not: each Set is the Done
    // that releases the one registration (on an event already set it is a no-op, so the first Set of init true releases
    // nothing), and it completes the wait begun after the previous Reset before it returns; each Reset is an Add, and a
    // wait begun after it is pending (an earlier zero does not complete it).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task WaitAsync_AcrossFiftyDoneAddCycles_IsCompleteAtEachZero_AndPendingWhileTheCountIsHeld(bool init)
    {
        var ev = new TaskTracker();
        if (!init)
        {
            ev.Add();
        }

        var pending = ev.WaitAsync();
        pending.IsCompleted.Should().Be(init);

        for (var i = 0; i < 50; i++)
        {
            if (ev.Count == 1)
            {
                ev.Done();
            }

            pending.IsCompletedSuccessfully.Should().BeTrue($"cycle {i}: Set completes the wait begun before it");
            ev.WaitAsync().IsCompletedSuccessfully.Should().BeTrue($"cycle {i}: set");

            ev.Add();
            pending = ev.WaitAsync();
            pending.IsCompleted.Should().BeFalse($"cycle {i}: reset");
        }

        ev.Done();
        await pending.OrHang();
        ev.Count.Should().Be(0);
    }

    /// <summary>Releases <paramref name="total"/> Add registrations with Done calls from two pool threads let go together.</summary>
    private static Task DoneFromTwoThreadsAsync(TaskTracker ev, int total)
    {
        var go = Bounded.NewGate();
        var shares = new[] { total / 2, total - (total / 2) };
        var releasers = shares.Select(share => Task.Run(async () =>
        {
            await go.Task;
            for (var n = 0; n < share; n++)
            {
                ev.Done();
            }
        })).ToArray();
        go.SetResult();
        return Task.WhenAll(releasers).OrHang();
    }
}
