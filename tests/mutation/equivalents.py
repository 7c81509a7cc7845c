#!/usr/bin/env python3
"""Writes rows of tests/mutation/equivalents.tsv for mutants picked from a Stryker JSON report.

  tests/mutation/equivalents.py REPORT SPEC REASONS     print one row per mutant the SPEC picks
A SPEC line is `File.cs:LINE[:mutator][:replacement] | reason-key`: every Survived or NoCoverage mutant of that file and
line whose mutator name contains `mutator` and whose replacement contains `replacement` (both optional, the first
case-insensitive). REASONS is a tab-separated file of `reason-key<TAB>why the mutant is equivalent`.
The rows name each mutant as tests/mutation/score.py matches it (see keys_of there), so pick from a report of the code
as it stands; a row for changed code turns stale, and score.py says so.
"""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from score import keys_of  # noqa: E402

def main(report_path, spec_path, reasons_path):
    reasons = dict(line.rstrip("\n").split("\t", 1) for line in open(reasons_path, encoding="utf-8") if "\t" in line)
    files = {}
    for file, data in json.load(open(report_path))["files"].items():
        files[file.replace("\\", "/").split("src/Concurrency.Primitives/")[-1]] = data
    rows = []
    for raw in open(spec_path, encoding="utf-8"):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        target, reason = (part.strip() for part in raw.split("|"))
        parts = target.split(":")
        name, line = parts[0], int(parts[1])
        mutator = parts[2] if len(parts) > 2 and parts[2] else None
        replacement = parts[3] if len(parts) > 3 else None
        matches = [f for f in files if f == name or f.endswith("/" + name)]
        if len(matches) != 1:
            sys.exit(f"{raw}: {len(matches)} files match {name}")
        data = files[matches[0]]
        keys = keys_of(matches[0], data["mutants"], data["source"].split("\n"))
        picked = [m for m in data["mutants"]
                  if m["location"]["start"]["line"] == line and m["status"] in ("Survived", "NoCoverage")
                  and (mutator is None or mutator.lower() in m["mutatorName"].lower())
                  and (replacement is None or replacement in (m.get("replacement") or ""))]
        if not picked:
            print(f"no mutant matches: {raw}", file=sys.stderr)
        for m in picked:
            rows.append("\t".join(keys[m["id"]] + (reasons[reason],)))
    print("\n".join(rows))
    print(f"{len(rows)} rows", file=sys.stderr)

if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
