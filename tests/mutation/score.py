#!/usr/bin/env python3
"""Summarises Stryker's JSON reports under artifacts/mutation/ per source folder.

Two scores per folder, timeouts counted as killed, ignored mutants (the mutate filter, Stryker's own filters, and the
equivalent mutants marked in the source with a `// Stryker disable once ... : reason` comment) and compile errors left out:
  all     every mutator (tests/stryker-config.json, mutation level Complete);
  polly   Polly's exclusions applied to the same run: no block or statement removals, nothing inside a logging call
          (the *Log.* source-generated methods), a Debug.Assert, a ConfigureAwait or an exception's constructor arguments.
Usage: tests/mutation/score.py [--survivors] [report.json ...]   (default: every artifacts/mutation/*/reports/mutation-report.json)
"""
import collections, glob, json, os, re, sys

DETECTED = {"Killed", "Timeout"}
UNDETECTED = {"Survived", "NoCoverage"}
POLLY_MUTATORS = {"Block removal mutation", "Statement mutation"}
POLLY_CALL = re.compile(r"\b\w+Log\.\w+\(|Debug\.Assert\(|new \w*Exception\(|\.ConfigureAwait\(")

def polly_excluded(m, lines):
    if m["mutatorName"] in POLLY_MUTATORS:
        return True
    start, end = m["location"]["start"], m["location"]["end"]
    text = "\n".join(lines[start["line"] - 1:end["line"]])
    line = lines[start["line"] - 1]
    # the mutated span lies inside a logging call, an assert or an exception's construction on its line
    for call in POLLY_CALL.finditer(line):
        if call.start() <= start["column"] - 1:
            return True
    return bool(POLLY_CALL.match(text.strip()))

def main(argv):
    show = "--survivors" in argv
    paths = [a for a in argv if not a.startswith("--")] or sorted(glob.glob("artifacts/mutation/*/reports/mutation-report.json"))
    rows = collections.OrderedDict()
    survivors = []
    seen = set()
    for path in paths:
        report = json.load(open(path))
        for file, data in report["files"].items():
            lines = data["source"].split("\n")
            relative = file.replace("\\", "/").split("src/Concurrency.Primitives/")[-1]
            folder = relative.split("/")[0] if "/" in relative else "."
            for m in data["mutants"]:
                if m["status"] not in DETECTED | UNDETECTED:
                    continue
                key = (file, m["id"])
                if key in seen:
                    continue
                seen.add(key)
                row = rows.setdefault(folder, collections.Counter())
                hit = m["status"] in DETECTED
                row["all_detected" if hit else "all_undetected"] += 1
                if not polly_excluded(m, lines):
                    row["polly_detected" if hit else "polly_undetected"] += 1
                if not hit:
                    line = m["location"]["start"]["line"]
                    survivors.append((relative, line, m["status"], m["mutatorName"], lines[line - 1].strip(), (m.get("replacement") or "").replace("\n", " ")))
    def score(d, u):
        return f"{100.0 * d / (d + u):6.2f} %" if d + u else "   n/a"
    print(f"{'folder':12} {'all: detected/total':>20} {'score':>9}   {'polly: detected/total':>22} {'score':>9}")
    for folder, row in rows.items():
        ad, au, pd, pu = row["all_detected"], row["all_undetected"], row["polly_detected"], row["polly_undetected"]
        print(f"{folder:12} {ad:>9}/{ad + au:<10} {score(ad, au)}   {pd:>11}/{pd + pu:<10} {score(pd, pu)}")
    if show:
        for s in sorted(survivors):
            print(f"{s[0]}:{s[1]} {s[2]} [{s[3]}] {s[4][:100]}  =>  {s[5][:80]}")

if __name__ == "__main__":
    main(sys.argv[1:])
