namespace Concurrency.Primitives.Analyzers.Tests.TestSupport;

/// <summary>
/// The shapes the analyzers match by metadata name: the library's TaskTracker and Batcher, and the Nito and DotNext
/// countdown events. Stubs keep the tests independent of those assemblies' builds and versions.
/// </summary>
public static class Stubs
{
    public const string Source = """
        using System;
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Tasks;

        namespace Concurrency.Primitives
        {
            public sealed class TaskTracker
            {
                public void Add(int delta = 1) { }
                public void Done() { }
                public Task WaitAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;
                public Task CloseAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;
                public Task Go(Func<CancellationToken, Task> work, string name = null, CancellationToken cancellationToken = default) => Task.CompletedTask;
            }

            public sealed class Batch<TItem, TResult>
            {
                public int Count => 0;
                public TItem this[int index] => default;
                public bool TrySetResult(int index, TResult result) => true;
            }

            public sealed class Batcher<TItem, TResult>
            {
                public Batcher(Func<Batch<TItem, TResult>, CancellationToken, ValueTask> dispatch, object options = null) { }
                public Batcher(Func<IReadOnlyList<TItem>, CancellationToken, ValueTask<IReadOnlyList<TResult>>> dispatch, object options = null) { }
                public ValueTask<TResult> SubmitAsync(TItem item, CancellationToken cancellationToken = default) => default;
            }
        }

        namespace Nito.AsyncEx
        {
            public sealed class AsyncCountdownEvent
            {
                public AsyncCountdownEvent(long count) { }
                public void AddCount(long addCount = 1) { }
                public void Signal(long signalCount = 1) { }
                public Task WaitAsync() => Task.CompletedTask;
            }
        }

        namespace DotNext.Threading
        {
            public sealed class AsyncCountdownEvent
            {
                public AsyncCountdownEvent(long initialCount) { }
                public void AddCount(long signalCount = 1) { }
                public bool TryAddCount(long signalCount = 1) => true;
                public bool Signal(long signalCount = 1) => true;
                public ValueTask<bool> WaitAsync(TimeSpan timeout, CancellationToken token = default) => default;
            }
        }
        """;
}
