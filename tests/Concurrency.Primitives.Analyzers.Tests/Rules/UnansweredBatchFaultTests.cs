using System.Threading.Tasks;
using VerifyCP0006 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.UnansweredBatchFaultAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0006: a caught batch fault that answers nobody.</summary>
public sealed class UnansweredBatchFaultTests
{
    private const string Batcher = """
        using System;
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Channels;
        using System.Threading.Tasks;

        class HandRolledBatcher
        {
            private readonly Channel<(int Item, TaskCompletionSource<int> Completion)> _channel = Channel.CreateUnbounded<(int, TaskCompletionSource<int>)>();
            private readonly Func<List<(int Item, TaskCompletionSource<int> Completion)>, Task> _dispatch = _ => Task.CompletedTask;
            private int _faults;

        """;

    [Fact]
    public Task TheSeedShape_ADispatchFaultThatIsOnlyCounted_IsReported() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task LoopAsync()
            {
                var reader = _channel.Reader;
                while (await reader.WaitToReadAsync())
                {
                    var batch = new List<(int, TaskCompletionSource<int>)>();
                    while (reader.TryRead(out var entry)) batch.Add(entry);
                    try
                    {
                        await _dispatch(batch);
                    }
                    {|CP0006:catch|} (Exception)
                    {
                        Interlocked.Increment(ref _faults);
                    }
                }
            }
        }
        """);

    [Fact]
    public Task ResultsSetInTheTry_AndACatchAllThatOnlyLogs_IsReported() => VerifyCP0006.AnalyzerAsync(Batcher + """
            public void Drain(List<TaskCompletionSource<int>[]> batches)
            {
                foreach (var waiters in batches)
                {
                    try
                    {
                        foreach (var waiter in waiters) waiter.SetResult(Compute());
                    }
                    {|CP0006:catch|}
                    {
                        Console.WriteLine("batch failed");
                    }
                }
            }

            private static int Compute() => 1;
        }
        """);

    [Fact]
    public Task ACatchThatFailsEveryWaiter_IsSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task LoopAsync()
            {
                var reader = _channel.Reader;
                while (await reader.WaitToReadAsync())
                {
                    var batch = new List<(int Item, TaskCompletionSource<int> Completion)>();
                    while (reader.TryRead(out var entry)) batch.Add(entry);
                    try
                    {
                        await _dispatch(batch);
                    }
                    catch (Exception ex)
                    {
                        foreach (var (_, completion) in batch) completion.TrySetException(ex);
                    }
                }
            }
        }
        """);

    [Fact]
    public Task ACatchThatRethrows_OrHandsTheBatchToAHelper_IsSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task LoopAsync(List<(int Item, TaskCompletionSource<int> Completion)> batch)
            {
                for (var attempt = 0; attempt < 3; attempt++)
                {
                    try { await _dispatch(batch); }
                    catch (Exception ex) when (attempt < 2) { Fail(batch, ex); }
                    catch { throw; }
                }
            }

            private static void Fail(List<(int Item, TaskCompletionSource<int> Completion)> batch, Exception ex) { }
        }
        """);

    [Fact]
    public Task ANarrowCatch_ASweepAfterTheTry_AndATryOutsideALoop_AreSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task OnceAsync(List<(int Item, TaskCompletionSource<int> Completion)> batch)
            {
                try { await _dispatch(batch); }
                catch (Exception) { _faults++; }
            }

            private async Task LoopAsync(List<(int Item, TaskCompletionSource<int> Completion)> batch)
            {
                while (true)
                {
                    try { await _dispatch(batch); }
                    catch (OperationCanceledException) { break; }
                    try { await _dispatch(batch); }
                    catch (Exception) { _faults++; }
                    foreach (var item in batch) item.Completion.TrySetCanceled();
                }
            }
        }
        """);

    [Fact]
    public Task ACatchInALoopOverSomethingElse_IsSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task LoopAsync(List<int> ids)
            {
                foreach (var id in ids)
                {
                    try { await Task.Delay(id); }
                    catch (Exception) { _faults++; }
                }
            }
        }
        """);

    [Fact]
    public Task AFinallyThatCompletesWhatIsLeft_IsSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private async Task LoopAsync(List<(int Item, TaskCompletionSource<int> Completion)> batch)
            {
                while (true)
                {
                    try { await _dispatch(batch); }
                    catch (Exception) { _faults++; }
                    finally
                    {
                        foreach (var item in batch) item.Completion.TrySetCanceled();
                    }
                }
            }
        }
        """);

    [Fact]
    public Task ALoopOverServicesThatKeepAPrivateSignal_IsSilent() => VerifyCP0006.AnalyzerAsync(Batcher + """
            private readonly List<Partition> _partitions = new();

            private async Task ProcessUpdatesAsync()
            {
                while (true)
                {
                    try
                    {
                        foreach (var partition in _partitions) await partition.UpdateAsync();
                    }
                    catch (Exception) { _faults++; }
                }
            }
        }

        class Partition
        {
            private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public Task UpdateAsync() => _drained.Task;
        }
        """);
}
