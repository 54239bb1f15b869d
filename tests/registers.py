"""Build small, hand-checkable registers as real CSV folders (the published register contract),
so evaluation tests go through the same loader as users' data.

The calendar is an English school calendar for 2024/25 and 2025/26 with half terms, Christmas,
Easter and bank holidays: dates below are chosen so a reader can count sessions by hand.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

# (term, half term, first open day, last open day) per academic year.
HALF_TERMS = [
    ("autumn", 1, date(2024, 9, 4), date(2024, 10, 25)),
    ("autumn", 2, date(2024, 11, 4), date(2024, 12, 20)),
    ("spring", 3, date(2025, 1, 6), date(2025, 2, 14)),
    ("spring", 4, date(2025, 2, 24), date(2025, 4, 4)),
    ("summer", 5, date(2025, 4, 22), date(2025, 5, 23)),
    ("summer", 6, date(2025, 6, 2), date(2025, 7, 22)),
    ("autumn", 1, date(2025, 9, 3), date(2025, 10, 24)),
    ("autumn", 2, date(2025, 11, 3), date(2025, 12, 19)),
    ("spring", 3, date(2026, 1, 5), date(2026, 2, 13)),
    ("spring", 4, date(2026, 2, 23), date(2026, 3, 27)),
    ("summer", 5, date(2026, 4, 13), date(2026, 5, 22)),
    ("summer", 6, date(2026, 6, 1), date(2026, 7, 22)),
]
BANK_HOLIDAYS = {date(2025, 5, 5), date(2026, 5, 4)}
CALENDAR_START, CALENDAR_END = date(2024, 9, 1), date(2026, 8, 31)


def half_term_of(day: date):
    for term, half, first, last in HALF_TERMS:
        if first <= day <= last:
            return term, half
    return None


def is_open(day: date) -> bool:
    return day.weekday() < 5 and day not in BANK_HOLIDAYS and half_term_of(day) is not None


def open_days(first: date, last: date) -> list[date]:
    """Every open school day from first to last, inclusive."""
    out, day = [], first
    while day <= last:
        if is_open(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def open_days_back(last: date, n: int) -> list[date]:
    """The n most recent open school days on or before `last`, oldest first: `last` itself (when
    open) is the first day counted back, so open_days_back(d, n)[0] is "the n-th school day back"."""
    out, day = [], last
    while len(out) < n:
        if day < CALENDAR_START:
            raise AssertionError(f"fewer than {n} open days on or before {last} in the test calendar")
        if is_open(day):
            out.append(day)
        day -= timedelta(days=1)
    return out[::-1]


PRESENT = {"AM": "/", "PM": "\\"}


@dataclass
class RegisterBuilder:
    pupils: dict[str, dict] = field(default_factory=dict)
    marks: dict[tuple[str, date, str], tuple[str, int | None]] = field(default_factory=dict)
    closures: set[date] = field(default_factory=set)
    extra_pupil_columns: tuple[str, ...] = ()

    def pupil(self, pupil_id: str, **attributes) -> "RegisterBuilder":
        self.pupils[pupil_id] = {"year_group": "3", "reg_group": "3A", **attributes}
        return self

    def present(self, pupil_id: str, first: date, last: date) -> "RegisterBuilder":
        """Present every open session from first to last (inclusive)."""
        for day in open_days(first, last):
            for session in ("AM", "PM"):
                self.marks[(pupil_id, day, session)] = (PRESENT[session], None)
        return self

    def mark(self, pupil_id: str, day: date, session: str, code: str, minutes_late: int | None = None) -> "RegisterBuilder":
        assert is_open(day), f"{day} is not an open day of the test calendar"
        self.marks[(pupil_id, day, session)] = (code, minutes_late)
        return self

    def day(self, pupil_id: str, day: date, code: str) -> "RegisterBuilder":
        """The same code for both sessions of a day."""
        return self.mark(pupil_id, day, "AM", code).mark(pupil_id, day, "PM", code)

    def days(self, pupil_id: str, days: list[date], code: str) -> "RegisterBuilder":
        for d in days:
            self.day(pupil_id, d, code)
        return self

    def sessions(self, pupil_id: str, first: date, count: int, code: str) -> list[tuple[date, str]]:
        """Code `count` consecutive open sessions starting with first's AM; returns them."""
        out = []
        for d in open_days(first, CALENDAR_END):
            for s in ("AM", "PM"):
                if len(out) == count:
                    return out
                self.mark(pupil_id, d, s, code)
                out.append((d, s))
        return out

    def code_sessions(self, pupil_id: str, first: date, count: int, code: str) -> "RegisterBuilder":
        """As `sessions` (code `count` consecutive open sessions from first's AM), returning the
        builder so calls can be chained."""
        self.sessions(pupil_id, first, count, code)
        return self

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "calendar.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["date", "term", "half_term", "open_am", "open_pm"])
            day = CALENDAR_START
            while day <= CALENDAR_END:
                label = half_term_of(day)
                opened = is_open(day) and day not in self.closures
                if label is None and opened:
                    raise AssertionError(day)
                term, half = label if label else ("", "")
                w.writerow([day.isoformat(), term, half, str(opened).lower(), str(opened).lower()])
                day += timedelta(days=1)
        columns = ["pupil_id", "year_group", "reg_group", "joined_on", "left_on", "sen", "ehcp", "fsm", "cin", "lac"]
        extra = sorted({k for p in self.pupils.values() for k in p} - set(columns))
        with open(folder / "pupils.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns + extra)
            for pid, attrs in sorted(self.pupils.items()):
                row = {"sen": "N", "ehcp": "false", "fsm": "false", "cin": "false", "lac": "false", **attrs}
                w.writerow([pid] + [_text(row.get(c, "")) for c in columns[1:] + extra])
        with open(folder / "marks.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["pupil_id", "date", "session", "code", "minutes_late"])
            for (pid, day, session), (code, minutes) in sorted(self.marks.items()):
                w.writerow([pid, day.isoformat(), session, code, "" if minutes is None else minutes])
        return folder


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
