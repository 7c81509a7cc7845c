using System.Threading.Tasks;
using VerifyCP0003 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.CheckThenActFlagAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0003: a check-then-act started flag.</summary>
public sealed class CheckThenActFlagTests
{
    private const string Usings = """
        using System;
        using System.Threading;
        using System.Threading.Tasks;

        """;

    [Fact]
    public Task TheSeedShape_AnAtomicFlagCheckedThenSetAcrossTheStart_IsReported() => VerifyCP0003.AnalyzerAsync(Usings + """
        class Syncer
        {
            private volatile bool _started;
            private int _state;

            public async Task StartAsync()
            {
                if ({|CP0003:_started|}) return;
                await ConnectAsync();
                _started = true;
            }

            public void Stop()
            {
                if (Volatile.Read(ref {|CP0003:_started|}) == false) return;
                Disconnect();
                _started = false;
            }

            public async Task StopAsync()
            {
                if ({|CP0003:_state|} == 1)
                {
                    await DisconnectAsync();
                    _state = 0;
                }
            }

            private static Task ConnectAsync() => Task.CompletedTask;
            private static Task DisconnectAsync() => Task.CompletedTask;
            private static void Disconnect() { }
        }
        """);

    [Fact]
    public Task AFlagCheckedAndSetUnderALock_IsSilent() => VerifyCP0003.AnalyzerAsync(Usings + """
        class C
        {
            private readonly object _lock = new();
            private volatile bool _started;

            public void Start()
            {
                lock (_lock)
                {
                    if (_started) return;
                    _started = true;
                }
            }
        }
        """);

    [Fact]
    public Task AFlagUnderASemaphoreHeldAcrossTheAwait_IsSilent() => VerifyCP0003.AnalyzerAsync(Usings + """
        class C
        {
            private readonly SemaphoreSlim _mutex = new(1, 1);
            private bool _started;

            public async Task<bool> StartOnceAsync()
            {
                await _mutex.WaitAsync();
                try
                {
                    if (_started) return false;
                    await Task.Yield();
                    _started = true;
                    return true;
                }
                finally { _mutex.Release(); }
            }
        }
        """);

    [Fact]
    public Task ACompareAndSwapOnTheFlag_IsSilent() => VerifyCP0003.AnalyzerAsync(Usings + """
        class C
        {
            private int _started;

            public async Task StartAsync()
            {
                if (Volatile.Read(ref _started) == 1) return;
                if (Interlocked.CompareExchange(ref _started, 1, 0) != 0) return;
                await Task.Yield();
            }
        }
        """);

    [Fact]
    public Task APlainFlagWithoutAwait_InANonThreadSafeType_IsSilent() => VerifyCP0003.AnalyzerAsync(Usings + """
        class C
        {
            private bool _started;

            public void Start()
            {
                if (_started) throw new InvalidOperationException("Already started.");
                _started = true;
            }
        }
        """);

    [Fact]
    public Task AMethodNotNamedStartOrStop_AndAWriteNotGuardedByTheCheck_AreSilent() => VerifyCP0003.AnalyzerAsync(Usings + """
        class C
        {
            private volatile bool _flag;

            public async Task ToggleAsync()
            {
                if (_flag) return;
                await Task.Yield();
                _flag = true;
            }

            public async Task StartAsync()
            {
                if (_flag) { Console.WriteLine(); } else { Console.WriteLine(); }
                await Task.Yield();
                _flag = true;
            }
        }
        """);
}
