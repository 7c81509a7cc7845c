using System;

namespace Concurrency.Primitives;

/// <summary>
/// Thrown when a step of an ordered teardown (the run, or one stop step) does not finish within its timeout.
/// <see cref="Step"/> names it. Unless the run was abandoned, nothing after that step has been disposed, and
/// calling the stop again resumes at that step.
/// </summary>
public sealed class LifecycleStopTimeoutException : ShutdownTimeoutException
{
    /// <summary>Creates an exception with a default message.</summary>
    public LifecycleStopTimeoutException()
        : this("A teardown step did not finish in time.")
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">The message.</param>
    public LifecycleStopTimeoutException(string message)
        : base(message)
    {
        Step = string.Empty;
    }

    /// <summary>Creates an exception with the given message and inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public LifecycleStopTimeoutException(string message, Exception innerException)
        : base(message, innerException)
    {
        Step = string.Empty;
    }

    /// <summary>Creates the exception a gate or a teardown throws when <paramref name="step"/> did not finish in time.</summary>
    /// <param name="name">The gate's (or teardown's) name.</param>
    /// <param name="step">The step that did not finish: <c>"run"</c> for the run delegate, otherwise the step's name.</param>
    /// <param name="timeout">The bound that elapsed.</param>
    /// <param name="runAbandoned">Whether the run was abandoned by option and the teardown went on.</param>
    public LifecycleStopTimeoutException(string name, string step, TimeSpan timeout, bool runAbandoned)
        : base(name, timeout, runAbandoned
            ? $"'{name}': the run did not return within {timeout} after its token was cancelled; it was abandoned (AbandonRunOnTimeout) and the remaining steps ran while it may still be running."
            : $"'{name}': teardown step '{step}' did not finish within {timeout}. Nothing after it has been disposed; stop again to resume at this step.")
    {
        Step = step ?? string.Empty;
        RunAbandoned = runAbandoned;
    }

    /// <summary>The step that did not finish: <c>"run"</c> for the run delegate, otherwise the step's name.</summary>
    public string Step { get; }

    /// <summary>
    /// <see langword="true"/> when the run did not return but was abandoned by option and the teardown went on;
    /// the teardown is then complete.
    /// </summary>
    public bool RunAbandoned { get; }
}
