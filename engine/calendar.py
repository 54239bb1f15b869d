"""School calendars: open sessions, terms, half terms, school days, school weeks, and the windows
that policies count over.

Everything a policy means by "this term" or "the last 10 school weeks" is defined here, once, in
two equivalent forms that tests hold to the same answers:

* pure Python functions over one school's calendar (`SchoolCalendar`), for tests, evidence and
  explanations; and
* SQL over the canonical `calendar` table (`window_sql`), so the metrics stage can compute a
  window for every school at once inside DuckDB.

The canonical calendar table
----------------------------
One row per school and date (see `engine.register` for how it is built)::

    school_id     VARCHAR  '' when the register has no school_id column
    date          DATE
    academic_year INTEGER  the calendar year the academic year starts in: 2025 for 2025/26
                           (1 September to 31 August)
    term          VARCHAR  'autumn' | 'spring' | 'summer' (may be NULL on a closed day of an
                           explicit calendar)
    half_term     INTEGER  1..6 within the academic year: autumn 1-2, spring 3-4, summer 5-6
    open_am       BOOLEAN  the school is open for the morning session
    open_pm       BOOLEAN  the school is open for the afternoon session
    school_day    INTEGER  ordinal of open days (a day with at least one open session) per
                           school, 1, 2, 3, ... increasing across terms and academic years;
                           NULL on a closed day
    school_week   INTEGER  ordinal of school weeks per school: a school week is a
                           Monday-to-Sunday week in which the school is open for at least one
                           session. Every row of a school week carries its ordinal (closed days
                           included); rows of a week with no open session get NULL, so
                           consecutive ordinals skip holidays, terms and academic years.
    week_start    DATE     the Monday of the date's week

Which period is "current"
-------------------------
Every "this ..." window is anchored on the *last open day on or before as_of* (the anchor day).
"This term" is the term containing the anchor day, and likewise for half term and academic year.
So on a date inside a holiday the current period is the one that has just ended: on 28 December
"this term" is the autumn term (its first open day to its last open day), on 2 January (before
the spring term opens) it is still the autumn term, and on 29 October (half-term week) "this half
term" is the first half of the autumn term. A period becomes current on its first open day.

Window bounds
-------------
Every window is a pair of dates, both inclusive. Period windows start on the period's first open
day and end on ``min(last open day of the period, as_of)``; the school-week windows start on a
Monday and end on as_of. A window whose periods are only partly in the calendar is returned
with ``complete=False``; a window that does not exist at all (as_of before the first open day, or
no previous term in the calendar) is ``None`` in Python and has no row in SQL.

=======================  ==================================================================
kind                      bounds (start, end), both inclusive
=======================  ==================================================================
school_weeks N            the N most recent school weeks whose Monday is on or before as_of
                          (so the week containing as_of counts if it is a school week, even
                          if as_of falls before that week's first open day): (Monday of the
                          earliest of them, as_of). Fewer than N in the calendar: all of them,
                          complete=False.
school_days N             the N most recent open days on or before as_of: (earliest of them,
                          as_of). Fewer than N: all of them, complete=False.
this_school_week          the most recent school week whose Monday is on or before as_of:
                          (its Monday, min(its Sunday, as_of)).
this_half_term            (first open day of the anchor's half term, min(its last, as_of))
this_term                 (first open day of the anchor's term, min(its last, as_of))
previous_term             (first, last open day of the term before the anchor's term);
                          None if that term has no open day in the calendar.
this_and_previous_term    (first open day of the previous term, min(last open day of this
                          term, as_of)); previous term missing: starts at this term,
                          complete=False.
this_academic_year        (first open day of the anchor's academic year, min(its last, as_of))
previous_academic_year    (first, last open day of the academic year before the anchor's);
                          None if it has no open day in the calendar.
since D                   (D, as_of); None if D is after as_of.
=======================  ==================================================================

Calendar inference
------------------
When a register has no calendar file, `infer_calendar` builds one from the marks; see
`label_terms` for the exact term and half-term rule.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable, Iterator, Sequence

TERMS = ("autumn", "spring", "summer")
TERM_INDEX = {t: i for i, t in enumerate(TERMS)}
# half_term numbers of each term's first and second half, within the academic year.
TERM_HALVES = {"autumn": (1, 2), "spring": (3, 4), "summer": (5, 6)}
HALF_TERM_TERM = {h: t for t, hs in TERM_HALVES.items() for h in hs}

# The columns every canonical calendar table has, in order.
CALENDAR_COLUMNS = (
    "school_id", "date", "academic_year", "term", "half_term", "open_am", "open_pm",
    "school_day", "school_week", "week_start",
)

ONE_DAY = timedelta(days=1)

# Half-term holidays are found as the longest run of closed weekdays inside a term. A run must be
# at least this long (so an INSET day or a one-off closure is never taken for a half term) and
# must overlap the term's usual half-term season (so a long closure in another month is not).
MIN_HALF_TERM_GAP = 3
HALF_TERM_SEASON = {  # (month, day) bounds, inclusive, of where the half-term gap may overlap
    "autumn": ((10, 1), (11, 15)),
    "spring": ((2, 1), (3, 10)),
    "summer": ((5, 1), (6, 20)),
}


# --------------------------------------------------------------------------- dates


def academic_year_of(day: date) -> int:
    """The academic year containing `day`, named by the calendar year it starts in.

    Academic years run from 1 September to 31 August: 2026-08-31 -> 2025, 2026-09-01 -> 2026.
    """
    return day.year if day.month >= 9 else day.year - 1


def monday_of(day: date) -> date:
    """The Monday of the (Monday-to-Sunday) week containing `day`."""
    return day - timedelta(days=day.weekday())


def easter_sunday(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian algorithm, also known as
    Meeus/Jones/Butcher). easter_sunday(2026) == date(2026, 4, 5)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def weekdays_between(first: date, last: date) -> Iterator[date]:
    """Monday-to-Friday dates from `first` to `last`, both inclusive."""
    day = first
    while day <= last:
        if day.weekday() < 5:
            yield day
        day += ONE_DAY


def _next_weekday(day: date) -> date:
    day += ONE_DAY
    while day.weekday() >= 5:
        day += ONE_DAY
    return day


def _first_monday_on_or_after(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7)


# --------------------------------------------------------------------------- term inference


@dataclass(frozen=True)
class TermLabel:
    """The term and half term (1..6 within the academic year) a date belongs to."""

    term: str
    half_term: int


@dataclass(frozen=True)
class TermSplit:
    """How one boundary was placed: between spring and summer (`easter`) or between the two
    halves of a term (`half_term`), from a closed gap in the data or from a fixed date."""

    academic_year: int
    boundary: str  # "easter" | "autumn" | "spring" | "summer"
    basis: str  # "gap" | "fixed"
    first_day_after: date  # the first date labelled with the later term or half


def _closed_runs(weekdays: Sequence[date], open_dates: set[date]) -> list[list[date]]:
    """Maximal runs of consecutive closed weekdays (Friday is followed by Monday)."""
    runs: list[list[date]] = []
    for day in weekdays:
        if day in open_dates:
            continue
        if runs and _next_weekday(runs[-1][-1]) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _in_season(run: list[date], term: str, academic_year: int) -> bool:
    (m1, d1), (m2, d2) = HALF_TERM_SEASON[term]
    year = academic_year if term == "autumn" else academic_year + 1
    return run[0] <= date(year, m2, d2) and run[-1] >= date(year, m1, d1)


def _fixed_half_split(term: str, academic_year: int) -> date:
    """The first day of a term's second half when no half-term gap is found in the data."""
    if term == "autumn":
        return date(academic_year, 11, 1)
    if term == "spring":
        # The spring half term is the week whose Monday falls 12-18 February, so the second
        # half starts on the first Monday on or after 19 February.
        return _first_monday_on_or_after(date(academic_year + 1, 2, 19))
    return date(academic_year + 1, 6, 1)


def label_terms(dates: Iterable[date], open_dates: Iterable[date]) -> tuple[dict[date, TermLabel], list[TermSplit]]:
    """Label every date of one school with its term and half term, from which days were open.

    `dates` are the calendar's dates (typically every weekday between the first and last mark);
    `open_dates` the dates with at least one open session. The rule, per academic year
    (1 September to 31 August):

    * autumn term: September to December; spring term: 1 January to the Easter boundary;
      summer term: the day after the Easter boundary to 31 August.
    * Easter boundary: take the run of consecutive closed weekdays (among `dates`) that contains
      Good Friday. With k days in the run, the first ceil(k/2) belong to spring and the rest to
      summer (the boundary is the run's middle; weekends go with the weekday before them). If
      Good Friday is not among `dates` or is open, the boundary is Easter Sunday (spring up to
      and including it).
    * Half terms: a term's candidate half-term gaps are runs of at least MIN_HALF_TERM_GAP
      consecutive closed weekdays with an open day of the same term before and after them, that
      overlap HALF_TERM_SEASON (autumn 1 Oct-15 Nov, spring 1 Feb-10 Mar, summer 1 May-20 Jun).
      The longest candidate wins (the earliest on a tie); its days belong to the first half, and
      the second half starts the day after its last weekday. With no candidate, the second half
      starts on a fixed date: 1 November (autumn), the first Monday on or after 19 February
      (spring), 1 June (summer).

    Returns the labels and, for the calendar note, how each boundary was placed.
    """
    days = sorted(set(dates))
    opened = set(open_dates)
    labels: dict[date, TermLabel] = {}
    splits: list[TermSplit] = []
    by_year: dict[int, list[date]] = {}
    for day in days:
        by_year.setdefault(academic_year_of(day), []).append(day)

    for year, year_days in by_year.items():
        weekdays = [d for d in year_days if d.weekday() < 5]
        easter = easter_sunday(year + 1)
        good_friday = easter - timedelta(days=2)
        last_spring_day = easter
        basis = "fixed"
        if good_friday in set(weekdays) and good_friday not in opened:
            run = next(r for r in _closed_runs(weekdays, opened) if good_friday in r)
            last_spring_day = run[(len(run) - 1) // 2]
            basis = "gap"
        summer_from = last_spring_day + ONE_DAY
        while basis == "gap" and summer_from.weekday() >= 5:  # weekends follow the weekday before
            summer_from += ONE_DAY
        if any(d.month < 9 for d in year_days):
            splits.append(TermSplit(year, "easter", basis, summer_from))

        def term_of(day: date) -> str:
            if day.month >= 9:
                return "autumn"
            return "spring" if day < summer_from else "summer"

        terms: dict[str, list[date]] = {t: [] for t in TERMS}
        for day in year_days:
            terms[term_of(day)].append(day)
        for term, term_days in terms.items():
            if not term_days:
                continue
            term_weekdays = [d for d in term_days if d.weekday() < 5]
            open_in_term = [d for d in term_days if d in opened]
            candidates = []
            if open_in_term:
                first_open, last_open = open_in_term[0], open_in_term[-1]
                for run in _closed_runs(term_weekdays, opened):
                    if (
                        len(run) >= MIN_HALF_TERM_GAP
                        and first_open < run[0]
                        and run[-1] < last_open
                        and _in_season(run, term, year)
                    ):
                        candidates.append(run)
            if candidates:
                best = max(candidates, key=lambda r: (len(r), -r[0].toordinal()))
                second_from, half_basis = best[-1] + ONE_DAY, "gap"
            else:
                second_from, half_basis = _fixed_half_split(term, year), "fixed"
            splits.append(TermSplit(year, term, half_basis, second_from))
            first_half, second_half = TERM_HALVES[term]
            for day in term_days:
                labels[day] = TermLabel(term, first_half if day < second_from else second_half)
    return labels, splits


@dataclass(frozen=True)
class CalendarInference:
    """What `infer_calendar` did, for the register's calendar note."""

    schools: int
    days: int
    splits: tuple[TermSplit, ...]

    @property
    def note(self) -> str:
        fixed = [s for s in self.splits if s.basis == "fixed"]
        sentence = (
            "No calendar file was given, so the calendar was inferred from the marks: a session "
            "counts as open when any pupil has a mark other than '#' for it, and terms and half "
            "terms follow the standard English academic year (autumn term to December, spring "
            "term to the middle of the Easter holiday, summer term after it; each term split at "
            "its half-term holiday, found as the longest run of closed weekdays"
        )
        if fixed:
            sentence += f", or at a fixed date for {len(fixed)} of {len(self.splits)} boundaries where the data show no such run"
        return sentence + ")."


def infer_calendar(connection, marks_table: str = "marks", out_table: str = "calendar") -> CalendarInference:
    """Build the canonical calendar table `out_table` from the marks in `marks_table`.

    Open sessions: (school, date, session) is open when the school has any mark for it whose
    code is not '#' (planned closure); a date where every mark is '#' is closed. Dates: every
    weekday from each school's first to its last marked date, plus any marked weekend date.
    Terms and half terms: `label_terms`.
    """
    rows = connection.execute(
        f"""
        SELECT school_id, date,
               bool_or(session = 'AM' AND code <> '#') AS open_am,
               bool_or(session = 'PM' AND code <> '#') AS open_pm
        FROM {marks_table} GROUP BY school_id, date ORDER BY school_id, date
        """
    ).fetchall()
    per_school: dict[str, dict[date, tuple[bool, bool]]] = {}
    for school_id, day, open_am, open_pm in rows:
        per_school.setdefault(school_id, {})[day] = (bool(open_am), bool(open_pm))

    out_rows: list[tuple] = []
    splits: list[TermSplit] = []
    for school_id, sessions in per_school.items():
        marked = sorted(sessions)
        days = sorted(set(weekdays_between(marked[0], marked[-1])) | set(marked))
        open_dates = {d for d, (am, pm) in sessions.items() if am or pm}
        labels, school_splits = label_terms(days, open_dates)
        splits.extend(school_splits)
        for day in days:
            am, pm = sessions.get(day, (False, False))
            out_rows.append((school_id, day, labels[day].term, labels[day].half_term, am, pm))

    import pyarrow as pa  # local: only inference needs it

    table = pa.table(
        {
            "school_id": pa.array([r[0] for r in out_rows], pa.string()),
            "date": pa.array([r[1] for r in out_rows], pa.date32()),
            "term": pa.array([r[2] for r in out_rows], pa.string()),
            "half_term": pa.array([r[3] for r in out_rows], pa.int32()),
            "open_am": pa.array([r[4] for r in out_rows], pa.bool_()),
            "open_pm": pa.array([r[5] for r in out_rows], pa.bool_()),
        }
    )
    view = "_rb_inferred_calendar"
    connection.register(view, table)
    try:
        build_calendar_table(connection, view, out_table)
    finally:
        connection.unregister(view)
    return CalendarInference(len(per_school), len(out_rows), tuple(splits))


def build_calendar_table(connection, source: str, out_table: str, extra_columns: Sequence[str] = ()) -> None:
    """Create `out_table` from `source` (a table or view with school_id, date, term, half_term,
    open_am, open_pm and `extra_columns`), adding academic_year, school_day, school_week and
    week_start as documented in this module."""
    inner_extras = "".join(f', "{c}"' for c in extra_columns)
    outer_extras = "".join(f', b."{c}"' for c in extra_columns)
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE {out_table} AS
        WITH base AS (
            SELECT school_id, date,
                   CAST(CASE WHEN month(date) >= 9 THEN year(date) ELSE year(date) - 1 END AS INTEGER) AS academic_year,
                   term, CAST(half_term AS INTEGER) AS half_term, open_am, open_pm,
                   CAST(date_trunc('week', date) AS DATE) AS week_start{inner_extras}
            FROM {source}
        ),
        weeks AS (
            SELECT school_id, week_start,
                   CAST(row_number() OVER (PARTITION BY school_id ORDER BY week_start) AS INTEGER) AS school_week
            FROM (SELECT DISTINCT school_id, week_start FROM base WHERE open_am OR open_pm)
        )
        SELECT b.school_id, b.date, b.academic_year, b.term, b.half_term, b.open_am, b.open_pm,
               CASE WHEN b.open_am OR b.open_pm THEN CAST(count(*) FILTER (WHERE b.open_am OR b.open_pm) OVER (
                   PARTITION BY b.school_id ORDER BY b.date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS INTEGER)
               END AS school_day,
               w.school_week, b.week_start{outer_extras}
        FROM base b LEFT JOIN weeks w ON w.school_id = b.school_id AND w.week_start = b.week_start
        ORDER BY b.school_id, b.date
        """
    )


# --------------------------------------------------------------------------- one school's calendar


@dataclass(frozen=True)
class CalendarDay:
    """One date of one school's calendar, with the derived ordinals filled in by SchoolCalendar."""

    date: date
    open_am: bool
    open_pm: bool
    term: str | None
    half_term: int | None
    school_day: int | None = None
    school_week: int | None = None

    @property
    def is_open(self) -> bool:
        return self.open_am or self.open_pm

    @property
    def academic_year(self) -> int:
        return academic_year_of(self.date)

    @property
    def week_start(self) -> date:
        return monday_of(self.date)


@dataclass(frozen=True)
class Window:
    """Inclusive date bounds of a window. Unpacks as ``start, end = window``.

    `complete` is False when the calendar holds only part of what was asked for (fewer than N
    school weeks or days, or no previous term for "this and previous term")."""

    start: date
    end: date
    complete: bool = True

    def __iter__(self) -> Iterator[date]:
        yield self.start
        yield self.end


@dataclass
class SchoolCalendar:
    """One school's calendar in date order, with school_day and school_week computed exactly as
    `build_calendar_table` computes them in SQL."""

    days: list[CalendarDay]
    school_id: str = ""
    open_dates: list[date] = field(init=False)
    school_weeks: list[date] = field(init=False)  # Mondays of school weeks, ascending
    _open_days: list[CalendarDay] = field(init=False)
    _term_bounds: dict[tuple[int, int], tuple[date, date]] = field(init=False)
    _half_bounds: dict[tuple[int, int], tuple[date, date]] = field(init=False)
    _year_bounds: dict[int, tuple[date, date]] = field(init=False)

    @classmethod
    def from_days(cls, days: Iterable[tuple], school_id: str = "") -> "SchoolCalendar":
        """Build from (date, open_am, open_pm, term, half_term) tuples or CalendarDay objects."""
        raw = [d if isinstance(d, CalendarDay) else CalendarDay(d[0], bool(d[1]), bool(d[2]), d[3], d[4]) for d in days]
        return cls(raw, school_id)

    @classmethod
    def from_table(cls, connection, school_id: str = "", table: str = "calendar") -> "SchoolCalendar":
        """Read one school's rows of a canonical calendar table."""
        rows = connection.execute(
            f"SELECT date, open_am, open_pm, term, half_term FROM {table} WHERE school_id = ? ORDER BY date",
            [school_id],
        ).fetchall()
        return cls.from_days(rows, school_id)

    def __post_init__(self) -> None:
        raw = sorted(self.days, key=lambda d: d.date)
        if len({d.date for d in raw}) != len(raw):
            raise ValueError("a school calendar has one row per date")
        school_weeks = sorted({d.week_start for d in raw if d.is_open})
        week_ordinal = {w: i + 1 for i, w in enumerate(school_weeks)}
        days: list[CalendarDay] = []
        school_day = 0
        for d in raw:
            if d.is_open:
                if d.term not in TERM_INDEX or d.half_term not in HALF_TERM_TERM:
                    raise ValueError(f"open day {d.date} needs a term and a half term")
                school_day += 1
            days.append(
                CalendarDay(d.date, d.open_am, d.open_pm, d.term, d.half_term,
                            school_day if d.is_open else None, week_ordinal.get(d.week_start))
            )
        self.days = days
        self.school_weeks = school_weeks
        self._open_days = [d for d in days if d.is_open]
        self.open_dates = [d.date for d in self._open_days]
        self._term_bounds, self._half_bounds, self._year_bounds = {}, {}, {}
        for d in self._open_days:
            for bounds, key in (
                (self._term_bounds, (d.academic_year, TERM_INDEX[d.term])),
                (self._half_bounds, (d.academic_year, d.half_term)),
                (self._year_bounds, d.academic_year),
            ):
                first, _ = bounds.get(key, (d.date, d.date))
                bounds[key] = (first, d.date)

    def anchor(self, as_of: date) -> CalendarDay | None:
        """The last open day on or before as_of: the day every "this ..." window is keyed on."""
        k = bisect.bisect_right(self.open_dates, as_of)
        return self._open_days[k - 1] if k else None


def _previous_key(key: tuple[int, int], periods_per_year: int, first: int) -> tuple[int, int]:
    year, index = key
    return (year - 1, first + periods_per_year - 1) if index == first else (year, index - 1)


def last_school_weeks(cal: SchoolCalendar, as_of: date, n: int) -> Window | None:
    """The N most recent school weeks whose Monday is on or before as_of: (Monday of the earliest,
    as_of). None if there is no such week; complete=False if fewer than N exist."""
    if n < 1:
        raise ValueError("n must be at least 1")
    k = bisect.bisect_right(cal.school_weeks, as_of)
    if not k:
        return None
    return Window(cal.school_weeks[max(0, k - n)], as_of, k >= n)


def last_school_days(cal: SchoolCalendar, as_of: date, n: int) -> Window | None:
    """The N most recent open days on or before as_of: (the earliest of them, as_of)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    k = bisect.bisect_right(cal.open_dates, as_of)
    if not k:
        return None
    return Window(cal.open_dates[max(0, k - n)], as_of, k >= n)


def this_school_week(cal: SchoolCalendar, as_of: date) -> Window | None:
    """The most recent school week whose Monday is on or before as_of: (Monday, min(Sunday, as_of))."""
    k = bisect.bisect_right(cal.school_weeks, as_of)
    if not k:
        return None
    monday = cal.school_weeks[k - 1]
    return Window(monday, min(monday + timedelta(days=6), as_of))


def _current(bounds: tuple[date, date], as_of: date, complete: bool = True) -> Window:
    return Window(bounds[0], min(bounds[1], as_of), complete)


def this_half_term(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first open day of the anchor day's half term, min(its last open day, as_of))."""
    a = cal.anchor(as_of)
    return _current(cal._half_bounds[(a.academic_year, a.half_term)], as_of) if a else None


def this_term(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first open day of the anchor day's term, min(its last open day, as_of))."""
    a = cal.anchor(as_of)
    return _current(cal._term_bounds[(a.academic_year, TERM_INDEX[a.term])], as_of) if a else None


def previous_term(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first, last open day) of the term before the anchor day's term, if the calendar has it."""
    a = cal.anchor(as_of)
    if a is None:
        return None
    bounds = cal._term_bounds.get(_previous_key((a.academic_year, TERM_INDEX[a.term]), 3, 0))
    return Window(*bounds) if bounds else None


def this_and_previous_term(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first open day of the previous term, min(last open day of this term, as_of)); without a
    previous term in the calendar, this term alone with complete=False."""
    current, previous = this_term(cal, as_of), previous_term(cal, as_of)
    if current is None:
        return None
    if previous is None:
        return Window(current.start, current.end, False)
    return Window(previous.start, current.end)


def this_academic_year(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first open day of the anchor day's academic year, min(its last open day, as_of))."""
    a = cal.anchor(as_of)
    return _current(cal._year_bounds[a.academic_year], as_of) if a else None


def previous_academic_year(cal: SchoolCalendar, as_of: date) -> Window | None:
    """(first, last open day) of the academic year before the anchor day's, if in the calendar."""
    a = cal.anchor(as_of)
    if a is None:
        return None
    bounds = cal._year_bounds.get(a.academic_year - 1)
    return Window(*bounds) if bounds else None


def since(cal: SchoolCalendar, as_of: date, start: date) -> Window | None:
    """(start, as_of), both inclusive; None if start is after as_of."""
    return Window(start, as_of) if start <= as_of else None


# Window kinds: name -> (python function, needs n, needs a date)
WINDOW_KINDS = {
    "school_weeks": last_school_weeks,
    "school_days": last_school_days,
    "this_school_week": this_school_week,
    "this_half_term": this_half_term,
    "this_term": this_term,
    "previous_term": previous_term,
    "this_and_previous_term": this_and_previous_term,
    "this_academic_year": this_academic_year,
    "previous_academic_year": previous_academic_year,
    "since": since,
}


# What each window means, in words a parent can read (`rollbook render` publishes these). Keys
# are the window kinds of the condition language (engine.ast.WINDOW_KINDS, with `last` split by
# unit); the bounds above and in docs/semantics.md are the exact definitions these summarise.
WINDOW_MEANINGS = {
    "school_weeks": "the last N school weeks: the N most recent weeks (Monday to Sunday) in which the "
                    "school was open for at least one session, up to and including the day of the check. "
                    "Holidays are skipped, so the period can reach back across half terms, terms and "
                    "academic years",
    "school_days": "the last N school days: the N most recent days on which the school was open, up to "
                   "and including the day of the check",
    "days": "the last N days: calendar days, holidays included, up to and including the day of the check",
    "weeks": "the last N weeks: 7 × N calendar days, holidays included, up to and including the day of "
             "the check",
    "years": "the last N years: from the day after the same date N years earlier up to and including "
             "the day of the check",
    "this_school_week": "this school week: from the Monday of the current school week up to the day of "
                        "the check",
    "this_half_term": "this half term: from the first day of the current half term up to the day of the "
                      "check (in a holiday, the half term that has just ended)",
    "this_term": "this term: from the first day of the current term up to the day of the check (in a "
                 "holiday, the term that has just ended)",
    "previous_term": "the previous term: the whole of the term before the current one",
    "this_and_previous_term": "this and the previous term: from the first day of the previous term up "
                              "to the day of the check",
    "this_academic_year": "this academic year: from the first day of the current school year (which "
                          "runs from September to August) up to the day of the check",
    "previous_academic_year": "the previous academic year: the whole of the school year before the "
                              "current one",
    "since": "since a date: from that date up to and including the day of the check",
    "ever": "ever: every session the pupil has had at the school, up to the day of the check",
}


def window(cal: SchoolCalendar, kind: str, as_of: date, n: int | None = None, start: date | None = None) -> Window | None:
    """Dispatch to the window function named `kind` (see WINDOW_KINDS)."""
    if kind in ("school_weeks", "school_days"):
        return WINDOW_KINDS[kind](cal, as_of, n)
    if kind == "since":
        return since(cal, as_of, start)
    if kind not in WINDOW_KINDS:
        raise ValueError(f"unknown window kind {kind!r}")
    return WINDOW_KINDS[kind](cal, as_of)


# --------------------------------------------------------------------------- the same windows in SQL


def _date_literal(day: date) -> str:
    if not isinstance(day, date):
        raise TypeError(f"expected a date, got {day!r}")
    return f"DATE '{day.isoformat()}'"


def window_sql(kind: str, as_of: date, n: int | None = None, *, start: date | None = None,
               calendar_table: str = "calendar") -> str:
    """A query returning one row per school that has the window, with columns
    ``school_id VARCHAR, start_date DATE, end_date DATE, complete BOOLEAN``: the same bounds as
    the Python function of the same kind (see the table in this module's docstring).

    The metrics stage joins marks to this on school_id and ``date BETWEEN start_date AND
    end_date`` (and intersects with each pupil's time on roll)."""
    asof = _date_literal(as_of)
    open_days = f"""
        open_days AS (
            SELECT school_id, date, academic_year, half_term, school_day, school_week, week_start,
                   academic_year * 3 + CASE term WHEN 'autumn' THEN 0 WHEN 'spring' THEN 1 WHEN 'summer' THEN 2 END AS term_seq,
                   academic_year * 6 + half_term AS half_seq
            FROM {calendar_table} WHERE open_am OR open_pm
        ),
        anchor AS (
            SELECT * FROM open_days WHERE date <= {asof}
            QUALIFY row_number() OVER (PARTITION BY school_id ORDER BY date DESC) = 1
        )"""

    def period(key: str, back: int) -> str:
        return f"""
            SELECT a.school_id, min(o.date) AS start_date, least(max(o.date), {asof}) AS end_date, true AS complete
            FROM anchor a JOIN open_days o ON o.school_id = a.school_id AND o.{key} = a.{key} - {back}
            GROUP BY a.school_id"""

    if kind in ("school_weeks", "school_days"):
        if not isinstance(n, int) or n < 1:
            raise ValueError("n must be a positive integer")
    if kind == "school_weeks":
        body = f"""
        weeks AS (SELECT DISTINCT school_id, school_week, week_start FROM open_days),
        current_week AS (SELECT school_id, max(school_week) AS w FROM weeks WHERE week_start <= {asof} GROUP BY school_id)
        SELECT c.school_id, min(k.week_start) AS start_date, {asof} AS end_date, c.w >= {n} AS complete
        FROM current_week c JOIN weeks k ON k.school_id = c.school_id AND k.school_week BETWEEN c.w - {n - 1} AND c.w
        GROUP BY c.school_id, c.w"""
    elif kind == "school_days":
        body = f"""
        current_day AS (SELECT school_id, max(school_day) AS d FROM open_days WHERE date <= {asof} GROUP BY school_id)
        SELECT c.school_id, min(o.date) AS start_date, {asof} AS end_date, c.d >= {n} AS complete
        FROM current_day c JOIN open_days o ON o.school_id = c.school_id AND o.school_day BETWEEN c.d - {n - 1} AND c.d
        GROUP BY c.school_id, c.d"""
    elif kind == "this_school_week":
        body = f"""
        weeks AS (SELECT DISTINCT school_id, week_start FROM open_days WHERE week_start <= {asof})
        SELECT school_id, week_start AS start_date, least(CAST(week_start + 6 AS DATE), {asof}) AS end_date, true AS complete
        FROM weeks QUALIFY row_number() OVER (PARTITION BY school_id ORDER BY week_start DESC) = 1"""
    elif kind == "this_half_term":
        body = period("half_seq", 0)
    elif kind == "this_term":
        body = period("term_seq", 0)
    elif kind == "previous_term":
        body = period("term_seq", 1)
    elif kind == "this_and_previous_term":
        body = f"""
        this_period AS ({period("term_seq", 0)}),
        previous_period AS ({period("term_seq", 1)})
        SELECT t.school_id, coalesce(p.start_date, t.start_date) AS start_date, t.end_date,
               p.school_id IS NOT NULL AS complete
        FROM this_period t LEFT JOIN previous_period p ON p.school_id = t.school_id"""
    elif kind == "this_academic_year":
        body = period("academic_year", 0)
    elif kind == "previous_academic_year":
        body = period("academic_year", 1)
    elif kind == "since":
        day = _date_literal(start)
        body = f"""
        SELECT DISTINCT school_id, {day} AS start_date, {asof} AS end_date, true AS complete
        FROM {calendar_table} WHERE {day} <= {asof}"""
    else:
        raise ValueError(f"unknown window kind {kind!r}")
    # Bodies that start with SELECT follow the shared CTEs directly; the others add their own.
    joiner = "\n" if body.lstrip().upper().startswith("SELECT") else ",\n"
    return f"WITH {open_days.strip()}{joiner}{body.strip()}\n"
