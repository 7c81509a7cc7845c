using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Internal;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Internal;

/// <summary>
/// The shared helpers under the primitives, on their own: each one's contract at its edges, so that a slip in one shows
/// here by name rather than as a hang in a primitive's test.
/// </summary>
public sealed class InternalHelperTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromTicks(1);

    [Fact]
    public void Guard_NotNull_ReturnsTheValue_OrNamesTheNullArgument()
    {
        var value = new object();
        Guard.NotNull(value).Should().BeSameAs(value);

        object? missing = null;
        FluentActions.Invoking(() => Guard.NotNull(missing)).Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("missing");
    }

    [Fact]
    public void Guard_Positive_AcceptsOneAndMore_AndRefusesZeroNamingTheArgument()
    {
        Guard.Positive(1).Should().Be(1);
        var count = 0;
        var refused = FluentActions.Invoking(() => Guard.Positive(count)).Should().Throw<ArgumentOutOfRangeException>().Which;
        refused.ParamName.Should().Be("count");
        refused.Message.Should().StartWith("count must be greater than zero.");
        refused.ActualValue.Should().Be(0);
    }

    [Fact]
    public void Guard_Timeout_AcceptsZeroToTheMostAndInfinite_AndRefusesTheRest()
    {
        Guard.Timeout(TimeSpan.Zero).Should().Be(TimeSpan.Zero);
        Guard.Timeout(Guard.MaxTimeout).Should().Be(Guard.MaxTimeout);
        Guard.Timeout(Timeout.InfiniteTimeSpan).Should().Be(Timeout.InfiniteTimeSpan);
        var wait = -Tick;
        FluentActions.Invoking(() => Guard.Timeout(wait)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.Message.Should().StartWith($"wait must be non-negative and at most {Guard.MaxTimeout.TotalMilliseconds} ms, or Timeout.InfiniteTimeSpan.");
        FluentActions.Invoking(() => Guard.Timeout(Guard.MaxTimeout + Tick)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Guard.Timeout(TimeSpan.FromMilliseconds(-2))).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Guard_PositiveOrInfinite_AcceptsATickToTheMostAndInfinite_AndRefusesZero()
    {
        Guard.PositiveOrInfinite(Tick).Should().Be(Tick);
        Guard.PositiveOrInfinite(Guard.MaxTimeout).Should().Be(Guard.MaxTimeout);
        Guard.PositiveOrInfinite(Timeout.InfiniteTimeSpan).Should().Be(Timeout.InfiniteTimeSpan);
        var bound = TimeSpan.Zero;
        FluentActions.Invoking(() => Guard.PositiveOrInfinite(bound)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.Message.Should().StartWith("bound must be greater than zero and at most").And.Contain("or Timeout.InfiniteTimeSpan for no bound.");
        FluentActions.Invoking(() => Guard.PositiveOrInfinite(Guard.MaxTimeout + Tick)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Guard_FinitePositive_AcceptsATickToTheMost_AndRefusesZeroAndInfinite()
    {
        Guard.FinitePositive(Tick).Should().Be(Tick);
        Guard.FinitePositive(Guard.MaxTimeout).Should().Be(Guard.MaxTimeout);
        var threshold = TimeSpan.Zero;
        FluentActions.Invoking(() => Guard.FinitePositive(threshold)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.Message.Should().StartWith("threshold must be greater than zero and at most").And.Contain("this wait must be bounded.");
        FluentActions.Invoking(() => Guard.FinitePositive(Timeout.InfiniteTimeSpan)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => Guard.FinitePositive(Guard.MaxTimeout + Tick)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Signals_Remaining_IsWhatIsLeftOfTheBound_NeverNegative_AndTheWholeBoundBeforeAnythingBegan()
    {
        var time = new ManualTimeProvider();
        var began = time.GetTimestamp();
        var bound = TimeSpan.FromSeconds(10);

        Signals.Remaining(bound, Signals.NotBegun, time).Should().Be(bound);
        Signals.Remaining(Timeout.InfiniteTimeSpan, began, time).Should().Be(Timeout.InfiniteTimeSpan);
        time.Advance(TimeSpan.FromSeconds(4));
        Signals.Remaining(bound, began, time).Should().Be(TimeSpan.FromSeconds(6));
        time.Advance(TimeSpan.FromSeconds(6));
        Signals.Remaining(bound, began, time).Should().Be(TimeSpan.Zero);
        time.Advance(TimeSpan.FromSeconds(1));
        Signals.Remaining(bound, began, time).Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public async Task Signals_WaitAsync_ReturnsTheTaskItselfWhenNoBoundApplies_AndTimesOutOnTheGivenClock()
    {
        var time = new ManualTimeProvider();
        var pending = Bounded.NewGate().Task;
        Signals.WaitAsync(pending, Timeout.InfiniteTimeSpan, time, CancellationToken.None).Should().BeSameAs(pending);
        Signals.WaitAsync(Task.CompletedTask, TimeSpan.FromSeconds(1), time, CancellationToken.None).Should().BeSameAs(Task.CompletedTask);
        Signals.WaitAsync(pending, CancellationToken.None).Should().BeSameAs(pending);
        var typed = Bounded.NewGate<int>().Task;
        Signals.WaitAsync(typed, CancellationToken.None).Should().BeSameAs(typed);

        var bounded = Signals.WaitAsync(pending, TimeSpan.FromSeconds(1), time, CancellationToken.None);
        bounded.IsCompleted.Should().BeFalse();
        time.Advance(TimeSpan.FromSeconds(1));
        await bounded.Invoking(b => b.OrHang()).Should().ThrowAsync<TimeoutException>();

        using var cancellation = new CancellationTokenSource();
        var cancellable = Signals.WaitAsync(typed, cancellation.Token);
        var cancellableUntyped = Signals.WaitAsync(pending, cancellation.Token);
        await cancellation.CancelAsync();
        await cancellable.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
        await cancellableUntyped.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task Signals_WaitWithinAsync_SaysWhetherTheTaskFinished_NeverTakingTheTasksOwnTimeoutForTheBound()
    {
        var time = new ManualTimeProvider();
        var bound = TimeSpan.FromSeconds(1);

        // Finished, whatever its outcome (a TimeoutException of its own included): the caller awaits it for that.
        (await Signals.WaitWithinAsync(Task.FromException(new TimeoutException("its own")), bound, time, CancellationToken.None)).Should().BeTrue();
        var failing = Bounded.NewGate();
        var waitingForFailure = Signals.WaitWithinAsync(failing.Task, bound, time, CancellationToken.None);
        failing.SetException(new TimeoutException("its own, inside the bound"));
        (await waitingForFailure.OrHang()).Should().BeTrue("the task's own TimeoutException is its outcome, not the bound passing");

        // Still running when the bound passes: false, and the task runs on.
        var running = Bounded.NewGate();
        var bounded = Signals.WaitWithinAsync(running.Task, bound, time, CancellationToken.None);
        time.Advance(bound - Tick);
        bounded.IsCompleted.Should().BeFalse();
        time.Advance(Tick);
        (await bounded.OrHang()).Should().BeFalse();
        running.Task.IsCompleted.Should().BeFalse();

        // The caller's token ends the wait with OperationCanceledException.
        using var cancellation = new CancellationTokenSource();
        var cancellable = Signals.WaitWithinAsync(running.Task, Timeout.InfiniteTimeSpan, time, cancellation.Token);
        await cancellation.CancelAsync();
        await cancellable.Invoking(c => c.OrHang()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public void Signals_CancelAfter_CancelsOnTheGivenClock_AndNeverForAnInfiniteDelay()
    {
        var time = new ManualTimeProvider();
        using var bounded = Signals.CancelAfter(time, TimeSpan.FromSeconds(2));
        using var never = Signals.CancelAfter(time, Timeout.InfiniteTimeSpan);

        time.Advance(TimeSpan.FromSeconds(2) - Tick);
        bounded.IsCancellationRequested.Should().BeFalse();
        time.Advance(Tick);
        bounded.IsCancellationRequested.Should().BeTrue();
        time.Advance(TimeSpan.FromDays(400));
        never.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public void Signals_Create_MakesSourcesWhoseContinuationsNeverRunInline()
    {
        Signals.Create().Task.CreationOptions.Should().HaveFlag(TaskCreationOptions.RunContinuationsAsynchronously);
        Signals.Create<int>().Task.CreationOptions.Should().HaveFlag(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [Fact]
    public void CoarseClock_OnAFakeClock_ReadsItsTimestamps_AndConvertsSpansBothWays()
    {
        var time = new ManualTimeProvider();
        var clock = new CoarseClock(time);
        var start = clock.Now();

        clock.TicksPerSecond.Should().Be(time.TimestampFrequency);
        time.Advance(TimeSpan.FromMilliseconds(1500));
        clock.Between(start, clock.Now()).Should().Be(TimeSpan.FromMilliseconds(1500));
        clock.Between(clock.Now(), start).Should().Be(TimeSpan.Zero, "a span backwards is none");
        clock.Between(start, start).Should().Be(TimeSpan.Zero);
        clock.ToTicks(TimeSpan.FromSeconds(2)).Should().Be(2 * time.TimestampFrequency);
    }

    [Fact]
    public void CoarseClock_OnTheSystemClock_CountsMilliseconds_AndRoundsSpansUp()
    {
        var clock = new CoarseClock(TimeProvider.System);

        clock.TicksPerSecond.Should().Be(1000);
        clock.Now().Should().BeCloseTo(Environment.TickCount64, 1000);
        clock.ToTicks(TimeSpan.FromTicks(1)).Should().Be(1, "a part of a millisecond is a whole one: deadlines never come early");
        clock.ToTicks(TimeSpan.FromMilliseconds(2)).Should().Be(2);
        clock.Between(1000, 3500).Should().Be(TimeSpan.FromMilliseconds(2500));
    }

    [Theory]
    [InlineData(10_000_000L)] // TimeSpan ticks: the manual clock, FakeTimeProvider
    [InlineData(1_000_000_000L)] // Stopwatch on Linux
    [InlineData(3_579_545L)] // an ACPI timer's frequency: no power of ten
    [InlineData(1_000L)]
    public void CoarseClock_ConvertsWholeMilliseconds_Exactly_AndRoundsOnlyWhatIsAPartOfAUnitUp(long frequency)
    {
        // A deadline or a MaxDelay a unit late is a timer that fires a unit after its time (70 ms was 700,001 ticks once).
        var clock = new CoarseClock(new FrequencyClock(frequency));
        var unit = TimeSpan.FromTicks((long)Math.Ceiling((double)TimeSpan.TicksPerSecond / frequency));
        var wrong = new List<string>();
        for (var ms = 0; ms <= 100_000; ms++)
        {
            var span = TimeSpan.FromMilliseconds(ms);
            var units = (long)decimal.Ceiling((decimal)span.Ticks * frequency / TimeSpan.TicksPerSecond);
            if (clock.ToTicks(span) != units)
            {
                wrong.Add($"ToTicks({ms} ms) = {clock.ToTicks(span)}, not {units}");
            }

            // A timer set for the span between two timestamps fires no earlier than the later one, and not a unit later.
            var between = clock.Between(0, units);
            if (between < span || between > span + unit)
            {
                wrong.Add($"Between(0, {units}) = {between.Ticks} ticks for {ms} ms");
            }
        }

        wrong.Should().BeEmpty();
        clock.ToTicks(TimeSpan.FromTicks(1)).Should().Be(Math.Max(1, frequency / TimeSpan.TicksPerSecond), "a part of a unit is a whole one");
        clock.Between(5, 5).Should().Be(TimeSpan.Zero);
        clock.Between(7, 5).Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public void AtomicBits_SetAndClear_ReturnTheValueBefore()
    {
        var word = 0b0101;

        AtomicBits.Set(ref word, 0b0010).Should().Be(0b0101);
        word.Should().Be(0b0111);
        AtomicBits.Clear(ref word, 0b0100).Should().Be(0b0111);
        word.Should().Be(0b0011);
    }

    [Fact]
    public void FreeList_TakesBackEveryPushedNode_NewestFirst_AndIsEmptyAfter()
    {
        Node? head = null;
        var a = new Node("a");
        var b = new Node("b");
        var c = new Node("c");
        var d = new Node("d");
        c.NextFree = d; // a chain c -> d

        FreeList.Push(ref head, a);
        FreeList.Push(ref head, b);
        FreeList.PushChain(ref head, c, d);

        var taken = new List<string>();
        for (var node = FreeList.TakeAll(ref head); node is not null; node = node.NextFree)
        {
            taken.Add(node.Name);
        }

        taken.Should().Equal("c", "d", "b", "a");
        FreeList.TakeAll(ref head).Should().BeNull();
    }

    [Fact]
    public void FreeList_APushWhoseSwapLosesToAnotherPush_TriesAgain_SoNeitherNodeIsLost()
    {
        var list = new FreeListHead();
        var a = new Node("a");
        var b = new Node("b");
        var c = new Node("c");
        FreeList.Push(ref list.Head, c);

        // Between a's link to the top it read (c) and its compare-and-swap, another push puts b on top, as a push from another
        // thread can: a's swap fails and must try again on b, not return with a in no list.
        a.WhenLinked = () => FreeList.Push(ref list.Head, b);
        FreeList.Push(ref list.Head, a);

        var taken = new List<string>();
        for (var node = FreeList.TakeAll(ref list.Head); node is not null; node = node.NextFree)
        {
            taken.Add(node.Name);
        }

        taken.Should().Equal("a", "b", "c");
    }

    [Fact]
    public void IntrusiveList_AppendsInOrder_AndRemovesAnyNode()
    {
        var list = default(IntrusiveList<Node, Node.Links>);
        var a = new Node("a");
        var b = new Node("b");
        var c = new Node("c");
        list.First.Should().BeNull();

        list.AddLast(a);
        list.AddLast(b);
        list.AddLast(c);
        Names(list).Should().Equal("a", "b", "c");

        list.Remove(b);
        Names(list).Should().Equal("a", "c");
        list.Remove(c);
        Names(list).Should().Equal("a");
        list.AddLast(b);
        Names(list).Should().Equal("a", "b");
        list.Remove(a);
        Names(list).Should().Equal("b");
        list.Remove(b);
        list.First.Should().BeNull();
        list.AddLast(c);
        Names(list).Should().Equal(new[] { "c" }, "a node removed from the end can come back");
        (a.ListLinks.Previous, a.ListLinks.Next).Should().Be((null, null), "a removed node carries no links");
    }

    [Fact]
    public async Task ThreadSlots_AreEachThreadsOwn_AndGrowForLaterSlots()
    {
        var first = ThreadSlots.Register();
        var later = ThreadSlots.Register();
        later.Should().Be(first + 1);
        var far = first + 40;

        ThreadSlots.Get(far).Should().BeNull();
        ThreadSlots.Set(first, "mine");
        ThreadSlots.Set(far, "far");
        ThreadSlots.Get(first).Should().Be("mine");
        ThreadSlots.Get(far).Should().Be("far");
        ThreadSlots.Get(-1).Should().BeNull();

        var elsewhere = await Task.Factory.StartNew(() => ThreadSlots.Get(first), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).OrHang();
        elsewhere.Should().BeNull("another thread has slots of its own");
    }

    [Fact]
    public async Task RoomWaiters_WakeOldestFirst_SkipWaitersThatLeft_AndReleaseOrFailTheRest()
    {
        var waiters = new RoomWaiters();
        waiters.IsEmpty.Should().BeTrue();
        var peer = new object();
        var first = waiters.Add();
        var gone = waiters.Add(peer);
        var third = waiters.Add();
        var fourth = waiters.Add();
        waiters.IsEmpty.Should().BeFalse();

        waiters.Release(peer);
        (await gone.Task.OrHang()).Should().BeFalse();
        waiters.Wake(2).Should().Be(2, "the released waiter takes no wake-up");
        (await first.Task.OrHang()).Should().BeTrue();
        (await third.Task.OrHang()).Should().BeTrue();
        fourth.Task.IsCompleted.Should().BeFalse();

        waiters.ReleaseAll();
        (await fourth.Task.OrHang()).Should().BeFalse();
        waiters.IsEmpty.Should().BeTrue();
        waiters.Wake(1).Should().Be(0);

        var failed = waiters.Add();
        waiters.FailAll(() => new ClosedException("closed"));
        await failed.Task.Invoking(t => t.OrHang()).Should().ThrowAsync<ClosedException>();
        waiters.IsEmpty.Should().BeTrue();
    }

    [Fact]
    public void IsolatedHandlers_RunEveryHandler_LoggingTheOnesThatThrow()
    {
        var ran = new List<string>();
        var logged = new List<string>();
        EventHandler<string>? handlers = null;
        handlers += (_, args) => ran.Add("first " + args);
        handlers += (_, _) => throw new InvalidOperationException("second failed");
        handlers += (_, args) => ran.Add("third " + args);

        IsolatedHandlers.Raise(handlers, this, "x", Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, "node", (_, name, failure) => logged.Add($"{name}: {failure.Message}"));
        IsolatedHandlers.Raise<string>(null, this, "y", Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, "node", (_, _, _) => logged.Add("never"));

        ran.Should().Equal("first x", "third x");
        logged.Should().Equal("node: second failed");
    }

    private static List<string> Names(IntrusiveList<Node, Node.Links> list)
    {
        var names = new List<string>();
        for (var node = list.First; node is not null; node = IntrusiveList<Node, Node.Links>.NextOf(node))
        {
            names.Add(node.Name);
        }

        return names;
    }

    private sealed class FreeListHead
    {
        public Node? Head;
    }

    private sealed class Node : IFreeListNode<Node>
    {
        public ListLinks<Node> ListLinks;
        private Node? _nextFree;

        public Node(string name) => Name = name;

        public string Name { get; }

        /// <summary>Runs once, when a push next links this node to the top it read: the moment another push can race it.</summary>
        public Action? WhenLinked { get; set; }

        public Node? NextFree
        {
            get => _nextFree;
            set
            {
                _nextFree = value;
                var linked = WhenLinked;
                WhenLinked = null;
                linked?.Invoke();
            }
        }

        public struct Links : ILinksOf<Node>
        {
            public readonly ref ListLinks<Node> Of(Node node) => ref node.ListLinks;
        }
    }

    /// <summary>A clock with a given timestamp frequency; only the frequency is read.</summary>
    private sealed class FrequencyClock(long frequency) : TimeProvider
    {
        public override long TimestampFrequency => frequency;
    }
}
