using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Api;

/// <summary>
/// Every bounded option of every primitive, at its edges: the last value accepted is accepted, the first one past it is
/// refused at construction with <see cref="ArgumentOutOfRangeException"/> whose message names the option (so a user sees
/// which of a dozen settings to fix).
/// </summary>
public sealed class OptionBoundsTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);
    private static readonly TimeSpan Max = Guard.MaxTimeout;

    public static IEnumerable<object[]> Refused() => new[]
    {
        Case("TaskTrackerOptions.MaxConcurrency", () => Tracker(new TaskTrackerOptions { MaxConcurrency = 0 })),
        Case("TaskTrackerOptions.ShutdownTimeout", () => Tracker(new TaskTrackerOptions { ShutdownTimeout = -Tick })),
        Case("TaskTrackerOptions.ShutdownTimeout", () => Tracker(new TaskTrackerOptions { ShutdownTimeout = Max + Tick })),
        Case("TaskTrackerOptions.LongRunningThreshold", () => Tracker(new TaskTrackerOptions { LongRunningThreshold = TimeSpan.Zero })),
        Case("TaskTrackerOptions.LongRunningThreshold", () => Tracker(new TaskTrackerOptions { LongRunningThreshold = Max + Tick })),
        Case("TaskTrackerOptions.LongRunningThreshold", () => Tracker(new TaskTrackerOptions { LongRunningThreshold = Timeout.InfiniteTimeSpan })),
        Case("TaskTrackerOptions.MaxRecordedFailures", () => Tracker(new TaskTrackerOptions { MaxRecordedFailures = -1 })),

        Case("BatcherOptions.MaxBatchSize", () => Batcher(new BatcherOptions { MaxBatchSize = 0 })),
        Case("BatcherOptions.MaxConcurrency", () => Batcher(new BatcherOptions { MaxConcurrency = 0 })),
        Case("BatcherOptions.Capacity", () => Batcher(new BatcherOptions { MaxBatchSize = 8, Capacity = 7 })),
        Case("BatcherOptions.Capacity", () => Batcher(new BatcherOptions { Capacity = (int.MaxValue / 2) + 1 })),
        Case("BatcherOptions.MaxDelay", () => Batcher(new BatcherOptions { MaxDelay = -Tick })),
        Case("BatcherOptions.MaxDelay", () => Batcher(new BatcherOptions { MaxDelay = Max + Tick })),
        Case("BatcherOptions.Timeout", () => Batcher(new BatcherOptions { Timeout = TimeSpan.Zero })),
        Case("BatcherOptions.Timeout", () => Batcher(new BatcherOptions { Timeout = Max + Tick })),
        Case("BatcherOptions.DispatchTimeout", () => Batcher(new BatcherOptions { DispatchTimeout = TimeSpan.Zero })),
        Case("BatcherOptions.ShutdownTimeout", () => Batcher(new BatcherOptions { ShutdownTimeout = -Tick })),
        Case("BatcherOptions.ShutdownMode", () => Batcher(new BatcherOptions { ShutdownMode = (BatcherShutdownMode)2 })),

        Case("PeerEventPumpOptions.Capacity", () => Pump(new PeerEventPumpOptions { Capacity = 0 })),
        Case("PeerEventPumpOptions.PerPeerCapacity", () => Pump(new PeerEventPumpOptions { PerPeerCapacity = 0 })),
        Case("PeerEventPumpOptions.HandlerStallThreshold", () => Pump(new PeerEventPumpOptions { HandlerStallThreshold = TimeSpan.FromMilliseconds(1) - Tick })),
        Case("PeerEventPumpOptions.HandlerStallThreshold", () => Pump(new PeerEventPumpOptions { HandlerStallThreshold = Max + Tick })),
        Case("PeerEventPumpOptions.FullMode", () => Pump(new PeerEventPumpOptions { FullMode = (PeerEventPumpFullMode)99 })),
        Case("PeerEventPumpOptions.FaultPolicy", () => Pump(new PeerEventPumpOptions { FaultPolicy = (PeerEventPumpFaultPolicy)99 })),
        Case("PeerEventPumpOptions.ShutdownTimeout", () => Pump(new PeerEventPumpOptions { ShutdownTimeout = -Tick })),

        Case("LifecycleGateOptions.ShutdownTimeout", () => new LifecycleGate(options: new LifecycleGateOptions { ShutdownTimeout = -Tick })),
        Case("LifecycleGroupOptions.ShutdownTimeout", () => new LifecycleGroup(new LifecycleGroupOptions { ShutdownTimeout = -Tick })),
        Case("LifecycleGroupOptions.OnGateFault", () => new LifecycleGroup(new LifecycleGroupOptions { OnGateFault = (LifecycleGroupFaultPolicy)99 })),
        Case("OrderedTeardownOptions.ShutdownTimeout", () => new OrderedTeardown(new OrderedTeardownOptions { ShutdownTimeout = Max + Tick })),
    };

    public static IEnumerable<object[]> Accepted() => new[]
    {
        Case("TaskTrackerOptions.MaxConcurrency = 1", () => Tracker(new TaskTrackerOptions { MaxConcurrency = 1 })),
        Case("TaskTrackerOptions.ShutdownTimeout = 0", () => Tracker(new TaskTrackerOptions { ShutdownTimeout = TimeSpan.Zero })),
        Case("TaskTrackerOptions.ShutdownTimeout = max", () => Tracker(new TaskTrackerOptions { ShutdownTimeout = Max })),
        Case("TaskTrackerOptions.ShutdownTimeout = infinite", () => Tracker(new TaskTrackerOptions { ShutdownTimeout = Timeout.InfiniteTimeSpan })),
        Case("TaskTrackerOptions.LongRunningThreshold = 1 tick", () => Tracker(new TaskTrackerOptions { LongRunningThreshold = Tick })),
        Case("TaskTrackerOptions.LongRunningThreshold = max", () => Tracker(new TaskTrackerOptions { LongRunningThreshold = Max })),
        Case("TaskTrackerOptions.MaxRecordedFailures = 0", () => Tracker(new TaskTrackerOptions { MaxRecordedFailures = 0 })),

        Case("BatcherOptions.MaxBatchSize = 1", () => Batcher(new BatcherOptions { MaxBatchSize = 1 })),
        Case("BatcherOptions.MaxConcurrency = 1", () => Batcher(new BatcherOptions { MaxConcurrency = 1 })),
        Case("BatcherOptions.Capacity = MaxBatchSize", () => Batcher(new BatcherOptions { MaxBatchSize = 8, Capacity = 8 })),
        Case("BatcherOptions.Capacity = the most", () => Batcher(new BatcherOptions { Capacity = int.MaxValue / 2 })),
        Case("BatcherOptions.MaxDelay = 0", () => Batcher(new BatcherOptions { MaxDelay = TimeSpan.Zero })),
        Case("BatcherOptions.MaxDelay = max", () => Batcher(new BatcherOptions { MaxDelay = Max })),
        Case("BatcherOptions.Timeout = 1 tick", () => Batcher(new BatcherOptions { Timeout = Tick })),
        Case("BatcherOptions.Timeout = max", () => Batcher(new BatcherOptions { Timeout = Max })),
        Case("BatcherOptions.Timeout = infinite", () => Batcher(new BatcherOptions { Timeout = Timeout.InfiniteTimeSpan })),
        Case("BatcherOptions.ShutdownTimeout = 0", () => Batcher(new BatcherOptions { ShutdownTimeout = TimeSpan.Zero })),
        Case("BatcherOptions.ShutdownMode = FailPending", () => Batcher(new BatcherOptions { ShutdownMode = BatcherShutdownMode.FailPending })),

        Case("PeerEventPumpOptions.Capacity = 1", () => Pump(new PeerEventPumpOptions { Capacity = 1 })),
        Case("PeerEventPumpOptions.PerPeerCapacity = 1", () => Pump(new PeerEventPumpOptions { PerPeerCapacity = 1 })),
        Case("PeerEventPumpOptions.HandlerStallThreshold = 1 ms", () => Pump(new PeerEventPumpOptions { HandlerStallThreshold = TimeSpan.FromMilliseconds(1) })),
        Case("PeerEventPumpOptions.HandlerStallThreshold = max", () => Pump(new PeerEventPumpOptions { HandlerStallThreshold = Max })),
        Case("PeerEventPumpOptions.ShutdownTimeout = 0", () => Pump(new PeerEventPumpOptions { ShutdownTimeout = TimeSpan.Zero })),

        Case("LifecycleGroupOptions.OnGateFault = Isolate", () => new LifecycleGroup(new LifecycleGroupOptions { OnGateFault = LifecycleGroupFaultPolicy.Isolate })),
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void AValuePastTheBound_IsRefusedAtConstruction_NamingTheOption(string option, Func<IAsyncDisposable> create)
    {
        var refused = create.Should().Throw<ArgumentOutOfRangeException>().Which;

        refused.Message.Should().Contain(option);
    }

    [Theory]
    [MemberData(nameof(Accepted))]
    public async Task TheLastValueInsideTheBound_IsAccepted(string option, Func<IAsyncDisposable> create)
    {
        _ = option;
        var created = create();

        await created.DisposeAsync().OrHang();
    }

    private static object[] Case(string option, Func<IAsyncDisposable> create) => new object[] { option, create };

    private static TaskTracker Tracker(TaskTrackerOptions options) => new(options);

    private static Batcher<int, int> Batcher(BatcherOptions options) => new((batch, _) => ValueTask.CompletedTask, options);

    private static PeerEventPump<string, string> Pump(PeerEventPumpOptions options) => new(new RecordingPeerHandler<string>(), options);
}
