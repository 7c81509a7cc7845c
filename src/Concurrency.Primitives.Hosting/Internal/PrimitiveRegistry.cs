using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>What kind of primitive a registration holds, in the order the host's shutdown closes them.</summary>
internal enum PrimitiveKind
{
    LifecycleService = 0,
    TaskTracker = 1,
    Batcher = 2,
    PeerEventPump = 3,
}

/// <summary>
/// One primitive registered with the container. Its identity is its kind, its service type and its key (the service
/// key, or the name of a lifecycle service); <see cref="Implementation"/> is what the registration fixes for it (the
/// handler, the consumer or the hosted type) with <see cref="Setting"/> (a batcher's handler scope), and a second
/// registration of the same identity must fix the same ones.
/// </summary>
internal sealed class PrimitiveRegistration
{
    public PrimitiveRegistration(PrimitiveKind kind, string? key, Type serviceType, Type implementation, Func<IServiceProvider, IHealthCheck>? healthCheck, string? setting = null)
    {
        Kind = kind;
        Key = key;
        ServiceType = serviceType;
        Implementation = implementation;
        HealthCheck = healthCheck;
        Setting = setting;
    }

    public PrimitiveKind Kind { get; }

    /// <summary>The service key (for a lifecycle service, its name); <see langword="null"/> for an unkeyed primitive.</summary>
    public string? Key { get; }

    public Type ServiceType { get; }

    public Type Implementation { get; }

    public Func<IServiceProvider, IHealthCheck>? HealthCheck { get; }

    /// <summary>What else the registration fixes and a later one cannot change (a batcher's handler scope); <see langword="null"/> if nothing.</summary>
    public string? Setting { get; }

    /// <summary>
    /// The health check's name: the kind, then the key, or for an unkeyed primitive its type (two unkeyed batchers of
    /// different type arguments are two registrations, and two checks).
    /// </summary>
    public string CheckName => Kind switch
    {
        PrimitiveKind.LifecycleService => "lifecycle:" + Key,
        PrimitiveKind.Batcher => "batcher:" + (Key ?? DisplayName(ServiceType)),
        PrimitiveKind.PeerEventPump => "pump:" + (Key ?? DisplayName(ServiceType)),
        _ => "tracker:" + (Key ?? DisplayName(ServiceType)),
    };

    public string Describe() =>
        $"{DisplayName(ServiceType)}{(Key is null ? string.Empty : $" '{Key}'")} ({DisplayName(Implementation)})";

    /// <summary>A type's name with its type arguments: <c>Batcher&lt;Int32, String&gt;</c>.</summary>
    public static string DisplayName(Type type)
    {
        if (!type.IsGenericType)
        {
            return type.Name;
        }

        return type.Name.Split('`')[0] + "<" + string.Join(", ", type.GetGenericArguments().Select(DisplayName)) + ">";
    }
}

/// <summary>
/// The primitives registered with one service collection (kept in it as an instance, so every registration call and
/// the health checks see the same list).
/// </summary>
internal sealed class PrimitiveRegistry
{
    private readonly List<PrimitiveRegistration> _registrations = new();
    private bool _healthChecksAdded;

    public IReadOnlyList<PrimitiveRegistration> Registrations
    {
        get
        {
            lock (_registrations)
            {
                return _registrations.ToList();
            }
        }
    }

    public static PrimitiveRegistry In(IServiceCollection services)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.ServiceType == typeof(PrimitiveRegistry) && !descriptor.IsKeyedService && descriptor.ImplementationInstance is PrimitiveRegistry found)
            {
                return found;
            }
        }

        var registry = new PrimitiveRegistry();
        services.AddSingleton(registry);
        return registry;
    }

    /// <summary>
    /// Adds a registration: <see langword="true"/> if it is new, <see langword="false"/> if the same one exists already
    /// (registering twice is harmless).
    /// </summary>
    /// <exception cref="InvalidOperationException">It conflicts with one that exists: the same primitive with another
    /// handler, consumer or hosted type, or one hosted type under two names, or two lifecycle services of one name.</exception>
    public bool TryAdd(PrimitiveRegistration registration)
    {
        lock (_registrations)
        {
            foreach (var existing in _registrations)
            {
                if (existing.Kind != registration.Kind)
                {
                    continue;
                }

                var sameType = existing.ServiceType == registration.ServiceType;
                var sameKey = existing.Key == registration.Key;
                if (sameType && sameKey)
                {
                    if (existing.Implementation != registration.Implementation)
                    {
                        throw new InvalidOperationException(
                            $"{existing.Describe()} is already registered; it cannot also be registered with {PrimitiveRegistration.DisplayName(registration.Implementation)}. Give the second one a name of its own.");
                    }

                    if (existing.Setting != registration.Setting)
                    {
                        throw new InvalidOperationException(
                            $"{existing.Describe()} is already registered with {existing.Setting}; it cannot also be registered with {registration.Setting}. Register it once, or give the second one a name of its own.");
                    }

                    return false; // the same registration again: harmless
                }

                // Lifecycle service names are compared without case, as health check names are: two services named
                // "worker" and "Worker" would share one check (and one of them go unchecked).
                if (registration.Kind == PrimitiveKind.LifecycleService
                    && (sameType || string.Equals(existing.Key, registration.Key, StringComparison.OrdinalIgnoreCase)))
                {
                    throw new InvalidOperationException(sameType
                        ? $"{PrimitiveRegistration.DisplayName(registration.ServiceType)} is already hosted as lifecycle service '{existing.Key}'; a type is hosted once. To host it twice, register a second type (a subclass) under another name."
                        : $"A lifecycle service named '{existing.Key}' is already registered ({PrimitiveRegistration.DisplayName(existing.ServiceType)}); give {PrimitiveRegistration.DisplayName(registration.ServiceType)} another name than '{registration.Key}' (names are compared without case, as health check names are).");
                }
            }

            _registrations.Add(registration);
            return true;
        }
    }

    /// <summary>Marks the health checks as added; <see langword="false"/> if they were added already.</summary>
    public bool TryMarkHealthChecksAdded()
    {
        lock (_registrations)
        {
            if (_healthChecksAdded)
            {
                return false;
            }

            _healthChecksAdded = true;
            return true;
        }
    }
}

/// <summary>
/// The primitives one container created (one instance per container: two providers built from one collection each
/// close their own), which the host's stop closes.
/// </summary>
internal sealed class CreatedPrimitives
{
    private readonly List<(PrimitiveKind Kind, string Name, object Instance)> _created = new();

    public T Created<T>(PrimitiveKind kind, string name, T instance)
        where T : class
    {
        lock (_created)
        {
            _created.Add((kind, name, instance));
        }

        return instance;
    }

    /// <summary>The instances of <paramref name="kind"/> the container created, the latest first.</summary>
    public IReadOnlyList<(string Name, object Instance)> CreatedOfKind(PrimitiveKind kind)
    {
        lock (_created)
        {
            return _created.Where(c => c.Kind == kind).Select(c => (c.Name, c.Instance)).Reverse().ToList();
        }
    }
}
