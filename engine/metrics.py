"""Metrics stage: plan + register + prior actions + as-of date -> one facts table per scope.

Everything is set-based in DuckDB: one aggregate pass over the marks computes every session
count and minutes-late metric for every pupil (`count(*) FILTER (WHERE ...)` per metric), runs
use window functions (gaps and islands), ledger measures aggregate the prior-actions table, and
group scopes sum pupil metrics. No Python loop touches a mark.

Each rule atom is then evaluated to exact integers: a numeric expression is a fraction
(numerator, denominator > 0) of HUGEINT SQL expressions, and a comparison `a/b OP c/d` becomes
`a*d OP c*b`. An undefined value (a rate with no possible sessions, an empty attribute, a
division by zero) is SQL NULL. The facts table carries, per subject, every metric column and,
per atom, either `a{k}` (1/0/NULL, for attribute tests) or `a{k}_l` and `a{k}_r` (the two
cross-multiplied sides of a comparison), which both rules engines read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from . import calendar as school_calendar
from .compile import (
    AllOf, AnyOf, Arithmetic, AttributeRef, Comparison, Const, DateRef, MetricRef, MetricSpec, Membership, Plan,
    Rank, RateRef, Truth, WindowSpec,
)
from .check import PUPIL_SCOPES, subject_kind
from .codes import national_codes

# "Never" (no such prior action) is a number greater than any real elapsed time.
NEVER = 10**12
_EPOCH = "DATE '0001-01-01'"  # date ordinals match Python's date.toordinal()


def _lit(value: date) -> str:
    return f"DATE '{value.isoformat()}'"


def _codes_sql(codes: frozenset[str]) -> str:
    return "(" + ", ".join("'" + c.replace("'", "''") + "'" for c in sorted(codes)) + ")"


@dataclass(frozen=True)
class Facts:
    """Per-scope facts tables in the register's DuckDB connection, and how to read them."""

    tables: dict[str, str]  # scope -> table name
    metric_columns: dict[MetricSpec, str]
    atom_columns: dict[tuple[str, int], tuple[str, ...]]  # (rule id, atom index) -> columns
    window_table: str  # bounds of each window per school, for evidence
    window_ids: dict[WindowSpec, str]
    marks_from: str  # marks m joined to their pupil p and window bounds b (evidence)
    on_roll: str  # the condition that a mark is on or before the as-of date and on roll
    counted_filter: dict[MetricSpec, str]  # per session-count metric: which of those marks it counts
    rank_columns: dict[str, dict]  # scope -> Rank -> column of the subject's rank (evidence)
    pupils: str = "pupils"  # the pupils table marks_from joins (evidence)


class _Builder:
    def __init__(self, plan: Plan, as_of: date, connection, marks="marks", pupils="pupils", calendar="calendar",
                 ledger: str | None = None):
        self.plan = plan
        self.as_of = as_of
        self.con = connection
        self.marks, self.pupils, self.calendar, self.ledger = marks, pupils, calendar, ledger
        self.metric_columns = {m: f"m{i}" for i, m in enumerate(plan.metrics)}
        windows = []
        for m in plan.metrics:
            if m.window is not None and _school_window(m.window) not in windows:
                windows.append(_school_window(m.window))
        self.window_ids = {w: f"w{i}" for i, w in enumerate(windows)}

    # ---- window bounds per school ----------------------------------------------------------
    def build_windows(self, table: str) -> None:
        """One row per (window, school): start_date, end_date, inclusive. Calendar-time and
        `ever` windows are the same for every school."""
        parts = []
        schools = f"(SELECT DISTINCT school_id FROM {self.calendar})"
        for w, wid in self.window_ids.items():
            if w.kind == "last" and w.unit in ("school_weeks", "school_days"):
                sql = school_calendar.window_sql(w.unit, self.as_of, w.size, calendar_table=self.calendar)
            elif w.kind == "last":
                start = _calendar_start(self.as_of, w.size, w.unit)
                sql = f"SELECT school_id, {_lit(start)} AS start_date, {_lit(self.as_of)} AS end_date, true AS complete FROM {schools}"
            elif w.kind == "ever":
                sql = f"SELECT school_id, DATE '0001-01-01' AS start_date, {_lit(self.as_of)} AS end_date, true AS complete FROM {schools}"
            elif w.kind == "since_attribute":
                # Per pupil: the window row only carries the as-of end; the start is the attribute.
                sql = f"SELECT school_id, NULL::DATE AS start_date, {_lit(self.as_of)} AS end_date, true AS complete FROM {schools}"
            elif w.kind == "since":
                sql = school_calendar.window_sql("since", self.as_of, start=w.since.literal, calendar_table=self.calendar)
            else:
                sql = school_calendar.window_sql(w.kind, self.as_of, calendar_table=self.calendar)
            parts.append(f"SELECT '{wid}' AS window_id, school_id, start_date, end_date, complete FROM ({sql})")
        if not parts:
            parts.append("SELECT NULL::VARCHAR AS window_id, NULL::VARCHAR AS school_id, NULL::DATE AS start_date, "
                         "NULL::DATE AS end_date, NULL::BOOLEAN AS complete WHERE false")
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS " + " UNION ALL ".join(parts))
        pivot_columns = ", ".join(
            f"max(start_date) FILTER (WHERE window_id = '{wid}') AS {wid}_start, "
            f"max(end_date) FILTER (WHERE window_id = '{wid}') AS {wid}_end" for wid in self.window_ids.values())
        if pivot_columns:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_by_school AS "
                             f"SELECT s.school_id, {pivot_columns} FROM {schools} s LEFT JOIN {table} b USING (school_id) "
                             "GROUP BY s.school_id")
        else:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_by_school AS SELECT DISTINCT school_id FROM {self.calendar}")

    # ---- conditions on one mark ------------------------------------------------------------
    def _date_sql(self, ref: DateRef) -> str:
        return _lit(ref.literal) if ref.literal is not None else f"p.\"{ref.attribute}\""

    def in_window(self, w: WindowSpec, column: str = "m.date") -> str:
        wid = self.window_ids[_school_window(w)]
        if w.kind == "since" and w.since.attribute is not None:
            condition = f"{column} >= {self._date_sql(w.since)} AND {column} <= b.{wid}_end"
        else:
            condition = f"{column} BETWEEN b.{wid}_start AND b.{wid}_end"
        if w.exclude_before is not None:
            condition += f" AND coalesce({column} >= {self._date_sql(w.exclude_before)}, true)"
        if w.exclude_to is not None:
            condition += (f" AND NOT coalesce({column} BETWEEN {self._date_sql(w.exclude_from)} AND "
                          f"{self._date_sql(w.exclude_to)}, false)")
        return condition

    def mark_filter(self, m: MetricSpec) -> str:
        parts = [self.in_window(m.window)]
        if m.codes is not None:
            parts.append(f"m.code IN {_codes_sql(m.codes)}" if m.codes else "false")
        if m.weekdays:
            parts.append(f"isodow(m.date) IN ({', '.join(map(str, m.weekdays))})")
        if m.half:
            parts.append(f"m.session = '{m.half}'")
        return " AND ".join(parts)

    def marks_on_roll(self, bounds: str) -> str:
        """Marks `m` with their pupil `p` and their school's window bounds `b` (filter with on_roll)."""
        return (f"{self.marks} m JOIN {self.pupils} p ON p.pupil_id = m.pupil_id AND p.school_id = m.school_id "
                f"JOIN {bounds}_by_school b ON b.school_id = m.school_id")

    def on_roll(self) -> str:
        return (f"m.date <= {_lit(self.as_of)} AND (p.joined_on IS NULL OR m.date >= p.joined_on) "
                "AND (p.left_on IS NULL OR m.date <= p.left_on)")

    # ---- pupil metrics ---------------------------------------------------------------------
    def _run_parts(self, m: MetricSpec) -> tuple[str, str, str]:
        """(rows the run walks over, matched, position key) for a run metric."""
        possible = national_codes().codes_in("possible")
        rows = f"m.code IN {_codes_sql(possible)} AND {self.in_window(m.window)}"
        matched = f"m.code IN {_codes_sql(m.codes)}" if m.codes is not None else "true"
        key = ("(date_diff('day', DATE '2000-01-01', m.date) * 2 + CASE WHEN m.session = 'PM' THEN 1 ELSE 0 END)"
               if m.run_unit == "sessions" else "m.date")
        return rows, matched, key

    def pupil_metrics_sql(self, bounds: str) -> str:
        aggregates = []
        current_runs = []
        for m, col in self.metric_columns.items():
            if m.kind == "sessions":
                aggregates.append(f"count(*) FILTER (WHERE {self.mark_filter(m)}) AS {col}")
            elif m.kind == "minutes_late":
                aggregates.append(f"coalesce(sum(m.minutes_late) FILTER (WHERE {self.in_window(m.window)}), 0) AS {col}")
            elif m.is_current_run:
                # The run ending with the latest possible session (day) is everything after the
                # latest one that does not match: find that one here, count what follows below.
                rows, matched, key = self._run_parts(m)
                aggregates.append(f"max({key}) FILTER (WHERE {rows} AND NOT ({matched})) AS {col}_last_miss")
                current_runs.append((m, col))
        marks_from = self.marks_on_roll(bounds)
        ctes = []
        select = ["p.pupil_id", "p.school_id"]
        joins = []
        if aggregates:
            # A pupil is (school_id, pupil_id): the same id may be on roll at two schools of a trust.
            ctes.append(f"mark_metrics AS (SELECT m.school_id, m.pupil_id, {', '.join(aggregates)} FROM {marks_from} "
                        f"WHERE {self.on_roll()} GROUP BY m.school_id, m.pupil_id)")
            joins.append("LEFT JOIN mark_metrics mm ON mm.pupil_id = p.pupil_id AND mm.school_id = p.school_id")
            for m, col in self.metric_columns.items():
                if m.kind in ("sessions", "minutes_late"):
                    select.append(f"coalesce(mm.{col}, 0) AS {col}")
        if current_runs:
            counts = []
            for m, col in current_runs:
                rows, matched, key = self._run_parts(m)
                after = f"{rows} AND (mm.{col}_last_miss IS NULL OR {key} > mm.{col}_last_miss)"
                counted = "*" if m.run_unit == "sessions" else "DISTINCT m.date"
                counts.append(f"count({counted}) FILTER (WHERE {after}) AS {col}")
                # The run's first school day (`repeat: {once_per: run}` and evidence): the first
                # possible session (day) it counts, so not-possible days never start it.
                counts.append(f"min(m.date) FILTER (WHERE {after}) AS {run_start_column(col)}")
            # Only marks after some run's last miss can count: filter them before grouping.
            any_after = " OR ".join(f"(mm.{col}_last_miss IS NULL OR {self._run_parts(m)[2]} > mm.{col}_last_miss)"
                                    for m, col in current_runs)
            ctes.append(f"current_runs AS (SELECT m.school_id, m.pupil_id, {', '.join(counts)} FROM {marks_from} "
                        "JOIN mark_metrics mm ON mm.pupil_id = m.pupil_id AND mm.school_id = m.school_id "
                        f"WHERE {self.on_roll()} AND ({any_after}) GROUP BY m.school_id, m.pupil_id)")
            joins.append("LEFT JOIN current_runs cr ON cr.pupil_id = p.pupil_id AND cr.school_id = p.school_id")
            select.extend(f"coalesce(cr.{col}, 0) AS {col}" for _, col in current_runs)
            select.extend(f"cr.{run_start_column(col)} AS {run_start_column(col)}" for _, col in current_runs)
        for m, col in self.metric_columns.items():
            if m.kind == "run" and m.run_which == "longest":
                ctes.append(self.run_sql(m, col, bounds))
                joins.append(f"LEFT JOIN {col}_run ON {col}_run.pupil_id = p.pupil_id AND {col}_run.school_id = p.school_id")
                select.append(f"coalesce({col}_run.{col}, 0) AS {col}")
        with_clause = ("WITH " + ",\n".join(ctes)) if ctes else ""
        return f"{with_clause} SELECT {', '.join(select)} FROM {self.pupils} p {' '.join(joins)}"

    def run_sql(self, m: MetricSpec, col: str, bounds: str) -> str:
        """The longest run: gaps and islands over the pupil's possible sessions (days) in order."""
        rows, matched, _ = self._run_parts(m)
        base = f"""SELECT m.school_id, m.pupil_id, m.date, m.session, ({matched}) AS matched
                FROM {self.marks_on_roll(bounds)} WHERE {self.on_roll()} AND {rows}"""
        if m.run_unit == "school_days":
            # A day matches when every possible session of the pupil that day matches.
            base = (f"SELECT school_id, pupil_id, date, '' AS session, bool_and(matched) AS matched FROM ({base}) "
                    "GROUP BY school_id, pupil_id, date")
        body = f"""SELECT school_id, pupil_id, max(n) AS {col} FROM (
                SELECT school_id, pupil_id, island, count(*) AS n FROM (
                    SELECT *, row_number() OVER (PARTITION BY school_id, pupil_id ORDER BY date, session)
                            - row_number() OVER (PARTITION BY school_id, pupil_id, matched ORDER BY date, session) AS island
                    FROM ({base})) WHERE matched GROUP BY school_id, pupil_id, island)
            GROUP BY school_id, pupil_id"""
        return f"{col}_run AS ({body})"

    # ---- ledger metrics --------------------------------------------------------------------
    def ledger_sql(self, scope: str, bounds: str) -> tuple[list[str], list[str]]:
        """CTEs and select expressions for action counts and time since actions, per subject."""
        ctes, selects = [], []
        kind = subject_kind(scope)
        for m, col in self.metric_columns.items():
            if m.kind not in ("action_count", "since_action"):
                continue
            if self.ledger is None:
                selects.append(f"{NEVER if m.kind == 'since_action' else 0} AS {col}")
                continue
            match = f"l.rule = '{m.rule}'" if m.rule else f"l.verb = '{m.verb}'"
            prior = (f"l.subject_kind = '{kind}' AND l.as_of < {_lit(self.as_of)} "
                     f"AND coalesce(l.status, 'open') <> 'dismissed' AND {match}")
            if m.kind == "action_count":
                distinct = "DISTINCT l.as_of" if m.rule else "DISTINCT (l.rule, l.as_of)"
                window = self.in_window(m.window, 'l.as_of')
                # A window bounded by a pupil's own dates (`since pupil.joined_on`) reads the pupil's row.
                pupil = (f" JOIN {self.pupils} p ON p.pupil_id = l.subject_id AND p.school_id = l.school_id"
                         if kind == "pupil" and _names_pupil(m.window) else "")
                ctes.append(f"""{col}_ledger AS (
                    SELECT l.subject_id, l.school_id, count({distinct}) AS {col}
                    FROM {self.ledger} l JOIN {bounds}_by_school b ON b.school_id = l.school_id{pupil}
                    WHERE {prior} AND {window}
                    GROUP BY l.subject_id, l.school_id)""")
                selects.append(f"coalesce({col}_ledger.{col}, 0) AS {col}")
            else:
                last = f"(SELECT l.subject_id, l.school_id, max(l.as_of) AS last_as_of FROM {self.ledger} l WHERE {prior} GROUP BY ALL)"
                if m.elapsed_unit == "days":
                    elapsed = f"date_diff('day', last_as_of, {_lit(self.as_of)})"
                    ctes.append(f"{col}_ledger AS (SELECT subject_id, school_id, {elapsed} AS {col} FROM {last})")
                elif m.elapsed_unit == "school_days":
                    ctes.append(f"""{col}_ledger AS (
                        SELECT x.subject_id, x.school_id, count(c.date) AS {col} FROM {last} x
                        LEFT JOIN {self.calendar} c ON c.school_id = x.school_id AND c.date > x.last_as_of
                             AND c.date <= {_lit(self.as_of)} AND (c.open_am OR c.open_pm)
                        GROUP BY x.subject_id, x.school_id)""")
                else:  # school weeks: school weeks that started after the action's week, up to as-of
                    ctes.append(f"""{col}_ledger AS (
                        SELECT x.subject_id, x.school_id, count(DISTINCT c.school_week) AS {col} FROM {last} x
                        LEFT JOIN {self.calendar} c ON c.school_id = x.school_id AND c.school_week IS NOT NULL
                             AND c.week_start > CAST(date_trunc('week', x.last_as_of) AS DATE)
                             AND c.week_start <= {_lit(self.as_of)} AND (c.open_am OR c.open_pm)
                        GROUP BY x.subject_id, x.school_id)""")
                selects.append(f"coalesce({col}_ledger.{col}, {NEVER}) AS {col}")
        return ctes, selects

    # ---- numeric expressions as exact fractions ---------------------------------------------
    def fraction(self, expr, columns: dict[MetricSpec, str]) -> tuple[str, str]:
        """SQL (numerator, denominator) of an expression; denominator > 0, or NULL if undefined."""
        if isinstance(expr, Const):
            v = Fraction(expr.value)
            return f"{v.numerator}::HUGEINT", f"{v.denominator}::HUGEINT"
        if isinstance(expr, MetricRef):
            return f"{columns[expr.metric]}::HUGEINT", "1::HUGEINT"
        if isinstance(expr, RateRef):
            n, d = columns[expr.numerator], columns[expr.denominator]
            return f"(100 * {n})::HUGEINT", f"(NULLIF({d}, 0))::HUGEINT"
        if isinstance(expr, AttributeRef):
            if expr.kind == "date":
                return f"(date_diff('day', {_EPOCH}, \"{expr.name}\") + 1)::HUGEINT", "1::HUGEINT"
            return self._decimal_fraction(f'"{expr.name}"')
        if isinstance(expr, Rank):
            return f"{self.rank_columns[expr]}::HUGEINT", "1::HUGEINT"
        if isinstance(expr, Arithmetic):
            a, b = self.fraction(expr.left, columns)
            c, d = self.fraction(expr.right, columns)
            if expr.op == "+":
                return f"({a} * {d} + {c} * {b})", f"({b} * {d})"
            if expr.op == "-":
                return f"({a} * {d} - {c} * {b})", f"({b} * {d})"
            if expr.op == "*":
                return f"({a} * {c})", f"({b} * {d})"
            # a/b ÷ c/d = (a*d)/(b*c), sign moved to the numerator; undefined when c = 0.
            return (f"(CASE WHEN {c} > 0 THEN {a} * {d} WHEN {c} < 0 THEN -({a} * {d}) END)",
                    f"(CASE WHEN {c} <> 0 THEN abs({b} * {c}) END)")
        raise TypeError(f"not numeric: {expr!r}")

    def _decimal_fraction(self, column: str) -> tuple[str, str]:
        # Numeric attributes are stored as DECIMAL(18,6): exact as a fraction over 10^6.
        return f"(TRY_CAST({column} AS DECIMAL(18,6)) * 1000000)::HUGEINT", "1000000::HUGEINT"

    def atom_sql(self, atom, columns) -> dict[str, str]:
        """Column name suffix -> SQL for one atom."""
        if isinstance(atom, Comparison):
            a, b = self.fraction(atom.left, columns)
            c, d = self.fraction(atom.right, columns)
            return {"_l": f"({a} * {d})", "_r": f"({c} * {b})"}
        if isinstance(atom, Membership):
            if isinstance(atom.value, AttributeRef) and atom.value.kind == "text":
                options = ", ".join(f'trim("{o.name}")' if isinstance(o, AttributeRef) else
                                    "'" + str(o).replace("'", "''") + "'" for o in atom.options)
                test = f"trim(\"{atom.value.name}\") IN ({options})"
            else:
                n, d = self.fraction(atom.value, columns)
                tests = [f"({n} * {Fraction(o).denominator} = {Fraction(o).numerator} * {d})" for o in atom.options]
                test = "(" + " OR ".join(tests) + ")"
            test = f"NOT ({test})" if atom.negated else test
            return {"": f"CASE WHEN {test} THEN 1 WHEN NOT ({test}) THEN 0 END"}
        if isinstance(atom, Truth):
            if isinstance(atom.value, bool):
                return {"": "1" if atom.value == atom.expected else "0"}
            col = f'"{atom.value.name}"'
            if atom.value.kind == "text":
                # A text compared with a text literal was compiled as membership; here only booleans.
                raise TypeError("text truth")
            return {"": f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} = {str(atom.expected).lower()} THEN 1 ELSE 0 END"}
        raise TypeError(f"not an atom: {atom!r}")


def run_start_column(column: str) -> str:
    """The facts column holding the first school day of the current run in metric column `column`
    (NULL when the run is empty). Pupil scope only: runs belong to one pupil."""
    return f"{column}_start"


def _names_pupil(w: WindowSpec) -> bool:
    """Whether a window's bounds or exclusions use a pupil's own dates (`since pupil.joined_on`)."""
    return any(ref is not None and ref.attribute is not None
               for ref in (w.since, w.exclude_from, w.exclude_to, w.exclude_before))


def _school_window(w: WindowSpec) -> WindowSpec:
    """The part of a window that is the same for every pupil of a school (bounds per school)."""
    if w.kind == "since" and w.since.attribute is not None:
        return WindowSpec("since_attribute")
    return WindowSpec(w.kind, w.size, w.unit, w.since if w.kind == "since" else None)


def _calendar_start(as_of: date, size: int, unit: str) -> date:
    if unit == "days":
        return as_of - timedelta(days=size - 1)
    if unit == "weeks":
        return as_of - timedelta(days=7 * size - 1)
    try:
        earlier = as_of.replace(year=as_of.year - size)
    except ValueError:  # 29 February
        earlier = as_of.replace(year=as_of.year - size, day=28)
    return earlier + timedelta(days=1)


_GROUP_COLUMNS = {"class": "reg_group", "year_group": "year_group", "school": None}


def evaluated_pupils(scope: str, day: str) -> str:
    """SQL condition on a pupil row `p`: whether a rule of a pupil scope evaluates the pupil on
    `day` (a SQL date). `pupil`: on roll that day. `leaver`: a recorded leave date (before, on or
    after the day) and joined by the day. docs/semantics.md, On roll, is the definition."""
    joined = f"(p.joined_on IS NULL OR p.joined_on <= {day})"
    if scope == "leaver":
        return f"p.left_on IS NOT NULL AND {joined}"
    return f"{joined} AND (p.left_on IS NULL OR p.left_on >= {day})"


def build_facts(plan: Plan, connection, as_of: date, *, marks="marks", pupils="pupils", calendar="calendar",
                ledger: str | None = None, prefix: str = "rb") -> Facts:
    """Compute every metric and atom for every subject of every scope the plan uses."""
    b = _Builder(plan, as_of, connection, marks, pupils, calendar, ledger)
    bounds = f"{prefix}_windows"
    b.build_windows(bounds)
    pupil_table = f"{prefix}_pupil_metrics"
    connection.execute(f"CREATE OR REPLACE TEMP TABLE {pupil_table} AS {b.pupil_metrics_sql(bounds)}")
    register_metrics = [c for m, c in b.metric_columns.items() if m.kind in ("sessions", "minutes_late", "run")]
    run_starts = [run_start_column(c) for m, c in b.metric_columns.items() if m.is_current_run]
    tables, atom_columns, rank_columns = {}, {}, {}
    for scope in plan.scopes:
        rules = [r for r in plan.rules if r.rule.scope == scope]
        if scope in PUPIL_SCOPES:
            base = (f"SELECT pm.pupil_id AS subject_id, pm.school_id, "
                    f"{', '.join(['pm.' + c for c in register_metrics + run_starts] or ['1 AS _'])}, p.* "
                    f"EXCLUDE (pupil_id, school_id) FROM {pupil_table} pm JOIN {pupils} p USING (pupil_id, school_id) "
                    f"WHERE {evaluated_pupils(scope, _lit(as_of))}")
        else:
            group = _GROUP_COLUMNS[scope]
            key = f"coalesce(p.{group}, '')" if group else "''"
            subject = f"{key}" if group else "pm.school_id"
            sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in register_metrics) or "1 AS _"
            base = (f"SELECT {subject} AS subject_id, pm.school_id, {sums} FROM {pupil_table} pm "
                    f"JOIN {pupils} p USING (pupil_id, school_id) GROUP BY ALL")
        ctes, ledger_selects = b.ledger_sql(scope, bounds)
        ledger_joins = " ".join(
            f"LEFT JOIN {c}_ledger ON {c}_ledger.subject_id = s.subject_id AND {c}_ledger.school_id = s.school_id"
            for m, c in b.metric_columns.items() if m.kind in ("action_count", "since_action") and ledger is not None)
        with_clause = ("WITH " + ", ".join(ctes)) if ctes else ""
        subject_table = f"{prefix}_subjects_{scope}"
        select_ledger = (", " + ", ".join(ledger_selects)) if ledger_selects else ""
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {subject_table} AS {with_clause} "
                           f"SELECT s.*{select_ledger} FROM ({base}) s {ledger_joins}")
        # Ranks of group values within each school.
        b.rank_columns = {}
        rank_columns[scope] = b.rank_columns
        rank_selects = []
        for r in rules:
            for atom in r.atoms:
                for rank in _ranks_in(atom):
                    if rank in b.rank_columns:
                        continue
                    col = f"rank{len(b.rank_columns)}"
                    b.rank_columns[rank] = col
                    n, d = b.fraction(rank.value, b.metric_columns)
                    value = f"({n})::DOUBLE / ({d})::DOUBLE"
                    rank_selects.append(
                        f"CASE WHEN {value} IS NULL THEN NULL ELSE rank() OVER (PARTITION BY school_id, ({value}) IS NULL "
                        f"ORDER BY {value} DESC) END AS {col}")
        if rank_selects:
            connection.execute(f"CREATE OR REPLACE TEMP TABLE {subject_table} AS SELECT *, {', '.join(rank_selects)} "
                               f"FROM {subject_table}")
        atom_selects = []
        for r in rules:
            for k, atom in enumerate(r.atoms):
                names = []
                for suffix, sql in b.atom_sql(atom, b.metric_columns).items():
                    name = f'"{r.rule.id}.a{k}{suffix}"'
                    atom_selects.append(f"{sql} AS {name}")
                    names.append(name.strip('"'))
                atom_columns[(r.rule.id, k)] = tuple(names)
        table = f"{prefix}_facts_{scope}"
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *{', ' if atom_selects else ''}"
                           f"{', '.join(atom_selects)} FROM {subject_table} ORDER BY school_id, subject_id")
        tables[scope] = table
    counted = {m: b.mark_filter(m) for m in plan.metrics if m.kind == "sessions"}
    return Facts(tables, b.metric_columns, atom_columns, bounds, b.window_ids, b.marks_on_roll(bounds), b.on_roll(), counted,
                 rank_columns, pupils)


# One subject's counted marks as evidence shows them, in date and session order: a JSON list of
# {"date", "session", "code"} (the `m` alias is the marks table). Built as JSON text in DuckDB and
# read with json.loads: turning a million DuckDB structs into Python dicts took twice as long.
COUNTED_MARKS_JSON = ("to_json(list({'date': strftime(m.date, '%Y-%m-%d'), 'session': m.session, 'code': m.code} "
                      "ORDER BY m.date, m.session))::VARCHAR")


def counted_marks(facts: Facts, connection, needs: dict[MetricSpec, set[tuple[str, str]]]) -> dict[MetricSpec, dict[tuple[str, str], list[dict]]]:
    """The marks each session-count metric counted, for the (school_id, pupil_id) subjects given
    per metric: the evidence behind actions, per metric keyed by (school_id, pupil_id), each a list
    of {"date", "session", "code"} in date and session order. One pass over the marks."""
    metrics = [m for m, subjects in needs.items() if subjects]
    out: dict[MetricSpec, dict[tuple[str, str], list[dict]]] = {m: {} for m in needs}
    if not metrics:
        return out
    rows = [(school_id, pupil_id, k) for k, m in enumerate(metrics) for school_id, pupil_id in sorted(needs[m])]
    # As three list parameters, unnested in DuckDB: executemany inserts row by row (~0.3 ms a
    # row), and Arrow would cost a command-line run its import (~0.2 s) for a few hundred pupils.
    # The ids are taken from the pupils table, so they have its column types: a register's ids
    # are ENUMs (engine/register.py), and a text id joined to the marks would turn every mark's
    # id into text.
    connection.execute(f"CREATE OR REPLACE TEMP TABLE rb_evidence_needs AS SELECT p.school_id, p.pupil_id, n.k "
                       f"FROM (SELECT unnest(?::VARCHAR[]) AS school_id, unnest(?::VARCHAR[]) AS pupil_id, "
                       f"unnest(?::INTEGER[]) AS k) n JOIN {facts.pupils} p "
                       "ON p.school_id::VARCHAR = n.school_id AND p.pupil_id::VARCHAR = n.pupil_id",
                       [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]])
    which = " ".join(f"WHEN {k} THEN {facts.counted_filter[m]}" for k, m in enumerate(metrics))
    # The lists are built in DuckDB, already in the evidence's shape: a trust's year-end run
    # shows about a million marks, too many to group and format one by one in Python.
    result = connection.execute(
        f"SELECT n.k, m.school_id, m.pupil_id, {COUNTED_MARKS_JSON} "
        f"FROM {facts.marks_from} "
        "JOIN rb_evidence_needs n ON n.school_id = m.school_id AND n.pupil_id = m.pupil_id "
        f"WHERE {facts.on_roll} AND coalesce(CASE n.k {which} END, false) "
        "GROUP BY n.k, m.school_id, m.pupil_id").fetchall()
    for k, school_id, pupil_id, marks in result:
        out[metrics[k]][(school_id, pupil_id)] = json.loads(marks)
    return out


def window_bounds(facts: Facts, connection) -> dict[tuple[str, str], tuple]:
    """(window id, school id) -> (start, end, complete), for evidence."""
    rows = connection.execute(f"SELECT window_id, school_id, start_date, end_date, complete FROM {facts.window_table}").fetchall()
    return {(w, s): (start, end, complete) for w, s, start, end, complete in rows}


def _ranks_in(expr) -> list[Rank]:
    if isinstance(expr, Rank):
        return [expr]
    if isinstance(expr, Comparison):
        return _ranks_in(expr.left) + _ranks_in(expr.right)
    if isinstance(expr, Membership):
        return _ranks_in(expr.value)
    if isinstance(expr, Arithmetic):
        return _ranks_in(expr.left) + _ranks_in(expr.right)
    return []


def predicate_sql(predicate, rule_id: str, atoms: tuple) -> str:
    """The rule's NNF predicate over its atom columns, undefined atoms read as false."""
    if isinstance(predicate, (AllOf, AnyOf)):
        joiner = " AND " if isinstance(predicate, AllOf) else " OR "
        return "(" + joiner.join(predicate_sql(p, rule_id, atoms) for p in predicate.parts) + ")"
    k = atoms.index(predicate)
    if isinstance(predicate, Comparison):
        op = "=" if predicate.op == "=" else ("<>" if predicate.op == "!=" else predicate.op)
        return f'coalesce("{rule_id}.a{k}_l" {op} "{rule_id}.a{k}_r", false)'
    return f'coalesce("{rule_id}.a{k}" = 1, false)'
