using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.Conformance;

// Two peer suites ported to the bounded waits of Batcher<TItem, TResult>:
//  - Polly v8's timeout strategy (App-vNext/Polly, test/Polly.Core.Tests/Timeout/: TimeoutResilienceStrategyTests.cs,
//    TimeoutRejectedExceptionTests.cs, TimeoutStrategyOptionsTests.cs, TimeoutTestUtils.cs, TimeoutUtilTests.cs,
//    TimeoutResiliencePipelineBuilderExtensionsTests.cs, TimeoutConstantsTests.cs);
//  - dotnet/runtime's ConcurrencyLimiter, its QueueProcessingOrder.OldestFirst parts
//    (src/libraries/System.Threading.RateLimiting/tests/ConcurrencyLimiterTests.cs).
//
// Mapping, Polly: the strategy's timeout is the batcher's Timeout (a caller's bound, from SubmitAsync to its result) or
// DispatchTimeout (one dispatch's bound); the user's cancellation is the caller's own token; the callback's token, which
// the strategy cancels on timeout, is the dispatch's token, cancelled when the dispatch runs past DispatchTimeout or the
// last caller of its batch reaches its Timeout; TimeoutRejectedException and its Timeout are BatchTimeoutException and
// its Timeout (with WasDispatched and DispatchTimedOut saying which bound passed, and where); OnTimeout and its
// telemetry event are the dispatch-timeout log event (3004) and the timeouts and stuck-dispatch instruments;
// TimeoutStrategyOptions is BatcherOptions. The fake TimeProvider is the manual clock: it moves only when a test
// advances it, and timers fire inside the advance.
//
// Mapping, ConcurrencyLimiter (OldestFirst): a permit is a place in the queue (Capacity, which counts items accepted and
// not yet cut into a batch; Count is the places taken); a lease is an accepted item, released when a cut hands it to a
// dispatch; a queued acquisition is a submit that waits for room; PermitLimit is Capacity. The dispatch slot is held on
// a gate (HeldBatchDispatch; MaxConcurrency 1, MaxDelay 0, MaxBatchSize 1 unless said), so that the queue stays full
// until the test releases a dispatch and the cut that follows frees room. Room goes to the waiters oldest first; a waiter
// that cancels or times out gives up its place.
//
// Ported (upstream test -> test here):
//   Polly Execute_Timeout (both token cases; the callback's Delay cancelled by the timeout)
//                                                                   -> ADispatchAtItsBound_HasItsTokenCancelled_...
//   Polly Execute_TimeoutGeneratorIsNull_FallsBackToTimeout; TimeoutStrategyOptionsTests Ctor_EnsureDefaultValues
//                                                                   -> WithDispatchTimeoutLeftUnset_ADispatchIsBoundedByTimeout_...
//   Polly Execute_EnsureOnTimeoutCalled, Execute_Timeout_EnsureTelemetrySource
//                                                                   -> ADispatchPastDispatchTimeout_IsLoggedOnceWithItsBound_...
//   Polly Execute_Timeout_EnsureStackTrace                          -> ATimeoutsException_CarriesAStackTraceThroughTheCallersAwait
//   Polly Execute_Cancelled_EnsureNoTimeout, Execute_CallerCancellation_EnsureExceptionCarriesCallerToken
//                                                                   -> ACallerThatCancels_GetsOperationCanceledWithItsOwnToken_...
//     DIFFERENCE BY DESIGN: the strategy's callback token is linked to the user's token; a dispatch serves a batch, so a
//     caller's cancellation cancels the dispatch's token only when it was that batch's last caller.
//   Polly Execute_NoTimeoutOrCancellation_EnsureCancellationTokenRestored
//                                                                   -> TheDispatchsToken_IsTheBatchsOwn_NotTheCallers_...
//   Polly Execute_EnsureCancellationTokenRegistrationNotExecutedOnSynchronizationContext
//                                                                   -> CallerCancellationAndTheBatchersTimers_PostNothingToTheCallersContext
//   Polly Execute_NoTimeout (InfiniteTimeSpan, and -1 ms, which is InfiniteTimeSpan); TimeoutUtilTests ShouldApplyTimeout_Ok
//                                                                   -> AnInfiniteTimeoutAndDispatchTimeout_BoundNothing_...
//   Polly Execute_NoTimeout (zero); TimeoutStrategyOptionsTests Timeout_Invalid_EnsureValidationError, Timeout_Valid;
//     TimeoutTestUtils InvalidTimeouts, ValidTimeouts; TimeoutUtilTests ValidateData;
//     TimeoutResiliencePipelineBuilderExtensionsTests AddTimeout_InvalidTimeout_EnsureValidated, AddTimeout_InvalidOptions_Throws
//                                                                   -> TimeoutAndDispatchTimeout_AreValidatedAtConstruction_...
//     DIFFERENCE BY DESIGN: Polly reads a zero or negative timeout as "no timeout"; the batcher refuses it (a bound of zero
//     would release every caller at once), and "no bound" is said with InfiniteTimeSpan only. Polly accepts 10 ms to
//     24 h; the batcher accepts any positive span a timer can represent (9 ms and 25 h included, 50 days not).
//   Polly TimeoutRejectedExceptionTests Ctor_Ok                     -> BatchTimeoutException_KeepsItsMessageInnerExceptionAndBound_...
//     DIFFERENCE BY DESIGN: the batcher's own constructor takes, beside the bound, whether the item was dispatched and
//     whether it was the dispatch's timeout, and its message says which and whether the item may still be processed; it
//     is a BatchException (like TimeoutRejectedException, not a TimeoutException).
//   ConcurrencyLimiter CanAcquireResource, CanAcquireResourceAsync, GetStatisticsHasCorrectValues (available permits as
//     Capacity - Count)                                             -> WithRoom_ASubmitIsAdmittedAtOnce_WithoutIt_ItWaits_...
//     DIFFERENCE BY DESIGN: no AttemptAcquire; a submit with room is admitted before SubmitAsync returns, one without
//     waits. Callers waiting for room are not in Count (upstream's CurrentQueuedCount has no counterpart).
//   ConcurrencyLimiter CanAcquireResourceAsync_QueuesAndGrabsOldest, CannotAcquireResourcesWithAcquireAsyncWithQueuedItemsIfOldestFirst,
//     CannotAcquireResourcesWithAcquireWithQueuedItemsIfOldestFirst, QueueAvailableAfterQueueLimitHitAndResources_BecomeAvailable
//     (room coming back)                                            -> CallersWaitingForRoom_GetItOldestFirst_AndALaterSubmitWaitsBehindThem
//   ConcurrencyLimiter CanDequeueMultipleResourcesAtOnce            -> ACutOfSeveralItems_AdmitsAsManyWaitersAtOnce_InTheirOrder
//   ConcurrencyLimiter CanCancelAcquireAsyncAfterQueuing, CancelUpdatesQueueLimit
//                                                                   -> ACancelledWaiter_GivesUpItsPlace_AndEveryWaiterBehindItStillGetsRoom
//     Upstream asserts TaskCanceledException; here the type is an OperationCanceledException carrying the caller's token.
//   ConcurrencyLimiter CanCancelAcquireAsyncBeforeQueuing           -> APreCancelledSubmit_FailsAtOnceWithItsToken_AndTakesNoRoom
//   ConcurrencyLimiter DisposeReleasesQueuedAcquires, DisposeAsyncReleasesQueuedAcquires
//                                                                   -> ShuttingDown_ReleasesEveryWaiterAtOnce_WithAnExceptionNamingTheBatcher
//     DIFFERENCE BY DESIGN: upstream completes each waiter with a failed lease; a waiter here fails with
//     ObjectDisposedException (ClosedException after CloseAsync), the accepted items are still drained, and the running
//     dispatch is awaited.
//   ConcurrencyLimiter CanDisposeAfterCancelingQueuedRequest        -> DisposingAfterAWaiterCancelled_ChangesNothingForThatCaller_...
//   ConcurrencyLimiter FailsWhenQueuingMoreThanLimit_OldestFirst, ReasonMetadataOnFailedWaitAsync, QueueAvailableAfterQueueLimitHit
//     (the refused acquisition)                                     -> NoLimitOnCallersWaitingForRoom_EachIsReleasedAtItsOwnTimeout_...
//     DIFFERENCE BY DESIGN: there is no QueueLimit: a caller is never refused for having to wait; its wait is bounded by
//     its Timeout (and its token), and the BatchTimeoutException says it was never dispatched.
//   ConcurrencyLimiter InvalidOptionsThrows (PermitLimit), LargeAcquiresAndQueuesDoNotIntegerOverflow
//                                                                   -> TheLargestCapacity_IsAccepted_..., ACapacityOutOfRange_IsRefused_...
//
// Skipped (no counterpart in the batcher's contract):
//   Polly Execute_EnsureTimeoutGeneratorCalled: no per-call timeout generator; the bounds are options read once, at construction.
//   Polly TimeoutConstantsTests EnsureDefaultValues: no telemetry event name; the log event ids are pinned by BatcherLogTests.
//   Polly TimeoutResiliencePipelineBuilderExtensionsTests AddTimeout_Ok, AddTimeout_Options_Ok: no pipeline or builder.
//   Polly TimeoutRejectedExceptionTests BinaryDeserialization_Ok: .NET Framework binary serialization; no serialization contract.
//   ConcurrencyLimiter NewestFirst tests (CanAcquireResourceAsync_QueuesAndGrabsNewest, DropsOldestWhenQueuingMoreThanLimit_NewestFirst,
//     DropsMultipleOldestWhenQueuingMoreThanLimit_NewestFirst, DropsRequestedLeaseIfPermitCountGreaterThanQueueLimitAndNoAvailability_NewestFirst,
//     CanAcquireResourcesWithAcquireAsyncWithQueuedItemsIfNewestFirst, CanAcquireResourcesWithAcquireWithQueuedItemsIfNewestFirst,
//     CanFillQueueWithNewestFirstAfterCancelingQueuedRequestWithAnotherQueuedRequest): room goes oldest first only.
//   ConcurrencyLimiter ThrowsWhenAcquiringMoreThanLimit, ThrowsWhenWaitingForMoreThanLimit, ThrowsWhenAcquiringLessThanZero,
//     ThrowsWhenWaitingForLessThanZero, AcquireZero_WithAvailability, AcquireZero_WithoutAvailability,
//     AcquireAsyncZero_WithAvailability, AcquireAsyncZero_WithoutAvailabilityWaitsForAvailability: no permit count; each
//     submit takes exactly one place.
//   ConcurrencyLimiter InvalidOptionsThrows (QueueLimit): no queue limit to validate.
//   ConcurrencyLimiter NoMetadataOnAcquiredLease, MetadataNamesContainsAllMetadata: no lease object or metadata.
//   ConcurrencyLimiter NullIdleDurationWhenActive, IdleDurationUpdatesWhenIdle, IdleDurationUpdatesWhenChangingFromActive: no IdleDuration.
//   ConcurrencyLimiter GetStatisticsReturnsNewInstances, GetStatisticsWithZeroPermitCount: no statistics object, no zero-permit acquire.
public sealed class PollyTimeoutAndConcurrencyLimiterBatcherConformanceTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    public enum Phase
    {
        Dispatched,
        Queued,
        WaitingForRoom,
    }

    public enum Shutdown
    {
        Dispose,
        DisposeAsync,
        CloseAsync,
    }

    public static TheoryData<string, TimeSpan, bool> Bounds()
    {
        var data = new TheoryData<string, TimeSpan, bool>();
        foreach (var option in new[] { "Timeout", "DispatchTimeout" })
        {
            data.Add(option, TimeSpan.MinValue, false);
            data.Add(option, TimeSpan.Zero, false);
            data.Add(option, TimeSpan.FromSeconds(-1), false);
            data.Add(option, TimeSpan.FromMilliseconds(9), true);
            data.Add(option, TimeSpan.FromMilliseconds(10), true);
            data.Add(option, TimeSpan.FromSeconds(1), true);
            data.Add(option, TimeSpan.FromHours(1), true);
            data.Add(option, TimeSpan.FromHours(25), true);
            data.Add(option, Timeout.InfiniteTimeSpan, true);
            data.Add(option, TimeSpan.FromDays(50), false);
        }

        return data;
    }

    // Ports Polly Execute_Timeout (a default token, and a cancellable one never cancelled): the callback, waiting on its
    // token for longer than the timeout, has that token cancelled exactly at the timeout, and the caller gets the timeout
    // exception with its bound (upstream: "...within the allowed timeout of '00:00:02'"). Here for both bounds: the
    // caller's Timeout (DispatchTimeout infinite) and DispatchTimeout (Timeout left at 30 s); DispatchTimedOut says which.
    // One tick before the bound nothing has happened; the dispatch returns on its cancellation, so the close completes.
    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task ADispatchAtItsBound_HasItsTokenCancelled_AndItsCallerGetsBatchTimeoutExceptionWithThatBound(bool dispatchTimeout, bool cancellableCaller)
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var options = new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, TimeProvider = time };
        if (dispatchTimeout)
        {
            options.DispatchTimeout = Bound;
        }
        else
        {
            options.Timeout = Bound;
            options.DispatchTimeout = Timeout.InfiniteTimeSpan;
        }

        var batcher = new Batcher<int, int>(dispatch.DispatchAsync, options);
        using var caller = new CancellationTokenSource();

        var call = batcher.SubmitAsync(1, cancellableCaller ? caller.Token : default).AsTask();
        var entered = await dispatch.NextAsync();
        time.Advance(Bound - Tick);
        call.IsCompleted.Should().BeFalse("the bound has not passed");
        entered.Token.IsCancellationRequested.Should().BeFalse();

        time.Advance(Tick);

        var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.Timeout.Should().Be(Bound);
        timeout.DispatchTimedOut.Should().Be(dispatchTimeout);
        timeout.WasDispatched.Should().BeTrue();
        timeout.Message.Should().Contain("00:00:02");
        entered.Token.IsCancellationRequested.Should().BeTrue("the dispatch is cancelled at the bound");
        caller.IsCancellationRequested.Should().BeFalse("the batcher never cancels a caller's token");
        await batcher.CloseAsync().OrHang(); // the dispatch returned on its cancellation
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 1 } }, o => o.WithStrictOrdering());
    }

    // Ports Polly Execute_TimeoutGeneratorIsNull_FallsBackToTimeout and TimeoutStrategyOptionsTests Ctor_EnsureDefaultValues:
    // the options' defaults are a 30 s Timeout (Polly's default too), no DispatchTimeout of their own and no name (the
    // batcher calls itself "Batcher"); a dispatch is then bounded by Timeout. The dispatch began at its caller's submit,
    // so it reaches its own bound at the caller's, and is reported as having run past it, with the 30 s.
    [Fact]
    public async Task WithDispatchTimeoutLeftUnset_ADispatchIsBoundedByTimeout_ThirtySecondsByDefault()
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var options = new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, TimeProvider = time };
        options.Timeout.Should().Be(TimeSpan.FromSeconds(30));
        options.DispatchTimeout.Should().BeNull();
        options.Name.Should().BeNull();
        var batcher = new Batcher<int, int>(dispatch.DispatchAsync, options);
        batcher.Name.Should().Be("Batcher");

        var call = batcher.SubmitAsync(1).AsTask();
        var entered = await dispatch.NextAsync();
        time.Advance(TimeSpan.FromSeconds(30) - Tick);
        call.IsCompleted.Should().BeFalse();
        time.Advance(Tick);

        var timeout = (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
        timeout.Timeout.Should().Be(TimeSpan.FromSeconds(30));
        timeout.DispatchTimedOut.Should().BeTrue();
        entered.Token.IsCancellationRequested.Should().BeTrue();
    }

    // Ports Polly Execute_EnsureOnTimeoutCalled (OnTimeout called once with the timeout, the context's token not
    // cancelled, one telemetry event) and Execute_Timeout_EnsureTelemetrySource: a dispatch past its DispatchTimeout (12 s,
    // as upstream) is logged once (3004, Warning) naming the batcher and the bound, counted once as stuck and once per
    // caller released, and the caller's own token is left uncancelled.
    [Fact]
    public async Task ADispatchPastDispatchTimeout_IsLoggedOnceWithItsBound_AndCounted_WithoutCancellingTheCallersToken()
    {
        var name = "polly-on-timeout-" + Guid.NewGuid().ToString("N");
        using var timeouts = Collect("timeouts");
        using var stuck = Collect("dispatch.stuck");
        var logger = new RecordingLogger();
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var delay = TimeSpan.FromSeconds(12);
        var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions { Name = name, MaxBatchSize = 1, MaxDelay = TimeSpan.Zero, DispatchTimeout = delay, TimeProvider = time, Logger = logger });
        using var caller = new CancellationTokenSource();

        var call = batcher.SubmitAsync(1, caller.Token).AsTask();
        await dispatch.NextAsync();
        time.Advance(delay);

        (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.DispatchTimedOut.Should().BeTrue();
        var entry = logger.Entries.Should().ContainSingle(e => e.EventId == 3004).Which;
        entry.Level.Should().Be(LogLevel.Warning);
        entry["Batcher"].Should().Be(name);
        entry["Timeout"].Should().Be(delay);
        BatcherHandlers.Values(stuck, name).Should().Equal(1);
        BatcherHandlers.Values(timeouts, name).Should().Equal(1);
        caller.IsCancellationRequested.Should().BeFalse();
    }

    // Ports Polly Execute_Timeout_EnsureStackTrace: the timeout exception, created by the batcher's deadline sweep, reaches
    // the awaiting caller with a stack trace that runs through the caller's await.
    [Fact]
    public async Task ATimeoutsException_CarriesAStackTraceThroughTheCallersAwait()
    {
        var time = new ManualTimeProvider();
        var batcher = new Batcher<int, int>(
            BatcherHandlers.Echo,
            new BatcherOptions { MaxBatchSize = 2, MaxDelay = TimeSpan.FromHours(1), Timeout = Bound, TimeProvider = time });
        var call = batcher.SubmitAsync(1).AsTask();
        time.Advance(Bound);

        BatchTimeoutException? caught = null;
        try
        {
            await call.OrHang();
        }
        catch (BatchTimeoutException exception)
        {
            caught = exception;
        }

        caught.Should().NotBeNull();
        caught!.StackTrace.Should().Contain(nameof(ATimeoutsException_CarriesAStackTraceThroughTheCallersAwait));
        caught.WasDispatched.Should().BeFalse();
    }

    // Ports Polly Execute_Cancelled_EnsureNoTimeout (OnTimeout never called, no telemetry) and
    // Execute_CallerCancellation_EnsureExceptionCarriesCallerToken, in each place a caller can be: its item dispatched,
    // queued, or waiting for room. The caller gets an OperationCanceledException carrying its own token, not a timeout;
    // the others are answered; once the clock passes everyone's Timeout, no timeout was counted or logged. A dispatch whose
    // only caller cancelled has its token cancelled (upstream's callback token is linked to the caller's).
    [Theory]
    [InlineData(Phase.Dispatched)]
    [InlineData(Phase.Queued)]
    [InlineData(Phase.WaitingForRoom)]
    public async Task ACallerThatCancels_GetsOperationCanceledWithItsOwnToken_AndNothingIsReportedAsATimeout(Phase phase)
    {
        var name = "polly-cancelled-" + Guid.NewGuid().ToString("N");
        using var timeouts = Collect("timeouts");
        var logger = new RecordingLogger();
        var (batcher, dispatch, time) = NewBatcher(capacity: 1, name: name, logger: logger);
        using var caller = new CancellationTokenSource();
        var others = new List<Task<int>>();
        EnteredBatch? ownDispatch = null;
        if (phase != Phase.Dispatched)
        {
            others.Add(batcher.SubmitAsync(0).AsTask());
            await dispatch.NextAsync();
            if (phase == Phase.WaitingForRoom)
            {
                others.Add(batcher.SubmitAsync(2).AsTask()); // takes the room
            }
        }

        var (answered, dispatched) = phase switch
        {
            Phase.Dispatched => (Array.Empty<int>(), new[] { 1 }),
            Phase.Queued => (new[] { 0 }, new[] { 0 }),
            _ => (new[] { 0, 2 }, new[] { 0, 2 }),
        };
        var call = batcher.SubmitAsync(1, caller.Token).AsTask();
        if (phase == Phase.Dispatched)
        {
            ownDispatch = await dispatch.NextAsync();
        }

        call.IsCompleted.Should().BeFalse();
        await caller.CancelAsync();

        (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(caller.Token);
        ownDispatch?.Token.IsCancellationRequested.Should().BeTrue("its only caller has gone");
        dispatch.OpenAll();
        (await Task.WhenAll(others).OrHang()).Should().Equal(answered);
        time.Advance(TimeSpan.FromSeconds(10));

        BatcherHandlers.Values(timeouts, name).Should().BeEmpty("a cancelled caller is not a timed-out one");
        logger.Entries.Should().NotContain(e => e.EventId == 3004);
        dispatch.Batches.Select(b => b.Single()).Should().Equal(dispatched);
    }

    // Ports Polly Execute_NoTimeoutOrCancellation_EnsureCancellationTokenRestored: the callback's token is not the
    // caller's (here it is the batch's own, carrying the batch's bound), and the caller's token is left as it was. A
    // dispatch that returned in time is never cancelled afterwards, though the clock passes its bound.
    [Fact]
    public async Task TheDispatchsToken_IsTheBatchsOwn_NotTheCallers_AndTheCallersTokenIsLeftAsItWas()
    {
        var (batcher, dispatch, time) = NewBatcher(capacity: 1);
        using var caller = new CancellationTokenSource();

        var call = batcher.SubmitAsync(1, caller.Token).AsTask();
        var entered = await dispatch.NextAsync();
        entered.Token.Should().NotBe(caller.Token);
        entered.Token.CanBeCanceled.Should().BeTrue("it carries the batch's bound");
        entered.Release.SetResult();
        (await call.OrHang()).Should().Be(1);

        time.Advance(TimeSpan.FromSeconds(10));
        caller.IsCancellationRequested.Should().BeFalse();
        entered.Token.IsCancellationRequested.Should().BeFalse("it returned within its bound");
    }

    // Ports Polly Execute_EnsureCancellationTokenRegistrationNotExecutedOnSynchronizationContext: callers submit on a
    // thread whose synchronization context never runs what is posted to it, and on that thread two of them cancel and the
    // clock passes everyone's Timeout (the deadline sweep and a waiter's own deadline timer fire there). Every caller is
    // answered, and nothing was posted to the context.
    [Fact]
    public async Task CallerCancellationAndTheBatchersTimers_PostNothingToTheCallersContext()
    {
        var (batcher, dispatch, time) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        using var queuedCaller = new CancellationTokenSource();
        using var waitingCaller = new CancellationTokenSource();
        var calls = Array.Empty<Task<int>>();

        var posted = BlockedContext.BlockOn(() =>
        {
            calls = new[]
            {
                batcher.SubmitAsync(1, queuedCaller.Token).AsTask(),  // takes the room
                batcher.SubmitAsync(2, waitingCaller.Token).AsTask(), // waits for room
                batcher.SubmitAsync(3).AsTask(),                      // waits for room, until its own deadline
            };
            queuedCaller.Cancel();
            waitingCaller.Cancel();
            time.Advance(TimeSpan.FromSeconds(10));
            return calls.Prepend(running).Select(Ended).ToArray();
        });

        posted.Should().Be(0);
        (await running.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        (await calls[0].Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(queuedCaller.Token);
        (await calls[1].Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(waitingCaller.Token);
        (await calls[2].Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();

        static Task Ended(Task task) =>
            task.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    // Ports Polly Execute_NoTimeout (InfiniteTimeSpan; -1 ms is the same value) and TimeoutUtilTests ShouldApplyTimeout_Ok:
    // with Timeout and DispatchTimeout infinite no timer is armed, and a dispatch still running a year later is neither
    // cancelled nor timed out; its caller gets its result when it answers.
    [Fact]
    public async Task AnInfiniteTimeoutAndDispatchTimeout_BoundNothing_AndArmNoTimer()
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions
            {
                MaxBatchSize = 1,
                MaxDelay = TimeSpan.Zero,
                Timeout = TimeSpan.FromMilliseconds(-1),
                DispatchTimeout = Timeout.InfiniteTimeSpan,
                TimeProvider = time,
            });

        var call = batcher.SubmitAsync(1).AsTask();
        var entered = await dispatch.NextAsync();
        time.ArmedTimers.Should().Be(0);
        time.Advance(TimeSpan.FromDays(365));

        call.IsCompleted.Should().BeFalse();
        entered.Token.IsCancellationRequested.Should().BeFalse();
        entered.Release.SetResult();
        (await call.OrHang()).Should().Be(1);
    }

    // Ports Polly's timeout validation (TimeoutStrategyOptionsTests Timeout_Invalid_EnsureValidationError and Timeout_Valid
    // over TimeoutTestUtils' values, TimeoutUtilTests ValidateData, the builder's AddTimeout_InvalidTimeout_EnsureValidated
    // and AddTimeout_InvalidOptions_Throws, and Execute_NoTimeout's zero): each bound is checked at construction, and a bad
    // one is refused with an ArgumentOutOfRangeException naming the option. DIFFERENCE BY DESIGN: zero and negative spans
    // are refused (not read as "no timeout"); 9 ms and 25 h are accepted; more than a timer can represent is refused.
    [Theory]
    [MemberData(nameof(Bounds))]
    public void TimeoutAndDispatchTimeout_AreValidatedAtConstruction_NamingTheOption(string option, TimeSpan value, bool accepted)
    {
        var options = new BatcherOptions();
        if (option == "Timeout")
        {
            options.Timeout = value;
        }
        else
        {
            options.DispatchTimeout = value;
        }

        var create = () => new Batcher<int, int>(BatcherHandlers.Echo, options);

        if (accepted)
        {
            create.Should().NotThrow();
        }
        else
        {
            create.Should().Throw<ArgumentOutOfRangeException>().WithMessage($"*BatcherOptions.{option}*");
        }
    }

    // Ports Polly TimeoutRejectedExceptionTests Ctor_Ok: the default message, a message, a message with an inner exception,
    // and the bound given to the batcher's own constructor, which its message names. DIFFERENCE BY DESIGN: that constructor
    // also takes whether the item was dispatched and whether the dispatch's timeout passed, and the message says which and
    // whether the item may still be processed; it is a BatchException (catchable with the batcher's other failures), not
    // a TimeoutException.
    [Fact]
    public void BatchTimeoutException_KeepsItsMessageInnerExceptionAndBound_AndIsABatchException()
    {
        var bound = TimeSpan.FromSeconds(4);
        var inner = new InvalidOperationException();

        new BatchTimeoutException().Message.Should().Be("The batched call timed out.");
        new BatchTimeoutException("dummy").Message.Should().Be("dummy");
        var wrapped = new BatchTimeoutException("dummy", inner);
        wrapped.Message.Should().Be("dummy");
        wrapped.InnerException.Should().BeSameAs(inner);

        var queued = new BatchTimeoutException(bound, wasDispatched: false, dispatchTimedOut: false);
        var dispatched = new BatchTimeoutException(bound, wasDispatched: true, dispatchTimedOut: false);
        var stuck = new BatchTimeoutException(bound, wasDispatched: true, dispatchTimedOut: true);
        foreach (var timeout in new[] { queued, dispatched, stuck })
        {
            timeout.Timeout.Should().Be(bound);
            timeout.Message.Should().Contain("00:00:04");
            timeout.Should().BeAssignableTo<BatchException>().And.NotBeAssignableTo<TimeoutException>();
        }

        (queued.WasDispatched, queued.DispatchTimedOut).Should().Be((false, false));
        (stuck.WasDispatched, stuck.DispatchTimedOut).Should().Be((true, true));
        queued.Message.Should().Contain("never dispatched");
        dispatched.Message.Should().Contain("may still process");
        stuck.Message.Should().Contain("ran past its timeout");
    }

    // Ports ConcurrencyLimiter CanAcquireResource and CanAcquireResourceAsync (PermitLimit 1), with the available-permits
    // part of GetStatisticsHasCorrectValues: with room, a submit is admitted before SubmitAsync returns (Count 1); without
    // it, the next submit waits and takes no place (Count stays 1); when the cut of the queued item frees the room, the
    // waiter is admitted by then, and is the next batch.
    [Fact]
    public async Task WithRoom_ASubmitIsAdmittedAtOnce_WithoutIt_ItWaits_UntilACutFreesTheRoom()
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        var first = await dispatch.NextAsync();
        batcher.Count.Should().Be(0, "the first item is in its dispatch");

        var admitted = batcher.SubmitAsync(1).AsTask();
        batcher.Count.Should().Be(1, "there was room");
        var waiting = batcher.SubmitAsync(2).AsTask();
        batcher.Count.Should().Be(1, "a caller waiting for room takes no place");

        first.Release.SetResult();
        var second = await dispatch.NextAsync();
        second.Items.Should().Equal(1);
        batcher.Count.Should().Be(1, "the room item 1 left went to the waiter");
        second.Release.SetResult();
        var third = await dispatch.NextAsync();
        third.Items.Should().Equal(2);
        batcher.Count.Should().Be(0);
        third.Release.SetResult();

        (await Task.WhenAll(running, admitted, waiting).OrHang()).Should().Equal(0, 1, 2);
    }

    // Ports ConcurrencyLimiter CanAcquireResourceAsync_QueuesAndGrabsOldest, the OldestFirst halves of
    // CannotAcquireResourcesWithAcquire(Async)WithQueuedItemsIfOldestFirst (a later acquisition does not pass the queued
    // ones) and the room-coming-back part of QueueAvailableAfterQueueLimitHitAndResources_BecomeAvailable: each time a cut
    // frees the one place, the oldest waiter takes it and the others keep waiting; a submit made while callers wait goes
    // behind them, though it came when room was about to free. The dispatches run in submit order.
    [Fact]
    public async Task CallersWaitingForRoom_GetItOldestFirst_AndALaterSubmitWaitsBehindThem()
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 1);
        var calls = new List<Task<int>> { batcher.SubmitAsync(0).AsTask() };
        var entered = await dispatch.NextAsync();
        calls.AddRange(new[] { 1, 2, 3 }.Select(i => batcher.SubmitAsync(i).AsTask())); // 1 takes the room, 2 and 3 wait

        for (var next = 1; next <= 4; next++)
        {
            batcher.Count.Should().Be(1);
            entered.Release.SetResult();
            entered = await dispatch.NextAsync();
            entered.Items.Should().Equal(next);
            if (next == 1)
            {
                calls.Add(batcher.SubmitAsync(4).AsTask()); // item 3 still waits: this one waits behind it
            }
        }

        batcher.Count.Should().Be(0);
        entered.Release.SetResult();
        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2, 3, 4);
        dispatch.Batches.Select(b => b.Single()).Should().Equal(0, 1, 2, 3, 4);
    }

    // Ports ConcurrencyLimiter CanDequeueMultipleResourcesAtOnce (PermitLimit 2, a lease of two released, both queued
    // acquisitions granted): Capacity 2 and batches of two; one cut that frees two places admits both waiters at once, in
    // order, and they form the next batch.
    [Fact]
    public async Task ACutOfSeveralItems_AdmitsAsManyWaitersAtOnce_InTheirOrder()
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 2, maxBatchSize: 2);
        var calls = new List<Task<int>> { batcher.SubmitAsync(0).AsTask() };
        var first = await dispatch.NextAsync(); // alone: MaxDelay 0 and a free slot
        calls.AddRange(new[] { 1, 2, 3, 4 }.Select(i => batcher.SubmitAsync(i).AsTask())); // 1 and 2 fill the room
        batcher.Count.Should().Be(2);

        first.Release.SetResult();
        var second = await dispatch.NextAsync();
        second.Items.Should().Equal(1, 2);
        batcher.Count.Should().Be(2, "the cut of two admitted both waiters");
        dispatch.OpenAll();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2, 3, 4);
        dispatch.Batches.Should().BeEquivalentTo(new[] { new[] { 0 }, new[] { 1, 2 }, new[] { 3, 4 } }, o => o.WithStrictOrdering());
    }

    // Ports ConcurrencyLimiter CanCancelAcquireAsyncAfterQueuing and CancelUpdatesQueueLimit: a waiter (first, middle or last
    // of three) cancels; it is released at once with its own token, takes no room and is never dispatched; every other
    // waiter, and one that comes after the cancellation, still gets room in order: the cancellation lost nobody's wake-up.
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task ACancelledWaiter_GivesUpItsPlace_AndEveryWaiterBehindItStillGetsRoom(int cancelling)
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        var queued = batcher.SubmitAsync(1).AsTask();
        using var caller = new CancellationTokenSource();
        var waiters = Enumerable.Range(2, 3).Select(i => batcher.SubmitAsync(i, i - 2 == cancelling ? caller.Token : default).AsTask()).ToArray();

        await caller.CancelAsync();
        var cancelled = (await waiters[cancelling].Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which;
        cancelled.CancellationToken.Should().Be(caller.Token);
        batcher.Count.Should().Be(1);
        var later = batcher.SubmitAsync(5).AsTask();
        dispatch.OpenAll();

        var served = new[] { 2, 3, 4 }.Where(i => i - 2 != cancelling).ToArray();
        (await Task.WhenAll(waiters.Where((_, i) => i != cancelling)).OrHang()).Should().Equal(served);
        (await Task.WhenAll(running, queued, later).OrHang()).Should().Equal(0, 1, 5);
        dispatch.Batches.Select(b => b.Single()).Should().Equal(new[] { 0, 1 }.Concat(served).Append(5));
    }

    // Ports ConcurrencyLimiter CanCancelAcquireAsyncBeforeQueuing: a submit whose token is already cancelled completes at
    // once, cancelled with that token, whether there is room or not; it takes no place and is never dispatched.
    [Fact]
    public async Task APreCancelledSubmit_FailsAtOnceWithItsToken_AndTakesNoRoom()
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        var cancelled = new CancellationToken(canceled: true);

        var withRoom = batcher.SubmitAsync(7, cancelled).AsTask();
        withRoom.IsCanceled.Should().BeTrue();
        batcher.Count.Should().Be(0, "it took no place");
        var queued = batcher.SubmitAsync(1).AsTask();
        var withoutRoom = batcher.SubmitAsync(8, cancelled).AsTask();
        withoutRoom.IsCanceled.Should().BeTrue("it does not wait for room");
        batcher.Count.Should().Be(1);

        foreach (var call in new[] { withRoom, withoutRoom })
        {
            (await call.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(cancelled);
        }

        dispatch.OpenAll();
        (await Task.WhenAll(running, queued).OrHang()).Should().Equal(0, 1);
        dispatch.Batches.Select(b => b.Single()).Should().Equal(0, 1);
    }

    // Ports ConcurrencyLimiter DisposeReleasesQueuedAcquires and DisposeAsyncReleasesQueuedAcquires (and the close, which
    // upstream lacks): every waiter fails at once, before the shutdown completes, with an exception naming the batcher
    // (ObjectDisposedException after a dispose, ClosedException after a close); the accepted item is still drained; the
    // running dispatch is awaited; a later submit fails at once the same way. DIFFERENCE BY DESIGN: upstream gives each
    // waiter a failed lease and disposes without waiting for leases in use.
    [Theory]
    [InlineData(Shutdown.Dispose, typeof(ObjectDisposedException))]
    [InlineData(Shutdown.DisposeAsync, typeof(ObjectDisposedException))]
    [InlineData(Shutdown.CloseAsync, typeof(ClosedException))]
    public async Task ShuttingDown_ReleasesEveryWaiterAtOnce_WithAnExceptionNamingTheBatcher(Shutdown shutdown, Type expected)
    {
        var name = "limiter-shutdown-" + Guid.NewGuid().ToString("N");
        var (batcher, dispatch, _) = NewBatcher(capacity: 1, name: name);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        var queued = batcher.SubmitAsync(1).AsTask();
        var waiters = Enumerable.Range(2, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        var done = shutdown switch
        {
            Shutdown.Dispose => DisposeAndWatch(batcher),
            Shutdown.DisposeAsync => batcher.DisposeAsync().AsTask(),
            _ => batcher.CloseAsync(),
        };

        foreach (var waiter in waiters)
        {
            var failure = (await waiter.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which;
            failure.Should().BeOfType(expected);
            failure.Message.Should().Contain(name);
        }

        done.IsCompleted.Should().BeFalse("the running dispatch is awaited");
        dispatch.OpenAll();
        await done.OrHang();
        (await Task.WhenAll(running, queued).OrHang()).Should().Equal(0, 1);
        var late = batcher.SubmitAsync(9).AsTask();
        late.IsCompleted.Should().BeTrue();
        (await late.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeOfType(expected);
        dispatch.Batches.Select(b => b.Single()).Should().Equal(0, 1);

        // Dispose returns at once; Completion says when the shutdown it began is done.
        static Task DisposeAndWatch(Batcher<int, int> batcher)
        {
#pragma warning disable VSTHRD103 // the synchronous Dispose is the path under test
            batcher.Dispose();
#pragma warning restore VSTHRD103
            return batcher.Completion;
        }
    }

    // Ports ConcurrencyLimiter CanDisposeAfterCancelingQueuedRequest: a dispose after a waiter cancelled has no side effect
    // on it (still cancelled, with its token) and drains the rest as usual.
    [Fact]
    public async Task DisposingAfterAWaiterCancelled_ChangesNothingForThatCaller_AndDrainsTheRest()
    {
        var (batcher, dispatch, _) = NewBatcher(capacity: 1);
        var running = batcher.SubmitAsync(0).AsTask();
        await dispatch.NextAsync();
        var queued = batcher.SubmitAsync(1).AsTask();
        using var caller = new CancellationTokenSource();
        var waiter = batcher.SubmitAsync(2, caller.Token).AsTask();
        await caller.CancelAsync();
        await waiter.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();

        var disposal = batcher.DisposeAsync().AsTask();
        dispatch.OpenAll();
        await disposal.OrHang();

        waiter.IsCanceled.Should().BeTrue();
        (await waiter.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>()).Which.CancellationToken.Should().Be(caller.Token);
        (await Task.WhenAll(running, queued).OrHang()).Should().Equal(0, 1);
        batcher.Completion.IsCompletedSuccessfully.Should().BeTrue();
        dispatch.Batches.Select(b => b.Single()).Should().Equal(0, 1);
    }

    // Ports ConcurrencyLimiter FailsWhenQueuingMoreThanLimit_OldestFirst and ReasonMetadataOnFailedWaitAsync (an acquisition
    // past QueueLimit fails at once, "Queue limit reached"), and the rest of QueueAvailableAfterQueueLimitHitAndResources_
    // BecomeAvailable. DIFFERENCE BY DESIGN: no QueueLimit; ten callers past the room all wait, none refused; at their
    // Timeout each is released with a BatchTimeoutException that says it was never dispatched (as are the queued caller
    // and, dispatched, the running one, whose dispatch is then cancelled); then room is there again for the next submit.
    [Fact]
    public async Task NoLimitOnCallersWaitingForRoom_EachIsReleasedAtItsOwnTimeout_AndRoomComesBack()
    {
        var timeoutBound = TimeSpan.FromSeconds(10);
        var (batcher, dispatch, time) = NewBatcher(capacity: 1, timeout: timeoutBound);
        var running = batcher.SubmitAsync(0).AsTask();
        var first = await dispatch.NextAsync();
        var queued = batcher.SubmitAsync(1).AsTask();
        var waiters = Enumerable.Range(2, 10).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        time.Advance(timeoutBound - Tick);
        waiters.Should().OnlyContain(w => !w.IsCompleted, "no caller is refused for having to wait");
        batcher.Count.Should().Be(1);
        time.Advance(Tick);

        // Every bound passes at the same instant. The first dispatch, cancelled at it, ends on its own thread and frees
        // its slot, so the loop may cut a caller whose own bound is passing just then before that caller is released:
        // such a caller times out as dispatched (its item may still be processed, or left out of the batch it was cut
        // into, once its caller has gone). Every other one was never dispatched, and says so.
        var dispatched = new List<int>();
        foreach (var (waiter, item) in waiters.Append(queued).Zip(Enumerable.Range(2, 10).Append(1)))
        {
            var timeout = (await waiter.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which;
            (timeout.Timeout, timeout.DispatchTimedOut).Should().Be((timeoutBound, false));
            if (timeout.WasDispatched)
            {
                dispatched.Add(item);
            }
            else
            {
                timeout.Message.Should().Contain("never dispatched");
            }
        }

        (await running.Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeTrue();
        first.Token.IsCancellationRequested.Should().BeTrue("that dispatch reached its bound");
        dispatch.OpenAll();
        (await batcher.SubmitAsync(12).OrHang()).Should().Be(12);
        // A caller told "never dispatched" must be one whose item no dispatch received: each waiter that reached a dispatch
        // was told so (told "dispatched" and then left out of its batch is allowed: it says the item may be processed).
        var entered = dispatch.Batches.Select(b => b.Single()).ToArray();
        (entered[0], entered[^1]).Should().Be((0, 12));
        entered[1..^1].Should().BeInAscendingOrder("room went to the callers in the order they came");
        entered[1..^1].Should().BeSubsetOf(dispatched, "a caller whose item reached a dispatch may not be told it never was");
    }

    // Ports ConcurrencyLimiter LargeAcquiresAndQueuesDoNotIntegerOverflow (PermitLimit int.MaxValue): the largest Capacity
    // the batcher takes, int.MaxValue / 2, is accepted without sizing the queue to it (the ring starts small and grows as
    // items come), and serves submits as any other.
    [Fact]
    public async Task TheLargestCapacity_IsAccepted_WithoutSizingTheQueueToIt_AndServesSubmits()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var batcher = new Batcher<int, int>(
            BatcherHandlers.Echo,
            new BatcherOptions { Capacity = int.MaxValue / 2, MaxBatchSize = 2, MaxDelay = TimeSpan.Zero });
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().BeLessThan(1 << 20);

        var calls = Enumerable.Range(0, 3).Select(i => batcher.SubmitAsync(i).AsTask()).ToArray();

        (await Task.WhenAll(calls).OrHang()).Should().Equal(0, 1, 2);
        await batcher.CloseAsync().OrHang();
    }

    // Ports ConcurrencyLimiter InvalidOptionsThrows (a negative PermitLimit) and the overflow edge of
    // LargeAcquiresAndQueuesDoNotIntegerOverflow: a Capacity below MaxBatchSize (zero, negative) or above int.MaxValue / 2 is
    // refused with an ArgumentOutOfRangeException naming the option.
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData((int.MaxValue / 2) + 1)]
    [InlineData(int.MaxValue)]
    public void ACapacityOutOfRange_IsRefused_NamingTheOption(int capacity)
    {
        var create = () => new Batcher<int, int>(BatcherHandlers.Echo, new BatcherOptions { Capacity = capacity, MaxBatchSize = 1 });

        create.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*BatcherOptions.Capacity*");
    }

    private static MetricCollector<long> Collect(string instrument) =>
        new(meterScope: null, ConcurrencyPrimitivesTelemetry.MeterName, "concurrency.primitives.batcher." + instrument);

    // One dispatch at a time, cut as soon as the slot is free, the clock moving only when a test advances it.
    private static (Batcher<int, int> Batcher, HeldBatchDispatch Dispatch, ManualTimeProvider Time) NewBatcher(
        int capacity,
        int maxBatchSize = 1,
        TimeSpan? timeout = null,
        string? name = null,
        RecordingLogger? logger = null)
    {
        var time = new ManualTimeProvider();
        var dispatch = new HeldBatchDispatch();
        var batcher = new Batcher<int, int>(
            dispatch.DispatchAsync,
            new BatcherOptions
            {
                Name = name,
                MaxBatchSize = maxBatchSize,
                MaxConcurrency = 1,
                MaxDelay = TimeSpan.Zero,
                Capacity = capacity,
                Timeout = timeout ?? TimeSpan.FromSeconds(10),
                TimeProvider = time,
                Logger = logger,
            });
        return (batcher, dispatch, time);
    }
}
