using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.HandRolled;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Lifecycle;

/// <summary>
/// The schema-migration incident: a runner torn down as close -> cancel -> wait lets its loop use a disposed
/// client; the gate's stop never disposes a resource before the run has returned.
/// </summary>
public sealed class TeardownOrderSeedStoryTests
{
    [Fact]
    public async Task HandRolledRunner_ClosingBeforeCancelling_LetsTheLoopUseADisposedClient()
    {
        var database = new TrackedResource("database");
        var runner = new CloseThenCancelRunner(database);
        var inIteration = Bounded.NewGate();
        runner.Start(async token =>
        {
            inIteration.TrySetResult();
            await WaitForCancellationAsync(token);
        });
        await inIteration.Task.OrHang();

        await runner.CloseAsync().OrHang();

        database.UsesAfterDispose.Should().Be(1, "the hand-rolled order disposes first; the loop's error path then touches the client");
    }

    [Fact]
    public async Task Gate_Stop_DisposesOnlyAfterTheRunHasReturned()
    {
        var database = new TrackedResource("database");
        var inIteration = Bounded.NewGate();
        var gate = new LifecycleGate(
            start: (context, _) => Task.FromResult(context.Own(database)),
            run: async token =>
            {
                try
                {
                    while (true)
                    {
                        database.Use();
                        inIteration.TrySetResult();
                        await WaitForCancellationAsync(token);
                    }
                }
                catch (System.OperationCanceledException)
                {
                    database.Use(); // the same error path
                }
            });
        await gate.StartAsync().OrHang();
        await inIteration.Task.OrHang();

        await gate.StopAsync().OrHang();

        database.IsDisposed.Should().BeTrue();
        database.UsesAfterDispose.Should().Be(0);
    }

    [Fact]
    public async Task OrderedTeardown_OnItsOwn_GivesTheSameOrderToAnExistingLoop()
    {
        var database = new TrackedResource("database");
        using var cancellation = new CancellationTokenSource();
        var inIteration = Bounded.NewGate();
        var loop = Task.Run(async () =>
        {
            try
            {
                database.Use();
                inIteration.TrySetResult();
                await WaitForCancellationAsync(cancellation.Token);
            }
            catch (System.OperationCanceledException)
            {
                database.Use();
            }
        });
        var teardown = new OrderedTeardown();
        teardown.SetRun(loop, cancellation);
        teardown.Add(database);
        await inIteration.Task.OrHang();

        await teardown.ExecuteAsync(System.TimeSpan.FromSeconds(30)).OrHang();

        teardown.IsCompleted.Should().BeTrue();
        database.IsDisposed.Should().BeTrue();
        database.UsesAfterDispose.Should().Be(0);
    }

    private static Task WaitForCancellationAsync(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.Register(() => cancelled.TrySetCanceled(token));
        return cancelled.Task;
    }
}
