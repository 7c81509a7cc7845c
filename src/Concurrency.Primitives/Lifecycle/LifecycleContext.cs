using System;
using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives;

/// <summary>
/// Passed to <see cref="LifecycleGateOptions.Start"/>: register here what the start acquires, and the gate releases it
/// on stop, in reverse order, after the run has returned. Valid only while the start delegate runs.
/// </summary>
/// <remarks>
/// If the start fails, what it registered so far is released at once (in reverse order) and the stop delegate is not
/// called: a component whose start never succeeded is never stopped.
/// </remarks>
public sealed class LifecycleContext
{
    private readonly OrderedTeardown _teardown;
    private volatile bool _closed;

    internal LifecycleContext(OrderedTeardown teardown) => _teardown = teardown;

    /// <summary>Registers a resource the gate disposes on stop (after the run returned, in reverse order of registration).</summary>
    /// <typeparam name="T">The resource's type; it must implement <see cref="IAsyncDisposable"/> or <see cref="IDisposable"/>.</typeparam>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <returns><paramref name="resource"/>, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="resource"/> is neither <see cref="IAsyncDisposable"/> nor <see cref="IDisposable"/>.</exception>
    /// <exception cref="InvalidOperationException">The start delegate has already returned.</exception>
    public T Own<T>(T resource, string? name = null)
        where T : class
    {
        Internal.Guard.NotNull(resource);
        ThrowIfClosed();
        switch (resource)
        {
            case IAsyncDisposable asyncDisposable:
                _teardown.Add(asyncDisposable, name);
                break;
            case IDisposable disposable:
                _teardown.Add(disposable, name);
                break;
            default:
                throw new ArgumentException($"{typeof(T).Name} implements neither IAsyncDisposable nor IDisposable; register its release with OnStop instead.", nameof(resource));
        }

        return resource;
    }

    /// <summary>Registers a stop step the gate runs on stop (after the run returned, in reverse order of registration).</summary>
    /// <param name="name">The step's name in errors and logs.</param>
    /// <param name="step">The step; its token is cancelled when <see cref="LifecycleGateOptions.StopTimeout"/> elapses.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The start delegate has already returned.</exception>
    public void OnStop(string name, Func<CancellationToken, ValueTask> step)
    {
        ThrowIfClosed();
        _teardown.Add(name, step);
    }

    internal void Close() => _closed = true;

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new InvalidOperationException("The start delegate has returned; register resources with the LifecycleContext only while it runs.");
        }
    }
}
