using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// A DI container (as a host's) disposes the primitives: however stuck their work, disposal returns within their bounds,
/// throws nothing, and the container goes on to dispose every other singleton. A container disposed synchronously works too.
/// </summary>
public sealed class ContainerDisposalTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(100);

    [Fact]
    public async Task DisposingAContainer_WhoseSingletonsAreAllStuck_ThrowsNothing_AndStillDisposesTheOthers()
    {
        var log = new RecordingLogger();
        var witness = new Witness();
        var services = new ServiceCollection();
        services.AddSingleton(sp => witness); // made by the container (so disposed by it), first: disposed last
        services.AddSingleton(sp =>
        {
            var tracker = new TaskTracker(new TaskTrackerOptions { Name = "jobs", ShutdownTimeout = Short, Logger = log });
            _ = tracker.Go(_ => Bounded.NewGate().Task, "ignores cancellation");
            return tracker;
        });
        services.AddSingleton(sp =>
        {
            return new LifecycleGate(run: _ => Bounded.NewGate().Task, options: new LifecycleGateOptions { Name = "syncer", ShutdownTimeout = Short, Logger = log });
        });
        services.AddSingleton(sp =>
        {
            var batcher = new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => new ValueTask(Bounded.NewGate().Task), new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, ShutdownTimeout = Short, Logger = log });
            _ = batcher.SubmitAsync(1).AsTask();
            return batcher;
        });
        services.AddSingleton(sp =>
        {
            var consumer = new RecordingPeerHandler<string> { Hold = Bounded.NewGate().Task };
            var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { ShutdownTimeout = Short, Logger = log });
            pump.Connect("stuck").MarkReady();
            return pump;
        });
        services.AddSingleton(sp =>
        {
            var teardown = new OrderedTeardown(new OrderedTeardownOptions { ShutdownTimeout = Short, Logger = log });
            teardown.Add(_ => Bounded.NewGate().Task, "stuck step");
            return teardown; // never executed: the container's dispose runs it
        });
        var provider = services.BuildServiceProvider();
        _ = provider.GetRequiredService<Witness>();
        _ = provider.GetRequiredService<TaskTracker>();
        await provider.GetRequiredService<LifecycleGate>().StartAsync().OrHang();
        _ = provider.GetRequiredService<Batcher<int, int>>();
        _ = provider.GetRequiredService<PeerEventPump<string, string>>();
        _ = provider.GetRequiredService<OrderedTeardown>();

        await provider.Invoking(p => p.DisposeAsync().AsTask().OrHang()).Should().NotThrowAsync();

        witness.Disposed.Should().BeTrue("the container disposed every singleton after the stuck ones");
        log.Entries.Should().Contain(e => e.EventId == 1008, "the tracker logged its stragglers")
            .And.Contain(e => e.EventId == 2010, "the gate logged its stuck stop")
            .And.Contain(e => e.EventId == 3008, "the batcher logged its stuck dispatch")
            .And.Contain(e => e.EventId == 4006, "the pump logged its stuck consumer")
            .And.Contain(e => e.EventId == 2011, "the teardown logged its stuck step");
    }

    [Fact]
    public async Task DisposingAContainerSynchronously_ThrowsNothing_AndBeginsEveryShutdown()
    {
        var services = new ServiceCollection();
        services.AddSingleton(_ => new TaskTracker());
        services.AddSingleton(_ => new LifecycleGate());
        services.AddSingleton(_ => new Batcher<int, int>((Batch<int, int> _, CancellationToken _) => default));
        services.AddSingleton(_ => new PeerEventPump<string, string>(new RecordingPeerHandler<string>()));
        var provider = services.BuildServiceProvider();
        var tracker = provider.GetRequiredService<TaskTracker>();
        var gate = provider.GetRequiredService<LifecycleGate>();
        var batcher = provider.GetRequiredService<Batcher<int, int>>();
        var pump = provider.GetRequiredService<PeerEventPump<string, string>>();

        // Before: "'TaskTracker' type only implements IAsyncDisposable. Use DisposeAsync to dispose the container."
        provider.Invoking(p => p.Dispose()).Should().NotThrow();

        tracker.IsClosing.Should().BeTrue();
        tracker.Invoking(t => t.Register()).Should().Throw<ObjectDisposedException>();
        await gate.Invoking(g => g.StartAsync()).Should().ThrowAsync<ObjectDisposedException>();
        await batcher.Invoking(b => b.SubmitAsync(1).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        pump.Invoking(p => p.Connect("late")).Should().Throw<ObjectDisposedException>();
    }

    private sealed class Witness : IAsyncDisposable
    {
        public bool Disposed { get; private set; }

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return default;
        }
    }
}
