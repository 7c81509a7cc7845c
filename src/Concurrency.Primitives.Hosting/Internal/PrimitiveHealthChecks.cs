using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>
/// A lifecycle service's health, from its gate: Running is Healthy; NotStarted, Starting and Stopping are Degraded (with
/// the step a stop waits for); Stopped is Unhealthy (a service that no longer runs does not do its job); StartFailed,
/// RunFaulted and StopFailed are Unhealthy with the fault.
/// </summary>
internal sealed class LifecycleServiceHealthCheck : IHealthCheck
{
    private readonly LifecycleGate _gate;

    public LifecycleServiceHealthCheck(LifecycleGate gate) => _gate = gate;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = _gate.State;
        var data = new Dictionary<string, object> { ["state"] = state.ToString() };
        HealthCheckResult result;
        switch (state)
        {
            case LifecycleState.Running:
                result = HealthCheckResult.Healthy($"'{_gate.Name}' is running.", data);
                break;
            case LifecycleState.Stopping:
                var step = _gate.PendingStopStep;
                if (step is not null)
                {
                    data["waitingFor"] = step;
                }

                result = HealthCheckResult.Degraded($"'{_gate.Name}' is stopping{(step is null ? string.Empty : $" (waiting for '{step}')")}.", data: data);
                break;
            case LifecycleState.NotStarted:
            case LifecycleState.Starting:
                result = HealthCheckResult.Degraded($"'{_gate.Name}' is {(state == LifecycleState.NotStarted ? "not started yet" : "starting")}.", data: data);
                break;
            case LifecycleState.Stopped:
                result = new HealthCheckResult(context.Registration.FailureStatus, $"'{_gate.Name}' is stopped.", data: data);
                break;
            default:
                result = new HealthCheckResult(context.Registration.FailureStatus, $"'{_gate.Name}' is {state}: {_gate.Fault?.Message}", _gate.Fault, data);
                break;
        }

        return Task.FromResult(result);
    }
}

/// <summary>
/// A batcher's or pump's health: Healthy while it accepts work with room to spare; Degraded when its queue holds at
/// least the configured share of its capacity; Unhealthy once closed, with the fault if its completion faulted.
/// </summary>
internal sealed class QueueHealthCheck : IHealthCheck
{
    private readonly string _kind;
    private readonly string _name;
    private readonly Func<int> _count;
    private readonly int? _capacity;
    private readonly Task _completion;
    private readonly double _degradedAt;

    public QueueHealthCheck(string kind, string name, Func<int> count, int? capacity, Task completion, double degradedAt)
    {
        _kind = kind;
        _name = name;
        _count = count;
        _capacity = capacity;
        _completion = completion;
        _degradedAt = degradedAt;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var count = _count();
        var data = new Dictionary<string, object> { ["queued"] = count };
        if (_capacity is { } capacity)
        {
            data["capacity"] = capacity;
        }

        if (_completion.IsCompleted)
        {
            var fault = _completion.Exception?.InnerException;
            return Task.FromResult(new HealthCheckResult(
                context.Registration.FailureStatus,
                fault is null ? $"{_kind} '{_name}' is closed." : $"{_kind} '{_name}' faulted: {fault.Message}",
                fault,
                data));
        }

        if (_capacity is { } bound && count >= bound * _degradedAt)
        {
            return Task.FromResult(HealthCheckResult.Degraded(
                string.Format(CultureInfo.InvariantCulture, "{0} '{1}' queue is near capacity: {2} of {3}.", _kind, _name, count, bound),
                data: data));
        }

        return Task.FromResult(HealthCheckResult.Healthy($"{_kind} '{_name}' is accepting work.", data));
    }
}
