using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Concurrency.Primitives;

/// <summary>
/// What a <see cref="TaskTracker"/> holds at one moment (<see cref="TaskTracker.Snapshot"/>): its outstanding operations
/// and anonymous count. <see cref="ToString"/> writes the operations as a tree by parent, children indented under the
/// operation that registered them.
/// </summary>
public sealed class TaskTrackerSnapshot
{
    private const int MaxListed = 1000;

    /// <summary>Creates a snapshot (the tracker builds these; a test may build one).</summary>
    /// <param name="trackerName">The tracker's name.</param>
    /// <param name="operations">The outstanding operations, oldest first.</param>
    /// <param name="unnamedCount">How many anonymous <c>Add</c> registrations were outstanding.</param>
    /// <exception cref="ArgumentNullException"><paramref name="trackerName"/> or <paramref name="operations"/> is <see langword="null"/>.</exception>
    public TaskTrackerSnapshot(string trackerName, IReadOnlyList<TrackedOperationInfo> operations, int unnamedCount)
    {
        TrackerName = Internal.Guard.NotNull(trackerName);
        Operations = Internal.Guard.NotNull(operations);
        UnnamedCount = unnamedCount;
    }

    /// <summary>The tracker's name.</summary>
    public string TrackerName { get; }

    /// <summary>The operations from <c>Go</c>, <c>RunAsync</c> and <c>Register</c> outstanding then, oldest first.</summary>
    public IReadOnlyList<TrackedOperationInfo> Operations { get; }

    /// <summary>How many anonymous <c>Add</c> registrations were outstanding (they carry no name).</summary>
    public int UnnamedCount { get; }

    /// <summary>The tracker's name and count, then one line per operation, each child indented under its parent.</summary>
    /// <returns>For example <c>build #1 (work, age 2.5 s)</c> with <c>  merge #2 (work, child of #1, age 2.4 s)</c> under it.</returns>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.AppendFormat(CultureInfo.InvariantCulture, "Tracker '{0}': {1} operation(s) outstanding", TrackerName, Operations.Count + UnnamedCount);
        if (UnnamedCount > 0)
        {
            text.AppendFormat(CultureInfo.InvariantCulture, " ({0} anonymous)", UnnamedCount);
        }

        OperationTree.Append(text, Operations, MaxListed, "  ");
        return text.ToString();
    }
}
