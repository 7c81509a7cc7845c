using System;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Internal;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Hosting.Tests.Docs;

/// <summary>The README's Hosting section says what the package does: its snippets run, and its log events are listed.</summary>
public sealed class HostingReadmeTests
{
    [Fact]
    public void EveryHostingLogEvent_IsListedInTheReadme_WithItsLevel()
    {
        var readme = File.ReadAllText(Path.Combine(SampleTests.RepositoryRoot(), "README.md"));
        var documented = Regex.Matches(readme, @"^\| (5\d{3}) \| (\w+) \|", RegexOptions.Multiline)
            .ToDictionary(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), m => m.Groups[2].Value);

        var declared = typeof(HostingLog).GetMethods(BindingFlags.Static | BindingFlags.Public)
            .Select(m => m.GetCustomAttribute<LoggerMessageAttribute>())
            .Where(a => a is not null)
            .GroupBy(a => a!.EventId) // one event may have two texts (5003), never two levels
            .ToDictionary(g => g.Key, g => g.Select(a => a!.Level.ToString()).Distinct().Single());

        declared.Should().HaveCountGreaterThan(5);
        documented.Should().Equal(declared, "the README's event table lists every Hosting event id with its level");
    }

    [Fact]
    public async Task TheRegistrationSnippet_BuildsAHostThatStartsReportsHealthAndStops()
    {
        using var host = HostingReadmeSnippets.Registration(Array.Empty<string>());
        await host.StartAsync().OrHang();

        var customers = host.Services.GetRequiredKeyedService<Batcher<int, Customer>>("customers");
        (await customers.SubmitAsync(7).AsTask().OrHang()).Name.Should().Be("customer 7");
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync().OrHang();
        report.Entries.Keys.Should().BeEquivalentTo("lifecycle:QuoteFeed", "batcher:customers", "pump:PeerEventPump<String, Quote>");
        report.Entries["batcher:customers"].Status.Should().Be(HealthStatus.Healthy);

        await host.Services.GetRequiredService<QuoteConsumer>().FirstQuote.Task.OrHang();
        await host.StopAsync().OrHang();
        host.Services.GetRequiredService<QuoteConsumer>().Seen.Should().ContainSingle().Which.Symbol.Should().Be("ACME");
    }
}
