using Concurrency.Primitives;
using Concurrency.Primitives.Hosting;

var builder = Host.CreateApplicationBuilder(args);

// Background jobs, at most 8 at once; closed (and waited for) when the host stops.
builder.Services.AddTaskTracker("jobs", o => o.MaxConcurrency = 8);

// Price lookups, batched; each batch resolves its PriceLoader from a fresh DI scope. Settings from "Prices".
builder.Services.AddBatcher<string, decimal, PriceLoader>("prices").BindConfiguration("Prices");

// One ordered stream of feed events: Added, messages, then exactly one Removed per connection.
builder.Services.AddPeerEventPump<string, string, FeedLog>();

// The loop that drives them, hosted through a LifecycleGate: a fault stops the host with exit code 1.
builder.Services.AddLifecycleService<PricePoller>();

builder.Services.AddHealthChecks().AddConcurrencyPrimitives();

await builder.Build().RunAsync();

sealed class PricePoller(
    [FromKeyedServices("jobs")] TaskTracker jobs,
    [FromKeyedServices("prices")] Batcher<string, decimal> prices,
    PeerEventPump<string, string> feed) : LifecycleService
{
    public override async Task RunAsync(CancellationToken stoppingToken)
    {
        using var peer = feed.Connect("ticker");
        peer.MarkReady();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var symbol in new[] { "ACME", "GLOBEX", "INITECH" })
            {
                await jobs.Go(async ct => peer.TryPost($"{symbol} {await prices.SubmitAsync(symbol, ct)}"), $"price {symbol}");
            }
        }
    }
}

sealed class PriceLoader(ILogger<PriceLoader> logger) : IBatchHandler<string, decimal>
{
    public Task DispatchAsync(Batch<string, decimal> batch, CancellationToken cancellationToken)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            batch.TrySetResult(i, 100m + batch[i].Length);
        }

        logger.LogInformation("Loaded {Count} prices", batch.Count);
        return Task.CompletedTask;
    }
}

sealed class FeedLog(ILogger<FeedLog> logger) : IPeerEventConsumer<string, string>
{
    public ValueTask OnAddedAsync(string peer, CancellationToken cancellationToken)
    {
        logger.LogInformation("{Peer} connected", peer);
        return ValueTask.CompletedTask;
    }

    public ValueTask OnMessageAsync(string peer, string message, CancellationToken cancellationToken)
    {
        logger.LogInformation("{Peer}: {Message}", peer, message);
        return ValueTask.CompletedTask;
    }

    public ValueTask OnRemovedAsync(string peer, CancellationToken cancellationToken)
    {
        logger.LogInformation("{Peer} disconnected", peer);
        return ValueTask.CompletedTask;
    }
}
