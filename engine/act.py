"""Act stage: firings + prior actions -> action records with evidence and deterministic ids.

A firing says a rule's condition holds for a subject. Whether it becomes actions depends on the
rule's repetition controls, read against the prior actions (the ledger) for the same subject:
`repeat` (once per period, cooldown), `after` (escalation) and `limit` (beyond the limit, the
`otherwise` actions instead). Prior actions count only when dated strictly before the as-of
date and not dismissed, so re-running a day gives the same actions with the same ids.

An action record is plain data (schemas/action.schema.json): who it is about, what to do, which
policy version and rule produced it, the as-of date, the evidence and a sentence a parent could
read. Its id is a hash of what it is, never of when it was computed.
"""

from __future__ import annotations

import bisect
import gc
import hashlib
import json
import operator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from . import ast
from . import calendar as school_calendar
from .check import Action, Duration, subject_kind
from .compile import Comparison, Const, MetricRef, Plan, Rank, RateRef, current_run_metric
from .metrics import NEVER, Facts, _school_window, counted_marks, run_start_column, window_bounds

ACTION_FORMAT = 1


@dataclass(frozen=True)
class PriorAction:
    """One action from the ledger, as the repetition controls need it."""

    rule: str
    verb: str
    subject_kind: str
    subject_id: str
    school_id: str
    as_of: date
    alternative: bool = False
    status: str = "open"


def action_id(policy_id: str, rule_id: str, subject: dict, as_of: date, position: int, verb: str, params: dict) -> str:
    """A deterministic id: the same decision on the same day always has the same id."""
    key = json.dumps([policy_id, rule_id, subject["kind"], subject.get("school_id", ""), subject["id"],
                      as_of.isoformat(), position, verb, params], sort_keys=True, separators=(",", ":"))
    return "act_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# ---- school time between two dates ------------------------------------------------------------

class Calendars:
    def __init__(self, connection, table: str = "calendar"):
        self.connection = connection
        self.table = table
        self.cache: dict[str, school_calendar.SchoolCalendar] = {}

    def of(self, school_id: str) -> school_calendar.SchoolCalendar:
        if school_id not in self.cache:
            self.cache[school_id] = school_calendar.SchoolCalendar.from_table(self.connection, school_id, self.table)
        return self.cache[school_id]

    def elapsed(self, school_id: str, earlier: date, as_of: date, unit: str) -> int:
        """Time from `earlier` to `as_of` in `unit`, as the language reference defines it."""
        if unit == "days":
            return (as_of - earlier).days
        if unit == "weeks":
            return (as_of - earlier).days // 7
        cal = self.of(school_id)
        # Both lists are sorted: count the open days (school weeks' Mondays) in (earlier, as_of].
        if unit == "school_days":
            return max(0, bisect.bisect_right(cal.open_dates, as_of) - bisect.bisect_right(cal.open_dates, earlier))
        if unit == "school_weeks":
            week = school_calendar.monday_of(earlier)
            return max(0, bisect.bisect_right(cal.school_weeks, as_of) - bisect.bisect_right(cal.school_weeks, week))
        raise ValueError(unit)

    def at_least(self, school_id: str, earlier: date, as_of: date, duration: Duration) -> bool:
        if duration.unit == "years":
            return earlier <= _years_before(as_of, duration.amount)
        return self.elapsed(school_id, earlier, as_of, duration.unit) >= duration.amount

    def within(self, school_id: str, earlier: date, as_of: date, duration: Duration) -> bool:
        """`earlier` lies in the window of `duration` ending on as-of (inclusive)."""
        if duration.unit == "years":
            return earlier > _years_before(as_of, duration.amount)
        if duration.unit in ("days", "weeks"):
            days = duration.amount * (7 if duration.unit == "weeks" else 1)
            return earlier > as_of - timedelta(days=days)
        return self.elapsed(school_id, earlier, as_of, duration.unit) < duration.amount

    def same_period(self, school_id: str, first: date, second: date, period: str) -> bool:
        if period == "ever":
            return True
        if period == "school_week":
            return school_calendar.monday_of(first) == school_calendar.monday_of(second)
        cal = self.of(school_id)
        a, b = cal.anchor(first), cal.anchor(second)
        if a is None or b is None:
            return False
        if period == "academic_year":
            return a.academic_year == b.academic_year
        if period == "term":
            return (a.academic_year, a.term) == (b.academic_year, b.term)
        return (a.academic_year, a.half_term) == (b.academic_year, b.half_term)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# ---- evidence ---------------------------------------------------------------------------------

def percent_text(value: Fraction) -> str:
    # The quotient of the two ints is correctly rounded, as float(value) is.
    return f"{value.numerator / value.denominator:.1f}%"


def value_of(expr, row: dict, columns: dict, rank_names: dict | None = None):
    """(exact Fraction or None, display text, detail dict) of an expression for one subject."""
    if isinstance(expr, Rank):
        rank = row.get((rank_names or {}).get(expr))
        of, shown, detail = value_of(expr.value, row, columns, rank_names)
        if rank is None:
            return None, "undefined", {"of": shown, **detail}
        return Fraction(rank), str(rank), {"of": shown, **detail}
    if isinstance(expr, RateRef):
        n, d = row[columns[expr.numerator]], row[columns[expr.denominator]]
        if not d:
            return None, "undefined (no possible sessions)", {"numerator": n, "denominator": d}
        value = Fraction(100 * n, d)
        return value, percent_text(value), {"numerator": n, "denominator": d}
    if isinstance(expr, MetricRef):
        v = row[columns[expr.metric]]
        if expr.metric.kind == "since_action" and v == NEVER:
            return None, "never", {}
        return Fraction(v), str(v), {}
    return None, "", {}


OP_WORDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least", "=": "equal to", "!=": "not equal to"}
_NOUNS = {"sessions": "sessions", "minutes_late": "minutes", "run": None, "action_count": "actions", "since_action": None}


def _describe_threshold(expr) -> str | None:
    if isinstance(expr, Const):
        v = expr.value
        return str(v.numerator) if v.denominator == 1 else f"{float(v):g}"
    return None


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne}


def compare(value: Fraction, op: str, threshold: Fraction) -> bool:
    return _COMPARE[op](value, threshold)


# ---- repetition, escalation and limits ---------------------------------------------------------

def prior_by_subject(prior: list[PriorAction], as_of: date) -> dict[tuple[str, str, str], list[PriorAction]]:
    """The prior actions that count on `as_of` (dated strictly before it, not dismissed), keyed by
    subject (kind, school id, subject id)."""
    by_subject: dict[tuple[str, str, str], list[PriorAction]] = {}
    for p in prior:
        if p.as_of < as_of and p.status != "dismissed":
            by_subject.setdefault((p.subject_kind, p.school_id, p.subject_id), []).append(p)
    return by_subject


@dataclass(frozen=True)
class Gate:
    """What a rule's repetition controls decide for a subject whose condition holds: whether it
    acts, with which actions, and if not, which control stopped it and why."""

    acts: bool
    actions: tuple[Action, ...]  # the rule's actions, or its limit's `otherwise` actions
    control: str | None = None  # what stopped it: once_per | cooldown | after
    reason: str | None = None  # why, in a sentence
    blocking: tuple[date, ...] = ()  # the prior actions' dates behind the decision
    escalation: dict | None = None  # evidence of the `after` rule's action, when it acts
    limit: dict | None = None  # evidence of a reached limit, when it acts with the alternative


def _elapsed_words(calendars: "Calendars", school_id: str, earlier: date, as_of: date, unit: str) -> str:
    if unit == "years":
        return ""
    n = calendars.elapsed(school_id, earlier, as_of, unit)
    return f", {n} {unit.replace('_', ' ')[:-1] if n == 1 else unit.replace('_', ' ')} before the as-of date"


def run_start_of(compiled, row: dict, facts_columns: dict) -> date | None:
    """The first school day of the current run a `once_per: run` rule counts, from the subject's
    facts row (None for other rules, or when the run is empty)."""
    metric = current_run_metric(compiled)
    return None if metric is None else row.get(run_start_column(facts_columns[metric]))


def repetition_gate(rule, history: list[PriorAction], school_id: str, as_of: date, calendars: "Calendars",
                    run_start: date | None = None) -> Gate:
    """Apply `repeat` (once per period, once per run, cooldown; none means once ever), `after` and
    `limit` to one subject's prior actions (`history`, as prior_by_subject gives them).
    `run_start` is the first school day of the current run, for `once_per: run` (run_start_of)."""
    mine = [p for p in history if p.rule == rule.id]
    if rule.repeat.once_per == "run":
        # Once per run: a run that started on or before the last action is the run it acted in
        # (or one it could have); only a run starting after that day is new. No current run: wait for one.
        last = max((p.as_of for p in mine), default=None)
        if last is not None and (run_start is None or run_start <= last):
            why = (f"the rule acts at most once per run, and it already acted on {last.isoformat()} "
                   + (f"in the current run, which started on {run_start.isoformat()}; it acts again only in a "
                      "run that starts after that day" if run_start is not None else
                      "and no run has started since"))
            return Gate(False, (), "once_per", why, (last,))
    elif rule.repeat.cooldown is not None:
        recent = sorted({p.as_of for p in mine if not calendars.at_least(school_id, p.as_of, as_of, rule.repeat.cooldown)})
        if recent:
            last = recent[-1]
            return Gate(False, (), "cooldown",
                        f"the rule last acted for this subject on {last.isoformat()}"
                        f"{_elapsed_words(calendars, school_id, last, as_of, rule.repeat.cooldown.unit)}; "
                        f"it acts again only {rule.repeat.cooldown} or more after that (cooldown)", tuple(recent))
    else:
        period = rule.repeat.once_per or "ever"
        same = sorted({p.as_of for p in mine if calendars.same_period(school_id, p.as_of, as_of, period)})
        if same:
            why = ("the rule acts at most once per subject, and it already acted on " if period == "ever" else
                   f"the rule acts at most once per {period.replace('_', ' ')}, and it already acted in this "
                   f"{period.replace('_', ' ')} on ")
            return Gate(False, (), "once_per", why + ", ".join(d.isoformat() for d in same), tuple(same))
    escalation = None
    if rule.after is not None:
        earlier = [p for p in history if p.rule == rule.after.rule and
                   (rule.after.at_least is None or calendars.at_least(school_id, p.as_of, as_of, rule.after.at_least))]
        if not earlier:
            acted = sorted({p.as_of for p in history if p.rule == rule.after.rule})
            if not acted:
                why = f"the rule acts only after rule {rule.after.rule} has acted for this subject, and it has not"
            else:
                why = (f"the rule acts only {rule.after.at_least} or more after rule {rule.after.rule} acted for this "
                       f"subject; it last acted on {acted[-1].isoformat()}"
                       f"{_elapsed_words(calendars, school_id, acted[-1], as_of, rule.after.at_least.unit)}")
            return Gate(False, (), "after", why, tuple(acted))
        escalation = {"after_rule": rule.after.rule, "after_as_of": max(p.as_of for p in earlier).isoformat(),
                      "at_least": str(rule.after.at_least) if rule.after.at_least else None}
    chosen: tuple[Action, ...] = rule.actions
    limit_evidence = None
    if rule.limit is not None:
        counted_rules = {rule.id, *rule.limit.rules}
        occasions = sorted({p.as_of for p in history if p.rule in counted_rules and not p.alternative
                            and calendars.within(school_id, p.as_of, as_of, rule.limit.within)})
        if len(occasions) >= rule.limit.max:
            chosen = rule.limit.otherwise
            limit_evidence = {"max": rule.limit.max, "within": str(rule.limit.within),
                              "prior": [d.isoformat() for d in occasions], "reached": True}
    return Gate(True, chosen, escalation=escalation, limit=limit_evidence)


# ---- the act stage ------------------------------------------------------------------------------

@contextmanager
def _without_cycle_collection():
    """The act stage makes hundreds of thousands of small dicts and lists (evidence, marks), none
    of them in a reference cycle; the cycle collector, triggered by the allocations, would scan
    them all again and again: about a third of the stage's time on a trust's year-end run.
    Reference counting frees them as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_actions(plan: Plan, facts: Facts, firings, connection, as_of: date, prior: list[PriorAction],
                  calendar_note: str | None = None, calendar_table: str = "calendar",
                  calendars: "Calendars | None" = None, sessions_evidence: dict | None = None,
                  subject_rows: dict | None = None, bounds: dict | None = None) -> list[dict]:
    """Action records for the firings that pass their rules' repetition controls, in order.
    A caller that acts on many days (the backtest) reads what it can for all days at once and
    passes it in: `calendars` (each school's calendar, read once), `sessions_evidence` (the counted
    marks, as metrics.counted_marks returns them), `subject_rows` (each firing subject's facts row,
    keyed (scope, school_id, subject_id)) and `bounds` (as metrics.window_bounds returns them)."""
    with _without_cycle_collection():
        return _build_actions(plan, facts, firings, connection, as_of, prior, calendar_note, calendar_table,
                              calendars, sessions_evidence, subject_rows, bounds)


def _build_actions(plan, facts, firings, connection, as_of, prior, calendar_note, calendar_table, calendars,
                   sessions_evidence, subject_rows, bounds) -> list[dict]:
    policy = plan.policy
    calendars = calendars or Calendars(connection, calendar_table)
    if bounds is None:
        bounds = window_bounds(facts, connection)
    by_subject = prior_by_subject(prior, as_of)
    compiled_by_id = {c.rule.id: c for c in plan.rules}
    rows_cache: dict[tuple, dict] = subject_rows if subject_rows is not None else {}
    for scope, table in ({} if subject_rows is not None else facts.tables).items():
        subjects = list(dict.fromkeys((f.school_id, f.subject_id) for f in firings if f.scope == scope))
        if not subjects:
            continue
        columns = _columns_read(connection, table, scope, plan, facts)
        cursor = connection.execute(f"SELECT {columns} FROM {table} WHERE (school_id, subject_id) IN "
                                    f"(SELECT (unnest(?), unnest(?)))", [[s for s, _ in subjects], [i for _, i in subjects]])
        names = [d[0] for d in cursor.description]
        school_at, subject_at = names.index("school_id"), names.index("subject_id")
        for values in cursor.fetchall():
            rows_cache[(scope, values[school_at], values[subject_at])] = dict(zip(names, values))
    # Marks behind each session count, for the pupils whose rules show that count: one query.
    needs: dict = {}
    for firing in firings:
        if subject_kind(firing.scope) == "pupil":
            for _, expr in compiled_by_id[firing.rule_id].measures:
                if isinstance(expr, MetricRef) and expr.metric.kind == "sessions":
                    needs.setdefault(expr.metric, set()).add((firing.school_id, firing.subject_id))
    if sessions_evidence is None:
        sessions_evidence = counted_marks(facts, connection, needs)
    templates = {c.rule.id: _RuleTemplate(c, policy, facts, parameters_used(c.rule, c.parameters)) for c in plan.rules}
    as_of_text = as_of.isoformat()
    actions: list[dict] = []
    for firing in firings:
        template = templates[firing.rule_id]
        rule = template.rule
        row = rows_cache[(firing.scope, firing.school_id, firing.subject_id)]
        kind = subject_kind(firing.scope)
        history = by_subject.get((kind, firing.school_id, firing.subject_id), [])
        gate = repetition_gate(rule, history, firing.school_id, as_of, calendars,
                               run_start_of(compiled_by_id[firing.rule_id], row, facts.metric_columns))
        if not gate.acts:
            continue
        escalation, limit_evidence, chosen = gate.escalation, gate.limit, gate.actions
        values = template.values(row, facts.metric_columns)
        evidence = template.evidence(row, values, firing, bounds, sessions_evidence)
        if escalation:
            evidence["escalation"] = escalation
        if limit_evidence:
            evidence["limit"] = limit_evidence
        if calendar_note:
            evidence["calendar"] = calendar_note
        subject = {"kind": kind, "id": firing.subject_id, "school_id": firing.school_id}
        reason = template.sentence(values, f"{_WHO[kind]} {firing.subject_id or firing.school_id}")
        if limit_evidence:
            reason += template.limit_reason
        # The id's key up to the position, as action_id writes it (see template.id_tail).
        id_head = (template.id_prefix + _json_value(kind) + "," + _json_value(firing.school_id) + ","
                   + _json_value(firing.subject_id) + "," + _json_value(as_of_text) + ",")
        for position, action in enumerate(chosen):
            params = action.params_dict()
            actions.append({
                "id": "act_" + hashlib.sha256((id_head + template.id_tail(position, action, params)).encode("utf-8")).hexdigest()[:32],
                "format": ACTION_FORMAT,
                "policy": policy.id,
                "policy_version": policy.version,
                "policy_sha256": policy.sha256,
                "rule": rule.id,
                "rule_title": rule.title,
                "defined_in": rule.defined_in,
                "subject": subject,
                "verb": action.verb,
                "params": params,
                "alternative": limit_evidence is not None,
                "as_of": as_of_text,
                "advisory": rule.advisory,
                "evidence": evidence,
                "reason": reason,
                "source": rule.source,
            })
    return actions


_WHO = {"pupil": "Pupil", "class": "Class", "year_group": "Year group", "school": "School"}
# json.dumps of one value as action_id's key holds it (ASCII, compact).
_json_value = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _columns_read(connection, table: str, scope: str, plan: Plan, facts: Facts) -> str:
    """The facts table's columns the evidence and reasons read (in table order), not every
    pupil attribute and every other rule's atoms."""
    wanted = {"school_id", "subject_id", *facts.metric_columns.values(), *facts.rank_columns.get(scope, {}).values(),
              *(run_start_column(c) for m, c in facts.metric_columns.items() if m.is_current_run)}
    for (rule_id, _), columns in facts.atom_columns.items():
        wanted.update(columns)
    types = connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()
    quoted = {name: '"' + name.replace('"', '""') + '"' for name, _ in types}
    names = [name for name, _ in types if name in wanted]
    # The atoms' cross-multiplied sides are HUGEINT so they are exact whatever the constants;
    # Python makes an int from a HUGEINT about ten times slower than from a BIGINT (0.4 s of a
    # trust's year-end run), so a column whose every value fits a BIGINT is read as one.
    huge = [name for name, kind in types if name in wanted and kind == "HUGEINT"]
    fits = set()
    if huge:
        bounds = ", ".join(f"bool_and({quoted[n]} BETWEEN {-2 ** 63} AND {2 ** 63 - 1})" for n in huge)
        fits = {n for n, ok in zip(huge, connection.execute(f"SELECT {bounds} FROM {table}").fetchone())
                if ok is not False}  # None: no row has a value
    return ", ".join(f"{quoted[n]}::BIGINT AS {quoted[n]}" if n in fits else quoted[n] for n in names)


class _RuleTemplate:
    """What one compiled rule's actions share whatever the subject: worked out once per rule,
    not once per action: the evidence layout, the reason's clauses and the fixed parts of the
    action's id (the id stays what action_id computes; a test holds them equal)."""

    def __init__(self, compiled, policy, facts: Facts, parameters: dict):
        rule = compiled.rule
        self.rule, self.parameters = rule, parameters
        self.condition_text = rule.condition_text
        self.rank_names = facts.rank_columns.get(rule.scope)
        # (text, expression, (window id, description) or None, the metric whose marks it shows or None)
        self.measures = []
        for text, expr in compiled.measures:
            metric = expr.metric if isinstance(expr, MetricRef) else (expr.numerator if isinstance(expr, RateRef) else None)
            window = None
            if metric is not None and metric.window is not None:
                window = (facts.window_ids[_school_window(metric.window)], metric.window.describe())
            sessions = (expr.metric if isinstance(expr, MetricRef) and expr.metric.kind == "sessions"
                        and subject_kind(rule.scope) == "pupil" else None)
            run_start = (run_start_column(facts.metric_columns[expr.metric]) if isinstance(expr, MetricRef)
                         and expr.metric.is_current_run else None)
            self.measures.append((text, expr, window, sessions, run_start))
        self.comparisons = [(atom.text, getattr(atom, "op", None), facts.atom_columns[(rule.id, k)])
                            for k, atom in enumerate(compiled.atoms)]
        # The reason's clauses: comparisons of a metric or rate with a constant that the
        # condition names as a measure (anything else has no value to show).
        self.clauses = []
        for atom in compiled.atoms:
            if not isinstance(atom, Comparison) or not isinstance(atom.left, (RateRef, MetricRef)):
                continue
            threshold = _describe_threshold(atom.right)
            index = next((i for i, (_, e) in enumerate(compiled.measures) if e == atom.left), None)
            if threshold is None or index is None:
                continue
            rate = isinstance(atom.left, RateRef)
            self.clauses.append((index, atom.op, atom.right.value, compiled.measures[index][0],
                                 threshold + ("%" if rate else ""), rate))
        self.limit_reason = (f" The limit of {rule.limit.max} in {rule.limit.within} is reached, so the alternative "
                             "action is taken instead.") if rule.limit is not None else ""
        self.id_prefix = "[" + _json_value(policy.id) + "," + _json_value(rule.id) + ","
        self._id_tails: dict = {}

    def id_tail(self, position: int, action: Action, params: dict) -> str:
        """The end of action_id's key: position, verb and params (the same for every subject)."""
        key = (position, id(action))  # the rule's own Action objects, alive for the run
        tail = self._id_tails.get(key)
        if tail is None:
            tail = self._id_tails[key] = json.dumps([position, action.verb, params], sort_keys=True, separators=(",", ":"))[1:]
        return tail

    def values(self, row: dict, columns: dict) -> list[tuple]:
        """value_of each measure for one subject."""
        return [value_of(expr, row, columns, self.rank_names) for _, expr, _, _, _ in self.measures]

    def evidence(self, row: dict, values: list, firing, bounds: dict, sessions_evidence: dict) -> dict:
        measures = []
        for (text, _, window, sessions, run_start), (_, shown, detail) in zip(self.measures, values):
            entry = {"measure": text, "value": shown}
            entry.update(detail)
            if window is not None:
                start, end, complete = bounds.get((window[0], firing.school_id), (None, None, None))
                shown_window = {"description": window[1],
                                "start": start.isoformat() if start and start.year > 1 else None,
                                "end": end.isoformat() if end else None}
                if complete is False:
                    shown_window["complete"] = False
                entry["window"] = shown_window
            if run_start is not None and row.get(run_start) is not None:
                entry["run_start"] = row[run_start].isoformat()
            if sessions is not None:
                entry["sessions"] = sessions_evidence[sessions].get((firing.school_id, firing.subject_id), [])
            measures.append(entry)
        comparisons = []
        for text, op, columns in self.comparisons:
            if len(columns) == 2:
                left, right = row[columns[0]], row[columns[1]]
                if left is None or right is None:
                    holds = None
                elif type(left) is int and type(right) is int:  # exact already; Fraction gives the same
                    holds = _COMPARE[op](left, right)
                else:
                    holds = compare(Fraction(left), op, Fraction(right))
            else:
                holds = None if row[columns[0]] is None else row[columns[0]] == 1
            comparisons.append({"condition": text, "holds": holds})
        out = {"condition": self.condition_text, "measures": measures, "comparisons": comparisons}
        if self.parameters:
            out["parameters"] = self.parameters
        return out

    def sentence(self, values: list, subject_words: str) -> str:
        parts = []
        for index, op, threshold_value, left_text, threshold, rate in self.clauses:
            value, shown, detail = values[index]
            if value is None or not _COMPARE[op](value, threshold_value):
                continue
            if rate:
                shown += f" ({detail['numerator']} of {detail['denominator']} possible sessions)"
            parts.append(f"{left_text} is {shown}, which is {OP_WORDS[op]} {threshold}")
        if not parts:
            return f"{subject_words}: {self.rule.title}."
        return f"{subject_words}: " + "; and ".join(parts) + "."


def parameters_used(rule, parameters) -> dict:
    """Parameter values a rule's condition names, shown as written (85%, [G, O, U], 10 school weeks)."""
    out = {}
    for node in ast.walk(rule.condition):
        if isinstance(node, ast.Parameter) and node.name in parameters:
            p = parameters[node.name]
            if isinstance(p.value, tuple):
                out[node.name] = list(p.value)
            elif isinstance(p.value, date):
                out[node.name] = p.value.isoformat()
            else:
                number = format(p.value.normalize(), "f")
                out[node.name] = f"{number}%" if p.unit == "percent" else f"{number} {p.unit.replace('_', ' ')}"
    return out
