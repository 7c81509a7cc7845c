using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// The shapes a user writes compile, and do what they say: Task- and ValueTask-returning delegates as lambdas, async
/// lambdas and method groups; resources that are both IDisposable and IAsyncDisposable; a batch's items as a list.
/// </summary>
public sealed class ApiShapeTests
{
    [Fact]
    public async Task Batcher_TakesEveryDispatchShape_OfBothForms()
    {
        var batchers = new List<Batcher<int, int>>
        {
            new(async (batch, _) => { await Task.Yield(); EchoAll(batch); }),                 // async lambda, per-item form
            new((Batch<int, int> batch, CancellationToken _) => { EchoAll(batch); return default; }), // ValueTask lambda
            new((Batch<int, int> batch, CancellationToken _) => { EchoAll(batch); return Task.CompletedTask; }), // Task lambda
            new(EchoValueTaskAsync),                                                          // ValueTask method group
            new(EchoTaskAsync),                                                               // Task method group (was CS0407)
            new(async (items, _) => { await Task.Yield(); return items.ToArray(); }),         // async lambda, list form
            new((items, _) => new ValueTask<IReadOnlyList<int>>(items.ToArray())),            // ValueTask list lambda
            new((IReadOnlyList<int> items, CancellationToken _) => Task.FromResult<IReadOnlyList<int>>(items.ToArray())), // Task list lambda (was CS0029)
            new(EchoListTaskAsync),                                                           // Task list method group
        };

        foreach (var batcher in batchers)
        {
            (await batcher.SubmitAsync(7).AsTask().OrHang()).Should().Be(7);
            await batcher.DisposeAsync();
        }
    }

    [Fact]
    public async Task OrderedTeardown_TakesAResourceThatIsBothDisposables_AndDisposesItAsynchronously()
    {
        var both = new BothDisposables();
        var syncOnly = new SyncOnly();
        var stream = new MemoryStream();
        var teardown = new OrderedTeardown();

        teardown.Add(both);     // CS0121 before: IDisposable and IAsyncDisposable overloads both applied
        teardown.Add(stream);   // the most common such resource
        teardown.Add(syncOnly); // IDisposable only: the extension method
        await teardown.ExecuteAsync().OrHang();

        both.DisposedAsynchronously.Should().BeTrue();
        both.DisposedSynchronously.Should().BeFalse();
        syncOnly.Disposed.Should().BeTrue();
        stream.CanRead.Should().BeFalse();
    }

    [Fact]
    public async Task LifecycleContext_OwnsEveryDisposableShape_AndTheGateTakesTaskDelegatesOfEveryShape()
    {
        var both = new BothDisposables();
        var syncOnly = new SyncOnly();
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                context.Own(both).Should().BeSameAs(both, "Own returns the resource, typed");
                context.Own(syncOnly);
                context.Own(new MemoryStream());
                context.OnStop(StopStepAsync, "step"); // a Task method group
                return Task.CompletedTask;
            },
            run: RunAsync,                              // a Task method group
            stop: async _ => await Task.Yield());       // an async lambda

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();

        both.DisposedAsynchronously.Should().BeTrue();
        syncOnly.Disposed.Should().BeTrue();
    }

    [Fact]
    public void OwnAndAdd_AreConstrainedToDisposables_SoANonDisposableDoesNotCompile()
    {
        // ctx.Own("x") compiled before and threw at run time. Now the instance method takes IAsyncDisposable and the
        // extension IDisposable; a type that is neither satisfies no constraint.
        ConstraintsOf(typeof(LifecycleContext), "Own").Should().Equal(typeof(IAsyncDisposable));
        ConstraintsOf(typeof(OrderedTeardown), "Add").Should().Equal(typeof(IAsyncDisposable));
        ConstraintsOf(typeof(OrderedTeardownExtensions), "Own").Should().Equal(typeof(IDisposable));
        ConstraintsOf(typeof(OrderedTeardownExtensions), "Add").Should().Equal(typeof(IDisposable));
    }

    [Fact]
    public void TheGateTakesBehaviourInItsConstructor_AndSettingsInItsOptions_WhichHoldNoDelegate()
    {
        typeof(LifecycleGateOptions).GetProperties().Should().NotContain(p => typeof(Delegate).IsAssignableFrom(p.PropertyType));
        typeof(OrderedTeardown).GetConstructors().Should().ContainSingle().Which.GetParameters().Select(p => p.ParameterType).Should().Equal(typeof(OrderedTeardownOptions));
    }

    [Fact]
    public void EveryPrimitive_HasOneShutdownContract()
    {
        foreach (var type in new[] { typeof(TaskTracker), typeof(LifecycleGate), typeof(LifecycleGroup), typeof(Batcher<int, int>), typeof(PeerEventPump<string, string>) })
        {
            type.Should().Implement<IAsyncDisposable>().And.Implement<IDisposable>();
            type.GetProperty("Name")!.PropertyType.Should().Be<string>(type.Name);
            type.GetProperty("Completion")!.PropertyType.Should().Be<Task>(type.Name);
            type.GetMethod("CloseAsync", new[] { typeof(CancellationToken) }).Should().NotBeNull(type.Name);
            type.GetMethod("CloseAsync", new[] { typeof(TimeSpan), typeof(CancellationToken) }).Should().NotBeNull(type.Name);
        }
    }

    [Fact]
    public void EveryPublicException_CanBeBuiltWithItsData_SoAConsumersOwnTestsCanThrowARealisticOne()
    {
        var fault = new InvalidOperationException("row 7 is locked");
        var dispatch = new BatchDispatchException(fault, index: 2, batchSize: 5);
        dispatch.InnerException.Should().BeSameAs(fault);
        (dispatch.Index, dispatch.BatchSize).Should().Be((2, 5));

        var notCompleted = new BatchItemNotCompletedException(index: 3, batchSize: 4, resultCount: 3);
        (notCompleted.Index, notCompleted.BatchSize, notCompleted.ResultCount).Should().Be((3, 4, 3));

        var timeout = new BatchTimeoutException(TimeSpan.FromSeconds(2), wasDispatched: true, dispatchTimedOut: true);
        (timeout.Timeout, timeout.WasDispatched, timeout.DispatchTimedOut).Should().Be((TimeSpan.FromSeconds(2), true, true));

        new Exception[] { dispatch, notCompleted, timeout }.Should().AllBeAssignableTo<BatchException>("one catch takes every batch failure");

        var closed = new ClosedException("loader", "'loader' is closed.");
        closed.Name.Should().Be("loader");
        closed.Should().BeAssignableTo<InvalidOperationException>();

        var stop = new LifecycleStopTimeoutException("poller", "run", TimeSpan.FromSeconds(3), runAbandoned: true);
        (stop.Name, stop.Step, stop.Timeout, stop.RunAbandoned).Should().Be(("poller", "run", TimeSpan.FromSeconds(3), true));
        stop.Message.Should().Contain("poller").And.Contain("run");
        stop.Should().BeAssignableTo<ShutdownTimeoutException>();

        var straggler = new TrackedOperationInfo(7, null, "flush", TrackedOperationKind.Work, false, TimeSpan.FromSeconds(40), null);
        var tracker = new TaskTrackerTimeoutException("jobs", TimeSpan.FromSeconds(30), new[] { straggler }, unnamedCount: 1);
        (tracker.Name, tracker.Timeout, tracker.UnnamedCount).Should().Be(("jobs", TimeSpan.FromSeconds(30), 1));
        tracker.Outstanding.Should().ContainSingle().Which.Name.Should().Be("flush");
        tracker.Message.Should().Contain("jobs").And.Contain("flush");
        tracker.Should().BeAssignableTo<ShutdownTimeoutException>();

        var group = new LifecycleGroupStopTimeoutException("node", TimeSpan.FromSeconds(5), new Dictionary<string, string> { ["rpc"] = "stop" }, new[] { "db" });
        (group.Name, group.Timeout, group.StillStopping["rpc"], group.NotYetStopped.Single()).Should().Be(("node", TimeSpan.FromSeconds(5), "stop", "db"));
        group.Message.Should().Contain("'rpc' (waiting for 'stop')").And.Contain("'db'");
        group.Should().BeAssignableTo<ShutdownTimeoutException>();

        var cycle = new LifecycleDependencyException("node", new[] { "a", "b", "a" });
        (cycle.GateName, cycle.MissingDependency).Should().Be(("a", null));
        cycle.Message.Should().Contain("a → b → a");
        var missing = new LifecycleDependencyException("node", "sync", "db");
        (missing.GateName, missing.MissingDependency, missing.Cycle.Count).Should().Be(("sync", "db", 0));
        missing.Should().BeAssignableTo<InvalidOperationException>();

        var shutdown = new ShutdownTimeoutException("pump", TimeSpan.FromSeconds(1), "'pump' did not close within 1 s.");
        (shutdown.Name, shutdown.Timeout).Should().Be(("pump", TimeSpan.FromSeconds(1)));
        shutdown.Should().BeAssignableTo<TimeoutException>();
    }

    private static Type[] ConstraintsOf(Type type, string method) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static)
            .Single(m => m.Name == method && m.IsGenericMethodDefinition)
            .GetGenericArguments()[0]
            .GetGenericParameterConstraints();

    private static void EchoAll(Batch<int, int> batch)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            batch.TrySetResult(i, batch[i]);
        }
    }

    private static ValueTask EchoValueTaskAsync(Batch<int, int> batch, CancellationToken cancellationToken)
    {
        EchoAll(batch);
        return default;
    }

    private static Task EchoTaskAsync(Batch<int, int> batch, CancellationToken cancellationToken)
    {
        EchoAll(batch);
        return Task.CompletedTask;
    }

    private static Task<IReadOnlyList<int>> EchoListTaskAsync(IReadOnlyList<int> items, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<int>>(items.ToArray());

    private static Task StopStepAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task RunAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private sealed class BothDisposables : IAsyncDisposable, IDisposable
    {
        public bool DisposedAsynchronously { get; private set; }

        public bool DisposedSynchronously { get; private set; }

        public ValueTask DisposeAsync()
        {
            DisposedAsynchronously = true;
            return default;
        }

        public void Dispose() => DisposedSynchronously = true;
    }

    private sealed class SyncOnly : IDisposable
    {
        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }
}
