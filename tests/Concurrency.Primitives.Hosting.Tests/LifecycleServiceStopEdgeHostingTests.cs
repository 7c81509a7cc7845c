using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Internal;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Testing;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// The edges of a lifecycle service's stop in a real Generic Host: a run that ends on the host's stopping token before
/// its service's turn to stop, a teardown that outlived the host and ended before the container's dispose, a host that
/// stops twice, a run cancelled on its own, a start the host calls while already stopping, and names that differ only
/// in case.
/// </summary>
[Collection(ExitCodeTests.Name)]
public sealed class LifecycleServiceStopEdgeHostingTests
{
    [Fact]
    public async Task ARunThatEndsOnApplicationStopping_BeforeItsTurnToStop_IsAnOrderlyEnd_NotAFault()
    {
        // The host cancels ApplicationStopping, then stops the services last registered first: A's run, which watches
        // that token, ends while B (registered after it) is still stopping. A BackgroundService's host exits 0 here.
        using var exitCode = new ExitCodeScope();
        using var host = await StopAHostWhoseFirstRunWatchesApplicationStoppingAsync((stopping, ended) => async token =>
        {
            try
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, stopping);
                await Task.Delay(Timeout.Infinite, linked.Token);
            }
            finally
            {
                ended.TrySetResult();
            }
        });

        var gate = host.Services.GetRequiredService<LifecycleHostedService<ScriptedService<A>>>().Gate;
        gate.State.Should().Be(LifecycleState.Stopped);
        gate.Fault.Should().BeNull();
        Environment.ExitCode.Should().Be(0);
        host.Logs(5001).Should().BeEmpty();
        host.Logs(5004).Should().BeEmpty();
    }

    [Fact]
    public async Task ARunThatEndsOnApplicationStopping_ReturningTheCancelledTaskItself_IsAnOrderlyEnd_Too()
    {
        using var exitCode = new ExitCodeScope();
        using var host = await StopAHostWhoseFirstRunWatchesApplicationStoppingAsync((stopping, ended) => token =>
        {
            var run = Task.Delay(Timeout.Infinite, stopping); // returned, not awaited
            _ = run.ContinueWith(done => ended.TrySetResult(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            return run;
        });

        Environment.ExitCode.Should().Be(0);
        host.Logs(5001).Should().BeEmpty();
        host.Logs(5004).Should().BeEmpty();
    }

    [Fact]
    public async Task ARunCancelledOnItsOwn_WhileTheHostRuns_IsStillAFault_LoggedOnce()
    {
        // Its own timeout, not the host's stop: a fault (5001, exit code 1), and the host's stop that follows does not
        // log it again as a failed stop, though each await of a cancelled task throws a new exception.
        using var exitCode = new ExitCodeScope();
        using var own = new CancellationTokenSource();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A> { Run = _ => Task.Delay(Timeout.Infinite, own.Token) });
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller");
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        await own.CancelAsync();
        await host.WaitForShutdownAsync().OrHang();

        host.Logs(5001).Should().ContainSingle();
        host.Logs(5004).Should().BeEmpty();
        Environment.ExitCode.Should().Be(1);
    }

    [Fact]
    public async Task ATeardownThatOutlivedTheHost_AndEndedBeforeTheContainersDispose_IsReportedByTheDispose()
    {
        var flushMayFinish = Bounded.NewGate();
        var (host, logs) = await StopAHostWhoseStopStepOutlivesItAsync(_ => flushMayFinish.Task);
        var gate = host.Services.GetRequiredService<LifecycleHostedService<ScriptedService<A>>>().Gate;
        flushMayFinish.SetResult();
        await gate.Completion.OrHang(); // ended before the dispose

        await ((IAsyncDisposable)host).DisposeAsync().OrHang();

        logs.Logs(5011).Should().ContainSingle().Which.Message.Should().Contain("'exporter'");
        logs.Logs(5004).Should().BeEmpty();
    }

    [Fact]
    public async Task ATeardownThatOutlivedTheHost_AndFailedBeforeTheContainersDispose_IsLoggedOnceByTheDispose()
    {
        var flushMayFinish = Bounded.NewGate();
        var (host, logs) = await StopAHostWhoseStopStepOutlivesItAsync(async _ =>
        {
            await flushMayFinish.Task;
            throw new InvalidOperationException("flush failed");
        });
        var gate = host.Services.GetRequiredService<LifecycleHostedService<ScriptedService<A>>>().Gate;
        flushMayFinish.SetResult();
        await Bounded.Until(() => gate.State == LifecycleState.StopFailed, "the stop's failure");

        await ((IAsyncDisposable)host).DisposeAsync().OrHang();

        logs.Logs(5004).Should().ContainSingle().Which.Exception.Should().BeOfType<InvalidOperationException>();
        logs.Logs(5011).Should().BeEmpty();
    }

    [Fact]
    public async Task AStopThatOutlivesTheHost_WithAbandonRunOnTimeout_DoesNotClaimNothingWillBeReleasedUnderTheRun()
    {
        var runMayReturn = Bounded.NewGate();
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(200)); // the host's budget is what is tested
        builder.Services.AddSingleton(new Script<A> { Run = _ => runMayReturn.Task }); // ignores its token
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller", o =>
        {
            o.AbandonRunOnTimeout = true;
            o.ShutdownTimeout = TimeSpan.FromHours(1); // not reached: the host gives up first
        });
        var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang();

        var outlived = host.Logs(5003).Should().ContainSingle().Subject;
        outlived.Message.Should().Contain("'poller'").And.Contain("AbandonRunOnTimeout").And.NotContain("Nothing it owns was released");
        runMayReturn.SetResult();
        await ((IAsyncDisposable)host).DisposeAsync().OrHang();
    }

    [Fact]
    public async Task AHostStoppedTwice_LogsAFailedStopOnce()
    {
        var stops = 0;
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Stop = _ =>
            {
                Interlocked.Increment(ref stops);
                throw new InvalidOperationException("flush failed");
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter");
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang();
        await host.StopAsync().OrHang();

        host.Logs(5004).Should().ContainSingle();
        Volatile.Read(ref stops).Should().Be(1, "one close serves both stops");
    }

    [Fact]
    public async Task AStartTheHostCallsWhenAlreadyStopping_IsNotInvoked_NorIsTheRun()
    {
        // An earlier hosted service stops the application in its own start: the host still calls the next services'
        // StartAsync, with a cancelled token. Nothing of this service starts, and the host's stop finds nothing to do.
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddHostedService<StopsTheApplicationInItsStart>();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (_, _) =>
            {
                journal.Add("start");
                return Task.CompletedTask;
            },
            Run = _ =>
            {
                journal.Add("run");
                return Task.CompletedTask;
            },
            Stop = _ =>
            {
                journal.Add("stop");
                return Task.CompletedTask;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("a");
        using var host = builder.Build();

        await host.StartAsync().OrHang();
        await host.StopAsync().OrHang();

        journal.Entries.Should().BeEmpty();
        host.Services.GetRequiredService<LifecycleHostedService<ScriptedService<A>>>().Gate.State.Should().Be(LifecycleState.NotStarted);
        host.Logs(5010).Should().BeEmpty();
    }

    [Fact]
    public void TwoLifecycleServicesWhoseNamesDifferOnlyInCase_AreRefusedAtTheSecondRegistration()
    {
        // Health check names are compared without case: "worker" and "Worker" would share one check.
        var services = new ServiceCollection();
        services.AddLifecycleService<ScriptedService<A>>("worker");
        var count = services.Count;

        var act = () => services.AddLifecycleService<ScriptedService<B>>("Worker");

        act.Should().Throw<InvalidOperationException>().WithMessage("*'worker' is already registered*compared without case*");
        services.Count.Should().Be(count, "a refused registration leaves the collection as it was");
    }

    /// <summary>
    /// Starts and stops a host of two services, A then B: A's run is made by <paramref name="run"/> from the host's
    /// ApplicationStopping token and a gate it sets when it ends; B's stop step (B stops first) waits for that gate.
    /// </summary>
    private static async Task<IHost> StopAHostWhoseFirstRunWatchesApplicationStoppingAsync(
        Func<CancellationToken, TaskCompletionSource, Func<CancellationToken, Task>> run)
    {
        var aRunEnded = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(services => new Script<A>
        {
            Run = run(services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping, aRunEnded),
        });
        builder.Services.AddSingleton(new Script<B> { Stop = _ => aRunEnded.Task });
        builder.Services.AddLifecycleService<ScriptedService<A>>("a");
        builder.Services.AddLifecycleService<ScriptedService<B>>("b");
        var host = builder.Build();
        await host.StartAsync().OrHang();
        await host.StopAsync().OrHang();
        return host;
    }

    /// <summary>
    /// Starts and stops a host (a 200 ms shutdown budget) of one service, "exporter", whose stop step is
    /// <paramref name="flush"/> with no bound of its own; returns once the host gave up on it (5003).
    /// </summary>
    private static async Task<(IHost Host, FakeLogCollector Logs)> StopAHostWhoseStopStepOutlivesItAsync(
        Func<CancellationToken, Task> flush)
    {
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(200)); // the host's budget is what is tested
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.OnStop(flush, "flush");
                return Task.CompletedTask;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        var host = builder.Build();
        var logs = host.LogCollector();
        await host.StartAsync().OrHang();
        await host.StopAsync().OrHang();
        host.Logs(5003).Should().ContainSingle();
        return (host, logs);
    }

    private sealed class StopsTheApplicationInItsStart(IHostApplicationLifetime lifetime) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            lifetime.StopApplication();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
