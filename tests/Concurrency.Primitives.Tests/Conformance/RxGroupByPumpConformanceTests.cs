using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Concurrency.Primitives.Tests.TestSupport;

namespace Concurrency.Primitives.Tests.Conformance;

/// <summary>
/// dotnet/reactive tests of the <c>GroupBy</c> and <c>GroupByUntil</c> operators (GroupByTest.cs and GroupByUntilTest.cs)
/// ported to <see cref="PeerEventPump{TPeer, TMessage}"/>.
/// </summary>
/// <remarks>
/// <para>
/// Mapping: a group's key is a peer; a new group (the inner observable handed to the outer observer) is Added; an OnNext
/// into a group is a message of that peer; a group's completion (GroupByUntil's duration ending, or the source
/// completing) is Removed. The source's OnCompleted is <c>CloseAsync</c> (it delivers what is queued, then a Removed for
/// every live peer in the order they were added), disposing the outer subscription is <c>DisposeAsync</c>, and OnError is
/// the consumer's fault (<see cref="PeerEventPumpFaultPolicy"/>). The operator itself (key selector, element selector,
/// the table of open groups, the duration) is <see cref="GroupingSource"/>, test code that routes each element through one
/// handle per open group: a handle is the sole sender of its connection's events, so finding a group is the producer's
/// business. The pump's own notion of "the same key" is <c>TPeer</c>'s equality, used by <c>Connect</c>. Every trace
/// below is upstream's hot observable between subscription (200) and completion (570): "  foo" at 220, " FoO " at 240,
/// ... "    fOo    " at 530, with the element selector reversing each string.
/// </para>
/// <para>
/// Ported (test → upstream): EachGroup_IsAdded_ThenItsElementsInOrder_ThenRemovedOnceWhenTheSourceCompletes →
/// GroupBy_WithKeyComparer, GroupBy_Outer_Complete, GroupBy_Inner_Complete_All (and GroupBy_Capacity_*);
/// AGroupWhoseDurationEnds_IsRemovedAtOnce_AndItsKeyIsAddedAgainAsANewConnection → GroupByUntil_Default,
/// GroupByUntil_WithKeyComparer, GroupByUntil_Inner_Complete_All (and GroupByUntil_Capacity_*);
/// ConnectingAnIdentityEqualToALiveOne_ReplacesIt_UnderThePeerTypesOwnEquality → the comparer of GroupBy_WithKeyComparer
/// and GroupByUntil_WithKeyComparer; AnIdentityWhoseHashThrows_FailsThatConnectOnly_AndTheOtherPeersGoOn →
/// GroupBy_Outer_ComparerGetHashCodeThrow, GroupBy_Outer_ComparerEqualsThrow (and their GroupByUntil twins);
/// AConsumerFaultUnderFaultPump_RemovesEveryAddedPeerInOrder_AndFaultsCompletion → GroupBy_Outer_Error,
/// GroupBy_Inner_Error, GroupByUntil_Outer_Error, GroupByUntil_Inner_Error;
/// AConsumerFaultUnderLogAndContinue_EndsNoGroup → the same tests, under the other policy;
/// DisposingThePump_RemovesTheLivePeers_AndRefusesEverythingAfter → GroupBy_Outer_Dispose, GroupByUntil_Outer_Dispose;
/// EndingOneGroup_LeavesTheOthersWhole → GroupBy_Inner_Independence, GroupByUntil_Inner_Independence;
/// ManyKeysFromConcurrentProducers_EachLifetimeIsAddedMessagesRemoved →
/// GroupBy_Inner_Multiple_Independence, GroupByUntil_Inner_Multiple_Independence (many open groups at once, each
/// independent), with the producers on threads of their own.
/// </para>
/// <para>
/// DIFFERENCE BY DESIGN: (1) the pump takes no <c>IEqualityComparer</c>: peers are compared with <c>TPeer</c>'s default
/// equality, so a comparer is a peer type whose Equals and GetHashCode compare that way. (2) Connecting an identity
/// equal to a live one does not join the live group: it is a reconnect, the old connection gets its Removed and the new
/// one a higher generation (invariant 9); joining a group is posting through its handle. (3) A throwing comparer fails
/// the one <c>Connect</c> that ran it, not the whole sequence: the pump and its other peers go on. (4) The fault path is
/// the consumer's, not the source's: under FaultPump every added peer gets a Removed (not an OnError), in the order
/// added, and the messages still queued are discarded to <c>messageDropped</c>; under LogAndContinue no group ends at
/// all. (5) An ended group's consumer still sees its Removed: upstream's disposed inner subscription sees nothing more,
/// while the pump promises exactly one Removed per added peer. (6) Elements after the end (upstream's 580 "error")
/// are refused by the pump: a post reports <see cref="PeerPostResult.Closed"/>, a connect throws.
/// </para>
/// <para>
/// Skipped: every *_ArgumentChecking (no operator to pass nulls to; the pump's own argument checks are in
/// Events/PeerEventPumpArgumentTests.cs); GroupBy_NullKeys_* and GroupByUntil_NullKeys_* (a null key is a group upstream;
/// <c>TPeer</c> is notnull and <c>Connect(null)</c> throws, tested in PeerEventPumpArgumentTests); *_Outer_KeyThrow,
/// *_Outer_EleThrow, *_Inner_KeyThrow, *_Inner_EleThrow and GroupByUntil_DurationSelector_Throws (selectors and
/// durations run in the producer's code before anything reaches the pump); *_Inner_Comparer_EqualsThrow and
/// *_Inner_Comparer_GetHashCodeThrow (an inner observer's view of the comparer's fault: the pump has no inner observers);
/// *_Inner_Complete and *_Inner_Dispose (an inner observer subscribing late or leaving early: the consumer sees every
/// event from Added on and cannot leave one peer); *_Outer_Independence (the outer subscription disposed while groups go
/// on: closing the pump ends every peer); *_Inner_Escape_Complete/Error/Dispose (subscribing to a group after the outer
/// sequence ended: no group object outlives its Removed).
/// </para>
/// </remarks>
public sealed class RxGroupByPumpConformanceTests
{
    /// <summary>Upstream's elements between subscription (200) and completion (570), in order.</summary>
    private static readonly string[] Trace =
    {
        "  foo", " FoO ", "baR  ", "foO ", " Baz   ", "  qux ", "   bar", " BAR  ", "FOO ", "baz  ", " bAZ ", "    fOo    ",
    };

    // Ports GroupBy_WithKeyComparer, GroupBy_Outer_Complete and GroupBy_Inner_Complete_All: keys x.Trim() under a
    // case-insensitive comparer, elements reversed. The outer sequence sees the keys foo, baR, Baz, qux at their first
    // element; each group sees its elements in order and completes when the source does. Here: one Added per key before
    // its messages, the global order of the trace, and at the close one Removed per peer, in the order added. An element
    // after the completion (upstream's 580 "error") reaches no one.
    [Fact]
    public async Task EachGroup_IsAdded_ThenItsElementsInOrder_ThenRemovedOnceWhenTheSourceCompletes()
    {
        var (consumer, pump, source) = StartGroupingByTrimmedKey();

        source.OnNextAll(Trace).Should().OnlyContain(result => result == PeerPostResult.Posted);
        await pump.CloseAsync().OrHang();

        consumer.Order.Should().Equal(
            "foo:added", "foo:oof  ", "foo: OoF ", "baR:added", "baR:  Rab", "foo: Oof", "Baz:added", "Baz:   zaB ",
            "qux:added", "qux: xuq  ", "baR:rab   ", "baR:  RAB ", "foo: OOF", "Baz:  zab", "Baz: ZAb ", "foo:    oOf    ",
            "foo:removed", "baR:removed", "Baz:removed", "qux:removed");
        consumer.HistoryOf("foo").Should().Equal("added", "oof  ", " OoF ", " Oof", " OOF", "    oOf    ", "removed");
        consumer.HistoryOf("baR").Should().Equal("added", "  Rab", "rab   ", "  RAB ", "removed");
        consumer.HistoryOf("Baz").Should().Equal("added", "   zaB ", "  zab", " ZAb ", "removed");
        consumer.HistoryOf("qux").Should().Equal("added", " xuq  ", "removed");
        consumer.Overlaps.Should().Be(0);

        source.Invoking(s => s.OnNext("error")).Should().Throw<ClosedException>("a new group after the completion");
        source.OnNext("foo").Should().Be(PeerPostResult.Closed, "an element of a group that completed with the source");
        consumer.Order.Should().HaveCount(20);
    }

    // Ports GroupByUntil_Default, GroupByUntil_WithKeyComparer and GroupByUntil_Inner_Complete_All: duration g.Skip(2), so
    // a group completes right after its third element, and its key, seen again, opens a new group (foo at 470). Here the
    // Removed follows the third message at once, and the key's next element connects it again: a second Added for foo,
    // on a handle of a higher generation, while the old handle stays disconnected.
    [Fact]
    public async Task AGroupWhoseDurationEnds_IsRemovedAtOnce_AndItsKeyIsAddedAgainAsANewConnection()
    {
        var consumer = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(consumer);
        var source = new GroupingSource(pump, key: x => x.Trim().ToLowerInvariant(), StringComparer.Ordinal, duration: 3);

        source.OnNextAll(Trace.Take(8)).Should().OnlyContain(result => result == PeerPostResult.Posted);
        var firstFoo = source.Opened.Single(handle => handle.Peer == "foo");
        source.OnNextAll(Trace.Skip(8)).Should().OnlyContain(result => result == PeerPostResult.Posted);
        await pump.CloseAsync().OrHang();

        consumer.Order.Should().Equal(
            "foo:added", "foo:oof  ", "foo: OoF ", "bar:added", "bar:  Rab", "foo: Oof", "foo:removed", "baz:added",
            "baz:   zaB ", "qux:added", "qux: xuq  ", "bar:rab   ", "bar:  RAB ", "bar:removed", "foo:added", "foo: OOF",
            "baz:  zab", "baz: ZAb ", "baz:removed", "foo:    oOf    ", "qux:removed", "foo:removed");
        consumer.Order.Where(e => e.EndsWith(":added", StringComparison.Ordinal)).Should().Equal(
            "foo:added", "bar:added", "baz:added", "qux:added", "foo:added");
        source.Opened.Select(handle => handle.Peer).Should().Equal("foo", "bar", "baz", "qux", "foo");
        var secondFoo = source.Opened[^1];
        secondFoo.Generation.Should().BeGreaterThan(firstFoo.Generation);
        firstFoo.State.Should().Be(PeerConnectionState.Disconnected);
        firstFoo.TryPost("stale", out var stale).Should().BeFalse();
        stale.Should().Be(PeerPostResult.Closed);
    }

    // Ports the comparer of GroupBy_WithKeyComparer / GroupByUntil_WithKeyComparer (OrdinalIgnoreCase) at the pump's own
    // level: "foo" and "FOO" are one key under that comparer and two under the default one. DIFFERENCE BY DESIGN: the
    // comparer is the peer type's equality, and an equal identity connecting is a reconnect that replaces the live one
    // (its Removed first) rather than a join.
    [Fact]
    public async Task ConnectingAnIdentityEqualToALiveOne_ReplacesIt_UnderThePeerTypesOwnEquality()
    {
        var caseInsensitive = await ConnectFooThenFoo(name => new CaseInsensitivePeer(name));
        var ordinal = await ConnectFooThenFoo(name => name);

        caseInsensitive.Order.Should().Equal(
            "foo:added", "foo:1", "foo:removed", "FOO:added", "FOO:2", "bar:added", "bar:3", "FOO:removed", "bar:removed");
        caseInsensitive.FirstState.Should().Be(PeerConnectionState.Disconnected);
        caseInsensitive.LatePost.Should().Be(PeerPostResult.Disconnected);
        caseInsensitive.SecondGeneration.Should().BeGreaterThan(caseInsensitive.FirstGeneration);

        ordinal.Order.Should().Equal(
            "foo:added", "foo:1", "FOO:added", "FOO:2", "bar:added", "bar:3", "foo:late", "foo:removed", "FOO:removed", "bar:removed");
        ordinal.FirstState.Should().Be(PeerConnectionState.Ready);
        ordinal.LatePost.Should().Be(PeerPostResult.Posted);
    }

    // Ports GroupBy_Outer_ComparerGetHashCodeThrow and GroupBy_Outer_ComparerEqualsThrow (and GroupByUntil's): the
    // comparer throws on a new key, and upstream the outer sequence ends with that exception. DIFFERENCE BY DESIGN: the
    // exception reaches the caller of the one Connect that compared, which changes nothing; the live peers and the pump go on.
    [Theory]
    [InlineData(CaseInsensitivePeer.Fault.GetHashCode)]
    [InlineData(CaseInsensitivePeer.Fault.Equals)]
    public async Task AnIdentityWhoseHashThrows_FailsThatConnectOnly_AndTheOtherPeersGoOn(CaseInsensitivePeer.Fault fault)
    {
        var consumer = new RecordingPeerHandler<CaseInsensitivePeer>();
        var pump = new PeerEventPump<CaseInsensitivePeer, string>(consumer);
        var foo = pump.Connect(new CaseInsensitivePeer("foo"));
        foo.MarkReady().Should().BeTrue();
        foo.TryPost("1").Should().BeTrue();

        // Equals runs only against a live key with the same hash: "FOO" meets "foo".
        var throwing = new CaseInsensitivePeer(fault == CaseInsensitivePeer.Fault.Equals ? "FOO" : "bar") { Throws = fault };
        pump.Invoking(p => p.Connect(throwing)).Should().Throw<Exception>().Which.Should().BeSameAs(throwing.Exception);

        foo.State.Should().Be(PeerConnectionState.Ready, "the failed connect replaced nothing");
        foo.TryPost("2").Should().BeTrue();
        var baz = pump.Connect(new CaseInsensitivePeer("baz"));
        baz.MarkReady().Should().BeTrue();
        baz.TryPost("3").Should().BeTrue();
        await pump.CloseAsync().OrHang();

        pump.Completion.Status.Should().Be(TaskStatus.RanToCompletion);
        consumer.Order.Should().Equal("foo:added", "foo:1", "foo:2", "baz:added", "baz:3", "foo:removed", "baz:removed");
    }

    // Ports GroupBy_Outer_Error and GroupBy_Inner_Error (and GroupByUntil's): the sequence fails, and the outer observer and
    // every open group end with that same exception. Here the consumer throws on Baz's second element (" zab", upstream's
    // 480) under FaultPump, with the whole trace already queued: every added peer gets its one Removed, in the order added,
    // the messages still queued go to messageDropped, Completion faults with the consumer's exception and a close throws it.
    [Fact]
    public async Task AConsumerFaultUnderFaultPump_RemovesEveryAddedPeerInOrder_AndFaultsCompletion()
    {
        var (consumer, pump, drops, source) = QueueTheTraceThenRelease(PeerEventPumpFaultPolicy.FaultPump);

        var fault = (await pump.Completion.Invoking(c => c.OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which;
        fault.Message.Should().Be("handler fault on   zab");
        (await pump.Invoking(p => p.CloseAsync().OrHang()).Should().ThrowAsync<InvalidOperationException>()).Which.Should().BeSameAs(fault);
        consumer.Order.Should().Equal(
            "foo:added", "foo:oof  ", "foo: OoF ", "baR:added", "baR:  Rab", "foo: Oof", "Baz:added", "Baz:   zaB ",
            "qux:added", "qux: xuq  ", "baR:rab   ", "baR:  RAB ", "foo: OOF", "Baz:  zab",
            "foo:removed", "baR:removed", "Baz:removed", "qux:removed");
        drops.Seen.Should().Equal("Baz: ZAb ", "foo:    oOf    ");
        source.OnNext("foo").Should().Be(PeerPostResult.Closed);
        source.Invoking(s => s.OnNext("error")).Should().Throw<ClosedException>();
    }

    // The same fault under LogAndContinue. DIFFERENCE BY DESIGN: a consumer's throw ends no group: it is logged, the loop
    // goes on, every message is delivered, and the source's completion (the close) ends the groups as usual.
    [Fact]
    public async Task AConsumerFaultUnderLogAndContinue_EndsNoGroup()
    {
        var (consumer, pump, drops, _) = QueueTheTraceThenRelease(PeerEventPumpFaultPolicy.LogAndContinue);
        await pump.CloseAsync().OrHang();

        pump.Completion.Status.Should().Be(TaskStatus.RanToCompletion);
        consumer.HistoryOf("Baz").Should().Equal("added", "   zaB ", "  zab", " ZAb ", "removed");
        consumer.HistoryOf("foo").Should().Equal("added", "oof  ", " OoF ", " Oof", " OOF", "    oOf    ", "removed");
        consumer.Order.Should().HaveCount(20);
        drops.Seen.Should().BeEmpty();
    }

    // Ports GroupBy_Outer_Dispose and GroupByUntil_Outer_Dispose: the outer subscription is disposed at 355, after five
    // elements, and nothing more is observed. Here the pump is disposed: the three peers added so far are removed in the
    // order added, a post on their handles reports Closed, and a new key's connect throws ObjectDisposedException.
    [Fact]
    public async Task DisposingThePump_RemovesTheLivePeers_AndRefusesEverythingAfter()
    {
        var (consumer, pump, source) = StartGroupingByTrimmedKey();
        source.OnNextAll(Trace.Take(5)).Should().OnlyContain(result => result == PeerPostResult.Posted);

        await pump.DisposeAsync();

        pump.Completion.Status.Should().Be(TaskStatus.RanToCompletion);
        source.Invoking(s => s.OnNext(Trace[5])).Should().Throw<ObjectDisposedException>("qux would be a new group");
        source.OnNext(Trace[6]).Should().Be(PeerPostResult.Closed);
        consumer.Order.Should().Equal(
            "foo:added", "foo:oof  ", "foo: OoF ", "baR:added", "baR:  Rab", "foo: Oof", "Baz:added", "Baz:   zaB ",
            "foo:removed", "baR:removed", "Baz:removed");
    }

    // Ports GroupBy_Inner_Independence and GroupByUntil_Inner_Independence: foo's inner subscription is disposed at 320,
    // after its third element; the other groups see all of theirs. Here foo's handle disconnects there: foo's later
    // elements report Disconnected and reach no one (its key keeps its ended group, as upstream), foo gets its one
    // Removed at once (DIFFERENCE BY DESIGN: upstream's disposed observer sees no completion), and the others are whole.
    [Fact]
    public async Task EndingOneGroup_LeavesTheOthersWhole()
    {
        var (consumer, pump, source) = StartGroupingByTrimmedKey();

        source.OnNextAll(Trace.Take(4)).Should().OnlyContain(result => result == PeerPostResult.Posted);
        source.End("foo").Should().BeTrue();
        var rest = source.OnNextAll(Trace.Skip(4));
        await pump.CloseAsync().OrHang();

        rest.Should().Equal(
            PeerPostResult.Posted, PeerPostResult.Posted, PeerPostResult.Posted, PeerPostResult.Posted,
            PeerPostResult.Disconnected, PeerPostResult.Posted, PeerPostResult.Posted, PeerPostResult.Disconnected);
        consumer.HistoryOf("foo").Should().Equal("added", "oof  ", " OoF ", " Oof", "removed");
        consumer.HistoryOf("baR").Should().Equal("added", "  Rab", "rab   ", "  RAB ", "removed");
        consumer.HistoryOf("Baz").Should().Equal("added", "   zaB ", "  zab", " ZAb ", "removed");
        consumer.HistoryOf("qux").Should().Equal("added", " xuq  ", "removed");
        consumer.Order.ToList().IndexOf("foo:removed").Should().Be(6, "Removed follows foo's last message at once");
    }

    // Ports GroupBy_Inner_Multiple_Independence and GroupByUntil_Inner_Multiple_Independence: many groups open at once,
    // each seeing exactly its own elements. Here four producers on threads of their own each run three lifetimes of their
    // key (GroupByUntil with a duration of 50 elements); each key's history is three blocks of Added, its 50 messages in
    // order, Removed, whatever the interleaving with the other keys.
    [Fact]
    public async Task ManyKeysFromConcurrentProducers_EachLifetimeIsAddedMessagesRemoved()
    {
        const int Keys = 4;
        const int Lifetimes = 3;
        const int Elements = 50;
        var consumer = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(consumer);

        var producers = Enumerable.Range(0, Keys).Select(k => Task.Factory.StartNew(
            () =>
            {
                for (var lifetime = 0; lifetime < Lifetimes; lifetime++)
                {
                    using var handle = pump.Connect($"k{k}");
                    handle.MarkReady().Should().BeTrue();
                    for (var i = 0; i < Elements; i++)
                    {
                        handle.TryPost($"{lifetime}.{i}").Should().BeTrue();
                    }
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default)).ToArray();
        await Task.WhenAll(producers).OrHang();
        await pump.CloseAsync().OrHang();

        var expected = Enumerable.Range(0, Lifetimes)
            .SelectMany(lifetime => Enumerable.Range(0, Elements).Select(i => $"{lifetime}.{i}").Prepend("added").Append("removed"))
            .ToList();
        for (var k = 0; k < Keys; k++)
        {
            consumer.HistoryOf($"k{k}").Should().Equal(expected);
        }

        consumer.Overlaps.Should().Be(0);
    }

    /// <summary>A pump with a recording consumer, fed by upstream's GroupBy(x => x.Trim(), Reverse, an ordinal case-insensitive comparer).</summary>
    private static (RecordingPeerHandler<string> Consumer, PeerEventPump<string, string> Pump, GroupingSource Source) StartGroupingByTrimmedKey()
    {
        var consumer = new RecordingPeerHandler<string>();
        var pump = new PeerEventPump<string, string>(consumer);
        return (consumer, pump, GroupingSource.ByTrimmedKey(pump));
    }

    /// <summary>
    /// A pump with a consumer that throws on "  zab", whose loop is held on its first event while the whole trace is
    /// grouped and queued (every post accepted), then released.
    /// </summary>
    private static (RecordingPeerHandler<string> Consumer, PeerEventPump<string, string> Pump, DropRecorder Drops, GroupingSource Source) QueueTheTraceThenRelease(
        PeerEventPumpFaultPolicy policy)
    {
        var hold = Bounded.NewGate();
        var consumer = new RecordingPeerHandler<string> { Hold = hold.Task };
        consumer.ThrowOn.Add("  zab");
        var drops = new DropRecorder();
        var pump = new PeerEventPump<string, string>(consumer, new PeerEventPumpOptions { FaultPolicy = policy }, drops.Record);
        var source = GroupingSource.ByTrimmedKey(pump);
        source.OnNextAll(Trace).Should().OnlyContain(result => result == PeerPostResult.Posted);
        hold.SetResult();
        return (consumer, pump, drops, source);
    }

    /// <summary>
    /// Connects foo, then an identity spelled FOO, then bar, posting through each; then posts "late" on foo's handle and
    /// closes. Under a case-insensitive peer type FOO replaces foo; under strings both stay live.
    /// </summary>
    private static async Task<ReconnectOutcome> ConnectFooThenFoo<TPeer>(Func<string, TPeer> identity)
        where TPeer : notnull
    {
        var consumer = new RecordingPeerHandler<TPeer>();
        var pump = new PeerEventPump<TPeer, string>(consumer);
        var first = pump.Connect(identity("foo"));
        first.MarkReady().Should().BeTrue();
        first.TryPost("1").Should().BeTrue();
        var second = pump.Connect(identity("FOO"));
        second.MarkReady().Should().BeTrue();
        second.TryPost("2").Should().BeTrue();
        var bar = pump.Connect(identity("bar"));
        bar.MarkReady().Should().BeTrue();
        bar.TryPost("3").Should().BeTrue();
        first.TryPost("late", out var late);
        var firstState = first.State;
        await pump.CloseAsync().OrHang();
        return new ReconnectOutcome(consumer.Order, firstState, late, first.Generation, second.Generation);
    }

    private sealed record ReconnectOutcome(
        IReadOnlyList<string> Order, PeerConnectionState FirstState, PeerPostResult LatePost, long FirstGeneration, long SecondGeneration);

    /// <summary>
    /// The GroupBy / GroupByUntil operator in front of the pump: a key selector, upstream's element selector (reverse),
    /// a table of open groups under a comparer, and an optional duration (a group ends after that many elements, as
    /// <c>g.Skip(duration - 1)</c>). A new key connects a peer and marks it ready; an element is a post on its group's handle.
    /// </summary>
    private sealed class GroupingSource
    {
        private readonly PeerEventPump<string, string> _pump;
        private readonly Func<string, string> _key;
        private readonly int? _duration;
        private readonly Dictionary<string, (PeerHandle<string, string> Handle, int Count)> _open;

        public GroupingSource(PeerEventPump<string, string> pump, Func<string, string> key, IEqualityComparer<string> comparer, int? duration = null)
        {
            _pump = pump;
            _key = key;
            _duration = duration;
            _open = new Dictionary<string, (PeerHandle<string, string>, int)>(comparer);
        }

        /// <summary>Upstream's key selector x.Trim() under its GroupByComparer (ordinal, case-insensitive); no duration.</summary>
        public static GroupingSource ByTrimmedKey(PeerEventPump<string, string> pump) => new(pump, key: x => x.Trim(), StringComparer.OrdinalIgnoreCase);

        /// <summary>Every handle connected, in the order their groups opened.</summary>
        public List<PeerHandle<string, string>> Opened { get; } = new();

        public PeerPostResult OnNext(string element)
        {
            var key = _key(element);
            if (!_open.TryGetValue(key, out var group))
            {
                var handle = _pump.Connect(key);
                handle.MarkReady().Should().BeTrue();
                Opened.Add(handle);
                group = (handle, 0);
            }

            group.Handle.TryPost(Reverse(element), out var result);
            group.Count++;
            if (group.Count == _duration)
            {
                group.Handle.Disconnect().Should().BeTrue();
                _open.Remove(key);
            }
            else
            {
                _open[key] = group;
            }

            return result;
        }

        public List<PeerPostResult> OnNextAll(IEnumerable<string> elements) => elements.Select(OnNext).ToList();

        /// <summary>Ends a group's connection while its key stays in the table (the inner subscription disposed).</summary>
        public bool End(string key) => _open[key].Handle.Disconnect();

        private static string Reverse(string s)
        {
            var chars = s.ToCharArray();
            Array.Reverse(chars);
            return new string(chars);
        }
    }

    /// <summary>A peer identity compared case-insensitively (upstream's GroupByComparer); it can be set to throw from Equals or GetHashCode.</summary>
    public sealed class CaseInsensitivePeer : IEquatable<CaseInsensitivePeer>
    {
        public enum Fault
        {
            None,
            Equals,
            GetHashCode,
        }

        public CaseInsensitivePeer(string name) => Name = name;

        public string Name { get; }

        public Fault Throws { get; init; }

        public Exception Exception { get; } = new InvalidOperationException("comparer fault");

        // A dictionary may call either side's Equals: the throwing identity throws from both.
        public bool Equals(CaseInsensitivePeer? other) =>
            Throws == Fault.Equals ? throw Exception
            : other?.Throws == Fault.Equals ? throw other.Exception
            : other is not null && string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);

        public override bool Equals(object? obj) => Equals(obj as CaseInsensitivePeer);

        public override int GetHashCode() =>
            Throws == Fault.GetHashCode ? throw Exception : StringComparer.OrdinalIgnoreCase.GetHashCode(Name);

        public override string ToString() => Name;
    }
}
