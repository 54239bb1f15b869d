"""`rollbook diff`: the structural diff of two merged policies, the impact on a register's actions,
its invariants, its text output (golden) and the command line end to end."""

from __future__ import annotations

import json
import shutil
from datetime import date
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api import evaluate, prepare_register
from engine.policy_diff import compare_actions, diff_policy_files, render_text, structural_diff

from .conftest import GOLDEN, REPO
from .evaluation import SHIPPED_POLICIES, checked
from .registers import RegisterBuilder, open_days

NATIONAL = REPO / "policies" / "national.yaml"
BURTON = REPO / "policies" / "burton-hathow.yaml"
SAMPLE = REPO / "examples" / "sample-register"

SCHOOL = f"""\
rollbook: 1
id: test-school
title: Test school attendance policy
version: "1"
effective_from: 2025-09-01
extends: {NATIONAL}
parameters:
  meeting_threshold: {{value: 85, unit: percent, description: Formal meeting below this.}}
rules:
  - id: formal-meeting
    title: Formal meeting below 85%
    source: "If attendance drops below 85 percent a formal meeting will be arranged"
    when: attendance this academic year below meeting_threshold
    then:
      - notify: {{role: attendance_officer}}
      - hold_meeting: {{kind: formal, with: [parents]}}
    repeat: {{once_per: academic_year}}
  - id: letter-1
    title: First letter
    when: unauthorised sessions this term >= 4
    then:
      - send_letter: {{letter: first}}
"""

STANDALONE = """\
rollbook: 1
id: standalone
title: Standalone policy
version: "1"
rules:
  - id: late
    title: Lateness
    when: sessions coded {L} this term > 5
    then:
      - notify: {role: class_teacher}
"""


def _replace(old: str, new: str):
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def _then(*edits):
    def edit(text: str) -> str:
        for e in edits:
            text = e(text)
        return text
    return edit


# (case, base text, edit, expected [(kind, name, change, field, old, new)])
STRUCTURAL_CASES = [
    ("parameter value", SCHOOL, _replace("value: 85,", "value: 90,"),
     [("parameter", "meeting_threshold", "changed", "value", "85%", "90%")]),
    ("parameter description", SCHOOL, _replace("Formal meeting below this.", "Meeting below this."),
     [("parameter", "meeting_threshold", "changed", "description", '"Formal meeting below this."', '"Meeting below this."')]),
    ("parameter added", SCHOOL, _replace("rules:\n", "  letter_sessions: {value: 4, unit: sessions}\nrules:\n"),
     [("parameter", "letter_sessions", "added", None, None, "4 sessions")]),
    ("condition threshold", SCHOOL, _replace("below meeting_threshold", "below 90%"),
     [("rule", "formal-meeting", "changed", "when", '"attendance this academic year < meeting_threshold"',
       '"attendance this academic year < 90%"')]),
    ("condition layout only", SCHOOL, _replace("this term >= 4", "this  term   >=   4"), []),
    ("action param", SCHOOL, _replace("with: [parents]", "with: [parents, headteacher]"),
     [("rule", "formal-meeting", "changed", "then[1] hold_meeting.with", "[parents]", "[parents, headteacher]")]),
    ("action param added", SCHOOL, _replace("{role: attendance_officer}", "{role: attendance_officer, message: Arrange it.}"),
     [("rule", "formal-meeting", "changed", "then[0] notify.message", None, "Arrange it.")]),
    ("action added", SCHOOL, _replace("      - send_letter: {letter: first}\n",
                                      "      - send_letter: {letter: first}\n      - notify: {role: headteacher}\n"),
     [("rule", "letter-1", "changed", "then", None, "notify {role: headteacher}")]),
    ("action removed", SCHOOL, _replace("      - notify: {role: attendance_officer}\n", ""),
     [("rule", "formal-meeting", "changed", "then", "notify {role: attendance_officer}", None)]),
    ("repeat", SCHOOL, _replace("{once_per: academic_year}", "{once_per: term}"),
     [("rule", "formal-meeting", "changed", "repeat", "{once_per: academic_year}", "{once_per: term}")]),
    ("cooldown", SCHOOL, _replace("{once_per: academic_year}", "{cooldown: 4 school weeks}"),
     [("rule", "formal-meeting", "changed", "repeat", "{once_per: academic_year}", "{cooldown: 4 school weeks}")]),
    ("after", SCHOOL, _replace("    repeat: {once_per: academic_year}\n",
                               "    repeat: {once_per: academic_year}\n    after: {rule: letter-1, at_least: 2 school weeks}\n"),
     [("rule", "formal-meeting", "changed", "after", "none", "{rule: letter-1, at_least: 2 school weeks}")]),
    ("limit added", SCHOOL, _replace("      - send_letter: {letter: first}\n",
                                     "      - send_letter: {letter: first}\n    limit: {max: 2, within: 1 years, "
                                     "otherwise: [{notify: {role: headteacher}}]}\n"),
     [("rule", "letter-1", "changed", "limit", "none",
       "{max: 2, within: 1 years, otherwise: [notify {role: headteacher}]}")]),
    ("limit fields", _replace("      - send_letter: {letter: first}\n",
                              "      - send_letter: {letter: first}\n    limit: {max: 2, within: 1 years, "
                              "otherwise: [{notify: {role: headteacher}}]}\n")(SCHOOL),
     _replace("limit: {max: 2, within: 1 years, otherwise: [{notify: {role: headteacher}}]}",
              "limit: {max: 3, within: 1 years, otherwise: [{notify: {role: governors}}]}"),
     [("rule", "letter-1", "changed", "limit.max", "2", "3"),
      ("rule", "letter-1", "changed", "limit.otherwise[0] notify.role", "headteacher", "governors")]),
    ("advisory", SCHOOL, _replace("    repeat: {once_per: academic_year}\n", "    repeat: {once_per: academic_year}\n    advisory: true\n"),
     [("rule", "formal-meeting", "changed", "advisory", "false", "true")]),
    ("title and source", SCHOOL, _then(_replace("title: First letter", "title: First attendance letter"),
                                       _replace('"If attendance drops below 85 percent', '"If attendance falls below 85 percent')),
     [("rule", "formal-meeting", "changed", "source", '"If attendance drops below 85 percent a formal meeting will be arranged"',
       '"If attendance falls below 85 percent a formal meeting will be arranged"'),
      ("rule", "letter-1", "changed", "title", "First letter", "First attendance letter")]),
    ("rule added", SCHOOL, lambda t: t + "  - id: letter-2\n    title: Second letter\n    when: unauthorised sessions this term >= 8\n"
                                         "    then:\n      - send_letter: {letter: second}\n",
     [("rule", "letter-2", "added", None, None, 'when "unauthorised sessions this term >= 8" then send_letter {letter: second}')]),
    ("rule removed", SCHOOL, lambda t: t[:t.index("  - id: letter-1")],
     [("rule", "letter-1", "removed", None, 'when "unauthorised sessions this term >= 4" then send_letter {letter: first}', None)]),
    ("inherited rule disabled", SCHOOL, _replace("rules:\n", "disable:\n  - {rule: unresolved-code-n, reason: The MIS does it.}\nrules:\n"),
     [("rule", "unresolved-code-n", "removed", None, "*", None)]),
    ("inherited rule overridden", SCHOOL, lambda t: t + (
        "  - id: persistent-absence\n    title: Persistent absence\n    override: true\n"
        "    when: absence this academic year >= 15%\n    then:\n      - flag: {flag: persistent_absence}\n"),
     [("rule", "persistent-absence", "changed", "title", "*", "Persistent absence"),
      ("rule", "persistent-absence", "changed", "when", '"absence this academic year >= persistent_absence_threshold"',
       '"absence this academic year >= 15%"'),
      ("rule", "persistent-absence", "changed", "then", "*", None),
      ("rule", "persistent-absence", "changed", "repeat", "{once_per: academic_year}", "none (once ever)"),
      ("rule", "persistent-absence", "changed", "source", "*", None),
      ("rule", "persistent-absence", "changed", "reading", "*", None)]),
    ("header", SCHOOL, _replace('version: "1"', 'version: "2"'), [("policy", "version", "changed", None, "1", "2")]),
    ("attribute added", SCHOOL, _replace("parameters:\n", "attributes:\n  home_visit: {type: boolean}\nparameters:\n"),
     [("attribute", "home_visit", "added", None, None, "boolean")]),
    ("standalone threshold", STANDALONE, _replace("> 5", "> 3"),
     [("rule", "late", "changed", "when", '"sessions coded {L} this term > 5"', '"sessions coded {L} this term > 3"')]),
    ("policy id", STANDALONE, _replace("id: standalone", "id: standalone-2"),
     [("policy", "id", "changed", None, "standalone", "standalone-2")]),
]


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _diff(old: Path, new: Path):
    outcome = diff_policy_files(old, new)
    assert outcome.diff is not None, (outcome.old_check.diagnostics, outcome.new_check.diagnostics)
    return outcome.diff


@pytest.mark.parametrize("case, text, edit, expected", STRUCTURAL_CASES, ids=[c[0] for c in STRUCTURAL_CASES])
def test_structural_changes(tmp_path, case, text, edit, expected):
    old = _write(tmp_path, "old.yaml", text)
    new = _write(tmp_path, "new.yaml", edit(text))
    got = [(c.kind, c.name, c.change, c.field, c.old, c.new) for c in _diff(old, new).changes]
    assert len(got) == len(expected), got
    for g, e in zip(got, expected):
        assert g[:4] == e[:4], got
        for value, want in zip(g[4:], e[4:]):
            assert (value is not None if want == "*" else value == want), (g, e)


def test_changes_point_at_both_files(tmp_path):
    old = _write(tmp_path, "old.yaml", SCHOOL)
    # Two lines pushed in above the rule, so its lines differ between the files.
    new = _write(tmp_path, "new.yaml", SCHOOL.replace("rules:\n", "# a comment\n# another\nrules:\n")
                 .replace("below meeting_threshold", "below 90%"))
    (change,) = _diff(old, new).changes
    line = SCHOOL.splitlines().index("    when: attendance this academic year below meeting_threshold") + 1
    assert (change.old_at.path, change.old_at.line) == (str(old), line)
    assert (change.new_at.path, change.new_at.line) == (str(new), line + 2)
    assert render_text(_diff(old, new)).count(f"{old}:{line} → {new}:{line + 2}") == 1


def test_a_change_in_the_base_shows_in_the_school(tmp_path):
    """Merged policies are compared: a school that inherits a changed base rule changes too."""
    base = """rollbook: 1\nid: base\ntitle: Base\nversion: "1"\nparameters:\n  pa: {value: 10, unit: percent}\nrules:\n""" \
           """  - id: pa\n    title: PA\n    when: absence this academic year >= pa\n    then:\n      - flag: {flag: pa}\n"""
    school = """rollbook: 1\nid: school\ntitle: School\nversion: "1"\nextends: base.yaml\nrules: []\n"""
    for side, threshold in (("old", "10"), ("new", "12")):
        _write(tmp_path / side, "base.yaml", base.replace("value: 10", f"value: {threshold}"))
        _write(tmp_path / side, "school.yaml", school)
    (change,) = _diff(tmp_path / "old" / "school.yaml", tmp_path / "new" / "school.yaml").changes
    assert (change.kind, change.name, change.old, change.new, change.note) == ("parameter", "pa", "10%", "12%", "used by pa")
    assert change.new_at.path == str(tmp_path / "new" / "base.yaml")


def test_different_policy_ids_are_said(tmp_path):
    old = _write(tmp_path, "a.yaml", STANDALONE)
    new = _write(tmp_path, "b.yaml", STANDALONE.replace("id: standalone", "id: other"))
    assert "note: the two files are different policies (standalone and other)" in render_text(_diff(old, new))


@pytest.mark.parametrize("policy", [p.name for p in SHIPPED_POLICIES])
def test_a_policy_diffed_with_itself_has_no_changes(policy):
    p = checked(REPO / "policies" / policy)
    assert structural_diff(p, p) == []


# ---- the 85% -> 90% meeting threshold on a hand-built register ------------------------------

AS_OF = date(2025, 11, 18)
# 2025-09-03 to 2025-11-18 has 50 open days in the test calendar (38 in the first half term,
# 12 after half term): 100 possible sessions, so k absent sessions give attendance 100 - k %.
ABSENT_SESSIONS = {"A": 16, "B": 15, "C": 11, "D": 10, "E": 3, "F": 13}
# A 84% (below both), B 85% (not below 85, below 90), C 89%, D 90% (not below 90), E 97%, F 87%.
GAINED = {"B", "C", "F"}


def _threshold_register(tmp_path: Path) -> Path:
    assert len(open_days(date(2025, 9, 3), AS_OF)) == 50
    b = RegisterBuilder()
    for pupil, k in ABSENT_SESSIONS.items():
        b.pupil(pupil).present(pupil, date(2025, 9, 3), AS_OF).code_sessions(pupil, date(2025, 9, 8), k, "I")
    return b.write(tmp_path / "register")


def _burton_with(folder: Path, threshold: int) -> Path:
    """A copy of burton-hathow.yaml with another meeting threshold, extending the real national.yaml."""
    text = BURTON.read_text(encoding="utf-8")
    assert text.count("    value: 85\n") == 1
    text = text.replace("    value: 85\n", f"    value: {threshold}\n").replace("extends: national.yaml", f"extends: {NATIONAL}")
    return _write(folder, f"burton-hathow-{threshold}.yaml", text)


def test_meeting_threshold_85_to_90_gains_the_hand_counted_pupils(tmp_path):
    register = _threshold_register(tmp_path)
    new = _burton_with(tmp_path, 90)
    diff = diff_policy_files(BURTON, new, register, AS_OF).diff
    assert [(c.name, c.old, c.new, c.note) for c in diff.changes] == [
        ("meeting_threshold", "85%", "90%", "used by formal-meeting")]
    (rule,) = diff.impact.rules
    assert rule.rule == "formal-meeting" and not rule.lost and not rule.changed
    assert {e.subject["id"] for e in rule.gained} == GAINED
    assert all(e.verbs == ("notify", "hold_meeting") for e in rule.gained)
    assert diff.impact.gained == 2 * len(GAINED) and diff.impact.lost == 0
    # The same pupils, straight from two evaluations.
    old_pupils = {a["subject"]["id"] for a in evaluate(checked(BURTON), register, AS_OF) if a["rule"] == "formal-meeting"}
    new_pupils = {a["subject"]["id"] for a in evaluate(new, register, AS_OF) if a["rule"] == "formal-meeting"}
    assert old_pupils == {"A"} and new_pupils - old_pupils == GAINED


# ---- invariant: gained and lost are the set differences of the two evaluations --------------

THRESHOLDS = (80, 84, 85, 87, 89, 90, 97)


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """burton-hathow with each meeting threshold, evaluated on one loaded register."""
    tmp = tmp_path_factory.mktemp("thresholds")
    register = _threshold_register(tmp)
    loaded, _ = prepare_register(register, checked(BURTON))
    return {t: evaluate(checked(_burton_with(tmp, t)), loaded, AS_OF) for t in THRESHOLDS}


def _keys(actions) -> set:
    return {(a["rule"], a["subject"]["id"], a["verb"]) for a in actions}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(THRESHOLDS), st.sampled_from(THRESHOLDS))
def test_gained_and_lost_are_the_set_differences(evaluations, old, new):
    a, b = evaluations[old], evaluations[new]
    rules = compare_actions(a, b)
    gained = {(r.rule, e.subject["id"], v) for r in rules for e in r.gained for v in e.verbs}
    lost = {(r.rule, e.subject["id"], v) for r in rules for e in r.lost for v in e.verbs}
    assert gained == _keys(b) - _keys(a)
    assert lost == _keys(a) - _keys(b)
    assert not any(r.changed for r in rules)  # only the threshold moved: no kept action changes
    if old == new:
        assert rules == []
    # Which pupils move is exactly who lies between the thresholds (attendance 100 - k %).
    between = {p for p, k in ABSENT_SESSIONS.items() if min(old, new) <= 100 - k < max(old, new)}
    moved = {e.subject["id"] for r in rules for e in (r.gained or r.lost)}
    assert moved == between


@pytest.mark.parametrize("old, new, expected", [
    ("with: [parents, attendance_officer]}", "with: [parents]}", [("A", "hold_meeting", ("params",))]),
    ("when: attendance this academic year below meeting_threshold", "when: attendance this term below meeting_threshold",
     [("A", "hold_meeting", ("evidence",)), ("A", "notify", ("evidence",))]),
])
def test_changed_actions_are_found(tmp_path, old, new, expected):
    """Same rule, subject and verb, other params or other facts in the evidence: changed, not
    gained and lost (formal-meeting's own text comes first in the file)."""
    register = _threshold_register(tmp_path)
    path = _write(tmp_path, "burton-with.yaml", BURTON.read_text(encoding="utf-8")
                  .replace("extends: national.yaml", f"extends: {NATIONAL}").replace(old, new, 1))
    impact = diff_policy_files(BURTON, path, register, AS_OF).diff.impact
    (rule,) = impact.rules
    assert rule.rule == "formal-meeting" and not rule.gained and not rule.lost
    assert [(c.subject["id"], c.verb, c.what) for c in rule.changed] == expected


# ---- text output (golden) and the command line ----------------------------------------------

@pytest.fixture()
def workspace(tmp_path):
    """policies/ (burton-hathow, a copy with a 90% meeting threshold, national) and the sample
    register, so the command runs with short relative paths as in docs/diff.md."""
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(NATIONAL, policies / "national.yaml")
    shutil.copy(BURTON, policies / "burton-hathow.yaml")
    text = BURTON.read_text(encoding="utf-8").replace("    value: 85\n", "    value: 90\n")
    (policies / "burton-hathow-90.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "sample-register").symlink_to(SAMPLE)
    return tmp_path


def test_golden_text(rollbook, workspace, update_golden):
    result = rollbook("diff", "policies/burton-hathow.yaml", "policies/burton-hathow-90.yaml",
                      "--register", "examples/sample-register", "--as-of", "2026-03-13", "--rules-engine", "builtin",
                      cwd=workspace)
    assert result.returncode == 0, result.stderr
    golden = GOLDEN / "diff" / "burton-hathow-90.txt"
    if update_golden:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8")


def test_cli_json_and_exit_codes(rollbook, workspace):
    args = ("diff", "policies/burton-hathow.yaml", "policies/burton-hathow-90.yaml", "--register",
            "examples/sample-register", "--as-of", "2026-03-13", "--rules-engine", "builtin")
    result = rollbook(*args, "--format", "json", "--exit-code", cwd=workspace)
    assert result.returncode == 1, result.stderr  # differences, with --exit-code
    out = json.loads(result.stdout)
    assert out["format"] == 1 and out["differences"] is True and out["same_policy"] is True
    assert [(c["kind"], c["name"], c["old"], c["new"]) for c in out["changes"]] == [
        ("parameter", "meeting_threshold", "85%", "90%")]
    assert out["changes"][0]["new_at"] == {"file": "policies/burton-hathow-90.yaml", "line": 33}
    (rule,) = out["impact"]["rules"]
    gained = [g["subject"]["id"] for g in rule["gained"]]
    assert rule["rule"] == "formal-meeting" and len(gained) == out["impact"]["actions"]["gained"] // 2 > 0
    assert out["impact"]["actions"]["new"] - out["impact"]["actions"]["old"] == out["impact"]["actions"]["gained"]

    same = rollbook("diff", "policies/burton-hathow.yaml", "policies/burton-hathow.yaml", "--exit-code", cwd=workspace)
    assert same.returncode == 0 and "No structural changes" in same.stdout
    assert rollbook(*args, cwd=workspace).returncode == 0  # differences, without --exit-code
    usage = rollbook("diff", "policies/burton-hathow.yaml", "policies/burton-hathow-90.yaml", "--as-of", "2026-03-13",
                     cwd=workspace)
    assert usage.returncode == 2 and "--register and --as-of go together" in usage.stderr


def test_cli_a_policy_that_fails_check_is_shown_with_a_caret(rollbook, workspace):
    bad = workspace / "policies" / "bad.yaml"
    bad.write_text(BURTON.read_text(encoding="utf-8").replace("below meeting_threshold", "below meeting_treshold"),
                   encoding="utf-8")
    result = rollbook("diff", "policies/burton-hathow.yaml", "policies/bad.yaml", cwd=workspace)
    assert result.returncode == 1 and result.stdout == ""
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "meeting_treshold" in t)
    assert f"policies/bad.yaml:{line}:47: error[name.parameter]: unknown parameter `meeting_treshold`" in result.stderr
    assert "^^^^^^^^^^^^^^^^" in result.stderr and "did you mean `meeting_threshold`?" in result.stderr
    assert "does not pass `rollbook check`" in result.stderr


def test_cli_lists_past_the_limit_with_and_more(rollbook, workspace):
    policies = workspace / "policies"
    text = (policies / "burton-hathow.yaml").read_text(encoding="utf-8")
    (policies / "burton-hathow-99.yaml").write_text(text.replace("    value: 85\n", "    value: 99\n"), encoding="utf-8")
    args = ("diff", "policies/burton-hathow.yaml", "policies/burton-hathow-99.yaml", "--register",
            "examples/sample-register", "--as-of", "2026-03-13", "--rules-engine", "builtin")
    short, full = rollbook(*args, cwd=workspace), rollbook(*args, "--all", cwd=workspace)
    line = next(t for t in short.stdout.splitlines() if t.startswith("    gained:"))
    n = int(line.split(" for ")[1].split()[0])
    assert n > 10 and line.endswith(f" and {n - 10} more")
    full_line = next(t for t in full.stdout.splitlines() if t.startswith("    gained:"))
    assert "more" not in full_line and len(full_line.split(": ", 2)[2].split(", ")) == n
