using System;
using System.Diagnostics.Metrics;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// Go's <c>sync.WaitGroup</c> tests (src/sync/waitgroup_test.go), ported onto <see cref="TaskTracker.Add"/>,
/// <see cref="TaskTracker.Done"/>, <see cref="TaskTracker.WaitAsync"/> and, for <c>WaitGroup.Go</c>, <see cref="TaskTracker.Go(Func{CancellationToken, Task}, string?, CancellationToken)"/>.
/// Where Go panics on misuse, the library's documented behaviour is asserted instead (each test says so).
/// </summary>
public sealed class GoWaitGroupConformanceTests
{
    // Ports Go sync/waitgroup_test.go TestWaitGroup (and its helper testWaitGroup): two WaitGroups used as barriers,
    // reused for 8 rounds of 16 goroutines; nobody passes wg2 before its last Done, and everybody passes it after.
    [Fact]
    public async Task WaitAsync_AsTwoBarriersReusedForEightRounds_ReleasesNobodyTooSoonAndEverybodyAtTheEnd()
    {
        var wg1 = new TaskTracker();
        var wg2 = new TaskTracker();

        // Run the same test a few times to ensure the barrier is in a proper state.
        for (var round = 0; round != 8; round++)
        {
            await BarrierRoundAsync(wg1, wg2);
        }

        wg1.Count.Should().Be(0);
        wg2.Count.Should().Be(0);
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupMisuse: Add(1), Done(), Done(). Go panics with
    // "sync: negative WaitGroup counter"; by design this library's Done() throws InvalidOperationException and
    // leaves the count intact (zero), so the tracker stays usable.
    [Fact]
    public async Task Done_MoreTimesThanAdd_ThrowsInvalidOperation_AndLeavesTheCountAtZero()
    {
        var wg = new TaskTracker();
        wg.Add(1);
        wg.Done();

        wg.Invoking(t => t.Done()).Should().Throw<InvalidOperationException>().WithMessage("*more times than Add()*");

        wg.Count.Should().Be(0);
        wg.WaitAsync().IsCompletedSuccessfully.Should().BeTrue("the count is zero, not negative");
        wg.Add(1);
        wg.Count.Should().Be(1, "the refused Done left the counter usable");
        var wait = wg.WaitAsync();
        wait.IsCompleted.Should().BeFalse();
        wg.Done();
        await wait.OrHang();
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupMisuse2 ("Add called concurrently with Wait"): Add(1); one goroutine
    // Waits while another does Add(1)+Done() and the main one Done(). Go may panic; this library documents no such
    // detection, only that WaitAsync completes once the count has been zero at some moment after the call. So every
    // iteration must end with no exception, every wait completed and a count of zero; and a wait that began after the
    // second Add must still be pending when the main Done() returns, since the second registration is then still held
    // (the bad guy holds it until the main Done has returned). Bounded: 2,000 iterations (Go runs 1e6).
    [Fact]
    public async Task AddConcurrentWithWaitAndDone_NeverThrows_AndAWaitBegunAfterTheAddIsNotWokenByTheEarlierDone()
    {
        for (var i = 0; i < 2_000; i++)
        {
            var wg = new TaskTracker();
            var badAdded = 0;
            PublishedWait? published = null;
            var start = Bounded.NewGate();
            var mainDone = Bounded.NewGate();
            wg.Add(1);
            var waiter = Task.Run(async () =>
            {
                await start.Task;
                var addedBefore = Volatile.Read(ref badAdded) == 1;
                var wait = wg.WaitAsync();
                Volatile.Write(ref published, new PublishedWait(wait, addedBefore));
                await wait;
            });
            var bad = Task.Run(async () =>
            {
                await start.Task;
                wg.Add(1); // this is the bad guy
                Volatile.Write(ref badAdded, 1);
                await mainDone.Task;
                wg.Done();
            });
            start.SetResult();
            wg.Done();
            if (Volatile.Read(ref published) is { AddedBefore: true } seen)
            {
                seen.Wait.IsCompleted.Should().BeFalse($"iteration {i}: the wait began after the second Add, whose registration is still held");
            }

            mainDone.SetResult();
            await Task.WhenAll(waiter, bad).OrHang();
            wg.Count.Should().Be(0, $"iteration {i}");
        }
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupMisuse2 deterministically, at the one interleaving that matters: the
    // last Done() has swapped the count to zero but not yet woken waiters when another caller Add(1)s (legal: no Wait is
    // in progress, so Go's WaitGroup neither panics nor wakes anyone) and then calls WaitAsync. The count has been 1 ever
    // since that call, so by WaitAsync's contract ("completes when the count has been zero at some moment after the
    // call") the wait must still be pending when Done() returns. The hook is the tracker's outstanding-count metric,
    // which Done() reports between its swap and its wake-up.
    [Fact]
    public async Task WaitAsync_BegunAfterAnAddThatFollowedTheLastDone_StaysPendingUntilTheCountIsZeroAgain()
    {
        var name = "wg-misuse2-" + Guid.NewGuid().ToString("N");
        var wg = new TaskTracker(new TaskTrackerOptions { Name = name });
        Task? wait = null;
        var hooked = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Concurrency.Primitives" && instrument.Name == "concurrency.primitives.tracker.outstanding")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "tracker.name" && (string?)tag.Value == name && value == -1 && Interlocked.Exchange(ref hooked, 1) == 0)
                {
                    // Between the last Done's swap to zero and its wake-up: another caller adds, then waits.
                    wg.Add(1);
                    wait = wg.WaitAsync();
                }
            }
        });
        listener.Start();

        wg.Add(1);
        wg.Done();

        hooked.Should().Be(1, "the hook ran inside Done()");
        wg.Count.Should().Be(1);
        wait!.IsCompleted.Should().BeFalse("the count has been 1 ever since WaitAsync was called");
        wg.Done();
        await wait.OrHang();
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupMisuse2 deterministically on the lease path: the same interleaving as
    // above, with the last registration released by disposing a Register() lease. The hook is the tracker's own Debug
    // log "released", which Release writes between its swap to zero and its wake-up.
    [Fact]
    public async Task WaitAsync_BegunAfterAnAddThatFollowedTheLastLeaseRelease_StaysPendingUntilTheCountIsZeroAgain()
    {
        TaskTracker? wg = null;
        Task? wait = null;
        var logger = new HookLogger(eventId =>
        {
            if (eventId == 1002 && wait is null)
            {
                wg!.Add(1);
                wait = wg.WaitAsync();
            }
        });
        wg = new TaskTracker(new TaskTrackerOptions { Logger = logger });
        var lease = wg.Register("last");

        lease.Dispose();

        wait.Should().NotBeNull("the hook ran inside the release");
        wg.Count.Should().Be(1);
        wait!.IsCompleted.Should().BeFalse("the count has been 1 ever since WaitAsync was called");
        wg.Done();
        await wait.OrHang();
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupMisuse3 ("WaitGroup is reused before previous Wait has returned"):
    // one goroutine Done()s while another Waits, then at once reuses the group (Add(1), a goroutine Done(), Wait) while
    // the main goroutine's Wait may not have returned. Go may panic; this library documents reuse as legal and WaitAsync
    // as "completes when the count has been zero at some moment after the call". So every iteration ends with no
    // exception and every wait completed; and a main wait that began after the reuse's Add must still be pending when
    // the first Done() returns (the reuse's Done waits for that). Bounded: 2,000 iterations (Go runs 1e6).
    [Fact]
    public async Task ReuseBeforeThePreviousWaitReturned_NeverThrows_AndAWaitBegunAfterTheReusesAddIsNotWokenByTheEarlierDone()
    {
        for (var i = 0; i < 2_000; i++)
        {
            var wg = new TaskTracker();
            var reuseAdded = 0;
            PublishedWait? published = null;
            var start = Bounded.NewGate();
            var firstReturned = Bounded.NewGate();
            var woken = false;
            wg.Add(1);
            var first = Task.Run(async () =>
            {
                await start.Task;
                wg.Done();
                woken = Volatile.Read(ref published) is { AddedBefore: true } seen && seen.Wait.IsCompleted;
                firstReturned.SetResult();
            });
            var reuser = Task.Run(async () =>
            {
                await start.Task;
                await wg.WaitAsync();

                // Start reusing the tracker before the main wait below has returned.
                wg.Add(1);
                Volatile.Write(ref reuseAdded, 1);
                var reuseDone = Task.Run(async () =>
                {
                    await firstReturned.Task;
                    wg.Done();
                });
                await wg.WaitAsync();
                await reuseDone;
            });
            start.SetResult();
            var addedBefore = Volatile.Read(ref reuseAdded) == 1;
            var wait = wg.WaitAsync();
            Volatile.Write(ref published, new PublishedWait(wait, addedBefore));
            await wait.OrHang();

            await Task.WhenAll(first, reuser).OrHang();
            woken.Should().BeFalse($"iteration {i}: the main wait began after the reuse's Add, whose registration was still held when the first Done returned");
            wg.Count.Should().Be(0, $"iteration {i}");
        }
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupRace: 1,000 times, two goroutines each bump a counter then Done();
    // Wait must not return before both bumped it ("Spurious wakeup from Wait").
    [Fact]
    public async Task WaitAsync_AfterTwoAddDonePairs_NeverWakesBeforeBothRan()
    {
        for (var i = 0; i < 1_000; i++)
        {
            var wg = new TaskTracker();
            var n = 0;
            wg.Add(1);
            var one = Task.Run(() =>
            {
                Interlocked.Increment(ref n);
                wg.Done();
            });
            wg.Add(1);
            var two = Task.Run(() =>
            {
                Interlocked.Increment(ref n);
                wg.Done();
            });

            await wg.WaitAsync().OrHang();

            Volatile.Read(ref n).Should().Be(2, $"iteration {i}: spurious wakeup from WaitAsync");
            await Task.WhenAll(one, two).OrHang();
        }
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupRace with its goroutines started by the Go 1.25 WaitGroup.Go, whose
    // analogue is TaskTracker.Go (registered before it starts, released when its task completes): same invariant.
    [Fact]
    public async Task WaitAsync_AfterTwoGoCalls_NeverWakesBeforeBothRan()
    {
        for (var i = 0; i < 1_000; i++)
        {
            var wg = new TaskTracker();
            var n = 0;
            await wg.Go(_ =>
            {
                Interlocked.Increment(ref n);
                return Task.CompletedTask;
            });
            await wg.Go(async _ =>
            {
                await Task.Yield();
                Interlocked.Increment(ref n);
            });

            await wg.WaitAsync().OrHang();

            Volatile.Read(ref n).Should().Be(2, $"iteration {i}: spurious wakeup from WaitAsync");
            wg.Count.Should().Be(0, $"iteration {i}");
        }
    }

    // Ports Go sync/waitgroup_test.go TestWaitGroupAlign: a WaitGroup as a field placed after a byte, Add(1), Done from
    // another goroutine, Wait. Alignment is not a concern in .NET; the port checks the same behaviour through a field.
    [Fact]
    public async Task Tracker_HeldInAFieldAfterAByte_WorksAcrossThreads()
    {
        var x = new Holder { X = 1, Wg = new TaskTracker() };
        x.Wg.Add(1);
        var done = Task.Run(() => x.Wg.Done());

        await x.Wg.WaitAsync().OrHang();

        await done.OrHang();
        x.Wg.Count.Should().Be(0);
    }

    // Ports Go 1.25 sync/waitgroup_test.go TestWaitGroupGo: wg.Go(func() { i++ }); wg.Wait(); i must be 1 (Wait
    // synchronizes with the end of the function, so the plain, non-atomic write is visible).
    [Fact]
    public async Task Go_ThenWaitAsync_SeesTheWorksPlainWrite()
    {
        var wg = new TaskTracker();
        var i = 0;
        await wg.Go(_ =>
        {
            i++;
            return Task.CompletedTask;
        });

        await wg.WaitAsync().OrHang();

        i.Should().Be(1);
        wg.Count.Should().Be(0);
    }

    // Ports Go 1.25's documented WaitGroup.Go rule "If the WaitGroup is not empty, Go may happen at any time. This means
    // a goroutine started by Go may itself call Go." (no test in waitgroup_test.go; exercised here both through the
    // tracker and through the work's own handle): Wait returns only after the nested work finished.
    [Fact]
    public async Task WorkStartedByGo_MayItselfCallGo_AndWaitAsyncWaitsForTheNestedWork()
    {
        var wg = new TaskTracker();
        var count = 0;
        var nestedGate = Bounded.NewGate();
        await wg.Go(async (self, _) =>
        {
            Interlocked.Increment(ref count);
            await wg.Go(async _ =>
            {
                await nestedGate.Task;
                Interlocked.Increment(ref count);
            });
            self.Go(_ =>
            {
                Interlocked.Increment(ref count);
                return Task.CompletedTask;
            });
        });
        await wg.Go(_ =>
        {
            Interlocked.Increment(ref count);
            return Task.CompletedTask;
        });

        var wait = wg.WaitAsync();
        wait.IsCompleted.Should().BeFalse("the nested work is held by its gate");
        nestedGate.SetResult();
        await wait.OrHang();

        Volatile.Read(ref count).Should().Be(4);
    }

    // Ports Go sync/waitgroup_test.go TestIssue76126 (a function passed to WaitGroup.Go panics; Wait must never return,
    // the panic ends the process). By design this library catches an exception thrown by Go work instead: the
    // registration is released (so WaitAsync completes) and the failure is recorded, never lost, and thrown by CloseAsync
    // (await throws it; the task's Exception holds every recorded failure, here just this one).
    [Fact]
    public async Task Go_WorkThatThrows_IsReleased_AndCloseAsyncThrowsTheFailure()
    {
        var wg = new TaskTracker();
        var boom = new InvalidOperationException("test");
        await wg.Go(_ => throw boom);

        await wg.WaitAsync().OrHang();

        wg.Count.Should().Be(0);
        var close = wg.CloseAsync();
        var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        thrown.Which.Should().BeSameAs(boom);
        close.Exception!.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(boom);
    }

    private static async Task BarrierRoundAsync(TaskTracker wg1, TaskTracker wg2)
    {
        const int n = 16;
        wg1.Add(n);
        wg2.Add(n);
        var exited = 0;
        var goroutines = new Task[n];
        for (var i = 0; i != n; i++)
        {
            goroutines[i] = Task.Run(async () =>
            {
                wg1.Done();
                await wg2.WaitAsync();
                Interlocked.Increment(ref exited);
            });
        }

        await wg1.WaitAsync().OrHang();
        for (var i = 0; i != n; i++)
        {
            Volatile.Read(ref exited).Should().Be(0, "WaitGroup released group too soon");
            wg2.Done();
        }

        await Task.WhenAll(goroutines).OrHang(); // hangs if the barrier fails to unlock someone
        exited.Should().Be(n);
    }

    /// <summary>A wait as its caller published it: its task, and whether the competing Add had happened before the call.</summary>
    private sealed record PublishedWait(Task Wait, bool AddedBefore);

    private sealed class Holder
    {
        public byte X;
        public TaskTracker Wg = null!;
    }

    /// <summary>A logger that calls back on every event, on the logging thread, with the event id.</summary>
    private sealed class HookLogger : ILogger
    {
        private readonly Action<int> _onEvent;

        public HookLogger(Action<int> onEvent) => _onEvent = onEvent;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _onEvent(eventId.Id);
    }
}
