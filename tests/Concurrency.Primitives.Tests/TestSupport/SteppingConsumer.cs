using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>
/// A pump consumer whose every call announces itself (<see cref="NextCallAsync"/>: the event, "added", "removed" or the
/// message) and waits until the test completes its <c>Done</c>: the test steps the loop one call at a time.
/// </summary>
public sealed class SteppingConsumer : IPeerEventConsumer<string, string>
{
    private readonly Channel<(string What, TaskCompletionSource Done)> _calls = Channel.CreateUnbounded<(string, TaskCompletionSource)>();

    public async Task<(string What, TaskCompletionSource Done)> NextCallAsync() => await _calls.Reader.ReadAsync().AsTask().OrHang();

    public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => EnterAsync("added");

    public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken) => EnterAsync(message);

    public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => EnterAsync("removed");

    private ValueTask EnterAsync(string what)
    {
        var done = Bounded.NewGate();
        _calls.Writer.TryWrite((what, done));
        return new ValueTask(done.Task);
    }
}
