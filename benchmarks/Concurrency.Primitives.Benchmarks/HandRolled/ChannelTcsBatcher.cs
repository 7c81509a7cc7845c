using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Benchmarks.HandRolled;

/// <summary>
/// The hurried batcher: a Channel of (item, TaskCompletionSource) pairs drained by one or more loops that hand
/// whatever is queued (up to a size) to the dispatch, which answers each pair itself.
/// Flaw: a dispatch exception is caught and logged, so every caller whose item it had not yet answered waits forever
/// (nothing completes it, and callers have no deadline).
/// </summary>
public sealed class ChannelTcsBatcher<TItem, TResult> : IAsyncDisposable
{
    private readonly Channel<(TItem Item, TaskCompletionSource<TResult> Completion)> _channel;
    private readonly Func<List<(TItem Item, TaskCompletionSource<TResult> Completion)>, Task> _dispatch;
    private readonly int _maxBatchSize;
    private readonly Task[] _loops;

    public ChannelTcsBatcher(Func<List<(TItem Item, TaskCompletionSource<TResult> Completion)>, Task> dispatch, int maxBatchSize, int consumers = 1)
    {
        _dispatch = dispatch;
        _maxBatchSize = maxBatchSize;
        _channel = Channel.CreateUnbounded<(TItem, TaskCompletionSource<TResult>)>(new UnboundedChannelOptions { SingleReader = consumers == 1 });
        _loops = new Task[consumers];
        for (var i = 0; i < consumers; i++)
        {
            _loops[i] = Task.Run(LoopAsync);
        }
    }

    private int _loggedFaults;

    /// <summary>How many dispatch exceptions were "handled" by logging them.</summary>
    public int LoggedFaults => Volatile.Read(ref _loggedFaults);

    public Task<TResult> SubmitAsync(TItem item)
    {
        var completion = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        _channel.Writer.TryWrite((item, completion));
        return completion.Task;
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Writer.TryComplete();
        await Task.WhenAll(_loops);
    }

    private async Task LoopAsync()
    {
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync())
        {
            var batch = new List<(TItem, TaskCompletionSource<TResult>)>(_maxBatchSize);
            while (batch.Count < _maxBatchSize && reader.TryRead(out var entry))
            {
                batch.Add(entry);
            }

            try
            {
                await _dispatch(batch);
            }
            catch (Exception)
            {
                Interlocked.Increment(ref _loggedFaults); // "logged"; the unanswered callers are forgotten
            }
        }
    }
}
