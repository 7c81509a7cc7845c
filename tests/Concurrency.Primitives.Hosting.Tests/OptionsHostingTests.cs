using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using System.Reflection;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Internal;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>Options bound from configuration, validated when the host starts (the error names the property), and filled from DI.</summary>
public sealed class OptionsHostingTests
{
    [Fact]
    public async Task OptionsBoundFromConfiguration_ReachEveryPrimitive()
    {
        var builder = TestHost.NewBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Concurrency:Jobs:MaxConcurrency"] = "3",
            ["Concurrency:Jobs:ShutdownTimeout"] = "00:00:07",
            ["Concurrency:Loader:MaxBatchSize"] = "16",
            ["Concurrency:Loader:Capacity"] = "256",
            ["Concurrency:Loader:ShutdownMode"] = "FailPending",
            ["Concurrency:Peers:FullMode"] = "DropOldest",
            ["Concurrency:Peers:Capacity"] = "8",
            ["Concurrency:Poller:ShutdownTimeout"] = "00:00:09",
            ["Concurrency:Poller:RunFaultBehavior"] = "Ignore",
        });
        builder.Services.AddTaskTracker("jobs").BindConfiguration("Concurrency:Jobs");
        builder.Services.AddBatcher<int, int, ShutdownHostingTests.EchoHandler>("loader").BindConfiguration("Concurrency:Loader");
        builder.Services.AddPeerEventPump<string, string, ShutdownHostingTests.JournalingConsumer>("peers").BindConfiguration("Concurrency:Peers");
        builder.Services.AddSingleton(new Journal());
        builder.Services.AddSingleton(new Script<A>());
        builder.Services.AddLifecycleService<ScriptedService<A>>("poller").BindConfiguration("Concurrency:Poller");
        using var host = builder.Build();

        await host.StartAsync().OrHang();

        var tracker = host.Services.GetRequiredService<IOptionsMonitor<TaskTrackerOptions>>().Get("jobs");
        (tracker.MaxConcurrency, tracker.ShutdownTimeout).Should().Be((3, TimeSpan.FromSeconds(7)));
        var batcher = host.Services.GetRequiredService<IOptionsMonitor<BatcherOptions>>().Get("loader");
        (batcher.MaxBatchSize, batcher.Capacity, batcher.ShutdownMode).Should().Be((16, 256, BatcherShutdownMode.FailPending));
        var pump = host.Services.GetRequiredService<IOptionsMonitor<PeerEventPumpOptions>>().Get("peers");
        (pump.FullMode, pump.Capacity).Should().Be((PeerEventPumpFullMode.DropOldest, 8));
        var service = host.Services.GetRequiredService<IOptionsMonitor<LifecycleServiceOptions>>().Get("poller");
        (service.ShutdownTimeout, service.RunFaultBehavior).Should().Be((TimeSpan.FromSeconds(9), LifecycleServiceRunFaultBehavior.Ignore));
        host.Services.GetRequiredKeyedService<TaskTracker>("jobs").Name.Should().Be("jobs");
        host.Services.GetRequiredKeyedService<Batcher<int, int>>("loader").Name.Should().Be("loader");
        await host.StopAsync().OrHang();
    }

    public static TheoryData<string, string, string> BadSettings => new()
    {
        { "tracker", "MaxConcurrency", "TaskTrackerOptions.MaxConcurrency" },
        { "batcher", "MaxBatchSize", "BatcherOptions.MaxBatchSize" },
        { "pump", "Capacity", "PeerEventPumpOptions.Capacity" },
        { "service", "ExitCode", "LifecycleServiceOptions.ExitCode" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task ABadSettingInConfiguration_FailsTheHostsStart_WithAnErrorThatNamesTheProperty(string primitive, string key, string property)
    {
        var builder = TestHost.NewBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { [$"Bad:{key}"] = "0" });
        var section = builder.Configuration.GetSection("Bad");
        _ = primitive switch
        {
            "tracker" => (object)builder.Services.AddTaskTracker("jobs").Bind(section),
            "batcher" => builder.Services.AddBatcher<int, int, ShutdownHostingTests.EchoHandler>("loader").Bind(section),
            "pump" => builder.Services.AddPeerEventPump<string, string, ShutdownHostingTests.JournalingConsumer>("peers").Bind(section),
            _ => builder.Services.AddLifecycleService<ScriptedService<A>>("poller").Bind(section),
        };
        builder.Services.AddSingleton(new Journal());
        builder.Services.AddSingleton(new Script<A>());
        using var host = builder.Build();

        var failure = await host.Invoking(h => h.StartAsync().OrHang()).Should().ThrowAsync<OptionsValidationException>();

        failure.Which.Message.Should().Contain(property);
    }

    [Fact]
    public void AnInvalidLifecycleServiceTimeout_IsRejected_NamingTheProperty()
    {
        var validator = new PrimitiveOptionsValidator();

        var result = validator.Validate("poller", new LifecycleServiceOptions { ShutdownTimeout = TimeSpan.FromSeconds(-2) });
        var fault = validator.Validate("poller", new LifecycleServiceOptions { RunFaultBehavior = (LifecycleServiceRunFaultBehavior)5 });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("LifecycleServiceOptions 'poller'").And.Contain("LifecycleServiceOptions.ShutdownTimeout");
        fault.FailureMessage.Should().Contain("LifecycleServiceOptions.RunFaultBehavior");
        validator.Validate("poller", new LifecycleServiceOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan }).Succeeded.Should().BeTrue();
    }

    [Fact]
    public void TheValidatorsProbe_CopiesEverySetting_ExceptWhatTheContainerProvides()
    {
        // The probe validates a copy; a setting added to an options type and not copied would escape validation.
        AssertCopiesEverySetting(new TaskTrackerOptions(), PrimitiveOptionsValidator.Copy);
        AssertCopiesEverySetting(new BatcherOptions(), PrimitiveOptionsValidator.Copy);
        AssertCopiesEverySetting(new PeerEventPumpOptions(), PrimitiveOptionsValidator.Copy);
    }

    [Fact]
    public async Task EveryPrimitive_GetsItsLoggerClockAndMeterFromTheContainer_UnlessItsOptionsSetThem()
    {
        var time = new ManualTimeProvider();
        var builder = TestHost.NewBuilder();
        builder.Services.AddSingleton<TimeProvider>(time);
        var own = new RecordingOnlyLogger();
        builder.Services.AddTaskTracker("jobs");
        builder.Services.AddTaskTracker("own", o => o.Logger = own);
        using var host = builder.Build();

        var jobs = host.Services.GetRequiredService<IOptionsMonitor<TaskTrackerOptions>>().Get("jobs");
        jobs.Logger.Should().NotBeNull();
        jobs.TimeProvider.Should().BeSameAs(time);
        jobs.MeterFactory.Should().BeSameAs(host.Services.GetRequiredService<IMeterFactory>());
        host.Services.GetRequiredService<IOptionsMonitor<TaskTrackerOptions>>().Get("own").Logger.Should().BeSameAs(own);

        await host.Services.GetRequiredKeyedService<TaskTracker>("jobs").CloseAsync().OrHang();
        host.Logs().Should().Contain(r => r.Category == "Concurrency.Primitives.TaskTracker" && r.Message.Contains("jobs", StringComparison.Ordinal));
    }

    private static void AssertCopiesEverySetting<T>(T original, Func<T, T> copy)
        where T : class
    {
        var provided = new[] { "Logger", "TimeProvider", "MeterFactory" };
        var settings = typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && !provided.Contains(p.Name)).ToList();
        settings.Should().NotBeEmpty();
        foreach (var setting in settings)
        {
            setting.SetValue(original, NonDefault(setting.PropertyType, setting.GetValue(original)));
        }

        var copied = copy(original);
        foreach (var setting in settings)
        {
            setting.GetValue(copied).Should().Be(setting.GetValue(original), $"{typeof(T).Name}.{setting.Name} must be copied");
        }
    }

    private static object NonDefault(Type type, object? current)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        return underlying switch
        {
            _ when underlying == typeof(string) => "probe-name",
            _ when underlying == typeof(int) => (current as int? ?? 0) + 7,
            _ when underlying == typeof(bool) => !(current as bool? ?? false),
            _ when underlying == typeof(TimeSpan) => (current as TimeSpan? ?? TimeSpan.Zero) + TimeSpan.FromSeconds(3),
            _ when underlying.IsEnum => Enum.GetValues(underlying).Cast<object>().Last(v => !v.Equals(current)),
            _ => throw new InvalidOperationException($"Add a value for {type} to this test."),
        };
    }

    private sealed class RecordingOnlyLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => false;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
        }
    }
}
