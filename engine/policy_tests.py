"""Policy tests: load `*.test.yaml` files, run their cases through the evaluation pipeline, and
compare the actions with the expected ones.

    test file ──load (YAML with positions)──▶ validate (schemas/policy-test.schema.json)
              ──build cases (register notation, calendar, prior actions, expectations)──▶
    each case ──write a register folder──▶ load_register ──▶ run_evaluation ──▶ compare

A case's register is written as CSV files and read by `load_register`, and evaluated by
`run_evaluation`, so a test exercises exactly what `rollbook eval` does on the same data. Every
problem in a test file is a Diagnostic at file:line:col (a bad code in a register line points at
the code); a file with problems runs no case. docs/policy-tests.md describes the format.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from .act import PriorAction
from .api import TEST_SUFFIXES, PolicyCheck, RollbookError, check_policy_file, run_evaluation
from .calendar import academic_year_of, label_terms
from .check import subject_kind
from .diagnostics import Diagnostic, Sources, Span, did_you_mean, error, has_errors
from .load import SourceDocument, read_document
from .register_notation import SESSIONS, NotationCalendar, parse_marks, standard_calendar

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "policy-test.schema.json"
SUBJECT_KEYS = ("pupil", "class", "year_group", "school")
# Pupil columns written for every pupil, with their defaults (docs/register-format.md).
PUPIL_DEFAULTS = {"year_group": "3", "reg_group": "3A", "joined_on": "", "left_on": "", "sen": "N"}
YES_NO_ATTRIBUTES = ("ehcp", "fsm", "cin", "lac", "social_worker", "cp", "young_carer", "pupil_premium", "eal")
KNOWN_PUPIL_COLUMNS = (*PUPIL_DEFAULTS, "date_of_birth", "integration_end", *YES_NO_ATTRIBUTES)


@lru_cache(maxsize=None)
def policy_test_schema() -> dict:
    """The policy-test JSON Schema (the public contract of test files)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# ---- the data of a test file ---------------------------------------------------------------------

@dataclass
class PupilSpec:
    pupil_id: str
    attributes: dict[str, str]
    marks: dict[tuple[date, str], str]
    origins: dict[tuple[date, str], Span]  # where each mark was written
    minutes_late: dict[tuple[date, str], int]
    span: Span


@dataclass
class Expectation:
    rule: str
    kind: str
    subject_id: str
    fires: bool
    verb: str | None
    params: dict | None
    alternative: bool | None
    evidence: dict
    span: Span

    def describe(self) -> str:
        what = [self.verb] if self.verb else []
        if self.params:
            what.append(json.dumps(self.params, sort_keys=True))
        if self.alternative is not None:
            what.append("the alternative action" if self.alternative else "not the alternative action")
        shown = f" ({', '.join(what)})" if what else ""
        return f"{self.rule}{shown} for {subject_words(self.kind, self.subject_id)}"


@dataclass
class CalendarSpec:
    calendar: NotationCalendar
    write_file: bool
    span: Span | None


@dataclass
class Case:
    name: str
    as_of: date
    calendar: CalendarSpec
    pupils: list[PupilSpec]
    prior: list[PriorAction]
    expect: list[Expectation]
    only_these: bool
    span: Span


@dataclass
class TestFile:
    path: str
    policy_path: str
    policy: object  # CheckedPolicy
    cases: list[Case]


def subject_words(kind: str, subject_id: str) -> str:
    return {"pupil": "pupil", "class": "class", "year_group": "year group", "school": "school"}[kind] + \
        (f" {subject_id}" if subject_id else " (the register's school)" if kind == "school" else f" {subject_id!r}")


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- loading -------------------------------------------------------------------------------------

class _Reader:
    """Builds the cases of one test file, collecting diagnostics at their source positions."""

    def __init__(self, doc: SourceDocument):
        self.doc = doc
        self.problems: list[Diagnostic] = []
        self.locators: dict = {}
        self.known_attributes: set[str] = set(KNOWN_PUPIL_COLUMNS)

    def span(self, path, key: bool = False) -> Span:
        return self.doc.span(path, key)

    def fail(self, code: str, message: str, path, hint: str | None = None, key: bool = False, span: Span | None = None):
        self.problems.append(error(code, message, span or self.span(path, key), hint=hint))

    def text_span(self, path, start: int, end: int) -> Span:
        """The span of offsets [start, end) inside the scalar at `path`."""
        if path not in self.locators:
            self.locators[path] = self.doc.locator(path)
        locate = self.locators[path]
        line, column = locate(start)
        end_line, end_column = locate(max(start, end - 1))
        return Span(self.doc.path, line, column, end_line, end_column + 1)

    # calendars
    def day_items(self, path, items) -> list[tuple[date, tuple[str, ...] | None]]:
        """(date, sessions or None for the whole day) for each day named by `closed`/`open` items."""
        out = []
        for i, item in enumerate(items):
            if ".." in item:
                a, b = item.split("..")
                first, last = self.date(path + (i,), a), self.date(path + (i,), b)
                if first is None or last is None:
                    continue
                if last < first:
                    self.fail("test.range", f"the range {item} ends before it starts", path + (i,),
                              hint="write the earlier date first: FIRST..LAST")
                    continue
                day = first
                while day <= last:
                    if day.weekday() < 5:  # a range names weekdays; give a weekend day on its own
                        out.append((day, None))
                    day += timedelta(days=1)
            else:
                day_text, _, session = item.partition(" ")
                day = self.date(path + (i,), day_text)
                if day is not None:
                    out.append((day, (session,) if session else None))
        return out

    def date(self, path, text, key: bool = False) -> date | None:
        try:
            return date.fromisoformat(text)
        except (TypeError, ValueError):
            self.fail("test.date", f"`{text}` is not a date", path, hint="write dates as YYYY-MM-DD, e.g. 2025-09-08",
                      key=key)
            return None

    def calendar(self, path, spec: dict | None) -> CalendarSpec:
        if not spec:
            return CalendarSpec(standard_calendar(), False, None)
        if spec.get("half_terms"):
            calendar = NotationCalendar(labels={})
            counts: dict[int, int] = {}
            previous_end = None
            for i, item in enumerate(spec["half_terms"]):
                a, b = item.split("..")
                first, last = self.date(path + ("half_terms", i), a), self.date(path + ("half_terms", i), b)
                if first is None or last is None:
                    continue
                year = academic_year_of(first)
                if last < first or academic_year_of(last) != year or (previous_end and first <= previous_end):
                    self.fail("test.calendar", f"half term {item} must end after it starts, after the half term before "
                              "it, and in the same academic year", path + ("half_terms", i),
                              hint="list half terms in date order, each inside one academic year (1 September to 31 August)")
                    continue
                previous_end = last
                counts[year] = counts.get(year, 0) + 1
                number = counts[year]
                if number > 6:
                    self.fail("test.calendar", f"academic year {year}/{(year + 1) % 100:02d} has more than 6 half terms",
                              path + ("half_terms", i), hint="an academic year has half terms 1-6")
                    continue
                term = ("autumn", "spring", "summer")[(number - 1) // 2]
                day = first
                while day <= last:
                    calendar.labels[day] = (term, number)
                    if day.weekday() < 5:
                        calendar.sessions[day] = SESSIONS
                    day += timedelta(days=1)
        else:
            calendar = standard_calendar()
        for key, opening in (("closed", False), ("open", True)):
            for day, sessions in self.day_items(path + (key,), spec.get(key) or []):
                now = calendar.open_sessions(day)
                if sessions is None:
                    changed = SESSIONS if opening else ()
                elif opening:
                    changed = tuple(s for s in SESSIONS if s in now or s in sessions)
                else:
                    changed = tuple(s for s in now if s not in sessions)
                calendar.overrides[day] = changed
        return CalendarSpec(calendar, bool(spec.get("file")), self.span(path))

    # pupils
    def pupil(self, path, pupil_id: str, data: dict, calendar: NotationCalendar) -> PupilSpec:
        attributes = dict(PUPIL_DEFAULTS)
        attributes.update({a: "false" for a in YES_NO_ATTRIBUTES})
        marks: dict = {}
        origins: dict = {}
        late: dict = {}
        on_roll = []
        for name in ("joined_on", "left_on"):
            value = data.get(name)
            on_roll.append(self.date(path + (name,), _text(value)) if value not in (None, "") else None)
        for name, value in data.items():
            if name == "marks":
                parsed = parse_marks(value, calendar, tuple(on_roll))
                for problem in parsed.problems:
                    self.problems.append(error("test.register", problem.message,
                                               self.text_span(path + ("marks",), problem.start, problem.end),
                                               hint=problem.hint))
                marks = parsed.marks
                origins = {k: self.text_span(path + ("marks",), at, at + 1) for k, at in parsed.origins.items()}
            elif name == "minutes_late":
                for key, minutes in value.items():
                    day_text, session = key.split(" ")
                    day = self.date(path + ("minutes_late", key), day_text, key=True)
                    if day is not None:
                        late[(day, session)] = minutes
            elif name not in self.known_attributes:
                self.fail("test.attribute", f"`{name}` is not a register column or an attribute the policy declares",
                          path + (name,), key=True,
                          hint=did_you_mean(name, [*self.known_attributes, "marks", "minutes_late"]) or
                          "declare it under `attributes:` in the policy to test it")
            else:
                if name in ("date_of_birth", "integration_end") and value not in (None, ""):
                    if self.date(path + (name,), _text(value)) is None:
                        continue
                attributes[name] = _text(value)
        for key in late:
            if key not in marks:
                self.fail("test.minutes-late", f"minutes late given for {key[0]} {key[1]}, which has no mark",
                          path + ("minutes_late",), hint="give minutes late only for sessions the marks give")
        return PupilSpec(str(pupil_id), attributes, marks, origins, late, self.span(path, key=True))

    def subject(self, path, item: dict) -> tuple[str, str] | None:
        given = [k for k in SUBJECT_KEYS if k in item]
        if len(given) != 1:
            self.fail("test.subject", "name exactly one subject: pupil, class, year_group or school" +
                      (f" (this names {', '.join(given)})" if given else ""), path,
                      hint="e.g. `pupil: P1`; a school-level rule: `school: \"\"` (the test register's one school)")
            return None
        kind = given[0]
        return kind, _text(item[kind])

    def rule_id(self, path, rule: str, policy, otherwise: str | None = None) -> bool:
        ids = [r.id for r in policy.rules]
        if rule in ids:
            return True
        disabled = getattr(policy, "disabled", {}) or {}
        why = f" (it is disabled in this policy: {disabled[rule]})" if rule in disabled else ""
        self.fail("test.rule", f"the policy `{policy.id}` has no rule `{rule}`{why}", path + ("rule",),
                  hint=" ".join(filter(None, [did_you_mean(rule, ids) or "rules: " + ", ".join(ids), otherwise])))
        return False

    def case(self, path, data: dict, defaults: dict, policy) -> Case | None:
        before = len(self.problems)
        as_of_text = data.get("as_of", defaults.get("as_of"))
        if as_of_text is None:
            self.fail("test.as-of", f"case `{data['name']}` has no as_of date", path + ("name",),
                      hint="add `as_of: YYYY-MM-DD` to the case, or one for every case at the top of the file")
            as_of = None
        else:
            as_of = self.date(path + ("as_of",) if "as_of" in data else ("as_of",), as_of_text)
        calendar_path = path + ("calendar",) if "calendar" in data else ("calendar",)
        calendar = self.calendar(calendar_path, data.get("calendar", defaults.get("calendar")))
        pupils = [self.pupil(path + ("pupils", pid), pid, p or {}, calendar.calendar) for pid, p in data["pupils"].items()]
        prior = []
        for i, item in enumerate(data.get("prior") or []):
            p = path + ("prior", i)
            subject = self.subject(p, item)
            day = self.date(p + ("as_of",), item["as_of"])
            if subject is None or day is None:
                continue
            # The ledger may hold actions of rules outside this policy (a school policy's support
            # offers, read by `actions with verb ...`): such an action names its verb.
            if not item.get("verb") and not self.rule_id(p, item["rule"], policy,
                                                         "(an action of a rule from another policy gives its `verb`)"):
                continue
            rule = next((r for r in policy.rules if r.id == item["rule"]), None)
            verb = item.get("verb") or rule.actions[0].verb
            prior.append(PriorAction(item["rule"], verb, subject[0], subject[1], "", day,
                                     bool(item.get("alternative", False)), item.get("status", "open")))
        expect = []
        for i, item in enumerate(data.get("expect") or []):
            p = path + ("expect", i)
            subject = self.subject(p, item)
            if subject is None or not self.rule_id(p, item["rule"], policy):
                continue
            if item.get("verb"):
                verbs = {a.verb for r in policy.rules if r.id == item["rule"] for a in (*r.actions, *(r.limit.otherwise if r.limit else ()))}
                if item["verb"] not in verbs:
                    self.fail("test.verb", f"rule `{item['rule']}` has no action `{item['verb']}`", p + ("verb",),
                              hint="its actions: " + ", ".join(sorted(verbs)))
                    continue
            if item.get("evidence") and not item.get("fires", True):
                self.fail("test.evidence", "evidence is checked on an action that fires; this expectation says the "
                          "rule must not fire", p + ("evidence",), key=True,
                          hint="remove `evidence:`, or expect the rule to fire")
                continue
            expect.append(Expectation(item["rule"], subject[0], subject[1], item.get("fires", True), item.get("verb"),
                                      item.get("params"), item.get("alternative"), item.get("evidence") or {}, self.span(p)))
        if len(self.problems) > before or as_of is None:
            return None
        return Case(data["name"], as_of, calendar, pupils, prior, expect, bool(data.get("only_these")), self.span(path + ("name",)))


@dataclass
class LoadedTestFile:
    path: str
    test_file: TestFile | None
    diagnostics: list[Diagnostic]
    sources: Sources


def load_test_file(path: Path | str) -> LoadedTestFile:
    """Read, validate and build one test file (and check the policy it names)."""
    from .validate import validate_against

    path = Path(path)
    shown = str(path)
    doc, problems = read_document(path)
    sources = Sources({shown: doc.text} if doc else {})
    # The YAML reader is shared with policies: say its test-file messages in a test file's words.
    problems = [error(d.code, d.message, d.span, hint="a test file names its `policy:` and lists its `cases:` "
                      "(see docs/policy-tests.md)") if d.code == "policy.empty" else d for d in problems]
    if doc is None or has_errors(problems):
        return LoadedTestFile(shown, None, problems, sources)
    if not isinstance(doc.data, dict):
        return LoadedTestFile(shown, None, [error("test.type", "a test file is a mapping with `policy:` and `cases:`",
                                                  doc.span(()), hint="see docs/policy-tests.md")], sources)
    problems = [d if not (d.hint or "").startswith("policies are read as YAML 1.2") else
                error(d.code, d.message, d.span, hint=d.hint.replace("policies are", "test files are"), expected=d.expected)
                for d in validate_against(policy_test_schema(), doc)]
    if problems:
        return LoadedTestFile(shown, None, problems, sources)
    policy_path = Path(os.path.normpath(path.parent / doc.data["policy"]))
    if not policy_path.is_file():
        return LoadedTestFile(shown, None, [error("test.policy", f"no policy file {policy_path}", doc.span(("policy",)),
                                                  hint="the path is relative to the test file")], sources)
    check: PolicyCheck = check_policy_file(policy_path)
    sources.texts.update(check.sources.texts)
    if not check.ok:
        return LoadedTestFile(shown, None, [error("test.policy", f"the policy {policy_path} has errors (listed below)",
                                                  doc.span(("policy",)), hint=f"run `rollbook check {policy_path}`")]
                              + [d for d in check.diagnostics if d.severity == "error"], sources)
    reader = _Reader(doc)
    reader.known_attributes |= set(check.policy.attributes)
    names: dict[str, int] = {}
    cases = []
    for i, data in enumerate(doc.data["cases"]):
        if data["name"] in names:
            reader.fail("test.duplicate-case", f"two cases are named `{data['name']}` (the first is case {names[data['name']] + 1})",
                        ("cases", i, "name"), hint="give every case its own name")
            continue
        names[data["name"]] = i
        case = reader.case(("cases", i), data, doc.data, check.policy)
        if case is not None:
            cases.append(case)
    if reader.problems:
        # A marks text shared through a YAML alias is parsed once per use: report each problem once.
        unique = list({(d.span, d.code, d.message): d for d in reader.problems}.values())
        return LoadedTestFile(shown, None, unique, sources)
    return LoadedTestFile(shown, TestFile(shown, str(policy_path), check.policy, cases), [], sources)


def test_files(paths: list[Path | str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into test files (folders searched for *.test.yaml). (files, missing)"""
    files: list[Path] = []
    missing: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.name.endswith(TEST_SUFFIXES) and f.is_file()
                                and ".venv" not in f.parts and ".git" not in f.parts))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(str(p))
    return files, missing


# ---- building a case's register -------------------------------------------------------------------

@dataclass
class _WrittenRegister:
    folder: Path
    mark_rows: list[tuple[str, date, str]]  # marks.csv line n is mark_rows[n - 2]
    pupil_rows: list[PupilSpec]


def _write_register(case: Case, folder: Path) -> _WrittenRegister:
    folder.mkdir(parents=True, exist_ok=True)
    columns = list(PUPIL_DEFAULTS) + list(YES_NO_ATTRIBUTES)
    extra = sorted({k for p in case.pupils for k in p.attributes} - set(columns))
    with open(folder / "pupils.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["pupil_id"] + columns + extra)
        for p in case.pupils:
            w.writerow([p.pupil_id] + [p.attributes.get(c, "") for c in columns + extra])
    rows = []
    with open(folder / "marks.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["pupil_id", "date", "session", "code", "minutes_late"])
        for p in case.pupils:
            for (day, session), code in sorted(p.marks.items()):
                late = p.minutes_late.get((day, session))
                w.writerow([p.pupil_id, day.isoformat(), session, code, "" if late is None else late])
                rows.append((p.pupil_id, day, session))
    if case.calendar.write_file:
        _write_calendar(case, folder / "calendar.csv")
    return _WrittenRegister(folder, rows, case.pupils)


def _write_calendar(case: Case, path: Path) -> None:
    """Every weekday (and open weekend day) of the academic years the case touches, labelled with
    the test's half terms or, without them, by the engine's own rule (`label_terms`)."""
    calendar = case.calendar.calendar
    dates = [case.as_of] + [d for p in case.pupils for d, _ in p.marks]
    first_year, last_year = min(map(academic_year_of, dates)), max(map(academic_year_of, dates))
    days, day = [], date(first_year, 9, 1)
    while day <= date(last_year + 1, 8, 31):
        if day.weekday() < 5 or calendar.is_open(day):
            days.append(day)
        day += timedelta(days=1)
    open_dates = [d for d in days if calendar.is_open(d)]
    if calendar.labels is not None:
        labels = {d: calendar.labels.get(d) for d in days}
    else:
        found, _ = label_terms(days, open_dates)
        labels = {d: (found[d].term, found[d].half_term) for d in days}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["date", "term", "half_term", "open_am", "open_pm"])
        for d in days:
            sessions = calendar.open_sessions(d)
            term, half = labels.get(d) or ("", "")
            w.writerow([d.isoformat(), term, half, str("AM" in sessions).lower(), str("PM" in sessions).lower()])


# ---- running --------------------------------------------------------------------------------------

@dataclass
class Failure:
    """One expectation not met: what was expected, what happened, and the evidence."""

    span: Span
    expected: str
    actual: list[str]


@dataclass
class CaseResult:
    case: Case
    status: str  # pass | fail | error
    failures: list[Failure] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    observation: object = None  # coverage.Observation, with --coverage
    seconds: float = 0.0


@dataclass
class FileResult:
    path: str
    loaded: LoadedTestFile
    cases: list[CaseResult]
    seconds: float

    @property
    def errored(self) -> bool:
        return self.loaded.test_file is None


def _register_problem_span(problem, written: _WrittenRegister, case: Case) -> Span:
    name = Path(problem.file).name if problem.file else ""
    if problem.row is not None and name.startswith("marks") and 2 <= problem.row < len(written.mark_rows) + 2:
        pupil_id, day, session = written.mark_rows[problem.row - 2]
        pupil = next(p for p in written.pupil_rows if p.pupil_id == pupil_id)
        return pupil.origins.get((day, session), pupil.span)
    if problem.row is not None and name.startswith("pupils") and 2 <= problem.row < len(written.pupil_rows) + 2:
        return written.pupil_rows[problem.row - 2].span
    if name.startswith("calendar") and case.calendar.span is not None:
        return case.calendar.span
    return case.span


def _register_diagnostics(loaded, written: _WrittenRegister, case: Case) -> list[Diagnostic]:
    """The loader's problems at the test-file text that wrote the rows; several problems at one
    place (a range line's every session, say) are shown once, with a count."""
    grouped: dict[tuple, list] = {}
    for p in loaded.problems:
        span = _register_problem_span(p, written, case)
        grouped.setdefault((span, p.hint), []).append(p)
    out = []
    for (span, hint), problems in grouped.items():
        more = len(problems) - 1 + (loaded.more_problems if len(grouped) == 1 else 0)
        message = problems[0].message + (f" (and {more} more like it)" if more else "")
        out.append(error("test.register", message, span, hint=hint))
    return out


def run_case(case: Case, policy, rules_engine: str = "builtin", coverage: bool = False) -> tuple[CaseResult, list[Diagnostic]]:
    """Evaluate one case and compare. Register problems come back as diagnostics in the test file."""
    from .register import load_register

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rollbook-test-") as tmp:
        written = _write_register(case, Path(tmp) / "register")
        loaded = load_register(written.folder)
        if loaded.register is None:
            diagnostics = _register_diagnostics(loaded, written, case)
            return CaseResult(case, "error", error=[d.message for d in diagnostics]), diagnostics
        try:
            evaluation = run_evaluation(policy, loaded.register, case.as_of, case.prior, rules_engine)
        except RollbookError as exc:
            lines = [str(exc)] + [getattr(p, "message", str(p)) for p in exc.problems]
            return CaseResult(case, "error", error=lines), [error("test.evaluate", "; ".join(lines), case.span)]
        result = CaseResult(case, "pass", actions=evaluation.actions)
        result.failures = compare(case, evaluation)
        if result.failures:
            result.status = "fail"
        if coverage:
            from .coverage import observe

            result.observation = observe(evaluation)
        evaluation.register.connection.close()
    result.seconds = time.perf_counter() - started
    return result, []


def run_test_file(path: Path | str, rules_engine: str = "builtin", coverage: bool = False) -> FileResult:
    """Load one test file and run every case."""
    started = time.perf_counter()
    loaded = load_test_file(path)
    results = []
    if loaded.test_file is not None:
        late_problems = []
        for case in loaded.test_file.cases:
            result, problems = run_case(case, loaded.test_file.policy, rules_engine, coverage)
            results.append(result)
            late_problems.extend(problems)
        loaded.diagnostics.extend(late_problems)
    return FileResult(str(path), loaded, results, time.perf_counter() - started)


# ---- comparing ------------------------------------------------------------------------------------

def _of_subject(actions: list[dict], kind: str, subject_id: str) -> list[dict]:
    return [a for a in actions if a["subject"]["kind"] == kind and a["subject"]["id"] == subject_id]


def _measures_text(evidence: dict) -> str:
    parts = []
    for m in evidence.get("measures", []):
        text = f"{m['measure']} = {m['value']}"
        if "numerator" in m and "denominator" in m:
            text += f" ({m['numerator']} of {m['denominator']})"
        window = m.get("window")
        if window and window.get("start"):
            text += f" [{window['start']} to {window['end']}]"
        parts.append(text)
    return "; ".join(parts) or "no measures"


def action_lines(actions: list[dict]) -> list[str]:
    """One line per rule that acted: its verbs and the evidence's measure values."""
    by_rule: dict[tuple, list[dict]] = {}
    for a in actions:
        by_rule.setdefault((a["rule"], a["subject"]["kind"], a["subject"]["id"]), []).append(a)
    lines = []
    for (rule, _, _), mine in by_rule.items():
        verbs = ", ".join(dict.fromkeys(a["verb"] for a in mine))
        alt = " (alternative)" if any(a.get("alternative") for a in mine) else ""
        lines.append(f"{rule} ({verbs}){alt}: {_measures_text(mine[0]['evidence'])}")
    return lines


def _unfired_measures(evaluation, rule_id: str, kind: str, subject_id: str) -> str | None:
    """The measures of a rule that did not act, for one subject, read from the facts table."""
    from .act import value_of

    facts, plan = evaluation.facts, evaluation.plan
    compiled = next((c for c in plan.rules if c.rule.id == rule_id), None)
    if compiled is None or subject_kind(compiled.rule.scope) != kind or compiled.rule.scope not in facts.tables:
        return None
    scope = compiled.rule.scope
    cursor = evaluation.register.connection.execute(
        f"SELECT * FROM {facts.tables[scope]} WHERE subject_id = ?", [subject_id])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if not rows:
        if scope == "leaver":
            return (f"pupil {subject_id} is not evaluated by this rule about leavers on this date (no leave date "
                    "recorded, not joined by then, or not in the register)")
        if kind == "pupil":
            return f"pupil {subject_id} is not evaluated on this date (not on roll then, or not in the register)"
        return f"{subject_words(kind, subject_id)} has no pupils in the register"
    row = dict(zip(names, rows[0]))
    parts = []
    for text, expr in compiled.measures:
        _, shown, detail = value_of(expr, row, facts.metric_columns, facts.rank_columns.get(scope))
        if "numerator" in detail:
            shown += f" ({detail['numerator']} of {detail['denominator']})"
        parts.append(f"{text} = {shown}")
    return "; ".join(parts) or "no measures"


def _evidence_mismatches(expected: dict, evidence: dict) -> list[str]:
    measures = {m["measure"]: m for m in evidence.get("measures", [])}
    out = []
    for text, want in expected.items():
        m = measures.get(text)
        if m is None:
            out.append(f"no measure `{text}` in the evidence; its measures: " + ", ".join(f"`{k}`" for k in measures))
            continue
        wants = want if isinstance(want, dict) else {"value": want}
        for key, value in wants.items():
            if key == "value":
                got = m["value"]
                same = _same_value(value, got)
            elif key in ("window_start", "window_end"):
                got = (m.get("window") or {}).get(key.split("_")[1])
                same = got == value
            else:
                got = m.get(key)
                same = got == value
            if not same:
                label = text if key == "value" else f"{text} ({key.replace('_', ' ')})"
                out.append(f"{label}: expected {value}, got {got}")
    return out


def _same_value(expected, shown: str) -> bool:
    if isinstance(expected, bool):
        return False
    if isinstance(expected, (int, float)):
        number = shown[:-1] if shown.endswith("%") else shown
        try:
            return Fraction(number) == Fraction(str(expected))
        except (ValueError, ZeroDivisionError):
            return False
    return expected == shown


def _matches(action: dict, e: Expectation) -> bool:
    if action["rule"] != e.rule or action["subject"]["kind"] != e.kind or action["subject"]["id"] != e.subject_id:
        return False
    if e.verb is not None and action["verb"] != e.verb:
        return False
    if e.alternative is not None and bool(action.get("alternative")) != e.alternative:
        return False
    if e.params is not None and any(action["params"].get(k) != v for k, v in e.params.items()):
        return False
    return True


def compare(case: Case, evaluation) -> list[Failure]:
    """Every expectation of the case that the actions do not meet, with expected and actual."""
    actions = evaluation.actions
    failures = []
    for e in case.expect:
        mine = [a for a in actions if _matches(a, e)]
        fired_for_subject = action_lines(_of_subject(actions, e.kind, e.subject_id))
        who = subject_words(e.kind, e.subject_id)
        actual = ([f"actions that fired for {who}:"] + [f"  {line}" for line in fired_for_subject]
                  if fired_for_subject else [f"no action fired for {who}"])
        if e.fires and not mine:
            measures = _unfired_measures(evaluation, e.rule, e.kind, e.subject_id)
            same_rule = [a for a in actions if a["rule"] == e.rule and a["subject"]["kind"] == e.kind
                         and a["subject"]["id"] == e.subject_id]
            if same_rule:
                actual.append(f"{e.rule} acted with: " + ", ".join(
                    f"{a['verb']} {json.dumps(a['params'], sort_keys=True)}" + (" (alternative)" if a.get("alternative") else "")
                    for a in same_rule))
            elif measures:
                actual.append(f"{e.rule} did not act; its measures: {measures}")
            failures.append(Failure(e.span, f"{e.describe()} to fire", actual))
        elif not e.fires and mine:
            failures.append(Failure(e.span, f"{e.describe()} not to fire", actual))
        elif e.fires and e.evidence:
            wrong = _evidence_mismatches(e.evidence, mine[0]["evidence"])
            if wrong:
                failures.append(Failure(e.span, f"{e.describe()} to fire with the evidence given",
                                        [f"it fired, but {w}" for w in wrong] + actual))
    if case.only_these:
        wanted = [e for e in case.expect if e.fires]
        extra = [a for a in actions if not any(_matches(a, e) for e in wanted)]
        if extra:
            subjects = dict.fromkeys((a["subject"]["kind"], a["subject"]["id"]) for a in extra)
            lines = [f"  {subject_words(kind, sid)}: {line}" for kind, sid in subjects
                     for line in action_lines(_of_subject(extra, kind, sid))]
            failures.append(Failure(case.span, "only the expected actions (only_these: true)",
                                    [f"{len(extra)} other action{'s' if len(extra) != 1 else ''} fired:"] + lines))
    return failures


# ---- reports ------------------------------------------------------------------------------------

_MARK = {"pass": ".", "fail": "F", "error": "E"}


def file_line(result: FileResult) -> str:
    """`path ....F.` — one character per case; a file that cannot be loaded shows a single E."""
    if result.errored:
        return f"{result.path} E"
    return f"{result.path} {''.join(_MARK[c.status] for c in result.cases)}"


def counts(results: list[FileResult]) -> tuple[int, int, int]:
    """(passed, failed, errors): a file that cannot be loaded counts as one error."""
    passed = sum(1 for r in results for c in r.cases if c.status == "pass")
    failed = sum(1 for r in results for c in r.cases if c.status == "fail")
    errors = sum(1 for r in results for c in r.cases if c.status == "error") + sum(1 for r in results if r.errored)
    return passed, failed, errors


def summary_line(results: list[FileResult], seconds: float) -> str:
    passed, failed, errors = counts(results)
    parts = [f"{passed} passed", f"{failed} failed"]
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    return f"{', '.join(parts)} in {seconds:.2f} s"


def _where(span: Span) -> str:
    return f"{span.path}:{span.line}:{span.column}"


def failure_blocks(results: list[FileResult]) -> list[str]:
    """Each failing case as a block: the case, then expected vs actual per failed expectation."""
    blocks = []
    for r in results:
        for c in r.cases:
            if c.status != "fail":
                continue
            lines = [f"___ {r.path} :: {c.case.name} ___"]
            for f in c.failures:
                lines.append(f"{_where(f.span)}: expected {f.expected}")
                lines.extend(f"    {line}" for line in f.actual)
            blocks.append("\n".join(lines))
    return blocks


def junit_xml(results: list[FileResult]) -> str:
    """JUnit XML: one testsuite per file, one testcase per case (failure or error inside)."""
    import xml.etree.ElementTree as ET

    from .diagnostics import render

    root = ET.Element("testsuites", name="rollbook test")
    for r in results:
        passed, failed, errors = counts([r])
        suite = ET.SubElement(root, "testsuite", name=r.path, tests=str(max(len(r.cases), 1 if r.errored else 0)),
                              failures=str(failed), errors=str(errors), time=f"{r.seconds:.3f}")
        if r.errored:
            case = ET.SubElement(suite, "testcase", classname=r.path, name="(load)", time="0")
            problem = ET.SubElement(case, "error", message=f"{len(r.loaded.diagnostics)} problem(s) in the test file")
            problem.text = render(r.loaded.diagnostics, r.loaded.sources)
            continue
        for c in r.cases:
            case = ET.SubElement(suite, "testcase", classname=r.path, name=c.case.name, time=f"{c.seconds:.3f}")
            if c.status == "fail":
                first = c.failures[0]
                failure = ET.SubElement(case, "failure", message=f"expected {first.expected}", type="expectation")
                failure.text = "\n".join(f"{_where(f.span)}: expected {f.expected}\n" + "\n".join(f"    {x}" for x in f.actual)
                                         for f in c.failures)
            elif c.status == "error":
                problem = ET.SubElement(case, "error", message=c.error[0] if c.error else "error")
                problem.text = "\n".join(c.error)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
