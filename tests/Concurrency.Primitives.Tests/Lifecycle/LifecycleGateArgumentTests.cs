using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>Bad input gets a specific exception at the offending call.</summary>
public sealed class LifecycleGateArgumentTests
{
    [Fact]
    public async Task AGateWithNothingToStartRunOrStop_IsAPlainStateMachine()
    {
        var gate = new LifecycleGate();

        (await gate.StartAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Running);
        (await gate.StopAsync().OrHang()).Should().BeTrue();
        gate.State.Should().Be(LifecycleState.Stopped);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(-1000)]
    public void ANegativeShutdownTimeout_IsRejected_NamingTheOption(int milliseconds)
    {
        var create = () => new LifecycleGate(start: (_, _) => Task.CompletedTask, options: new LifecycleGateOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(milliseconds - 1) });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*LifecycleGateOptions.ShutdownTimeout*InfiniteTimeSpan*");
    }

    [Fact]
    public async Task AnInfiniteShutdownTimeout_IsAccepted_AsNoBound()
    {
        var gate = new LifecycleGate(run: token => Task.Delay(Timeout.Infinite, token), options: new LifecycleGateOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan });
        await gate.StartAsync().OrHang();

        (await gate.StopAsync().OrHang()).Should().BeTrue();
    }

    [Fact]
    public async Task AClosedOrDisposedGate_RefusesAStart_NamingItselfAndWhatToDo()
    {
        var closed = new LifecycleGate();
        var disposed = new LifecycleGate(options: new LifecycleGateOptions { Name = "db" });
        await closed.CloseAsync().OrHang();
        await disposed.DisposeAsync().OrHang();

        (await closed.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ClosedException>())
            .WithMessage("Gate 'LifecycleGate' has been closed; it cannot start again. Create a new gate.")
            .Which.Name.Should().Be("LifecycleGate");
        (await disposed.Awaiting(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>())
            .WithMessage("Gate 'db' has been disposed; it cannot start again.*");
    }

    [Fact]
    public async Task Context_RejectsNullResourcesAndSteps_AndUseAfterTheStartReturned()
    {
        // A type that is not disposable at all no longer compiles (Own takes IAsyncDisposable, or IDisposable through
        // its extension): see the shape tests in ApiShapeTests.
        LifecycleContext? captured = null;
        Exception? nullResource = null;
        Exception? nullStep = null;
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                captured = context;
                nullResource = Record.Exception(() => context.Own<TrackedResource>(null!));
                nullStep = Record.Exception(() => context.OnStop(null!, "step"));
                return Task.CompletedTask;
            });

        await gate.StartAsync().OrHang();

        nullResource.Should().BeOfType<ArgumentNullException>();
        nullStep.Should().BeOfType<ArgumentNullException>();
        captured!.Invoking(c => c.Own(new TrackedResource("late"))).Should().Throw<InvalidOperationException>().WithMessage("*only while it runs*");
        captured!.Invoking(c => c.OnStop(_ => Task.CompletedTask, "late")).Should().Throw<InvalidOperationException>();

        // Bad input is named before the context's state is: a null is a null, whenever it is passed.
        captured!.Invoking(c => c.OnStop(null!, "late")).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("step");
        captured!.Invoking(c => c.OnStop(_ => Task.CompletedTask, null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("name");
        captured!.Invoking(c => c.Own<TrackedResource>(null!)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("resource");
    }

    [Fact]
    public async Task OrderedTeardown_RejectsBadArguments_AndLateRegistrations()
    {
        var teardown = new OrderedTeardown();
        using var source = new CancellationTokenSource();

        teardown.Invoking(t => t.SetRun(null!, source)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add((IAsyncDisposable)null!)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add((IDisposable)null!)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add(null!, "step")).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add(_ => Task.CompletedTask, null!)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => { _ = t.ExecuteAsync(TimeSpan.FromMilliseconds(-2)); }).Should().Throw<ArgumentOutOfRangeException>();
        teardown.SetRun(Task.CompletedTask, source);
        teardown.Invoking(t => t.SetRun(Task.CompletedTask, source)).Should().Throw<InvalidOperationException>().WithMessage("*already set*");

        await teardown.ExecuteAsync(TimeSpan.FromSeconds(1)).OrHang();

        teardown.Invoking(t => t.Add(new TrackedResource("late"))).Should().Throw<ClosedException>().WithMessage("*has begun*");
        await teardown.DisposeAsync();
        teardown.Invoking(t => t.Add(new TrackedResource("later"))).Should().Throw<ObjectDisposedException>();
    }
}
