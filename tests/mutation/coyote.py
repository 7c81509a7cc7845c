#!/usr/bin/env python3
"""Runs the Coyote (systematic) tests against the mutants a Stryker run left alive.

Stryker runs only the unit tests: the Coyote project is rewritten in place after its build, so Stryker cannot make it a
test project. Many of the mutants the unit tests miss change only what happens in a race, which the Coyote scenarios
explore. This pass gives them that look, without a build per mutant: Stryker compiles every mutant of a run into one
library, switched on by id at run time (its MutantControl reads the id from the variable STRYKER_MUTANT_ID_CONTROL_VAR
names). tests/mutation/run.sh keeps that library (artifacts/mutation/<folder>/Concurrency.Primitives.mutated.dll);
here it replaces the library in a copy of the Coyote tests' build output, is rewritten by the coyote tool like the real
one, and every surviving mutant that is not listed as equivalent (tests/mutation/equivalents.tsv) is switched on in
turn while the folder's Coyote scenarios run (the hand-rolled baselines' tests are left out: they must find their own
bug whatever the library does).

A scenario that fails with the mutant on kills it. A run that does not finish within the time limit counts as a
timeout (killed, as Stryker counts a hang); one that leaves no results (the test host crashed) is reported as an error
and not counted. Before the mutants, the same copy runs with no mutant on and must pass.

Writes artifacts/mutation/<folder>/coyote.tsv (one row per mutant: id, file:line, mutator, outcome, the failing tests)
and artifacts/mutation/<folder>/reports/mutation-report.coyote.json: Stryker's report with the mutants killed here
marked Killed, so that tests/mutation/score.py gives the score of the unit tests and the Coyote tests together.

Usage: tests/mutation/coyote.py FOLDER [--iterations N] [--polly] [--volatiles] [--priorities N] [--limit SECONDS] [--only ID,ID]
  --iterations N   schedules per scenario and mutant (default 100; CI runs 1,000 per scenario)
  --polly          only the mutants in Polly's view (see score.py)
  --volatiles      every scenario also interleaves at each volatile read and write (CI does so only where a scenario
                   asks): a finer look at windows between two volatile accesses, with more steps per schedule
  --priorities N   every scenario explores with Coyote's prioritization strategy, at most N priority changes per schedule
                   (random schedules rarely hold one task back over a long run of another's steps; a priority change does)
"""
import argparse, json, os, re, shutil, subprocess, sys, time, xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import score  # noqa: E402  (keys, equivalents and Polly's exclusions, shared)

PROJECT = os.path.join(ROOT, "tests", "Concurrency.Primitives.SystematicTests")
TRX_NS = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"
FILTERS = {
    "Tracking": "FullyQualifiedName~.Tracking.",
    "Lifecycle": "FullyQualifiedName~.Lifecycle.",
    "Batching": "FullyQualifiedName~.Batching.",
    "Events": "FullyQualifiedName~.Events.",
}


def run_tests(workdir, filter_, env_extra, limit, results):
    """Runs the copied test assembly; returns (outcome, failed test names)."""
    trx = os.path.join(results, "run.trx")
    if os.path.exists(trx):
        os.remove(trx)
    env = dict(os.environ, **env_extra)
    command = ["dotnet", "test", os.path.join(workdir, "Concurrency.Primitives.SystematicTests.dll"),
               "--filter", filter_, "--logger", "trx;LogFileName=run.trx", "--results-directory", results]
    try:
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=limit)
    except subprocess.TimeoutExpired:
        subprocess.run(["pkill", "-f", "testhost.*" + re.escape(workdir)], check=False)
        return "Timeout", []
    if not os.path.exists(trx):
        return "Error", []
    failed, passed = [], 0
    for result in ET.parse(trx).getroot().iter(TRX_NS + "UnitTestResult"):
        if result.get("outcome") == "Passed":
            passed += 1
        else:
            failed.append(result.get("testName").split(".")[-1].split("(")[0])
    if passed + len(failed) == 0:
        return "Error", []
    return ("Killed" if failed else "Survived"), failed


def coyote_tool():
    """The coyote tool the Coyote project's build uses: the version Directory.Packages.props pins, from the NuGet cache."""
    props = open(os.path.join(ROOT, "Directory.Packages.props"), encoding="utf-8").read()
    version = re.search(r'Include="Microsoft\.Coyote\.Tool"\s+Version="([^"]+)"', props).group(1)
    packages = os.environ.get("NUGET_PACKAGES") or os.path.join(os.path.expanduser("~"), ".nuget", "packages")
    return os.path.join(packages, "microsoft.coyote.tool", version, "tools", "net8.0", "coyote.dll")


def prepare(folder, mutated):
    """Builds the Coyote tests, copies their output and puts the mutated library, rewritten, in place of the real one."""
    subprocess.run(["dotnet", "build", PROJECT, "-c", "Debug", "-v", "q", "-nologo"], check=True, stdout=subprocess.DEVNULL)
    built = os.path.join(PROJECT, "bin", "Debug", "net10.0")
    workdir = os.path.join(ROOT, "artifacts", "mutation", folder, "coyote-bin")
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(built, workdir)
    shutil.copyfile(mutated, os.path.join(workdir, "Concurrency.Primitives.dll"))
    pdb = os.path.join(workdir, "Concurrency.Primitives.pdb")
    if os.path.exists(pdb):
        os.remove(pdb)  # the real library's symbols: they do not match the mutated one
    with open(os.path.join(workdir, "rewrite.library.json"), "w") as f:
        json.dump({"AssembliesPath": ".", "Assemblies": ["Concurrency.Primitives.dll"]}, f)
    tool = coyote_tool()
    subprocess.run(["dotnet", tool, "rewrite", os.path.join(workdir, "rewrite.library.json")], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, DOTNET_ROLL_FORWARD="Major", COYOTE_CLI_TELEMETRY_OPTOUT="1"))
    return workdir


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--polly", action="store_true")
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--only", default="")
    parser.add_argument("--volatiles", action="store_true")
    parser.add_argument("--priorities", type=int, default=0)
    args = parser.parse_args()
    base = os.path.join(ROOT, "artifacts", "mutation", args.folder)
    report_path = os.path.join(base, "reports", "mutation-report.json")
    mutated = os.path.join(base, "Concurrency.Primitives.mutated.dll")
    for path in (report_path, mutated):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run tests/mutation/run.sh {args.folder} first")
    report = json.load(open(report_path))
    equivalents = score.load_equivalents()
    chosen = []
    for file, data in report["files"].items():
        lines = data["source"].split("\n")
        relative = file.replace("\\", "/").split("src/Concurrency.Primitives/")[-1]
        keys = score.keys_of(relative, data["mutants"], lines)
        for m in data["mutants"]:
            if m["status"] not in score.UNDETECTED or keys[m["id"]] in equivalents:
                continue
            if args.polly and score.polly_excluded(m, lines):
                continue
            if args.only and m["id"] not in args.only.split(","):
                continue
            chosen.append((relative, m))
    chosen.sort(key=lambda x: (x[0], x[1]["location"]["start"]["line"], int(x[1]["id"])))
    print(f"{len(chosen)} surviving mutants, not listed as equivalent, in {args.folder}/")

    workdir = prepare(args.folder, mutated)
    results = os.path.join(base, "coyote-results")
    os.makedirs(results, exist_ok=True)
    filter_ = FILTERS.get(args.folder, "FullyQualifiedName~SystematicTests") + "&FullyQualifiedName!~HandRolled"
    common = {"STRYKER_MUTANT_ID_CONTROL_VAR": "CONCURRENCY_PRIMITIVES_MUTANT",
              "CONCURRENCY_PRIMITIVES_COYOTE_ITERATIONS": str(args.iterations)}
    if args.volatiles:
        common["CONCURRENCY_PRIMITIVES_COYOTE_VOLATILES"] = "1"
    if args.priorities:
        common["CONCURRENCY_PRIMITIVES_COYOTE_PRIORITY_CHANGES"] = str(args.priorities)
    started = time.time()
    outcome, failed = run_tests(workdir, filter_, dict(common, CONCURRENCY_PRIMITIVES_MUTANT="-1"), args.limit, results)
    if outcome != "Survived":
        sys.exit(f"with no mutant on, the Coyote tests did not pass ({outcome}: {', '.join(failed)}); nothing measured")
    print(f"no mutant: the scenarios pass ({time.time() - started:.0f} s)")

    rows, killed_ids = [], set()
    for n, (relative, m) in enumerate(chosen, 1):
        t0 = time.time()
        outcome, failed = run_tests(workdir, filter_, dict(common, CONCURRENCY_PRIMITIVES_MUTANT=m["id"]), args.limit, results)
        line = m["location"]["start"]["line"]
        print(f"[{n}/{len(chosen)}] {relative}:{line} #{m['id']} [{m['mutatorName']}] {outcome} {','.join(failed)} ({time.time() - t0:.0f} s)", flush=True)
        rows.append((m["id"], f"{relative}:{line}", m["mutatorName"], (m.get("replacement") or "").replace("\n", " ")[:80], outcome, ",".join(failed)))
        if outcome in ("Killed", "Timeout"):
            killed_ids.add(m["id"])
    with open(os.path.join(base, "coyote.tsv"), "w") as f:
        f.write("id\tlocation\tmutator\treplacement\toutcome\tfailing tests\n")
        for row in rows:
            f.write("\t".join(row) + "\n")
    for data in report["files"].values():
        for m in data["mutants"]:
            if m["id"] in killed_ids:
                m["status"] = "Killed"
                m["statusReason"] = "killed by the Coyote tests (tests/mutation/coyote.py)"
    json.dump(report, open(os.path.join(base, "reports", "mutation-report.coyote.json"), "w"))
    counts = {}
    for row in rows:
        counts[row[4]] = counts.get(row[4], 0) + 1
    print(f"{len(rows)} mutants in {(time.time() - started) / 60:.1f} min, {args.iterations} schedules per scenario: "
          + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())))
    print(f"score with the Coyote tests: tests/mutation/score.py {os.path.relpath(os.path.join(base, 'reports', 'mutation-report.coyote.json'), ROOT)}")


if __name__ == "__main__":
    main()
