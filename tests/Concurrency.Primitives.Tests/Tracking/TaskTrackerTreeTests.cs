using System;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Tracking;

/// <summary>Snapshot() and the close-timeout message write outstanding operations as a tree: each child under its parent.</summary>
public sealed class TaskTrackerTreeTests
{
    [Fact]
    public async Task Snapshot_WritesThreeLevels_EachChildIndentedUnderItsParent()
    {
        var clock = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node", TimeProvider = clock });
        var (release, ready) = await StartThreeLevelsAsync(tracker);
        await ready.OrHang();
        tracker.Add();

        var snapshot = tracker.Snapshot();

        snapshot.Operations.Select(o => o.Name).Should().Equal("build", "merge", "write", "compact");
        snapshot.UnnamedCount.Should().Be(1);
        var lines = snapshot.ToString().Split(Environment.NewLine);
        lines[0].Should().Be("Tracker 'node': 5 operation(s) outstanding (1 anonymous)");
        lines.Skip(1).Select(Shape).Should().Equal(
            "  build",
            "    merge",
            "      write",
            "  compact");
        release.SetResult();
        tracker.Done();
        await tracker.CloseAsync().OrHang();
    }

    [Fact]
    public async Task CloseTimeout_ListsTheStragglersAsATree()
    {
        var clock = new ManualTimeProvider();
        var tracker = new TaskTracker(new TaskTrackerOptions { Name = "node", TimeProvider = clock });
        var (release, ready) = await StartThreeLevelsAsync(tracker);
        await ready.OrHang();

        var close = tracker.CloseAsync(TimeSpan.FromSeconds(5));
        await clock.WhenTimersArmed(1).OrHang();
        clock.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await close.Awaiting(c => c.OrHang()).Should().ThrowAsync<TaskTrackerTimeoutException>()).Which;
        timeout.Message.Split(Environment.NewLine).Skip(1).Select(Shape).Should().Equal(
            "  build",
            "    merge",
            "      write",
            "  compact");
        timeout.Message.Should().Contain("merge #").And.Contain("child of #");
        release.SetResult();
        await tracker.CloseAsync().OrHang();
    }

    // "    merge #2 (work, child of #1, age 0 s)" -> "    merge": the indentation and the name.
    private static string Shape(string line) => line[..line.IndexOf(" #", StringComparison.Ordinal)];

    /// <summary>build (work) → merge (work, its child) → write (a lease of merge); and compact, a second top-level work.</summary>
    private static async Task<(TaskCompletionSource Release, Task Ready)> StartThreeLevelsAsync(TaskTracker tracker)
    {
        var release = Bounded.NewGate();
        var ready = Bounded.NewGate();
        await tracker.Go(
            async (build, _) =>
            {
                build.Go(
                    async (merge, _) =>
                    {
                        using (merge.Register("write"))
                        {
                            ready.SetResult();
                            await release.Task;
                        }
                    },
                    "merge");
                await release.Task;
            },
            "build");
        await ready.Task.OrHang(); // merge and write are registered: compact comes after them
        await tracker.Go(_ => release.Task, "compact");
        return (release, ready.Task);
    }
}
