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

/// <summary>One primitive registered with the container: its kind, name, and how to find its health.</summary>
internal sealed class PrimitiveRegistration
{
    public PrimitiveRegistration(PrimitiveKind kind, string name, Type serviceType, Func<IServiceProvider, IHealthCheck>? healthCheck)
    {
        Kind = kind;
        Name = name;
        ServiceType = serviceType;
        HealthCheck = healthCheck;
    }

    public PrimitiveKind Kind { get; }

    public string Name { get; }

    public Type ServiceType { get; }

    public Func<IServiceProvider, IHealthCheck>? HealthCheck { get; }

    public string CheckName => Kind switch
    {
        PrimitiveKind.LifecycleService => "lifecycle:" + Name,
        PrimitiveKind.Batcher => "batcher:" + Name,
        PrimitiveKind.PeerEventPump => "pump:" + Name,
        _ => "tracker:" + Name,
    };
}

/// <summary>
/// The primitives registered with one service collection (kept in it as an instance, so every registration call and
/// the health checks see the same list), and the instances the container created, which the host's stop closes.
/// </summary>
internal sealed class PrimitiveRegistry
{
    private readonly List<PrimitiveRegistration> _registrations = new();
    private readonly List<(PrimitiveKind Kind, string Name, object Instance)> _created = new();

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

    /// <summary>Adds a registration; <see langword="false"/> if one of that kind, service type and name exists already.</summary>
    public bool TryAdd(PrimitiveRegistration registration)
    {
        lock (_registrations)
        {
            if (_registrations.Any(r => r.Kind == registration.Kind && r.ServiceType == registration.ServiceType && r.Name == registration.Name))
            {
                return false;
            }

            _registrations.Add(registration);
            return true;
        }
    }

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
