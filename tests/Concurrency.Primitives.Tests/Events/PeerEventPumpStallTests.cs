using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// HandlerStallThreshold: a consumer call that runs past the threshold is reported once (log, metric, event) with the
/// peer, the event type and how long it has run, on the pump's clock, by one timer per pump.
/// </summary>
public sealed class PeerEventPumpStallTests
{
    private static readonly TimeSpan Threshold = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    [Fact]
    public async Task AStalledCall_IsReportedOnce_AtTheThreshold_WithItsPeerEventTypeAndDuration_AndALaterStallOnItsOwn()
    {
        using var setup = new Setup();
        var peer = setup.Pump.Connect("sync-peer");
        peer.MarkReady();
        peer.TryPost("m1").Should().BeTrue();
        var added = await setup.Consumer.NextCallAsync();
        added.What.Should().Be("added");
        await setup.Time.WhenTimersArmed(1).OrHang();

        setup.Time.Advance(Threshold - Tick);
        setup.Stalls.Should().BeEmpty("the call has not reached the threshold");
        setup.Time.Advance(Tick);
        var stall = setup.Stalls.Should().ContainSingle().Which;
        stall.Handle.Should().BeSameAs(peer);
        stall.Peer.Should().Be("sync-peer");
        stall.EventType.Should().Be(PeerEventType.Added);
        stall.Elapsed.Should().Be(Threshold);
        stall.Threshold.Should().Be(Threshold);
        var logged = setup.Log.Entries.Should().ContainSingle(e => e.EventId == 4009).Which;
        logged.Level.Should().Be(LogLevel.Warning);
        logged["Peer"].Should().Be("sync-peer");
        logged["EventType"].Should().Be(PeerEventType.Added);
        logged["Elapsed"].Should().Be(Threshold);
        setup.Metrics.Sum("handler_stalls", "event.kind", "added").Should().Be(1);

        setup.Time.Advance(TimeSpan.FromSeconds(60));
        setup.Stalls.Should().HaveCount(1, "the same call is reported once, however long it stays stalled");

        added.Done.SetResult();
        var message = await setup.Consumer.NextCallAsync();
        message.What.Should().Be("m1");
        setup.Time.Advance(Threshold);
        setup.Stalls.Should().HaveCount(2, "a later call that stalls is a stall of its own");
        setup.Stalls[1].EventType.Should().Be(PeerEventType.Message);
        setup.Stalls[1].Elapsed.Should().Be(Threshold);
        message.Done.SetResult();
        setup.Metrics.Sum("handler_stalls").Should().Be(2);

        peer.Disconnect();
        var removed = await setup.Consumer.NextCallAsync();
        removed.What.Should().Be("removed");
        setup.Time.Advance(Threshold);
        setup.Stalls.Should().HaveCount(3, "a Removed call that stalls is watched like the others");
        setup.Stalls[2].EventType.Should().Be(PeerEventType.Removed);
        removed.Done.SetResult();
        setup.Metrics.Sum("handler_stalls", "event.kind", "message").Should().Be(1);
        setup.Metrics.Sum("handler_stalls", "event.kind", "removed").Should().Be(1);
    }

    [Fact]
    public async Task ACallThatBeganAfterTheWatchdogLastLooked_IsReportedAtItsOwnThreshold_NotEarlierNorAPeriodLater()
    {
        using var setup = new Setup();
        var peer = setup.Pump.Connect("p");
        peer.MarkReady();
        peer.TryPost("m1");
        var added = await setup.Consumer.NextCallAsync();
        await setup.Time.WhenTimersArmed(1).OrHang(); // due at 10 s

        setup.Time.Advance(TimeSpan.FromSeconds(4));
        added.Done.SetResult();
        var message = await setup.Consumer.NextCallAsync(); // began at 4 s
        setup.Time.Advance(TimeSpan.FromSeconds(6));
        setup.Stalls.Should().BeEmpty("at 10 s the call in progress has run for 6 s only");
        setup.Time.Advance(TimeSpan.FromSeconds(4) - Tick);
        setup.Stalls.Should().BeEmpty();
        setup.Time.Advance(Tick);

        setup.Stalls.Should().ContainSingle().Which.Elapsed.Should().Be(Threshold, "reported at 14 s: its start plus the threshold");
        message.Done.SetResult();
    }

    [Fact]
    public async Task ACallBlockedSynchronouslyInTheConsumer_IsReportedToo()
    {
        using var release = new ManualResetEventSlim();
        var entered = Bounded.NewGate();
        var time = new ManualTimeProvider();
        var stalls = new List<PeerHandlerStalledEventArgs<string, string>>();
        var consumer = new BlockingConsumer(entered, release);
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { HandlerStallThreshold = Threshold, TimeProvider = time });
        pump.HandlerStalled += (_, e) => stalls.Add(e);
        var peer = pump.Connect("p");
        peer.MarkReady();
        peer.TryPost("blocks the loop's thread");
        await entered.Task.OrHang();

        time.Advance(Threshold);

        stalls.Should().ContainSingle().Which.EventType.Should().Be(PeerEventType.Message);
        release.Set();
        await pump.DisposeAsync();
    }

    [Fact]
    public async Task AThrowingListener_IsLoggedAndCounted_AndTheOtherListenersStillSeeTheStall()
    {
        using var setup = new Setup(throwingListenerFirst: true);
        setup.Pump.Connect("p").MarkReady();
        var added = await setup.Consumer.NextCallAsync();
        await setup.Time.WhenTimersArmed(1).OrHang();

        setup.Time.Advance(Threshold);

        setup.Stalls.Should().ContainSingle();
        setup.Log.Entries.Should().ContainSingle(e => e.EventId == 4010).Which.Exception.Should().BeOfType<InvalidOperationException>();
        setup.Metrics.Sum("callback_faults", "callback", "handler_stalled").Should().Be(1);
        added.Done.SetResult();
        var close = setup.Pump.CloseAsync();
        (await setup.Consumer.NextCallAsync()).Done.SetResult(); // Removed
        await close.OrHang();
        setup.Pump.Completion.IsCompletedSuccessfully.Should().BeTrue();
    }

    [Fact]
    public async Task WithoutAThreshold_NoTimerIsArmed_AndNothingIsReported()
    {
        var time = new ManualTimeProvider();
        var consumer = new SteppingConsumer();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { TimeProvider = time });
        var raised = 0;
        pump.HandlerStalled += (_, _) => raised++;
        pump.Connect("p").MarkReady();
        var added = await consumer.NextCallAsync();

        time.ArmedTimers.Should().Be(0);
        time.Advance(TimeSpan.FromHours(1));
        raised.Should().Be(0);
        added.Done.SetResult();
        var close = pump.CloseAsync(Timeout.InfiniteTimeSpan);
        (await consumer.NextCallAsync()).Done.SetResult(); // Removed
        await close.OrHang();
    }

    [Fact]
    public async Task OnceThePumpHasCompleted_ItsWatchdogTimerIsGone()
    {
        using var setup = new Setup();
        setup.Pump.Connect("p").MarkReady();
        (await setup.Consumer.NextCallAsync()).Done.SetResult();
        var removed = setup.Pump.CloseAsync();
        (await setup.Consumer.NextCallAsync()).Done.SetResult();
        await removed.OrHang();

        setup.Time.ArmedTimers.Should().Be(0);
        setup.Time.Advance(TimeSpan.FromHours(1));
        setup.Stalls.Should().BeEmpty();
    }

    /// <summary>
    /// A pump with a 10 s threshold on a manual clock (and no shutdown timeout, so that the watchdog's is the only timer),
    /// a stepping consumer, and its stalls, logs and metrics recorded.
    /// </summary>
    private sealed class Setup : IDisposable
    {
        public Setup(bool throwingListenerFirst = false)
        {
            var name = "stall-" + Guid.NewGuid().ToString("N");
            Metrics = new PumpMetricRecorder(name);
            Pump = new PeerEventPump<string, string>(Consumer, new PeerEventPumpOptions { Name = name, HandlerStallThreshold = Threshold, TimeProvider = Time, Logger = Log, ShutdownTimeout = Timeout.InfiniteTimeSpan });
            if (throwingListenerFirst)
            {
                Pump.HandlerStalled += (_, _) => throw new InvalidOperationException("listener bug");
            }

            Pump.HandlerStalled += (_, e) => Stalls.Add(e);
        }

        public ManualTimeProvider Time { get; } = new();

        public RecordingLogger Log { get; } = new();

        public SteppingConsumer Consumer { get; } = new();

        public PumpMetricRecorder Metrics { get; }

        public PeerEventPump<string, string> Pump { get; }

        public List<PeerHandlerStalledEventArgs<string, string>> Stalls { get; } = new();

        public void Dispose() => Metrics.Dispose();
    }

    /// <summary>A consumer whose messages block the calling thread (sync-over-async in a handler) until released.</summary>
    private sealed class BlockingConsumer : IPeerEventConsumer<string, string>
    {
        private readonly TaskCompletionSource _entered;
        private readonly ManualResetEventSlim _release;

        public BlockingConsumer(TaskCompletionSource entered, ManualResetEventSlim release)
        {
            _entered = entered;
            _release = release;
        }

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken)
        {
            _entered.TrySetResult();
            _release.Wait(Bounded.HangLimit);
            return default;
        }

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
    }
}
