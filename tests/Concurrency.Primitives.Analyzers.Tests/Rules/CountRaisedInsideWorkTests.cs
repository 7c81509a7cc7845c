using System.Threading.Tasks;
using Concurrency.Primitives.Analyzers.CodeFixes;
using Concurrency.Primitives.Analyzers.Tests.TestSupport;
using VerifyCP0001 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.CountRaisedInsideWorkAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0001: a count raised inside the work it counts.</summary>
public sealed class CountRaisedInsideWorkTests
{
    private const string Usings = """
        using System;
        using System.Threading;
        using System.Threading.Tasks;
        using Concurrency.Primitives;

        """;

    [Fact]
    public Task TheSeedShape_TheChildIncrementsInsideItsOwnTaskRun_IsReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        class Node
        {
            private int _count;
            private readonly TaskCompletionSource _zero = new(TaskCreationOptions.RunContinuationsAsynchronously);

            private void Done() { if (Interlocked.Decrement(ref _count) == 0) _zero.TrySetResult(); }

            public async Task BuildAsync()
            {
                Interlocked.Increment(ref _count);
                _ = Task.Run(async () =>
                {
                    await Task.Yield();
                    _ = Task.Run(async () => { {|CP0001:Interlocked.Increment(ref _count)|}; await Task.Yield(); Done(); });
                    Done();
                });
                await _zero.Task;
            }
        }
        """);

    [Fact]
    public Task ACounterRaisedAndTestedInsideTheSameWork_IsReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        static class WaitGroup
        {
            private static int s_count;

            public static async Task RunAsync()
            {
                var zero = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _ = Task.Run(() =>
                {
                    {|CP0001:Interlocked.Increment(ref s_count)|};
                    if (Interlocked.Decrement(ref s_count) == 0) zero.TrySetResult();
                });
                await zero.Task;
            }
        }
        """);

    [Fact]
    public Task AnIncrementWhoseResultIsRead_IsATicketNotACount_AndIsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private int _running;

            public void M() => _ = Task.Run(() =>
            {
                if (Interlocked.Increment(ref _running) == 1) { }
                Interlocked.Decrement(ref _running);
            });
        }
        """);

    [Fact]
    public Task ACapturedLocalCounter_TestedAgainstZero_IsReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            public void M()
            {
                int pending = 0;
                ThreadPool.QueueUserWorkItem(_ => { {|CP0001:Interlocked.Add(ref pending, 1)|}; });
                SpinWait.SpinUntil(() => Volatile.Read(ref pending) == 0);
            }
        }
        """);

    [Fact]
    public Task CountdownEventAddCount_InsideANewThread_IsReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private readonly CountdownEvent _pending = new(1);

            public void M()
            {
                new Thread(() => { {|CP0001:_pending.AddCount()|}; _pending.Signal(); }).Start();
                var worker = new Thread(() => { {|CP0001:_pending.TryAddCount()|}; _pending.Signal(); });
                worker.Start();
                _pending.Signal();
                _pending.Wait();
            }
        }
        """);

    [Fact]
    public Task NitoAndDotNextCountdownEvents_AddCountInsideStartNew_AreReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private readonly Nito.AsyncEx.AsyncCountdownEvent _nito = new(1);
            private readonly DotNext.Threading.AsyncCountdownEvent _dotNext = new(1);

            public async Task M()
            {
                _ = Task.Factory.StartNew(() => { {|CP0001:_nito.AddCount()|}; _nito.Signal(); });
                _ = Task.Factory.StartNew(() => { {|CP0001:_dotNext.AddCount()|}; _dotNext.Signal(); });
                await _nito.WaitAsync();
                await _dotNext.WaitAsync(TimeSpan.FromSeconds(1));
            }
        }
        """);

    [Fact]
    public Task TaskTrackerAdd_InsideTaskRunAndInsideAnUnawaitedAsyncMethod_IsReported() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private readonly TaskTracker _tracker = new();

            public void M()
            {
                _ = Task.Run(async () => { {|CP0001:_tracker.Add()|}; try { await Task.Delay(1); } finally { _tracker.Done(); } });
                _ = MergeAsync();
                LocalAsync();

                async Task LocalAsync() { await Task.Yield(); {|CP0001:_tracker.Add()|}; _tracker.Done(); }
            }

            private async Task MergeAsync()
            {
                await Task.Yield();
                {|CP0001:_tracker.Add()|};
                _tracker.Done();
            }
        }
        """);

    [Fact]
    public Task TheGoStyleAddBeforeSpawn_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private int _count;
            private readonly TaskTracker _tracker = new();

            public void M()
            {
                Interlocked.Increment(ref _count);
                _tracker.Add();
                _ = Task.Run(() => { Work(); if (Interlocked.Decrement(ref _count) == 0) { } _tracker.Done(); });
            }

            private static void Work() { }
        }
        """);

    [Fact]
    public Task AParentRegisteringItsChildJustBeforeStartingIt_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private int _count;

            public void M()
            {
                Interlocked.Increment(ref _count);
                _ = Task.Run(async () =>
                {
                    await Task.Yield();
                    Interlocked.Increment(ref _count);   // the parent still holds its own count
                    _ = Task.Run(() => Done());
                    Done();
                });
            }

            private void Done() { if (Interlocked.Decrement(ref _count) == 0) { } }
        }
        """);

    [Fact]
    public Task AnInterlockedCounterThatNothingWaitsOn_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private long _requests;

            public long Requests => Interlocked.Read(ref _requests);

            public void M() => _ = Task.Run(() => { Interlocked.Increment(ref _requests); });
        }
        """);

    [Fact]
    public Task AnAwaitedTaskRun_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private int _count;

            public async Task M()
            {
                await Task.Run(() => { Interlocked.Increment(ref _count); });
                if (Volatile.Read(ref _count) == 0) { }
            }
        }
        """);

    [Fact]
    public Task ACounterDeclaredInsideTheWork_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            public void M() => _ = Task.Run(() =>
            {
                int local = 0;
                Interlocked.Increment(ref local);
                if (local == 0) { }
            });
        }
        """);

    [Fact]
    public Task AnUnawaitedAsyncMethodThatAddsBeforeItsFirstAwait_IsSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private readonly TaskTracker _tracker = new();

            public void M() => _ = ChildAsync();

            private async Task ChildAsync()
            {
                _tracker.Add();   // runs synchronously, in the caller, before ChildAsync returns
                try { await Task.Yield(); } finally { _tracker.Done(); }
            }
        }
        """);

    [Fact]
    public Task ACountdownEventNobodyWaitsOn_AndANegativeAdd_AreSilent() => VerifyCP0001.AnalyzerAsync(Usings + """
        class C
        {
            private readonly CountdownEvent _unused = new(1);
            private int _count;

            public void M()
            {
                _ = Task.Run(() => { _unused.AddCount(); Interlocked.Add(ref _count, -1); });
                if (_count == 0) { }
            }
        }
        """);

    [Fact]
    public Task Fix_MovesTheIncrementBeforeTheSpawn() => VerifyCP0001.CodeFixAsync<MoveCountBeforeSpawnCodeFix>(Usings + """
        class C
        {
            private int _count;

            public void M()
            {
                _ = Task.Run(() =>
                {
                    {|CP0001:Interlocked.Increment(ref _count)|};
                    Work();
                    Done();
                });
            }

            private static void Work() { }

            private void Done() { if (Interlocked.Decrement(ref _count) == 0) { } }
        }
        """, Usings + """
        class C
        {
            private int _count;

            public void M()
            {
                Interlocked.Increment(ref _count);
                _ = Task.Run(() =>
                {
                    Work();
                    Done();
                });
            }

            private static void Work() { }

            private void Done() { if (Interlocked.Decrement(ref _count) == 0) { } }
        }
        """, equivalenceKey: "MoveBeforeSpawn");

    [Fact]
    public Task Fix_RewritesTaskTrackerAddInsideTaskRunToGo() => VerifyCP0001.CodeFixAsync<MoveCountBeforeSpawnCodeFix>(Usings + """
        class C
        {
            private readonly TaskTracker _tracker = new();

            public async Task M()
            {
                _ = Task.Run(async () =>
                {
                    {|CP0001:_tracker.Add()|};
                    try
                    {
                        await Task.Delay(10);
                    }
                    finally
                    {
                        _tracker.Done();
                    }
                });
                await _tracker.CloseAsync();
            }
        }
        """, Usings + """
        class C
        {
            private readonly TaskTracker _tracker = new();

            public async Task M()
            {
                _ = _tracker.Go(async closing =>
                {
                    await Task.Delay(10);
                });
                await _tracker.CloseAsync();
            }
        }
        """, equivalenceKey: "TaskTrackerGo");
}
