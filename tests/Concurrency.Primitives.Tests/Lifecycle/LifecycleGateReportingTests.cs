using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>What the gate and its teardown report, and under which names: logs, metrics and the timeout's fields.</summary>
public sealed class LifecycleGateReportingTests
{
    [Fact]
    public async Task AStopThatCompletesTheTeardownAndThrowsTheRunsFault_IsNotReportedAsAFailedStop()
    {
        var name = "reporting-" + Guid.NewGuid().ToString("N");
        using var faults = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.faults");
        var logger = new RecordingLogger();
        var faulted = Bounded.NewGate();
        var gate = new LifecycleGate(
            run: _ => Task.FromException(new IOException("replication broke")),
            options: new LifecycleGateOptions { Name = name, Logger = logger });
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        await gate.StartAsync().OrHang();
        await faulted.Task.OrHang();

        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<IOException>().OrHang();

        gate.State.Should().Be(LifecycleState.Stopped, "the teardown completed");
        logger.Entries.Should().NotContain(e => e.EventId == 2004, "the stop did not fail: it reports the run's fault, logged when it happened");
        faults.GetMeasurementSnapshot().Where(m => (string?)m.Tags["gate.name"] == name).Select(m => (string?)m.Tags["gate.phase"])
            .Should().NotContain("stop");
    }

    [Fact]
    public async Task EachTransition_IsCountedUnderTheStateItEnters()
    {
        var name = "transitions-" + Guid.NewGuid().ToString("N");
        using var transitions = new MetricCollector<long>(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.gate.transitions");
        var gate = new LifecycleGate(options: new LifecycleGateOptions { Name = name });
        var stoppedRaised = Bounded.NewGate();
        gate.StateChanged += (_, change) =>
        {
            if (change.Current == LifecycleState.Stopped)
            {
                stoppedRaised.TrySetResult(); // raised after the transition was counted
            }
        };

        await gate.StartAsync().OrHang();
        await gate.StopAsync().OrHang();
        await stoppedRaised.Task.OrHang();

        transitions.GetMeasurementSnapshot().Where(m => (string?)m.Tags["gate.name"] == name).Select(m => (string?)m.Tags["gate.state"])
            .Should().Equal("Starting", "Running", "Stopping", "Stopped");
    }

    [Fact]
    public async Task AnAsyncResourceOwnedByTheStart_IsReleasedUnderItsGivenName()
    {
        var logger = new RecordingLogger();
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(new FailingAsyncResource(), "replication client")),
            options: new LifecycleGateOptions { Logger = logger });
        await gate.StartAsync().OrHang();

        await gate.Awaiting(g => g.StopAsync()).Should().ThrowAsync<IOException>().OrHang();

        logger.Entries.Should().ContainSingle(e => e.EventId == 2006).Which["Step"].Should().Be("replication client");
    }

    [Fact]
    public async Task ATimedOutTeardownStep_SaysWhichStepAndThatNoRunWasAbandoned()
    {
        var clock = new ManualTimeProvider();
        var bound = TimeSpan.FromSeconds(2);
        var teardown = new OrderedTeardown(new OrderedTeardownOptions { ShutdownTimeout = bound, TimeProvider = clock });
        teardown.Add(_ => Bounded.NewGate().Task, "flush");

        var execution = teardown.ExecuteAsync();
        await clock.WhenTimersArmed(2).OrHang(); // the step's deadline and the wait for it
        clock.Advance(bound);

        var timeout = (await execution.Awaiting(e => e.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        (timeout.Step, timeout.Timeout, timeout.RunAbandoned).Should().Be(("flush", bound, false));
    }

    private sealed class FailingAsyncResource : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => ValueTask.FromException(new IOException("close failed"));
    }
}
