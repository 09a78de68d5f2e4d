"""Print the RELIABILITY.md coverage table from a pytest JUnit XML file (`make reliability`).

Every test whose name contains `row<N>` (or `row<N>_<M>` for several rows) covers row N.
A row passes when it has at least one test and none of its tests failed; skipped tests are
shown (a test that needs a GPU may be skipped on a CPU machine). Exit status 1 when a
row fails or has no test.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROW_IN_NAME = re.compile(r"row(\d+(?:_\d+)*)")
ROW_IN_TABLE = re.compile(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|")


def rows_of(test_name: str) -> set[int]:
    return {int(n) for m in ROW_IN_NAME.finditer(test_name) for n in m.group(1).split("_")}


def read_rows(reliability_md: Path) -> dict[int, str]:
    rows = {}
    for line in reliability_md.read_text(encoding="utf-8").splitlines():
        if m := ROW_IN_TABLE.match(line):
            rows[int(m.group(1))] = m.group(2)
    return rows


def read_outcomes(junit_xml: Path) -> dict[int, list[tuple[str, str]]]:
    by_row: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = case.get("name", "")
        outcome = "pass"
        for child, label in (("failure", "FAIL"), ("error", "ERROR"), ("skipped", "skip")):
            if case.find(child) is not None:
                outcome = label
        for row in rows_of(name):
            by_row[row].append((f"{case.get('classname', '').rsplit('.', 1)[-1]}::{name}", outcome))
    return by_row


def main(junit_xml: str, reliability_md: str) -> int:
    rows = read_rows(Path(reliability_md))
    outcomes = read_outcomes(Path(junit_xml))
    bad = 0
    print(f"{'row':>3}  {'result':<7} {'tests':>5}  fault / test names")
    for row, fault in sorted(rows.items()):
        tests = outcomes.get(row, [])
        results = {outcome for _, outcome in tests}
        passed = [t for t, o in tests if o == "pass"]
        if not tests or not passed or results & {"FAIL", "ERROR"}:
            verdict, bad = ("MISSING" if not tests else "FAIL"), bad + 1
        else:
            verdict = "pass"
        print(f"{row:>3}  {verdict:<7} {len(tests):>5}  {fault[:70]}")
        for test, outcome in tests:
            print(f"{'':>17}{outcome:<6} {test}")
    print(f"\n{len(rows) - bad} of {len(rows)} rows pass")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
