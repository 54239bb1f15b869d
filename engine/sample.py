"""A realistic synthetic register: marks, pupils and calendar for one English academic year.

`generate_sample(pupils, schools, seed, out_dir)` writes `marks`, `pupils` and `calendar` files in
the register format (`docs/register-format.md`). The whole generation runs inside DuckDB: every
random draw is a hash of (seed, purpose, pupil, day, session), so the output is a pure function of
the arguments (and of the DuckDB version, whose `hash` it uses), and 25,000 pupils for a year
(about 9.5 million marks) take seconds rather than minutes.

What the data contain, and why (each is something a policy or a test must cope with):

* The English calendar of `academic_year` (see `english_calendar`): autumn, spring and summer
  terms with October, February and May half terms, Christmas and a two-week Easter holiday, five
  INSET days, the early May and late May bank holidays (Good Friday and Easter Monday fall in the
  Easter holiday), and at even-numbered schools a planned closure on local-election polling day
  (every pupil marked `#`). No marks are written for INSET days and bank holidays.
* Skewed absence: about 3% of pupils are severely absent (absence >= 50%), about a fifth are
  persistently absent (>= 10%), the rest miss a few per cent, mostly through illness spells of
  one to five consecutive school days (code `I`) and single days (`I`, `M`, `O`, `C`).
* Term-time holidays: a school week of `G` for some pupils; lateness on morning sessions, `L`
  (1-29 minutes) or, after the register closed, `U` (30-75 minutes), with each pupil's bad
  weekday more likely; medical appointments (`M`) on single sessions.
* Mid-year joiners (some with `Z` marks in the week before they join) and leavers; no other marks
  outside a pupil's time on roll. Year 11 leave on the last Friday of June.
* Unresolved `N` marks in the last school week; `Y2` (snow day) and `Y1` (transport) days; `D`
  for a few dual-registered pupils; `X` for reception afternoons in the first fortnight; `C2` for
  pupils on a part-time timetable until their `integration_end`; `K`, `V`, `P`, `W`, `S`, `J1`,
  `B`, `C1`, `E`, `R`, `T` at realistic low rates.
* Year groups R..6 at primaries, 7..11 at secondaries (every fourth school); reg groups such as
  `3B` or `9K`; attributes `sen` (N/K/E), `ehcp`, `fsm`, `cin`, `social_worker` (children in need and looked-after
  children), `lac`, `integration_end`.
  With one school the files have no school_id column (the register's default school).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

from .calendar import academic_year_of, easter_sunday, label_terms, weekdays_between

ONE_DAY = timedelta(days=1)
PRIMARY_YEARS = ("R", "1", "2", "3", "4", "5", "6")
SECONDARY_YEARS = ("7", "8", "9", "10", "11")
CLASS_SIZE = 30


@dataclass(frozen=True)
class SampleDay:
    """One weekday of a generated school calendar."""

    date: date
    open: bool
    note: str  # '' on an ordinary open day; otherwise why it is closed
    marked_closed: bool = False  # a planned closure with '#' marks for every pupil


@dataclass(frozen=True)
class SampleResult:
    """What generate_sample wrote."""

    out_dir: Path
    files: dict[str, Path]
    pupils: int
    schools: int
    marks: int
    seconds: float


def _last_weekday_on_or_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= ONE_DAY
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based; -1 for the last) given weekday of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - ONE_DAY
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def english_calendar(academic_year: int, school_index: int = 0) -> list[SampleDay]:
    """Every weekday from 1 September to 31 August of a typical English school year.

    Autumn: two INSET days on the first two weekdays of September, half term the last full week
    of October, an INSET day the Monday after it (the Friday before it at odd-numbered schools),
    term ends on the last weekday on or before 20 December. Spring: INSET on the first Monday on
    or after 4 January, half term the week whose Monday falls 12-18 February, Easter holiday the
    two weeks from the Monday before Good Friday. Summer: early May bank holiday, polling-day
    closure on the first Thursday of May (even-numbered schools), half term the week of the late
    May bank holiday, an INSET day the Monday after it, term ends on the last weekday on or
    before 22 July.
    """
    y1, y2 = academic_year, academic_year + 1
    closed: dict[date, str] = {}
    september = list(weekdays_between(date(y1, 9, 1), date(y1, 9, 10)))
    for d in september[:2]:
        closed[d] = "INSET day"
    autumn_start = september[2]
    october_half = _nth_weekday(y1, 10, 0, -1)
    if october_half + timedelta(days=4) > date(y1, 10, 31):
        october_half -= timedelta(days=7)
    for i in range(5):
        closed[october_half + timedelta(days=i)] = "Half term"
    closed[october_half + timedelta(days=7) if school_index % 2 == 0 else october_half - timedelta(days=3)] = "INSET day"
    autumn_end = _last_weekday_on_or_before(date(y1, 12, 20))

    spring_inset = date(y2, 1, 4) + timedelta(days=(7 - date(y2, 1, 4).weekday()) % 7)
    closed[spring_inset] = "INSET day"
    february_half = next(date(y2, 2, d) for d in range(12, 19) if date(y2, 2, d).weekday() == 0)
    for i in range(5):
        closed[february_half + timedelta(days=i)] = "Half term"
    easter = easter_sunday(y2)
    easter_from = easter - timedelta(days=6)  # Monday of Holy Week
    easter_to = easter + timedelta(days=5)  # Friday after Easter Monday
    early_may = _nth_weekday(y2, 5, 0, 1)
    closed[early_may] = "Bank holiday (early May)"
    polling_day = _nth_weekday(y2, 5, 3, 1)
    late_may = _nth_weekday(y2, 5, 0, -1)
    for i in range(5):
        closed[late_may + timedelta(days=i)] = "Half term"
    closed[late_may] = "Bank holiday (late May)"
    closed[late_may + timedelta(days=7)] = "INSET day"
    summer_end = _last_weekday_on_or_before(date(y2, 7, 22))

    days = []
    for d in weekdays_between(date(y1, 9, 1), date(y2, 8, 31)):
        if d in closed:
            days.append(SampleDay(d, False, closed[d]))
        elif d < autumn_start or autumn_end < d < spring_inset:
            days.append(SampleDay(d, False, "Holiday" if d > autumn_end else "Before term"))
        elif easter_from <= d <= easter_to:
            note = {easter - timedelta(days=2): "Bank holiday (Good Friday)", easter + ONE_DAY: "Bank holiday (Easter Monday)"}
            days.append(SampleDay(d, False, note.get(d, "Holiday")))
        elif d > summer_end:
            days.append(SampleDay(d, False, "Holiday"))
        elif d == polling_day and school_index % 2 == 0:
            days.append(SampleDay(d, False, "Planned closure (polling station)", marked_closed=True))
        else:
            days.append(SampleDay(d, True, ""))
    return days


def _school_sizes(pupils: int, schools: int) -> list[tuple[int, bool]]:
    """(pupil count, is_secondary) per school: every fourth school is a secondary, weighted 4:1."""
    secondary = [schools > 1 and i % 4 == 3 for i in range(schools)]
    weights = [4 if s else 1 for s in secondary]
    total = sum(weights)
    sizes = [pupils * w // total for w in weights]
    for i in range(pupils - sum(sizes)):
        sizes[i % schools] += 1
    return list(zip(sizes, secondary))


def generate_sample(pupils: int, schools: int, seed: int, out_dir, academic_year: int = 2025,
                    format: str = "csv", connection=None) -> SampleResult:
    """Write marks, pupils and calendar files for `pupils` pupils in `schools` schools over the
    English academic year starting in September `academic_year`, deterministically from `seed`.
    `format` is 'csv' or 'parquet'. Returns what was written."""
    if format not in ("csv", "parquet"):
        raise ValueError("format must be 'csv' or 'parquet'")
    if pupils < 1 or schools < 1 or pupils < schools:
        raise ValueError("need at least one pupil per school")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connection or duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # never drawn over the command's output
    seed = int(seed)

    import pyarrow as pa

    # --- calendars and the days pupils are marked on -----------------------------------------
    calendar_rows, mark_days = [], []
    for s in range(schools):
        days = english_calendar(academic_year, s)
        labels, _ = label_terms([d.date for d in days], {d.date for d in days if d.open})
        school_day, weeks = 0, {}
        for d in days:
            label = labels[d.date]
            calendar_rows.append((s, d.date, label.term, label.half_term, d.open, d.note))
            if d.open:
                school_day += 1
                week = weeks.setdefault(d.date - timedelta(days=d.date.weekday()), len(weeks) + 1)
                mark_days.append((s, school_day, week, d.date, False))
            elif d.marked_closed:
                mark_days.append((s, None, None, d.date, True))
    last_day = max(r[1] for r in mark_days if r[1] is not None)
    con.register("_sample_days", pa.table({
        "school_idx": pa.array([r[0] for r in mark_days], pa.int32()),
        "day_idx": pa.array([r[1] for r in mark_days], pa.int32()),
        "week_idx": pa.array([r[2] for r in mark_days], pa.int32()),
        "date": pa.array([r[3] for r in mark_days], pa.date32()),
        "closure": pa.array([r[4] for r in mark_days], pa.bool_()),
    }))
    con.register("_sample_calendar", pa.table({
        "school_idx": pa.array([r[0] for r in calendar_rows], pa.int32()),
        "date": pa.array([r[1] for r in calendar_rows], pa.date32()),
        "term": pa.array([r[2] for r in calendar_rows], pa.string()),
        "half_term": pa.array([r[3] for r in calendar_rows], pa.int32()),
        "open": pa.array([r[4] for r in calendar_rows], pa.bool_()),
        "note": pa.array([r[5] for r in calendar_rows], pa.string()),
    }))
    school_rows, first = [], 0
    for s, (size, secondary) in enumerate(_school_sizes(pupils, schools)):
        years = SECONDARY_YEARS if secondary else PRIMARY_YEARS
        school_rows.append((s, f"S{s + 1:02d}", secondary, first, size, len(years)))
        first += size
    con.register("_sample_schools", pa.table({
        "school_idx": pa.array([r[0] for r in school_rows], pa.int32()),
        "school_id": pa.array([r[1] for r in school_rows], pa.string()),
        "secondary": pa.array([r[2] for r in school_rows], pa.bool_()),
        "first_pupil": pa.array([r[3] for r in school_rows], pa.int64()),
        "size": pa.array([r[4] for r in school_rows], pa.int64()),
        "n_years": pa.array([r[5] for r in school_rows], pa.int32()),
    }))

    y1, y2 = academic_year, academic_year + 1
    # A uniform draw in [0, 1) for (purpose, a, b): 53 bits of DuckDB's hash of the seed and keys.
    con.execute(f"CREATE OR REPLACE TEMP MACRO rb_u(purpose, a, b) AS "
                f"CAST(hash({seed}, purpose, a, b) >> 11 AS DOUBLE) / 9007199254740992.0")
    year_11_leave = _nth_weekday(y2, 6, 4, -1)

    # --- pupils ------------------------------------------------------------------------------
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sample_pupils AS
        WITH p AS (
            SELECT i AS pupil_idx, s.school_idx, s.school_id, s.secondary, s.n_years,
                   i - s.first_pupil AS k, s.size
            FROM range({pupils}) t(i) JOIN _sample_schools s ON i >= s.first_pupil AND i < s.first_pupil + s.size
        ), y AS (
            SELECT *, CAST(k * n_years // size AS INTEGER) AS year_idx,
                   greatest(1, CAST(ceil(size / n_years / {CLASS_SIZE}) AS INTEGER)) AS classes
            FROM p
        ), profile AS (
            SELECT *,
                -- year group as a number: reception is 0
                CASE WHEN secondary THEN year_idx + 7 ELSE year_idx END AS year_num,
                rb_u(1, pupil_idx, 0) AS u_profile, rb_u(2, pupil_idx, 0) AS v_profile,
                rb_u(3, pupil_idx, 0) AS u_roll, rb_u(4, pupil_idx, 0) AS u_sen
            FROM y
        )
        SELECT pupil_idx, school_idx, school_id, secondary, year_num,
            printf('P%06d', pupil_idx + 1) AS pupil_id,
            CASE WHEN year_num = 0 THEN 'R' ELSE CAST(year_num AS VARCHAR) END AS year_group,
            (CASE WHEN year_num = 0 THEN 'R' ELSE CAST(year_num AS VARCHAR) END)
                || substr(CASE WHEN secondary THEN 'KLMNPQRSTW' ELSE 'ABCDEFGH' END, CAST(k % classes AS INTEGER) + 1, 1) AS reg_group,
            CAST(DATE '{y1 - 5}-09-01' - INTERVAL (year_num) YEAR + INTERVAL (CAST(floor(rb_u(5, pupil_idx, 0) * 365) AS INTEGER)) DAY AS DATE) AS date_of_birth,
            u_profile, v_profile, u_roll,
            -- target absence rate: a few severe, about a fifth persistent, the rest low
            CASE WHEN u_profile < 0.03 THEN 0.52 + 0.38 * v_profile
                 WHEN u_profile < 0.2 THEN 0.09 + 0.2 * pow(v_profile, 1.5)
                 ELSE 0.004 + 0.055 * pow(v_profile, 1.6) END AS absence_rate,
            CASE WHEN u_profile < 0.03 THEN 'severe' WHEN u_profile < 0.2 THEN 'persistent' ELSE 'low' END AS profile,
            CASE WHEN u_sen < 0.04 THEN 'E' WHEN u_sen < 0.17 THEN 'K' ELSE 'N' END AS sen,
            rb_u(6, pupil_idx, 0) < CASE WHEN u_profile < 0.19 THEN 0.4 ELSE 0.2 END AS fsm,
            rb_u(7, pupil_idx, 0) < CASE WHEN u_profile < 0.19 THEN 0.08 ELSE 0.02 END AS cin,
            rb_u(8, pupil_idx, 0) < 0.01 AS lac,
            rb_u(9, pupil_idx, 0) AS u_late, rb_u(10, pupil_idx, 0) AS u_dow,
            rb_u(11, pupil_idx, 0) AS u_holiday, rb_u(12, pupil_idx, 0) AS u_event
        FROM profile
    """)
    # Roll dates: joiners (4%) and leavers (3%) pick an open day of their school; year 11 leave at
    # the end of June; everyone else joined at the start of their school's first year.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sample_roll AS
        WITH days AS (SELECT school_idx, day_idx, date FROM _sample_days WHERE day_idx IS NOT NULL)
        SELECT p.pupil_idx,
            CASE WHEN p.u_roll < 0.04 THEN (SELECT date FROM days d WHERE d.school_idx = p.school_idx
                                            AND d.day_idx = 10 + CAST(floor(rb_u(13, p.pupil_idx, 0) * 160) AS INTEGER))
                 ELSE CAST(DATE '{y1}-09-01' - INTERVAL (CASE WHEN p.secondary THEN p.year_num - 7 ELSE p.year_num END) YEAR AS DATE)
            END AS joined_on,
            least(
                CASE WHEN p.u_roll >= 0.04 AND p.u_roll < 0.07 THEN (SELECT date FROM days d WHERE d.school_idx = p.school_idx
                                                AND d.day_idx = 20 + CAST(floor(rb_u(14, p.pupil_idx, 0) * 165) AS INTEGER)) END,
                CASE WHEN p.year_num = 11 THEN DATE '{year_11_leave}' END
            ) AS left_on,
            p.u_roll < 0.02 AS z_before_joining
        FROM _sample_pupils p
    """)
    # A part-time timetable (C2 afternoons) for a few pupils, until their integration_end.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sample_pupil_facts AS
        SELECT p.*, r.joined_on, r.left_on, r.z_before_joining,
            CASE WHEN rb_u(15, p.pupil_idx, 0) < 0.006
                 THEN CAST(DATE '{y1}-10-01' + INTERVAL (CAST(floor(rb_u(16, p.pupil_idx, 0) * 150) AS INTEGER)) DAY AS DATE) END AS integration_end,
            -- the weekday (0 = Monday) a pupil is most often late or absent: Monday or Friday mostly
            CASE WHEN p.u_dow < 0.4 THEN 0 WHEN p.u_dow < 0.7 THEN 4 ELSE CAST(floor(rb_u(17, p.pupil_idx, 0) * 5) AS INTEGER) END AS bad_dow,
            CASE WHEN p.u_late < 0.3 THEN 0.02 + 0.1 * rb_u(18, p.pupil_idx, 0) ELSE 0.004 END AS late_rate,
            -- a week of term-time holiday (G) for some, more often among persistent absentees
            CASE WHEN p.u_holiday < CASE WHEN p.profile = 'low' THEN 0.05 ELSE 0.15 END
                 THEN 5 + CAST(floor(rb_u(19, p.pupil_idx, 0) * 175) AS INTEGER) END AS holiday_day,
            CASE WHEN p.u_event < 0.008 THEN 5 + CAST(floor(rb_u(20, p.pupil_idx, 0) * 175) AS INTEGER) END AS exclusion_day,
            1 + CAST(floor(rb_u(21, p.pupil_idx, 0) * 3) AS INTEGER) AS exclusion_days,
            p.u_event >= 0.008 AND p.u_event < 0.013 AS dual_registered,
            p.secondary AND p.u_event >= 0.013 AND p.u_event < 0.023 AS alternative_provision,
            p.u_event >= 0.023 AND p.u_event < 0.0235 AS traveller,
            p.u_event >= 0.0235 AND p.u_event < 0.0245 AS performer,
            p.secondary AND p.u_event >= 0.03 AND p.u_event < 0.11 AS sports_team,
            CASE WHEN p.sen = 'E' THEN rb_u(22, p.pupil_idx, 0) < 0.5 ELSE false END AS la_transport
        FROM _sample_pupils p JOIN _sample_roll r USING (pupil_idx)
    """)

    # --- marks -------------------------------------------------------------------------------
    # Illness spells: a spell starts on a school day with probability proportional to the
    # pupil's absence rate and lasts 1-5 school days (mean 2.2), crossing weekends.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sample_ill AS
        WITH starts AS (
            SELECT p.pupil_idx, d.day_idx,
                   CASE WHEN u < 0.35 THEN 1 WHEN u < 0.65 THEN 2 WHEN u < 0.85 THEN 3 WHEN u < 0.95 THEN 4 ELSE 5 END AS spell
            FROM _sample_pupil_facts p JOIN _sample_days d ON d.school_idx = p.school_idx AND d.day_idx IS NOT NULL,
                 LATERAL (SELECT rb_u(31, p.pupil_idx, d.day_idx) AS u)
            WHERE p.profile <> 'severe' AND rb_u(30, p.pupil_idx, d.day_idx) < p.absence_rate * 0.55 / 2.2
        )
        SELECT DISTINCT pupil_idx, day_idx + k AS day_idx FROM starts, range(spell) r(k)
    """)
    snow_week = 3 + 16  # the first full week after Christmas, give or take
    last_week_from = last_day - 4
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _sample_marks AS
        WITH pd AS (
            SELECT p.pupil_idx, p.school_id, p.pupil_id, p.year_num, p.reg_group, p.profile, p.absence_rate,
                   p.bad_dow, p.late_rate, p.holiday_day, p.exclusion_day, p.exclusion_days, p.dual_registered,
                   p.alternative_provision, p.traveller, p.performer, p.sports_team, p.la_transport, p.integration_end,
                   d.day_idx, d.week_idx, d.date, d.closure, dayofweek(d.date) - 1 AS dow,
                   i.pupil_idx IS NOT NULL AS ill,
                   rb_u(40, p.pupil_idx, d.day_idx) AS u_day, rb_u(41, p.pupil_idx, d.day_idx) AS u_code,
                   -- a whole-school snow day in January: a third of pupils cannot get in
                   d.week_idx = {snow_week} AND dayofweek(d.date) = 3 AND rb_u(42, p.pupil_idx, 0) < 0.35 AS snowed_in,
                   rb_u(43, p.school_idx, hash(p.reg_group)) AS u_trip
            FROM _sample_pupil_facts p
            JOIN _sample_days d ON d.school_idx = p.school_idx
                 AND d.date >= p.joined_on AND (p.left_on IS NULL OR d.date <= p.left_on)
            LEFT JOIN _sample_ill i ON i.pupil_idx = p.pupil_idx AND i.day_idx = d.day_idx
        ), sessions AS (
            SELECT pd.*, s.session, rb_u(50 + s.n, pupil_idx, day_idx) AS u_session, rb_u(52 + s.n, pupil_idx, day_idx) AS u_minutes
            FROM pd, (VALUES ('AM', 0), ('PM', 1)) s(session, n)
        ), coded AS (
            SELECT *,
              CASE
                WHEN closure THEN '#'
                WHEN dual_registered AND dow IN (2, 3) THEN 'D'
                WHEN year_num = 0 AND session = 'PM' AND week_idx <= 2 THEN 'X'
                WHEN snowed_in THEN 'Y2'
                WHEN la_transport AND u_day < 0.012 THEN 'Y1'
                WHEN alternative_provision AND dow IN (1, 3) THEN 'K'
                WHEN integration_end IS NOT NULL AND session = 'PM' AND date <= integration_end THEN 'C2'
                WHEN exclusion_day IS NOT NULL AND day_idx BETWEEN exclusion_day AND exclusion_day + exclusion_days - 1 THEN 'E'
                WHEN traveller AND week_idx BETWEEN 30 AND 33 THEN 'T'
                WHEN holiday_day IS NOT NULL AND day_idx BETWEEN holiday_day AND holiday_day + 4 THEN 'G'
                WHEN ill THEN 'I'
                -- single days away; the code mix depends on the pupil's profile
                WHEN u_day < CASE profile WHEN 'severe' THEN absence_rate ELSE absence_rate * 0.42 END
                                 * CASE WHEN dow = bad_dow THEN 1.6 ELSE 0.85 END THEN
                  CASE WHEN profile = 'low' THEN (CASE WHEN u_code < 0.55 THEN 'I' WHEN u_code < 0.7 THEN 'M' WHEN u_code < 0.95 THEN 'O' ELSE 'C' END)
                       WHEN profile = 'persistent' THEN (CASE WHEN u_code < 0.4 THEN 'I' WHEN u_code < 0.48 THEN 'M' WHEN u_code < 0.95 THEN 'O' ELSE 'C' END)
                       ELSE (CASE WHEN u_code < 0.3 THEN 'I' WHEN u_code < 0.35 THEN 'M' WHEN u_code < 0.95 THEN 'O' ELSE 'C' END) END
                WHEN performer AND week_idx BETWEEN 12 AND 13 THEN 'C1'
                WHEN u_trip < 0.9 AND day_idx = 20 + CAST(floor(u_trip * 160) AS INTEGER) THEN 'V'
                WHEN year_num = 10 AND week_idx = 36 AND rb_u(44, pupil_idx, 0) < 0.6 THEN 'W'
                WHEN year_num = 11 AND session = 'PM' AND month(date) IN (5, 6) AND u_session < 0.5 THEN 'S'
                WHEN year_num = 11 AND month(date) IN (1, 2, 3) AND u_session < 0.001 THEN 'J1'
                WHEN sports_team AND dow = 2 AND session = 'PM' AND u_code < 0.25 THEN 'P'
                WHEN u_session < 0.0008 THEN 'B'
                WHEN u_session < 0.0048 THEN 'M'
                WHEN u_session < 0.005 THEN 'R'
                WHEN session = 'AM' AND u_minutes < late_rate * CASE WHEN dow = bad_dow THEN 2.5 ELSE 0.7 END THEN
                  CASE WHEN u_code < 0.85 THEN 'L' ELSE 'U' END
                WHEN session = 'AM' THEN '/'
                ELSE '\\'
              END AS code0
            FROM sessions
        )
        SELECT school_id, pupil_id, date, session,
            -- absences in the last school week are often still waiting for a reason
            CASE WHEN day_idx >= {last_week_from} AND code0 IN ('I', 'M', 'O', 'C') AND u_code > 0.4 THEN 'N' ELSE code0 END AS code,
            CASE WHEN code0 = 'L' THEN 1 + CAST(floor(u_minutes * 1000) AS INTEGER) % 29
                 WHEN code0 = 'U' THEN 30 + CAST(floor(u_minutes * 1000) AS INTEGER) % 46 END AS minutes_late,
            pupil_idx
        FROM coded
        UNION ALL
        -- prospective pupils: Z for the school week before they join
        SELECT p.school_id, p.pupil_id, d.date, s.session, 'Z', NULL, p.pupil_idx
        FROM _sample_pupil_facts p
        JOIN _sample_days d ON d.school_idx = p.school_idx AND d.day_idx IS NOT NULL
             AND d.date < p.joined_on AND d.date >= CAST(p.joined_on - INTERVAL 7 DAY AS DATE)
        CROSS JOIN (VALUES ('AM'), ('PM')) s(session)
        WHERE p.z_before_joining
    """)

    multi = schools > 1
    school_col = "school_id, " if multi else ""
    ext = "csv" if format == "csv" else "parquet"
    options = "(HEADER, DELIMITER ',')" if format == "csv" else "(FORMAT parquet, COMPRESSION zstd)"
    files = {name: out / f"{name}.{ext}" for name in ("marks", "pupils", "calendar")}
    for name in files:  # a register folder must hold one file per table
        for other in ("csv", "parquet", "jsonl"):
            stale = out / f"{name}.{other}"
            if other != ext and stale.exists():
                stale.unlink()
    marks = con.execute(f"""
        COPY (SELECT {school_col}pupil_id, date, session, code, minutes_late FROM _sample_marks
              ORDER BY pupil_idx, date, session) TO '{files["marks"]}' {options}
    """).fetchone()[0]
    con.execute(f"""
        COPY (SELECT {school_col}pupil_id, year_group, reg_group, date_of_birth, joined_on, left_on,
                     sen, sen = 'E' AS ehcp, fsm, cin, cin OR lac AS social_worker, lac, integration_end
              FROM _sample_pupil_facts ORDER BY pupil_idx) TO '{files["pupils"]}' {options}
    """)
    con.execute(f"""
        COPY (SELECT {"s.school_id, " if multi else ""}c.date, c.term, c.half_term, c.open AS open_am, c.open AS open_pm, NULLIF(c.note, '') AS note
              FROM _sample_calendar c JOIN _sample_schools s USING (school_idx)
              ORDER BY c.school_idx, c.date) TO '{files["calendar"]}' {options}
    """)
    for view in ("_sample_days", "_sample_calendar", "_sample_schools"):
        con.unregister(view)
    if connection is None:
        con.close()
    return SampleResult(out, files, pupils, schools, marks, time.perf_counter() - started)
