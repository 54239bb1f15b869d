"""Golden tests of `rollbook check` on bad policies: the exact screen an author sees.

Each case is tests/golden/errors/NAME.yaml (bases it extends live in golden/errors/bases/) and
NAME.expected, the human output of `rollbook check NAME.yaml` run from that folder, so every path
in the golden is relative. Regenerate with ROLLBOOK_UPDATE_GOLDEN=1 and review the diff by hand:
a golden is a statement about what the author should read, not a recording.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.cli import main

ERRORS = Path(__file__).resolve().parent / "golden" / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.yaml"))

# Cases whose only findings are warnings: `rollbook check` exits 0 for them (1 with --strict).
WARNING_ONLY = {
    "warn-codes-outside-category",
    "warn-contradiction",
    "warn-over-100",
    "warn-shadowed",
    "warn-unused-parameter",
}

# What the goldens must cover (issue 2 and the test brief), topic -> case. A case renamed or
# removed fails here rather than silently dropping coverage.
COVERAGE = {
    "YAML: bad indentation": "yaml-bad-indentation",
    "YAML: tab": "yaml-tab",
    "YAML: unclosed quote": "yaml-unclosed-quote",
    "YAML: duplicate key": "yaml-duplicate-key",
    "YAML: custom tag": "yaml-custom-tag",
    "YAML: merge key": "yaml-merge-key",
    "YAML 1.2: advisory: no": "yaml-advisory-no",
    "schema: unknown top-level key (did you mean)": "schema-unknown-top-key",
    "schema: unknown rule key": "schema-unknown-rule-key",
    "schema: missing when": "schema-missing-when",
    "schema: wrong type": "schema-wrong-type",
    "schema: bad date": "schema-bad-date",
    "schema: bad duration": "schema-bad-duration",
    "schema: bad rule id": "schema-bad-rule-id",
    "schema: unknown action verb": "schema-unknown-verb",
    "schema: unknown role": "schema-unknown-role",
    "schema: two verbs in one action": "schema-two-verbs",
    "schema: empty then": "schema-empty-then",
    "DSL: missing window": "dsl-missing-window",
    "DSL: misspelt keyword (unauthorized)": "dsl-misspelt-keyword",
    "DSL: this year": "dsl-this-year",
    "DSL: trailing operator": "dsl-trailing-operator",
    "DSL: bad date literal": "dsl-bad-date",
    "DSL: keyword as parameter": "dsl-keyword-parameter",
    "unknown code": "name-unknown-code",
    "retired code H": "name-retired-code",
    "unknown parameter (did you mean)": "name-unknown-parameter",
    "unknown attribute": "name-unknown-attribute",
    "unknown verb in `actions with verb`": "name-unknown-verb-selector",
    "unit: percentage vs sessions": "unit-percent-vs-sessions",
    "unit: rate vs plain number": "unit-missing-percent",
    "type: `when` is not true/false": "type-not-a-condition",
    "duplicate rule id in one file": "rule-duplicate-id",
    "duplicate id vs inherited, no override": "rule-duplicate-inherited",
    "override of nothing": "rule-override-nothing",
    "extends cycle": "extends-cycle",
    "missing base file": "extends-missing",
    "unknown escalation target (after.rule)": "rule-unknown-escalation",
    "unknown `actions by rule` target": "rule-unknown-action-target",
    "disable of an unknown rule": "rule-disable-unknown",
    "rank in a pupil-scope rule": "scope-rank-pupil",
    "rank in a leaver-scope rule": "scope-rank-leaver",
    "pupil attribute in a class-scope rule": "scope-attribute-class",
    "unreachable: > 100%": "warn-over-100",
    "unreachable: contradictory and": "warn-contradiction",
    "code set outside its category": "warn-codes-outside-category",
    "shadowed rule": "warn-shadowed",
    "unused parameter": "warn-unused-parameter",
    "parameter override changes unit": "param-unit-change",
    "once_per: run with no current run": "repeat-run-no-run",
    "once_per: run with two current runs": "repeat-run-two-runs",
}

HEADER = re.compile(r"^(?P<path>[\w./-]+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning)\[[\w.-]+\]: \S")
SOURCE = re.compile(r"^ {0,3}(?P<line>\d+) \| ")
CARET = re.compile(r"^ {5}\| (?P<pad> *)\^+$")


def run_check(name: str, monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:
    monkeypatch.chdir(ERRORS)
    code = main(["check", *extra, f"{name}.yaml"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_enough_cases_and_coverage():
    assert len(CASES) >= 30
    missing = {topic: case for topic, case in COVERAGE.items() if case not in CASES}
    assert not missing, f"golden cases missing for: {missing}"
    assert WARNING_ONLY <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_human_output_matches_golden(name, monkeypatch, capsys, update_golden):
    code, out, err = run_check(name, monkeypatch, capsys)
    assert "Traceback" not in out + err and "internal error" not in err
    assert code == (0 if name in WARNING_ONLY else 1), out
    golden = ERRORS / f"{name}.expected"
    if update_golden:
        golden.write_text(out, encoding="utf-8")
    assert golden.exists(), f"no golden {golden.name}; run with ROLLBOOK_UPDATE_GOLDEN=1 and review it"
    assert out == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_golden_shows_where_and_a_caret(name):
    """Every diagnostic block: file:line:col, the quoted source line, a caret under the column."""
    text = (ERRORS / f"{name}.expected").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.strip() and not b.startswith("checked ")]
    assert blocks, "the golden has no diagnostic"
    for block in blocks:
        lines = block.splitlines()
        head = HEADER.match(lines[0])
        assert head, f"no file:line:col header: {lines[0]!r}"
        assert not Path(head["path"]).is_absolute()
        source, caret = SOURCE.match(lines[1]), CARET.match(lines[2])
        assert source and int(source["line"]) == int(head["line"]), f"no source line in {block!r}"
        assert caret and len(caret["pad"]) == int(head["col"]) - 1, f"caret not under column {head['col']}: {block!r}"
        quoted = (ERRORS / head["path"]).read_text(encoding="utf-8").splitlines()[int(head["line"]) - 1]
        assert lines[1][len(source[0]):] == quoted.expandtabs(1)
        for extra in lines[3:]:
            assert extra.startswith(("     = expected: ", "     = hint: ")), extra
    assert text.rstrip().splitlines()[-1].startswith("checked 1 policy: ")


@pytest.mark.parametrize("name", CASES)
def test_json_output_agrees(name, monkeypatch, capsys):
    code, out, _ = run_check(name, monkeypatch, capsys, "--format", "json")
    data = json.loads(out)
    assert code == (0 if name in WARNING_ONLY else 1)
    (entry,) = data["files"]
    assert entry["path"] == f"{name}.yaml"
    assert entry["ok"] is (name in WARNING_ONLY)
    assert data["errors"] == sum(d["severity"] == "error" for d in entry["diagnostics"])
    assert data["warnings"] == sum(d["severity"] == "warning" for d in entry["diagnostics"])
    for d in entry["diagnostics"]:
        assert {"severity", "code", "message", "file", "line", "column"} <= set(d)


@pytest.mark.parametrize("name", sorted(WARNING_ONLY))
def test_strict_fails_on_warnings(name, monkeypatch, capsys):
    code, _, _ = run_check(name, monkeypatch, capsys, "--strict")
    assert code == 1
