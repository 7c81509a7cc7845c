using System.Threading;
using System.Threading.Tasks;

namespace Concurrency.Primitives.Hosting;

/// <summary>
/// A service hosted through a <see cref="LifecycleGate"/>: register it with
/// <c>services.AddLifecycleService&lt;TService&gt;()</c>. The host starts it once, runs it, and stops it in the order the
/// gate owns: cancel the run, wait for it to return, then release what the start acquired, in reverse.
/// </summary>
/// <remarks>
/// Compared with <c>BackgroundService</c>: a run that faults is logged with its cause and stops the host with a non-zero
/// exit code (see <see cref="LifecycleServiceOptions.RunFaultBehavior"/>); the run's synchronous part never holds up the
/// host's start; a stop that comes before the start is a no-op; a stop during the start cancels the start and reports
/// the start's own error; and nothing the start acquired is released while the run still runs.
/// </remarks>
public interface ILifecycleService
{
    /// <summary>
    /// Acquires what the service needs (connections, clients, subscriptions), registering each for release with
    /// <paramref name="context"/> (<c>context.Own(resource)</c>, <c>context.OnStop(step, name)</c>). If it throws, what it
    /// registered is released and the host's start fails with this exception.
    /// </summary>
    /// <param name="context">Where to register what the stop must release, in reverse order.</param>
    /// <param name="cancellationToken">Cancelled when the host stops during the start.</param>
    /// <returns>A task that completes when the service is ready to run.</returns>
    Task StartAsync(LifecycleContext context, CancellationToken cancellationToken);

    /// <summary>
    /// The service's work, for as long as the host runs. Invoked after <see cref="StartAsync"/> succeeded, on the thread
    /// pool. Return (or throw <see cref="System.OperationCanceledException"/>) when <paramref name="stoppingToken"/> is
    /// cancelled. Any other exception, an <see cref="System.OperationCanceledException"/> raised before the stop
    /// included, is a fault.
    /// </summary>
    /// <param name="stoppingToken">Cancelled when the host stops.</param>
    /// <returns>A task that completes when the work is done.</returns>
    Task RunAsync(CancellationToken stoppingToken);

    /// <summary>
    /// The stop step: runs after the run has returned and before what the start registered is released. Bounded by
    /// <see cref="LifecycleServiceOptions.ShutdownTimeout"/>.
    /// </summary>
    /// <param name="cancellationToken">Cancelled when the step's time is up.</param>
    /// <returns>A task that completes when the step is done.</returns>
    Task StopAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A base class for an <see cref="ILifecycleService"/> that needs only a run (the shape of a <c>BackgroundService</c>):
/// override <see cref="RunAsync"/>, and <see cref="StartAsync"/> or <see cref="StopAsync"/> where needed.
/// </summary>
public abstract class LifecycleService : ILifecycleService
{
    /// <inheritdoc />
    public virtual Task StartAsync(LifecycleContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public abstract Task RunAsync(CancellationToken stoppingToken);

    /// <inheritdoc />
    public virtual Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
