"""Backtest: replay a policy over every school day of a date range, as if `rollbook eval` had run
each day with the actions of the earlier days as its prior actions, and report what it would
have done.

The contract: the actions the backtest emits on a day are exactly the actions `eval` would emit
on that day given the seeded prior actions plus every action the backtest emitted on earlier
days (tests/test_backtest.py holds the final day to it for every shipped policy, field by field).

How, without evaluating the whole register again for every day (the naive loop is ~60× slower):

1. Metrics for every (subject, replayed day) at once. Per pupil and per *grid date* (the dates
   on which the school has marks) there are cumulative lists (DuckDB counts each pupil-date's
   marks, Arrow takes the running sums over all pupils' rows in one column): the number of on-roll marks
   passing each metric's code / weekday / half-day filter up to that date, minutes late, possible
   sessions and days, and the position of the latest possible session (day) a run's codes do not
   match. A window is a pair of positions in that grid, so a count over any window is
   `C[hi] - C[lo]`; exclusions subtract or clip; a current run is
   `P[hi] - max(last miss[hi], P[lo])`. Window bounds per (school, day) come from the calendar
   module's Python window functions (the same definitions `window_sql` implements, tested equal).
   A longest run is the longest island of matching sessions (days) clipped to the window's
   positions. Runs over windows with `excluding` are computed day by day with the metrics
   stage's own SQL for that metric only (see `PER_DAY_KINDS`).
2. Rule predicates set-wise: each rule's predicate (metrics.predicate_sql) over the per-day facts
   gives every (rule, subject, day) on which the condition holds. For once-per-period rules
   (calendar periods, not `once_per: run`) without escalation only the first such day in each
   period can act (any later day of the period is held back by the first day's action or by the
   seeded action that held the first day back), so only those go on.
3. Ledger measures (`actions ... `, `... since last action ...`) depend on the actions of earlier
   replayed days. Their atoms are read as true in step 2 (predicates are in negation normal
   form, so that gives a superset of candidates); on each day, in order, the ledger measures are
   computed exactly (metrics' own ledger SQL over the simulated ledger) for that day's candidates
   only, and the exact predicate decides.
4. In date order, the repetition, escalation and limit decision (act.repetition_gate) runs over the
   candidates only, against the simulated ledger; the action records (ids, evidence, reasons)
   are built by act.build_actions for the emitted ones, from that day's facts rows.

With `--rules-engine durable`, step 2 only gathers candidates and durable-rules decides every
rule on each day over that day's candidates (cheap for a school, slow for a trust).
"""

from __future__ import annotations

import json
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date

from . import calendar as school_calendar
from .act import Calendars, PriorAction, build_actions, repetition_gate
from .check import PUPIL_SCOPES, CheckedPolicy, subject_kind
from .codes import national_codes
from .compile import (
    AllOf, AnyOf, Comparison, MetricRef, Plan, compile_policy, current_run_metric, metrics_in,
)
from .metrics import (
    COUNTED_MARKS_JSON, NEVER, Facts, _Builder, _calendar_start, _codes_sql, _lit, _names_pupil, _school_window,
    evaluated_pupils, predicate_sql, run_start_column,
)

LEDGER_KINDS = ("action_count", "since_action")
# Metric shapes computed one replayed day at a time, with the metrics stage's SQL for that metric:
# runs over a window with `excluding` (and longest runs, when LONGEST_RUNS_SETWISE is off: the
# tests compare the two ways).
PER_DAY_KINDS = "runs over a window with `excluding`"
LONGEST_RUNS_SETWISE = True
# Subject-days per chunk of the per-day facts: bounds memory on a trust (about 40 columns each).
CHUNK_SUBJECT_DAYS = 400_000
# Firings whose action records are built (and held) at once, in whole days: a record with its
# evidence is a few kB, and each group costs one evidence query (a scan of the marks), so groups
# are not made much smaller either.
RECORD_FIRINGS = 10_000
_EVER = date(1, 1, 1)
# The row order of the per-day facts tables (bt_facts_<scope>), for speed only: a day's rows kept
# together make the per-day re-reads of the ledger rules' candidates and the records' rows cheaper
# (a 5,000-pupil year: 33-34 s sorted, 36-37 s unsorted). No answer depends on it: every read of the
# tables is a join or an aggregate on their keys, and the tests replay with the rows unsorted,
# reversed and shuffled, and with several threads (test_the_answers_do_not_depend_on_*).
FACTS_ORDER = "ORDER BY day, school_id, subject_id"


@dataclass
class Backtest:
    """What a backtest replayed and what it would have done."""

    policy: CheckedPolicy
    start: date
    end: date
    days: list[date]  # the replayed school days
    # Every emitted action record, by day then as eval orders them; None unless the caller kept them
    # (run_backtest's keep_actions).
    actions: list[dict] | None
    first_met: list[dict]  # {"rule", "subject", "date"}: the first replayed day the condition held
    # Per rule per school week (its Monday): distinct subjects acted on, firings that acted (a subject on
    # a day), action records (a firing with two `then` actions makes two).
    weekly: list[dict]
    rules_engine: str
    calendar_note: str | None
    per_day_metrics: list[str] = field(default_factory=list)  # metrics computed day by day
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    action_count: int = 0  # the action records emitted (kept in `actions` or not)
    subjects_acted: int = 0  # distinct subjects with at least one action


# ---- which atoms read the ledger -----------------------------------------------------------------

def _reads_ledger(atom) -> bool:
    return any(m.kind in LEDGER_KINDS for m in metrics_in(atom))


def _relaxed_sql(predicate, rule_id: str, atoms: tuple) -> str:
    """The rule's predicate with every ledger atom read as true: a superset of the subjects it
    holds for, whatever the ledger says (the predicate is in negation normal form)."""
    if isinstance(predicate, (AllOf, AnyOf)):
        joiner = " AND " if isinstance(predicate, AllOf) else " OR "
        return "(" + joiner.join(_relaxed_sql(p, rule_id, atoms) for p in predicate.parts) + ")"
    if _reads_ledger(predicate):
        return "true"
    return predicate_sql(predicate, rule_id, atoms)


def _has_ranks(expr) -> bool:
    from .metrics import _ranks_in

    return bool(_ranks_in(expr))


# ---- the replay ----------------------------------------------------------------------------------

class _Replay:
    def __init__(self, plan: Plan, connection, start: date, end: date, prior: list[PriorAction],
                 rules_engine: str, calendar_note: str | None, progress):
        self.plan, self.con = plan, connection
        self.start, self.end = start, end
        self.prior = prior
        self.engine = rules_engine
        self.note = calendar_note
        self.step = progress or (lambda message: None)
        self.builder = _Builder(plan, start, connection)
        self.columns = self.builder.metric_columns
        self.calendars = Calendars(connection)
        self.ledger_metrics = [m for m in plan.metrics if m.kind in LEDGER_KINDS]
        self.ledger_rules = {c.rule.id for c in plan.rules if any(_reads_ledger(a) for a in c.atoms)}
        for c in plan.rules:
            for a in c.atoms:
                if _has_ranks(a) and _reads_ledger(a):
                    raise NotImplementedError("a rank of a ledger measure cannot be backtested")
        self.per_day: list = []
        self.longest: list = []
        self.timings: dict[str, float] = {}
        self.first_met: dict[tuple, date] = {}

    # -- calendar: replayed days, window bounds and grid positions per (school, day) --------------
    def prepare_calendar(self) -> None:
        con = self.con
        self.days = [r[0] for r in con.execute(
            "SELECT DISTINCT date FROM calendar WHERE (open_am OR open_pm) AND date BETWEEN ? AND ? ORDER BY date",
            [self.start, self.end]).fetchall()]
        self.schools = [r[0] for r in con.execute("SELECT DISTINCT school_id FROM calendar ORDER BY 1").fetchall()]
        last = self.days[-1] if self.days else self.end
        # The grid: each school's dates with marks, up to the last replayed day (no window reaches later).
        con.execute(f"""CREATE OR REPLACE TEMP TABLE bt_grid AS
            SELECT school_id, date, CAST(row_number() OVER (PARTITION BY school_id ORDER BY date) AS INTEGER) AS k
            FROM (SELECT DISTINCT school_id, date FROM marks WHERE date <= {_lit(last)})""")
        # Each school's grid dates as a list (k-th date at index k): a run's first day from its position.
        con.execute("CREATE OR REPLACE TEMP TABLE bt_grid_dates AS "
                    "SELECT school_id, list(date ORDER BY k) AS dates FROM bt_grid GROUP BY school_id")
        grid: dict[str, list[date]] = {s: [] for s in self.schools}
        for school_id, day in con.execute("SELECT school_id, date FROM bt_grid ORDER BY school_id, k").fetchall():
            grid.setdefault(school_id, []).append(day)
        self.grid = grid
        rows: dict[str, list] = {"day": [], "school_id": []}
        wids = self.builder.window_ids
        for wid in wids.values():
            for suffix in ("start", "end", "complete", "lo", "hi"):
                rows[f"{wid}_{suffix}"] = []
        for key in ("day_hi", "p_school_week", "p_half_term", "p_term", "p_academic_year"):
            rows[key] = []
        for school_id in self.schools:
            cal = self.calendars.of(school_id)
            g = grid.get(school_id, [])
            for day in self.days:
                rows["day"].append(day)
                rows["school_id"].append(school_id)
                rows["day_hi"].append(bisect_right(g, day))
                for w, wid in wids.items():
                    bounds = _window_bounds(cal, w, day)
                    start, end, complete = bounds if bounds else (None, None, None)
                    rows[f"{wid}_start"].append(start)
                    rows[f"{wid}_end"].append(end)
                    rows[f"{wid}_complete"].append(complete)
                    rows[f"{wid}_lo"].append(bisect_left(g, start) if start is not None else None)
                    rows[f"{wid}_hi"].append(bisect_right(g, end) if end is not None else None)
                # Period keys as act's same_period reads them: equal keys, same period.
                anchor = cal.anchor(day)
                rows["p_school_week"].append(school_calendar.monday_of(day).isoformat())
                rows["p_academic_year"].append(f"{anchor.academic_year}" if anchor else None)
                rows["p_term"].append(f"{anchor.academic_year}-{anchor.term}" if anchor else None)
                rows["p_half_term"].append(f"{anchor.academic_year}-{anchor.half_term}" if anchor else None)
        _arrow_table(con, "bt_days", rows)
        # The same bounds one row per (day, window, school), as the evidence reads them.
        long = " UNION ALL ".join(
            f"SELECT day, '{w}' AS window_id, school_id, {w}_start AS start_date, {w}_end AS end_date, "
            f"{w}_complete AS complete FROM bt_days WHERE {w}_end IS NOT NULL" for w in wids.values()) or (
            "SELECT NULL::DATE AS day, NULL::VARCHAR AS window_id, NULL::VARCHAR AS school_id, NULL::DATE AS start_date, "
            "NULL::DATE AS end_date, NULL::BOOLEAN AS complete WHERE false")
        con.execute(f"CREATE OR REPLACE TEMP TABLE bt_windows AS {long}")

    # -- cumulative lists per pupil ------------------------------------------------------------------
    def prepare_lists(self) -> None:
        con, b = self.con, self.builder
        possible = national_codes().codes_in("possible")
        filters: dict[tuple, str] = {}  # (codes, weekdays, half) -> daily column
        runs: dict[frozenset | None, str] = {}  # run codes -> column stem
        self.date_refs: dict = {}
        for m in self.plan.metrics:
            if m.kind in LEDGER_KINDS:
                continue
            w = m.window
            if m.kind == "run" and (w.exclude_before is not None or w.exclude_to is not None
                                    or (m.run_which == "longest" and not LONGEST_RUNS_SETWISE)):
                self.per_day.append(m)
                continue
            for ref in (w.since if w.kind == "since" and w.since.attribute else None, w.exclude_before,
                        w.exclude_from, w.exclude_to):
                if ref is not None and ref not in self.date_refs:
                    self.date_refs[ref] = f"x{len(self.date_refs)}"
            if m.kind == "sessions":
                key = (m.codes, m.weekdays, m.half)
                if key not in filters:
                    filters[key] = f"f{len(filters)}"
            elif m.kind == "run" and m.run_which == "longest":
                self.longest.append(m)
            elif m.kind == "run" and m.codes not in runs:
                runs[m.codes] = f"r{len(runs)}"
        self.filters, self.runs = filters, runs
        daily = []
        for (codes, weekdays, half), col in filters.items():
            parts = []
            if codes is not None:
                parts.append(f"m.code IN {_codes_sql(codes)}" if codes else "false")
            if weekdays:
                parts.append(f"isodow(m.date) IN ({', '.join(map(str, weekdays))})")
            if half:
                parts.append(f"m.session = '{half}'")
            daily.append(f"count(*) FILTER (WHERE {' AND '.join(parts) or 'true'}) AS {col}")
        daily.append("coalesce(sum(m.minutes_late), 0) AS fmin")
        is_possible = f"m.code IN {_codes_sql(possible)}"
        daily.append(f"count(*) FILTER (WHERE {is_possible}) AS ps")
        daily.append(f"count(*) FILTER (WHERE {is_possible} AND m.session = 'AM') AS am_p")
        for codes, stem in runs.items():
            unmatched = f"{is_possible} AND NOT ({f'm.code IN {_codes_sql(codes)}' if codes is not None else 'true'})"
            daily.append(f"count(*) FILTER (WHERE {unmatched} AND m.session = 'AM') AS {stem}_am")
            daily.append(f"count(*) FILTER (WHERE {unmatched} AND m.session = 'PM') AS {stem}_pm")
        last = self.days[-1] if self.days else self.end
        # Every pupil's dense rows (one per grid date, and one before the first, k = 0) are numbered
        # start .. start + len - 1 in one sequence: the marks are counted per row number, a single
        # integer key (grouping by school, pupil and date cost a trust several times more).
        con.execute("""CREATE OR REPLACE TEMP TABLE bt_pupil_rows AS
            SELECT p.school_id, p.pupil_id, p.joined_on, p.left_on, (coalesce(g.n, 0) + 1)::BIGINT AS len,
                   (sum(coalesce(g.n, 0) + 1) OVER (ORDER BY p.school_id, p.pupil_id ROWS UNBOUNDED PRECEDING)
                       - (coalesce(g.n, 0) + 1))::BIGINT AS start
            FROM pupils p LEFT JOIN (SELECT school_id, count(*) AS n FROM bt_grid GROUP BY ALL) g USING (school_id)""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE bt_daily AS
            SELECT p.start + g.k AS i, {', '.join(daily)}
            FROM marks m JOIN bt_pupil_rows p ON p.pupil_id = m.pupil_id AND p.school_id = m.school_id
            JOIN bt_grid g ON g.school_id = m.school_id AND g.date = m.date
            WHERE m.date <= {_lit(last)} AND (p.joined_on IS NULL OR m.date >= p.joined_on)
              AND (p.left_on IS NULL OR m.date <= p.left_on)
            GROUP BY i""")
        _cumulative_lists(con, list(filters.values()), list(runs.values()))
        con.execute("DROP TABLE bt_daily")
        con.execute("DROP TABLE bt_pupil_rows")
        # Pupils' own dates (since / excluding an attribute or a date): their grid positions.
        refs = []
        for ref, x in self.date_refs.items():
            value = _lit(ref.literal) if ref.literal is not None else f'p."{ref.attribute}"'
            refs.append(f"CASE WHEN {value} IS NOT NULL THEN (SELECT count(*) FROM bt_grid g WHERE g.school_id = p.school_id "
                        f"AND g.date < {value}) END AS {x}_lt")
            refs.append(f"CASE WHEN {value} IS NOT NULL THEN (SELECT count(*) FROM bt_grid g WHERE g.school_id = p.school_id "
                        f"AND g.date <= {value}) END AS {x}_le")
        con.execute(f"CREATE OR REPLACE TEMP TABLE bt_pupil_pos AS SELECT p.school_id, p.pupil_id"
                    f"{''.join(', ' + r for r in refs)} FROM pupils p")
        # Longest runs: the islands of matching possible sessions (days) of each pupil, as positions
        # a..b in the pupil's sequence of on-roll possible sessions (days), the positions the `ps`
        # (`pd`) lists count. A window on a day is a range of those positions; the longest run in it
        # is the longest island clipped to it (metrics' run_sql walks the window's rows only, which
        # are a contiguous part of the sequence).
        for m in self.longest:
            col = self.columns[m]
            matched = f"m.code IN {_codes_sql(m.codes)}" if m.codes is not None else "true"
            rows = (f"SELECT m.school_id, m.pupil_id, m.date, m.session, ({matched}) AS matched FROM marks m "
                    "JOIN pupils p ON p.pupil_id = m.pupil_id AND p.school_id = m.school_id "
                    f"WHERE m.date <= {_lit(last)} AND {is_possible} AND (p.joined_on IS NULL OR m.date >= p.joined_on) "
                    "AND (p.left_on IS NULL OR m.date <= p.left_on)")
            order = "date, session"
            if m.run_unit == "school_days":
                rows = (f"SELECT school_id, pupil_id, date, '' AS session, bool_and(matched) AS matched FROM ({rows}) "
                        "GROUP BY school_id, pupil_id, date")
                order = "date"
            con.execute(f"""CREATE OR REPLACE TEMP TABLE bt_islands_{col} AS
                SELECT school_id, pupil_id, min(rn) AS a, max(rn) AS b FROM (
                    SELECT *, rn - row_number() OVER (PARTITION BY school_id, pupil_id, matched ORDER BY rn) AS island
                    FROM (SELECT *, row_number() OVER (PARTITION BY school_id, pupil_id ORDER BY {order}) AS rn FROM ({rows})))
                WHERE matched GROUP BY school_id, pupil_id, island""")

    def per_day_fallback(self) -> None:
        """Metrics the lists cannot give: the metrics stage's own SQL, one replayed day at a time."""
        for m in self.per_day:
            col = self.columns[m]
            table = f"bt_perday_{col}"
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} "
                             "(day DATE, school_id VARCHAR, pupil_id VARCHAR, v BIGINT, s DATE)")
            one = Plan(self.plan.policy, (), (m,), ())
            start = run_start_column("m0") if m.is_current_run else "NULL::DATE"
            for day in self.days:
                b = _Builder(one, day, self.con)
                b.build_windows("bt_fb_windows")
                self.con.execute(f"INSERT INTO {table} SELECT {_lit(day)}, school_id, pupil_id, m0, {start} "
                                 f"FROM ({b.pupil_metrics_sql('bt_fb_windows')})")

    # -- per-day facts ---------------------------------------------------------------------------
    def _positions(self, w) -> tuple[str, str]:
        """SQL (lo, hi) grid positions of a window for a pupil on a day: counted dates are
        positions lo+1..hi. NULL when the window does not exist."""
        wid = self.builder.window_ids[_school_window(w)]
        hi = f"d.{wid}_hi"
        if w.kind == "since" and w.since.attribute is not None:
            lo = f"x.{self.date_refs[w.since]}_lt"
        else:
            lo = f"d.{wid}_lo"
        if w.exclude_before is not None:
            x = self.date_refs[w.exclude_before]
            lo = f"CASE WHEN x.{x}_lt IS NULL THEN {lo} ELSE greatest({lo}, x.{x}_lt) END"
        return f"least({lo}, {hi})", hi

    def metric_sql(self, m) -> str:
        col = self.columns[m]
        if m in self.per_day or m in self.longest:
            return f"coalesce(fb_{col}.v, 0)"
        lo, hi = self._positions(m.window)

        def at(lst: str, pos: str) -> str:
            return f"list_extract(l.{lst}, ({pos}) + 1)"

        if m.kind in ("sessions", "minutes_late"):
            lst = self.filters[(m.codes, m.weekdays, m.half)] if m.kind == "sessions" else "fmin"
            value = f"({at(lst, hi)} - {at(lst, lo)})"
            w = m.window
            if w.exclude_to is not None:
                a, z = self.date_refs[w.exclude_from], self.date_refs[w.exclude_to]
                s2, e2 = f"greatest({lo}, x.{a}_lt)", f"least({hi}, x.{z}_le)"
                # A bound that is not recorded excludes nothing (as metrics' in_window reads it).
                value = (f"({value} - CASE WHEN x.{a}_lt IS NULL OR x.{z}_le IS NULL OR {e2} <= {s2} THEN 0 "
                         f"ELSE {at(lst, e2)} - {at(lst, s2)} END)")
            return f"coalesce({value}, 0)"
        # A current run: possible sessions (days) after the latest unmatched one, inside the window.
        stem = self.runs[m.codes]
        p, lm = ("ps", f"{stem}_lms") if m.run_unit == "sessions" else ("pd", f"{stem}_lmd")
        return f"coalesce({at(p, hi)} - greatest({at(lm, hi)}, {at(p, lo)}), 0)"

    def run_start_sql(self, m) -> str:
        """The first school day of a current run (metrics' run_start_column), NULL when it is empty:
        the grid date on which the pupil's possible sessions (days) first reach the run's first
        position. `ps` grows by at most 2 a date, so that date holds position p or p + 1."""
        col = self.columns[m]
        if m in self.per_day:
            return f"fb_{col}.s"
        lo, hi = self._positions(m.window)
        stem = self.runs[m.codes]
        p, lm = ("ps", f"{stem}_lms") if m.run_unit == "sessions" else ("pd", f"{stem}_lmd")
        first = f"(greatest(list_extract(l.{lm}, ({hi}) + 1), list_extract(l.{p}, ({lo}) + 1)) + 1)::BIGINT"
        index = (f"coalesce(list_position(l.{p}, {first}), list_position(l.{p}, {first} + 1))" if p == "ps"
                 else f"list_position(l.{p}, {first})")
        # List index i holds grid position k = i - 1 (the lists start with a 0 for "before the grid").
        return f"CASE WHEN {self.metric_sql(m)} > 0 THEN list_extract(gd.dates, {index} - 1) END"

    def build_chunk(self, days: list[date]) -> None:
        """bt_facts_<scope>: every subject on every day of the chunk, with metrics, ranks and
        every atom that does not read the ledger, in the facts tables' column names."""
        con, b = self.con, self.builder
        days_sql = ", ".join(_lit(d) for d in days)
        register_metrics = [m for m in self.plan.metrics if m.kind not in LEDGER_KINDS]
        selects = [f"{self.metric_sql(m)} AS {self.columns[m]}" for m in register_metrics]
        current_runs = [m for m in register_metrics if m.is_current_run]
        selects += [f"{self.run_start_sql(m)} AS {run_start_column(self.columns[m])}" for m in current_runs]
        for m in self.longest:
            lo, hi = self._positions(m.window)
            p = "ps" if m.run_unit == "sessions" else "pd"
            q_lo, q_hi = f"list_extract(l.{p}, ({lo}) + 1)", f"list_extract(l.{p}, ({hi}) + 1)"
            con.execute(f"""CREATE OR REPLACE TEMP TABLE bt_perday_{self.columns[m]} AS
                SELECT d.day, l.school_id, l.pupil_id, max(least(i.b, {q_hi}) - greatest(i.a - 1, {q_lo})) AS v
                FROM bt_lists l JOIN bt_days d ON d.school_id = l.school_id AND d.day IN ({days_sql})
                LEFT JOIN bt_pupil_pos x ON x.school_id = l.school_id AND x.pupil_id = l.pupil_id
                JOIN bt_islands_{self.columns[m]} i ON i.school_id = l.school_id AND i.pupil_id = l.pupil_id
                WHERE i.a <= {q_hi} AND i.b > {q_lo} GROUP BY ALL""")
        fallback_joins = " ".join(
            f"LEFT JOIN bt_perday_{self.columns[m]} fb_{self.columns[m]} ON fb_{self.columns[m]}.day = d.day "
            f"AND fb_{self.columns[m]}.school_id = l.school_id AND fb_{self.columns[m]}.pupil_id = l.pupil_id"
            for m in self.per_day + self.longest)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE bt_pm AS
            SELECT d.day, l.school_id, l.pupil_id{''.join(', ' + s for s in selects)}
            FROM bt_lists l JOIN bt_days d ON d.school_id = l.school_id AND d.day IN ({days_sql})
            LEFT JOIN bt_pupil_pos x ON x.school_id = l.school_id AND x.pupil_id = l.pupil_id
            LEFT JOIN bt_grid_dates gd ON gd.school_id = l.school_id {fallback_joins}""")
        cols = [self.columns[m] for m in register_metrics]
        starts = [run_start_column(self.columns[m]) for m in current_runs]
        # Ledger columns exist (as NULL) so every facts table has every metric column.
        ledger_placeholders = "".join(f", NULL::BIGINT AS {self.columns[m]}" for m in self.ledger_metrics)
        self.rank_columns = {}
        for scope in self.plan.scopes:
            rules = [r for r in self.plan.rules if r.rule.scope == scope]
            if scope in PUPIL_SCOPES:
                base = (f"SELECT pm.day, pm.pupil_id AS subject_id, pm.school_id{''.join(', pm.' + c for c in cols + starts)}"
                        f"{ledger_placeholders}, p.* EXCLUDE (pupil_id, school_id) FROM bt_pm pm "
                        f"JOIN pupils p USING (pupil_id, school_id) WHERE {evaluated_pupils(scope, 'pm.day')}")
            else:
                group = {"class": "reg_group", "year_group": "year_group", "school": None}[scope]
                subject = f"coalesce(p.{group}, '')" if group else "pm.school_id"
                sums = "".join(f", sum({c})::BIGINT AS {c}" for c in cols)
                base = (f"SELECT pm.day, {subject} AS subject_id, pm.school_id{sums}{ledger_placeholders} FROM bt_pm pm "
                        "JOIN pupils p USING (pupil_id, school_id) GROUP BY ALL")
            ranks = {}
            rank_selects = []
            for r in rules:
                for atom in r.atoms:
                    from .metrics import _ranks_in

                    for rank in _ranks_in(atom):
                        if rank in ranks:
                            continue
                        col = f"rank{len(ranks)}"
                        ranks[rank] = col
                        n, dn = b.fraction(rank.value, self.columns)
                        value = f"({n})::DOUBLE / ({dn})::DOUBLE"
                        rank_selects.append(
                            f"CASE WHEN {value} IS NULL THEN NULL ELSE rank() OVER (PARTITION BY day, school_id, "
                            f"({value}) IS NULL ORDER BY {value} DESC) END AS {col}")
            self.rank_columns[scope] = ranks
            b.rank_columns = ranks
            atom_selects = []
            for r in rules:
                for k, atom in enumerate(r.atoms):
                    if _reads_ledger(atom):
                        continue
                    for suffix, sql in b.atom_sql(atom, self.columns).items():
                        atom_selects.append(f'{sql} AS "{r.rule.id}.a{k}{suffix}"')
            ranked = f"SELECT *{''.join(', ' + s for s in rank_selects)} FROM ({base})"
            con.execute(f"CREATE OR REPLACE TEMP TABLE bt_facts_{scope} AS "
                        f"SELECT *{''.join(', ' + s for s in atom_selects)} FROM ({ranked}) {FACTS_ORDER}")
        con.execute("DROP TABLE bt_pm")

    def atom_columns(self) -> dict:
        out = {}
        for r in self.plan.rules:
            for k, atom in enumerate(r.atoms):
                suffixes = ("_l", "_r") if isinstance(atom, Comparison) else ("",)
                out[(r.rule.id, k)] = tuple(f"{r.rule.id}.a{k}{s}" for s in suffixes)
        return out

    def chunk_candidates(self) -> list[tuple]:
        """(day, rule index, school, subject, exact) of the chunk: exact rows are firings (after
        the once-per-period reduction), the others candidates for a per-day exact decision."""
        con = self.con
        parts = []
        for index, compiled in enumerate(self.plan.rules):
            rule = compiled.rule
            scope = rule.scope
            exact = self.engine == "builtin" and rule.id not in self.ledger_rules
            condition = (predicate_sql if exact else _relaxed_sql)(compiled.predicate, rule.id, compiled.atoms)
            # Once-per-period rules without escalation: only the first day per period can act.
            period = "NULL::VARCHAR"
            if exact and rule.after is None and rule.repeat.cooldown is None and rule.repeat.once_per != "run":
                period = f"d.p_{rule.repeat.once_per}" if rule.repeat.once_per else "'ever'"
            # Once per run: the gate compares the run's first day with the last action.
            run = current_run_metric(compiled)
            run_start = f'f."{run_start_column(self.columns[run])}"' if run is not None else "NULL::DATE"
            select = (f"SELECT f.day, {index} AS rule_index, f.school_id, f.subject_id, {str(exact).lower()} AS exact, "
                      f"{period} AS period, {run_start} AS run_start "
                      f"FROM bt_facts_{scope} f JOIN bt_days d ON d.school_id = f.school_id AND d.day = f.day "
                      f"WHERE {condition}")
            parts.append(select)
        if not parts:
            return []
        con.execute("CREATE OR REPLACE TEMP TABLE bt_cand AS " + " UNION ALL ".join(parts))
        self.run_starts = {(day, index, school_id, subject_id): start for day, index, school_id, subject_id, start
                           in con.execute("SELECT day, rule_index, school_id, subject_id, run_start FROM bt_cand "
                                          "WHERE run_start IS NOT NULL").fetchall()}
        # First day each subject met each rule (exact rows; per-day ones are added as decided).
        for day, index, school_id, subject_id in con.execute(
                "SELECT min(day), rule_index, school_id, subject_id FROM bt_cand WHERE exact GROUP BY ALL").fetchall():
            key = (index, school_id, subject_id)
            if key not in self.first_met or day < self.first_met[key]:
                self.first_met[key] = day
        # Candidates for a per-day exact decision: rows of rules that read the ledger (or all rules
        # with durable-rules), kept in bt_pend with their scope.
        scope_of = " ".join(f"WHEN {i} THEN '{c.rule.scope}'" for i, c in enumerate(self.plan.rules))
        con.execute(f"CREATE OR REPLACE TEMP TABLE bt_pend AS SELECT day, rule_index, CASE rule_index {scope_of} END AS scope, "
                    "school_id, subject_id FROM bt_cand WHERE NOT exact")
        self.has_pending = con.execute("SELECT count(*) FROM bt_pend").fetchone()[0] > 0
        # The candidates' facts rows, once: the per-day re-reads join these, not the whole chunk.
        for scope in self.plan.scopes:
            con.execute(f"CREATE OR REPLACE TEMP TABLE bt_pend_facts_{scope} AS SELECT f.* FROM bt_facts_{scope} f "
                        f"JOIN (SELECT DISTINCT day, school_id, subject_id FROM bt_pend WHERE scope = '{scope}') k "
                        "ON k.day = f.day AND k.school_id = f.school_id AND k.subject_id = f.subject_id ORDER BY f.day")
        rows = con.execute("""SELECT day, rule_index, school_id, subject_id FROM bt_cand WHERE exact
            QUALIFY period IS NULL OR row_number() OVER (PARTITION BY rule_index, school_id, subject_id, period ORDER BY day) = 1
            ORDER BY day, rule_index, school_id, subject_id""").fetchall()
        con.execute("DROP TABLE bt_cand")
        return rows

    # -- ledger measures for candidate (subject, day) rows ------------------------------------------
    def ledger_sql(self, keys: str) -> str:
        """Every ledger measure for each (day, scope, school_id, subject_id) row of `keys`, from the
        simulated ledger: metrics' ledger_sql with the day as a column. A row's values read only
        ledger rows dated before its day, so they are final once the earlier days are decided."""
        b = self.builder
        key = "q.day, q.scope, q.school_id, q.subject_id"
        parts, selects = [], []
        for m in self.ledger_metrics:
            col = self.columns[m]
            match = f"l.rule = '{m.rule}'" if m.rule else f"l.verb = '{m.verb}'"
            prior = (f"l.subject_kind = {_subject_kind_sql('q.scope')} "
                     "AND l.subject_id = q.subject_id AND l.school_id = q.school_id "
                     f"AND l.as_of < q.day AND coalesce(l.status, 'open') <> 'dismissed' AND {match}")
            if m.kind == "action_count":
                distinct = "DISTINCT l.as_of" if m.rule else "DISTINCT (l.rule, l.as_of)"
                # A window bounded by a pupil's own dates (`since pupil.joined_on`) reads the pupil's row.
                pupil = (f"JOIN {b.pupils} p ON p.pupil_id = q.subject_id AND p.school_id = q.school_id "
                         if _names_pupil(m.window) else "")
                sql = (f"SELECT {key}, count({distinct}) AS v FROM {keys} q "
                       f"JOIN bt_days b ON b.school_id = q.school_id AND b.day = q.day JOIN bt_ledger l ON {prior} "
                       f"{pupil}WHERE {b.in_window(m.window, 'l.as_of')} GROUP BY ALL")
                default = "0"
            else:
                last = f"(SELECT {key}, max(l.as_of) AS last_as_of FROM {keys} q JOIN bt_ledger l ON {prior} GROUP BY ALL)"
                x = "x.day, x.scope, x.school_id, x.subject_id"
                if m.elapsed_unit == "days":
                    sql = f"SELECT {x}, date_diff('day', x.last_as_of, x.day) AS v FROM {last} x"
                elif m.elapsed_unit == "school_days":
                    sql = (f"SELECT {x}, count(c.date) AS v FROM {last} x LEFT JOIN calendar c ON c.school_id = x.school_id "
                           "AND c.date > x.last_as_of AND c.date <= x.day AND (c.open_am OR c.open_pm) GROUP BY ALL")
                else:
                    sql = (f"SELECT {x}, count(DISTINCT c.school_week) AS v FROM {last} x LEFT JOIN calendar c "
                           "ON c.school_id = x.school_id AND c.school_week IS NOT NULL "
                           "AND c.week_start > CAST(date_trunc('week', x.last_as_of) AS DATE) AND c.week_start <= x.day "
                           "AND (c.open_am OR c.open_pm) GROUP BY ALL")
                default = str(NEVER)
            parts.append(f"LEFT JOIN ({sql}) {col}_v ON {col}_v.day = q.day AND {col}_v.scope = q.scope "
                         f"AND {col}_v.school_id = q.school_id AND {col}_v.subject_id = q.subject_id")
            selects.append(f"coalesce({col}_v.v, {default})::BIGINT AS {col}")
        return f"SELECT {key}, {', '.join(selects)} FROM {keys} q {' '.join(parts)}"

    def rows_sql(self, scope: str, keys: str, source: str | None = None) -> str:
        """Facts rows of `scope` for the distinct (day, scope, school_id, subject_id) rows of `keys`,
        with the ledger measures and the atoms that read them: what a facts table holds."""
        keys = f"(SELECT DISTINCT day, scope, school_id, subject_id FROM {keys} WHERE scope = '{scope}')"
        rows = (f"SELECT f.* FROM {source or 'bt_facts_' + scope} f JOIN {keys} k ON k.day = f.day "
                "AND k.school_id = f.school_id AND k.subject_id = f.subject_id")
        if not self.ledger_metrics:
            return rows
        ledger_cols = [self.columns[m] for m in self.ledger_metrics]
        # The ledger measures first (a few rows), then joined: one plan for both was slower.
        joined = (f"WITH v AS MATERIALIZED ({self.ledger_sql(keys)}) "
                  f"SELECT r.* EXCLUDE ({', '.join(ledger_cols)}), {', '.join('v.' + c for c in ledger_cols)} "
                  f"FROM ({rows}) r JOIN v ON v.day = r.day AND v.school_id = r.school_id AND v.subject_id = r.subject_id")
        b = self.builder
        b.rank_columns = self.rank_columns.get(scope, {})
        atoms = [f'{sql} AS "{r.rule.id}.a{k}{suffix}"' for r in self.plan.rules if r.rule.scope == scope
                 for k, atom in enumerate(r.atoms) if _reads_ledger(atom)
                 for suffix, sql in b.atom_sql(atom, self.columns).items()]
        return f"SELECT *{''.join(', ' + a for a in atoms)} FROM ({joined})"

    def evaluate_pending(self, keys: str) -> dict[date, set]:
        """Which pending candidate rows of `keys` (day, rule_index, scope, school_id, subject_id)
        the exact predicate holds for, ledger measures included: day -> {(rule index, school,
        subject)}. With durable-rules, its engine decides instead of the predicate SQL."""
        if self.engine == "durable":
            return self._durable_pending(keys)
        parts = []
        scopes = sorted({c.rule.scope for c in self.plan.rules if c.rule.id in self.ledger_rules})
        for scope in scopes:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE bt_eval_{scope} AS "
                             f"{self.rows_sql(scope, keys, f'bt_pend_facts_{scope}')}")
        for index, compiled in enumerate(self.plan.rules):
            rule = compiled.rule
            if rule.id not in self.ledger_rules:
                continue
            condition = predicate_sql(compiled.predicate, rule.id, compiled.atoms)
            parts.append(f"SELECT e.day, {index} AS rule_index, e.school_id, e.subject_id FROM bt_eval_{rule.scope} e "
                         f"JOIN (SELECT DISTINCT day, school_id, subject_id FROM {keys} WHERE rule_index = {index}) k "
                         f"ON k.day = e.day AND k.school_id = e.school_id AND k.subject_id = e.subject_id WHERE {condition}")
        out: dict[date, set] = {}
        if parts:
            for day, index, school_id, subject_id in self.con.execute(" UNION ALL ".join(parts)).fetchall():
                out.setdefault(day, set()).add((index, school_id, subject_id))
        return out

    def _durable_pending(self, keys: str) -> dict[date, set]:
        """durable-rules over the candidates, one day at a time (its facts are one per subject)."""
        from .rules import fire

        con = self.con
        out: dict[date, set] = {}
        for (day,) in con.execute(f"SELECT DISTINCT day FROM {keys} ORDER BY day").fetchall():
            today = f"(SELECT * FROM {keys} WHERE day = {_lit(day)})"
            tables = {}
            for scope in self.plan.scopes:
                con.execute(f"CREATE OR REPLACE TEMP TABLE bt_durable_{scope} AS "
                            f"{self.rows_sql(scope, today, f'bt_pend_facts_{scope}')}")
                tables[scope] = f"bt_durable_{scope}"
            facts = Facts(tables, self.columns, self.atom_columns(), "", {}, "", "", {}, self.rank_columns)
            wanted = {(i, s, subj) for i, s, subj in con.execute(
                f"SELECT rule_index, school_id, subject_id FROM {today}").fetchall()}
            for f in fire(self.plan, facts, con, "durable"):
                if (f.rule_index, f.school_id, f.subject_id) in wanted:
                    out.setdefault(day, set()).add((f.rule_index, f.school_id, f.subject_id))
        return out

    # -- evidence and records for a chunk's emitted actions -----------------------------------------
    def keep_rows(self, chunk: list[date], emitted: dict[date, list]) -> None:
        """The facts rows of the chunk's acting subjects in bt_rows_<scope>, for the records."""
        import pyarrow as pa

        firings = [(day, f) for day in chunk for f in emitted.get(day, [])]
        for scope in {f.scope for _, f in firings}:
            keys = sorted({(day, f.school_id, f.subject_id) for day, f in firings if f.scope == scope})
            _arrow_table(self.con, "bt_row_keys", {"day": pa.array([k[0] for k in keys], pa.date32()),
                                                   "scope": pa.array([scope] * len(keys), pa.string()),
                                                   "school_id": pa.array([k[1] for k in keys], pa.string()),
                                                   "subject_id": pa.array([k[2] for k in keys], pa.string())})
            rows = self.rows_sql(scope, "bt_row_keys")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE bt_rows_{scope} AS {rows}")
            self.row_tables[scope] = f"bt_rows_{scope}"

    def records(self, emitted: dict[date, list]) -> list[dict]:
        """Action records for the firings that act (a group of days of one chunk), day by day, built by
        act.build_actions; the marks behind every session count, for every day, in one query."""
        import pyarrow as pa

        con = self.con
        firings = [(day, f) for day in sorted(emitted) for f in emitted[day]]
        if not firings:
            return []
        sessions = [m for m in self.plan.metrics if m.kind == "sessions"]
        needs = sorted({(day, sessions.index(expr.metric), f.school_id, f.subject_id) for day, f in firings
                        if subject_kind(f.scope) == "pupil" for _, expr in self.plan.rules[f.rule_index].measures
                        if isinstance(expr, MetricRef) and expr.metric.kind == "sessions"})
        evidence: dict[date, dict] = {day: {m: {} for m in sessions} for day in emitted}
        if needs:
            _arrow_table(con, "bt_ev_needs", {
                "day": pa.array([n[0] for n in needs], pa.date32()), "k": pa.array([n[1] for n in needs], pa.int32()),
                "school_id": pa.array([n[2] for n in needs], pa.string()),
                "pupil_id": pa.array([n[3] for n in needs], pa.string())})
            which = " ".join(f"WHEN {k} THEN {self.builder.mark_filter(m)}" for k, m in enumerate(sessions))
            # metrics.counted_marks for every day at once: its on-roll condition with each row's day as as-of.
            for day, k, school_id, pupil_id, marks in con.execute(
                    f"SELECT n.day, n.k, m.school_id, m.pupil_id, {COUNTED_MARKS_JSON} "
                    "FROM marks m JOIN pupils p ON p.pupil_id = m.pupil_id AND p.school_id = m.school_id "
                    "JOIN bt_ev_needs n ON n.school_id = m.school_id AND n.pupil_id = m.pupil_id "
                    "JOIN bt_days b ON b.school_id = m.school_id AND b.day = n.day "
                    "WHERE m.date <= n.day AND (p.joined_on IS NULL OR m.date >= p.joined_on) "
                    "AND (p.left_on IS NULL OR m.date <= p.left_on) "
                    f"AND coalesce(CASE n.k {which} END, false) GROUP BY ALL").fetchall():
                evidence[day][sessions[k]][(school_id, pupil_id)] = json.loads(marks)
        # The facts rows and window bounds of every day, in two reads instead of two a day.
        rows: dict[date, dict] = {day: {} for day in emitted}
        for scope, table in self.row_tables.items():
            cursor = con.execute(f"SELECT * FROM {table} WHERE day BETWEEN ? AND ?", [min(emitted), max(emitted)])
            names = [d[0] for d in cursor.description]
            for values in cursor.fetchall():
                row = dict(zip(names, values))
                rows[row["day"]][(scope, row["school_id"], row["subject_id"])] = row
        bounds: dict[date, dict] = {day: {} for day in emitted}
        for day, wid, school_id, start, end, complete in con.execute(
                "SELECT day, window_id, school_id, start_date, end_date, complete FROM bt_windows "
                "WHERE day BETWEEN ? AND ?", [min(emitted), max(emitted)]).fetchall():
            if day in bounds:
                bounds[day][(wid, school_id)] = (start, end, complete)
        facts = Facts({}, self.columns, self.atom_columns(), "", self.builder.window_ids, "", "", {}, self.rank_columns)
        out = []
        for day in sorted(emitted):
            kept = emitted[day]
            prior = [p for key in {(subject_kind(f.scope), f.school_id, f.subject_id) for f in kept}
                     for p in self.history.get(key, [])]
            out.extend(build_actions(self.plan, facts, kept, con, day, prior, calendar_note=self.note,
                                     calendars=self.calendars, sessions_evidence=evidence[day],
                                     subject_rows=rows[day], bounds=bounds[day]))
        return out

    # -- the whole run -----------------------------------------------------------------------------
    def run(self, emit) -> None:
        """Replay every day; `emit(records)` receives the action records of each chunk of days as
        soon as it is decided, in order (by day, then as eval orders them)."""
        import pyarrow as pa

        from .prior_actions import append_ledger_rows, load_ledger_table
        from .rules import Firing

        con = self.con
        t = time.perf_counter()
        self.step("reading the calendar")
        self.prepare_calendar()
        self.timings["calendar"] = time.perf_counter() - t
        if not self.days:
            return
        t = time.perf_counter()
        self.step("building cumulative counts")
        self.prepare_lists()
        self.per_day_fallback()
        self.timings["lists"] = time.perf_counter() - t
        if self.ledger_metrics:
            load_ledger_table(con, self.prior, "bt_ledger")
        selectors = {(m.rule, m.verb) for m in self.ledger_metrics}
        # The ledger selectors each rule's condition reads: only those actions change its candidates.
        reads = [{(m.rule, m.verb) for a in c.atoms for m in metrics_in(a) if m.kind in LEDGER_KINDS} for c in self.plan.rules]
        rules = self.plan.rules
        self.history: dict[tuple, list[PriorAction]] = {}
        for p in self.prior:
            if p.status != "dismissed":
                self.history.setdefault((p.subject_kind, p.school_id, p.subject_id), []).append(p)
        self.first_met: dict[tuple, date] = {}
        self.run_starts: dict[tuple, date] = {}
        self.row_tables: dict[str, str] = {}
        pupils = con.execute("SELECT count(*) FROM pupils").fetchone()[0] or 1
        per_chunk = max(1, CHUNK_SUBJECT_DAYS // pupils)
        self.timings.update(facts=0.0, decide=0.0, records=0.0)
        for c in range(0, len(self.days), per_chunk):
            chunk = self.days[c:c + per_chunk]
            self.step(f"replaying {chunk[0]} to {chunk[-1]}")
            t = time.perf_counter()
            self.build_chunk(chunk)
            exact: dict[date, list] = {}
            for day, index, school_id, subject_id in self.chunk_candidates():
                exact.setdefault(day, []).append((index, school_id, subject_id))
            pending_rows: dict[date, list] = {}
            pending: dict[date, set] = {}
            by_subject: dict[tuple, list] = {}
            if self.has_pending:
                for row in con.execute("SELECT day, rule_index, scope, school_id, subject_id FROM bt_pend "
                                       "ORDER BY day").fetchall():
                    pending_rows.setdefault(row[0], []).append(row)
                    # By subject as the ledger names it: a pupil's actions change its leaver rules' rows too.
                    by_subject.setdefault((subject_kind(row[2]), *row[3:]), []).append(row)
                pending = self.evaluate_pending("bt_pend")
            self.timings["facts"] += time.perf_counter() - t
            t = time.perf_counter()
            emitted: dict[date, list] = {}
            changed: dict = {}  # subject -> ledger selectors of its actions during this chunk
            buffered: list[PriorAction] = []
            for day in chunk:
                # A candidate whose first-met date is known and that repetition or escalation holds back
                # today whatever its condition says needs no fresh read: it can change no report.
                subjects = {(subject_kind(r[2]), *r[3:]) for r in pending_rows.get(day, ())
                            if changed.get((subject_kind(r[2]), *r[3:]), set()) & reads[r[1]]
                            and ((r[1], r[3], r[4]) not in self.first_met or self._may_act(r[1], r[3], r[4], day))}
                # Every remaining row of those subjects is read again now; they are clean until their next action.
                again = [r for subject in subjects for r in by_subject[subject] if r[0] >= day]
                for subject in subjects:
                    del changed[subject]
                if again:
                    # Their rows were read before those actions: read today's again, with the ledger to date.
                    if buffered:
                        append_ledger_rows(con, buffered, "bt_ledger")
                        buffered = []
                    _arrow_table(con, "bt_again", {"day": pa.array([r[0] for r in again], pa.date32()),
                                                   "rule_index": pa.array([r[1] for r in again], pa.int64()),
                                                   "scope": [r[2] for r in again], "school_id": [r[3] for r in again],
                                                   "subject_id": [r[4] for r in again]})
                    found = self.evaluate_pending("bt_again")
                    for r in again:
                        pending.get(r[0], set()).discard((r[1], r[3], r[4]))
                    for d, rows_found in found.items():
                        pending.setdefault(d, set()).update(rows_found)
                candidates = [(i, s, subj) for i, s, subj in exact.get(day, [])] + sorted(pending.get(day, ()))
                kept = []
                for index, school_id, subject_id in candidates:
                    rule = rules[index].rule
                    key = (index, school_id, subject_id)
                    if key not in self.first_met:
                        self.first_met[key] = day
                    firing = Firing(index, rule.scope, school_id, subject_id, rule.id)
                    kind = subject_kind(rule.scope)
                    history = [p for p in self.history.get((kind, school_id, subject_id), []) if p.as_of < day]
                    gate = repetition_gate(rule, history, school_id, day, self.calendars,
                                           self.run_starts.get((day, index, school_id, subject_id)))
                    if not gate.acts:
                        continue
                    kept.append(firing)
                    new = [PriorAction(rule.id, a.verb, kind, subject_id, school_id, day, gate.limit is not None)
                           for a in gate.actions]
                    self.history.setdefault((kind, school_id, subject_id), []).extend(new)
                    touched = {sel for p in new for sel in ((p.rule, None), (None, p.verb)) if sel in selectors}
                    if touched:
                        buffered.extend(p for p in new if (p.rule, None) in touched or (None, p.verb) in touched)
                        changed.setdefault((kind, school_id, subject_id), set()).update(touched)
                if kept:
                    emitted[day] = sorted(kept)
            if buffered:
                append_ledger_rows(con, buffered, "bt_ledger")
            self.timings["decide"] += time.perf_counter() - t
            # The chunk's records go out now, a few days at a time: only the simulated ledger
            # (self.history) outlives the chunk.
            t = time.perf_counter()
            self.keep_rows(chunk, emitted)
            for group in _record_groups(emitted):
                records = self.records(group)
                self.timings["records"] += time.perf_counter() - t
                emit(records)
                t = time.perf_counter()
            for table in self.row_tables.values():
                con.execute(f"DROP TABLE {table}")
            self.row_tables = {}
            self.timings["records"] += time.perf_counter() - t

    def _may_act(self, index: int, school_id: str, subject_id: str, day: date) -> bool:
        rule = self.plan.rules[index].rule
        history = [p for p in self.history.get((subject_kind(rule.scope), school_id, subject_id), []) if p.as_of < day]
        return repetition_gate(rule, history, school_id, day, self.calendars,
                               self.run_starts.get((day, index, school_id, subject_id))).acts


def _subject_kind_sql(column: str) -> str:
    """SQL: check.subject_kind of the scope in `column`."""
    scopes = ", ".join(f"'{s}'" for s in PUPIL_SCOPES)
    return f"CASE WHEN {column} IN ({scopes}) THEN 'pupil' ELSE {column} END"


def _record_groups(emitted: dict[date, list]):
    """The days of `emitted` in date order, in groups of whole days of about RECORD_FIRINGS
    firings: the action records are built (and held) one group at a time."""
    group: dict[date, list] = {}
    firings = 0
    for day in sorted(emitted):
        if group and firings + len(emitted[day]) > RECORD_FIRINGS:
            yield group
            group, firings = {}, 0
        group[day] = emitted[day]
        firings += len(emitted[day])
    if group:
        yield group


def _cumulative_lists(con, filters: list[str], runs: list[str]) -> None:
    """bt_lists: per pupil (its rows numbered in bt_pupil_rows), one list per daily column of
    bt_daily, element k the count up to the k-th date of the pupil's school grid (element 0 is 0,
    before the first date): the running sums
    of the filters, minutes late (`fmin`), possible sessions (`ps`) and possible days (`pd`); and
    per run stem the position of the latest unmatched possible session (`_lms`) and day (`_lmd`),
    0 when there is none yet.

    The running sums are taken by Arrow over every pupil's dense rows, in row-number order, in one
    column: a pupil's running sum is the column's running sum less its value at the pupil's row
    k = 0 (which counts nothing). A window function per column over 4.8 million
    pupil-days, then an ordered list per column, cost a trust several times more."""
    import pyarrow as pa
    import pyarrow.compute as pc

    daily = filters + ["fmin", "ps"]
    # Per run, on each grid date: the latest unmatched possible session's place in the day (PM after a
    # possible AM is the 2nd) and whether the day has an unmatched possible session.
    columns = [f"coalesce(x.{c}, 0)::BIGINT AS {c}" for c in daily]
    for stem in runs:
        columns.append(f"coalesce(CASE WHEN x.{stem}_pm > 0 THEN x.am_p + 1 WHEN x.{stem}_am > 0 THEN 1 END, 0)::BIGINT AS {stem}_lp")
        columns.append(f"coalesce(x.{stem}_am + x.{stem}_pm > 0, false) AS {stem}_miss")
    dense = _fetch_arrow(con, f"""SELECT {', '.join(columns)} FROM range((SELECT coalesce(sum(len), 0) FROM bt_pupil_rows)::BIGINT) o(i)
        LEFT JOIN bt_daily x ON x.i = o.i ORDER BY o.i""").combine_chunks()
    pupils = _fetch_arrow(con, "SELECT school_id, pupil_id, start, start + len AS stop FROM bt_pupil_rows ORDER BY start")
    # Each row's pupil's first row.
    start = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(
        pupils.column("stop").combine_chunks(), pupils.column("start").combine_chunks()))

    def running(values):
        total = pc.cumulative_sum_checked(values)
        return pc.subtract(total, pc.take(total, start))

    def latest(values):
        # A running maximum per pupil: each pupil's values are lifted above every earlier pupil's.
        lift = pc.multiply_checked(start, pa.scalar((pc.max(values).as_py() or 0) + 1, pa.int64()))
        return pc.subtract(pc.cumulative_max(pc.add_checked(values, lift)), lift)

    lists = {c: running(dense.column(c).combine_chunks()) for c in daily}
    lists["pd"] = running(pc.cast(pc.greater(dense.column("ps").combine_chunks(), 0), pa.int64()))
    ps_before = pc.subtract(lists["ps"], dense.column("ps").combine_chunks())
    zero = pa.scalar(0, pa.int64())
    for stem in runs:
        lp = dense.column(f"{stem}_lp").combine_chunks()
        lists[f"{stem}_lms"] = latest(pc.if_else(pc.greater(lp, 0), pc.add(ps_before, lp), zero))
        lists[f"{stem}_lmd"] = latest(pc.if_else(dense.column(f"{stem}_miss").combine_chunks(), lists["pd"], zero))
    del dense
    offsets = pa.concat_arrays([pupils.column("start").combine_chunks(),
                                pa.array([len(start)], pa.int64())])
    table = {"school_id": pupils.column("school_id"), "pupil_id": pupils.column("pupil_id")}
    for c in filters + ["fmin", "ps", "pd"] + [f"{s}_{u}" for s in runs for u in ("lms", "lmd")]:
        table[c] = pa.LargeListArray.from_arrays(offsets, lists[c])
    con.register("bt_lists_rows", pa.table(table))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE bt_lists AS SELECT * FROM bt_lists_rows")
    finally:
        con.unregister("bt_lists_rows")


def _fetch_arrow(con, query: str):
    """A query's result as an Arrow table (DuckDB 2 renamed the relation's arrow() to to_arrow_table())."""
    relation = con.sql(query)
    return (getattr(relation, "to_arrow_table", None) or relation.arrow)()


def _window_bounds(cal, w, day: date):
    """(start, end, complete) of a school window on a day, as metrics' build_windows defines it."""
    if w.kind == "last" and w.unit in ("school_weeks", "school_days"):
        win = school_calendar.window(cal, w.unit, day, n=w.size)
    elif w.kind == "last":
        return _calendar_start(day, w.size, w.unit), day, True
    elif w.kind == "ever":
        return _EVER, day, True
    elif w.kind == "since_attribute":
        return None, day, True
    elif w.kind == "since":
        win = school_calendar.since(cal, day, w.since.literal)
    else:
        win = school_calendar.window(cal, w.kind, day)
    return None if win is None else (win.start, win.end, win.complete)


def _arrow_table(con, name: str, columns: dict[str, list]) -> None:
    import pyarrow as pa

    con.register(f"{name}_rows", pa.table(columns))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_rows")
    finally:
        con.unregister(f"{name}_rows")


# ---- the API -------------------------------------------------------------------------------------

def run_backtest(policy, register, start, end, prior_actions=None, rules_engine: str = "builtin",
                 progress=None, keep_actions: bool = True, on_actions=None) -> Backtest:
    """Replay `policy` on `register` over every school day from `start` to `end` (inclusive).

    `policy` is a path or a CheckedPolicy; `register` a folder or a loaded Register; `start` and
    `end` dates or YYYY-MM-DD; `prior_actions` a JSONL path or a list of PriorAction that seeds the
    simulated ledger. Raises api.RollbookError for any problem in the inputs.

    The action records are built a chunk of days at a time. `on_actions(records)`, if given,
    receives each chunk's records as soon as they are decided, in order (a ReportWriter's `add`
    streams them to a report). With `keep_actions` (the default) they are also all kept in the
    result's `actions`; without it `actions` is None and memory does not grow with them (the
    simulated ledger keeps a few fields per action).
    """
    from .api import RollbookError, check_policy_file, prepare_register
    from .prior_actions import read_prior_actions
    from .rules import RulesEngineUnavailable, durable_available

    started = time.perf_counter()
    start, end = _date_arg(start, "--from"), _date_arg(end, "--to")
    if end < start:
        raise RollbookError(f"--to ({end}) is before --from ({start})")
    if rules_engine == "durable" and not durable_available()[0]:
        raise RulesEngineUnavailable(durable_available()[1] + "; use --rules-engine builtin")
    if not isinstance(policy, CheckedPolicy):
        result = check_policy_file(policy)
        if not result.ok:
            raise RollbookError(f"the policy {policy} has errors; run `rollbook check {policy}`",
                                [d for d in result.diagnostics if d.severity == "error"])
        policy = result.policy
    if isinstance(prior_actions, (str, bytes)) or hasattr(prior_actions, "__fspath__"):
        prior_actions, problems = read_prior_actions(prior_actions)
        if problems:
            raise RollbookError("the prior actions file has problems", problems)
    prior = list(prior_actions or [])
    register, warnings = prepare_register(register, policy)
    note = register.calendar_note if register.calendar_inferred else None
    plan = compile_policy(policy)
    replay = _Replay(plan, register.connection, start, end, prior, rules_engine, note, progress)
    summary = _Summary({c.rule.id: i for i, c in enumerate(plan.rules)})
    kept: list[dict] | None = [] if keep_actions else None

    def emit(records: list[dict]) -> None:
        summary.add(records)
        if kept is not None:
            kept.extend(records)
        if on_actions is not None:
            on_actions(records)

    replay.run(emit)
    days = replay.days
    first_met = []
    for (index, school_id, subject_id), day in sorted(replay.first_met.items(), key=lambda kv: (kv[1], kv[0])):
        rule = plan.rules[index].rule
        subject = {"kind": subject_kind(rule.scope), "id": subject_id, "school_id": school_id}
        first_met.append({"rule": rule.id, "subject": subject, "date": day.isoformat()})
    weekly_rows = summary.weekly()
    replay.timings["total"] = time.perf_counter() - started
    return Backtest(policy, start, end, days, kept, first_met, weekly_rows, rules_engine, note,
                    [plan_metric_text(m) for m in replay.per_day], replay.timings, warnings,
                    summary.count, len(summary.subjects))


class _Summary:
    """What the reports need of the action records, taken a chunk at a time: the count, the
    subjects acted on, and per rule per school week the subjects, firings and records. A week's
    sets are turned into counts once a later week's records arrive (they come in date order), so
    nothing here grows with the number of actions."""

    def __init__(self, rule_order: dict[str, int]):
        self.order = rule_order
        self.count = 0
        self.subjects: set[tuple] = set()
        self.rows: list[dict] = []
        self.week: str | None = None
        self.open: dict[str, dict] = {}  # rule -> the current week's sets

    def add(self, records: list[dict]) -> None:
        for a in records:
            week = school_calendar.monday_of(date.fromisoformat(a["as_of"])).isoformat()
            if week != self.week:
                self._close()
                self.week = week
            entry = self.open.setdefault(a["rule"], {"subjects": set(), "firings": set(), "actions": 0})
            subject = (a["subject"]["kind"], a["subject"]["school_id"], a["subject"]["id"])
            entry["actions"] += 1
            entry["subjects"].add(subject)
            entry["firings"].add((subject, a["as_of"]))
            self.subjects.add(subject)
            self.count += 1

    def _close(self) -> None:
        for rule in sorted(self.open, key=self.order.__getitem__):
            e = self.open[rule]
            self.rows.append({"week_start": self.week, "rule": rule, "subjects": len(e["subjects"]),
                              "firings": len(e["firings"]), "actions": e["actions"]})
        self.open = {}

    def weekly(self) -> list[dict]:
        self._close()
        return self.rows


def plan_metric_text(m) -> str:
    codes = f" coded {{{', '.join(sorted(m.codes))}}}" if m.codes is not None else ""
    which = f"{m.run_which} run of {m.run_unit.replace('_', ' ')}" if m.kind == "run" else m.kind
    return f"{which}{codes} {m.window.describe()}"


def _date_arg(value, name: str) -> date:
    from .api import RollbookError

    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise RollbookError(f"{name} must be a date written YYYY-MM-DD, not {value!r}")


def naive_backtest(policy, register, start, end, prior_actions=None, rules_engine: str = "builtin") -> list[dict]:
    """The reference the backtest must equal: `eval` on every replayed day in turn, each with the
    seeded prior actions plus everything emitted before it. Slow (a full evaluation per day); for
    tests and the benchmark's ratio."""
    from .api import check_policy_file, prepare_register, run_evaluation

    start, end = _date_arg(start, "--from"), _date_arg(end, "--to")
    if not isinstance(policy, CheckedPolicy):
        policy = check_policy_file(policy).policy
    register, _ = prepare_register(register, policy)
    days = [r[0] for r in register.connection.execute(
        "SELECT DISTINCT date FROM calendar WHERE (open_am OR open_pm) AND date BETWEEN ? AND ? ORDER BY date",
        [start, end]).fetchall()]
    ledger = list(prior_actions or [])
    actions = []
    for day in days:
        emitted = run_evaluation(policy, register, day, ledger, rules_engine).actions
        ledger.extend(PriorAction(a["rule"], a["verb"], a["subject"]["kind"], a["subject"]["id"],
                                  a["subject"]["school_id"], day, a["alternative"]) for a in emitted)
        actions.extend(emitted)
    return actions


# ---- reports -------------------------------------------------------------------------------------

def _subject_text(subject: dict) -> str:
    where = f" at {subject['school_id']}" if subject.get("school_id") else ""
    return f"{subject['kind']} {subject['id'] or subject['school_id']}{where}"


class ReportWriter:
    """A backtest report (`text`, `json` or `csv`) written with the action records taken a chunk at
    a time (`add`, run_backtest's `on_actions`), so they need not all be in memory: their part of
    the report goes to a temporary file, and `finish` writes the report (the summary before the
    actions, the weekly and first-met reports after them) to a stream. The same text as to_text,
    to_json and to_csv give for a result that kept its actions (they use this writer)."""

    _SLOT = "rollbook-backtest-actions-d41d8cd9"  # where the actions go in the JSON document

    def __init__(self, format: str, register: str = ""):
        import csv
        import tempfile

        if format not in ("text", "json", "csv"):
            raise ValueError(f"unknown report format {format!r}")
        self.format, self.register = format, register
        self.body = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        self.count = 0
        self.subjects: set[tuple] = set()
        self.firing: tuple | None = None  # text: the firing whose records are still arriving
        self.day: str | None = None
        self.csv = csv.DictWriter(self.body, CSV_COLUMNS, lineterminator="\n") if format == "csv" else None

    def add(self, records: list[dict]) -> None:
        """Write the next action records (in the order run_backtest emits them)."""
        import json

        for a in records:
            s = a["subject"]
            self.count += 1
            self.subjects.add((s["kind"], s["school_id"], s["id"]))
            if self.format == "json":
                item = json.dumps(a, indent=1, ensure_ascii=False)
                # An element of the document's `actions` list, two levels deep (indent=1).
                self.body.write(("[\n" if self.count == 1 else ",\n") + "\n".join("  " + line for line in item.split("\n")))
            elif self.format == "csv":
                self.csv.writerow({"report": "action", "date": a["as_of"], "week_start": school_calendar.monday_of(
                    date.fromisoformat(a["as_of"])).isoformat(), "rule": a["rule"], "subject_kind": s["kind"],
                    "school_id": s["school_id"], "subject_id": s["id"], "verb": a["verb"],
                    "alternative": str(a["alternative"]).lower(), "action_id": a["id"]})
            else:
                # One line per firing: a rule acting on a subject, with its actions' verbs.
                key = (a["as_of"], a["rule"], s["kind"], s["school_id"], s["id"])
                if self.firing and self.firing[0] == key:
                    self.firing[1].append(a)
                else:
                    self._firing_line()
                    self.firing = (key, [a])

    def _firing_line(self) -> None:
        if self.firing is None:
            return
        (as_of, rule, *_), records = self.firing
        if as_of != self.day:
            self.day = as_of
            self.body.write(f"  {as_of}\n")
        extra = " (alternative: limit reached)" if records[0]["alternative"] else ""
        verbs = ", ".join(r["verb"] for r in records)
        self.body.write(f"    {rule}: {_subject_text(records[0]['subject'])}: {verbs}{extra}\n")
        self.firing = None

    def finish(self, result: Backtest, out) -> None:
        """Write the whole report to the text stream `out`, and close the temporary file."""
        import shutil

        try:
            if self.format == "text":
                self._firing_line()
            head, tail = getattr(self, f"_{self.format}_parts")(result)
            out.write(head)
            self.body.flush()
            self.body.seek(0)
            shutil.copyfileobj(self.body, out)
            out.write(tail)
        finally:
            self.close()

    def close(self) -> None:
        self.body.close()

    def _json_parts(self, result: Backtest) -> tuple[str, str]:
        import json

        document = json.dumps({
            "policy": result.policy.id, "policy_version": result.policy.version, "register": self.register,
            "from": result.start.isoformat(), "to": result.end.isoformat(), "school_days": len(result.days),
            "rules_engine": result.rules_engine, "per_day_metrics": result.per_day_metrics,
            "calendar_note": result.calendar_note,
            "actions": self._SLOT, "weekly": result.weekly, "first_met": result.first_met,
        }, indent=1, ensure_ascii=False) + "\n"
        head, tail = document.split(json.dumps(self._SLOT), 1)
        return head, ("\n ]" if self.count else "[]") + tail

    def _csv_parts(self, result: Backtest) -> tuple[str, str]:
        import csv
        import io

        head, tail = io.StringIO(), io.StringIO()
        csv.DictWriter(head, CSV_COLUMNS, lineterminator="\n").writeheader()
        w = csv.DictWriter(tail, CSV_COLUMNS, lineterminator="\n")
        for e in result.weekly:
            w.writerow({"report": "weekly", "week_start": e["week_start"], "rule": e["rule"], "subjects": e["subjects"],
                        "firings": e["firings"], "actions": e["actions"]})
        for e in result.first_met:
            s = e["subject"]
            w.writerow({"report": "first_met", "date": e["date"], "rule": e["rule"], "subject_kind": s["kind"],
                        "school_id": s["school_id"], "subject_id": s["id"]})
        return head.getvalue(), tail.getvalue()

    def _text_parts(self, result: Backtest) -> tuple[str, str]:
        lines = []
        on = f" on {self.register}" if self.register else ""
        n, subjects = self.count, len(self.subjects)
        lines.append(f"Backtest of {result.policy.id} (version {result.policy.version}){on}, "
                     f"{result.start} to {result.end}: {len(result.days)} school days replayed, "
                     f"{n} action{'s' if n != 1 else ''} for "
                     f"{subjects} subject{'s' if subjects != 1 else ''}.")
        if result.calendar_note:
            lines.append(f"Note: {result.calendar_note}")
        lines += ["", "Actions by day"]
        if not n:
            lines.append("  (none)")
        head = "\n".join(lines) + "\n"
        lines = ["", "Per rule per school week: subjects acted on, firings (a subject on a day), action records"]
        if not result.weekly:
            lines.append("  (none)")
        else:
            width = max(len(e["rule"]) for e in result.weekly)
            lines.append(f"  {'week of':<10}  {'rule':<{width}}  subjects  firings  actions")
            for e in result.weekly:
                lines.append(f"  {e['week_start']:<10}  {e['rule']:<{width}}  {e['subjects']:>8}  {e['firings']:>7}  "
                             f"{e['actions']:>7}")
        lines += ["", "First date each subject met each rule (its condition held, whether or not it acted)"]
        if not result.first_met:
            lines.append("  (none)")
        else:
            width = max(len(e["rule"]) for e in result.first_met)
            for e in result.first_met:
                lines.append(f"  {e['date']}  {e['rule']:<{width}}  {_subject_text(e['subject'])}")
        return head, "\n".join(lines) + "\n"


def _report(result: Backtest, format: str, register: str) -> str:
    import io

    if result.actions is None:
        raise ValueError("this backtest did not keep its actions (run_backtest's keep_actions); "
                         "stream them to a ReportWriter instead")
    writer = ReportWriter(format, register)
    writer.add(result.actions)
    out = io.StringIO()
    writer.finish(result, out)
    return out.getvalue()


def to_json(result: Backtest, register: str = "") -> str:
    """The whole backtest as one JSON document (the actions are full action records)."""
    return _report(result, "json", register)


CSV_COLUMNS = ("report", "date", "week_start", "rule", "subject_kind", "school_id", "subject_id", "verb", "alternative",
               "subjects", "firings", "actions", "action_id")


def to_csv(result: Backtest) -> str:
    """The three reports in one long table, told apart by the `report` column: `action` (one row
    per action, by day), `weekly` (per rule per school week) and `first_met`."""
    return _report(result, "csv", "")


def to_text(result: Backtest, register: str = "") -> str:
    """A report for people: a summary, the actions by day, the counts per rule per school week and
    the first date each subject met each rule."""
    return _report(result, "text", register)
