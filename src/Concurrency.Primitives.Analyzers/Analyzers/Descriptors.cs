using Microsoft.CodeAnalysis;

namespace Concurrency.Primitives.Analyzers;

/// <summary>The diagnostics, one per hand-rolled pattern that a primitive of the library replaces.</summary>
/// <remarks>Each help link points at the rule's section in the analyzers' README, which states its exact conditions.</remarks>
public static class Descriptors
{
    private const string Category = "Concurrency";
    private const string HelpBase = "https://github.com/concurrency-primitives/Concurrency.Primitives/blob/main/src/Concurrency.Primitives.Analyzers/README.md#";

    /// <summary>CP0001: a counter raised inside the work it counts (the WaitGroup.Add-inside-the-goroutine bug).</summary>
    public static readonly DiagnosticDescriptor CountRaisedInsideWork = new(
        "CP0001",
        "Count raised inside the work it counts",
        "'{0}' raises a count that other code waits on from inside the work that {1} starts; the wait can see zero before it runs: raise it before {1}, or use TaskTracker.Go",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A counter that a wait watches (an Interlocked counter tested against a constant, a CountdownEvent, a TaskTracker) must be raised before the work it counts starts; raised from inside that work, it can run after the count already reached zero and the wait returned.",
        helpLinkUri: HelpBase + "cp0001-count-raised-inside-the-work-it-counts");

    /// <summary>CP0002: a TaskCompletionSource completed under a lock or in a loop over waiters, without RunContinuationsAsynchronously.</summary>
    public static readonly DiagnosticDescriptor InlineContinuations = new(
        "CP0002",
        "TaskCompletionSource completed under a lock or in a loop over waiters runs its continuations inline",
        "This TaskCompletionSource is completed {0} but is created without TaskCreationOptions.RunContinuationsAsynchronously: the waiter's code runs inline on the completer's thread",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "Completing a TaskCompletionSource created without RunContinuationsAsynchronously runs the awaiting code synchronously inside the completing call: under the completer's lock, or before the next waiter of a loop is answered.",
        helpLinkUri: HelpBase + "cp0002-taskcompletionsource-without-runcontinuationsasynchronously");

    /// <summary>CP0003: a started/stopped flag read and later written without a lock or compare-and-swap.</summary>
    public static readonly DiagnosticDescriptor CheckThenActFlag = new(
        "CP0003",
        "Check-then-act started flag",
        "'{0}' checks '{1}' and sets it later {2}: two concurrent callers can both pass the check; use LifecycleGate, or a lock or Interlocked.CompareExchange around check and set",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A start or stop method that tests a bool/int flag and sets it afterwards lets concurrent starts and stops race: both see 'not started', or a stop sees 'not started yet' while a start is half done.",
        helpLinkUri: HelpBase + "cp0003-check-then-act-started-flag");

    /// <summary>CP0004: a resource disposed before the loop that uses it is cancelled and awaited.</summary>
    public static readonly DiagnosticDescriptor DisposeBeforeLoopStops = new(
        "CP0004",
        "Resource released before the loop that uses it stops",
        "'{0}' is released before '{1}' is cancelled and '{2}' awaited: the loop can still use it, and its error path runs against a closed resource; cancel, await the loop, then dispose",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A teardown must cancel the running loop, wait until it has fully returned (every finally ran), and only then release what the loop uses.",
        helpLinkUri: HelpBase + "cp0004-resource-released-before-the-loop-that-uses-it-stops");

    /// <summary>CP0005: a Batcher's dispatch submits to the same Batcher.</summary>
    public static readonly DiagnosticDescriptor SubmitFromOwnDispatch = new(
        "CP0005",
        "Submit to a Batcher from inside its own dispatch",
        "The dispatch of '{0}' submits to '{0}' itself: the Batcher refuses it at run time (a wait on the same batcher from its dispatch can deadlock the pool); dispatch the child items directly or through another batcher",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A dispatch that submits child items to its own batcher and waits for them holds a dispatch slot while waiting for a dispatch: with every slot held this way, nothing progresses. The Batcher rejects such a submit with an exception.",
        helpLinkUri: HelpBase + "cp0005-submit-to-a-batcher-from-inside-its-own-dispatch");

    /// <summary>CP0006: a catch around a batch dispatch that neither rethrows nor completes the batch's waiters.</summary>
    public static readonly DiagnosticDescriptor UnansweredBatchFault = new(
        "CP0006",
        "A caught batch fault answers nobody",
        "This catch swallows a fault of the dispatch of '{0}' without completing its TaskCompletionSources or rethrowing: every caller not yet answered waits forever; fail them here, or use Batcher",
        Category,
        DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "When a batch dispatch throws part-way, the items not yet answered must be failed; a catch that only logs leaves their callers parked for good.",
        helpLinkUri: HelpBase + "cp0006-a-caught-batch-fault-that-answers-nobody");
}
