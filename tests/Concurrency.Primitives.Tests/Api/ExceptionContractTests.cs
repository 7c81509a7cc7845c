using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// Every public exception of the library keeps the three standard constructors' contract (a default message that says
/// something, a message kept, a message and a cause kept) with its own properties empty, never null; and the
/// constructors the library itself uses put their figures in the message and the properties.
/// </summary>
public sealed class ExceptionContractTests
{
    public static IEnumerable<object[]> ExceptionTypes() => typeof(TaskTracker).Assembly.GetExportedTypes()
        .Where(t => typeof(Exception).IsAssignableFrom(t) && !t.IsAbstract)
        .OrderBy(t => t.Name)
        .Select(t => new object[] { t.Name });

    [Fact]
    public void TheLibraryHasTheExceptionsThisTestKnows()
    {
        ExceptionTypes().Select(row => (string)row[0]).Should().BeEquivalentTo(
            "BatchDispatchException", "BatchException", "BatchItemNotCompletedException", "BatchTimeoutException", "ClosedException",
            "LifecycleDependencyException", "LifecycleGroupStopTimeoutException", "LifecycleStopTimeoutException", "ShutdownTimeoutException",
            "TaskTrackerTimeoutException");
    }

    [Theory]
    [MemberData(nameof(ExceptionTypes))]
    public void TheParameterlessConstructor_GivesAMessageOfItsOwn_AndEmptyProperties(string name)
    {
        var type = TypeNamed(name);
        var exception = (Exception)Activator.CreateInstance(type)!;

        exception.Message.Should().NotBeNullOrWhiteSpace().And.NotContain("Exception of type", "the default message says what failed");
        exception.InnerException.Should().BeNull();
        ShouldHaveEmptyProperties(exception);
    }

    [Theory]
    [MemberData(nameof(ExceptionTypes))]
    public void TheMessageConstructors_KeepTheMessageAndTheCause(string name)
    {
        var type = TypeNamed(name);
        var cause = new InvalidOperationException("the cause");

        var withMessage = (Exception)Activator.CreateInstance(type, "what happened")!;
        var withCause = (Exception)Activator.CreateInstance(type, "what happened", cause)!;

        withMessage.Message.Should().Be("what happened");
        withMessage.InnerException.Should().BeNull();
        ShouldHaveEmptyProperties(withMessage);
        withCause.Message.Should().Be("what happened");
        withCause.InnerException.Should().BeSameAs(cause);
        ShouldHaveEmptyProperties(withCause);
    }

    [Fact]
    public void ANamedClosedOrShutdownException_KeepsItsName_AndANullNameIsEmpty()
    {
        new ClosedException("node", "closed").Name.Should().Be("node");
        new ClosedException(null!, "closed").Name.Should().BeEmpty();
        var timeout = new ShutdownTimeoutException("node", TimeSpan.FromSeconds(3), "late");
        timeout.Name.Should().Be("node");
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(3));
        timeout.Message.Should().Be("late");
        new ShutdownTimeoutException(null!, TimeSpan.Zero, "late").Name.Should().BeEmpty();
    }

    [Fact]
    public void ADispatchFault_NamesTheBatchSizeTheItemAndTheCause()
    {
        var cause = new TimeoutException("database stalled");

        var fault = new BatchDispatchException(cause, index: 3, batchSize: 8);

        fault.Message.Should().Be("The dispatch of a batch of 8 item(s) failed before answering item 3: database stalled");
        fault.InnerException.Should().BeSameAs(cause);
        fault.Index.Should().Be(3);
        fault.BatchSize.Should().Be(8);
        FluentActions.Invoking(() => new BatchDispatchException(null!, 0, 1)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void AnItemNotCompleted_SaysWhetherTheHandlerForgotIt_OrReturnedTheWrongNumberOfResults()
    {
        var forgotten = new BatchItemNotCompletedException(index: 2, batchSize: 5, resultCount: null);
        forgotten.Message.Should().Be("The batch handler returned without completing item 2 of a batch of 5; every item must be answered with TrySetResult or TrySetException.");
        (forgotten.Index, forgotten.BatchSize, forgotten.ResultCount).Should().Be((2, 5, (int?)null));

        var miscounted = new BatchItemNotCompletedException(index: 1, batchSize: 5, resultCount: 4);
        miscounted.Message.Should().Be("The batch handler returned 4 result(s) for a batch of 5 item(s); results map to items by position, so none of them can be trusted (item 1).");
        miscounted.ResultCount.Should().Be(4);
    }

    [Fact]
    public void ATimeout_SaysWhetherTheItemWasDispatched_AndWhetherTheDispatchItselfRanOut()
    {
        var bound = TimeSpan.FromSeconds(2);

        var queued = new BatchTimeoutException(bound, wasDispatched: false, dispatchTimedOut: false);
        var dispatched = new BatchTimeoutException(bound, wasDispatched: true, dispatchTimedOut: false);
        var stuck = new BatchTimeoutException(bound, wasDispatched: true, dispatchTimedOut: true);

        queued.Message.Should().Be("The call did not complete within 00:00:02; the item was never dispatched and will not be.");
        dispatched.Message.Should().Be("The call did not complete within 00:00:02; its batch is being dispatched and may still process the item.");
        stuck.Message.Should().Be("The dispatch of this item's batch ran past its timeout of 00:00:02; its token was cancelled and its callers released. The item may still be processed.");
        (queued.Timeout, queued.WasDispatched, queued.DispatchTimedOut).Should().Be((bound, false, false));
        (stuck.WasDispatched, stuck.DispatchTimedOut).Should().Be((true, true));
    }

    [Fact]
    public void ATrackerTimeout_CountsTheNamedAndTheAnonymous_AndSaysWhatTheAnonymousAre()
    {
        var none = new TaskTrackerTimeoutException("node", TimeSpan.FromSeconds(1), Array.Empty<TrackedOperationInfo>(), unnamedCount: 0);
        none.Message.Should().Be("Closing task tracker 'node' timed out after 00:00:01 with 0 operation(s) outstanding (the tracker stays closing; the work keeps running).");
        none.Name.Should().Be("node");
        none.Timeout.Should().Be(TimeSpan.FromSeconds(1));

        var anonymous = new TaskTrackerTimeoutException("node", TimeSpan.FromSeconds(1), Array.Empty<TrackedOperationInfo>(), unnamedCount: 2);
        anonymous.Message.Should().Contain("with 2 operation(s) outstanding").And.EndWith("plus 2 anonymous Add() registration(s) without a matching Done()");
        anonymous.UnnamedCount.Should().Be(2);
        anonymous.Outstanding.Should().BeEmpty();
        FluentActions.Invoking(() => new TaskTrackerTimeoutException(null!, TimeSpan.Zero, Array.Empty<TrackedOperationInfo>(), 0)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => new TaskTrackerTimeoutException("node", TimeSpan.Zero, null!, 0)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void AStepTimeout_NamesTheStepAndSaysHowToResume_OrThatTheRunWasAbandoned()
    {
        var step = new LifecycleStopTimeoutException("db", "flush", TimeSpan.FromSeconds(2), runAbandoned: false);
        var abandoned = new LifecycleStopTimeoutException("db", "run", TimeSpan.FromSeconds(2), runAbandoned: true);

        step.Message.Should().Be("'db': teardown step 'flush' did not finish within 00:00:02. Nothing after it has been disposed; stop again to resume at this step.");
        step.Step.Should().Be("flush");
        step.RunAbandoned.Should().BeFalse();
        abandoned.Message.Should().Be("'db': the run did not return within 00:00:02 after its token was cancelled; it was abandoned (AbandonRunOnTimeout) and the remaining steps ran while it may still be running.");
        abandoned.Step.Should().Be("run");
        abandoned.RunAbandoned.Should().BeTrue();
        new LifecycleStopTimeoutException("db", null!, TimeSpan.Zero, runAbandoned: false).Step.Should().BeEmpty();
    }

    [Fact]
    public void AGroupStopTimeout_ListsEachGateStillStoppingWithItsStep_AndOnlyThenTheGatesNotYetStopped()
    {
        var stillStopping = new Dictionary<string, string> { ["rpc"] = "run" };

        var alone = new LifecycleGroupStopTimeoutException("node", TimeSpan.FromSeconds(5), stillStopping, Array.Empty<string>());
        var behind = new LifecycleGroupStopTimeoutException("node", TimeSpan.FromSeconds(5), stillStopping, new[] { "db", "cache" });

        alone.Message.Should().Be("Group 'node': the stop did not finish within 00:00:05; 1 gate(s) still stopping: 'rpc' (waiting for 'run'). Stop the group again to resume.");
        behind.Message.Should().Be("Group 'node': the stop did not finish within 00:00:05; 1 gate(s) still stopping: 'rpc' (waiting for 'run'). Not stopped yet, because a gate that depends on them is still stopping: 'db', 'cache'. Stop the group again to resume.");
        new LifecycleGroupStopTimeoutException("node", TimeSpan.FromSeconds(5), new Dictionary<string, string> { ["rpc"] = "run", ["sync"] = "flush" }, Array.Empty<string>())
            .Message.Should().Contain("2 gate(s) still stopping: 'rpc' (waiting for 'run'), 'sync' (waiting for 'flush').");
        behind.StillStopping.Should().BeSameAs(stillStopping);
        behind.NotYetStopped.Should().Equal("db", "cache");
    }

    [Fact]
    public void ADependencyFault_NamesTheGate_TheMissingDependencyOrTheCycle()
    {
        var missing = new LifecycleDependencyException("node", "rpc", "db");
        var cycle = new LifecycleDependencyException("node", new[] { "a", "b", "a" });
        var empty = new LifecycleDependencyException("node", Array.Empty<string>());

        missing.Message.Should().Be("Group 'node': gate 'rpc' depends on 'db', which is not in the group. Add a gate named 'db' to the group, or remove the dependency.");
        missing.GateName.Should().Be("rpc");
        missing.MissingDependency.Should().Be("db");
        new LifecycleDependencyException("node", null!, "db").GateName.Should().BeEmpty();
        cycle.Message.Should().Be("Group 'node': gates depend on each other in a cycle: a → b → a (each depends on the next), so none of them can start first. Remove one of these dependencies.");
        cycle.GateName.Should().Be("a");
        cycle.Cycle.Should().Equal("a", "b", "a");
        empty.GateName.Should().BeEmpty();
    }

    private static Type TypeNamed(string name) => typeof(TaskTracker).Assembly.GetExportedTypes().Single(t => t.Name == name);

    private static void ShouldHaveEmptyProperties(Exception exception)
    {
        var own = exception.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.DeclaringType != typeof(Exception) && p.DeclaringType!.Assembly == typeof(TaskTracker).Assembly);
        foreach (var property in own)
        {
            var value = property.GetValue(exception);
            switch (value)
            {
                case string text:
                    text.Should().BeEmpty($"{property.Name} of a {exception.GetType().Name} made without one is empty");
                    break;
                case System.Collections.IEnumerable items:
                    items.Cast<object>().Should().BeEmpty($"{property.Name} of a {exception.GetType().Name} made without one is empty");
                    break;
                case null:
                    new NullabilityInfoContext().Create(property).ReadState.Should().Be(NullabilityState.Nullable, $"{property.Name} is never null unless it is declared nullable");
                    break;
                default:
                    value.Should().Be(Activator.CreateInstance(value.GetType()), $"{property.Name} of a {exception.GetType().Name} made without one is its default");
                    break;
            }
        }
    }
}
