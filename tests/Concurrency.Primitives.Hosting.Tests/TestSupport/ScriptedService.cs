using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Hosting.Tests.TestSupport;

/// <summary>What a <see cref="ScriptedService{TTag}"/> does at each step; registered as a singleton per tag.</summary>
/// <typeparam name="TTag">Tells services of one test apart.</typeparam>
internal sealed class Script<TTag>
{
    public Func<LifecycleContext, CancellationToken, Task> Start { get; init; } = (_, _) => Task.CompletedTask;

    public Func<CancellationToken, Task> Run { get; init; } = token => Task.Delay(Timeout.Infinite, token);

    public Func<CancellationToken, Task> Stop { get; init; } = _ => Task.CompletedTask;
}

/// <summary>A lifecycle service whose steps a test scripts.</summary>
/// <typeparam name="TTag">Tells services of one test apart.</typeparam>
internal sealed class ScriptedService<TTag> : ILifecycleService
{
    private readonly Script<TTag> _script;

    public ScriptedService(Script<TTag> script) => _script = script;

    public Task StartAsync(LifecycleContext context, CancellationToken cancellationToken) => _script.Start(context, cancellationToken);

    public Task RunAsync(CancellationToken stoppingToken) => _script.Run(stoppingToken);

    public Task StopAsync(CancellationToken cancellationToken) => _script.Stop(cancellationToken);
}

internal sealed class A;

internal sealed class B;

internal sealed class C;

/// <summary>A resource that records its release, and refuses use after it.</summary>
internal sealed class Resource : IAsyncDisposable
{
    private readonly Journal _journal;
    private readonly string _name;
    private int _disposed;

    public Resource(Journal journal, string name)
    {
        _journal = journal;
        _name = name;
    }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public void Use(string what)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, _name);
        _journal.Add($"{_name}: {what}");
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _journal.Add($"release {_name}");
        }

        return ValueTask.CompletedTask;
    }
}
