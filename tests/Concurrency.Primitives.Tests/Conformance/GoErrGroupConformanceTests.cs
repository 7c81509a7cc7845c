using System;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// golang.org/x/sync <c>errgroup</c> tests (errgroup/errgroup_test.go), ported onto <see cref="TaskTracker"/>. The
/// mapping: <c>g.Go(f)</c> is <c>await tracker.Go(...)</c> (it waits for a slot as Go blocks); an error returned by
/// <c>f</c> is a faulted task; <c>g.Wait()</c>'s error is what awaiting <see cref="TaskTracker.CloseAsync(CancellationToken)"/>
/// throws: the first failure (the returned task's <see cref="Task.Exception"/> holds every failure, in the order it
/// happened, as with <c>Task.WhenAll</c>);
/// <c>WithContext</c>'s context is <see cref="TaskTracker.ClosingToken"/> with <see cref="TaskTrackerOptions.CancelOnFirstFailure"/>;
/// <c>SetLimit(n)</c> is <see cref="TaskTrackerOptions.MaxConcurrency"/>, fixed at construction.
/// </summary>
public sealed class GoErrGroupConformanceTests
{
    // Ports golang.org/x/sync errgroup/errgroup_test.go TestZeroGroup: a zero Group (no context, no limit); after each
    // Go, Wait returns the first non-nil error so far. Go calls Wait after every Go on one group; a closed tracker
    // accepts no more work, so each prefix of the case runs on its own tracker (the Go calls sequenced by WaitAsync) and
    // is then closed, twice (a second Wait returns the same error). Awaiting the close throws the first error, and the
    // close's task holds every failure, in order. A zero Group "does not cancel on error": ClosingToken stays
    // uncancelled until the close.
    [Theory]
    [InlineData("")]
    [InlineData("nil")]
    [InlineData("err1")]
    [InlineData("err1 nil")]
    [InlineData("err1 nil err2")]
    public async Task CloseAsync_OfADefaultTracker_ThrowsTheFirstFailureFirst_OrNothingWithoutFailures(string errs)
    {
        var err1 = new InvalidOperationException("errgroup_test: 1");
        var err2 = new InvalidOperationException("errgroup_test: 2");
        var cases = errs.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e switch { "err1" => err1, "err2" => err2, _ => (Exception?)null })
            .ToArray();

        for (var length = cases.Length == 0 ? 0 : 1; length <= cases.Length; length++)
        {
            var g = new TaskTracker();
            foreach (var err in cases[..length])
            {
                await g.Go(_ => err is null ? Task.CompletedTask : Task.FromException(err));
                await g.WaitAsync().OrHang();
            }

            g.ClosingToken.IsCancellationRequested.Should().BeFalse("a zero Group does not cancel on error");
            var failures = cases[..length].OfType<Exception>().ToList();
            for (var wait = 0; wait < 2; wait++)
            {
                if (failures.Count == 0)
                {
                    await g.CloseAsync().OrHang();
                }
                else
                {
                    var close = g.CloseAsync();
                    var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
                    thrown.Which.Should().BeSameAs(failures[0], "Wait returns the first error");
                    close.Exception!.InnerExceptions.Should().Equal(failures);
                }
            }
        }
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestWithContext: a group WithContext; Wait returns the first
    // error (or nil), and afterwards the context is cancelled in every case (errgroup cancels it when Wait returns;
    // CloseAsync cancels ClosingToken when it begins).
    [Theory]
    [InlineData("")]
    [InlineData("nil")]
    [InlineData("doom")]
    [InlineData("doom nil")]
    public async Task CloseAsync_WithCancelOnFirstFailure_ThrowsTheFailure_AndClosingTokenIsCancelledAfterwards(string errs)
    {
        var errDoom = new InvalidOperationException("group_test: doomed");
        var cases = errs.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e == "doom" ? errDoom : null)
            .ToArray();
        var g = new TaskTracker(new TaskTrackerOptions { CancelOnFirstFailure = true });
        var ctx = g.ClosingToken;

        foreach (var err in cases)
        {
            await g.Go(_ => err is null ? Task.CompletedTask : Task.FromException(err));
        }

        if (cases.Contains(errDoom))
        {
            var close = g.CloseAsync();
            var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
            thrown.Which.Should().BeSameAs(errDoom);
            close.Exception!.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(errDoom);
        }
        else
        {
            await g.CloseAsync().OrHang();
        }

        ctx.IsCancellationRequested.Should().BeTrue("ctx.Done() must be closed after Wait");
    }

    // Ports golang.org/x/sync errgroup WithContext's contract as TestWithContext and ExampleGroup_parallel rely on it:
    // "The derived Context is canceled the first time a function passed to Go returns a non-nil error". The first
    // failure cancels ClosingToken before any close; a sibling that ends because of it (a cancelled task) is not a failure,
    // so Wait/CloseAsync reports exactly the first error.
    [Fact]
    public async Task FirstFailure_WithCancelOnFirstFailure_CancelsClosingTokenBeforeTheClose_AndOnlyThatFailureIsThrown()
    {
        var errDoom = new InvalidOperationException("group_test: doomed");
        var g = new TaskTracker(new TaskTrackerOptions { CancelOnFirstFailure = true });
        var siblingCancelled = Bounded.NewGate();
        await g.Go(async ct =>
        {
            var cancelled = Bounded.NewGate();
            using (ct.Register(() => cancelled.SetResult()))
            {
                await cancelled.Task;
            }

            siblingCancelled.SetResult();
            ct.ThrowIfCancellationRequested();
        });
        g.ClosingToken.IsCancellationRequested.Should().BeFalse();

        await g.Go(_ => Task.FromException(errDoom));

        await siblingCancelled.Task.OrHang();
        g.ClosingToken.IsCancellationRequested.Should().BeTrue();
        g.IsClosing.Should().BeFalse("the failure cancelled ClosingToken; nobody closed the tracker");
        await g.WaitAsync().OrHang();
        var close = g.CloseAsync();
        var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
        thrown.Which.Should().BeSameAs(errDoom);
        close.Exception!.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(errDoom);
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestTryGo, limit 42: 42 TryGo succeed while their functions
    // block, the 43rd fails (and registers nothing), and once Wait has returned TryGo succeeds again. The "Switch limit"
    // part (SetLimit(1) on the same group) has no analogue, as MaxConcurrency is fixed at construction: it runs on a
    // fresh tracker limited to 1 (see TryGo_WithALimitOfOne_...). "Block all calls" (SetLimit(0)) is
    // MaxConcurrency_ZeroOrNegative_IsRejected.
    [Fact]
    public async Task TryGo_AtTheLimit_Fails_AndSucceedsAgainOnceWaitAsyncHasReturned()
    {
        const int n = 42;
        var g = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = n });
        var ch = Bounded.NewGate();
        Func<CancellationToken, Task> fn = _ => ch.Task;
        for (var i = 0; i < n; i++)
        {
            g.TryGo(fn).Should().BeTrue($"TryGo should succeed but got fail at {i}-th call");
        }

        g.TryGo(fn).Should().BeFalse("TryGo is expected to fail but succeeded");
        g.Count.Should().Be(n, "a failed TryGo registers nothing");

        ch.SetResult();
        await g.WaitAsync().OrHang();

        var ch2 = Bounded.NewGate();
        g.TryGo(_ => ch2.Task).Should().BeTrue("TryGo should succeed after all work has finished");
        ch2.SetResult();
        await g.WaitAsync().OrHang();
        await g.CloseAsync().OrHang();
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestTryGo, its "Switch limit" part: with a limit of 1, one TryGo
    // succeeds, the next fails, and after Wait one succeeds again. errgroup switches the limit of the same group with
    // SetLimit(1); the library fixes the limit at construction, so this runs on a fresh tracker.
    [Fact]
    public async Task TryGo_WithALimitOfOne_SucceedsOnce_ThenFails_UntilWaitAsyncHasReturned()
    {
        var g = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var ch = Bounded.NewGate();
        Func<CancellationToken, Task> fn = _ => ch.Task;

        g.TryGo(fn).Should().BeTrue("TryGo should succeed but got failed");
        g.TryGo(fn).Should().BeFalse("TryGo should fail but succeeded");

        ch.SetResult();
        await g.WaitAsync().OrHang();
        g.TryGo(fn).Should().BeTrue();
        await g.CloseAsync().OrHang();
    }

    // Ports golang.org/x/sync errgroup SetLimit's contract ("A negative value indicates no limit. A limit of zero will
    // prevent any new goroutines from being added", exercised by TestTryGo's "Block all calls"): the library's
    // MaxConcurrency documents null as "no limit" and rejects anything below 1 with ArgumentOutOfRangeException
    // instead, so a tracker that can never start work cannot be built.
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void MaxConcurrency_ZeroOrNegative_IsRejected(int limit)
    {
        var create = () => new TaskTracker(new TaskTrackerOptions { MaxConcurrency = limit });

        create.Should().Throw<ArgumentOutOfRangeException>();
    }

    // Ports golang.org/x/sync errgroup SetLimit's "A negative value indicates no limit" (the zero Group of TestZeroGroup
    // has no limit either): with MaxConcurrency null, 1,024 TryGo calls all start although none of their work has ended.
    [Fact]
    public async Task TryGo_WithoutALimit_NeverFails()
    {
        var g = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = null });
        var ch = Bounded.NewGate();

        for (var i = 0; i < 1 << 10; i++)
        {
            g.TryGo(_ => ch.Task).Should().BeTrue($"call {i}");
        }

        g.Count.Should().Be(1 << 10);
        ch.SetResult();
        await g.CloseAsync().OrHang();
    }

    // Ports golang.org/x/sync errgroup SetLimit's "Any subsequent call to the Go method will block until it can add an
    // active goroutine without exceeding the configured limit": Go's task stays pending (the work not started) while the
    // slot is held, and completes, with the work started, once it is freed. The library registers the waiting work at
    // once (register before spawn), so it is counted and listed as waiting for a slot.
    [Fact]
    public async Task Go_AtTheLimit_BlocksUntilASlotFrees_ThenStartsTheWork()
    {
        var g = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = 1 });
        var firstGate = Bounded.NewGate();
        var secondStarted = Bounded.NewGate();
        await g.Go(_ => firstGate.Task, "first");

        var second = g.Go(_ =>
        {
            secondStarted.SetResult();
            return Task.CompletedTask;
        }, "second");

        second.IsCompleted.Should().BeFalse("Go blocks while the limit is reached");
        secondStarted.Task.IsCompleted.Should().BeFalse();
        g.Count.Should().Be(2);
        g.GetOutstanding().Should().ContainSingle(o => o.Name == "second").Which.IsWaitingForSlot.Should().BeTrue();

        firstGate.SetResult();
        await second.OrHang();
        await secondStarted.Task.OrHang();
        await g.CloseAsync().OrHang();
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestGoLimit: limit 10, 1,025 Go calls; no function may ever see
    // more than 10 active (it returns an error if it does, which Wait/CloseAsync would report). Go's time.Sleep(1µs)
    // ("give other goroutines a chance") becomes Task.Yield.
    [Fact]
    public async Task Go_WithALimitOfTen_NeverRunsMoreThanTenAtOnce()
    {
        const int limit = 10;
        var g = new TaskTracker(new TaskTrackerOptions { MaxConcurrency = limit });
        var active = 0;
        for (var i = 0; i <= 1 << 10; i++)
        {
            await g.Go(async _ =>
            {
                var n = Interlocked.Increment(ref active);
                if (n > limit)
                {
                    throw new InvalidOperationException($"saw {n} active goroutines; want <= {limit}");
                }

                await Task.Yield(); // give other work a chance to increment active
                Interlocked.Decrement(ref active);
            }).OrHang();
        }

        await g.CloseAsync().OrHang();
        active.Should().Be(0);
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestCancelCause: as TestWithContext, with the functions started
    // by TryGo. Wait returns the first error and the context is cancelled afterwards. context.Cause(ctx) (the error, or
    // context.Canceled without one) has no analogue: a CancellationToken carries no cause, so only the cancellation and
    // the thrown failure are checked.
    [Theory]
    [InlineData("")]
    [InlineData("nil")]
    [InlineData("doom")]
    [InlineData("doom nil")]
    public async Task TryGo_WithCancelOnFirstFailure_CloseAsyncThrowsTheFailure_AndClosingTokenIsCancelled(string errs)
    {
        var errDoom = new InvalidOperationException("group_test: doomed");
        var cases = errs.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e == "doom" ? errDoom : null)
            .ToArray();
        var g = new TaskTracker(new TaskTrackerOptions { CancelOnFirstFailure = true });

        foreach (var err in cases)
        {
            g.TryGo(_ => err is null ? Task.CompletedTask : Task.FromException(err)).Should().BeTrue();
        }

        if (cases.Contains(errDoom))
        {
            var close = g.CloseAsync();
            var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();
            thrown.Which.Should().BeSameAs(errDoom);
            close.Exception!.InnerExceptions.Should().ContainSingle().Which.Should().BeSameAs(errDoom);
        }
        else
        {
            await g.CloseAsync().OrHang();
        }

        g.ClosingToken.IsCancellationRequested.Should().BeTrue();
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestPanic, subtest "error" (from the release that propagated
    // panics, d1ac909; reverted upstream in 7fad2c9): a function panics with an error value p, and Wait re-raises it as
    // a PanicError whose Recovered is p and whose stack names the panicking function. The .NET analogue of the panic is
    // an exception thrown by the work's delegate: CloseAsync throws it (the same instance), with a stack trace that names
    // the throwing lambda of this test.
    [Fact]
    public async Task Go_WorkThatThrowsSynchronously_CloseAsyncThrowsThatSameException_WithItsStackTrace()
    {
        var g = new TaskTracker();
        var p = new InvalidOperationException(string.Empty);
        await g.Go(_ => throw p);

        var close = g.CloseAsync();
        var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        var failure = close.Exception!.InnerExceptions.Should().ContainSingle().Which;
        failure.Should().BeSameAs(p);
        thrown.Which.Should().BeSameAs(p);
        failure.StackTrace.Should().Contain(nameof(Go_WorkThatThrowsSynchronously_CloseAsyncThrowsThatSameException_WithItsStackTrace));
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestPanic, subtest "error", for work that fails after it has
    // yielded (an async method that throws): the same instance is thrown by CloseAsync with the throwing method's stack.
    [Fact]
    public async Task Go_AsyncWorkThatThrowsAfterYielding_CloseAsyncThrowsThatSameException_WithItsStackTrace()
    {
        var g = new TaskTracker();
        var p = new InvalidOperationException(string.Empty);
        await g.Go(async _ =>
        {
            await Task.Yield();
            throw p;
        });

        var close = g.CloseAsync();
        var thrown = await close.Awaiting(t => t.OrHang()).Should().ThrowAsync<InvalidOperationException>();

        var failure = close.Exception!.InnerExceptions.Should().ContainSingle().Which;
        failure.Should().BeSameAs(p);
        thrown.Which.Should().BeSameAs(p);
        failure.StackTrace.Should().Contain(nameof(Go_AsyncWorkThatThrowsAfterYielding_CloseAsyncThrowsThatSameException_WithItsStackTrace));
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go TestGoexit (from d1ac909; reverted upstream in 7fad2c9): the
    // function ends through runtime.Goexit (t.Skip) instead of returning, and errgroup then re-ran Goexit in Wait. The
    // nearest .NET analogue is work that ends cancelled instead of returning; by design the library documents "a
    // cancelled task is not a failure": its registration is released and CloseAsync completes without throwing.
    [Fact]
    public async Task Go_WorkThatEndsCancelled_IsReleased_AndIsNotAFailure()
    {
        var g = new TaskTracker();
        await g.Go(async _ =>
        {
            await Task.Yield();
            throw new OperationCanceledException("Goexit");
        });
        await g.Go(_ => Task.FromCanceled(new CancellationToken(canceled: true)));

        await g.WaitAsync().OrHang();

        g.Count.Should().Be(0);
        await g.CloseAsync().OrHang();
    }

    // Ports golang.org/x/sync errgroup/errgroup_test.go ExampleGroup_parallel: WithContext, one Go per search, each
    // writing its own slot of the results; after Wait returns nil, every result is there, in order.
    [Fact]
    public async Task Go_ParallelSearches_FillEveryResultSlot_BeforeCloseAsyncReturns()
    {
        var searches = new Func<CancellationToken, string, Task<string>>[] { FakeSearch("web"), FakeSearch("image"), FakeSearch("video") };
        var g = new TaskTracker(new TaskTrackerOptions { CancelOnFirstFailure = true });
        var results = new string?[searches.Length];
        for (var i = 0; i < searches.Length; i++)
        {
            var index = i;
            await g.Go(async ctx => results[index] = await searches[index](ctx, "golang"));
        }

        await g.CloseAsync().OrHang();

        results.Should().Equal("web result for \"golang\"", "image result for \"golang\"", "video result for \"golang\"");
    }

    private static Func<CancellationToken, string, Task<string>> FakeSearch(string kind) =>
        async (_, query) =>
        {
            await Task.Yield();
            return $"{kind} result for \"{query}\"";
        };
}
