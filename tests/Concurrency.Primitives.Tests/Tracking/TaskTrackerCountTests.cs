using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Invariant 4 and the WaitGroup drop-in: Add, Done, WaitAsync and leases.</summary>
public sealed class TaskTrackerCountTests
{
    [Fact]
    public void AddAndDone_MoveTheCount()
    {
        var tracker = new TaskTracker();
        tracker.Add(3);
        tracker.Count.Should().Be(3);
        tracker.Done();
        tracker.Done();
        tracker.Count.Should().Be(1);
    }

    [Fact]
    public void Done_WithoutAdd_Throws_AndTheCountStaysZero()
    {
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "wg" });

        tracker.Invoking(t => t.Done()).Should().Throw<InvalidOperationException>().WithMessage("*'wg' more times than Add()*count is unchanged*");
        tracker.Count.Should().Be(0);
        tracker.Add();
        tracker.Count.Should().Be(1, "the failed Done left the counter usable");
    }

    [Fact]
    public void AddAndDone_AfterAnotherThreadMovedTheCount_AnswerToTheCountNotToThisThreadsLastView()
    {
        // Add and Done start their swap from this thread's last view of the count. That view is a guess: a stale one
        // must cost a retry, never a wrong answer.
        var tracker = new TaskTracker();
        tracker.Add();
        tracker.Done(); // this thread last saw a count of zero

        FreshThread.Run(() => tracker.Add(2));
        tracker.Done(); // refused if the stale view of zero were believed
        tracker.Count.Should().Be(1);

        FreshThread.Run(tracker.Done);
        tracker.Invoking(t => t.Done()).Should().Throw<InvalidOperationException>("this thread last saw one, but the count is zero");
        tracker.Add();
        tracker.Count.Should().Be(1, "the swap from the stale view of one must not have gone through");

        var other = new TaskTracker();
        other.Add();
        tracker.Done(); // this thread last swapped the other tracker: for this one it reads the word
        tracker.Count.Should().Be(0);
        other.Count.Should().Be(1);
    }

    [Fact]
    public void Done_MoreThanAdd_WhileALeaseIsOutstanding_ThrowsAndDoesNotEatTheLeasesCount()
    {
        var tracker = new TaskTracker();
        using var lease = tracker.Register("lease");
        tracker.Add();
        tracker.Done();

        tracker.Invoking(t => t.Done()).Should().Throw<InvalidOperationException>();

        tracker.Count.Should().Be(1);
        lease.IsActive.Should().BeTrue();
    }

    [Fact]
    public void Lease_ReleasedTwice_DecrementsOnce()
    {
        var tracker = new TaskTracker();
        var first = tracker.Register("first");
        var second = tracker.Register("second");
        var copy = first;

        first.Dispose();
        first.Dispose();
        copy.Dispose();

        tracker.Count.Should().Be(1);
        second.IsActive.Should().BeTrue();
        first.IsActive.Should().BeFalse();
    }

    [Fact]
    public void StaleLease_DoesNotReleaseALaterRegistrationThatReusedItsRecord()
    {
        var tracker = new TaskTracker();
        var stale = tracker.Register("first");
        stale.Dispose();
        var fresh = tracker.Register("second"); // reuses the pooled record of "first"

        stale.Dispose();

        fresh.IsActive.Should().BeTrue();
        tracker.Count.Should().Be(1);
    }

    [Fact]
    public void DefaultLease_IsInactive_DisposesAsANoOp_AndCannotRegister()
    {
        var lease = default(TrackedLease);

        lease.IsActive.Should().BeFalse();
        lease.Invoking(h => h.Dispose()).Should().NotThrow();
        lease.Invoking(h => h.Register()).Should().Throw<InvalidOperationException>().WithMessage("*default value*");
        lease.TryGo(_ => Task.CompletedTask).Should().BeFalse();
        lease.ClosingToken.CanBeCanceled.Should().BeFalse();
    }

    [Fact]
    public void DefaultHandle_IsInactive_HasATokenThatNeverCancels_AndCannotRegister()
    {
        var handle = default(TrackedOperation);

        handle.IsActive.Should().BeFalse();
        handle.ClosingToken.CanBeCanceled.Should().BeFalse("a default handle belongs to no tracker; reading its token must not throw");
        handle.Invoking(h => h.Register()).Should().Throw<InvalidOperationException>().WithMessage("*default value*");
        handle.TryGo(_ => Task.CompletedTask).Should().BeFalse();
    }

    [Fact]
    public async Task WaitAsync_CompletesWhenTheCountReachesZero_WithoutClosing()
    {
        var tracker = new TaskTracker();
        tracker.Add(2);

        var wait = tracker.WaitAsync();
        tracker.Done();
        wait.IsCompleted.Should().BeFalse();
        tracker.Done();

        await wait.OrHang();
        tracker.IsClosing.Should().BeFalse();
        tracker.Add(); // still usable: WaitAsync is not a close
        tracker.Count.Should().Be(1);
    }

    [Fact]
    public async Task WaitAsync_IsCancellable_AndLeavesTheCountAlone()
    {
        var tracker = new TaskTracker();
        tracker.Add();
        using var cancel = new CancellationTokenSource();

        var wait = tracker.WaitAsync(cancel.Token);
        await cancel.CancelAsync();

        await wait.Invoking(w => w.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        tracker.Count.Should().Be(1);
    }

    [Fact]
    public async Task WaitAsync_OnAZeroCount_CompletesAtOnce()
    {
        var tracker = new TaskTracker();

        var wait = tracker.WaitAsync();

        wait.IsCompletedSuccessfully.Should().BeTrue();
        await wait;
    }

    [Fact]
    public async Task WaitAsync_WaitersOfTwoGenerations_AreEachReleasedByTheirOwnZero()
    {
        var tracker = new TaskTracker();
        tracker.Add();
        var first = tracker.WaitAsync();
        tracker.Done();
        await first.OrHang();

        tracker.Add();
        var second = tracker.WaitAsync();
        second.IsCompleted.Should().BeFalse("the new registration is outstanding");
        tracker.Done();
        await second.OrHang();
    }
}
