using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>
/// The pump's queue (producers append under the pump's lock, the loop takes without it): FIFO across chunks, chunks
/// recycled so that a steady flow allocates nothing, and drop-oldest finding the oldest waiting message even after the
/// chunk it last scanned has been recycled.
/// </summary>
public sealed class PeerEventQueueTests
{
    private const int Chunk = PeerEventChunk<string, int>.Size;

    [Fact]
    public void EventsComeOutInTheOrderTheyWentIn_AcrossManyChunks()
    {
        var (queue, reader, handle) = NewQueue();
        for (var i = 0; i < (Chunk * 3) + 17; i++)
        {
            queue.Enqueue(Message(handle, i));
        }

        TakeAll(ref reader).Should().Equal(Range(0, (Chunk * 3) + 17));
        reader.TryTake(out _).Should().BeFalse("everything was taken");
    }

    [Fact]
    public void ASteadyFlow_ReusesFinishedChunks_AndAllocatesNothing()
    {
        var (queue, reader, handle) = NewQueue();
        var item = Message(handle, 1);
        for (var i = 0; i < Chunk * 8; i++)
        {
            queue.Enqueue(item);
        }

        TakeAll(ref reader);

        // The first round left seven finished chunks on the free list; the same volume again must come from them.
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var round = 0; round < 4; round++)
        {
            for (var i = 0; i < Chunk * 7; i++)
            {
                queue.Enqueue(item);
            }

            while (reader.TryTake(out _))
            {
            }
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void DropOldest_DropsTheOldestWaitingMessage_SkipsLifecycleEvents_AndTheLoopNeverSeesIt()
    {
        var (queue, reader, handle) = NewQueue(claim: true);
        queue.Enqueue(new PeerEvent<string, int>(PeerEventKind.Added, handle, 0));
        for (var i = 0; i < Chunk + 50; i++)
        {
            queue.Enqueue(Message(handle, i));
        }

        for (var i = 0; i < Chunk; i++)
        {
            queue.DropOldestMessage(reader.Chunk, out var message).Should().BeSameAs(handle);
            message.Should().Be(i, "the dropped message is handed back, for the drop callback");
        }

        reader.TryTake(out var first).Should().BeTrue();
        first.Kind.Should().Be((int)PeerEventKind.Added);
        TakeAll(ref reader).Should().Equal(Range(Chunk, 50));
        queue.DropOldestMessage(reader.Chunk, out _).Should().BeNull("no message is waiting");
    }

    [Fact]
    public void DropNewest_DropsTheNewestWaitingMessage_EvenWhenTheLastChunkHoldsOnlyLifecycleEvents()
    {
        var (queue, reader, handle) = NewQueue(claim: true);
        for (var i = 0; i < Chunk + 10; i++)
        {
            queue.Enqueue(Message(handle, i)); // fills the first chunk and 10 slots of the second
        }

        for (var i = 0; i < Chunk - 10 + 5; i++)
        {
            queue.Enqueue(new PeerEvent<string, int>(PeerEventKind.Added, handle, 0)); // the rest of the second, 5 of a third
        }

        for (var i = 0; i < 12; i++)
        {
            // The newest messages first: 265 .. 256 in the second chunk (behind the third, which has none), then 255, 254.
            queue.DropNewestMessage(reader.Chunk, out var message).Should().BeSameAs(handle);
            message.Should().Be(Chunk + 9 - i);
        }

        var messages = new List<int>();
        while (reader.TryTake(out var item))
        {
            if (item.Kind == (int)PeerEventKind.Message)
            {
                messages.Add(item.Message);
            }
        }

        messages.Should().Equal(Range(0, Chunk - 2), "the newest messages were dropped; the older ones and every lifecycle event remain");
        queue.DropNewestMessage(reader.Chunk, out _).Should().BeNull("no message is waiting");
    }

    [Fact]
    public void DropOldest_AfterTheChunkItLastScannedWasRecycled_StillFindsTheOldest()
    {
        var (queue, reader, handle) = NewQueue(claim: true);

        // Fill two chunks, drop one message in the first (the scan now remembers a spot in it), then let the loop
        // finish both: the first chunk goes to the free list, and comes back as the tail with a new generation.
        for (var i = 0; i < Chunk * 2; i++)
        {
            queue.Enqueue(Message(handle, i));
        }

        queue.DropOldestMessage(reader.Chunk, out _).Should().BeSameAs(handle);
        TakeAll(ref reader).Should().HaveCount((Chunk * 2) - 1);
        for (var i = 0; i < Chunk * 2; i++)
        {
            queue.Enqueue(Message(handle, 1_000 + i));
        }

        // The remembered spot (index 1 of a chunk that is now reused) must not be trusted: the oldest is 1,000.
        queue.DropOldestMessage(reader.Chunk, out _).Should().BeSameAs(handle);
        reader.TryTake(out var next).Should().BeTrue();
        next.Message.Should().Be(1_001);
    }

    [Fact]
    public async Task DropOldest_RacingTheLoop_GivesEachMessageToExactlyOneOfThem()
    {
        for (var round = 0; round < 200; round++)
        {
            var (queue, reader, handle) = NewQueue(claim: true);
            const int Count = Chunk + 100;
            for (var i = 0; i < Count; i++)
            {
                queue.Enqueue(Message(handle, i));
            }

            var dropped = 0;
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var dropper = Task.Run(async () =>
            {
                await start.Task;
                while (queue.DropOldestMessage(reader.Chunk, out _) is not null)
                {
                    dropped++;
                }
            });

            var taken = new List<int>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            start.SetResult();
            while (taken.Count + System.Threading.Volatile.Read(ref dropped) < Count || !dropper.IsCompleted)
            {
                if (reader.TryTake(out var item))
                {
                    taken.Add(item.Message);
                }

                clock.Elapsed.Should().BeLessThan(Bounded.HangLimit, $"round {round}: {taken.Count} taken and {dropped} dropped of {Count}");
            }

            await dropper.OrHang();
            (taken.Count + dropped).Should().Be(Count, $"round {round}: every message is taken or dropped, once");
            taken.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        }
    }

    [Fact]
    public void DropOldestOfAHandle_DropsThatHandlesOldestMessages_NeverAnotherPeers()
    {
        var (queue, reader, p, q) = NewQueueOfTwoPeers();
        for (var i = 0; i < Chunk; i++)
        {
            queue.Enqueue(Message(p, i));
            queue.Enqueue(Message(q, 1_000 + i));
        }

        var scan = default(QueuePosition<string, int>);
        for (var i = 0; i < 3; i++)
        {
            queue.DropOldestMessageOf(p, ref scan, reader.Chunk, out var message).Should().BeTrue();
            message.Should().Be(i);
        }

        var taken = TakeAll(ref reader);
        taken.Where(m => m >= 1_000).Should().Equal(Range(1_000, Chunk), "no message of the other peer is dropped");
        taken.Where(m => m < 1_000).Should().Equal(Range(3, Chunk - 3));
        queue.DropOldestMessageOf(p, ref scan, reader.Chunk, out _).Should().BeFalse("the loop took the rest");
    }

    [Fact]
    public void DropNewestOfAHandle_DropsItsLastQueuedMessage_OrNothingOnceTheLoopHasTakenIt()
    {
        var (queue, reader, p, q) = NewQueueOfTwoPeers();
        queue.EnqueueAt(Message(p, 1));
        var newest = queue.EnqueueAt(Message(p, 2));
        queue.Enqueue(Message(q, 3));

        queue.DropNewestMessageOf(p, newest, reader.Chunk, out var message).Should().BeTrue();
        message.Should().Be(2, "its own newest, not the other peer's message queued after it");
        newest = queue.EnqueueAt(Message(p, 4));
        TakeAll(ref reader).Should().Equal(1, 3, 4);

        queue.DropNewestMessageOf(p, newest, reader.Chunk, out _).Should().BeFalse("the loop took its newest, and so every message before it");
    }

    [Fact]
    public void DropNewestOfAHandle_WhenADropOfAnyPeersMessageTookItsNewest_DropsTheOneBefore()
    {
        var (queue, reader, p, q) = NewQueueOfTwoPeers();
        queue.EnqueueAt(Message(p, 1));
        queue.Enqueue(Message(q, 2));
        var newest = queue.EnqueueAt(Message(p, 3));
        queue.DropNewestMessage(reader.Chunk, out var any).Should().BeSameAs(p);
        any.Should().Be(3);

        queue.DropNewestMessageOf(p, newest, reader.Chunk, out var message).Should().BeTrue();

        message.Should().Be(1);
        TakeAll(ref reader).Should().Equal(2);
    }

    private static (PeerEventQueue<string, int> Queue, PeerEventReader<string, int> Reader, PeerHandle<string, int> Handle) NewQueue(bool claim = false)
    {
        var queue = new PeerEventQueue<string, int>();
        var pump = new PeerEventPump<string, int>(new NoopHandler());
        return (queue, new PeerEventReader<string, int>(queue, claim), pump.Connect("p"));
    }

    private static (PeerEventQueue<string, int> Queue, PeerEventReader<string, int> Reader, PeerHandle<string, int> P, PeerHandle<string, int> Q) NewQueueOfTwoPeers()
    {
        var queue = new PeerEventQueue<string, int>();
        var pump = new PeerEventPump<string, int>(new NoopHandler());
        return (queue, new PeerEventReader<string, int>(queue, claim: true), pump.Connect("p"), pump.Connect("q"));
    }

    private static PeerEvent<string, int> Message(PeerHandle<string, int> handle, int value) => new(PeerEventKind.Message, handle, value);

    private static List<int> TakeAll(ref PeerEventReader<string, int> reader)
    {
        var messages = new List<int>();
        while (reader.TryTake(out var item))
        {
            item.Kind.Should().Be((int)PeerEventKind.Message);
            messages.Add(item.Message);
        }

        return messages;
    }

    private static IEnumerable<int> Range(int start, int count)
    {
        for (var i = 0; i < count; i++)
        {
            yield return start + i;
        }
    }

    private sealed class NoopHandler : IPeerEventConsumer<string, int>
    {
        public ValueTask OnAddedAsync(string peer, System.Threading.CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(string peer, int message, System.Threading.CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(string peer, System.Threading.CancellationToken cancellationToken) => default;
    }
}
