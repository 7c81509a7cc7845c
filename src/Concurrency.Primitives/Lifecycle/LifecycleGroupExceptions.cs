using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Concurrency.Primitives;

/// <summary>
/// A <see cref="LifecycleGroup"/>'s dependencies cannot be satisfied: a gate depends on a name that is not in the group
/// (<see cref="MissingDependency"/>), or gates depend on each other in a cycle (<see cref="Cycle"/>). Thrown by
/// <see cref="LifecycleGroup.StartAsync"/> before anything starts; the group stays as it was and accepts more gates.
/// </summary>
public sealed class LifecycleDependencyException : InvalidOperationException
{
    /// <summary>Creates an exception with a default message.</summary>
    public LifecycleDependencyException()
        : this("The group's dependencies cannot be satisfied.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public LifecycleDependencyException(string message)
        : base(message)
    {
        GateName = string.Empty;
        Cycle = Array.Empty<string>();
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public LifecycleDependencyException(string message, Exception innerException)
        : base(message, innerException)
    {
        GateName = string.Empty;
        Cycle = Array.Empty<string>();
    }

    /// <summary>Creates the exception for a gate that depends on a name the group does not hold.</summary>
    /// <param name="groupName">The group's name.</param>
    /// <param name="gateName">The gate that declared the dependency.</param>
    /// <param name="missingDependency">The name it depends on.</param>
    public LifecycleDependencyException(string groupName, string gateName, string missingDependency)
        : base(string.Format(
            CultureInfo.InvariantCulture,
            "Group '{0}': gate '{1}' depends on '{2}', which is not in the group. Add a gate named '{2}' to the group, or remove the dependency.",
            groupName,
            gateName,
            missingDependency))
    {
        GateName = gateName ?? string.Empty;
        MissingDependency = missingDependency;
        Cycle = Array.Empty<string>();
    }

    /// <summary>Creates the exception for gates that depend on each other in a cycle.</summary>
    /// <param name="groupName">The group's name.</param>
    /// <param name="cycle">The gates of the cycle, each depending on the next, the first repeated at the end.</param>
    /// <exception cref="ArgumentNullException"><paramref name="cycle"/> is <see langword="null"/>.</exception>
    public LifecycleDependencyException(string groupName, IReadOnlyList<string> cycle)
        : base(string.Format(
            CultureInfo.InvariantCulture,
            "Group '{0}': gates depend on each other in a cycle: {1} (each depends on the next), so none of them can start first. Remove one of these dependencies.",
            groupName,
            string.Join(" → ", Internal.Guard.NotNull(cycle))))
    {
        GateName = cycle.Count > 0 ? cycle[0] : string.Empty;
        Cycle = cycle;
    }

    /// <summary>The gate whose dependency cannot be satisfied (the first gate of the cycle); empty when not known.</summary>
    public string GateName { get; }

    /// <summary>The name a gate depends on that is not in the group; <see langword="null"/> for a cycle.</summary>
    public string? MissingDependency { get; }

    /// <summary>The cycle, each gate depending on the next and the first repeated at the end (<c>a, b, c, a</c>); empty for a missing dependency.</summary>
    public IReadOnlyList<string> Cycle { get; }
}

/// <summary>
/// A <see cref="LifecycleGroup"/>'s stop did not finish within <see cref="LifecycleGroupOptions.ShutdownTimeout"/>.
/// <see cref="StillStopping"/> names each gate whose stop was still in progress and the step it waited for; nothing a
/// stuck gate depends on has been stopped. The group is <see cref="LifecycleState.StopFailed"/>: stop it again to resume.
/// </summary>
public sealed class LifecycleGroupStopTimeoutException : ShutdownTimeoutException
{
    /// <summary>Creates an exception with a default message.</summary>
    public LifecycleGroupStopTimeoutException()
        : this("The group's stop did not finish in time.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public LifecycleGroupStopTimeoutException(string message)
        : base(message)
    {
        StillStopping = new Dictionary<string, string>();
        NotYetStopped = Array.Empty<string>();
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public LifecycleGroupStopTimeoutException(string message, Exception innerException)
        : base(message, innerException)
    {
        StillStopping = new Dictionary<string, string>();
        NotYetStopped = Array.Empty<string>();
    }

    /// <summary>Creates the exception a group throws when its stop runs out of time.</summary>
    /// <param name="groupName">The group's name.</param>
    /// <param name="timeout">The bound that elapsed.</param>
    /// <param name="stillStopping">Each gate whose stop was in progress, with the step it waited for.</param>
    /// <param name="notYetStopped">The gates not yet stopping because a gate that depends on them had not stopped.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public LifecycleGroupStopTimeoutException(string groupName, TimeSpan timeout, IReadOnlyDictionary<string, string> stillStopping, IReadOnlyList<string> notYetStopped)
        : base(groupName, timeout, FormatMessage(groupName, timeout, Internal.Guard.NotNull(stillStopping), Internal.Guard.NotNull(notYetStopped)))
    {
        StillStopping = stillStopping;
        NotYetStopped = notYetStopped;
    }

    /// <summary>Each gate whose stop was still in progress, with the step it waited for (<c>"run"</c>, <c>"stop"</c>, a resource's name).</summary>
    public IReadOnlyDictionary<string, string> StillStopping { get; }

    /// <summary>The gates still running because a gate that depends on them had not stopped yet.</summary>
    public IReadOnlyList<string> NotYetStopped { get; }

    private static string FormatMessage(string groupName, TimeSpan timeout, IReadOnlyDictionary<string, string> stillStopping, IReadOnlyList<string> notYetStopped)
    {
        var text = new StringBuilder();
        text.AppendFormat(
            CultureInfo.InvariantCulture,
            "Group '{0}': the stop did not finish within {1}; {2} gate(s) still stopping: {3}.",
            groupName,
            timeout,
            stillStopping.Count,
            string.Join(", ", stillStopping.Select(pair => string.Format(CultureInfo.InvariantCulture, "'{0}' (waiting for '{1}')", pair.Key, pair.Value))));
        if (notYetStopped.Count > 0)
        {
            text.Append(" Not stopped yet, because a gate that depends on them is still stopping: ")
                .Append(string.Join(", ", notYetStopped.Select(name => "'" + name + "'")))
                .Append('.');
        }

        text.Append(" Stop the group again to resume.");
        return text.ToString();
    }
}
