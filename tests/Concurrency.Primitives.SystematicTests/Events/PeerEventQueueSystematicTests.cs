using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.SystematicTests.Harness;
using Microsoft.Coyote.Specifications;
using Xunit.Abstractions;

namespace Concurrency.Primitives.SystematicTests.Events;

/// <summary>
/// The pump's queue at a chunk's end, under Coyote with every volatile access a scheduling point: the reader has taken
/// all but the chunk's last slot and looks again, while the producer publishes that slot and, with the next event, links
/// the next chunk. Between the reader's look at what is published and its look at the link, both may change: it must
/// move on only from a chunk it has read to its end, so it takes every event, in order, none twice.
/// </summary>
public sealed class PeerEventQueueSystematicTests
{
    private const uint Iterations = 1_000;
    private const int Size = PeerEventChunk<string, int>.Size;
    private readonly ITestOutputHelper _output;

    public PeerEventQueueSystematicTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Reader_AtAChunksEnd_TakesTheLastSlotPublishedAsTheNextChunkIsLinked()
    {
        var report = CoyoteHarness.Explore(
            _output,
            "PeerEventQueue, the reader at a chunk's end racing the producer's last slot and the next chunk's link",
            Iterations,
            ScenarioAsync,
            interleaveVolatiles: true);

        report.ShouldHoldEverywhere();
    }

    private static async Task ScenarioAsync()
    {
        var queue = new PeerEventQueue<string, int>();
        var pump = new PeerEventPump<string, int>(new PeerHistoryChecker());
        var handle = pump.Connect("p");
        for (var i = 0; i < Size - 1; i++)
        {
            queue.Enqueue(new PeerEvent<string, int>(PeerEventKind.Message, handle, i));
        }

        var caughtUp = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var produced = 0;
        var producer = Task.Run(async () =>
        {
            await caughtUp.Task; // the reader has taken every event published so far

            queue.Enqueue(new PeerEvent<string, int>(PeerEventKind.Message, handle, Size - 1)); // the chunk's last slot
            queue.Enqueue(new PeerEvent<string, int>(PeerEventKind.Message, handle, Size)); // links the next chunk
            Volatile.Write(ref produced, 1);
        });

        var received = new List<int>();
        var consumer = Task.Run(async () =>
        {
            var reader = new PeerEventReader<string, int>(queue, claim: false);
            while (true)
            {
                var done = Volatile.Read(ref produced) == 1; // read before the look: a look after the last event finds it
                if (reader.TryTake(out var item))
                {
                    received.Add(item.Message);
                    if (received.Count == Size - 1)
                    {
                        caughtUp.SetResult(true);
                    }
                }
                else if (done)
                {
                    return;
                }
                else
                {
                    await Task.Yield();
                }
            }
        });

        await Task.WhenAll(producer, consumer);
        Specification.Assert(received.Count == Size + 1, $"The reader took {received.Count} events of {Size + 1}.");
        for (var i = 0; i < received.Count; i++)
        {
            Specification.Assert(received[i] == i, $"The reader took {received[i]} where {i} was next: a slot was skipped or taken twice.");
        }

        await pump.DisposeAsync();
    }
}
