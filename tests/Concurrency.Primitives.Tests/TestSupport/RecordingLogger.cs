using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Tests.TestSupport;

/// <summary>One structured log event, with its named values.</summary>
public sealed record LogEntry(LogLevel Level, int EventId, string Message, IReadOnlyDictionary<string, object?> Values, Exception? Exception)
{
    public object? this[string key] => Values.TryGetValue(key, out var value) ? value : null;
}

/// <summary>An <see cref="ILogger"/> that records every event and lets a test await a particular one.</summary>
public sealed class RecordingLogger : ILogger
{
    private readonly object _gate = new();
    private readonly List<LogEntry> _entries = new();
    private readonly List<(Func<LogEntry, bool> Match, TaskCompletionSource<LogEntry> Signal)> _waiters = new();

    public IReadOnlyList<LogEntry> Entries
    {
        get
        {
            lock (_gate)
            {
                return _entries.ToList();
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var values = state is IEnumerable<KeyValuePair<string, object?>> pairs
            ? pairs.ToDictionary(p => p.Key, p => p.Value)
            : new Dictionary<string, object?>();
        var entry = new LogEntry(logLevel, eventId.Id, formatter(state, exception), values, exception);
        List<TaskCompletionSource<LogEntry>> matched;
        lock (_gate)
        {
            _entries.Add(entry);
            matched = _waiters.Where(w => w.Match(entry)).Select(w => w.Signal).ToList();
            _waiters.RemoveAll(w => matched.Contains(w.Signal));
        }

        foreach (var signal in matched)
        {
            signal.TrySetResult(entry);
        }
    }

    /// <summary>Completes when an event matching <paramref name="match"/> has been logged (including earlier ones).</summary>
    public Task<LogEntry> WaitFor(Func<LogEntry, bool> match)
    {
        lock (_gate)
        {
            if (_entries.FirstOrDefault(match) is { } existing)
            {
                return Task.FromResult(existing);
            }

            var signal = new TaskCompletionSource<LogEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, signal));
            return signal.Task;
        }
    }
}
