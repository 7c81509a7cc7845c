using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The stall watchdog's looks (README, "stalled handlers"): it reports only a call in progress, never one that has ended;
/// a look between two calls while the loop is busy keeps it watching; it is left unarmed while the loop is idle and armed
/// again by the next event that wakes the loop; an event that queues nothing wakes neither. An idle loop also wakes for a
/// message and for a reconnect. All on a manual clock.
/// </summary>
public sealed class PeerEventPumpWatchdogLookTests
{
    private static readonly TimeSpan Threshold = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ACallThatHasEnded_IsNeverReported_NeitherBeforeItsThresholdNorAfterItsOwnReport()
    {
        var setup = new Setup();
        var peer = setup.Pump.Connect("p");
        peer.MarkReady();
        var added = await setup.Consumer.NextCallAsync();
        await setup.Time.WhenTimersArmed().OrHang(); // the watchdog looks at 10 s

        setup.Time.Advance(TimeSpan.FromSeconds(4));
        added.Done.SetException(new InvalidOperationException("added failed"));
        await setup.Log.WaitFor(e => e.EventId == 4001).OrHang(); // the loop has seen the call end
        setup.Time.Advance(TimeSpan.FromSeconds(6));
        setup.Stalls.Should().BeEmpty("the call ended at 4 s, before its threshold, and nothing runs at 10 s");

        peer.TryPost("m1").Should().BeTrue();
        var m1 = await setup.Consumer.NextCallAsync(); // begins at 10 s
        setup.Time.Advance(Threshold);
        setup.Stalls.Should().ContainSingle().Which.EventType.Should().Be(PeerEventType.Message);
        m1.Done.SetException(new InvalidOperationException("m1 failed"));
        await setup.Log.WaitFor(e => e.EventId == 4001 && e.Exception!.Message == "m1 failed").OrHang();
        setup.Time.Advance(Threshold);

        setup.Stalls.Should().HaveCount(1, "the reported call has ended and no other runs");
        await setup.CloseAsync(livePeers: 1);
    }

    [Fact]
    public async Task ALookBetweenTwoCallsWhileTheLoopIsBusy_KeepsTheWatchdogWatching_SoTheNextCallsStallIsReported()
    {
        // The consumer's log of the first call's failure is written on the loop between the two calls; the clock reaches
        // the watchdog's look right then.
        var setup = new Setup(clockJumpOnLog: 4001);
        var peer = setup.Pump.Connect("p");
        peer.MarkReady();
        peer.TryPost("m1").Should().BeTrue();
        var added = await setup.Consumer.NextCallAsync();
        await setup.Time.WhenTimersArmed().OrHang(); // the watchdog looks at 10 s

        added.Done.SetException(new InvalidOperationException("added failed"));
        var m1 = await setup.Consumer.NextCallAsync(); // the look at 10 s found no call in progress; m1 began at 10 s
        setup.Stalls.Should().BeEmpty();
        setup.Time.Advance(Threshold);

        setup.Stalls.Should().ContainSingle().Which.Elapsed.Should().Be(Threshold, "the look between the calls armed the next one");
        m1.Done.SetResult();
        await setup.CloseAsync(livePeers: 1);
    }

    [Fact]
    public async Task AfterTheLoopHasGoneIdle_AMessageWakesItAndArmsTheWatchdogAgain_AndItsStallIsReported()
    {
        var setup = new Setup();
        var peer = setup.Pump.Connect("p");
        peer.MarkReady();
        (await setup.Consumer.NextCallAsync()).Done.SetResult(); // Added
        await setup.LoopHasGoneIdleAsync();

        peer.TryPost("m1").Should().BeTrue();

        setup.Time.ArmedTimers.Should().Be(1, "the message woke the loop, and with it the watchdog");
        var m1 = await setup.Consumer.NextCallAsync();
        m1.What.Should().Be("m1");
        setup.Time.Advance(Threshold);
        setup.Stalls.Should().ContainSingle(s => s.EventType == PeerEventType.Message).Which.Elapsed.Should().Be(Threshold);
        m1.Done.SetResult();
        await setup.CloseAsync(livePeers: 1);
    }

    [Fact]
    public async Task AReconnectWhileTheLoopIsIdle_WakesItToDeliverTheOldConnectionsRemoved()
    {
        var setup = new Setup();
        var first = setup.Pump.Connect("p");
        first.MarkReady();
        (await setup.Consumer.NextCallAsync()).Done.SetResult(); // Added
        await setup.LoopHasGoneIdleAsync();

        var second = setup.Pump.Connect("p");

        var removed = await setup.Consumer.NextCallAsync();
        removed.What.Should().Be("removed");
        first.State.Should().Be(PeerConnectionState.Disconnected);
        removed.Done.SetResult();
        second.MarkReady().Should().BeTrue();
        (await setup.Consumer.NextCallAsync()).Done.SetResult(); // the new connection's Added
        await setup.CloseAsync(livePeers: 1);
    }

    [Fact]
    public async Task AConnectThatQueuesNothing_LeavesTheLoopAndItsWatchdogIdle()
    {
        var setup = new Setup();

        var first = setup.Pump.Connect("p");
        setup.Time.ArmedTimers.Should().Be(0, "nothing reaches the consumer before MarkReady: the loop stays idle");
        var second = setup.Pump.Connect("p");
        setup.Time.ArmedTimers.Should().Be(0, "the connection it replaced never became ready: no Removed to deliver");

        first.State.Should().Be(PeerConnectionState.Disconnected);
        second.MarkReady().Should().BeTrue();
        setup.Time.ArmedTimers.Should().Be(1);
        (await setup.Consumer.NextCallAsync()).Done.SetResult(); // Added
        await setup.CloseAsync(livePeers: 1);
    }

    /// <summary>
    /// A pump with a 10 s stall threshold on a manual clock (no shutdown timeout: the watchdog's is the only timer), a
    /// stepping consumer, a recording logger (or one that moves the clock by the threshold when it first logs an event id),
    /// and the stalls it reports.
    /// </summary>
    private sealed class Setup
    {
        public Setup(int? clockJumpOnLog = null)
        {
            ILogger logger = clockJumpOnLog is { } eventId ? new ClockJumpingLogger(Time, eventId, Threshold) : Log;
            Pump = new PeerEventPump<string, string>(Consumer, new PeerEventPumpOptions { HandlerStallThreshold = Threshold, TimeProvider = Time, Logger = logger, ShutdownTimeout = Timeout.InfiniteTimeSpan });
            Pump.HandlerStalled += (_, e) =>
            {
                lock (Stalls)
                {
                    Stalls.Add(e);
                }
            };
        }

        public ManualTimeProvider Time { get; } = new();

        public RecordingLogger Log { get; } = new();

        public SteppingConsumer Consumer { get; } = new();

        public PeerEventPump<string, string> Pump { get; }

        public List<PeerHandlerStalledEventArgs<string, string>> Stalls { get; } = new();

        /// <summary>
        /// Returns once the loop has found nothing more to deliver and unscheduled itself, which it does on its own. The
        /// manual clock lets the watchdog say when: a look that finds the loop idle leaves the timer unarmed, one that finds
        /// it still active arms it again. (A look may still see the last call in progress, if the loop has not yet seen it
        /// return, and report it: tests that idle the loop count only the stalls of later calls.)
        /// </summary>
        public async Task LoopHasGoneIdleAsync()
        {
            for (var looks = 0; Time.ArmedTimers > 0; looks++)
            {
                looks.Should().BeLessThan(1_000_000, "a loop with nothing to deliver goes idle");
                Time.Advance(Threshold);
                await Task.Yield();
            }
        }

        /// <summary>Closes the pump, letting through the Removed of each of <paramref name="livePeers"/> (no call may be pending).</summary>
        public async Task CloseAsync(int livePeers)
        {
            var close = Pump.CloseAsync();
            for (var i = 0; i < livePeers; i++)
            {
                var removed = await Consumer.NextCallAsync();
                removed.What.Should().Be("removed");
                removed.Done.SetResult();
            }

            await close.OrHang();
        }
    }

    /// <summary>A logger that, the first time it is given <c>eventId</c>, moves the manual clock on (on the logging thread).</summary>
    private sealed class ClockJumpingLogger : ILogger
    {
        private readonly ManualTimeProvider _time;
        private readonly int _eventId;
        private readonly TimeSpan _by;
        private int _jumped;

        public ClockJumpingLogger(ManualTimeProvider time, int eventId, TimeSpan by)
        {
            _time = time;
            _eventId = eventId;
            _by = by;
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == _eventId && Interlocked.Exchange(ref _jumped, 1) == 0)
            {
                _time.Advance(_by);
            }
        }
    }
}
