using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// Nito.AsyncEx <c>AsyncCountdownEvent</c> tests (test/AsyncEx.Coordination.UnitTests/AsyncCountdownEventUnitTests.cs),
/// ported onto the tracker's anonymous count: <c>new AsyncCountdownEvent(n)</c> is a new tracker plus <c>Add(n)</c>,
/// <c>AddCount(n)</c> is <see cref="TaskTracker.Add"/>, <c>Signal()</c> is <see cref="TaskTracker.Done"/> (<c>Signal(n)</c> is
/// n calls), <c>CurrentCount</c> is <see cref="TaskTracker.Count"/>, <c>WaitAsync()</c> is <see cref="TaskTracker.WaitAsync"/>.
/// The event's count may go negative and it "pulses" across zero; by design the tracker's count never goes below zero
/// (a Done too many throws and leaves it intact), and the tests that rely on a negative count assert that instead.
/// </summary>
public sealed class NitoAsyncCountdownEventConformanceTests
{
    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.WaitAsync_Unset_IsNotCompleted.
    [Fact]
    public async Task WaitAsync_WithACountOfOne_IsNotCompleted_UntilDone()
    {
        var ce = CountdownOf(1);
        var task = ce.WaitAsync();

        ce.Count.Should().Be(1);
        task.IsCompleted.Should().BeFalse();

        ce.Done();
        await task.OrHang();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.WaitAsync_Set_IsCompleted.
    [Fact]
    public void WaitAsync_WithACountOfZero_IsCompletedSynchronously()
    {
        var ce = CountdownOf(0);
        var task = ce.WaitAsync();

        ce.Count.Should().Be(0);
        task.IsCompleted.Should().BeTrue();
        task.IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.AddCount_IncrementsCount (Signal(2) is two Done calls).
    [Fact]
    public async Task Add_RaisesTheCount_AndThePendingWaitStaysPending()
    {
        var ce = CountdownOf(1);
        var task = ce.WaitAsync();
        ce.Count.Should().Be(1);
        task.IsCompleted.Should().BeFalse();

        ce.Add();

        ce.Count.Should().Be(2);
        task.IsCompleted.Should().BeFalse();

        ce.Done();
        ce.Done();
        await task.OrHang();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.Signal_Nonzero_IsNotCompleted.
    [Fact]
    public async Task Done_LeavingANonZeroCount_DoesNotCompleteThePendingWait()
    {
        var ce = CountdownOf(2);
        var task = ce.WaitAsync();
        task.IsCompleted.Should().BeFalse();

        ce.Done();

        ce.Count.Should().Be(1);
        task.IsCompleted.Should().BeFalse();

        ce.Done();
        await task.OrHang();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.Signal_Zero_SynchronouslyCompletesWaitTask: the wait task is
    // completed by the time Done() returns (its continuations may still run asynchronously).
    [Fact]
    public void Done_ReachingZero_CompletesThePendingWaitBeforeItReturns()
    {
        var ce = CountdownOf(1);
        var task = ce.WaitAsync();
        task.IsCompleted.Should().BeFalse();

        ce.Done();

        ce.Count.Should().Be(0);
        task.IsCompleted.Should().BeTrue();
        task.IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.Signal_AfterSet_CountsNegativeAndResetsTask. Nito lets the count go
    // to -1 and resets the event (a new wait is pending until AddCount). By design the tracker refuses a Done with no
    // Add to release: it throws InvalidOperationException, the count stays 0, and a wait stays completed.
    [Fact]
    public void Done_AtZero_Throws_TheCountStaysZero_AndAWaitIsStillCompleted()
    {
        var ce = CountdownOf(0);
        var originalTask = ce.WaitAsync();

        ce.Invoking(c => c.Done()).Should().Throw<InvalidOperationException>();

        var newTask = ce.WaitAsync();
        ce.Count.Should().Be(0);
        originalTask.IsCompletedSuccessfully.Should().BeTrue();
        newTask.IsCompletedSuccessfully.Should().BeTrue("the count is zero, not -1");
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.AddCount_AfterSet_CountsPositiveAndResetsTask: after the count
    // was zero, Add makes a new wait pending (a different task), while the earlier wait stays completed.
    [Fact]
    public async Task Add_AfterTheCountWasZero_MakesANewWaitPending_AndLeavesTheEarlierWaitCompleted()
    {
        var ce = CountdownOf(0);
        var originalTask = ce.WaitAsync();

        ce.Add();
        var newTask = ce.WaitAsync();

        ce.Count.Should().Be(1);
        newTask.Should().NotBeSameAs(originalTask);
        originalTask.IsCompletedSuccessfully.Should().BeTrue();
        newTask.IsCompleted.Should().BeFalse();

        ce.Done();
        await newTask.OrHang();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.Signal_PastZero_PulsesTask: count 1, Signal(2). Nito completes the
    // original wait and leaves the count at -1 with a new wait pending. The tracker has no Done(n); of the two Done
    // calls the first completes the original wait and, by design, the second throws and leaves the count at zero, so
    // a new wait is completed rather than pending.
    [Fact]
    public async Task TwoDones_FromACountOfOne_CompleteTheWait_ThenTheSecondThrows_AndTheCountStaysZero()
    {
        var ce = CountdownOf(1);
        var originalTask = ce.WaitAsync();

        ce.Done();
        ce.Invoking(c => c.Done()).Should().Throw<InvalidOperationException>();

        await originalTask.OrHang();
        var newTask = ce.WaitAsync();
        ce.Count.Should().Be(0);
        newTask.IsCompletedSuccessfully.Should().BeTrue();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.AddCount_PastZero_PulsesTask: Nito starts at a count of -1 and
    // AddCount(2) crosses zero. The tracker's count cannot be negative and Add takes only a delta of at least 1 (release
    // is Done's job): by design, a delta below 1 throws ArgumentOutOfRangeException and changes nothing.
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task Add_WithADeltaBelowOne_ThrowsArgumentOutOfRange_AndChangesNothing(int delta)
    {
        var ce = CountdownOf(1);
        var task = ce.WaitAsync();

        ce.Invoking(c => c.Add(delta)).Should().Throw<ArgumentOutOfRangeException>();

        ce.Count.Should().Be(1);
        task.IsCompleted.Should().BeFalse();
        ce.Done();
        await task.OrHang();
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.AddCount_Overflow_ThrowsException: Nito throws OverflowException
    // past long.MaxValue. The tracker documents its own bound: Add throws InvalidOperationException when the count would
    // exceed 1,073,741,823, and leaves the count as it was.
    [Fact]
    public void Add_PastTheDocumentedMaximum_ThrowsInvalidOperation_AndLeavesTheCount()
    {
        const int max = 1_073_741_823;
        var ce = CountdownOf(max);
        ce.Count.Should().Be(max);

        ce.Invoking(c => c.Add()).Should().Throw<InvalidOperationException>();

        ce.Count.Should().Be(max);
        ce.Done();
        ce.Count.Should().Be(max - 1);
        var fresh = new TaskTracker();
        fresh.Invoking(c => c.Add(int.MaxValue)).Should().Throw<InvalidOperationException>();
        fresh.Count.Should().Be(0);
    }

    // Ports Nito.AsyncEx AsyncCountdownEventUnitTests.Signal_Underflow_ThrowsException: Nito throws OverflowException
    // below long.MinValue. The tracker's floor is zero anonymous registrations: Done throws InvalidOperationException and
    // changes nothing, even while a lease keeps the total count above zero (documented: a stray Done cannot eat a
    // lease's count).
    [Fact]
    public void Done_BelowZeroAnonymousRegistrations_ThrowsInvalidOperation_AndDoesNotEatALeasesCount()
    {
        var ce = new TaskTracker();
        using var lease = ce.Register("lease");

        ce.Invoking(c => c.Done()).Should().Throw<InvalidOperationException>();

        ce.Count.Should().Be(1);
        lease.IsActive.Should().BeTrue();
        ce.WaitAsync().IsCompleted.Should().BeFalse();
    }

    private static TaskTracker CountdownOf(int count)
    {
        var tracker = new TaskTracker();
        if (count > 0)
        {
            tracker.Add(count);
        }

        return tracker;
    }
}
