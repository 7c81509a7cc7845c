using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// The host's stop drains the registered trackers, batchers and pumps, in that order, after the hosted services have
/// stopped and before the container disposes what their work uses; a batcher's handler comes from a scope per dispatch.
/// </summary>
public sealed class ShutdownHostingTests
{
    [Fact]
    public async Task TheHostsStop_DrainsTheTracker_IncludingAChildRegisteredDuringTheClose()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddTaskTracker("jobs");
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var jobs = host.Services.GetRequiredKeyedService<TaskTracker>("jobs");
        var childStarted = Bounded.NewGate();
        var childMayFinish = Bounded.NewGate();
        var childFinished = false;
        await jobs.Go(
            async (operation, token) =>
            {
                await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                operation.Go(
                    async _ =>
                    {
                        childStarted.SetResult();
                        await childMayFinish.Task;
                        childFinished = true;
                    },
                    "flush the last page");
            },
            "crawl");

        var stop = host.StopAsync();
        await childStarted.Task.OrHang(); // registered through its parent after the close began
        stop.IsCompleted.Should().BeFalse("the stop waits for the child");
        jobs.GetOutstanding().Select(o => o.Name).Should().Contain("flush the last page");
        childMayFinish.SetResult();
        await stop.OrHang();

        childFinished.Should().BeTrue();
        jobs.IsCompleted.Should().BeTrue();
        host.Logs(5005).Should().BeEmpty();
        host.Logs(5009).Should().ContainSingle().Which.Message.Should().Contain("'jobs'");
    }

    [Fact]
    public async Task ATrackerThatOutlivesTheHostsShutdownTimeout_LogsEachStragglerByNameAndAge()
    {
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(200)); // the host's budget is what is tested
        builder.Services.AddTaskTracker("jobs");
        var host = builder.Build();
        await host.StartAsync().OrHang();
        var jobs = host.Services.GetRequiredKeyedService<TaskTracker>("jobs");
        var release = Bounded.NewGate();
        await jobs.Go(_ => release.Task, "upload invoice 42"); // ignores its token

        await host.StopAsync().OrHang();

        var straggler = host.Logs(5005).Should().ContainSingle().Subject;
        straggler.Message.Should().Contain("'jobs'").And.Contain("1 registration(s)").And.Contain("'upload invoice 42'").And.MatchRegex(@"running \d+\.\d s");
        release.SetResult();
        host.Dispose();
    }

    [Fact]
    public async Task ATrackerThatOutlivesItsOwnShutdownTimeout_LogsEachStragglerByNameAndAge()
    {
        var time = new ManualTimeProvider();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddTaskTracker("jobs", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var jobs = host.Services.GetRequiredKeyedService<TaskTracker>("jobs");
        var release = Bounded.NewGate();
        await jobs.Go(_ => release.Task, "upload invoice 42"); // ignores its token
        time.Advance(TimeSpan.FromSeconds(3)); // it has been running 3 s when the host stops

        var stop = host.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));
        await stop.OrHang();

        var straggler = host.Logs(5005).Should().ContainSingle().Subject;
        straggler.Message.Should().Contain("'jobs'").And.Contain("its ShutdownTimeout (00:00:05)").And.Contain("'upload invoice 42'").And.Contain("running 8.0 s");
        straggler.Exception.Should().BeOfType<TaskTrackerTimeoutException>();
        release.SetResult();
    }

    [Fact]
    public async Task TheContainersDispose_AfterAStopThatTimedOut_DoesNotWaitASecondShutdownTimeout()
    {
        var time = new ManualTimeProvider();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddTaskTracker("jobs", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        var host = builder.Build();
        var logs = host.LogCollector();
        await host.StartAsync().OrHang();
        var jobs = host.Services.GetRequiredKeyedService<TaskTracker>("jobs");
        var release = Bounded.NewGate();
        await jobs.Go(_ => release.Task, "upload invoice 42"); // ignores its token
        var stop = host.StopAsync();
        await time.WhenTimersArmed().OrHang();
        time.Advance(TimeSpan.FromSeconds(5));
        await stop.OrHang();

        await ((IAsyncDisposable)host).DisposeAsync().AsTask().OrHang(); // without advancing the clock

        logs.Logs(5005).Should().ContainSingle();
        jobs.IsCompleted.Should().BeFalse("the work still runs; the tracker completes when it returns");
        release.SetResult();
        await jobs.Completion.OrHang();
    }

    [Fact]
    public async Task TrackedWorkThatFailed_IsLoggedAtTheHostsStop_AndTheStopCompletes()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddTaskTracker("jobs");
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        await host.Services.GetRequiredKeyedService<TaskTracker>("jobs").Go(_ => throw new InvalidOperationException("the mail server said no"), "send mail");

        await host.StopAsync().OrHang();

        host.Logs(5006).Should().ContainSingle().Which.Exception!.Message.Should().Be("the mail server said no");
    }

    [Fact]
    public async Task TheHostsStop_ClosesTrackersThenBatchersThenPumps_AfterTheLifecycleServices()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        // Registered in the reverse of the closing order, so the order is the stop's, not the registration's.
        builder.Services.AddSingleton(journal);
        builder.Services.AddPeerEventPump<string, string, JournalingConsumer>();
        builder.Services.AddBatcher<int, int, EchoHandler>(configure: o => o.MaxDelay = TimeSpan.Zero);
        builder.Services.AddTaskTracker();
        builder.Services.AddSingleton(sp =>
        {
            var tracker = sp.GetRequiredService<TaskTracker>();
            var batcher = sp.GetRequiredService<Batcher<int, int>>();
            var pump = sp.GetRequiredService<PeerEventPump<string, string>>();
            return new Script<A>
            {
                Run = async token =>
                {
                    var peer = pump.Connect("peer"); // left connected: the pump's close removes it
                    peer.MarkReady();
                    await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                    journal.Add("service run returned");

                    // Work the tracker drains: it still submits to the batcher and posts to the pump.
                    _ = tracker.Go(async _ =>
                    {
                        var echoed = await batcher.SubmitAsync(7);
                        journal.Add($"tracked work got {echoed}");
                    });
                },
            };
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("service");
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang();

        journal.Entries.Should().ContainInOrder("service run returned", "tracked work got 7", "removed peer");
        host.Logs(5009).Select(r => r.Message).Should().Equal(
            "TaskTracker 'TaskTracker' closed at the host's stop",
            "Batcher 'Batcher' closed at the host's stop",
            "PeerEventPump 'PeerEventPump' closed at the host's stop");
    }

    [Fact]
    public async Task AHostedServiceRegisteredBeforeTheTracker_CanStillHandItWorkWhileItStops()
    {
        // The tracker closes after every hosted service has stopped, whatever the registration order: a web server or a
        // worker registered first (so stopped last) may still hand work to it while it drains.
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(journal);
        builder.Services.AddHostedService<HandsOffWorkOnStop>();
        builder.Services.AddTaskTracker();
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang();

        journal.Entries.Should().BeEquivalentTo("handed off", "last work done");
        host.Logs(5009).Should().ContainSingle();
    }

    [Fact]
    public async Task EachDispatch_ResolvesItsHandlerFromItsOwnScope_DisposedOnlyAfterTheDispatchReturned()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(journal);
        builder.Services.AddScoped<UnitOfWork>();
        builder.Services.AddBatcher<int, int, ScopedHandler>("loader", o =>
        {
            o.MaxBatchSize = 1;
            o.MaxDelay = TimeSpan.Zero;
        });
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var loader = host.Services.GetRequiredKeyedService<Batcher<int, int>>("loader");

        (await loader.SubmitAsync(1).AsTask().OrHang()).Should().Be(1);
        (await loader.SubmitAsync(2).AsTask().OrHang()).Should().Be(2);
        await host.StopAsync().OrHang(); // the batcher is closed: every dispatch has returned and disposed its scope

        journal.Entries.Should().Equal(
            "unit 1 opened", "unit 1 dispatched 1", "dispatch returned", "unit 1 disposed",
            "unit 2 opened", "unit 2 dispatched 2", "dispatch returned", "unit 2 disposed");
    }

    [Fact]
    public async Task WithTheRootScope_OneHandlerServesEveryDispatch()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(journal);
        builder.Services.AddSingleton<UnitOfWork>();
        builder.Services.AddBatcher<int, int, ScopedHandler>(configure: o => o.MaxBatchSize = 1, scope: BatchHandlerScope.Root);
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var loader = host.Services.GetRequiredService<Batcher<int, int>>();

        await loader.SubmitAsync(1).AsTask().OrHang();
        await loader.SubmitAsync(2).AsTask().OrHang();
        await host.StopAsync().OrHang();

        journal.Entries.Where(e => e.EndsWith("opened", StringComparison.Ordinal)).Should().ContainSingle();
    }

    [Fact]
    public void AnUndefinedHandlerScope_IsRejected_AtRegistration()
    {
        var services = new ServiceCollection();

        services.Invoking(s => s.AddBatcher<int, int, ScopedHandler>(scope: (BatchHandlerScope)7))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName("scope");
        services.Should().BeEmpty("a refused registration leaves the collection as it was");
    }

    [Fact]
    public void NullArguments_AreRejected()
    {
        IServiceCollection services = null!;
        IHealthChecksBuilder checks = null!;

        FluentActions.Invoking(() => services.AddTaskTracker()).Should().Throw<ArgumentNullException>().WithParameterName("services");
        FluentActions.Invoking(() => services.AddLifecycleService<ScriptedService<A>>()).Should().Throw<ArgumentNullException>().WithParameterName("services");
        FluentActions.Invoking(() => services.AddBatcher<int, int, ScopedHandler>()).Should().Throw<ArgumentNullException>().WithParameterName("services");
        FluentActions.Invoking(() => services.AddPeerEventPump<string, string, JournalingConsumer>()).Should().Throw<ArgumentNullException>().WithParameterName("services");
        FluentActions.Invoking(() => checks.AddConcurrencyPrimitives()).Should().Throw<ArgumentNullException>().WithParameterName("builder");
    }

    [Fact]
    public void RegisteringTheSamePrimitiveTwice_RegistersItOnce_AndKeepsBothConfigurations()
    {
        var services = new ServiceCollection();
        services.AddTaskTracker("jobs", o => o.MaxConcurrency = 4);
        services.AddTaskTracker("jobs", o => o.CancelOnFirstFailure = true);
        using var provider = services.BuildServiceProvider();

        services.Count(d => d.IsKeyedService && d.ServiceType == typeof(TaskTracker)).Should().Be(1);
        var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<TaskTrackerOptions>>().Get("jobs");
        options.MaxConcurrency.Should().Be(4);
        options.CancelOnFirstFailure.Should().BeTrue();
    }

    internal sealed class HandsOffWorkOnStop(TaskTracker tracker, Journal journal) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            await tracker.Go(
                async _ =>
                {
                    await Task.Yield();
                    journal.Add("last work done");
                },
                "flush on stop");
            journal.Add("handed off");
        }
    }

    internal sealed class UnitOfWork : IDisposable
    {
        private readonly Journal _journal;

        public UnitOfWork(Journal journal)
        {
            _journal = journal;
            Number = journal.Next();
            journal.Add($"unit {Number} opened");
        }

        public int Number { get; }

        public bool Disposed { get; private set; }

        public void Dispose()
        {
            Disposed = true;
            _journal.Add($"unit {Number} disposed");
        }
    }

    internal sealed class ScopedHandler(UnitOfWork unit, Journal journal) : IBatchHandler<int, int>
    {
        public async Task DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken)
        {
            await Task.Yield();
            unit.Disposed.Should().BeFalse();
            for (var i = 0; i < batch.Count; i++)
            {
                journal.Add($"unit {unit.Number} dispatched {batch[i]}");
                batch.TrySetResult(i, batch[i]);
            }

            journal.Add("dispatch returned");
        }
    }

    internal sealed class EchoHandler : IBatchHandler<int, int>
    {
        public Task DispatchAsync(Batch<int, int> batch, CancellationToken cancellationToken)
        {
            for (var i = 0; i < batch.Count; i++)
            {
                batch.TrySetResult(i, batch[i]);
            }

            return Task.CompletedTask;
        }
    }

    internal sealed class JournalingConsumer(Journal journal) : IPeerEventConsumer<string, string>
    {
        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken)
        {
            journal.Add($"removed {peer}");
            return default;
        }
    }
}
