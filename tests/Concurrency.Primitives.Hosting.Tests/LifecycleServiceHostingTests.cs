using System;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// <c>AddLifecycleService</c> in a real Generic Host: each of <c>BackgroundService</c>'s failure modes, fixed (see the
/// package's README): a run fault stops the host with a non-zero exit code and its cause; stop without start; stop
/// during start; stop order across services; a hung stop step named within the shutdown budget; a run whose synchronous
/// part blocks; and nothing released under a run that still runs.
/// </summary>
[Collection(ExitCodeTests.Name)]
public sealed class LifecycleServiceHostingTests
{
    [Fact]
    public async Task ARunThatFaultsAfterItsFirstAwait_StopsTheHost_WithANonZeroExitCode_AndLogsItsRootCause()
    {
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.Own(new Resource(journal, "checkpoint file"));
                return Task.CompletedTask;
            },
            Run = async _ =>
            {
                await Task.Yield();
                throw new InvalidOperationException("could not write the checkpoint", new IOException("disk full"));
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("checkpointer");
        using var host = builder.Build();

        await host.StartAsync().OrHang();
        await host.WaitForShutdownAsync().OrHang(); // nothing but the fault stops this host

        Environment.ExitCode.Should().Be(1);
        var critical = host.Logs(5001).Should().ContainSingle().Subject;
        critical.Level.Should().Be(LogLevel.Critical);
        critical.Message.Should().Contain("'checkpointer'").And.Contain("could not write the checkpoint").And.Contain("caused by IOException: disk full");
        critical.Exception.Should().BeOfType<InvalidOperationException>();
        journal.Entries.Should().Equal("release checkpoint file");
        host.Logs(5004).Should().BeEmpty("the fault is logged once, when it happens, not again by the stop");
    }

    [Fact]
    public async Task HandRolledBackgroundService_AFaultStopsTheHost_ButTheProcessWouldExitWithZero()
    {
        // The same fault in a BackgroundService (BackgroundServiceExceptionBehavior.StopHost, the default): the host
        // stops, and the exit code stays 0, so an orchestrator sees a clean exit.
        using var exitCode = new ExitCodeScope();
        var mayFault = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(mayFault);
        builder.Services.AddHostedService<FaultingBackgroundService>();
        using var host = builder.Build();

        await host.StartAsync().OrHang();
        mayFault.SetResult(); // after the start: a fault during it would make the host's start throw instead, on a race
        await host.WaitForShutdownAsync().OrHang();

        Environment.ExitCode.Should().Be(0);
    }

    [Fact]
    public async Task WithRunFaultBehaviorIgnore_AFaultIsLogged_AndTheHostKeepsRunning()
    {
        using var exitCode = new ExitCodeScope();
        var faulted = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Run = async _ =>
            {
                await Task.Yield();
                faulted.SetResult();
                throw new InvalidOperationException("poison message");
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("consumer", o => o.RunFaultBehavior = LifecycleServiceRunFaultBehavior.Ignore);
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        using var host = builder.Build();
        var runFaulted = Bounded.NewGate();
        host.Services.GetRequiredService<Internal.LifecycleHostedService<ScriptedService<A>>>().Gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                runFaulted.TrySetResult(); // raised after the service's own handler, which logs the fault
            }
        };
        await host.StartAsync().OrHang();
        await faulted.Task.OrHang();
        await runFaulted.Task.OrHang();

        var health = await host.HealthOf("lifecycle:consumer");
        health.Status.Should().Be(Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Unhealthy);
        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested.Should().BeFalse();
        Environment.ExitCode.Should().Be(0);

        await host.StopAsync().OrHang();
        host.Logs(5002).Should().ContainSingle().Which.Message.Should().Contain("poison message");
    }

    [Fact]
    public async Task StopWithoutStart_IsANoOp()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Recording<A>(journal, "A"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();

        await host.StopAsync().OrHang();

        journal.Entries.Should().BeEmpty();
        host.Logs().Where(r => r.Level >= LogLevel.Error).Should().BeEmpty();
    }

    [Fact]
    public async Task AServiceThatNeverStarted_BecauseAnEarlierOneFailed_IsNotStoppedOrReleased()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddHostedService<FailingToStartService>();
        builder.Services.AddSingleton(Recording<A>(journal, "A"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();

        await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("the configuration server is down");
        await host.StopAsync().OrHang();

        journal.Entries.Should().BeEmpty();
    }

    [Fact]
    public async Task AStopDuringTheStart_CancelsTheStart_ReleasesWhatItAcquired_AndNeverCallsTheStopStep()
    {
        var journal = new Journal();
        var entered = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = async (context, token) =>
            {
                context.Own(new Resource(journal, "connection"));
                entered.SetResult();
                await Task.Delay(Timeout.Infinite, token); // a handshake that never answers
            },
            Run = _ =>
            {
                journal.Add("run");
                return Task.CompletedTask;
            },
            Stop = _ =>
            {
                journal.Add("stop step");
                return Task.CompletedTask;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        using var stopping = new CancellationTokenSource();

        var start = host.StartAsync(stopping.Token);
        await entered.Task.OrHang();
        await stopping.CancelAsync(); // the host is told to stop while the service starts

        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await host.StopAsync().OrHang();
        journal.Entries.Should().Equal("release connection");
    }

    [Fact]
    public async Task AStopDuringTheStart_ReportsTheStartsOwnError_NotACancellation()
    {
        var entered = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = async (_, token) =>
            {
                entered.SetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, token);
                }
                catch (OperationCanceledException)
                {
                }

                throw new InvalidOperationException("the broker refused the subscription");
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        using var stopping = new CancellationTokenSource();

        var start = host.StartAsync(stopping.Token);
        await entered.Task.OrHang();
        await stopping.CancelAsync();

        await start.Invoking(s => s.OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("the broker refused the subscription");
        host.Logs(5010).Should().ContainSingle().Which.Exception!.Message.Should().Be("the broker refused the subscription");
        await host.StopAsync().OrHang();
    }

    [Fact]
    public async Task AStartThatFailsOnItsOwnWithAnOperationCanceledException_IsLoggedAsAStartFailure()
    {
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (_, _) => throw new OperationCanceledException("the handshake timed out"), // nobody cancelled it
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();

        await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<OperationCanceledException>().WithMessage("the handshake timed out");
        host.Logs(5010).Should().ContainSingle().Which.Exception!.Message.Should().Be("the handshake timed out");
    }

    [Fact]
    public async Task AStopDuringAStartThatIgnoresItsToken_FailsTheHostsStart_NamingTheStart_AfterTheServicesShutdownTimeout()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var startMayReturn = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(new Script<A>
        {
            Start = async (_, _) =>
            {
                entered.SetResult();
                await startMayReturn.Task; // ignores its token
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("handshaker", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        using var host = builder.Build();
        using var stopping = new CancellationTokenSource();

        var start = host.StartAsync(stopping.Token);
        await entered.Task.OrHang();
        await stopping.CancelAsync();
        await time.WhenTimersArmed().OrHang();
        start.IsCompleted.Should().BeFalse("the start has its bound to return in");
        time.Advance(TimeSpan.FromSeconds(5));

        var timeout = (await start.Invoking(s => s.OrHang()).Should().ThrowAsync<LifecycleStopTimeoutException>()).Which;
        timeout.Step.Should().Be("start");
        host.Logs(5010).Should().ContainSingle().Which.Message.Should().Contain("'handshaker'");
        startMayReturn.SetResult(); // lets the container's dispose finish the stop
    }

    [Fact]
    public async Task ARunFaultWhileALaterServiceStarts_StopsTheHostInOrder_WithoutFailingTheHostsStart()
    {
        // A's run faults while B is still starting: the host stops (StopApplication), which cancels B's start. That is
        // the host stopping, not B failing to start: the host's start returns, and the host stops with A's exit code.
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var bStarting = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Run = async _ =>
            {
                await bStarting.Task;
                throw new InvalidOperationException("the feed closed");
            },
        });
        builder.Services.AddSingleton(new Script<B>
        {
            Start = async (context, token) =>
            {
                context.Own(new Resource(journal, "B's connection"));
                bStarting.SetResult();
                await Task.Delay(Timeout.Infinite, token); // a handshake that waits until cancelled
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        builder.Services.AddLifecycleService<ScriptedService<B>>("B");
        using var host = builder.Build();

        await host.Invoking(h => h.StartAsync().OrHang()).Should().NotThrowAsync();
        await host.WaitForShutdownAsync().OrHang();

        Environment.ExitCode.Should().Be(1);
        host.Logs(5001).Should().ContainSingle().Which.Message.Should().Contain("'A'");
        host.Logs(5010).Should().BeEmpty("B did not fail to start: the host stopped it");
        journal.Entries.Should().Equal("release B's connection");
    }

    [Fact]
    public async Task AStopStepThatFailed_IsNotInvokedAgain_NorLoggedAgain_WhenTheContainerDisposesTheService()
    {
        var time = new ManualTimeProvider();
        var flushCalls = 0;
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.OnStop(
                    _ =>
                    {
                        Interlocked.Increment(ref flushCalls);
                        return Bounded.NewGate().Task; // hangs
                    },
                    "flush");
                return Task.CompletedTask;
            },
            Run = _ => Task.CompletedTask,
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        var host = builder.Build();
        var logs = host.LogCollector();
        await host.StartAsync().OrHang();
        var stop = host.StopAsync();
        await time.AdvanceEachTimeArmedUntil(stop, TimeSpan.FromSeconds(5), timers: 2).OrHang(); // the step's deadline and the wait for it
        await stop.OrHang();
        host.Logs(5004).Should().ContainSingle();

        await ((IAsyncDisposable)host).DisposeAsync().AsTask().OrHang(); // without advancing the clock: nothing is waited for again

        Volatile.Read(ref flushCalls).Should().Be(1);
        logs.Logs(5004).Should().ContainSingle("the container's dispose does not report the stop a second time");
        logs.Logs(2010).Should().BeEmpty("the gate's own dispose does not resume the teardown");
    }

    [Fact]
    public async Task AStopThatOutlivedTheHost_IsAwaitedByTheContainersDispose_Once_AndItsEndIsLogged()
    {
        var journal = new Journal();
        var flushCalls = 0;
        var flushMayFinish = Bounded.NewGate();
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(200)); // the host's budget is what is tested
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.Own(new Resource(journal, "exporter's socket"));
                context.OnStop(
                    _ =>
                    {
                        Interlocked.Increment(ref flushCalls);
                        return flushMayFinish.Task;
                    },
                    "flush");
                return Task.CompletedTask;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        var host = builder.Build();
        var logs = host.LogCollector();
        await host.StartAsync().OrHang();
        await host.StopAsync().OrHang();
        host.Logs(5003).Should().ContainSingle();

        var dispose = ((IAsyncDisposable)host).DisposeAsync().AsTask();
        dispose.IsCompleted.Should().BeFalse("the teardown still waits for the flush");
        journal.Entries.Should().BeEmpty();
        flushMayFinish.SetResult();
        await dispose.OrHang();

        journal.Entries.Should().Equal("release exporter's socket");
        Volatile.Read(ref flushCalls).Should().Be(1);
        logs.Logs(5011).Should().ContainSingle().Which.Message.Should().Contain("'exporter'");
    }

    [Fact]
    public async Task ThreeServices_StartInRegistrationOrder_AndStopInReverse_EachReleasingOnlyAfterItsRunReturned()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Recording<A>(journal, "A"));
        builder.Services.AddSingleton(Recording<B>(journal, "B"));
        builder.Services.AddSingleton(Recording<C>(journal, "C"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        builder.Services.AddLifecycleService<ScriptedService<B>>("B");
        builder.Services.AddLifecycleService<ScriptedService<C>>("C");
        using var host = builder.Build();

        await host.StartAsync().OrHang();
        journal.Entries.Where(e => e.StartsWith("start", StringComparison.Ordinal)).Should().Equal("start A", "start B", "start C");
        var beforeStop = journal.Entries.Count;
        await host.StopAsync().OrHang();

        journal.Entries.Skip(beforeStop).Should().Equal(
            "run C returned", "stop C", "release C",
            "run B returned", "stop B", "release B",
            "run A returned", "stop A", "release A");
    }

    [Fact]
    public async Task AHungStopStep_IsNamedInTheLog_WhenTheServicesShutdownTimeoutPasses_AndTheHostStopsOnTime()
    {
        var time = new ManualTimeProvider();
        var flushMayFinish = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.OnStop(_ => flushMayFinish.Task, "flush");
                return Task.CompletedTask;
            },
            Run = _ => Task.CompletedTask, // returns at once (on the pool: a stop that comes first waits for it, on a timer of its own)
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        var stop = host.StopAsync();
        await time.AdvanceEachTimeArmedUntil(stop, TimeSpan.FromSeconds(5), timers: 2).OrHang(); // the step's deadline and the wait for it
        await stop.OrHang();

        var failure = host.Logs(5004).Should().ContainSingle().Subject;
        failure.Message.Should().Contain("'exporter'");
        failure.Exception.Should().BeOfType<LifecycleStopTimeoutException>().Which.Step.Should().Be("flush");
        flushMayFinish.SetResult();
    }

    [Fact]
    public async Task AStopStepThatOutlivesTheHostsShutdownTimeout_IsNamed_AndTheHostMovesOn()
    {
        var flushMayFinish = Bounded.NewGate();
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(200)); // the host's budget is what is tested
        builder.Services.AddSingleton(new Script<A>
        {
            Start = (context, _) =>
            {
                context.OnStop(_ => flushMayFinish.Task, "flush");
                return Task.CompletedTask;
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang();

        host.Logs(5003).Should().ContainSingle().Which.Message.Should().Contain("'exporter'").And.Contain("'flush'");
        flushMayFinish.SetResult();
        host.Dispose();
    }

    [Fact]
    public async Task ARunWhoseSynchronousPartBlocks_DoesNotHoldUpTheHostsStart()
    {
        using var blocked = new ManualResetEventSlim();
        var running = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(new Script<A>
        {
            Run = token =>
            {
                running.SetResult();
#pragma warning disable VSTHRD103 // the point: a run that blocks before its first await
                blocked.Wait(Bounded.HangLimit);
#pragma warning restore VSTHRD103
                return Task.Delay(Timeout.Infinite, token);
            },
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();

        await host.StartAsync().OrHang();
        await running.Task.OrHang();

        blocked.IsSet.Should().BeFalse("the host started while the run's synchronous part still blocks");
        blocked.Set();
        await host.StopAsync().OrHang();
    }

    [Fact]
    public async Task ASingletonTheRunUses_IsNotDisposedWhileTheRunStillRuns_EvenPastTheHostsShutdownTimeout()
    {
        var journal = new Journal();
        var database = new Resource(journal, "database");
        var lastWriteMayGo = Bounded.NewGate();
        var cancelled = Bounded.NewGate();
        Exception? lastWriteFailure = null;
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(100));
        builder.Services.AddSingleton(_ => database); // created by the container, so disposed by it
        builder.Services.AddSingleton(sp =>
        {
            var db = sp.GetRequiredService<Resource>(); // a constructor dependency, as in an app: created before the service
            return new Script<A>
            {
                Run = async token =>
                {
                    db.Use("write");
                    await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
                    cancelled.SetResult();
                    await lastWriteMayGo.Task; // the last batch, flushed after the stop, slower than the host's budget
                    lastWriteFailure = Record.Exception(() => db.Use("last write"));
                },
            };
        });
        builder.Services.AddLifecycleService<ScriptedService<A>>("writer", o => o.ShutdownTimeout = Bounded.HangLimit);
        var host = builder.Build();
        await host.StartAsync().OrHang();

        await host.StopAsync().OrHang(); // returns at the host's 100 ms, naming what it waits for
        await cancelled.Task.OrHang();
        host.Logs(5003).Should().ContainSingle().Which.Message.Should().Contain("'run'");
        var dispose = Task.Run(() => ((IAsyncDisposable)host).DisposeAsync().AsTask()); // the service goes first, and waits for the run
        database.IsDisposed.Should().BeFalse();
        lastWriteMayGo.SetResult();
        await dispose.OrHang();

        lastWriteFailure.Should().BeNull();
        journal.Entries.Should().Equal("database: write", "database: last write", "release database");
    }

    [Fact]
    public async Task HandRolledBackgroundService_PastTheHostsShutdownTimeout_HasItsSingletonDisposedUnderTheRunningLoop()
    {
        // The same loop as a BackgroundService: once the host's budget is spent, the container disposes the database
        // while the loop still runs, and the last write hits a disposed object (the teardown-order bug at app level).
        var journal = new Journal();
        var database = new Resource(journal, "database");
        var harness = new LoopHarness();
        var builder = TestHost.NewBuilder(shutdownTimeout: TimeSpan.FromMilliseconds(100));
        builder.Services.AddSingleton(_ => database);
        builder.Services.AddSingleton(harness);
        builder.Services.AddHostedService<WritingBackgroundService>();
        var host = builder.Build();
        await host.StartAsync().OrHang();
        await harness.Running.Task.OrHang();

        await host.StopAsync().OrHang();
        await harness.Cancelled.Task.OrHang();
        host.Dispose(); // returns at once: BackgroundService.Dispose only cancels
        database.IsDisposed.Should().BeTrue();
        harness.LastWriteMayGo.SetResult();
        await harness.Done.Task.OrHang();

        harness.LastWriteFailure.Should().BeOfType<ObjectDisposedException>();
    }

    private static Script<T> Recording<T>(Journal journal, string name) => new()
    {
        Start = (context, _) =>
        {
            journal.Add($"start {name}");
            context.Own(new Resource(journal, name));
            return Task.CompletedTask;
        },
        Run = async token =>
        {
            await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
            journal.Add($"run {name} returned");
        },
        Stop = _ =>
        {
            journal.Add($"stop {name}");
            return Task.CompletedTask;
        },
    };

    private sealed class FaultingBackgroundService(TaskCompletionSource mayFault) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await mayFault.Task;
            throw new InvalidOperationException("could not write the checkpoint", new IOException("disk full"));
        }
    }

    private sealed class FailingToStartService : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => throw new InvalidOperationException("the configuration server is down");

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class LoopHarness
    {
        public TaskCompletionSource Running { get; } = Bounded.NewGate();

        public TaskCompletionSource Cancelled { get; } = Bounded.NewGate();

        public TaskCompletionSource LastWriteMayGo { get; } = Bounded.NewGate();

        public TaskCompletionSource Done { get; } = Bounded.NewGate();

        public Exception? LastWriteFailure { get; set; }
    }

    private sealed class WritingBackgroundService(Resource database, LoopHarness harness) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            database.Use("write");
            harness.Running.SetResult();
            await Task.Delay(Timeout.Infinite, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            harness.Cancelled.SetResult();
            await harness.LastWriteMayGo.Task;
            harness.LastWriteFailure = Record.Exception(() => database.Use("last write"));
            harness.Done.SetResult();
        }
    }
}

/// <summary>Tests that read or set <see cref="Environment.ExitCode"/> run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ExitCodeTests
{
    public const string Name = "Process exit code";
}

/// <summary>Restores the process's exit code (a test host must not exit with the code a test provoked).</summary>
internal sealed class ExitCodeScope : IDisposable
{
    private readonly int _saved = Environment.ExitCode;

    public ExitCodeScope() => Environment.ExitCode = 0;

    public void Dispose() => Environment.ExitCode = _saved;
}
