using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

#pragma warning disable CA2000, CA1812, CA1852, VSTHRD200 // README code, kept as a reader writes it

namespace Concurrency.Primitives.Hosting.Tests.Docs;

/// <summary>
/// The C# snippets of the README's "In a Generic Host or ASP.NET Core app" section, verbatim, so the compiler checks
/// them (the core tests' ReadmeTests check each README snippet appears here, in the core snippets, or in the worker
/// sample). Below the snippets: the stubs they use.
/// </summary>
internal static class HostingReadmeSnippets
{
    public static IHost Registration(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args); // or WebApplication.CreateBuilder(args)

        builder.Services.AddTaskTracker("jobs", o => o.MaxConcurrency = 8);                 // [FromKeyedServices("jobs")] TaskTracker
        builder.Services.AddBatcher<int, Customer, CustomerLoader>("customers")             // a DI scope per dispatch
            .BindConfiguration("Batchers:Customers");                                       // validated when the host starts
        builder.Services.AddPeerEventPump<string, Quote, QuoteConsumer>();
        builder.Services.AddLifecycleService<QuoteFeed>();                                  // hosted through a LifecycleGate
        builder.Services.AddHealthChecks().AddConcurrencyPrimitives();                      // lifecycle:QuoteFeed, batcher:customers, pump:PeerEventPump<String, Quote>

        builder.Services.AddSingleton<IQuoteSource, QuoteSource>();
        builder.Services.AddScoped<CustomerDb>();
        return builder.Build();
    }
}

sealed class QuoteFeed(IQuoteSource source, PeerEventPump<string, Quote> quotes) : ILifecycleService
{
    private IQuoteSubscription? _subscription;

    public async Task StartAsync(LifecycleContext context, CancellationToken cancellationToken) =>
        _subscription = context.Own(await source.SubscribeAsync(cancellationToken)); // disposed after the run returned

    public async Task RunAsync(CancellationToken stoppingToken)
    {
        using var peer = quotes.Connect("exchange");
        peer.MarkReady();
        await foreach (var quote in _subscription!.ReadAllAsync(stoppingToken))
        {
            await peer.PostAsync(quote, stoppingToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => _subscription!.UnsubscribeAsync(cancellationToken);
}

sealed class CustomerLoader(CustomerDb db) : IBatchHandler<int, Customer> // CustomerDb is scoped: one per batch
{
    public async Task DispatchAsync(Batch<int, Customer> batch, CancellationToken cancellationToken)
    {
        var found = await db.GetManyAsync(batch.Items, cancellationToken);
        for (var i = 0; i < batch.Count; i++)
        {
            batch.TrySetResult(i, found[batch[i]]);
        }
    }
}

internal sealed record Customer(int Id, string Name);

internal sealed record Quote(string Symbol, decimal Price);

internal sealed class QuoteConsumer : IPeerEventConsumer<string, Quote>
{
    public List<Quote> Seen { get; } = new();

    public TaskCompletionSource FirstQuote { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken) => default;

    public ValueTask OnMessageAsync(string peer, Quote message, CancellationToken cancellationToken)
    {
        lock (Seen)
        {
            Seen.Add(message);
        }

        FirstQuote.TrySetResult();
        return default;
    }

    public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken) => default;
}

internal interface IQuoteSource
{
    Task<IQuoteSubscription> SubscribeAsync(CancellationToken cancellationToken);
}

internal interface IQuoteSubscription : IAsyncDisposable
{
    IAsyncEnumerable<Quote> ReadAllAsync(CancellationToken cancellationToken);

    Task UnsubscribeAsync(CancellationToken cancellationToken);
}

internal sealed class QuoteSource : IQuoteSource
{
    public Task<IQuoteSubscription> SubscribeAsync(CancellationToken cancellationToken) => Task.FromResult<IQuoteSubscription>(new Subscription());

    private sealed class Subscription : IQuoteSubscription
    {
        public async IAsyncEnumerable<Quote> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            yield return new Quote("ACME", 104m);
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        public Task UnsubscribeAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public ValueTask DisposeAsync() => default;
    }
}

internal sealed class CustomerDb
{
    public Task<IReadOnlyDictionary<int, Customer>> GetManyAsync(IReadOnlyList<int> ids, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyDictionary<int, Customer>>(ids.ToDictionary(id => id, id => new Customer(id, $"customer {id}")));
}
