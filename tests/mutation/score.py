#!/usr/bin/env python3
"""Summarises Stryker's JSON reports under artifacts/mutation/ per source folder.

Two scores per folder, timeouts counted as killed, ignored mutants (the mutate filter, Stryker's own filters) and
compile errors left out:
  all     every mutator (tests/stryker-config.json, mutation level Complete);
  polly   Polly's exclusions applied to the same run: no block or statement removals, nothing inside a logging call
          (the *Log.* source-generated methods), a Debug.Assert, a ConfigureAwait or an exception's constructor arguments.
Each is given twice: as Stryker counted it, and with the equivalent mutants of tests/mutation/equivalents.tsv left out
(each justified there and in tests/MUTATION.md). An entry names its mutant by file, mutator, the two source lines before it,
the mutated line and the replacement, and its ordinal among the file's mutants alike in all of these (not by line
number, so it survives edits elsewhere in the file; tests/mutation/equivalents.py writes the rows). The script warns
about an entry that matches a mutant Stryker killed (then it was not equivalent, or the killing test is flaky: a
timeout of a listed mutant is taken for the machine's load and left out like the others) and, for a report that covers the entry's file, about an entry that matches nothing (stale: the code changed).
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

def norm(text):
    return re.sub(r"\s+", " ", text).strip()

def load_equivalents():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "equivalents.tsv")
    entries = {}
    for number, raw in enumerate(open(path, encoding="utf-8"), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        cells = raw.rstrip("\n").split("\t")
        if len(cells) != 7:
            sys.exit(f"{path}:{number}: expected 7 tab-separated cells (file, mutator, lines before, line, replacement, ordinal, reason)")
        entries[tuple(cells[:6])] = [cells[6], number, 0]
    return entries

def keys_of(relative, mutants, lines):
    """Each mutant's key: file, mutator, the two non-blank lines before its line, its line, the replacement, and its
    ordinal among the file's mutants that share the rest of the key (in source order), whitespace collapsed."""
    def base(m):
        line = m["location"]["start"]["line"]
        before = [norm(x) for x in lines[:line - 1] if norm(x)][-2:]
        return (relative, m["mutatorName"], " \u23ce ".join(before), norm(lines[line - 1]), norm(m.get("replacement") or ""))
    seen = collections.Counter()
    keys = {}
    for m in sorted(mutants, key=lambda m: (m["location"]["start"]["line"], m["location"]["start"]["column"], m["id"])):
        b = base(m)
        seen[b] += 1
        keys[m["id"]] = b + (str(seen[b]),)
    return keys

def main(argv):
    show = "--survivors" in argv
    paths = [a for a in argv if not a.startswith("--")] or sorted(glob.glob("artifacts/mutation/*/reports/mutation-report.json"))
    rows = collections.OrderedDict()
    survivors = []
    seen = set()
    equivalents = load_equivalents()
    covered = set()
    killed_equivalents = []
    for path in paths:
        report = json.load(open(path))
        for file, data in report["files"].items():
            lines = data["source"].split("\n")
            relative = file.replace("\\", "/").split("src/Concurrency.Primitives/")[-1]
            folder = relative.split("/")[0] if "/" in relative else "."
            if any(m["status"] in DETECTED | UNDETECTED for m in data["mutants"]):
                covered.add(relative)  # mutated in this run (a report lists every file; the others' mutants are all ignored)
            keys = keys_of(relative, data["mutants"], lines)
            for m in data["mutants"]:
                if m["status"] not in DETECTED | UNDETECTED:
                    continue
                key = (file, m["id"])
                if key in seen:
                    continue
                seen.add(key)
                row = rows.setdefault(folder, collections.Counter())
                hit = m["status"] in DETECTED
                polly = not polly_excluded(m, lines)
                row["all_detected" if hit else "all_undetected"] += 1
                if polly:
                    row["polly_detected" if hit else "polly_undetected"] += 1
                entry = equivalents.get(keys[m["id"]])
                if entry is not None:
                    # Left out whatever its status: a timeout of an equivalent mutant is the machine's load, not a kill.
                    entry[2] += 1
                    if m["status"] == "Killed":
                        killed_equivalents.append(f"{relative}:{m['location']['start']['line']} [{m['mutatorName']}] (equivalents.tsv:{entry[1]})")
                    row["all_eq_detected" if hit else "all_eq_undetected"] += 1
                    if polly:
                        row["polly_eq_detected" if hit else "polly_eq_undetected"] += 1
                    continue
                if not hit:
                    line = m["location"]["start"]["line"]
                    survivors.append((relative, line, m["status"], m["mutatorName"], lines[line - 1].strip(), (m.get("replacement") or "").replace("\n", " ")))
    def score(d, u):
        return f"{100.0 * d / (d + u):6.2f} %" if d + u else "   n/a"
    print(f"{'folder':12} {'all: detected/total':>20} {'score':>9}   {'polly: detected/total':>22} {'score':>9}   "
          f"{'equivalent':>10}  {'all, without them':>24}  {'polly, without them':>24}")
    for folder, row in rows.items():
        # Stryker's counts, and the same without the equivalents
        sd, su, qd, qu = (row[k] for k in ("all_detected", "all_undetected", "polly_detected", "polly_undetected"))
        ad, au = sd - row["all_eq_detected"], su - row["all_eq_undetected"]
        pd, pu = qd - row["polly_eq_detected"], qu - row["polly_eq_undetected"]
        equivalent = row["all_eq_detected"] + row["all_eq_undetected"]
        print(f"{folder:12} {sd:>9}/{sd + su:<10} {score(sd, su)}   {qd:>11}/{qd + qu:<10} {score(qd, qu)}   {equivalent:>10}  "
              f"{ad:>6}/{ad + au:<6} {score(ad, au)}  {pd:>6}/{pd + pu:<6} {score(pd, pu)}")
    for line in killed_equivalents:
        print(f"warning: listed as equivalent but killed: {line}")
    for key, (reason, number, matches) in equivalents.items():
        if matches == 0 and key[0] in covered:
            print(f"warning: equivalents.tsv:{number} matches no mutant (stale?): {key[0]} [{key[1]}] {key[3][:80]}")
    if show:
        for s in sorted(survivors):
            print(f"{s[0]}:{s[1]} {s[2]} [{s[3]}] {s[4][:100]}  =>  {s[5][:80]}")

if __name__ == "__main__":
    main(sys.argv[1:])
