using System;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Hosting.Tests.TestSupport;
using Concurrency.Primitives.Tests.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Concurrency.Primitives.Hosting.Tests;

/// <summary>
/// The package in an ASP.NET Core app (a real <see cref="WebApplication"/> on a loopback port): request handlers hand work
/// to a tracker that the app's stop drains after the web server has stopped, and the health endpoint reports the primitives.
/// </summary>
public sealed class AspNetCoreHostingTests
{
    [Fact]
    public async Task WorkHandedOffByARequest_IsDrainedByTheAppsStop_AfterTheServerStopped()
    {
        var workStarted = Bounded.NewGate();
        var workMayFinish = Bounded.NewGate();
        var journal = new Journal();
        await using var app = NewApp(builder => builder.Services.AddTaskTracker("jobs"));
        app.Lifetime.ApplicationStopped.Register(() => journal.Add("app stopped"));
        app.MapPost("/orders", async ([FromKeyedServices("jobs")] TaskTracker jobs) =>
        {
            await jobs.Go(
                async _ =>
                {
                    workStarted.TrySetResult();
                    await workMayFinish.Task; // the confirmation mail, sent after the response
                    journal.Add("order confirmed");
                },
                "confirm order");
            return Results.Accepted();
        });
        await app.StartAsync().OrHang();
        using var client = new HttpClient { BaseAddress = Address(app) };

        (await client.PostAsync("/orders", null).OrHang()).StatusCode.Should().Be(HttpStatusCode.Accepted);
        await workStarted.Task.OrHang();
        var stop = app.StopAsync();
        stop.IsCompleted.Should().BeFalse("the stop drains the tracker");
        workMayFinish.SetResult();
        await stop.OrHang();

        journal.Entries.Should().Equal("order confirmed", "app stopped");
        app.Services.GetRequiredKeyedService<TaskTracker>("jobs").IsCompleted.Should().BeTrue();
    }

    [Fact]
    public async Task TheHealthEndpoint_ReportsThePrimitives_AndAFaultedServiceMakesItUnhealthy()
    {
        var mayFault = Bounded.NewGate();
        var faulted = Bounded.NewGate();
        await using var app = NewApp(builder =>
        {
            builder.Services.AddSingleton(new Script<A>
            {
                Run = async _ =>
                {
                    await mayFault.Task;
                    throw new InvalidOperationException("the queue was deleted");
                },
            });
            builder.Services.AddLifecycleService<ScriptedService<A>>("consumer", o => o.RunFaultBehavior = LifecycleServiceRunFaultBehavior.Ignore);
            builder.Services.AddHealthChecks().AddConcurrencyPrimitives();
        });
        app.MapHealthChecks("/health");
        app.Services.GetRequiredService<Internal.LifecycleHostedService<ScriptedService<A>>>().Gate.StateChanged += (_, e) =>
        {
            if (e.Current == LifecycleState.RunFaulted)
            {
                faulted.TrySetResult();
            }
        };
        await app.StartAsync().OrHang();
        using var client = new HttpClient { BaseAddress = Address(app) };

        var healthy = await client.GetAsync("/health").OrHang();
        (healthy.StatusCode, await healthy.Content.ReadAsStringAsync()).Should().Be((HttpStatusCode.OK, "Healthy"));
        mayFault.SetResult();
        await faulted.Task.OrHang();
        var unhealthy = await client.GetAsync("/health").OrHang();
        (unhealthy.StatusCode, await unhealthy.Content.ReadAsStringAsync()).Should().Be((HttpStatusCode.ServiceUnavailable, "Unhealthy"));

        await app.StopAsync().OrHang();
    }

    private static WebApplication NewApp(Action<WebApplicationBuilder> configure)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test", Args = Array.Empty<string>() });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = Bounded.HangLimit);
        configure(builder);
        return builder.Build();
    }

    private static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
}
