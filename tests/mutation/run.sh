#!/usr/bin/env bash
# Mutation testing of src/Concurrency.Primitives with the unit tests (Stryker.NET, a local tool).
#   tests/mutation/run.sh                  every folder, every mutator (tests/stryker-config.json)
#   tests/mutation/run.sh Tracking Events  only these folders
#   tests/mutation/run.sh --since          only the files changed since main
# STRYKER_CONCURRENCY=n sets the test processes (default: the number of cores).
# It mutates the committed code (HEAD), checked out in its own worktree outside the repository (MUTATION_WORKTREE,
# by default $TMPDIR/concurrency-primitives-mutation): Stryker writes mutated assemblies into the test project's
# output, so it must not share it with your builds; and a second copy of the projects inside the repository would
# make BenchmarkDotNet's project lookup ambiguous.
# Reports: artifacts/mutation/<folder>/reports/mutation-report.{html,json,md}; summary: tests/mutation/score.py.
# Then tests/mutation/coyote.py <folder> runs the Coyote scenarios against the mutants the unit tests left alive.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
dotnet tool restore > /dev/null
concurrency="${STRYKER_CONCURRENCY:-$(nproc)}"
worktree="${MUTATION_WORKTREE:-${TMPDIR:-/tmp}/concurrency-primitives-mutation}"
if [[ -d "$worktree" ]]; then
  git -C "$worktree" checkout --quiet --detach "$(git rev-parse HEAD)"
else
  git worktree add --quiet --detach "$worktree" HEAD
fi
echo "mutating $(git rev-parse --short HEAD)"
cd "$worktree/tests/Concurrency.Primitives.Tests"
if [[ "${1:-}" == "--since" ]]; then
  exec dotnet dotnet-stryker --config-file ../stryker-config.json --concurrency "$concurrency" \
    --since:main -O "$root/artifacts/mutation/since"
fi
folders=("$@")
if [[ ${#folders[@]} -eq 0 ]]; then folders=(Tracking Lifecycle Batching Events Internal Shared); fi
for folder in "${folders[@]}"; do
  echo "== $folder"
  # Keeps the library with every mutant of the run compiled in, for tests/mutation/coyote.py (the Coyote tests' pass):
  # Stryker writes it into the test project's output for the run and puts the original back at the end.
  mkdir -p "$root/artifacts/mutation/$folder"
  rm -f "$root/artifacts/mutation/$folder/Concurrency.Primitives.mutated.dll"
  mutated="bin/Debug/net10.0/Concurrency.Primitives.dll"
  started="$(mktemp)"
  (
    while sleep 5; do
      if [[ "$mutated" -nt "$started" ]] && grep -qa MutantControl "$mutated" 2>/dev/null; then
        sleep 5 # written once, before the first test runs
        cp "$mutated" "$root/artifacts/mutation/$folder/Concurrency.Primitives.mutated.dll"
        break
      fi
    done
  ) &
  keeper=$!
  dotnet dotnet-stryker --config-file ../stryker-config.json --concurrency "$concurrency" \
    --mutate "**/$folder/*.cs" -O "$root/artifacts/mutation/$folder"
  kill "$keeper" 2>/dev/null || true
  rm -f "$started"
done
