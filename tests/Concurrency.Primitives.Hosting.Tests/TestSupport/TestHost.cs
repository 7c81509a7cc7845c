using System;
using System.Collections.Generic;
using System.Linq;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Concurrency.Primitives.Hosting.Tests.TestSupport;

/// <summary>
/// Real Generic Hosts for the tests (<see cref="Host.CreateApplicationBuilder()"/>, started and stopped as an app is),
/// with the maintained fakes for what they log: <c>FakeLogger</c> (Microsoft.Extensions.Diagnostics.Testing) replaces
/// the console. The fake clock stays the repository's <see cref="ManualTimeProvider"/>: FakeTimeProvider cannot tell a
/// test when the code under test has armed its timer, and advancing before that would race it.
/// </summary>
internal static class TestHost
{
    public static HostApplicationBuilder NewBuilder(TimeSpan? shutdownTimeout = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = Array.Empty<string>(),
            EnvironmentName = "Test",
            ApplicationName = "Concurrency.Primitives.Hosting.Tests",
        });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddFakeLogging();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout ?? Bounded.HangLimit);
        return builder;
    }

    public static IReadOnlyList<FakeLogRecord> Logs(this IHost host) => host.Services.GetFakeLogCollector().GetSnapshot();

    /// <summary>The host's log collector, to read what was logged once the host (and its container) is disposed.</summary>
    public static FakeLogCollector LogCollector(this IHost host) => host.Services.GetFakeLogCollector();

    public static IReadOnlyList<FakeLogRecord> Logs(this FakeLogCollector logs, int eventId) => logs.GetSnapshot().Where(r => r.Id.Id == eventId).ToList();

    public static IReadOnlyList<FakeLogRecord> Logs(this IHost host, int eventId) => host.Logs().Where(r => r.Id.Id == eventId).ToList();

    public static async System.Threading.Tasks.Task<HealthReportEntry> HealthOf(this IHost host, string check)
    {
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(r => r.Name == check).OrHang();
        report.Entries.Should().ContainKey(check);
        return report.Entries[check];
    }
}

/// <summary>An ordered record of what happened, shared by the services of one test.</summary>
internal sealed class Journal
{
    private readonly List<string> _entries = new();
    private int _numbers;

    public IReadOnlyList<string> Entries
    {
        get
        {
            lock (_entries)
            {
                return _entries.ToList();
            }
        }
    }

    /// <summary>The next number of a sequence kept with this journal: 1, 2, ...</summary>
    public int Next() => System.Threading.Interlocked.Increment(ref _numbers);

    public void Add(string entry)
    {
        lock (_entries)
        {
            _entries.Add(entry);
        }
    }
}
