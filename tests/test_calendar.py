"""Calendar semantics: Easter, term inference, school days and weeks, and every window kind, in
Python and in SQL (which must agree)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import calendar as cal
from engine.calendar import SchoolCalendar, Window, label_terms, window, window_sql
from engine.sample import english_calendar

D = date.fromisoformat


def school_calendar(*years: int, school_index: int = 0) -> SchoolCalendar:
    """The generator's English calendar for the given academic years, labelled by label_terms."""
    days = [d for y in years for d in english_calendar(y, school_index)]
    labels, _ = label_terms([d.date for d in days], {d.date for d in days if d.open})
    return SchoolCalendar.from_days(
        (d.date, d.open, d.open, labels[d.date].term, labels[d.date].half_term) for d in days
    )


@pytest.fixture(scope="module")
def year_2025():
    return school_calendar(2025)


@pytest.fixture(scope="module")
def years_2024_2025():
    return school_calendar(2024, 2025)


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize("year, expected", [
    (2019, "2019-04-21"), (2024, "2024-03-31"), (2025, "2025-04-20"), (2026, "2026-04-05"),
    (2027, "2027-03-28"), (2038, "2038-04-25"), (2285, "2285-03-22"), (1818, "1818-03-22"),
])
def test_easter_sunday(year, expected):
    assert cal.easter_sunday(year) == D(expected)


@pytest.mark.parametrize("day, year", [
    ("2025-08-31", 2024), ("2025-09-01", 2025), ("2025-12-31", 2025), ("2026-01-01", 2025), ("2026-07-22", 2025),
])
def test_academic_year_of(day, year):
    assert cal.academic_year_of(D(day)) == year


def test_the_sample_calendar_is_a_typical_english_year(year_2025):
    open_days = year_2025.open_dates
    assert 185 <= len(open_days) <= 195
    assert open_days[0] == D("2025-09-03") and open_days[-1] == D("2026-07-22")
    closed = {d.date for d in year_2025.days if not d.is_open}
    for holiday in ("2025-10-27", "2025-12-22", "2026-02-16", "2026-04-03", "2026-04-06", "2026-05-04", "2026-05-25"):
        assert D(holiday) in closed


# --------------------------------------------------------------------------- term inference


def test_half_terms_and_terms_of_the_sample_year(year_2025):
    label = {d.date: (d.term, d.half_term) for d in year_2025.days}
    assert label[D("2025-10-24")] == ("autumn", 1)
    assert label[D("2025-10-31")] == ("autumn", 1)  # half-term days belong to the half before
    assert label[D("2025-11-04")] == ("autumn", 2)
    assert label[D("2025-12-31")] == ("autumn", 2)
    assert label[D("2026-01-02")] == ("spring", 3)
    assert label[D("2026-02-13")] == ("spring", 3)
    assert label[D("2026-02-23")] == ("spring", 4)
    # Easter holiday 30 Mar - 10 Apr 2026 (ten weekdays): the first five stay in spring.
    assert label[D("2026-04-03")] == ("spring", 4)
    assert label[D("2026-04-06")] == ("summer", 5)
    assert label[D("2026-05-22")] == ("summer", 5)
    assert label[D("2026-06-02")] == ("summer", 6)
    assert label[D("2026-08-31")] == ("summer", 6)


def test_inset_days_are_not_taken_for_half_term():
    days = list(cal.weekdays_between(D("2025-09-01"), D("2025-10-20")))
    closed = {D("2025-09-01"), D("2025-09-02"), D("2025-09-19"), D("2025-10-10"), D("2025-10-13")}
    labels, splits = label_terms(days, set(days) - closed)
    assert {labels[d].half_term for d in days} == {1}
    autumn = next(s for s in splits if s.boundary == "autumn")
    assert autumn.basis == "fixed" and autumn.first_day_after == D("2025-11-01")


@pytest.mark.parametrize("term, year, expected", [
    ("autumn", 2025, "2025-11-01"), ("spring", 2025, "2026-02-23"), ("spring", 2023, "2024-02-19"),
    ("summer", 2025, "2026-06-01"),
])
def test_fixed_half_term_fallback(term, year, expected):
    assert cal._fixed_half_split(term, year) == D(expected)


def test_easter_boundary_without_a_gap_is_easter_sunday():
    days = list(cal.weekdays_between(D("2026-03-02"), D("2026-04-24")))
    labels, splits = label_terms(days, set(days))  # open every weekday, Good Friday included
    assert labels[D("2026-04-03")].term == "spring" and labels[D("2026-04-06")].term == "summer"
    assert next(s for s in splits if s.boundary == "easter").basis == "fixed"


def test_a_longer_closure_outside_the_season_is_not_a_half_term():
    # A two-week closure in September and the real half term in late October.
    days = list(cal.weekdays_between(D("2025-09-01"), D("2025-12-19")))
    closed = set(cal.weekdays_between(D("2025-09-08"), D("2025-09-19"))) | set(cal.weekdays_between(D("2025-10-27"), D("2025-10-31")))
    labels, _ = label_terms(days, set(days) - closed)
    assert labels[D("2025-09-22")].half_term == 1
    assert labels[D("2025-11-03")].half_term == 2


# --------------------------------------------------------------------------- windows, by hand


@pytest.mark.parametrize("kind, as_of, n, expected", [
    # "this term" inside the Christmas holiday is the autumn term just ended ...
    ("this_term", "2025-12-28", None, ("2025-09-03", "2025-12-19")),
    # ... and stays so until the spring term's first open day (5 January is an INSET day).
    ("this_term", "2026-01-02", None, ("2025-09-03", "2025-12-19")),
    ("this_term", "2026-01-05", None, ("2025-09-03", "2025-12-19")),
    ("this_term", "2026-01-06", None, ("2026-01-06", "2026-01-06")),
    ("this_term", "2026-04-20", None, ("2026-04-13", "2026-04-20")),
    ("this_half_term", "2025-10-29", None, ("2025-09-03", "2025-10-24")),
    ("this_half_term", "2025-11-04", None, ("2025-11-04", "2025-11-04")),
    ("this_half_term", "2026-03-01", None, ("2026-02-23", "2026-03-01")),
    ("previous_term", "2026-02-01", None, ("2025-09-03", "2025-12-19")),
    ("previous_term", "2025-12-28", None, None),  # no summer 2025 in a one-year calendar
    ("this_and_previous_term", "2026-04-20", None, ("2026-01-06", "2026-04-20")),
    ("this_academic_year", "2026-08-15", None, ("2025-09-03", "2026-07-22")),
    ("this_academic_year", "2025-10-01", None, ("2025-09-03", "2025-10-01")),
    # 10 school weeks back from mid-January skip Christmas and the October half term.
    ("school_weeks", "2026-01-16", 10, ("2025-10-20", "2026-01-16")),
    ("school_weeks", "2025-12-28", 2, ("2025-12-08", "2025-12-28")),
    # A bank-holiday Monday in a school week: the week counts, from its Monday.
    ("school_weeks", "2026-05-04", 1, ("2026-05-04", "2026-05-04")),
    ("this_school_week", "2026-05-04", None, ("2026-05-04", "2026-05-04")),
    ("this_school_week", "2026-05-08", None, ("2026-05-04", "2026-05-08")),
    ("this_school_week", "2025-12-28", None, ("2025-12-15", "2025-12-21")),
    ("school_days", "2026-05-04", 1, ("2026-05-01", "2026-05-04")),
    ("school_days", "2025-11-04", 3, ("2025-10-23", "2025-11-04")),
    ("school_days", "2025-11-03", 1, ("2025-10-24", "2025-11-03")),
    # Before the first open day there is no current period.
    ("this_term", "2025-09-02", None, None),
    ("school_days", "2025-09-02", 5, None),
    ("this_school_week", "2025-09-02", None, ("2025-09-01", "2025-09-02")),
])
def test_windows_2025(year_2025, kind, as_of, n, expected):
    got = window(year_2025, kind, D(as_of), n)
    assert (None if got is None else (got.start.isoformat(), got.end.isoformat())) == expected


@pytest.mark.parametrize("kind, as_of, n, expected", [
    # Across the academic-year boundary: three weeks of September, then seven of the summer term.
    ("school_weeks", "2025-09-19", 10, ("2025-06-09", "2025-09-19")),
    ("previous_academic_year", "2025-10-01", None, ("2024-09-04", "2025-07-22")),
    ("previous_term", "2025-10-01", None, ("2025-04-28", "2025-07-22")),
    ("this_and_previous_term", "2025-10-01", None, ("2025-04-28", "2025-10-01")),
    # In the summer holiday "this academic year" is the one just ended.
    ("this_academic_year", "2025-08-20", None, ("2024-09-04", "2025-07-22")),
    ("school_days", "2025-09-04", 4, ("2025-07-21", "2025-09-04")),
])
def test_windows_across_academic_years(years_2024_2025, kind, as_of, n, expected):
    got = window(years_2024_2025, kind, D(as_of), n)
    assert (got.start.isoformat(), got.end.isoformat()) == expected
    assert got.complete


def test_incomplete_windows_say_so(year_2025):
    w = window(year_2025, "school_weeks", D("2025-10-01"), 50)
    assert (w.start, w.end, w.complete) == (D("2025-09-01"), D("2025-10-01"), False)
    w = window(year_2025, "this_and_previous_term", D("2025-10-01"))
    assert (w.start, w.complete) == (D("2025-09-03"), False)
    assert window(year_2025, "previous_academic_year", D("2026-03-01")) is None


def test_window_unpacks_as_a_pair():
    start, end = Window(D("2025-09-01"), D("2025-09-05"))
    assert (start, end) == (D("2025-09-01"), D("2025-09-05"))


def test_since():
    assert cal.since(None, D("2025-10-01"), D("2025-09-15")) == Window(D("2025-09-15"), D("2025-10-01"))
    assert cal.since(None, D("2025-10-01"), D("2025-10-02")) is None


def test_school_weeks_number_only_open_weeks(year_2025):
    by_date = {d.date: d for d in year_2025.days}
    assert by_date[D("2025-10-24")].school_week + 1 == by_date[D("2025-11-03")].school_week  # half term skipped
    assert by_date[D("2025-10-27")].school_week is None
    assert by_date[D("2025-12-19")].school_week + 1 == by_date[D("2026-01-05")].school_week
    assert by_date[D("2026-01-05")].school_day is None and by_date[D("2026-01-06")].school_day is not None


# --------------------------------------------------------------------------- SQL agrees with Python


def _load(con: duckdb.DuckDBPyConnection, calendars: dict[str, SchoolCalendar]) -> None:
    rows = [(school, d.date, d.term, d.half_term, d.open_am, d.open_pm) for school, c in calendars.items() for d in c.days]
    con.register("_cal_src", pa.table({
        "school_id": [r[0] for r in rows], "date": pa.array([r[1] for r in rows], pa.date32()),
        "term": [r[2] for r in rows], "half_term": pa.array([r[3] for r in rows], pa.int32()),
        "open_am": [r[4] for r in rows], "open_pm": [r[5] for r in rows],
    }))
    cal.build_calendar_table(con, "_cal_src", "calendar")
    con.unregister("_cal_src")


KINDS = [(k, n) for k in cal.WINDOW_KINDS if k not in ("school_weeks", "school_days", "since")
         for n in [None]] + [("school_weeks", 1), ("school_weeks", 10), ("school_days", 1), ("school_days", 15)]


def _compare(con, calendars, as_of):
    for kind, n in KINDS:
        rows = dict((r[0], r[1:]) for r in con.execute(window_sql(kind, as_of, n)).fetchall())
        for school, c in calendars.items():
            expected = window(c, kind, as_of, n)
            got = rows.get(school)
            assert (None if expected is None else (expected.start, expected.end, expected.complete)) == got, (kind, n, school, as_of)


def test_sql_windows_match_python_on_the_sample_years(years_2024_2025, year_2025):
    con = duckdb.connect()
    calendars = {"S1": years_2024_2025, "S2": year_2025}
    _load(con, calendars)
    derived = con.execute("SELECT school_id, date, school_day, school_week, week_start, academic_year FROM calendar").fetchall()
    by_school = {s: {d.date: d for d in c.days} for s, c in calendars.items()}
    for school, day, school_day, school_week, week_start, academic_year in derived:
        d = by_school[school][day]
        assert (school_day, school_week, week_start, academic_year) == (d.school_day, d.school_week, d.week_start, d.academic_year)
    for as_of in ("2024-09-01", "2025-01-02", "2025-09-02", "2025-09-19", "2025-12-28", "2026-01-05", "2026-04-06", "2026-05-04", "2026-08-31"):
        _compare(con, calendars, D(as_of))


@st.composite
def random_calendars(draw):
    """One or two schools; a random run of weekdays over up to two academic years, each open
    with high probability (whole closed weeks are likelier), labelled by label_terms."""
    start = draw(st.dates(D("2024-08-20"), D("2025-06-30")))
    length = draw(st.integers(20, 500))
    days = list(cal.weekdays_between(start, start + timedelta(days=length)))
    calendars = {}
    for school in ("A", "B")[: draw(st.integers(1, 2))]:
        closed_weeks = draw(st.sets(st.integers(0, length // 7), max_size=length // 30 + 1))
        opened = {d for d in days if (d - start).days // 7 not in closed_weeks and draw(st.integers(0, 19)) > 0}
        labels, _ = label_terms(days, opened)
        calendars[school] = SchoolCalendar.from_days(
            (d, d in opened, d in opened and draw(st.integers(0, 9)) > 0, labels[d].term, labels[d].half_term) for d in days)
    as_ofs = draw(st.lists(st.dates(start - timedelta(days=10), start + timedelta(days=length + 20)), min_size=1, max_size=4))
    return calendars, as_ofs


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_calendars())
def test_sql_windows_match_python_on_random_calendars(data):
    calendars, as_ofs = data
    con = duckdb.connect()
    _load(con, calendars)
    for as_of in as_ofs:
        _compare(con, calendars, as_of)


@settings(max_examples=40, deadline=None)
@given(random_calendars())
def test_window_invariants(data):
    calendars, as_ofs = data
    for c in calendars.values():
        for as_of in as_ofs:
            for kind, n in KINDS:
                w = window(c, kind, as_of, n)
                if w is None:
                    continue
                assert w.start <= w.end <= as_of
                if kind == "school_weeks":
                    assert w.start.weekday() == 0
                    weeks = [m for m in c.school_weeks if w.start <= m <= as_of]
                    assert len(weeks) == n or (not w.complete and len(weeks) < n)
                if kind == "school_days":
                    days = [d for d in c.open_dates if w.start <= d <= as_of]
                    assert len(days) == n or (not w.complete and len(days) < n)


def test_window_sql_rejects_bad_arguments():
    with pytest.raises(ValueError):
        window_sql("school_weeks", D("2025-10-01"), 0)
    with pytest.raises(ValueError):
        window_sql("fortnight", D("2025-10-01"))
    with pytest.raises(TypeError):
        window_sql("this_term", "2025-10-01")
