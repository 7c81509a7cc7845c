using System.Threading.Tasks;
using Concurrency.Primitives.Analyzers.CodeFixes;
using VerifyCP0004 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.DisposeBeforeLoopStopsAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0004: a resource released before the loop that uses it is cancelled and awaited.</summary>
public sealed class DisposeBeforeLoopStopsTests
{
    private const string Runner = """
        using System;
        using System.IO;
        using System.Threading;
        using System.Threading.Tasks;

        class Runner
        {
            private readonly Stream _database = Stream.Null;
            private readonly CancellationTokenSource _cancellation = new();
            private Task _loop = Task.CompletedTask;
            private Task[] _loops = Array.Empty<Task>();

            public void Start() => _loop = Task.Run(RunAsync);

            private async Task RunAsync()
            {
                while (!_cancellation.IsCancellationRequested) { await _database.FlushAsync(); }
            }

        """;

    [Fact]
    public Task TheSeedShape_CloseThenCancelThenWait_IsReported() => VerifyCP0004.AnalyzerAsync(Runner + """
            public async Task CloseAsync()
            {
                await {|CP0004:_database.DisposeAsync()|};
                await _cancellation.CancelAsync();
                await _loop!;
            }

            public void Close()
            {
                {|CP0004:_database?.Close()|};
                _cancellation.Cancel();
                Task.WaitAll(_loops);
            }
        }
        """);

    [Fact]
    public Task CancelThenAwaitThenDispose_IsSilent() => VerifyCP0004.AnalyzerAsync(Runner + """
            public async Task CloseAsync()
            {
                await _cancellation.CancelAsync();
                await _loop.ConfigureAwait(false);
                await _database.DisposeAsync();
                _cancellation.Dispose();
            }
        }
        """);

    [Fact]
    public Task ADisposeWithNoCancelAfterIt_OrNoLoopAwaitedAfterTheCancel_IsSilent() => VerifyCP0004.AnalyzerAsync(Runner + """
            public void Dispose()
            {
                _database.Dispose();
                _cancellation.Dispose();
            }

            public void Abort()
            {
                _database.Dispose();
                _cancellation.Cancel();
            }
        }
        """);

    [Fact]
    public Task DisposingTheTokenSourceOrALocal_IsSilent() => VerifyCP0004.AnalyzerAsync(Runner + """
            public async Task RestartAsync()
            {
                var scratch = new MemoryStream();
                scratch.Dispose();
                var previous = _cancellation;
                previous.Dispose();
                _cancellation.Cancel();
                await _loop;
            }
        }
        """);

    [Fact]
    public Task AwaitingSomethingOtherThanALoopTaskAfterTheCancel_IsSilent() => VerifyCP0004.AnalyzerAsync(Runner + """
            public async Task CloseAsync()
            {
                _database.Dispose();
                _cancellation.Cancel();
                await Task.Delay(10);
                await Task.Yield();
            }
        }
        """);

    [Fact]
    public Task TheDisposeInAnotherMethodThanTheCancelAndAwait_IsSilent() => VerifyCP0004.AnalyzerAsync(Runner + """
            public void ReleaseDatabase() => _database.Dispose();

            public async Task StopAsync()
            {
                _cancellation.Cancel();
                await _loop;
            }
        }
        """);

    [Fact]
    public Task Fix_MovesTheDisposeAfterTheAwaitOfTheLoop() => VerifyCP0004.CodeFixAsync<CancelAwaitDisposeCodeFix>(Runner + """
            public async Task CloseAsync()
            {
                await {|CP0004:_database.DisposeAsync()|};
                await _cancellation.CancelAsync();
                await _loop;
            }
        }
        """, Runner + """
            public async Task CloseAsync()
            {
                await _cancellation.CancelAsync();
                await _loop;
                await _database.DisposeAsync();
            }
        }
        """);
}
