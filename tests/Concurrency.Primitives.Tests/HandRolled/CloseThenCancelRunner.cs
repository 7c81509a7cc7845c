using System;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.HandRolled;

/// <summary>
/// The hand-rolled runner of the schema-migration incident.
/// Flaw: Close() releases the clients first, then cancels the loop and waits for it, so the loop's
/// cancellation path (which drops a checkpoint table) runs against a disposed client.
/// </summary>
public sealed class CloseThenCancelRunner
{
    private readonly TrackedResource _database;
    private readonly CancellationTokenSource _cancellation = new();
    private Task? _loop;

    public CloseThenCancelRunner(TrackedResource database) => _database = database;

    public void Start(Func<CancellationToken, Task> iteration) => _loop = Task.Run(() => RunAsync(iteration));

    public async Task CloseAsync()
    {
        await _database.DisposeAsync();
        await _cancellation.CancelAsync();
        await _loop!;
    }

    private async Task RunAsync(Func<CancellationToken, Task> iteration)
    {
        try
        {
            while (true)
            {
                _database.Use();
                await iteration(_cancellation.Token);
            }
        }
        catch (OperationCanceledException)
        {
            _database.Use(); // the error path: drop the checkpoint table
        }
    }
}
