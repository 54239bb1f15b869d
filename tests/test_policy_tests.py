"""`rollbook test`: the register notation, test-file errors, the runner's output, JUnit XML and
coverage.

Goldens live in tests/golden/policy-tests/: errors/NAME.yaml with NAME.expected (the screen
`rollbook test NAME.yaml` shows, run from that folder), runner/ (a passing and a failing file) and
coverage/. Regenerate with ROLLBOOK_UPDATE_GOLDEN=1 and review the diff by hand.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.compile import compile_policy
from engine.coverage import decisive_operands, policy_coverage, rule_operands
from engine.policy_tests import load_test_file, run_test_file
from engine.register_notation import (
    NO_MARK, SESSIONS, NotationCalendar, parse_marks, render_marks, standard_calendar,
)
from engine.api import check_policy_file
from engine.codes import national_codes

from .evaluation import ENGINES
from .registers import CALENDAR_END, is_open

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "policy-tests"
ERRORS = GOLDEN / "errors"
RUNNER = GOLDEN / "runner"
# Inputs are named NAME.yaml, not NAME.test.yaml, so that `rollbook test` run over the repository
# does not pick up these deliberately broken and failing files (explicit files may have any name).
ERROR_CASES = sorted(p.stem for p in ERRORS.glob("*.yaml"))
TIME = re.compile(r" in \d+\.\d+ s$", re.M)


def run_cli(monkeypatch, capsys, cwd: Path, *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    code = main(["test", *args])
    out = capsys.readouterr()
    return code, TIME.sub(" in X s", out.out), out.err


def check_golden(path: Path, text: str, update: bool) -> None:
    if update:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden {path.name}; run with ROLLBOOK_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")


# ---- the notation: input -> marks ------------------------------------------------------------

def d(text: str) -> date:
    return date.fromisoformat(text)


def week(monday: str, codes: list[str]) -> dict:
    """Marks for the open days of a week of the standard calendar, two codes a day."""
    days = standard_calendar().week_open_days(d(monday))
    assert len(days) * 2 == len(codes)
    return {(day, s): codes[2 * i + k] for i, day in enumerate(days) for k, s in enumerate(SESSIONS) if codes[2 * i + k] != "-"}


NOTATION = [
    # (name, text, expected marks)
    ("week line from its Monday", "2025-09-08 /\\ /\\ NN /\\ I\\",
     week("2025-09-08", ["/", "\\", "/", "\\", "N", "N", "/", "\\", "I", "\\"])),
    ("week line from its first open day", "2025-09-03 /\\ GG /\\",
     week("2025-09-01", ["/", "\\", "G", "G", "/", "\\"])),
    ("a week with closed days lists only the open ones", "2025-09-01 /\\ GG /\\",
     week("2025-09-01", ["/", "\\", "G", "G", "/", "\\"])),
    ("two-character codes: the digit belongs to the letter", "2025-09-08 C1C1 Y1/ J1\\ /Y7 C2C",
     week("2025-09-08", ["C1", "C1", "Y1", "/", "J1", "\\", "/", "Y7", "C2", "C"])),
    ("#, L, U and every category", "2025-09-08 ## LU KV PB WD",
     week("2025-09-08", ["#", "#", "L", "U", "K", "V", "P", "B", "W", "D"])),
    ("comments and blank lines", "\n; a comment\n2025-09-08 /\\ /\\ /\\ /\\ /\\   ; the week of 8 Sep\n\n",
     week("2025-09-08", ["/", "\\"] * 5)),
    ("blanks and tabs between groups", "  2025-09-08\t/\\  /\\\t\t/\\ /\\ /\\  ",
     week("2025-09-08", ["/", "\\"] * 5)),
    ("a range line fills every open day, across half term", "2025-10-23..2025-11-04 /\\",
     {(day, s): c for day in (d("2025-10-23"), d("2025-10-24"), d("2025-11-03"), d("2025-11-04"))
      for s, c in zip(SESSIONS, "/\\")}),
    ("later lines override earlier ones", "2025-09-08..2025-09-12 /\\\n2025-09-08 /\\ OO /\\ /\\ /\\",
     week("2025-09-08", ["/", "\\", "O", "O", "/", "\\", "/", "\\", "/", "\\"])),
    ("a range line after a week line overrides it", "2025-09-08 /\\ OO /\\ /\\ /\\\n2025-09-08..2025-09-12 II",
     week("2025-09-08", ["I", "I"] * 5)),
    ("- means no mark, and removes an earlier one", "2025-09-08..2025-09-12 /\\\n2025-09-08 -- /- /\\ -\\ --",
     week("2025-09-08", ["-", "-", "/", "-", "/", "\\", "-", "\\", "-", "-"])),
    ("lines need not be in date order", "2025-09-15 /\\ /\\ /\\ /\\ GG\n2025-09-08 GG /\\ /\\ /\\ /\\",
     {**week("2025-09-15", ["/", "\\"] * 4 + ["G", "G"]), **week("2025-09-08", ["G", "G"] + ["/", "\\"] * 4)}),
]


@pytest.mark.parametrize("name, text, expected", NOTATION, ids=[n[0] for n in NOTATION])
def test_notation_parses_to_marks(name, text, expected):
    parsed = parse_marks(text, standard_calendar())
    assert parsed.problems == []
    assert parsed.marks == expected


def test_half_day_sessions_take_one_code():
    calendar = standard_calendar()
    calendar.overrides[d("2025-09-12")] = ("AM",)
    calendar.overrides[d("2025-09-11")] = ("PM",)
    parsed = parse_marks("2025-09-08 /\\ /\\ /\\ G N\n2025-09-15..2025-09-15 OI", calendar)
    assert parsed.problems == []
    assert parsed.marks[(d("2025-09-11"), "PM")] == "G" and (d("2025-09-11"), "AM") not in parsed.marks
    assert parsed.marks[(d("2025-09-12"), "AM")] == "N" and (d("2025-09-12"), "PM") not in parsed.marks
    # A range line gives a one-session day the code of its open session.
    parsed = parse_marks("2025-09-11..2025-09-12 OI", calendar)
    assert parsed.marks == {(d("2025-09-11"), "PM"): "I", (d("2025-09-12"), "AM"): "O"}


def test_range_lines_fill_only_days_on_roll():
    parsed = parse_marks("2025-09-08..2025-09-19 /\\", standard_calendar(), (d("2025-09-10"), d("2025-09-16")))
    assert sorted({day for day, _ in parsed.marks}) == [d("2025-09-10"), d("2025-09-11"), d("2025-09-12"),
                                                        d("2025-09-15"), d("2025-09-16")]


def test_explicit_half_terms_replace_the_standard_calendar(tmp_path):
    text = ("policy: letters.yaml\nas_of: 2025-09-12\ncalendar:\n  half_terms: [2025-09-08..2025-10-17]\n"
            "  closed: [2025-09-10]\n  file: true\ncases:\n  - name: c\n    pupils:\n      P1:\n        marks: |\n"
            "          2025-09-08 /\\ /\\ /\\ /\\\n    expect:\n      - {rule: full-attendance, pupil: P1, fires: false}\n")
    (tmp_path / "letters.yaml").write_text((GOLDEN / "letters.yaml").read_text())
    (tmp_path / "c.test.yaml").write_text(text)
    loaded = load_test_file(tmp_path / "c.test.yaml")
    assert loaded.diagnostics == []
    [case] = loaded.test_file.cases
    assert case.calendar.write_file
    assert case.calendar.calendar.week_open_days(d("2025-09-08")) == [d("2025-09-08"), d("2025-09-09"),
                                                                        d("2025-09-11"), d("2025-09-12")]
    assert not case.calendar.calendar.is_open(d("2025-09-03"))  # not in the given half terms
    result = run_test_file(tmp_path / "c.test.yaml")
    assert [c.status for c in result.cases] == ["pass"]


def test_the_standard_calendar_is_the_test_calendar_of_2025_26():
    """tests/registers.py's hand-counted calendar and the default test calendar agree on 2025/26,
    so hand-counted dates carry over to test files."""
    calendar, day = standard_calendar(), d("2025-09-01")
    while day <= CALENDAR_END:
        assert calendar.is_open(day) == is_open(day), day
        day += timedelta(days=1)


# ---- the notation: render then parse gives the same marks (property) ------------------------

CODES = sorted(national_codes().codes)


@st.composite
def grids(draw):
    """Random marks on random open sessions of a few consecutive weeks of the standard calendar."""
    calendar = standard_calendar()
    first = d("2024-09-02") + timedelta(weeks=draw(st.integers(0, 100)))
    weeks = draw(st.integers(1, 4))
    days = calendar.open_days(first, first + timedelta(weeks=weeks) - timedelta(days=1))
    sessions = [(day, s) for day in days for s in calendar.open_sessions(day)]
    chosen = draw(st.lists(st.sampled_from(sessions), unique=True, max_size=len(sessions))) if sessions else []
    return {key: draw(st.sampled_from(CODES)) for key in chosen}


@settings(max_examples=150, deadline=None)
@given(grids())
def test_render_then_parse_gives_the_same_marks(marks):
    calendar = standard_calendar()
    text = render_marks(marks, calendar)
    parsed = parse_marks(text, calendar)
    assert parsed.problems == []
    assert parsed.marks == marks


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(CODES + [NO_MARK]), min_size=10, max_size=10))
def test_any_week_of_codes_parses(codes):
    text = "2025-09-08 " + " ".join(codes[i] + codes[i + 1] for i in range(0, 10, 2))
    parsed = parse_marks(text, standard_calendar())
    assert parsed.problems == []
    assert parsed.marks == week("2025-09-08", codes)


_HEADS = ["2025-09-08", "2025-09-03", "2025-09-01", "2025-10-27", "2025-09-10", "2025-02-30", "2025-9-8",
          "2025-09-03..2025-09-26", "2025-09-26..2025-09-03", "..", "2025-09-03..", "x"]
_TOKEN = st.text(alphabet=st.sampled_from(list("0123456789-/\\#ACGIJLNOUYZnx")), min_size=1, max_size=5)
_LINE = st.builds(lambda head, tokens, comment: " ".join([head, *tokens]) + comment,
                  st.sampled_from(_HEADS), st.lists(_TOKEN, max_size=7), st.sampled_from(["", " ; note", ";"]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=st.sampled_from(list("0123456789-./\\#; \t\nACGIJLNOUYZnx")), max_size=80),
                 st.lists(_LINE, max_size=6).map("\n".join)))
def test_any_text_parses_or_gives_problems_within_it(text):
    """Whatever the text, parsing returns marks or problems (never raises), and every problem
    points inside the text."""
    parsed = parse_marks(text, standard_calendar())
    for problem in parsed.problems:
        assert 0 <= problem.start < problem.end <= len(text), problem
    for day, session in parsed.marks:
        assert session in SESSIONS and standard_calendar().is_open(day)


# ---- errors in test files: golden screens ----------------------------------------------------

def test_enough_error_cases():
    topics = {"notation-unknown-code", "notation-retired-code", "notation-lower-case", "notation-digit-without-letter",
              "notation-unknown-digit-code", "notation-too-few-groups", "notation-too-many-groups", "notation-bad-date",
              "notation-not-monday", "notation-half-day", "rule-unknown", "schema-bad-date", "schema-unknown-key",
              "yaml-syntax", "register-mark-before-joining", "policy-missing", "pupil-unknown-attribute"}
    assert topics <= set(ERROR_CASES)


@pytest.mark.parametrize("name", ERROR_CASES)
def test_error_screen_matches_golden(name, monkeypatch, capsys, update_golden):
    code, out, err = run_cli(monkeypatch, capsys, ERRORS, f"{name}.yaml")
    assert code == 1
    assert "Traceback" not in out + err and "internal error" not in err
    check_golden(ERRORS / f"{name}.expected", out, update_golden)


HEADER = re.compile(r"^(?P<path>[\w./-]+\.yaml):(?P<line>\d+):(?P<col>\d+): error\[[\w.-]+\]: \S")
SOURCE = re.compile(r"^ {0,3}(?P<line>\d+) \| ")
CARET = re.compile(r"^ {5}\| (?P<pad> *)\^+$")


@pytest.mark.parametrize("name", ERROR_CASES)
def test_error_golden_points_into_the_test_file(name):
    """Every problem: file:line:col in the test file, the quoted line, a caret under the column, a hint."""
    text = (ERRORS / f"{name}.expected").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n")[1:] if b.strip() and not re.match(r"^\d+ passed", b)]
    assert blocks
    for block in blocks:
        lines = block.splitlines()
        head = HEADER.match(lines[0])
        assert head, lines[0]
        source_text = (ERRORS / head["path"]).read_text(encoding="utf-8")
        if source_text:  # an empty file has no line to quote
            source, caret = SOURCE.match(lines[1]), CARET.match(lines[2])
            assert source and int(source["line"]) == int(head["line"])
            assert caret and len(caret["pad"]) == int(head["col"]) - 1
            assert lines[1][len(source[0]):] == source_text.splitlines()[int(head["line"]) - 1]
        assert any(line.startswith(("     = hint: ", "     = expected: ")) for line in lines), block


NOTATION_CARETS = [
    # (case, the text the caret is under)
    ("notation-unknown-code", "A"), ("notation-retired-code", "H"), ("notation-lower-case", "n"),
    ("notation-digit-without-letter", "1"), ("notation-letter-takes-no-digit", "G1"),
    ("notation-unknown-digit-code", "C3"), ("notation-bad-date", "2025-09-31"), ("notation-not-monday", "2025-09-17"),
    ("notation-too-few-groups", "/\\ II /\\ /\\"), ("notation-half-day", "II"),
]


@pytest.mark.parametrize("name, under", NOTATION_CARETS)
def test_notation_errors_point_at_the_code(name, under):
    lines = (ERRORS / f"{name}.expected").read_text(encoding="utf-8").splitlines()
    source, caret = lines[3], lines[4]
    start = caret.index("^")
    assert source[start:start + caret.count("^")] == under


# ---- the runner: goldens, exit codes, JUnit --------------------------------------------------

@pytest.mark.parametrize("name, exit_code", [("passing", 0), ("failing", 1)])
def test_runner_output_matches_golden(name, exit_code, monkeypatch, capsys, update_golden):
    code, out, err = run_cli(monkeypatch, capsys, GOLDEN, f"runner/{name}.yaml")
    assert code == exit_code
    check_golden(RUNNER / f"{name}.expected", out, update_golden)


def test_failing_file_shows_expected_against_actual():
    text = (RUNNER / "failing.expected").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "runner/failing.yaml .FFFFF"
    # not fired: the rule's own measures for the pupil; fired when it must not: the evidence
    assert "first-letter did not act; its measures: attendance this term = 91.7% (33 of 36)" in text
    assert "expected first-letter for pupil BELOW not to fire" in text
    assert "first-letter (send_letter): attendance this term = 88.9% (32 of 36)" in text
    assert "attendance this term: expected 88.8%, got 88.9%" in text
    assert "no measure `attendance this year` in the evidence" in text
    assert "pupil FULL: full-attendance (award)" in text
    assert text.rstrip().endswith("1 passed, 5 failed in X s")


def test_junit_xml(monkeypatch, capsys, tmp_path):
    out = tmp_path / "junit.xml"
    code, _, err = run_cli(monkeypatch, capsys, GOLDEN, "runner/failing.yaml", "runner/passing.yaml", "errors/rule-unknown.yaml",
                           "--format", "junit", "--out", str(out))
    assert code == 1
    assert "5 failed" in err and f"wrote JUnit XML to {out}" in err
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"runner/failing.yaml", "runner/passing.yaml", "errors/rule-unknown.yaml"}
    failing = suites["runner/failing.yaml"]
    assert (failing.get("tests"), failing.get("failures"), failing.get("errors")) == ("6", "5", "0")
    cases = {c.get("name"): c for c in failing.findall("testcase")}
    assert len(cases) == 6 and all(c.get("classname") == "runner/failing.yaml" for c in cases.values())
    assert cases["passes"].find("failure") is None
    failure = cases["three illness sessions take attendance below 90%"].find("failure")
    assert failure.get("message") == "expected first-letter for pupil AT to fire"
    assert "attendance this term = 91.7% (33 of 36)" in failure.text
    passing = suites["runner/passing.yaml"]
    assert (passing.get("tests"), passing.get("failures")) == ("2", "0")
    assert all(c.find("failure") is None and c.find("error") is None for c in passing.findall("testcase"))
    broken = suites["errors/rule-unknown.yaml"]
    error = broken.find("testcase").find("error")
    assert broken.get("errors") == "1" and "no rule `first-leter`" in error.text


def test_junit_to_standard_output(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, GOLDEN, "runner/passing.yaml", "--format", "junit")
    assert code == 0
    assert ET.fromstring(out.split("\n", 1)[1]).find("testsuite").get("tests") == "2"
    assert "2 passed, 0 failed" in err


@pytest.mark.parametrize("args", [["--fail-under", "120"], ["--format", "xml"], ["--bogus"], ["--out", "x.xml"]])
def test_bad_command_line_exits_2(args, monkeypatch, capsys):
    monkeypatch.chdir(GOLDEN)
    try:
        code = main(["test", *args, "runner/passing.yaml"])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2


def test_default_path_is_the_current_folder(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, REPO / "examples" / "policy-tests")
    assert code == 0
    assert out.splitlines()[0] == "letters.test.yaml .."


@pytest.mark.parametrize("engine", ENGINES)
def test_rules_engines_give_the_same_results(engine, monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, GOLDEN, "--rules-engine", engine, "runner/failing.yaml")
    assert code == 1
    assert out == (RUNNER / "failing.expected").read_text(encoding="utf-8")


def test_missing_path_and_no_test_files(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "nowhere.test.yaml")
    assert code == 1 and "no such file or folder: nowhere.test.yaml" in err
    code, _, err = run_cli(monkeypatch, capsys, tmp_path)
    assert code == 1 and "no test files" in err


# ---- coverage ----------------------------------------------------------------------------------

def letters_plan():
    policy = check_policy_file(GOLDEN / "letters.yaml").policy
    return policy, compile_policy(policy)


# (truth of `attendance this term < 90%`, of `sessions coded {G, O} this term >= 4`) -> decisive
DECISIVE_OR = [
    ((True, False), {((0,), True)}),
    ((False, True), {((1,), True)}),
    ((False, False), {((0,), False), ((1,), False)}),
    ((True, True), set()),
]


@pytest.mark.parametrize("truth, decisive", DECISIVE_OR)
def test_decisive_operands_of_an_or(truth, decisive):
    _, plan = letters_plan()
    compiled = plan.rules[0]
    operands = rule_operands(compiled.rule, compiled.predicate)
    assert [o.text for o in operands] == ["attendance this term < 90%", "sessions coded {G, O} this term >= 4"]
    assert decisive_operands(compiled.predicate, compiled.atoms, list(truth), operands) == decisive


def test_decisive_operands_nested_and_under_not(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("rollbook: 1\nid: nested\ntitle: t\nversion: '1'\nrules:\n  - id: r\n    title: r\n"
                      "    when: pupil.fsm and not (pupil.ehcp or pupil.cin)\n    then: [{flag: {flag: x}}]\n")
    checked = check_policy_file(policy)
    assert checked.ok, checked.diagnostics
    compiled = compile_policy(checked.policy).rules[0]
    operands = rule_operands(compiled.rule, compiled.predicate)
    assert [(o.path, o.operator, o.text) for o in operands] == [
        ((0,), "and", "pupil.fsm"), ((1,), "and", "not (pupil.ehcp or pupil.cin)"),
        ((1, 0), "or", "pupil.ehcp"), ((1, 1), "or", "pupil.cin")]
    # NNF: fsm and (not ehcp and not cin). fsm true, ehcp true, cin false: the condition is false.
    # fsm is not decisive; `not (...)` (false) is; ehcp (true as written) is, since flipping it makes
    # the `or` false; cin is not. Values are reported as written, not as in the NNF.
    truth = [True, False, True]  # atoms: pupil.fsm, not pupil.ehcp, not pupil.cin
    assert decisive_operands(compiled.predicate, compiled.atoms, truth, operands) == {((1,), False), ((1, 0), True)}


def test_coverage_of_an_or_operand_that_is_never_decisive(monkeypatch, capsys, update_golden):
    """One case, one pupil below 90%: the first `or` operand holds for every subject, so the second
    never matters; the certificate rule never acts."""
    result = run_test_file(GOLDEN / "coverage" / "or-never-decisive.yaml", coverage=True)
    assert [c.status for c in result.cases] == ["pass"]
    report = policy_coverage(result.loaded.test_file.policy, [c.observation for c in result.cases])
    assert (report.rules_covered, len(report.rules), report.percent) == (1, 2, 50.0)
    [first, certificate] = report.rules
    assert first.acted and not certificate.acted
    assert [(op.text, t, f) for op, t, f in first.operands] == [
        ("attendance this term < 90%", True, False), ("sessions coded {G, O} this term >= 4", False, False)]
    assert certificate.where == f"{GOLDEN / 'letters.yaml'}:13:9"
    code, out, _ = run_cli(monkeypatch, capsys, GOLDEN, "--coverage", "coverage/or-never-decisive.yaml")
    assert code == 0
    check_golden(GOLDEN / "coverage" / "or-never-decisive.expected", out, update_golden)
    assert "NEVER decisive         or operand 2 at 9:41: sessions coded {G, O} this term >= 4" in out
    code, out, _ = run_cli(monkeypatch, capsys, GOLDEN, "--coverage", "--fail-under", "100",
                           "coverage/or-never-decisive.yaml")
    assert code == 1 and "rule coverage 50.0% of example-letters is below --fail-under 100%" in out
    code, _, _ = run_cli(monkeypatch, capsys, GOLDEN, "--coverage", "--fail-under", "50", "coverage/or-never-decisive.yaml")
    assert code == 0


# ---- end to end through the installed CLI ---------------------------------------------------------

def test_national_tests_pass_with_full_rule_coverage(rollbook):
    result = rollbook("test", "--coverage", "--fail-under", "100", "policies/national.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"policies/national\.test\.yaml \.+", lines[0])
    assert "  rules: 12 of 12 acted (100.0%)" in lines
    assert "NEVER" not in result.stdout
    assert re.search(r"^\d+ passed, 0 failed in \d+\.\d+ s$", result.stdout, re.M)


def test_cli_examples_folder_and_schema(rollbook):
    result = rollbook("test", "examples/policy-tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("examples/policy-tests/letters.test.yaml ..\n")
    schema = rollbook("schema", "test")
    assert schema.returncode == 0 and '"title": "Rollbook policy test file"' in schema.stdout
    # (`rollbook check policies/` skipping *.test.yaml is held by tests/test_cli_check.py's file count.)


def test_the_documented_example_file_passes(tmp_path):
    """The test file in docs/policy-tests.md ("A test file") runs and passes as written."""
    doc = (REPO / "docs" / "policy-tests.md").read_text(encoding="utf-8")
    block = re.search(r"## A test file\n\n```yaml\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "letters.yaml").write_text((REPO / "examples" / "policy-tests" / "letters.yaml").read_text())
    (tmp_path / "example.test.yaml").write_text(block)
    result = run_test_file(tmp_path / "example.test.yaml")
    assert result.loaded.diagnostics == []
    assert [c.status for c in result.cases] == ["pass"]
