using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// OrderedTeardown on its own (the gate's tests reach it only through a gate): its argument checks, names, logs, the
/// token a timed-out step is told through, and what a finished teardown does when asked again.
/// </summary>
public sealed class OrderedTeardownContractTests
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(5);

    [Fact]
    public void ANegativeShutdownTimeout_IsRefused_NamingTheOption()
    {
        var create = () => new OrderedTeardown(new OrderedTeardownOptions { ShutdownTimeout = TimeSpan.FromSeconds(-2) });

        create.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("OrderedTeardownOptions.ShutdownTimeout");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void WithoutAName_TheTeardownIsCalledOrderedTeardown(string? name)
    {
        new OrderedTeardown(new OrderedTeardownOptions { Name = name }).Name.Should().Be("OrderedTeardown");
        new OrderedTeardown().Name.Should().Be("OrderedTeardown");
        new OrderedTeardown(new OrderedTeardownOptions { Name = "node" }).Name.Should().Be("node");
    }

    [Fact]
    public void SetRun_WithoutACancellationSource_IsRefused_AndTheRunIsNotTaken()
    {
        var teardown = new OrderedTeardown();
        using var cancellation = new CancellationTokenSource();

        var setRun = () => teardown.SetRun(Task.CompletedTask, null!);

        setRun.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("cancellation");
        teardown.Invoking(t => t.SetRun(Task.CompletedTask, cancellation)).Should().NotThrow("the refused call left no run behind");
    }

    [Fact]
    public async Task SetRun_AfterTheTeardownBegan_IsRefused_AndAfterDisposal_SaysSo()
    {
        var begun = new OrderedTeardown(new OrderedTeardownOptions { Name = "node" });
        await begun.ExecuteAsync().OrHang();
        using var cancellation = new CancellationTokenSource();

        begun.Invoking(t => t.SetRun(Task.CompletedTask, cancellation)).Should().Throw<ClosedException>();

        var disposed = new OrderedTeardown(new OrderedTeardownOptions { Name = "node" });
        await disposed.DisposeAsync().OrHang();
        disposed.Invoking(t => t.SetRun(Task.CompletedTask, cancellation)).Should().Throw<ObjectDisposedException>()
            .WithMessage("*Teardown 'node' has been disposed*Release the resource yourself*");
    }

    [Fact]
    public async Task ACompletedTeardown_AskedAgain_CompletesAtOnce_WithoutRethrowingTheRunsFault()
    {
        var teardown = new OrderedTeardown();
        using var cancellation = new CancellationTokenSource();
        teardown.SetRun(Task.FromException(new InvalidOperationException("the run's own fault")), cancellation);

        await teardown.Awaiting(t => t.ExecuteAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();
        teardown.IsCompleted.Should().BeTrue();

        await teardown.ExecuteAsync().OrHang(); // reported once, by the execution that completed the teardown
        await teardown.ExecuteAsync(TimeSpan.Zero).OrHang();
    }

    [Fact]
    public async Task AnAsyncResource_IsReportedUnderItsGivenName_OrItsTypeName()
    {
        var logger = new RecordingLogger();
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { Logger = logger });
        teardown.Add(new FailingAsyncResource());
        teardown.Add(new FailingAsyncResource(), "database");

        await ShouldReportTheFailedStepsAsync(teardown, logger, "database", nameof(FailingAsyncResource));
    }

    [Fact]
    public async Task ADisposableResource_IsReportedUnderItsGivenName_OrItsTypeName()
    {
        var logger = new RecordingLogger();
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { Logger = logger });
        teardown.Add(new FailingResource());
        teardown.Add(new FailingResource(), "socket");

        await ShouldReportTheFailedStepsAsync(teardown, logger, "socket", nameof(FailingResource));
    }

    [Fact]
    public void TheDisposableOverloads_RefuseNulls_NamingTheArgument()
    {
        var add = () => OrderedTeardownExtensions.Add(null!, new FailingResource());
        add.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("teardown");

        var own = () => OrderedTeardownExtensions.Own(null!, new FailingResource());
        own.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("context");
    }

    [Fact]
    public async Task Own_RefusesANullResource_AndReportsAnOwnedResourceUnderItsName()
    {
        var logger = new RecordingLogger();
        Exception? refused = null;
        var gate = new LifecycleGate(
            start: (context, _) =>
            {
                refused = Record.Exception(() => context.Own<FailingResource>(null!, "never"));
                context.Own(new FailingResource(), "socket");
                context.Own(new FailingResource());
                return Task.CompletedTask;
            },
            options: new LifecycleGateOptions { Logger = logger });
        await gate.StartAsync().OrHang();

        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();
        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        refused.Should().BeOfType<ArgumentNullException>().Which.ParamName.Should().Be("resource");
        logger.Entries.Should().Contain(e => e.EventId == 2006 && Equals(e["Step"], nameof(FailingResource)));
        logger.Entries.Should().Contain(e => e.EventId == 2006 && Equals(e["Step"], "socket"));
        logger.Entries.Should().NotContain(e => e.EventId == 2006 && Equals(e["Step"], "never"));
    }

    [Fact]
    public async Task AStepReturningNoTask_FailsWithAMessageThatSaysWhatToReturn()
    {
        var teardown = new OrderedTeardown();
#pragma warning disable VSTHRD114 // the user's bug this test is about
        teardown.Add(_ => null!, "forgetful");
#pragma warning restore VSTHRD114

        await teardown.Awaiting(t => t.ExecuteAsync()).Should().ThrowAsync<InvalidOperationException>()
            .WithMessage("A teardown step returned a null Task; return Task.CompletedTask instead.").OrHang();
    }

    [Fact]
    public async Task AFailedStep_IsLoggedByName()
    {
        var logger = new RecordingLogger();
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { Logger = logger });
        teardown.Add(_ => throw new InvalidOperationException("flush failed"), "flush");

        await teardown.Awaiting(t => t.ExecuteAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();

        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2006).Which;
        entry["Step"].Should().Be("flush");
        entry.Exception!.Message.Should().Be("flush failed");
    }

    /// <summary>
    /// Timers of one clock that fall due together fire in no promised order: the teardown's wait may see the step's
    /// timeout before the step's own deadline fires. The step must be told all the same, before the teardown gives up on it.
    /// </summary>
    [Fact]
    public async Task ATimedOutStep_HasItsTokenCancelled_EvenBeforeItsOwnDeadlineFires_AndTheTimeoutIsLogged()
    {
        var clock = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var teardown = WithLateStepDeadline(clock, logger);
        var stepToken = Bounded.NewGate<CancellationToken>();
        teardown.Add(token => { stepToken.TrySetResult(token); return Task.Delay(Timeout.InfiniteTimeSpan, token); }, "flush");

        var execution = teardown.ExecuteAsync();
        var token = await stepToken.Task.OrHang();
        await clock.WhenTimersArmed(2).OrHang();
        clock.Advance(StepTimeout);

        var timeout = (await execution.Awaiting(e => e).Should().ThrowAsync<LifecycleStopTimeoutException>().OrHang()).Which;
        timeout.Step.Should().Be("flush");
        token.IsCancellationRequested.Should().BeTrue("the step's deadline is an hour late, so only the teardown can have told it");
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2005).Which;
        entry["Step"].Should().Be("flush");
        entry["Timeout"].Should().Be(StepTimeout);
    }

    [Fact]
    public async Task ATimedOutStepsThrowingCancellationCallbacks_AreLogged_AndTheTimeoutIsStillReported()
    {
        var clock = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var teardown = WithLateStepDeadline(clock, logger);
        var registered = Bounded.NewGate();
        teardown.Add(
            token =>
            {
                token.Register(() => throw new InvalidOperationException("a callback of the step's"));
                registered.TrySetResult();
                return Task.Delay(Timeout.InfiniteTimeSpan, token);
            },
            "flush");

        var execution = teardown.ExecuteAsync();
        await registered.Task.OrHang();
        await clock.WhenTimersArmed(2).OrHang();
        clock.Advance(StepTimeout);

        await execution.Awaiting(e => e).Should().ThrowAsync<LifecycleStopTimeoutException>().OrHang();
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2006).Which;
        entry["Step"].Should().Be("step cancellation callbacks");
        entry.Exception.Should().BeOfType<AggregateException>().Which.InnerException!.Message.Should().Be("a callback of the step's");
    }

    [Fact]
    public async Task TheRunsThrowingCancellationCallbacks_AreLogged_AndTheTeardownGoesOn()
    {
        var logger = new RecordingLogger();
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { Logger = logger });
        using var cancellation = new CancellationTokenSource();
        var run = Bounded.NewGate();
        cancellation.Token.Register(() => run.TrySetResult());
        cancellation.Token.Register(() => throw new InvalidOperationException("a callback of the run's"));
        teardown.SetRun(run.Task, cancellation);
        var stepped = false;
        teardown.Add(_ => { stepped = true; return Task.CompletedTask; }, "flush");

        await teardown.ExecuteAsync().OrHang();

        stepped.Should().BeTrue();
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 2006).Which;
        entry["Step"].Should().Be("run cancellation callbacks");
        entry.Exception.Should().BeOfType<AggregateException>();
    }

    [Fact]
    public async Task AnAbandonedRun_IsLogged_AndReportedAfterTheSteps()
    {
        var clock = new ManualTimeProvider();
        var logger = new RecordingLogger();
        var teardown = new OrderedTeardown(new OrderedTeardownOptions
        {
            ShutdownTimeout = StepTimeout,
            AbandonRunOnTimeout = true,
            TimeProvider = clock,
            Logger = logger,
        });
        using var cancellation = new CancellationTokenSource();
        teardown.SetRun(Bounded.NewGate().Task, cancellation); // a run that never returns
        var stepped = false;
        teardown.Add(_ => { stepped = true; return Task.CompletedTask; }, "flush");

        var execution = teardown.ExecuteAsync();
        await clock.WhenTimersArmed().OrHang();
        clock.Advance(StepTimeout);

        var timeout = (await execution.Awaiting(e => e).Should().ThrowAsync<LifecycleStopTimeoutException>().OrHang()).Which;
        timeout.RunAbandoned.Should().BeTrue();
        stepped.Should().BeTrue();
        logger.Entries.Should().ContainSingle(e => e.EventId == 2007).Which["Timeout"].Should().Be(StepTimeout);
    }

    /// <summary>Runs the teardown twice (each resource fails its first disposal): the named one is reported first, then the unnamed one by its type.</summary>
    private static async Task ShouldReportTheFailedStepsAsync(OrderedTeardown teardown, RecordingLogger logger, string givenName, string typeName)
    {
        await teardown.Awaiting(t => t.ExecuteAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();
        (await logger.WaitFor(e => e.EventId == 2006).OrHang())["Step"].Should().Be(givenName);

        await teardown.Awaiting(t => t.ExecuteAsync()).Should().ThrowAsync<InvalidOperationException>().OrHang();
        logger.Entries.Should().Contain(e => e.EventId == 2006 && Equals(e["Step"], typeName));
    }

    /// <summary>A teardown whose steps' own deadlines fire an hour late: only the teardown's wait sees the timeout.</summary>
    private static OrderedTeardown WithLateStepDeadline(ManualTimeProvider clock, RecordingLogger logger) => new(new OrderedTeardownOptions
    {
        ShutdownTimeout = StepTimeout,
        TimeProvider = new FirstTimerLate(clock, TimeSpan.FromHours(1)),
        Logger = logger,
    });

    /// <summary>Fails its first disposal, so that a retried teardown moves on to the next step.</summary>
    private sealed class FailingAsyncResource : IAsyncDisposable
    {
        private int _disposals;

        public ValueTask DisposeAsync() =>
            ++_disposals == 1 ? throw new InvalidOperationException("dispose failed") : default;
    }

    /// <summary>Fails its first disposal, so that a retried teardown moves on to the next step.</summary>
    private sealed class FailingResource : IDisposable
    {
        private int _disposals;

        public void Dispose()
        {
            if (++_disposals == 1)
            {
                throw new InvalidOperationException("dispose failed");
            }
        }
    }

    /// <summary>A clock whose first timer falls due <c>lateBy</c> after it should: two timers due together fire in the other order.</summary>
    private sealed class FirstTimerLate : TimeProvider
    {
        private readonly ManualTimeProvider _clock;
        private readonly TimeSpan _lateBy;
        private int _created;

        public FirstTimerLate(ManualTimeProvider clock, TimeSpan lateBy) => (_clock, _lateBy) = (clock, lateBy);

        public override long TimestampFrequency => _clock.TimestampFrequency;

        public override long GetTimestamp() => _clock.GetTimestamp();

        public override DateTimeOffset GetUtcNow() => _clock.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            _clock.CreateTimer(callback, state, Interlocked.Increment(ref _created) == 1 && dueTime != Timeout.InfiniteTimeSpan ? dueTime + _lateBy : dueTime, period);
    }
}
