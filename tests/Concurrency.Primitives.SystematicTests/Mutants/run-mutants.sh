#!/usr/bin/env bash
# Applies each mutant of the batcher's ring, coalescing, abandonment, item-reuse, sweep and arrival-epoch code, and of the group's stop after a
# fault, in turn, runs the Coyote scenario that must catch it, and reverts it.
# Prints one line per mutant; exits non-zero if a mutant survives (its scenario found no bug) or src/ was not clean.
# Usage, from the repository root: tests/Concurrency.Primitives.SystematicTests/Mutants/run-mutants.sh
# Not here: keeping an abandoned batch's token source for the next batch. Its window (between the count that finds the
# last caller gone and that caller's call to CancellationTokenSource.Cancel) holds no step Coyote can interleave (the
# BCL is not rewritten), so no schedule shows it; the loop's close of the count word decides it (Batching/README.md).
# Nor writing a kept item's state word before its reset (a submit could reuse it in place while the reset runs): the reset
# is plain writes, with no step between them Coyote can interleave; BatcherRingCellReuseTests and the item's code order
# guard it (Batching/README.md, "How it works").
# Nor a room waiter that keeps its last use's ring index while it waits (no MarkParked): its deadline would then say
# "dispatched" of an item never admitted, the safe side, which no scenario's invariant forbids; BatcherTimeoutReportTests
# ACallerWaitingForRoom_GivenARecycledItem_... fails without it (5 of 5 runs).
# Nor the arrival epochs' lateness (a sweep armed without the epoch period, so that an epoch lasts until a deadline):
# the scheduler may hold a loop between its cut and its dispatch phase for any number of clock steps, so a Coyote bound
# on lateness would flag schedules, not defects; BatcherArrivalEpochTests fails without the period (two of its tests).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
declare -A scenario=(
  [1-loop-leaves-without-looking-again]=Ring_ASubmitRacingALoopThatLeaves_IsCutByOneOfThem
  [2-cut-keeps-cancelled-items]=Ring_ACancellationRacingTheCut_LeavesTheItemOutIfItCameFirst
  [3-shutdown-leaves-the-claim-word-open]=Ring_SubmitsRacingShutdown_AreEachRefusedOrDrainedBeforeCompletion
  [4-sweep-touches-a-running-batch-without-taking-it]=Ring_ADispatchTimeoutRacingTheDispatchsAnswers_AnswersEachCallerOnce
  [5-cut-misses-callers-gone-before-the-stamp]=Abandonment_ACallerGivingUpWhileItsBatchIsCut_IsCountedAndCancelsTheDispatch
  [6-slot-answer-skips-followers]=Coalescing_CallersOfOneSlotRacingCancellationAndTheAnswer_AreEachCompletedOnceWithTheSlotsAnswer
  [7-dispatch-reads-a-reused-item]=Reuse_CallersResubmittingWhileTheirBatchRuns_GetTheirOwnAnswersAndTheDispatchItsOwnValues
  [8-await-registers-after-the-claim]=Reuse_CallersResubmittingWhileTheirBatchRuns_GetTheirOwnAnswersAndTheDispatchItsOwnValues
  [11-core-search-ends-after-one-pass]=Loops_AStartWhosePassFindsEveryCoreTaken_LooksAgainUntilOneIsFree
  [12-sweep-walk-ends-at-an-item-answered-meanwhile]=Sweep_AQueuedCallerCancellingAsTheWalkLooksAtIt_DoesNotEndTheWalk
  [13-sweep-forgets-a-batch-being-cut]=Sweep_FiringWhileABatchIsCut_TimesOutThatBatchsDispatch_WhenOnlyDispatchesAreBounded
  [14-cell-reuse-takes-a-pooled-item]=Reuse_TwoCallersLappingASmallRing_ReuseItemsInTheirCellsWithoutSharingOne
  [15-sweep-reads-the-cut-before-its-claim]=Timeouts_ACallersDeadlineRacingTheCut_SaysNeverDispatchedOnlyOfAnItemNoDispatchReceived
  [16-own-deadline-reads-the-cut-before-its-claim]=Timeouts_DeadlinesFiringAnyTimeAsTheirItemsAreCut_SayNeverDispatchedOnlyOfAnItemNoDispatchReceived
  [17-epoch-bound-from-its-start]=Timeouts_SubmitsRacingEpochAdvances_ReleaseEveryCallerNoEarlierThanItsBound
  [18-current-epoch-read-as-ended]=Timeouts_SubmitsRacingEpochAdvances_ReleaseEveryCallerNoEarlierThanItsBound
  [19-epoch-ended-before-its-end-is-written]=Timeouts_CutsRacingEpochAdvances_BoundEveryBatchNoEarlierThanItsLastCallersBound
  [9-late-fault-event-resumes-a-failed-stop]=LifecycleGroup_ALateFaultEvent_DoesNotResumeAStopThatFailed
  [10-any-fault-event-stops-the-group]=LifecycleGroup_ALateStartFailedEvent_StopsNothing_EvenWhenTheGroupHasFaultedWithTheSameException
)
# Mutant 5's catch rests on the order in which CancellationTokenSource.CancelAsync's callbacks (BCL tasks, outside
# Coyote's control) reach the cut: on the fixed seed the same mutant was caught at schedule 248, at 643, and not within
# 1,000 (stop 54). Its scenario runs here from a random seed for up to 20,000 schedules; the run stops at the first bug.
declare -A environment=(
  [5-cut-misses-callers-gone-before-the-stamp]="CONCURRENCY_PRIMITIVES_SOAK=1 CONCURRENCY_PRIMITIVES_COYOTE_ITERATIONS=20000"
)
git diff --quiet -- src || { echo "src/ has uncommitted changes; commit or stash them first"; exit 2; }
survivors=0
for patch in "$here"/*.patch; do
  name="$(basename "$patch" .patch)"
  git apply "$patch" || { echo "$name: does not apply"; survivors=$((survivors + 1)); continue; }
  if dotnet build tests/Concurrency.Primitives.SystematicTests -c Release -p:TreatWarningsAsErrors=false >/dev/null 2>&1; then
    output="$(env ${environment[$name]:-} dotnet test tests/Concurrency.Primitives.SystematicTests -c Release --no-build --filter "FullyQualifiedName~${scenario[$name]}" --logger 'console;verbosity=detailed' 2>&1)"
    found="$(grep -o '[0-9]* bug(s) found' <<<"$output" | tail -n 1)"
    first="$(grep -m 1 -o 'bug: .*' <<<"$output" | cut -c 1-160)"
    if grep -q '[1-9][0-9]* bug(s) found' <<<"$output"; then
      echo "$name: caught by ${scenario[$name]} ($found; $first)"
    else
      echo "$name: SURVIVED ${scenario[$name]}"
      survivors=$((survivors + 1))
    fi
  else
    echo "$name: does not build"
    survivors=$((survivors + 1))
  fi
  git apply -R "$patch"
done
dotnet build tests/Concurrency.Primitives.SystematicTests -c Release >/dev/null 2>&1
echo "mutants: $survivors survived"
exit $((survivors > 0))
