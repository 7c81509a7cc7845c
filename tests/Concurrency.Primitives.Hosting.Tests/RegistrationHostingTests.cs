using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// What a registration is: a primitive is its kind, its type and its key. Registering one again is harmless; registering
/// it again with another handler, consumer or name is refused at the call, leaving the collection as it was; two
/// registrations that differ get two instances and two health checks, and a host that starts.
/// </summary>
public sealed class RegistrationHostingTests
{
    [Fact]
    public async Task AnUnkeyedTracker_AndOneKeyedWithTheDefaultName_AreTwoTrackers_BothClosedAtTheStop()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddTaskTracker();
        builder.Services.AddTaskTracker("TaskTracker");
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        var unkeyed = host.Services.GetRequiredService<TaskTracker>();
        var keyed = host.Services.GetRequiredKeyedService<TaskTracker>("TaskTracker");
        keyed.Should().NotBeSameAs(unkeyed);
        await host.StopAsync().OrHang();

        unkeyed.IsClosing.Should().BeTrue();
        keyed.IsClosing.Should().BeTrue();
    }

    [Fact]
    public async Task TwoUnkeyedBatchersAndPumpsOfDifferentTypes_GetAHealthCheckEach_AndAddingTheChecksTwiceAddsThemOnce()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddBatcher<int, int, IntHandler>();
        builder.Services.AddBatcher<string, int, StringHandler>();
        builder.Services.AddPeerEventPump<string, string, StringConsumer>();
        builder.Services.AddPeerEventPump<int, int, IntConsumer>();
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        host.Services.GetRequiredService<Batcher<int, int>>();
        host.Services.GetRequiredService<Batcher<string, int>>();
        host.Services.GetRequiredService<PeerEventPump<string, string>>();
        host.Services.GetRequiredService<PeerEventPump<int, int>>();

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync().OrHang();

        report.Entries.Keys.Should().BeEquivalentTo(
            "batcher:Batcher<Int32, Int32>",
            "batcher:Batcher<String, Int32>",
            "pump:PeerEventPump<String, String>",
            "pump:PeerEventPump<Int32, Int32>");
        report.Status.Should().Be(HealthStatus.Healthy);
        await host.StopAsync().OrHang();
    }

    [Fact]
    public void OneServiceTypeUnderASecondName_IsRefused_AndTheSameRegistrationAgainIsHarmless()
    {
        var services = new ServiceCollection();
        services.AddLifecycleService<ScriptedService<A>>("a");
        services.AddLifecycleService<ScriptedService<A>>("a");
        var before = services.Count;

        services.Invoking(s => s.AddLifecycleService<ScriptedService<A>>("b"))
            .Should().Throw<InvalidOperationException>().WithMessage("*ScriptedService<A>* already hosted as lifecycle service 'a'*");
        services.Count.Should().Be(before, "a refused registration leaves the collection as it was");
    }

    [Fact]
    public void TwoServicesUnderOneName_AreRefused()
    {
        var services = new ServiceCollection();
        services.AddLifecycleService<ScriptedService<A>>("poller");

        services.Invoking(s => s.AddLifecycleService<ScriptedService<B>>("poller"))
            .Should().Throw<InvalidOperationException>().WithMessage("A lifecycle service named 'poller' is already registered*");
    }

    [Fact]
    public void TheSameBatcherWithAnotherHandler_OrTheSamePumpWithAnotherConsumer_IsRefused()
    {
        var services = new ServiceCollection();
        services.AddBatcher<int, int, IntHandler>("loader");
        services.AddPeerEventPump<int, int, IntConsumer>("peers");
        var before = services.Count;

        services.Invoking(s => s.AddBatcher<int, int, OtherIntHandler>("loader"))
            .Should().Throw<InvalidOperationException>().WithMessage("Batcher<Int32, Int32> 'loader' (IntHandler) is already registered; it cannot also be registered with OtherIntHandler*");
        services.Invoking(s => s.AddPeerEventPump<int, int, OtherIntConsumer>("peers"))
            .Should().Throw<InvalidOperationException>().WithMessage("PeerEventPump<Int32, Int32> 'peers' (IntConsumer) is already registered*");
        services.Count.Should().Be(before);
        services.AddBatcher<int, int, OtherIntHandler>("other loader"); // another name: another batcher
    }

    [Fact]
    public void TheSameBatcherWithAnotherHandlerScope_IsRefused_AndWithTheSameOne_IsHarmless()
    {
        var services = new ServiceCollection();
        services.AddBatcher<int, int, IntHandler>("loader", scope: BatchHandlerScope.Root);
        var before = services.Count;

        services.Invoking(s => s.AddBatcher<int, int, IntHandler>("loader")) // PerDispatch by default
            .Should().Throw<InvalidOperationException>().WithMessage("Batcher<Int32, Int32> 'loader' (IntHandler) is already registered with scope Root; it cannot also be registered with scope PerDispatch*");
        services.Count.Should().Be(before, "a refused registration leaves the collection as it was");
        services.AddBatcher<int, int, IntHandler>("loader", scope: BatchHandlerScope.Root);
        services.Count(d => d.ServiceType == typeof(Batcher<int, int>)).Should().Be(1, "registering it again is harmless: one batcher");
    }

    [Fact]
    public async Task ADegradedQueueShareOutsideZeroToOne_FailsTheHostsStart_NamingTheProperty()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddBatcher<int, int, IntHandler>("loader");
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        builder.Services.Configure<ConcurrencyPrimitivesHealthCheckOptions>(o => o.DegradedQueueShare = 1.5);
        using var host = builder.Build();

        (await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<OptionsValidationException>())
            .WithMessage("*DegradedQueueShare must be between 0 and 1*");
    }

    [Fact]
    public async Task TwoContainersBuiltFromOneCollection_EachCloseTheirOwnPrimitives()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddTaskTracker("jobs");
        services.AddSingleton<IHostApplicationLifetime, NoLifetime>();
        await using var first = services.BuildServiceProvider();
        await using var second = services.BuildServiceProvider();
        var firstJobs = first.GetRequiredKeyedService<TaskTracker>("jobs");
        var secondJobs = second.GetRequiredKeyedService<TaskTracker>("jobs");
        var firstShutdown = first.GetServices<IHostedService>().OfType<IHostedLifecycleService>().Single();

        await firstShutdown.StoppedAsync(CancellationToken.None).OrHang();

        firstJobs.IsClosing.Should().BeTrue();
        secondJobs.IsClosing.Should().BeFalse("the other container's tracker is not this host's to close");
    }

    internal sealed class IntHandler : IBatchHandler<int, int>
    {
        public Task DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    internal sealed class OtherIntHandler : IBatchHandler<int, int>
    {
        public Task DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    internal sealed class StringHandler : IBatchHandler<string, int>
    {
        public Task DispatchAsync(Batch<string, int> batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    internal sealed class StringConsumer : IPeerEventConsumer<string, string>
    {
        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
    }

    internal sealed class IntConsumer : IPeerEventConsumer<int, int>
    {
        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(int peer, int message, CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => default;
    }

    internal sealed class OtherIntConsumer : IPeerEventConsumer<int, int>
    {
        public ValueTask OnAddedAsync(int peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(int peer, int message, CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(int peer, CancellationToken cancellationToken) => default;
    }

    private sealed class NoLifetime : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }
}
