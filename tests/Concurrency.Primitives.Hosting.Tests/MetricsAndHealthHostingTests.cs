using System;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>Metrics through the host's <see cref="IMeterFactory"/> (observed with <c>MetricCollector</c>), and the health checks' results for each state.</summary>
public sealed class MetricsAndHealthHostingTests
{
    [Fact]
    public async Task Metrics_GoThroughTheHostsMeterFactory_AndTwoHostsKeepThemApart()
    {
        using var first = NewTrackerHost();
        using var second = NewTrackerHost();
        using var started = new MetricCollector<long>(first.Services.GetRequiredService<IMeterFactory>(), ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.tracker.started");
        using var outstanding = new MetricCollector<long>(first.Services.GetRequiredService<IMeterFactory>(), ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.tracker.outstanding");
        using var otherHost = new MetricCollector<long>(second.Services.GetRequiredService<IMeterFactory>(), ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.tracker.started");

        var jobs = first.Services.GetRequiredKeyedService<TaskTracker>("jobs");
        await jobs.Go(_ => Task.CompletedTask, "one");
        await jobs.Go(_ => Task.CompletedTask, "two");
        await jobs.CloseAsync().OrHang();

        var measurements = started.GetMeasurementSnapshot();
        measurements.Should().HaveCount(2);
        measurements.Should().OnlyContain(m => m.Value == 1 && m.ContainsTags("tracker.name") && (string?)m.Tags["tracker.name"] == "jobs");
        outstanding.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(0, "every registration was released");
        otherHost.GetMeasurementSnapshot().Should().BeEmpty("the other host's tracker did nothing");
    }

    [Fact]
    public async Task ALifecycleServicesHealth_FollowsItsState_NotStartedStartingRunningStoppingStopped()
    {
        var startEntered = Bounded.NewGate();
        var startMayFinish = Bounded.NewGate();
        var flushEntered = Bounded.NewGate();
        var flushMayFinish = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = async (context, _) =>
            {
                context.OnStop(
                    async _ =>
                    {
                        flushEntered.SetResult();
                        await flushMayFinish.Task;
                    },
                    "flush");
                startEntered.SetResult();
                await startMayFinish.Task;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller");
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives(tags: new[] { "primitives" });
        using var host = builder.Build();

        (await host.HealthOf("lifecycle:poller")).Status.Should().Be(HealthStatus.Degraded);
        var start = host.StartAsync();
        await startEntered.Task.OrHang();
        var starting = await host.HealthOf("lifecycle:poller");
        starting.Status.Should().Be(HealthStatus.Degraded);
        starting.Description.Should().Contain("starting");
        starting.Tags.Should().Contain("primitives");

        startMayFinish.SetResult();
        await start.OrHang();
        (await host.HealthOf("lifecycle:poller")).Status.Should().Be(HealthStatus.Healthy);

        var stop = host.StopAsync();
        await flushEntered.Task.OrHang();
        var stopping = await host.HealthOf("lifecycle:poller");
        stopping.Status.Should().Be(HealthStatus.Degraded);
        stopping.Data["waitingFor"].Should().Be("flush");

        flushMayFinish.SetResult();
        await stop.OrHang();
        (await host.HealthOf("lifecycle:poller")).Status.Should().Be(HealthStatus.Unhealthy);
    }

    [Fact]
    public async Task ALifecycleServiceWhoseStartFailed_IsUnhealthy_WithTheException()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A> { Start = (_, _) => throw new InvalidOperationException("no credentials") });
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller");
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives(failureStatus: HealthStatus.Degraded);
        using var host = builder.Build();

        await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>();

        var health = await host.HealthOf("lifecycle:poller");
        health.Status.Should().Be(HealthStatus.Degraded, "the registration's failure status applies");
        health.Exception!.Message.Should().Be("no credentials");
        health.Description.Should().Contain("StartFailed");
    }

    [Fact]
    public async Task ABatchersHealth_IsHealthy_DegradedNearCapacity_AndUnhealthyOnceClosed()
    {
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new HeldHandler(entered, release));
        builder.Services.AddBatcher<int, int, HeldHandler>("loader", o =>
        {
            o.MaxBatchSize = 1;
            o.MaxDelay = TimeSpan.Zero;
            o.Capacity = 10;
        });
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var loader = host.Services.GetRequiredKeyedService<Batcher<int, int>>("loader");

        (await host.HealthOf("batcher:loader")).Status.Should().Be(HealthStatus.Healthy);
        var first = loader.SubmitAsync(0).AsTask();
        await entered.Task.OrHang();
        var queued = Enumerable.Range(1, 8).Select(i => loader.SubmitAsync(i).AsTask()).ToList();
        var near = await host.HealthOf("batcher:loader");
        near.Status.Should().Be(HealthStatus.Degraded);
        near.Data["queued"].Should().Be(8);
        near.Data["capacity"].Should().Be(10);

        release.SetResult();
        await Task.WhenAll(queued.Append(first)).OrHang();
        await host.StopAsync().OrHang();
        (await host.HealthOf("batcher:loader")).Status.Should().Be(HealthStatus.Unhealthy);
    }

    [Fact]
    public async Task APumpsHealth_IsHealthy_DegradedNearCapacity_AndUnhealthyWithTheFault_WhenItsConsumerFaultsIt()
    {
        var builder = TestHost.NewBuilder();
        var consumer = new HeldConsumer();
        builder.Services.AddSingleton(consumer);
        builder.Services.AddPeerEventPump<string, string, HeldConsumer>("peers", o =>
        {
            o.Capacity = 4;
            o.FaultPolicy = PeerEventPumpFaultPolicy.FaultPump;
        });
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var pump = host.Services.GetRequiredKeyedService<PeerEventPump<string, string>>("peers");

        (await host.HealthOf("pump:peers")).Status.Should().Be(HealthStatus.Healthy);
        var peer = pump.Connect("p");
        peer.MarkReady();
        await consumer.AddedEntered.Task.OrHang(); // the loop is held in OnAdded
        for (var i = 0; i < 4; i++)
        {
            peer.TryPost($"m{i}").Should().BeTrue();
        }

        (await host.HealthOf("pump:peers")).Status.Should().Be(HealthStatus.Degraded);

        consumer.Release.SetResult(); // then the consumer throws on the first message
        await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        var faulted = await host.HealthOf("pump:peers");
        faulted.Status.Should().Be(HealthStatus.Unhealthy);
        faulted.Exception!.Message.Should().Be("bad message m0");
        await host.StopAsync().OrHang();
    }

    private static IHost NewTrackerHost()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddTaskTracker("jobs");
        return builder.Build();
    }

    private sealed class HeldHandler(TaskCompletionSource entered, TaskCompletionSource release) : IBatchHandler<int, int>
    {
        public async Task DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken)
        {
            if (batch[0] == 0)
            {
                entered.SetResult();
                await release.Task;
            }

            batch.TrySetResult(0, batch[0]);
        }
    }

    private sealed class HeldConsumer : IPeerEventConsumer<string, string>
    {
        public TaskCompletionSource AddedEntered { get; } = Bounded.NewGate();

        public TaskCompletionSource Release { get; } = Bounded.NewGate();

        public async ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken)
        {
            AddedEntered.SetResult();
            await Release.Task;
        }

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) =>
            throw new InvalidOperationException($"bad message {message}");

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
    }
}
