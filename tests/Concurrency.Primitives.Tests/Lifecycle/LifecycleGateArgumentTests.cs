using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>Bad input gets a specific exception at the offending call.</summary>
public sealed class LifecycleGateArgumentTests
{
    [Fact]
    public void NullOptions_ThrowArgumentNull()
    {
        var create = () => new LifecycleGate(null!);

        create.Should().Throw<ArgumentNullException>().WithParameterName("options");
    }

    [Fact]
    public void OptionsWithoutAnyDelegate_AreRejected()
    {
        var create = () => new LifecycleGate(new LifecycleGateOptions());

        create.Should().Throw<ArgumentException>().WithMessage("*at least one of*Start, Run or Stop*");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void NonPositiveStopTimeout_IsRejected(int seconds)
    {
        var create = () => new LifecycleGate(new LifecycleGateOptions { Start = (_, _) => Task.CompletedTask, StopTimeout = TimeSpan.FromSeconds(seconds) });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*StopTimeout must be positive and finite*");
    }

    [Fact]
    public void InfiniteStopTimeout_IsRejected_BecauseAStopMustBeBounded()
    {
        var create = () => new LifecycleGate(new LifecycleGateOptions { Start = (_, _) => Task.CompletedTask, StopTimeout = Timeout.InfiniteTimeSpan });

        create.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public async Task Context_RejectsNullAndNonDisposableResources_AndUseAfterTheStartReturned()
    {
        LifecycleContext? captured = null;
        Exception? nullResource = null;
        Exception? notDisposable = null;
        var gate = new LifecycleGate(new LifecycleGateOptions
        {
            Start = (context, _) =>
            {
                captured = context;
                nullResource = Record.Exception(() => context.Own<object>(null!));
                notDisposable = Record.Exception(() => context.Own(new object()));
                return Task.CompletedTask;
            },
        });

        await gate.StartAsync().OrHang();

        nullResource.Should().BeOfType<ArgumentNullException>();
        notDisposable.Should().BeOfType<ArgumentException>().Which.Message.Should().Contain("OnStop");
        captured!.Invoking(c => c.Own(new TrackedResource("late"))).Should().Throw<InvalidOperationException>().WithMessage("*only while it runs*");
        captured!.Invoking(c => c.OnStop("late", _ => default)).Should().Throw<InvalidOperationException>();
    }

    [Fact]
    public async Task OrderedTeardown_RejectsBadArguments_AndLateRegistrations()
    {
        var teardown = new OrderedTeardown();
        using var source = new CancellationTokenSource();

        teardown.Invoking(t => t.SetRun(null!, source)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add((IAsyncDisposable)null!)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => t.Add("step", null!)).Should().Throw<ArgumentNullException>();
        teardown.Invoking(t => { _ = t.ExecuteAsync(TimeSpan.Zero); }).Should().Throw<ArgumentOutOfRangeException>();
        teardown.Invoking(t => { _ = t.ExecuteAsync(Timeout.InfiniteTimeSpan); }).Should().Throw<ArgumentOutOfRangeException>();
        teardown.SetRun(Task.CompletedTask, source);
        teardown.Invoking(t => t.SetRun(Task.CompletedTask, source)).Should().Throw<InvalidOperationException>().WithMessage("*already set*");

        await teardown.ExecuteAsync(TimeSpan.FromSeconds(1)).OrHang();

        teardown.Invoking(t => t.Add(new TrackedResource("late"))).Should().Throw<InvalidOperationException>().WithMessage("*has begun*");
    }
}
