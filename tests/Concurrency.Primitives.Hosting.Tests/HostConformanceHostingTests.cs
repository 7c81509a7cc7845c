using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Internal;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// Conformance: Microsoft.Extensions.Hosting's own tests of hosted services and <c>BackgroundService</c> inside a real
/// host (dotnet/runtime, <c>src/libraries/Microsoft.Extensions.Hosting/tests/UnitTests/</c>), ported to services
/// registered with <c>AddLifecycleService&lt;T&gt;()</c>. Where the package differs by design (its README's invariants),
/// the test asserts the documented behaviour and says so in a "DIFFERENCE BY DESIGN" comment.
/// <para>Ported (upstream test: the test here):</para>
/// <list type="bullet">
/// <item><c>Internal/HostTests.AppCrashesOnStartWhenFirstHostedServiceThrows</c>,
/// <c>HostDoesNotNotifyIHostApplicationLifetimeCallbacksIfIHostedServicesThrow</c>:
/// <see cref="AFirstServiceWhoseStartThrows_FailsTheHostsStartWithItsError_AndNothingAfterItStarts"/>.</item>
/// <item><c>Internal/HostTests.HostDisposeApplicationDoesNotFireStopOnHostedService</c> (with a later start failing, as
/// <c>Host.RunAsync</c> then disposes without a stop):
/// <see cref="ALaterStartThatThrows_EndsRunAsyncWithItsError_AndTheDisposeTearsDownTheEarlierServiceInOrder"/>; and as it
/// is, with a synchronous <c>host.Dispose()</c> of a started host:
/// <see cref="AStartedHostDisposedSynchronouslyWithoutAStop_HasTornItsServiceDownWhenDisposeReturns"/>.</item>
/// <item><c>Internal/HostTests.HostShutsDownWhenTokenTriggers</c>, <c>HostedServiceRegisteredAsSingletons</c>,
/// <c>HostStopApplicationFiresStopOnHostedService</c>, <c>HostCallsDisposeAsyncOnServiceProviderWhenDisposeAsyncCalled</c>,
/// <c>HostDisposesServiceProvider</c>:
/// <see cref="RunAsyncEndedByItsToken_StartsAndStopsTheSingletonOnce_AndDisposesItOnlyAfterApplicationStopped"/>.</item>
/// <item><c>Internal/HostTests.HostLifetimeOnStartedCanBeCancelled</c>, <c>BackgroundServiceTests.StartCancelledThrowsTaskCanceledException</c>:
/// <see cref="AHostStartWithAnAlreadyCancelledToken_ThrowsOperationCanceled_AndNeverInvokesTheStart"/>.</item>
/// <item><c>Internal/HostTests.CancellableStart_CancelledByApplicationLifetime</c>:
/// <see cref="StopApplicationDuringAStart_CancelsTheStart_WithoutFailingTheHostsStart"/>.</item>
/// <item><c>Internal/HostTests.HostStopAsyncCanBeCancelledEarly</c>:
/// <see cref="AHostStopWhoseTokenIsCancelled_ReturnsWhileTheStopStepHangs_NamingIt_AndReleasesNothingYet"/>.</item>
/// <item><c>Internal/HostTests.HostApplicationLifetimeEventsOrderedCorrectlyDuringShutdown</c>,
/// <c>HostNotifiesApplicationStarted</c>, <c>HostShutdownFiresApplicationLifetimeStoppedBeforeHostLifetimeStopped</c>:
/// <see cref="ApplicationStartedStoppingAndStopped_AreOrderedAroundTheServicesStartRunAndStop"/>.</item>
/// <item><c>Internal/HostTests.HostStopApplicationDoesNotFireStopOnHostedService</c>:
/// <see cref="StopApplicationAlone_DoesNotCancelTheRunNorInvokeTheStopStep"/>.</item>
/// <item><c>BackgroundServiceExceptionTests.BackgroundService_SynchronousException_ThrowsException</c>:
/// <see cref="ARunThatThrowsSynchronously_IsARunFault_NotAFailedStart_AndRunAsyncEndsWithTheExitCode"/>.</item>
/// <item><c>BackgroundServiceExceptionTests.BackgroundServiceExceptionAndStopException_ThrowsAggregateException</c>,
/// <c>BackgroundService_AsynchronousException_StopAsync_ThrowsException</c>,
/// <c>BackgroundService_AsynchronousException_StopTwiceAsync_ThrowsException</c>:
/// <see cref="ARunFaultAndAFailingStopStep_AreEachLoggedOnce_AndNoStopOfTheHostThrows"/>.</item>
/// <item><c>BackgroundServiceExceptionTests.BackgroundService_MultipleExceptions_ThrowsAggregateException</c> (with
/// Ignore), <c>BackgroundService_IgnoreException_DoesNotThrow</c>, <c>BackgroundService_IgnoreException_StopAsync_DoesNotThrow</c>:
/// <see cref="ThreeRunsFaultingWithIgnore_AreEachLoggedOnce_AndTornDownInReverseAtTheHostsStop"/>.</item>
/// <item><c>BackgroundServiceTests.StopAsyncStopsEvenIfTaskNeverEnds</c>, <c>BackgroundHostedServiceTests.StopAsyncStopsEvenIfTaskNeverEnds</c>:
/// <see cref="ARunThatIgnoresItsCancellation_FailsTheStopAfterTheServicesShutdownTimeout_AndNothingIsReleased"/>.</item>
/// <item><c>BackgroundServiceExceptionTests.BackgroundService_SuccessfulCompletion_DoesNotThrow</c>:
/// <see cref="ARunThatReturnsOnItsOwn_IsNoFault_AndTheHostsStopStillTearsItDown"/>.</item>
/// </list>
/// <para>Skipped:</para>
/// <list type="bullet">
/// <item>Already covered by the other hosting tests: <c>HostCanBeStoppedWhenNotStarted</c>,
/// <c>HostedServiceStartNotCalledIfHostNotStarted</c> and <c>StopAsyncWithoutStartAsyncNoops</c>
/// (<c>LifecycleServiceHostingTests.StopWithoutStart_IsANoOp</c>); <c>StartCanBeCancelled</c> and
/// <c>CancellableStart_CancelledByCancellationToken</c> (<c>AStopDuringTheStart_CancelsTheStart_…</c>);
/// <c>HostStopAsyncUsesDefaultTimeoutIfGivenTokenDoesNotFire</c> and <c>WebHostStopAsyncUsesDefaultTimeoutIfNoTokenProvided</c>
/// (<c>AStopStepThatOutlivesTheHostsShutdownTimeout_IsNamed_AndTheHostMovesOn</c>); <c>BackgroundServiceAsyncExceptionGetsLogged</c>
/// and <c>BackgroundService_AsynchronousException_ThrowsException</c> (<c>ARunThatFaultsAfterItsFirstAwait_…</c>);
/// <c>StartSynchronousAndStop</c> and <c>StartReturnsCompletedTask</c> (<c>ARunWhoseSynchronousPartBlocks_…</c>).</item>
/// <item>About the host, not its services: the whole of the top-level <c>HostTests.cs</c> (CreateDefaultBuilder's
/// content root, configuration reload, scope validation, event source logger), <c>HostInjectsHostingEnvironment</c>,
/// <c>EnvDefaultsTo…</c>, <c>IsEnvironment_Extension_Is_Case_Insensitive</c>, <c>Dispose_Disposes…ConfigurationProviders</c>,
/// <c>HostLifetimeOnStartedDelaysStart</c>, <c>HostStopAsyncCallsHostLifetimeStopAsync</c>,
/// <c>HostNotifiesAllIHostApplicationLifetimeCallbacksEvenIfTheyThrow</c>, <c>Host_InvokesConfigureServicesMethodsOnlyOnce</c>,
/// <c>ThrowExceptionForCustomImplementationOfIHostApplicationLifetime</c>.</item>
/// <item>About DI registration of a hosted service (<c>HostedServiceCanAcceptSingletonDependencies</c>,
/// <c>HostedServiceRegisteredWithFactory</c>, <c>HostedServiceCanInjectApplicationLifetime</c>): the package's
/// registration is tested by <c>RegistrationHostingTests</c>.</item>
/// <item>About <c>BackgroundService</c>'s own API with no lifecycle counterpart: <c>StartReturnsLongRunningTaskIfFailed</c>,
/// <c>StartReturnsCompletedTaskIfCancelled</c>, <c>StartAsyncThenDisposeTriggersCancelledToken</c>,
/// <c>StartAsyncThenCancelShouldCancelExecutingTask</c> (the start token is not the run's token here),
/// <c>CreateAndDisposeShouldNotThrow</c>, <c>StopAsyncThrowsIfCancellationCallbackThrows</c> (the package documents no
/// behaviour for a throwing callback on the run's token), <c>BackgroundService_DelayedMonitoringException_ThrowsAggregateException</c>
/// (an overridden <c>ExecuteTask</c>).</item>
/// <item><c>BackgroundService_MultipleExceptions_ThrowsAggregateException</c> with StopHost: the second and third faults
/// race the stop the first one begins (the host cancels their runs), so which of them is a fault is not determined; the
/// Ignore variant above keeps the host running until all three faulted.</item>
/// </list>
/// </summary>
[Collection(ExitCodeTests.Name)]
public sealed class HostConformanceHostingTests
{
    [Fact]
    public async Task AFirstServiceWhoseStartThrows_FailsTheHostsStartWithItsError_AndNothingAfterItStarts()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", start: (context, _) =>
        {
            context.Own(new Resource(journal, "A's connection"));
            throw new InvalidOperationException("A could not connect");
        }));
        builder.Services.AddSingleton(Journaled<B>(journal, "B"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        builder.Services.AddLifecycleService<ScriptedService<B>>("B");
        var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();

        await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("A could not connect");

        lifetime.ApplicationStarted.IsCancellationRequested.Should().BeFalse("a failed start notifies no ApplicationStarted");
        host.Logs(5010).Should().ContainSingle().Which.Message.Should().Contain("'A'");
        await ((IAsyncDisposable)host).DisposeAsync().OrHang();
        journal.Entries.Should().Equal(new[] { "release A's connection" }, "A's stop step is never invoked, and B is never started");
    }

    [Fact]
    public async Task ALaterStartThatThrows_EndsRunAsyncWithItsError_AndTheDisposeTearsDownTheEarlierServiceInOrder()
    {
        // Host.RunAsync disposes the host when its start throws, without a stop.
        // DIFFERENCE BY DESIGN: upstream, a hosted service disposed without a stop is not stopped (a BackgroundService's
        // Dispose only cancels its loop). Here the container's dispose tears A down as a stop would: the run is cancelled
        // and awaited, then the stop step, then the release (README invariant 1).
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A"));
        builder.Services.AddSingleton(Journaled<B>(journal, "B", start: (context, _) =>
        {
            context.Own(new Resource(journal, "B"));
            throw new InvalidOperationException("B could not connect");
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        builder.Services.AddLifecycleService<ScriptedService<B>>("B");
        var host = builder.Build();

        await host.Invoking(h => h.RunAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>().WithMessage("B could not connect");

        journal.Entries.Should().Equal("start A", "release B", "run A cancelled", "stop A", "release A");
    }

    [Fact]
    public async Task AStartedHostDisposedSynchronouslyWithoutAStop_HasTornItsServiceDownWhenDisposeReturns()
    {
        // DIFFERENCE BY DESIGN, as above: upstream's host.Dispose() without a stop never calls the service's StopAsync.
        // Here the dispose is the teardown, and Host.Dispose waits for it too (README invariant 1).
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        var host = builder.Build();
        await host.StartAsync().OrHang();

        host.Dispose();

        journal.Entries.Should().Equal("start A", "run A cancelled", "stop A", "release A");
    }

    [Fact]
    public async Task RunAsyncEndedByItsToken_StartsAndStopsTheSingletonOnce_AndDisposesItOnlyAfterApplicationStopped()
    {
        var journal = new Journal();
        var started = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(journal);
        builder.Services.AddLifecycleService<DisposableService>("disposable");
        var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        lifetime.ApplicationStopped.Register(() => journal.Add("ApplicationStopped"));
        var service = host.Services.GetRequiredService<DisposableService>();
        using var cts = new CancellationTokenSource();

        var run = host.RunAsync(cts.Token);
        await started.Task.OrHang();
        await cts.CancelAsync();
        await run.OrHang();

        service.Starts.Should().Be(1, "the host started the container's singleton, once");
        journal.Entries.Should().Equal("start", "run cancelled", "stop", "release connection", "ApplicationStopped", "dispose service");
    }

    [Fact]
    public async Task AHostStartWithAnAlreadyCancelledToken_ThrowsOperationCanceled_AndNeverInvokesTheStart()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await host.Invoking(h => h.StartAsync(cts.Token).OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await host.StopAsync().OrHang();

        journal.Entries.Should().BeEmpty();
        GateOf<A>(host).State.Should().Be(LifecycleState.NotStarted);
        host.Logs(5010).Should().BeEmpty();
    }

    [Fact]
    public async Task StopApplicationDuringAStart_CancelsTheStart_WithoutFailingTheHostsStart()
    {
        // DIFFERENCE BY DESIGN: upstream, the host's start throws OperationCanceledException when StopApplication cancels
        // a start. Here the host stopping (a signal, another service's fault) is an orderly end of the start (README
        // invariant 4): the host's start returns, what the start acquired is released, and nothing else of it runs.
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var entered = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", start: async (context, token) =>
        {
            context.Own(new Resource(journal, "connection"));
            entered.SetResult();
            await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => journal.Add("start cancelled"), TaskScheduler.Default);
            token.ThrowIfCancellationRequested();
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();

        var start = host.StartAsync();
        await entered.Task.OrHang();
        host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();

        await start.Invoking(s => s.OrHang()).Should().NotThrowAsync();
        await host.WaitForShutdownAsync().OrHang();
        journal.Entries.Should().Equal(new[] { "start cancelled", "release connection" }, "neither the run nor the stop step is invoked");
        host.Logs(5010).Should().BeEmpty();
        Environment.ExitCode.Should().Be(0);
    }

    [Fact]
    public async Task AHostStopWhoseTokenIsCancelled_ReturnsWhileTheStopStepHangs_NamingIt_AndReleasesNothingYet()
    {
        var journal = new Journal();
        var stopEntered = Bounded.NewGate();
        var stopMayFinish = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", stop: async _ =>
        {
            stopEntered.SetResult();
            await stopMayFinish.Task;
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("exporter", o => o.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        var host = builder.Build();
        await host.StartAsync().OrHang();
        using var cts = new CancellationTokenSource();

        var stop = host.StopAsync(cts.Token);
        await stopEntered.Task.OrHang();
        await cts.CancelAsync(); // the caller's budget, not the host's ShutdownTimeout (30 s here)
        await stop.OrHang();

        host.Logs(5003).Should().ContainSingle().Which.Message.Should().Contain("'exporter'").And.Contain("'stop'");
        journal.Entries.Should().Equal(new[] { "start A", "run A cancelled" }, "nothing is released while the stop step still runs");
        stopMayFinish.SetResult();
        await ((IAsyncDisposable)host).DisposeAsync().OrHang();
        journal.Entries.Should().Equal("start A", "run A cancelled", "release A");
    }

    [Fact]
    public async Task ApplicationStartedStoppingAndStopped_AreOrderedAroundTheServicesStartRunAndStop()
    {
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A"));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStarted.Register(() => journal.Add("ApplicationStarted"));
        lifetime.ApplicationStopping.Register(() => journal.Add("ApplicationStopping"));
        lifetime.ApplicationStopped.Register(() => journal.Add("ApplicationStopped"));

        await host.StartAsync().OrHang();
        await host.StopAsync().OrHang();

        journal.Entries.Should().Equal(
            "start A", "ApplicationStarted",
            "ApplicationStopping", "run A cancelled", "stop A", "release A", "ApplicationStopped");
    }

    [Fact]
    public async Task StopApplicationAlone_DoesNotCancelTheRunNorInvokeTheStopStep()
    {
        var journal = new Journal();
        var runToken = Bounded.NewGate<CancellationToken>();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", run: token =>
        {
            runToken.SetResult(token);
            return Task.Delay(Timeout.Infinite, token);
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        var token = await runToken.Task.OrHang();

        host.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();

        token.IsCancellationRequested.Should().BeFalse("only the host's stop cancels the run");
        journal.Entries.Should().Equal("start A");
        GateOf<A>(host).State.Should().Be(LifecycleState.Running);
        await host.StopAsync().OrHang();
        token.IsCancellationRequested.Should().BeTrue();
        journal.Entries.Should().Equal("start A", "stop A", "release A");
        GateOf<A>(host).State.Should().Be(LifecycleState.Stopped);
    }

    [Fact]
    public async Task ARunThatThrowsSynchronously_IsARunFault_NotAFailedStart_AndRunAsyncEndsWithTheExitCode()
    {
        // DIFFERENCE BY DESIGN: upstream (StopHost), Host.RunAsync throws the BackgroundService's exception. Here the run is
        // invoked on the thread pool (README invariant 5), so even a synchronous throw is a run fault: logged at Critical
        // with its cause, exit code 1, the host stopped; RunAsync itself returns.
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", run: _ => throw new InvalidOperationException("Synchronous failure")));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        var host = builder.Build();
        var logs = host.LogCollector();

        await host.Invoking(h => h.RunAsync().OrHang()).Should().NotThrowAsync();

        Environment.ExitCode.Should().Be(1);
        logs.Logs(5001).Should().ContainSingle().Which.Message.Should().Contain("'A'").And.Contain("Synchronous failure");
        logs.Logs(5010).Should().BeEmpty("the start succeeded; the run faulted");
        logs.Logs(5004).Should().BeEmpty();
        journal.Entries.Should().Equal("start A", "stop A", "release A");
    }

    [Fact]
    public async Task ARunFaultAndAFailingStopStep_AreEachLoggedOnce_AndNoStopOfTheHostThrows()
    {
        // DIFFERENCE BY DESIGN: upstream, the host's StopAsync throws the BackgroundService's fault (an AggregateException
        // with another service's stop failure), on every call. Here nothing is thrown at the host from its stop (README
        // invariant 9): the fault is logged once (5001, exit code 1), the stop failure once (5004), however often it stops.
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var mayFault = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Faulting<A>(journal, "A", mayFault));
        builder.Services.AddSingleton(Journaled<B>(journal, "B", stop: _ =>
        {
            journal.Add("stop B");
            throw new InvalidOperationException("Stop failure");
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("a");
        builder.Services.AddLifecycleService<ScriptedService<B>>("b");
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        mayFault.SetResult();
        await host.Invoking(h => h.WaitForShutdownAsync().OrHang()).Should().NotThrowAsync(); // the fault stops the host
        await host.Invoking(h => h.StopAsync().OrHang()).Should().NotThrowAsync();

        Environment.ExitCode.Should().Be(1);
        host.Logs(5001).Should().ContainSingle().Which.Message.Should().Contain("'a'").And.Contain("A failed");
        var stopFailure = host.Logs(5004).Should().ContainSingle().Subject;
        stopFailure.Message.Should().Contain("'b'");
        stopFailure.Exception!.Message.Should().Be("Stop failure");
        journal.Entries.Where(e => e.StartsWith("stop", StringComparison.Ordinal)).Should().Equal("stop B", "stop A");
    }

    [Fact]
    public async Task ThreeRunsFaultingWithIgnore_AreEachLoggedOnce_AndTornDownInReverseAtTheHostsStop()
    {
        // DIFFERENCE BY DESIGN: upstream's Ignore is one host-wide setting and the faults are not logged by the stop; here
        // RunFaultBehavior is per service, each fault is logged when it happens (5002), and the faulted services are still
        // torn down, in reverse order, at the host's stop, which throws nothing.
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var mayFault = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Faulting<A>(journal, "A", mayFault));
        builder.Services.AddSingleton(Faulting<B>(journal, "B", mayFault));
        builder.Services.AddSingleton(Faulting<C>(journal, "C", mayFault));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A", o => o.RunFaultBehavior = LifecycleServiceRunFaultBehavior.Ignore);
        builder.Services.AddLifecycleService<ScriptedService<B>>("B", o => o.RunFaultBehavior = LifecycleServiceRunFaultBehavior.Ignore);
        builder.Services.AddLifecycleService<ScriptedService<C>>("C", o => o.RunFaultBehavior = LifecycleServiceRunFaultBehavior.Ignore);
        using var host = builder.Build();
        var faulted = Task.WhenAll(WhenRunFaulted<A>(host), WhenRunFaulted<B>(host), WhenRunFaulted<C>(host));
        await host.StartAsync().OrHang();

        mayFault.SetResult();
        await faulted.OrHang();

        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested.Should().BeFalse();
        Environment.ExitCode.Should().Be(0);
        journal.Entries.Should().Equal(new[] { "start A", "start B", "start C" }, "a faulted service keeps what it owns until the host's stop");
        await host.Invoking(h => h.StopAsync().OrHang()).Should().NotThrowAsync();
        host.Logs(5002).Select(r => r.Exception!.Message).Should().BeEquivalentTo("A failed", "B failed", "C failed");
        host.Logs(5001).Should().BeEmpty();
        host.Logs(5004).Should().BeEmpty();
        journal.Entries.Skip(3).Should().Equal("stop C", "release C", "stop B", "release B", "stop A", "release A");
    }

    [Fact]
    public async Task ARunThatIgnoresItsCancellation_FailsTheStopAfterTheServicesShutdownTimeout_AndNothingIsReleased()
    {
        // Upstream, the stop returns once its token fires and the loop is left running. Here too the stop returns, after
        // the service's ShutdownTimeout, naming the run; and without AbandonRunOnTimeout nothing is released under it.
        var time = new ManualTimeProvider();
        var journal = new Journal();
        var runMayReturn = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddSingleton(Journaled<A>(journal, "A", run: _ => runMayReturn.Task)); // ignores its token
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller", o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        using var host = builder.Build();
        await host.StartAsync().OrHang();

        var stop = host.StopAsync();
        await time.AdvanceEachTimeArmedUntil(stop, TimeSpan.FromSeconds(5)).OrHang(); // the wait for the run
        await stop.OrHang();

        var failure = host.Logs(5004).Should().ContainSingle().Subject;
        failure.Message.Should().Contain("'poller'");
        failure.Exception.Should().BeOfType<LifecycleStopTimeoutException>().Which.Step.Should().Be("run");
        journal.Entries.Should().Equal(new[] { "start A" }, "neither the stop step nor the release runs under a run that still runs");
        GateOf<A>(host).State.Should().Be(LifecycleState.StopFailed);
        runMayReturn.SetResult();
    }

    [Fact]
    public async Task ARunThatReturnsOnItsOwn_IsNoFault_AndTheHostsStopStillTearsItDown()
    {
        using var exitCode = new ExitCodeScope();
        var journal = new Journal();
        var ran = Bounded.NewGate();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton(Journaled<A>(journal, "A", run: _ =>
        {
            ran.SetResult();
            return Task.CompletedTask;
        }));
        builder.Services.AddLifecycleService<ScriptedService<A>>("A");
        using var host = builder.Build();
        await host.StartAsync().OrHang();
        await ran.Task.OrHang();

        host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested.Should().BeFalse();
        journal.Entries.Should().Equal(new[] { "start A" }, "a run that is done is not a stop");
        await host.StopAsync().OrHang();

        journal.Entries.Should().Equal("start A", "stop A", "release A");
        host.Logs(5001).Should().BeEmpty();
        host.Logs(5004).Should().BeEmpty();
        Environment.ExitCode.Should().Be(0);
    }

    /// <summary>
    /// A service named <paramref name="name"/> that journals each step: by default its start journals "start {name}" and
    /// owns a resource named <paramref name="name"/>, its run waits for its token and journals "run {name} cancelled",
    /// and its stop step journals "stop {name}". <paramref name="start"/>, <paramref name="run"/> or <paramref name="stop"/>
    /// replaces a step.
    /// </summary>
    private static Script<T> Journaled<T>(
        Journal journal,
        string name,
        Func<LifecycleContext, CancellationToken, Task>? start = null,
        Func<CancellationToken, Task>? run = null,
        Func<CancellationToken, Task>? stop = null) => new()
    {
        Start = start ?? ((context, _) =>
        {
            journal.Add($"start {name}");
            context.Own(new Resource(journal, name));
            return Task.CompletedTask;
        }),
        Run = run ?? (async token =>
        {
            await Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);
            journal.Add($"run {name} cancelled");
        }),
        Stop = stop ?? (_ =>
        {
            journal.Add($"stop {name}");
            return Task.CompletedTask;
        }),
    };

    /// <summary>A <see cref="Journaled{T}"/> service whose run throws "{name} failed" once <paramref name="mayFault"/> is set.</summary>
    private static Script<T> Faulting<T>(Journal journal, string name, TaskCompletionSource mayFault) => Journaled<T>(journal, name, run: async _ =>
    {
        await mayFault.Task;
        throw new InvalidOperationException($"{name} failed");
    });

    private static LifecycleGate GateOf<T>(IHost host) => host.Services.GetRequiredService<LifecycleHostedService<ScriptedService<T>>>().Gate;

    /// <summary>Completes once the service of <typeparamref name="T"/> has faulted (after its own handler logged it).</summary>
    private static Task WhenRunFaulted<T>(IHost host)
    {
        var faulted = Bounded.NewGate();
        GateOf<T>(host).StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        return faulted.Task;
    }

    /// <summary>A lifecycle service that the container creates, and so disposes, journaling each step.</summary>
    private sealed class DisposableService(Journal journal) : LifecycleService, IAsyncDisposable
    {
        private int _starts;

        public int Starts => Volatile.Read(ref _starts);

        public override Task StartAsync(LifecycleContext context, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _starts);
            journal.Add("start");
            context.Own(new Resource(journal, "connection"));
            return Task.CompletedTask;
        }

        public override async Task RunAsync(CancellationToken stoppingToken)
        {
            await Task.Delay(Timeout.Infinite, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            journal.Add("run cancelled");
        }

        public override Task StopAsync(CancellationToken cancellationToken)
        {
            journal.Add("stop");
            return base.StopAsync(cancellationToken);
        }

        public ValueTask DisposeAsync()
        {
            journal.Add("dispose service");
            return ValueTask.CompletedTask;
        }
    }
}
