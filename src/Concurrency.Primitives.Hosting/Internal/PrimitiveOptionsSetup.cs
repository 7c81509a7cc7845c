using System;
using System.Diagnostics.Metrics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Concurrency.Primitives.Hosting.Internal;

/// <summary>
/// Fills what the container provides into every primitive's options, where the user left it unset: a logger from
/// <see cref="ILoggerFactory"/>, the <see cref="TimeProvider"/> if one is registered, the host's <see cref="IMeterFactory"/>,
/// and the registration's name.
/// </summary>
internal sealed class PrimitiveOptionsSetup :
    IPostConfigureOptions<TaskTrackerOptions>,
    IPostConfigureOptions<BatcherOptions>,
    IPostConfigureOptions<PeerEventPumpOptions>
{
    private readonly IServiceProvider _services;

    public PrimitiveOptionsSetup(IServiceProvider services) => _services = services;

    public ILoggerFactory LoggerFactory => _services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;

    public TimeProvider? TimeProvider => _services.GetService<TimeProvider>();

    public IMeterFactory? MeterFactory => _services.GetService<IMeterFactory>();

    public void PostConfigure(string? name, TaskTrackerOptions options)
    {
        options.Name ??= NameOrNull(name);
        options.Logger ??= LoggerFactory.CreateLogger("Concurrency.Primitives.TaskTracker");
        options.TimeProvider ??= TimeProvider;
        options.MeterFactory ??= MeterFactory;
    }

    public void PostConfigure(string? name, BatcherOptions options)
    {
        options.Name ??= NameOrNull(name);
        options.Logger ??= LoggerFactory.CreateLogger("Concurrency.Primitives.Batcher");
        options.TimeProvider ??= TimeProvider;
        options.MeterFactory ??= MeterFactory;
    }

    public void PostConfigure(string? name, PeerEventPumpOptions options)
    {
        options.Name ??= NameOrNull(name);
        options.Logger ??= LoggerFactory.CreateLogger("Concurrency.Primitives.PeerEventPump");
        options.TimeProvider ??= TimeProvider;
        options.MeterFactory ??= MeterFactory;
    }

    /// <summary>The gate's options for a lifecycle service: its settings, and what the container provides.</summary>
    public LifecycleGateOptions GateOptions(string name, LifecycleServiceOptions options) => new()
    {
        Name = options.Name ?? name,
        ShutdownTimeout = options.ShutdownTimeout,
        AbandonRunOnTimeout = options.AbandonRunOnTimeout,
        Logger = LoggerFactory.CreateLogger("Concurrency.Primitives.LifecycleGate"),
        TimeProvider = TimeProvider,
        MeterFactory = MeterFactory,
    };

    private static string? NameOrNull(string? name) => string.IsNullOrEmpty(name) ? null : name;
}

/// <summary>
/// Validates a primitive's options with the primitive's own rules, so the host's start fails with the message the
/// constructor would throw (it names the property), and not later at the first use.
/// </summary>
internal sealed class PrimitiveOptionsValidator :
    IValidateOptions<TaskTrackerOptions>,
    IValidateOptions<BatcherOptions>,
    IValidateOptions<PeerEventPumpOptions>,
    IValidateOptions<LifecycleServiceOptions>
{
    public ValidateOptionsResult Validate(string? name, TaskTrackerOptions options) =>
        Probe(name, nameof(TaskTrackerOptions), () => new TaskTracker(Copy(options)).Dispose());

    public ValidateOptionsResult Validate(string? name, BatcherOptions options) =>
        Probe(name, nameof(BatcherOptions), () => new Batcher<int, int>(static (_, _) => Task.CompletedTask, Copy(options)).Dispose());

    public ValidateOptionsResult Validate(string? name, PeerEventPumpOptions options) =>
        Probe(name, nameof(PeerEventPumpOptions), () => new PeerEventPump<int, int>(NoConsumer.Instance, Copy(options)).Dispose());

    public ValidateOptionsResult Validate(string? name, LifecycleServiceOptions options)
    {
        if (options.RunFaultBehavior is not (LifecycleServiceRunFaultBehavior.StopHost or LifecycleServiceRunFaultBehavior.Ignore))
        {
            return Fail(name, nameof(LifecycleServiceOptions), $"LifecycleServiceOptions.RunFaultBehavior is not a defined value ({options.RunFaultBehavior}).");
        }

        if (options.ExitCode < 1)
        {
            return Fail(name, nameof(LifecycleServiceOptions), $"LifecycleServiceOptions.ExitCode must be at least 1 (it was {options.ExitCode}): the exit code says the process failed.");
        }

        var timeout = options.ShutdownTimeout;
        if (timeout != Timeout.InfiniteTimeSpan && (timeout < TimeSpan.Zero || timeout.TotalMilliseconds > uint.MaxValue - 1.0))
        {
            return Fail(name, nameof(LifecycleServiceOptions), $"LifecycleServiceOptions.ShutdownTimeout must be zero or positive and at most {TimeSpan.FromMilliseconds(uint.MaxValue - 1.0)}, or Timeout.InfiniteTimeSpan (it was {timeout}).");
        }

        return ValidateOptionsResult.Success;
    }

    private static ValidateOptionsResult Probe(string? name, string type, Action construct)
    {
        try
        {
            construct();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException invalid)
        {
            return Fail(name, type, invalid.Message);
        }
    }

    private static ValidateOptionsResult Fail(string? name, string type, string message) =>
        ValidateOptionsResult.Fail(string.IsNullOrEmpty(name) ? $"{type}: {message}" : $"{type} '{name}': {message}");

    // The probe gets the settings alone: no logger, clock or meter to touch.
    internal static TaskTrackerOptions Copy(TaskTrackerOptions o) => new()
    {
        Name = o.Name,
        MaxConcurrency = o.MaxConcurrency,
        CancelOnFirstFailure = o.CancelOnFirstFailure,
        CaptureRegistrationStackTraces = o.CaptureRegistrationStackTraces,
        ShutdownTimeout = o.ShutdownTimeout,
        MaxRecordedFailures = o.MaxRecordedFailures,
        LongRunningThreshold = o.LongRunningThreshold,
    };

    internal static BatcherOptions Copy(BatcherOptions o) => new()
    {
        Name = o.Name,
        MaxBatchSize = o.MaxBatchSize,
        MaxDelay = o.MaxDelay,
        MaxConcurrency = o.MaxConcurrency,
        Capacity = o.Capacity,
        Timeout = o.Timeout,
        DispatchTimeout = o.DispatchTimeout,
        ShutdownTimeout = o.ShutdownTimeout,
        ShutdownMode = o.ShutdownMode,
    };

    internal static PeerEventPumpOptions Copy(PeerEventPumpOptions o) => new()
    {
        Name = o.Name,
        Capacity = o.Capacity,
        PerPeerCapacity = o.PerPeerCapacity,
        FullMode = o.FullMode,
        FaultPolicy = o.FaultPolicy,
        ShutdownTimeout = o.ShutdownTimeout,
        HandlerStallThreshold = o.HandlerStallThreshold,
    };

    private sealed class NoConsumer : IPeerEventConsumer<int, int>
    {
        public static readonly NoConsumer Instance = new();

        public ValueTask OnAddedAsync(int peer, System.Threading.CancellationToken cancellationToken) => default;

        public ValueTask OnMessageAsync(int peer, int message, System.Threading.CancellationToken cancellationToken) => default;

        public ValueTask OnRemovedAsync(int peer, System.Threading.CancellationToken cancellationToken) => default;
    }
}
