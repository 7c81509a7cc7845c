using System;
using System.Collections.Concurrent;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Batching;

/// <summary>
/// A submit takes its ring index with one compare-and-swap, then publishes its item into the cell: a thread preempted
/// between the two (for a time slice, or much longer on a loaded machine) leaves a claimed cell that holds nothing yet.
/// The cut and the deadline sweep both meet such a cell; these tests hold a submit there (the fast path split at that
/// very point) and check that it holds back neither the published items' batch nor anyone's bound by more than the
/// batcher allows for.
/// </summary>
public sealed class BatcherHeldUpSubmitTests
{
    /// <summary>
    /// Guards the cut's MaxDelay hold: a partial run of published items is held back for MaxDelay only while fewer than
    /// a batch are claimed. Once a whole batch is claimed the batch is due; a loop that finds its last item claimed and
    /// not yet published cuts the published part at once rather than leave it waiting for MaxDelay.
    /// </summary>
    [Fact]
    public async Task AFullBatchClaimed_IsCutAtOnce_ThoughItsLastSubmitIsHeldUpBeforePublishing()
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batches = new ConcurrentQueue<int[]>();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> batch, CancellationToken _) =>
            {
                batches.Enqueue(Enumerable.Range(0, batch.Count).Select(i => batch[i]).ToArray());
                if (batch[0] == 0)
                {
                    entered.TrySetResult();
                    await release.Task;
                }

                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] * 10);
                }
            },
            new BatcherOptions { MaxBatchSize = 2, MaxConcurrency = 1, MaxDelay = TimeSpan.FromMinutes(1), Timeout = TimeSpan.FromHours(1), TimeProvider = time });

        var first = batcher.SubmitAsync(0);
        var second = batcher.SubmitAsync(1);               // a full batch: cut and dispatched, held
        await entered.Task.OrHang();
        var published = batcher.SubmitAsync(2);            // queued behind the running batch
        var heldUp = HeldUpSubmit.Claim(batcher, 3);       // claims the next index: a whole batch is claimed, half published
        release.TrySetResult();

        (await published.OrHang()).Should().Be(20, "a whole batch was claimed, so the batch was due: its published part is cut at once, MaxDelay or not");
        (await first.OrHang()).Should().Be(0);
        (await second.OrHang()).Should().Be(10);

        var late = heldUp.Publish();                        // alone now, so MaxDelay holds it
        late.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromMinutes(1));
        (await late.OrHang()).Should().Be(30);
        batches.Select(b => string.Join(",", b)).Should().Equal("0,1", "2", "3");
        await batcher.DisposeAsync();
    }

    /// <summary>
    /// Guards the sweep's walk over a claim not yet published: the walk cannot read that caller's bound, but the caller
    /// read the clock before the sweep did, so its bound is at most a Timeout away; the sweep must come back by then.
    /// Here nothing else would bring it back in time: the only other caller's submit (after the sweep) found the sweep
    /// armed, and the held-up submit, publishing after that, found it armed too. Whether the claim is at the head of the
    /// queue or behind a caller that gave up, it is timed out no later than a Timeout after the sweep that met it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASubmitHeldUpBetweenItsClaimAndItsPublish_IsTimedOutWithinATimeoutOfTheSweepThatMetIt(bool behindACallerWhoGaveUp)
    {
        var time = new ManualTimeProvider();
        var entered = Bounded.NewGate();
        var release = Bounded.NewGate();
        var batcher = new Batcher<int, int>(
            async (Batch<int, int> batch, CancellationToken _) =>
            {
                if (batch[0] == 0)
                {
                    entered.TrySetResult();
                    await release.Task; // held past its bound: it waits for the test, not for its token
                }

                batch.TrySetResult(0, batch[0] * 10);
            },
            new BatcherOptions { MaxBatchSize = 1, MaxConcurrency = 1, MaxDelay = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(30), TimeProvider = time });

        var held = batcher.SubmitAsync(0);                 // t = 0: dispatched, bound t = 30 s
        await entered.Task.OrHang();
        if (behindACallerWhoGaveUp)
        {
            using var cancel = new CancellationTokenSource();
            var gone = batcher.SubmitAsync(1, cancel.Token).AsTask(); // its cell stays in the queue, answered
            await cancel.CancelAsync();
            await gone.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        }

        time.Advance(TimeSpan.FromSeconds(10));
        var heldUp = HeldUpSubmit.Claim(batcher, 2);       // t = 10 s: read the clock and claimed; bound t = 40 s
        time.Advance(TimeSpan.FromSeconds(20));            // t = 30 s: the sweep releases item 0 and meets the claim
        held.IsCompleted.Should().BeTrue();
        await held.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>();

        time.Advance(TimeSpan.FromSeconds(5));
        var later = batcher.SubmitAsync(3);                // t = 35 s: bound t = 65 s
        time.Advance(TimeSpan.FromSeconds(1));
        var late = heldUp.Publish();                       // t = 36 s
        time.Advance(TimeSpan.FromSeconds(24));            // t = 60 s: a Timeout after the sweep that met the claim

        late.IsCompleted.Should().BeTrue("the sweep that met the claim unpublished must come back within a Timeout, by when the claim's bound has passed");
        (await late.AsTask().Invoking(c => c.OrHang()).Should().ThrowAsync<BatchTimeoutException>()).Which.WasDispatched.Should().BeFalse();
        later.IsCompleted.Should().BeFalse("its bound is t = 65 s");

        release.TrySetResult();
        (await later.OrHang()).Should().Be(30);
        await batcher.DisposeAsync();
    }

    /// <summary>A submit held up between its claim of a ring index and its publish, as a preempted thread is.</summary>
    private sealed class HeldUpSubmit
    {
        private readonly Batcher<int, int> _batcher;
        private readonly int _item;
        private readonly long _now;
        private readonly long _index;

        private HeldUpSubmit(Batcher<int, int> batcher, int item)
        {
            _batcher = batcher;
            _item = item;
            _now = batcher.Now(); // read before the claim, as SubmitAsync reads it
            batcher.TryClaim(out _index).Should().BeTrue("the queue has room");
        }

        public static HeldUpSubmit Claim(Batcher<int, int> batcher, int item) => new(batcher, item);

        public ValueTask<int> Publish() => _batcher.PublishClaimed(_index, _item, _now, CancellationToken.None);
    }
}
