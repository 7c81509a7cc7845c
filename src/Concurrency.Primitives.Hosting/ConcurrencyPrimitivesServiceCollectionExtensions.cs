using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives;
using Concurrency.Primitives.Hosting;
using Concurrency.Primitives.Hosting.Internal;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers Concurrency.Primitives with a Generic Host or ASP.NET Core app. Every primitive gets its logger, clock
/// (a registered <see cref="TimeProvider"/>, if any) and meter (the host's <see cref="System.Diagnostics.Metrics.IMeterFactory"/>)
/// from the container; its options are validated when the host starts; and the host's stop closes it, in order, within
/// <c>HostOptions.ShutdownTimeout</c>, before the container disposes the singletons its work uses.
/// </summary>
/// <remarks>
/// A <c>name</c> (where a method takes one) registers a keyed singleton
/// (<c>[FromKeyedServices("jobs")] TaskTracker jobs</c>) with options of that name; without one, a plain singleton with
/// the default options (unkeyed primitives of one kind share them, whatever their type arguments: name them to set them
/// apart). Registering the same primitive again is harmless; registering it again with another handler, consumer or
/// name throws. Each method returns the options builder: bind it to configuration with
/// <c>.BindConfiguration("Section:Path")</c> or <c>.Bind(section)</c>, or add <c>.Validate(...)</c> rules.
/// </remarks>
public static class ConcurrencyPrimitivesServiceCollectionExtensions
{
    /// <summary>
    /// Registers a <see cref="TaskTracker"/> singleton. The host's stop closes it (its <see cref="TaskTracker.ClosingToken"/>
    /// is cancelled and the stop waits for tracked work, children registered during the close included) after every
    /// hosted service has stopped; a close that runs out of time logs each straggler by name and age.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The tracker's name and service key; <see langword="null"/> for an unkeyed tracker.</param>
    /// <param name="configure">Sets the tracker's options.</param>
    /// <returns>The options builder of the tracker's options.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    public static OptionsBuilder<TaskTrackerOptions> AddTaskTracker(this IServiceCollection services, string? name = null, Action<TaskTrackerOptions>? configure = null)
    {
        var registry = Prepare(services);
        var optionsName = name ?? Options.Options.DefaultName;
        var builder = Configure(services, optionsName, configure);
        if (registry.TryAdd(new PrimitiveRegistration(PrimitiveKind.TaskTracker, name, typeof(TaskTracker), typeof(TaskTracker), healthCheck: null)))
        {
            AddSingleton(services, name, sp => sp.GetRequiredService<CreatedPrimitives>().Created(
                PrimitiveKind.TaskTracker,
                optionsName,
                new TaskTracker(sp.GetRequiredService<IOptionsMonitor<TaskTrackerOptions>>().Get(optionsName))));
        }

        return builder;
    }

    /// <summary>
    /// Hosts <typeparamref name="TService"/> through a <see cref="LifecycleGate"/>: started with the host, stopped in the
    /// reverse order of start with the other hosted services, its run cancelled and awaited before anything its start
    /// acquired is released. A run that faults on its own is logged with its root cause and stops the host with a
    /// non-zero exit code (<see cref="LifecycleServiceOptions.RunFaultBehavior"/>). <typeparamref name="TService"/> is
    /// registered as a singleton if it is not registered yet.
    /// </summary>
    /// <typeparam name="TService">The service.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The service's name in logs, metrics and health checks; <typeparamref name="TService"/>'s type name by default.</param>
    /// <param name="configure">Sets the service's options.</param>
    /// <returns>The options builder of the service's options (named <paramref name="name"/>).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException"><typeparamref name="TService"/> is already hosted under another name, or another service has this name (names are compared without case, as health check names are).</exception>
    public static OptionsBuilder<LifecycleServiceOptions> AddLifecycleService<TService>(this IServiceCollection services, string? name = null, Action<LifecycleServiceOptions>? configure = null)
        where TService : class, ILifecycleService
    {
        var registry = Prepare(services);
        var serviceName = name ?? typeof(TService).Name;
        var added = registry.TryAdd(new PrimitiveRegistration(
            PrimitiveKind.LifecycleService,
            serviceName,
            typeof(TService),
            typeof(TService),
            sp => new LifecycleServiceHealthCheck(sp.GetRequiredService<LifecycleHostedService<TService>>().Gate)));
        var builder = Configure(services, serviceName, configure);
        services.TryAddSingleton<TService>();
        if (added)
        {
            services.TryAddSingleton(sp => new LifecycleHostedService<TService>(
                sp.GetRequiredService<TService>(),
                serviceName,
                sp.GetRequiredService<IOptionsMonitor<LifecycleServiceOptions>>(),
                sp.GetRequiredService<PrimitiveOptionsSetup>(),
                sp.GetService<IHostApplicationLifetime>()));
            // The host's entry is a forwarder that the container does not dispose: the adapter is disposed once, as the
            // singleton it is (a second registration returning the same instance would be disposed twice).
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, LifecycleHostedServiceEntry<TService>>(
                sp => new LifecycleHostedServiceEntry<TService>(sp.GetRequiredService<LifecycleHostedService<TService>>())));
        }

        return builder;
    }

    /// <summary>
    /// Registers a <see cref="Batcher{TItem, TResult}"/> singleton whose dispatch is <typeparamref name="THandler"/>,
    /// resolved per <paramref name="scope"/> (by default from a new scope per dispatch, disposed once the dispatch has
    /// returned). The host's stop closes it (draining or failing what is queued, per
    /// <see cref="BatcherOptions.ShutdownMode"/>) after the trackers, and before the container disposes what the handler uses.
    /// <typeparamref name="THandler"/> is registered as transient if it is not registered yet.
    /// </summary>
    /// <typeparam name="TItem">The submitted item.</typeparam>
    /// <typeparam name="TResult">Each item's result.</typeparam>
    /// <typeparam name="THandler">The dispatch.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The batcher's name and service key; <see langword="null"/> for an unkeyed batcher.</param>
    /// <param name="configure">Sets the batcher's options.</param>
    /// <param name="scope">Where each dispatch resolves its handler.</param>
    /// <returns>The options builder of the batcher's options.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="scope"/> is not a defined value.</exception>
    /// <exception cref="InvalidOperationException">A batcher of these type arguments and this name is already registered with another handler or another <paramref name="scope"/>.</exception>
    public static OptionsBuilder<BatcherOptions> AddBatcher<TItem, TResult, THandler>(
        this IServiceCollection services,
        string? name = null,
        Action<BatcherOptions>? configure = null,
        BatchHandlerScope scope = BatchHandlerScope.PerDispatch)
        where THandler : class, IBatchHandler<TItem, TResult>
    {
        if (scope is not BatchHandlerScope.PerDispatch and not BatchHandlerScope.Root)
        {
            throw new ArgumentOutOfRangeException(nameof(scope), scope, "BatchHandlerScope is not a defined value.");
        }

        var registry = Prepare(services);
        var optionsName = name ?? Options.Options.DefaultName;
        var added = registry.TryAdd(new PrimitiveRegistration(PrimitiveKind.Batcher, name, typeof(Batcher<TItem, TResult>), typeof(THandler), HealthCheckOf, "scope " + scope));
        var builder = Configure(services, optionsName, configure);
        services.TryAddTransient<THandler>();
        if (added)
        {
            AddSingleton(services, name, sp =>
            {
                var batcher = new Batcher<TItem, TResult>(Dispatch(sp, scope), sp.GetRequiredService<IOptionsMonitor<BatcherOptions>>().Get(optionsName));
                sp.GetRequiredService<CreatedPrimitives>().Created(PrimitiveKind.Batcher, batcher.Name, new Closable(batcher.CloseAsync));
                return batcher;
            });
        }

        return builder;

        IHealthCheck HealthCheckOf(IServiceProvider sp)
        {
            var batcher = Resolve<Batcher<TItem, TResult>>(sp, name);
            var options = sp.GetRequiredService<IOptionsMonitor<BatcherOptions>>().Get(optionsName);
            return new QueueHealthCheck("Batcher", batcher.Name, () => batcher.Count, options.Capacity, batcher.Completion, DegradedShare(sp));
        }

        static Func<Batch<TItem, TResult>, CancellationToken, Task> Dispatch(IServiceProvider sp, BatchHandlerScope scope)
        {
            if (scope == BatchHandlerScope.Root)
            {
                var handler = sp.GetRequiredService<THandler>();
                return handler.DispatchAsync;
            }

            var scopes = sp.GetRequiredService<IServiceScopeFactory>();
            return async (batch, cancellationToken) =>
            {
                var dispatchScope = scopes.CreateAsyncScope();
                try
                {
                    await dispatchScope.ServiceProvider.GetRequiredService<THandler>().DispatchAsync(batch, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    await dispatchScope.DisposeAsync().ConfigureAwait(false);
                }
            };
        }
    }

    /// <summary>
    /// Registers a <see cref="PeerEventPump{TPeer, TMessage}"/> singleton whose consumer is <typeparamref name="TConsumer"/>
    /// (registered as a singleton if it is not registered yet). The host's stop closes it (every live peer gets its
    /// Removed, in the order they were added) after the trackers and batchers.
    /// </summary>
    /// <typeparam name="TPeer">The peer identity.</typeparam>
    /// <typeparam name="TMessage">The message type.</typeparam>
    /// <typeparam name="TConsumer">The consumer of the pump's events.</typeparam>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The pump's name and service key; <see langword="null"/> for an unkeyed pump.</param>
    /// <param name="configure">Sets the pump's options.</param>
    /// <returns>The options builder of the pump's options.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">A pump of these type arguments and this name is already registered with another consumer.</exception>
    public static OptionsBuilder<PeerEventPumpOptions> AddPeerEventPump<TPeer, TMessage, TConsumer>(
        this IServiceCollection services,
        string? name = null,
        Action<PeerEventPumpOptions>? configure = null)
        where TPeer : notnull
        where TConsumer : class, IPeerEventConsumer<TPeer, TMessage>
    {
        var registry = Prepare(services);
        var optionsName = name ?? Options.Options.DefaultName;
        var added = registry.TryAdd(new PrimitiveRegistration(PrimitiveKind.PeerEventPump, name, typeof(PeerEventPump<TPeer, TMessage>), typeof(TConsumer), HealthCheckOf));
        var builder = Configure(services, optionsName, configure);
        services.TryAddSingleton<TConsumer>();
        if (added)
        {
            AddSingleton(services, name, sp =>
            {
                var pump = new PeerEventPump<TPeer, TMessage>(sp.GetRequiredService<TConsumer>(), sp.GetRequiredService<IOptionsMonitor<PeerEventPumpOptions>>().Get(optionsName));
                sp.GetRequiredService<CreatedPrimitives>().Created(PrimitiveKind.PeerEventPump, pump.Name, new Closable(pump.CloseAsync));
                return pump;
            });
        }

        return builder;

        IHealthCheck HealthCheckOf(IServiceProvider sp)
        {
            var pump = Resolve<PeerEventPump<TPeer, TMessage>>(sp, name);
            var options = sp.GetRequiredService<IOptionsMonitor<PeerEventPumpOptions>>().Get(optionsName);
            return new QueueHealthCheck("PeerEventPump", pump.Name, () => pump.Count, options.Capacity, pump.Completion, DegradedShare(sp));
        }
    }

    /// <summary>The shared pieces, registered once per collection: the registry, the options setup and validation, the shutdown.</summary>
    private static PrimitiveRegistry Prepare(IServiceCollection services)
    {
        Guard.NotNull(services, nameof(services));

        var registry = PrimitiveRegistry.In(services);
        services.AddOptions();
        services.TryAddSingleton<PrimitiveOptionsSetup>();
        services.TryAddSingleton<CreatedPrimitives>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<TaskTrackerOptions>, PrimitiveOptionsSetup>(sp => sp.GetRequiredService<PrimitiveOptionsSetup>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<BatcherOptions>, PrimitiveOptionsSetup>(sp => sp.GetRequiredService<PrimitiveOptionsSetup>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<PeerEventPumpOptions>, PrimitiveOptionsSetup>(sp => sp.GetRequiredService<PrimitiveOptionsSetup>()));
        services.TryAddSingleton<PrimitiveOptionsValidator>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TaskTrackerOptions>, PrimitiveOptionsValidator>(sp => sp.GetRequiredService<PrimitiveOptionsValidator>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BatcherOptions>, PrimitiveOptionsValidator>(sp => sp.GetRequiredService<PrimitiveOptionsValidator>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PeerEventPumpOptions>, PrimitiveOptionsValidator>(sp => sp.GetRequiredService<PrimitiveOptionsValidator>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LifecycleServiceOptions>, PrimitiveOptionsValidator>(sp => sp.GetRequiredService<PrimitiveOptionsValidator>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PrimitivesShutdownService>());
        return registry;
    }

    private static OptionsBuilder<TOptions> Configure<TOptions>(IServiceCollection services, string optionsName, Action<TOptions>? configure)
        where TOptions : class
    {
        var builder = services.AddOptions<TOptions>(optionsName);
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        return builder;
    }

    private static void AddSingleton<T>(IServiceCollection services, string? key, Func<IServiceProvider, T> create)
        where T : class
    {
        if (key is null)
        {
            services.AddSingleton(create);
        }
        else
        {
            services.AddKeyedSingleton(key, (sp, _) => create(sp));
        }
    }

    private static T Resolve<T>(IServiceProvider sp, string? key)
        where T : notnull => key is null ? sp.GetRequiredService<T>() : sp.GetRequiredKeyedService<T>(key);

    private static double DegradedShare(IServiceProvider sp) =>
        sp.GetService<IOptions<ConcurrencyPrimitivesHealthCheckOptions>>()?.Value.DegradedQueueShare ?? ConcurrencyPrimitivesHealthCheckOptions.DefaultDegradedQueueShare;
}
