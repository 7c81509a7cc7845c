using System.Threading.Tasks;
using Concurrency.Primitives.Analyzers.CodeFixes;
using VerifyCP0002 = Concurrency.Primitives.Analyzers.Tests.TestSupport.Verify<Concurrency.Primitives.Analyzers.InlineContinuationsAnalyzer>;

namespace Concurrency.Primitives.Analyzers.Tests.Rules;

/// <summary>CP0002: a TaskCompletionSource without RunContinuationsAsynchronously completed under a lock or in a loop over waiters.</summary>
public sealed class InlineContinuationsTests
{
    private const string Usings = """
        using System;
        using System.Collections.Generic;
        using System.Threading;
        using System.Threading.Tasks;

        """;

    [Fact]
    public Task AFieldCompletedUnderALock_IsReported() => VerifyCP0002.AnalyzerAsync(Usings + """
        class Gate
        {
            private readonly object _lock = new();
            private TaskCompletionSource<bool> _opened = {|CP0002:new TaskCompletionSource<bool>()|};

            public Task WaitAsync() => _opened.Task;

            public void Open()
            {
                lock (_lock) { _opened.TrySetResult(true); }
            }
        }
        """);

    [Fact]
    public Task WaitersCompletedInALoop_IsReported() => VerifyCP0002.AnalyzerAsync(Usings + """
        class Signal
        {
            private readonly List<TaskCompletionSource> _waiters = new();
            private readonly List<(int Id, TaskCompletionSource<int> Completion)> _items = new();

            public Task WaitAsync()
            {
                var waiter = {|CP0002:new TaskCompletionSource(TaskCreationOptions.None)|};
                _waiters.Add(waiter);
                return waiter.Task;
            }

            public Task<int> SubmitAsync(int id)
            {
                var completion = {|CP0002:new TaskCompletionSource<int>()|};
                _items.Add((id, completion));
                return completion.Task;
            }

            public void Dispatch()
            {
                foreach (var waiter in _waiters) waiter.SetResult();
                for (var i = 0; i < _items.Count; i++) _items[i].Completion.TrySetResult(_items[i].Id);
            }
        }
        """);

    [Fact]
    public Task WithTheFlag_OrWithOptionsNotKnownAtCompileTime_IsSilent() => VerifyCP0002.AnalyzerAsync(Usings + """
        class C
        {
            private readonly object _lock = new();
            private readonly TaskCreationOptions _options;
            private TaskCompletionSource _a = new(TaskCreationOptions.RunContinuationsAsynchronously);
            private TaskCompletionSource _b;

            public C(TaskCreationOptions options) { _options = options; _b = new TaskCompletionSource(_options); }

            public void Open()
            {
                lock (_lock) { _a.TrySetResult(); _b.TrySetResult(); }
            }
        }
        """);

    [Fact]
    public Task CompletedOutsideAnyLockOrLoop_IsSilent() => VerifyCP0002.AnalyzerAsync(Usings + """
        class C
        {
            private readonly TaskCompletionSource<int> _done = new();

            public Task<int> Result => _done.Task;

            public void Finish(int value) => _done.TrySetResult(value);
        }
        """);

    [Fact]
    public Task ADifferentTaskCompletionSourceCompletedUnderALock_IsSilent() => VerifyCP0002.AnalyzerAsync(Usings + """
        class C
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<int> _unlocked = new();
            private readonly TaskCompletionSource<int> _locked = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public void Finish()
            {
                _unlocked.TrySetResult(1);
                lock (_lock) { _locked.TrySetResult(1); }
            }
        }
        """);

    [Fact]
    public Task ALoopThatCompletesOneFieldRepeatedly_IsSilent() => VerifyCP0002.AnalyzerAsync(Usings + """
        class C
        {
            private readonly TaskCompletionSource<int> _first = new();

            public void Run(int[] values)
            {
                foreach (var value in values) _first.TrySetResult(value);
            }
        }
        """);

    [Fact]
    public Task ACompletionInsideALambdaInsideALock_IsSilent() => VerifyCP0002.AnalyzerAsync(Usings + """
        class C
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<int> _done = new();

            public void Finish()
            {
                lock (_lock) { ThreadPool.QueueUserWorkItem(_ => _done.TrySetResult(1)); }
            }
        }
        """);

    [Fact]
    public Task Fix_AddsTheFlag() => VerifyCP0002.CodeFixAsync<RunContinuationsAsynchronouslyCodeFix>(Usings + """
        class Gate
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<bool> _opened = {|CP0002:new TaskCompletionSource<bool>()|};

            public void Open() { lock (_lock) { _opened.TrySetResult(true); } }
        }
        """, Usings + """
        class Gate
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<bool> _opened = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);

            public void Open() { lock (_lock) { _opened.TrySetResult(true); } }
        }
        """);

    [Fact]
    public Task Fix_MergesWithExistingOptionsAndKeepsTheState() => VerifyCP0002.CodeFixAsync<RunContinuationsAsynchronouslyCodeFix>(Usings + """
        class Gate
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<bool> _a = {|CP0002:new(TaskCreationOptions.DenyChildAttach)|};
            private readonly TaskCompletionSource<bool> _b = {|CP0002:new("state")|};

            public void Open() { lock (_lock) { _a.TrySetResult(true); _b.TrySetResult(true); } }
        }
        """, Usings + """
        class Gate
        {
            private readonly object _lock = new();
            private readonly TaskCompletionSource<bool> _a = new(TaskCreationOptions.DenyChildAttach | TaskCreationOptions.RunContinuationsAsynchronously);
            private readonly TaskCompletionSource<bool> _b = new("state", TaskCreationOptions.RunContinuationsAsynchronously);

            public void Open() { lock (_lock) { _a.TrySetResult(true); _b.TrySetResult(true); } }
        }
        """, iterations: 2);
}
