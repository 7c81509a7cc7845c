using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;

namespace Concurrency.Primitives;

/// <summary>
/// Passed to a <see cref="LifecycleGate"/>'s start delegate: register here what the start acquires, and the gate releases
/// it on stop, in reverse order, after the run has returned. Valid only while the start delegate runs.
/// </summary>
/// <remarks>
/// If the start fails, what it registered so far is released at once (in reverse order) and the stop delegate is not
/// called: a component whose start never succeeded is never stopped. A resource that is only <see cref="IDisposable"/> is
/// taken by <see cref="OrderedTeardownExtensions.Own{T}(LifecycleContext, T, string?)"/>.
/// </remarks>
public sealed class LifecycleContext
{
    private readonly OrderedTeardown _teardown;
    private volatile bool _closed;

    internal LifecycleContext(OrderedTeardown teardown) => _teardown = teardown;

    /// <summary>Registers a resource the gate disposes (with <c>DisposeAsync</c>) on stop, after the run returned, in reverse order of registration.</summary>
    /// <typeparam name="T">The resource's type. A type that is also <see cref="IDisposable"/> is disposed asynchronously.</typeparam>
    /// <param name="resource">The resource.</param>
    /// <param name="name">Its name in errors and logs; its type name by default.</param>
    /// <returns><paramref name="resource"/>, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The start delegate has already returned.</exception>
    public T Own<T>(T resource, string? name = null)
        where T : class, IAsyncDisposable
    {
        Guard.NotNull(resource);
        Register(_ => resource.DisposeAsync().AsTask(), name ?? resource.GetType().Name);
        return resource;
    }

    /// <summary>Registers a stop step the gate runs on stop, after the run returned, in reverse order of registration.</summary>
    /// <param name="step">The step; its token is cancelled when <see cref="LifecycleGateOptions.ShutdownTimeout"/> elapses.</param>
    /// <param name="name">The step's name in errors and logs.</param>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">The start delegate has already returned.</exception>
    public void OnStop(Func<CancellationToken, Task> step, string name)
    {
        Guard.NotNull(step);
        Guard.NotNull(name);
        Register(step, name);
    }

    internal void Register(Func<CancellationToken, Task> step, string name)
    {
        if (_closed)
        {
            throw new InvalidOperationException("The start delegate has returned; register resources with the LifecycleContext only while it runs.");
        }

        _teardown.Add(step, name);
    }

    internal void Close() => _closed = true;
}
