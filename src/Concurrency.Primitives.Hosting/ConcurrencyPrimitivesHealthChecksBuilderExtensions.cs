using System;
using System.Collections.Generic;
using System.Linq;
using Concurrency.Primitives.Hosting;
using Concurrency.Primitives.Hosting.Internal;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Health checks for the primitives registered with <see cref="ConcurrencyPrimitivesServiceCollectionExtensions"/>.</summary>
public static class ConcurrencyPrimitivesHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds one health check per lifecycle service (<c>lifecycle:&lt;name&gt;</c>), batcher (<c>batcher:&lt;name&gt;</c>)
    /// and pump (<c>pump:&lt;name&gt;</c>) registered in the same collection, before or after this call:
    /// <list type="bullet">
    /// <item>Healthy: the service runs; the batcher or pump accepts work with room to spare.</item>
    /// <item>Degraded: the service is not started yet, starting or stopping (with the step a stop waits for); a queue
    /// holds at least <see cref="ConcurrencyPrimitivesHealthCheckOptions.DegradedQueueShare"/> of its capacity.</item>
    /// <item>Unhealthy (or the given <paramref name="failureStatus"/>): the service's start, run or stop failed (with the
    /// exception), or it has stopped; the batcher or pump is closed, or faulted (with the exception).</item>
    /// </list>
    /// </summary>
    /// <remarks>
    /// The checks are added once per service collection: a second call changes nothing (the first call's
    /// <paramref name="failureStatus"/> and <paramref name="tags"/> stay). A check you added yourself under one of these
    /// names before this call is kept, and the primitive's own left out; one you add under such a name after this call
    /// fails the health check service with the host's duplicate-name error, so add your own checks first. Check names are
    /// compared without case: lifecycle service names that differ only in case are refused at registration, and of two
    /// batchers or pumps whose names differ only in case, only the first registered is checked. An unkeyed batcher or
    /// pump is named by its type (<c>batcher:Batcher&lt;Int32, String&gt;</c>); name it to get a shorter check name.
    /// </remarks>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="failureStatus">The status of a failed check; <see cref="HealthStatus.Unhealthy"/> by default.</param>
    /// <param name="tags">Tags of every check (to filter health endpoints).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    public static IHealthChecksBuilder AddConcurrencyPrimitives(this IHealthChecksBuilder builder, HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        Guard.NotNull(builder, nameof(builder));

        var registry = PrimitiveRegistry.In(builder.Services);
        if (!registry.TryMarkHealthChecksAdded())
        {
            return builder; // added once per collection: a second call would add every check twice (and fail the host)
        }

        builder.Services.AddOptions<ConcurrencyPrimitivesHealthCheckOptions>()
            .Validate(
                static o => o.DegradedQueueShare is >= 0 and <= 1,
                "ConcurrencyPrimitivesHealthCheckOptions.DegradedQueueShare must be between 0 and 1.")
            .ValidateOnStart();
        builder.Services.Configure<HealthCheckServiceOptions>(options =>
        {
            // Runs when the health check service first reads its options: every registration call has been made by then.
            var taken = new HashSet<string>(options.Registrations.Select(r => r.Name), StringComparer.OrdinalIgnoreCase);
            foreach (var registration in registry.Registrations)
            {
                if (registration.HealthCheck is { } create && taken.Add(registration.CheckName))
                {
                    options.Registrations.Add(new HealthCheckRegistration(registration.CheckName, create, failureStatus, tags));
                }
            }
        });
        return builder;
    }
}
