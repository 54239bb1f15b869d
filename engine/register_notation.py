"""The compact register notation of policy test files: a school's register grid as text.

A pupil's marks are written the way a school sees them in its MIS, one school week per line:

    2025-09-08  /\\ /\\ NN /\\ I\\        ; Mon 8 .. Fri 12 September
    2025-09-15  /\\ /\\ /\\ C1C1 /\\

* A **week line** starts with the date of the week's Monday (or of its first open day: both name
  the same week) and then gives one **day group** per open day of that week, in date order,
  separated by blanks. Days the school is closed (holidays, INSET days, bank holidays, as the
  calendar says) are left out, so a line lists only open days.
* A day group is the AM code then the PM code, written together (`/\\`, `NN`, `/I`, `C1C1`,
  `Y1/`). A day open for one session only has one code. `-` in place of a code means "no mark"
  for that session (before a pupil joins, say).
* A code is a letter optionally followed by one digit (the digit always belongs to the letter
  before it: `C1`, `J1`, `Y1` ... `Y7`), or one of `/`, `\\`, `#`. Every code is checked against
  the national code table (engine/data/attendance-codes-2024.yaml); retired codes are refused.
* A **range line** `A..B GROUP` gives the same day group for every open day from A to B (both
  included) on which the pupil is on roll (from joined_on to left_on): `2025-09-03..2026-03-27 /\\`.
* Lines are applied in order; a later line overrides an earlier one for the same sessions, so a
  range line usually comes first and week lines then write the exceptions.
* `;` starts a comment that runs to the end of the line; blank lines are ignored.

Which days are open comes from a `NotationCalendar` (`standard_calendar` unless a test gives its
own); parsing returns the marks by (date, session) and problems as offsets into the text, which
the test-file loader turns into file:line:col diagnostics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Callable

from .calendar import academic_year_of, monday_of
from .codes import national_codes

SESSIONS = ("AM", "PM")
NO_MARK = "-"
COMMENT = ";"
ONE_DAY = timedelta(days=1)
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOKEN = re.compile(r"\S+")


# ---- calendars -------------------------------------------------------------------------------

@dataclass
class NotationCalendar:
    """Which sessions of which dates the school is open, as the notation needs it.

    `open_sessions(day)` gives the open sessions of a date, in order (("AM", "PM"), ("AM",),
    ("PM",) or ()). `labels` gives (term, half_term) of dates when the calendar was given with
    explicit half terms; otherwise terms are left to the engine's rule (`label_terms`).
    """

    sessions: dict[date, tuple[str, ...]] = field(default_factory=dict)  # open dates -> open sessions
    default_year: Callable[[int], dict] | None = None  # academic year -> its {date: sessions}, loaded on first use
    labels: dict[date, tuple[str, int]] | None = None
    overrides: dict[date, tuple[str, ...]] = field(default_factory=dict)  # the test's closed / open days
    _years_loaded: set[int] = field(default_factory=set, init=False, repr=False)

    def _load(self, day: date) -> None:
        year = academic_year_of(day)
        if self.default_year is not None and year not in self._years_loaded:
            self._years_loaded.add(year)
            for d, s in self.default_year(year).items():
                self.sessions.setdefault(d, s)

    def open_sessions(self, day: date) -> tuple[str, ...]:
        if day in self.overrides:
            return self.overrides[day]
        self._load(day)
        return self.sessions.get(day, ())

    def is_open(self, day: date) -> bool:
        return bool(self.open_sessions(day))

    def open_days(self, first: date, last: date) -> list[date]:
        """Open days from first to last, inclusive."""
        out, day = [], first
        while day <= last:
            if self.is_open(day):
                out.append(day)
            day += ONE_DAY
        return out

    def week_open_days(self, monday: date) -> list[date]:
        return self.open_days(monday, monday + timedelta(days=6))


@lru_cache(maxsize=None)
def _standard_year(academic_year: int) -> dict[date, tuple[str, ...]]:
    from .sample import english_calendar

    days = english_calendar(academic_year, 0)
    first_open = next(d.date for d in days if d.open)
    out = {}
    for d in days:
        # INSET days after the start of the autumn term and planned closures are a school's own:
        # the standard calendar keeps only holidays, bank holidays and the start-of-year INSET days.
        reopened = (d.note == "INSET day" and d.date > first_open) or d.marked_closed
        if d.open or reopened:
            out[d.date] = SESSIONS
    return out


def standard_calendar() -> NotationCalendar:
    """The default calendar of policy tests: the English school year of engine.sample's
    `english_calendar` (autumn term from the third weekday of September, half terms in the last
    full week of October, the week whose Monday falls 12-18 February and the late-May bank
    holiday week, Christmas to the first Monday on or after 4 January, two weeks at Easter, the
    early-May bank holiday, summer term to 22 July) without the INSET days and planned closures
    it adds inside terms: a school's own closures are given in the test file."""
    return NotationCalendar(default_year=_standard_year)


# ---- parsing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotationProblem:
    """One problem in a marks text: where (offsets into the text, end exclusive), what, how to fix."""

    start: int
    end: int
    message: str
    hint: str | None = None


@dataclass
class ParsedMarks:
    """The marks a text gives: (date, session) -> code. A session the text leaves out (or marks
    `-`) has no mark."""

    marks: dict[tuple[date, str], str]
    problems: list[NotationProblem]
    origins: dict[tuple[date, str], int] = field(default_factory=dict)  # offset of the code that set each mark


def _day_name(day: date) -> str:
    return f"{_WEEKDAY_NAMES[day.weekday()]} {day.isoformat()}"


def _parse_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


_DATE_HINT = "write dates as YYYY-MM-DD, e.g. 2025-09-08"
_GROUP_HINT = "a day group is the AM code then the PM code with no blank between them, e.g. /\\ or NN or C1C1"


def split_codes(group: str) -> tuple[list[tuple[int, str]], NotationProblem | None]:
    """Split one day group into (offset, code) pairs; a digit belongs to the letter before it.
    Returns a problem (offsets within the group) for a character that cannot start a code."""
    out = []
    i = 0
    while i < len(group):
        ch = group[i]
        if ch.isalpha():
            if i + 1 < len(group) and group[i + 1].isdigit():
                out.append((i, group[i:i + 2]))
                i += 2
            else:
                out.append((i, ch))
                i += 1
        elif ch in "/\\#" or ch == NO_MARK:
            out.append((i, ch))
            i += 1
        elif ch.isdigit():
            return out, NotationProblem(i, i + 1, f"a digit must follow a letter: `{ch}` here starts no code",
                                        "codes with a digit are a letter and one digit (C1, C2, J1, Y1 ... Y7)")
        else:
            return out, NotationProblem(i, i + 1, f"`{ch}` is not an attendance code", _GROUP_HINT)
    return out, None


def check_code(code: str) -> tuple[str, str | None] | None:
    """None when `code` is a valid national code (or `-`); else (message, hint)."""
    if code == NO_MARK:
        return None
    catalogue = national_codes()
    if code in catalogue:
        return None
    if code in catalogue.retired:
        return f"code `{code}` was retired in 2024 and is not accepted", catalogue.retired[code]
    if code.upper() in catalogue:
        return f"unknown attendance code `{code}`", f"codes are upper case: did you mean `{code.upper()}`?"
    if len(code) == 2 and code[1].isdigit():
        with_digit = sorted(c for c in catalogue.codes if len(c) == 2)
        same_letter = [c for c in with_digit if c[0] == code[0]]
        if same_letter:
            return f"unknown attendance code `{code}`", f"`{code[0]}` with a digit is one of {' '.join(same_letter)}"
        if code[0] in catalogue:
            return (f"unknown attendance code `{code}`",
                    f"a digit always belongs to the letter before it, and `{code[0]}` takes none (codes with a digit: "
                    f"{' '.join(with_digit)})")
    return f"unknown attendance code `{code}`", "valid codes: " + " ".join(sorted(catalogue.codes))


def _check_group(group: str, offset: int, day: date, sessions: tuple[str, ...],
                 problems: list[NotationProblem]) -> list[tuple[int, str]] | None:
    """(offset, code) of one day group for one day's open sessions, or None (problems appended)."""
    codes, problem = split_codes(group)
    if problem is not None:
        problems.append(NotationProblem(offset + problem.start, offset + problem.end, problem.message, problem.hint))
        return None
    ok = True
    for at, code in codes:
        bad = check_code(code)
        if bad:
            problems.append(NotationProblem(offset + at, offset + at + len(code), bad[0], bad[1]))
            ok = False
    if not ok:
        return None
    if len(codes) != len(sessions):
        open_words = " and ".join(sessions)
        problems.append(NotationProblem(
            offset, offset + len(group),
            f"day group `{group}` for {_day_name(day)} has {len(codes)} code{'s' if len(codes) != 1 else ''}, "
            f"but the school is open for {len(sessions)} session{'s' if len(sessions) != 1 else ''} that day ({open_words})",
            _GROUP_HINT if len(sessions) == 2 else f"that day has only the {open_words} session: give one code"))
        return None
    return [(offset + at, c) for at, c in codes]


def parse_marks(text: str, calendar: NotationCalendar, on_roll: tuple[date | None, date | None] = (None, None)) -> ParsedMarks:
    """Parse a marks text in the register notation (see the module docstring). Range lines fill
    only the days from `on_roll` (joined_on, left_on; None: no bound), so a joiner's or leaver's
    "present throughout" line needs no exceptions; week lines are taken as written."""
    marks: dict[tuple[date, str], str] = {}
    origins: dict[tuple[date, str], int] = {}
    problems: list[NotationProblem] = []
    line_start = 0
    for raw_line in text.split("\n"):
        here = line_start
        line_start += len(raw_line) + 1
        line = raw_line.split(COMMENT, 1)[0]
        tokens = [(m.start() + here, m.group()) for m in _TOKEN.finditer(line)]
        if not tokens:
            continue
        first_at, first = tokens[0]
        groups = tokens[1:]
        if ".." in first:
            _range_line(first_at, first, groups, calendar, (marks, origins), problems, on_roll)
        else:
            _week_line(first_at, first, groups, calendar, (marks, origins), problems)
    return ParsedMarks(marks, problems, origins)


def _apply(day: date, sessions: tuple[str, ...], codes: list[tuple[int, str]], into: tuple[dict, dict]) -> None:
    marks, origins = into
    for session, (at, code) in zip(sessions, codes):
        if code == NO_MARK:
            marks.pop((day, session), None)
            origins.pop((day, session), None)
        else:
            marks[(day, session)] = code
            origins[(day, session)] = at


def _bad_date(at: int, text: str, problems: list[NotationProblem]) -> None:
    problems.append(NotationProblem(at, at + len(text), f"`{text}` is not a date", _DATE_HINT))


def _week_line(at: int, first: str, groups, calendar: NotationCalendar, marks, problems) -> None:
    day = _parse_date(first)
    if day is None:
        hint = _DATE_HINT
        if first and (first[0] in "/\\#" or first[0].isalpha()):
            hint = "each line starts with a date: the Monday of the week (or its first open day), then one day group per open day"
        problems.append(NotationProblem(at, at + len(first), f"`{first}` is not a date", hint))
        return
    monday = monday_of(day)
    open_days = calendar.week_open_days(monday)
    if not open_days:
        problems.append(NotationProblem(at, at + len(first), f"the school is closed the whole week of {monday.isoformat()}",
                                        "leave out weeks the school is closed, or open days with the test's calendar"))
        return
    if day != monday and day != open_days[0]:
        problems.append(NotationProblem(
            at, at + len(first), f"{_day_name(day)} neither is a Monday nor is the week's first open day",
            f"start the line with the week's Monday {monday.isoformat()}" +
            (f" (or its first open day {open_days[0].isoformat()})" if open_days[0] != monday else "")))
        return
    if len(groups) != len(open_days):
        listed = ", ".join(f"{_WEEKDAY_NAMES[d.weekday()]} {d.day}" for d in open_days)
        closed = [d for d in (monday + timedelta(days=i) for i in range(5)) if d not in open_days]
        closed_text = (" (closed: " + ", ".join(f"{_WEEKDAY_NAMES[d.weekday()]} {d.day}" for d in closed) + ")") if closed else ""
        start = groups[0][0] if groups else at
        end = groups[-1][0] + len(groups[-1][1]) if groups else at + len(first)
        problems.append(NotationProblem(
            start, end,
            f"the week of {monday.isoformat()} has {len(open_days)} open day{'s' if len(open_days) != 1 else ''} "
            f"({listed}){closed_text}, but this line gives {len(groups)} day group{'s' if len(groups) != 1 else ''}",
            "give one day group per open day, in date order; closed days (holidays, INSET days, bank holidays) "
            "are left out"))
        return
    for (g_at, group), d in zip(groups, open_days):
        codes = _check_group(group, g_at, d, calendar.open_sessions(d), problems)
        if codes is not None:
            _apply(d, calendar.open_sessions(d), codes, marks)


def _range_line(at: int, first: str, groups, calendar: NotationCalendar, marks, problems, on_roll=(None, None)) -> None:
    left, _, right = first.partition("..")
    if not left or not right:
        problems.append(NotationProblem(at, at + len(first), f"`{first}` is not a range of dates",
                                        "write a range as FIRST..LAST, e.g. 2025-09-03..2025-10-24"))
        return
    start, end = _parse_date(left), _parse_date(right)
    if start is None:
        _bad_date(at, left, problems)
    if end is None:
        _bad_date(at + len(left) + 2, right, problems)
    if start is None or end is None:
        return
    if end < start:
        problems.append(NotationProblem(at, at + len(first), f"the range {first} ends before it starts",
                                        "write the earlier date first: FIRST..LAST"))
        return
    if len(groups) != 1:
        where = (groups[1][0], groups[-1][0] + len(groups[-1][1])) if len(groups) > 1 else (at, at + len(first))
        problems.append(NotationProblem(
            where[0], where[1], f"a range line gives exactly one day group, not {len(groups)}",
            "write `FIRST..LAST /\\`: the day group is repeated for every open day in the range"))
        return
    g_at, group = groups[0]
    days = calendar.open_days(start, end)
    if not days:
        problems.append(NotationProblem(at, at + len(first), f"the school is not open on any day from {start} to {end}",
                                        "check the dates against the test's calendar"))
        return
    codes, problem = split_codes(group)
    if problem is not None:
        problems.append(NotationProblem(g_at + problem.start, g_at + problem.end, problem.message, problem.hint))
        return
    for c_at, code in codes:
        bad = check_code(code)
        if bad:
            problems.append(NotationProblem(g_at + c_at, g_at + c_at + len(code), bad[0], bad[1]))
            return
    symbols = [(g_at + c_at, c) for c_at, c in codes]
    if len(symbols) != 2:
        problems.append(NotationProblem(g_at, g_at + len(group),
                                        f"the day group of a range line gives the AM and the PM code, not {len(symbols)} code(s)",
                                        _GROUP_HINT))
        return
    joined, left = on_roll
    for d in days:
        if (joined is not None and d < joined) or (left is not None and d > left):
            continue
        sessions = calendar.open_sessions(d)
        _apply(d, sessions, [symbols[SESSIONS.index(s)] for s in sessions], marks)


# ---- rendering ---------------------------------------------------------------------------------

def render_marks(marks: dict[tuple[date, str], str], calendar: NotationCalendar) -> str:
    """Week lines for `marks` (every week from the first to the last marked one that has an open
    day); sessions without a mark are written `-`. `parse_marks` of the result gives `marks` back."""
    if not marks:
        return ""
    first = monday_of(min(d for d, _ in marks))
    last = max(d for d, _ in marks)
    lines = []
    monday = first
    while monday <= last:
        days = calendar.week_open_days(monday)
        if days:
            groups = ["".join(marks.get((d, s), NO_MARK) for s in calendar.open_sessions(d)) for d in days]
            lines.append(f"{monday.isoformat()} {' '.join(groups)}")
        monday += timedelta(days=7)
    return "\n".join(lines) + "\n"
