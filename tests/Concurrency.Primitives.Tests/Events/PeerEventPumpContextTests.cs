using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Events;

/// <summary>The execution context the consumer runs in.</summary>
public sealed class PeerEventPumpContextTests
{
    /// <summary>
    /// Guards the consumer's context: the pump's own, never that of the producer whose event started (or restarted) the
    /// loop, so that one producer's AsyncLocal values (culture, activity, identity) do not leak into the handling of
    /// every peer's events.
    /// </summary>
    [Fact]
    public async Task TheConsumer_DoesNotSeeTheAsyncLocalsOfTheProducerWhoseEventStartedItsLoop()
    {
        var local = new AsyncLocal<string?>();
        var consumer = new AsyncLocalRecorder(local);
        await using var pump = new PeerEventPump<string, string>(consumer);

        local.Value = "first producer";
        var alice = pump.Connect("alice");
        alice.MarkReady().Should().BeTrue();
        await consumer.WhenSeen(1).OrHang();

        local.Value = "second producer"; // the loop went idle after Added: this post starts it again
        alice.TryPost("m1").Should().BeTrue();
        await consumer.WhenSeen(2).OrHang();

        consumer.Seen.Should().Equal(new string?[] { null, null });
    }

    private sealed class AsyncLocalRecorder(AsyncLocal<string?> local) : IPeerEventConsumer<string, string>
    {
        private readonly object _gate = new();
        private readonly List<(int Count, TaskCompletionSource<bool> Signal)> _waiters = new();

        public List<string?> Seen { get; } = new();

        public Task WhenSeen(int count)
        {
            lock (_gate)
            {
                var signal = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                if (Seen.Count >= count)
                {
                    signal.SetResult(true);
                }
                else
                {
                    _waiters.Add((count, signal));
                }

                return signal.Task;
            }
        }

        public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => Record();

        public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => Record();

        public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => Record();

        private ValueTask Record()
        {
            lock (_gate)
            {
                Seen.Add(local.Value);
                _waiters.RemoveAll(waiter => Seen.Count >= waiter.Count && waiter.Signal.TrySetResult(true));
            }

            return default;
        }
    }
}
