using System;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// A bounded close with a bound no wait can take (negative and not infinite, or past the most a timer takes) is refused
/// at the call, naming <c>timeout</c>, before anything closes: the primitive stays open and goes on working, as the house
/// rule for bad input says (nothing lost, state intact). Every primitive with a bounded close, the same way.
/// </summary>
public sealed class CloseArgumentTests
{
    public static TheoryData<TimeSpan> BadBounds() => new() { TimeSpan.FromMilliseconds(-2), Guard.MaxTimeout + TimeSpan.FromTicks(1) };

    [Theory]
    [MemberData(nameof(BadBounds))]
    public async Task TaskTracker_RefusesTheBound_AndStaysOpen(TimeSpan bound)
    {
        await using var tracker = new TaskTracker();

        ShouldRefuse(() => tracker.CloseAsync(bound));

        tracker.IsClosing.Should().BeFalse();
        tracker.Register("still accepted").Dispose();
        await tracker.CloseAsync().OrHang();
    }

    [Theory]
    [MemberData(nameof(BadBounds))]
    public async Task LifecycleGate_RefusesTheBound_AndCanStillStart(TimeSpan bound)
    {
        await using var gate = new LifecycleGate(options: new LifecycleGateOptions { Name = "syncer" });

        ShouldRefuse(() => gate.CloseAsync(bound));

        (await gate.StartAsync().OrHang()).Should().BeTrue("the refused close did not close the gate");
        gate.State.Should().Be(LifecycleState.Running);
    }

    [Theory]
    [MemberData(nameof(BadBounds))]
    public async Task LifecycleGroup_RefusesTheBound_AndCanStillStart(TimeSpan bound)
    {
        await using var group = new LifecycleGroup();
        group.Add(new LifecycleGate(options: new LifecycleGateOptions { Name = "db" }));

        ShouldRefuse(() => group.CloseAsync(bound));

        (await group.StartAsync().OrHang()).Should().BeTrue("the refused close did not close the group");
        group.State.Should().Be(LifecycleState.Running);
    }

    [Theory]
    [MemberData(nameof(BadBounds))]
    public async Task Batcher_RefusesTheBound_AndStillAnswers(TimeSpan bound)
    {
        await using var batcher = new Batcher<int, int>(
            (batch, _) =>
            {
                for (var i = 0; i < batch.Count; i++)
                {
                    batch.TrySetResult(i, batch[i] * 2);
                }

                return default;
            },
            new BatcherOptions { MaxBatchSize = 1, MaxDelay = TimeSpan.Zero });

        ShouldRefuse(() => batcher.CloseAsync(bound));

        (await batcher.SubmitAsync(21).OrHang()).Should().Be(42);
        batcher.Completion.IsCompleted.Should().BeFalse();
    }

    [Theory]
    [MemberData(nameof(BadBounds))]
    public async Task PeerEventPump_RefusesTheBound_AndStillConnects(TimeSpan bound)
    {
        var consumer = new RecordingPeerHandler<string>();
        await using var pump = new PeerEventPump<string, string>(consumer);

        ShouldRefuse(() => pump.CloseAsync(bound));

        pump.Connect("a").MarkReady();
        await consumer.WhenHandled(1).OrHang();
        pump.Completion.IsCompleted.Should().BeFalse();
    }

    private static void ShouldRefuse(Func<Task> close) =>
        FluentActions.Invoking(() => { _ = close(); })
            .Should().Throw<ArgumentOutOfRangeException>("the bound is checked at the call, before anything closes").Which.ParamName.Should().Be("timeout");
}
