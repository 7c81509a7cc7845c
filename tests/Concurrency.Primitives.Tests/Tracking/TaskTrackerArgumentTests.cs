using System;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Bad input gets a specific exception at the offending call and leaves the tracker's state intact.</summary>
public sealed class TaskTrackerArgumentTests
{
    [Fact]
    public void NullDelegates_ThrowArgumentNull_AndRegisterNothing()
    {
        var tracker = new TaskTracker();
        using var parent = tracker.Register();

        tracker.Invoking(t => { _ = t.Go((Func<CancellationToken, Task>)null!); }).Should().Throw<ArgumentNullException>().WithParameterName("work");
        tracker.Invoking(t => { _ = t.Go((Func<TrackedOperation, CancellationToken, Task>)null!); }).Should().Throw<ArgumentNullException>().WithParameterName("work");
        tracker.Invoking(t => t.TryGo((Func<CancellationToken, Task>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("work");
        tracker.Invoking(t => t.TryGo((Func<TrackedOperation, CancellationToken, Task>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("work");
        tracker.Invoking(t => { _ = t.RunAsync((Func<CancellationToken, Task>)null!); }).Should().Throw<ArgumentNullException>().WithParameterName("work");
        parent.Invoking(p => p.Go((Func<CancellationToken, Task>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("work");
        parent.Invoking(p => { _ = p.RunAsync((Func<CancellationToken, Task>)null!); }).Should().Throw<ArgumentNullException>().WithParameterName("work");
        parent.Invoking(p => p.TryGo((Func<CancellationToken, Task>)null!)).Should().Throw<ArgumentNullException>().WithParameterName("work");
        default(TrackedOperation).Invoking(h => h.TryGo((Func<CancellationToken, Task>)null!)).Should().Throw<ArgumentNullException>("a null delegate is refused even on a default handle");

        tracker.Count.Should().Be(1);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void Add_NonPositive_ThrowsArgumentOutOfRange_AndTheCountIsUnchanged(int delta)
    {
        var tracker = new TaskTracker();
        tracker.Add();

        tracker.Invoking(t => t.Add(delta)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("delta").WithMessage("*Done()*");

        tracker.Count.Should().Be(1);
    }

    [Fact]
    public void Add_PastTheMaximum_ThrowsAndTheCountIsUnchanged()
    {
        var tracker = new TaskTracker();
        tracker.Add((1 << 30) - 1);

        tracker.Invoking(t => t.Add()).Should().Throw<InvalidOperationException>().WithMessage("*would exceed*");

        tracker.Count.Should().Be((1 << 30) - 1);
    }

    [Fact]
    public void Register_PastTheMaximumOfNamedRegistrations_ThrowsAndTheCountIsUnchanged()
    {
        // 2^30 - 1 live named registrations do not fit in a test's memory: the state word is given that count directly.
        var tracker = new TaskTracker();
        SetOperationCount(tracker, (1 << 30) - 1);

        tracker.Invoking(t => t.Register("one too many")).Should().Throw<InvalidOperationException>().WithMessage("*would exceed*");

        tracker.Count.Should().Be((1 << 30) - 1);
        tracker.GetOutstanding().Should().BeEmpty("the refused registration left nothing behind");
    }

    [Fact]
    public void CloseAsync_WithANegativeTimeout_Throws_AndDoesNotBeginClosing()
    {
        var tracker = new TaskTracker();

        tracker.Invoking(t => { _ = t.CloseAsync(TimeSpan.FromSeconds(-2)); }).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("timeout");

        tracker.IsClosing.Should().BeFalse();
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-4)]
    public void Options_MaxConcurrencyBelowOne_IsRejectedAtConstruction(int limit)
    {
        var create = () => new TaskTracker(new TaskTrackerOptions { MaxConcurrency = limit });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MaxConcurrency must be at least 1*");
    }

    [Fact]
    public void Options_NegativeShutdownTimeout_IsRejectedAtConstruction()
    {
        var create = () => new TaskTracker(new TaskTrackerOptions { ShutdownTimeout = TimeSpan.FromSeconds(-1) });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*ShutdownTimeout*");
    }

    [Fact]
    public async Task Options_AreReadOnce_LaterChangesHaveNoEffect()
    {
        var options = new TaskTrackerOptions { Name = "first", MaxConcurrency = 1 };
        var tracker = new TaskTracker(options);
        options.Name = "second";
        options.MaxConcurrency = 5;
        var release = Bounded.NewGate();
        await tracker.Go(_ => release.Task);

        tracker.Name.Should().Be("first");
        tracker.TryGo(_ => Task.CompletedTask).Should().BeFalse("the limit is still 1");
        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    /// <summary>Sets the count of named registrations in the tracker's state word (the operation count's bits, from bit 30).</summary>
    private static void SetOperationCount(TaskTracker tracker, long count)
    {
        var hotField = typeof(TaskTracker).GetField("_hot", BindingFlags.NonPublic | BindingFlags.Instance)!;
        var hot = hotField.GetValue(tracker)!;
        hot.GetType().GetField("State")!.SetValue(hot, count << 30);
        hotField.SetValue(tracker, hot);
    }
}
