"""Explain stage: why each rule of a policy did or did not act for one pupil on an as-of date.

`rollbook explain` runs the same pipeline as `rollbook eval` (check, compile, metrics over the
whole register so ranks see the whole cohort, fire, act) and then reads, for one pupil and the
groups the pupil belongs to, what the facts tables hold: each comparison's exact values and
whether it held (the compile stage's atoms, as the metrics stage computed them), the window
bounds, the marks each count counted, and the repetition controls' decision (act.repetition_gate,
the function the act stage itself calls). Nothing here counts marks.

For a comparison that did not hold it says what would make it hold, in exact arithmetic:

- a count compared with a threshold: how many more (or fewer) it needs, and whether the window
  has that many other possible sessions for the pupil;
- a rate compared with a threshold: the distance in points, and the fewest added sessions that
  would reach the threshold, assuming each added session is a possible session of the kind that
  moves the rate towards it (absent sessions to lower attendance or raise absence, attended
  sessions for the opposite) and that nothing else changes. It is the smallest k for which the
  comparison holds with k added sessions and does not hold with k - 1; found by exact integer
  arithmetic, then checked.

The result is plain data (`explain_pupil` returns a dict: the JSON output, documented in
docs/explain.md); `render_text` turns it into the text output.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from fractions import Fraction

from . import act
from .api import RollbookError, as_of_date, checked_policy, prepare_register, prior_action_list
from .check import PUPIL_SCOPES, subject_kind
from .codes import CATEGORIES, national_codes
from .compile import (
    AllOf, AnyOf, Arithmetic, AttributeRef, Comparison, Const, Membership, MetricRef, MetricSpec, Rank, RateRef, Truth,
    compile_policy, metrics_in, window_text,
)
from .metrics import NEVER, _school_window, build_facts, counted_marks, run_start_column, window_bounds

EXPLAIN_FORMAT = 1

_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
_SUBJECT_WORDS = {"pupil": "pupil", "leaver": "pupil", "class": "class", "year_group": "year group", "school": "school"}
_RATE_NOUNS = {"attending": "attendance", "absent": "absence", "authorised": "authorised absence",
               "unauthorised": "unauthorised absence"}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


class ExplainError(RollbookError):
    """An input problem that stops an explanation. `usage` marks a command line that must say
    more (exit 2); `partial` holds what could still be explained."""

    def __init__(self, message: str, problems: list | None = None, *, usage: bool = False, partial: dict | None = None):
        super().__init__(message, problems)
        self.usage = usage
        self.partial = partial


def day_words(day: date) -> str:
    """13 March 2026."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


# ---- numbers shown exactly -------------------------------------------------------------------

def _number_text(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):g}"


def _points_toward_zero(value: Fraction) -> str:
    """A non-negative number of points to 2 decimal places, rounded down: "more than 1.33 points"
    and "at least 1.33 points" stay true when the exact distance is 1.3333..."""
    hundredths = math.floor(value * 100)
    text = f"{hundredths // 100}.{hundredths % 100:02d}".rstrip("0").rstrip(".")
    return text


def _threshold_text(value: Fraction, percent: bool) -> str:
    return _number_text(value) + ("%" if percent else "")


def _holds(left: Fraction, op: str, right: Fraction) -> bool:
    return act.compare(left, op, right)


# ---- the smallest number of added sessions that makes a rate comparison hold ------------------

def sessions_to_reach(numerator: int, denominator: int, op: str, threshold: Fraction, rise: bool) -> int | None:
    """The fewest k >= 0 such that the rate 100 * n' / (d + k) OP threshold, where each of the k
    added sessions is a possible session that is counted in the numerator (`rise`: n' = n + k) or
    not (n' = n). None when no k makes it hold. Exact: integer and Fraction arithmetic only."""
    n, d, t = Fraction(numerator), Fraction(denominator), Fraction(threshold)

    def holds(k: int) -> bool:
        top = n + k if rise else n
        if d + k == 0:
            return False
        return act.compare(100 * top / (d + k), op, t)

    if op in ("=", "!="):
        return None
    if holds(0):
        return 0
    if rise:
        # 100(n + k) / (d + k) OP t  <=>  k(100 - t) OP t*d - 100n, as 100 - t > 0; at or above
        # 100% only a rate that is already 100% stays there.
        if op not in (">", ">=") or t >= 100:
            return None
        bound = (t * d - 100 * n) / (100 - t)
        k = math.ceil(bound) if op == ">=" else math.floor(bound) + 1
    else:
        # 100n / (d + k) OP t  <=>  k*t OP 100n - t*d, as t > 0; at or below 0% only a rate that
        # is already 0% stays there.
        if op not in ("<", "<=") or t <= 0:
            return None
        bound = (100 * n - t * d) / t
        k = math.ceil(bound) if op == "<=" else math.floor(bound) + 1
    k = max(k, 1)
    # The algebra above is checked against the definition: k holds and k - 1 does not.
    if not holds(k) or (k > 0 and holds(k - 1)):
        raise AssertionError(f"sessions_to_reach({numerator}, {denominator}, {op!r}, {threshold}, {rise}) gave {k}")
    return k


def count_to_reach(value: int, op: str, threshold: Fraction) -> tuple[int, int] | None:
    """(target, change) for a whole-number measure to satisfy `value OP threshold` with the
    smallest change (positive: more, negative: fewer); None when no whole number does."""
    t = Fraction(threshold)
    if op == ">=":
        target = math.ceil(t)
    elif op == ">":
        target = math.floor(t) + 1
    elif op == "<=":
        target = math.floor(t)
    elif op == "<":
        target = math.ceil(t) - 1
    elif op == "=":
        if t.denominator != 1:
            return None
        target = t.numerator
    else:  # != : one step away
        target = value + 1
    if op in (">=", ">"):
        target = max(target, value)
    elif op in ("<=", "<"):
        target = min(target, value)
    return target, target - value


# ---- reading one subject's facts ------------------------------------------------------------

class _Reader:
    """Exact values of compiled expressions for one subject's facts row."""

    def __init__(self, facts, row: dict, scope: str):
        self.facts = facts
        self.row = row
        self.ranks = facts.rank_columns.get(scope, {})

    def value(self, expr):
        """An exact Fraction, True/False, text, or None when undefined. `never` is NEVER."""
        if isinstance(expr, Const):
            return Fraction(expr.value)
        if isinstance(expr, (bool, str)):
            return expr
        if isinstance(expr, MetricRef):
            return Fraction(self.row[self.facts.metric_columns[expr.metric]])
        if isinstance(expr, RateRef):
            n = self.row[self.facts.metric_columns[expr.numerator]]
            d = self.row[self.facts.metric_columns[expr.denominator]]
            return Fraction(100 * n, d) if d else None
        if isinstance(expr, AttributeRef):
            v = self.row.get(expr.name)
            if v is None:
                return None
            if expr.kind == "date":
                return Fraction(v.toordinal())
            if expr.kind == "number":
                return Fraction(v)
            return v
        if isinstance(expr, Rank):
            v = self.row.get(self.ranks.get(expr))
            return None if v is None else Fraction(v)
        if isinstance(expr, Arithmetic):
            a, b = self.value(expr.left), self.value(expr.right)
            if a is None or b is None:
                return None
            if expr.op == "+":
                return a + b
            if expr.op == "-":
                return a - b
            if expr.op == "*":
                return a * b
            return None if b == 0 else a / b
        raise TypeError(f"not a value: {expr!r}")

    def atom_holds(self, rule_id: str, k: int, atom):
        """The atom's truth exactly as the metrics stage computed it: True, False or None (unknown)."""
        columns = self.facts.atom_columns[(rule_id, k)]
        if len(columns) == 2:
            left, right = self.row[columns[0]], self.row[columns[1]]
            if left is None or right is None:
                return None
            return act.compare(Fraction(left), atom.op, Fraction(right))
        v = self.row[columns[0]]
        return None if v is None else v == 1


def _has_measure(expr) -> bool:
    if isinstance(expr, (MetricRef, RateRef, Rank)):
        return True
    if isinstance(expr, Arithmetic):
        return _has_measure(expr.left) or _has_measure(expr.right)
    return False


def _has_attribute(expr) -> bool:
    if isinstance(expr, AttributeRef):
        return True
    if isinstance(expr, Arithmetic):
        return _has_attribute(expr.left) or _has_attribute(expr.right)
    if isinstance(expr, Rank):
        return _has_attribute(expr.value)
    return False


def _is_percent(expr) -> bool:
    """A rate, or a sum or difference with one (the compiled plan keeps no units)."""
    if isinstance(expr, RateRef):
        return True
    if isinstance(expr, Arithmetic) and expr.op in "+-":
        return _is_percent(expr.left) or _is_percent(expr.right)
    return False


def _whole_number(expr) -> bool:
    """A measure side whose values are whole numbers (counts, runs, minutes, elapsed time)."""
    if isinstance(expr, MetricRef):
        return True
    if isinstance(expr, Const):
        return expr.value.denominator == 1
    if isinstance(expr, Arithmetic) and expr.op in "+-":
        return _whole_number(expr.left) and _whole_number(expr.right)
    return False


# ---- words ----------------------------------------------------------------------------------

def codes_words(codes: frozenset[str]) -> str:
    """G, O or U: in the order of the national code table."""
    order = list(national_codes().codes)
    listed = sorted(codes, key=lambda c: order.index(c) if c in order else len(order))
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " or " + listed[-1]


def _category_of(codes: frozenset[str]) -> str | None:
    catalogue = national_codes()
    for category in CATEGORIES:  # no two categories have the same codes, so the order does not matter
        if codes == catalogue.codes_in(category):
            return category
    return None


def _filter_words(spec: MetricSpec, noun: str = "sessions") -> str:
    words = []
    category = _category_of(spec.codes) if spec.codes is not None else None
    if category:
        words.append(category.replace("_", " "))
    if spec.half:
        words.append("morning" if spec.half == "AM" else "afternoon")
    words.append(noun)
    if spec.codes is not None and category is None:
        words.append(f"coded {codes_words(spec.codes)}" if spec.codes else "coded with no code")
    if spec.weekdays:
        names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
        days = [names[d - 1] + "s" for d in spec.weekdays]
        words.append("on " + (days[0] if len(days) == 1 else ", ".join(days[:-1]) + " and " + days[-1]))
    return " ".join(words)


def metric_words(spec: MetricSpec) -> str:
    """A measure in the user's terms, with the parameters' values: "sessions coded G, O or U in the
    last 10 school weeks"."""
    window = _window_words(spec.window) if spec.window is not None else ""
    if spec.kind == "sessions":
        return f"{_filter_words(spec)} {window}"
    if spec.kind == "minutes_late":
        return f"minutes late {window}"
    if spec.kind == "run":
        noun = "sessions" if spec.run_unit == "sessions" else "school days"
        return f"{spec.run_which} run of {_filter_words(dataclasses.replace(spec, half=None, weekdays=None), noun)} {window}"
    selector = f"by rule {spec.rule}" if spec.rule else f"with verb {spec.verb}"
    if spec.kind == "action_count":
        return f"actions {selector} {window}"
    return f"{spec.elapsed_unit.replace('_', ' ')} since the last action {selector}"


def _date_ref_words(ref) -> str:
    return ref.literal.isoformat() if ref.literal is not None else f"pupil.{ref.attribute}"


def _window_words(w) -> str:
    text = window_text(w)
    if w.kind == "last":
        text = "in " + text
    if w.exclude_before is not None:
        text += f" excluding days before {_date_ref_words(w.exclude_before)}"
    if w.exclude_to is not None:
        text += f" excluding days from {_date_ref_words(w.exclude_from)} to {_date_ref_words(w.exclude_to)}"
    return text


def _rate_words(expr: RateRef) -> str:
    category = _category_of(expr.numerator.codes)
    return f"{_RATE_NOUNS.get(category, 'the rate')} {_window_words(expr.numerator.window)}"


def _expr_words(expr, measures: dict) -> str:
    """An expression as the condition writes it (measures by their condition text)."""
    for text, e in measures.items():
        if e == expr:
            return text
    if isinstance(expr, Const):
        return _number_text(expr.value)
    if isinstance(expr, AttributeRef):
        return f"pupil.{expr.name}"
    if isinstance(expr, Arithmetic):
        return f"{_expr_words(expr.left, measures)} {expr.op} {_expr_words(expr.right, measures)}"
    if isinstance(expr, RateRef):
        return _rate_words(expr)
    if isinstance(expr, MetricRef):
        return metric_words(expr.metric)
    return "the value"


def _value_words(expr, value, percent: bool) -> str:
    if value is None:
        return "empty" if isinstance(expr, AttributeRef) else "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(expr, MetricRef) and expr.metric.kind == "since_action" and value == NEVER:
        return "never"
    if isinstance(expr, AttributeRef) and expr.kind == "date":
        return date.fromordinal(int(value)).isoformat()
    if percent:
        return act.percent_text(value)
    return _number_text(value)


# ---- one comparison -------------------------------------------------------------------------

class _RuleContext:
    """What explaining one rule for one subject needs."""

    def __init__(self, explainer: "_Explainer", compiled, scope: str, row: dict | None, subject_words: str):
        self.x = explainer
        self.compiled = compiled
        self.scope = scope
        self.row = row
        self.reader = _Reader(explainer.facts, row, scope) if row is not None else None
        self.measures = dict(compiled.measures)
        self.subject_words = subject_words

    def bounds_words(self, window) -> str:
        """(15 December 2025 to 13 March 2026, the as-of day included)."""
        info = self.x.window_info(window, self.row, self.scope)
        if info["end"] is None:
            return ""
        start = "the first mark" if info.get("from_first_mark") else (
            day_words(date.fromisoformat(info["start"])) if info["start"] else None)
        if start is None:
            return ""
        included = "the as-of day included" if info["includes_as_of"] else "the as-of day not included"
        return f" ({start} to {day_words(date.fromisoformat(info['end']))}, {included})"


def _explain_comparison(ctx: _RuleContext, atom: Comparison, holds) -> dict:
    r = ctx.reader
    left, right = r.value(atom.left), r.value(atom.right)
    out: dict = {"holds": holds}
    # The comparison as the metrics stage decided it, and as the values shown here say: the same.
    if holds is not None and isinstance(left, Fraction) and isinstance(right, Fraction):
        if _holds(left, atom.op, right) != holds:
            raise AssertionError(f"explain: {atom.text}: {left} {atom.op} {right} disagrees with the facts table")
    # Orient it as `measure OP threshold` when one side is a constant.
    measure_side, op, threshold_side = atom.left, atom.op, atom.right
    if not _has_measure(atom.left) and not _has_attribute(atom.left) and (_has_measure(atom.right) or _has_attribute(atom.right)):
        measure_side, op, threshold_side = atom.right, _MIRROR[atom.op], atom.left
    value, threshold = r.value(measure_side), r.value(threshold_side)
    percent = _is_percent(measure_side)
    words = _expr_words(measure_side, ctx.measures)
    constant = not _has_measure(threshold_side) and not _has_attribute(threshold_side)
    out["left"] = {"text": _expr_words(atom.left, ctx.measures),
                   "value": _value_words(atom.left, left, isinstance(atom.left, RateRef))}
    out["right"] = {"text": _expr_words(atom.right, ctx.measures),
                    "value": _value_words(atom.right, right, isinstance(atom.right, RateRef))}
    shown_value = _value_words(measure_side, value, percent)
    if isinstance(measure_side, RateRef) and value is not None:
        n = r.row[ctx.x.facts.metric_columns[measure_side.numerator]]
        d = r.row[ctx.x.facts.metric_columns[measure_side.denominator]]
        shown_value += f" ({n} of {d} possible sessions)"
    if not constant:
        other = _value_words(threshold_side, threshold, isinstance(threshold_side, RateRef))
        out["says"] = (f"{words} is {shown_value} and {_expr_words(threshold_side, ctx.measures)} is {other}: "
                       + ("it holds" if holds else "it does not hold" if holds is False else "unknown"))
        if holds is False:
            out["miss"] = f"it needs {words} {act.OP_WORDS[op]} {_expr_words(threshold_side, ctx.measures)}."
        return out
    t_text = _threshold_text(threshold, percent) if isinstance(threshold, Fraction) else _value_words(threshold_side, threshold, percent)
    if isinstance(measure_side, AttributeRef) and measure_side.kind == "date" and isinstance(threshold, Fraction):
        t_text = date.fromordinal(int(threshold)).isoformat()
    if value is None:
        if isinstance(measure_side, AttributeRef):
            out["says"] = f"{words} is empty, so this is unknown and treated as not met"
        else:
            why = ("no possible sessions in the window" if isinstance(measure_side, RateRef) else
                   "an empty attribute" if _has_attribute(measure_side) else "a division by zero")
            out["says"] = f"{words} is undefined ({why}), so this is unknown and treated as not met"
        return out
    if shown_value == "never":
        shown_value = "never (no such prior action; never counts as greater than any number)"
    if holds:
        out["says"] = f"{words} is {shown_value}, which is {act.OP_WORDS[op]} {t_text}"
        return out
    never = isinstance(measure_side, MetricRef) and measure_side.metric.kind == "since_action" and value == NEVER
    if never:
        out["says"] = f"{words} is {shown_value}, which is not {act.OP_WORDS[op]} {t_text}"
        out["miss"] = f"it can only be {act.OP_WORDS[op]} {t_text} after such an action."
        return out
    out["says"] = f"{words} is {shown_value}, which is not {act.OP_WORDS[op]} {t_text}"
    if _has_attribute(measure_side):
        out["miss"] = "this depends on the pupil's record, not on attendance."
        return out
    if isinstance(measure_side, RateRef):
        out.update(_rate_miss(ctx, measure_side, op, threshold, value))
        return out
    if _whole_number(measure_side):
        out.update(_count_miss(ctx, measure_side, op, threshold, value, words, t_text))
        return out
    out["miss"] = f"it would have to be {act.OP_WORDS[op]} {t_text}."
    return out


def _count_miss(ctx: _RuleContext, measure, op: str, threshold: Fraction, value: Fraction, words: str, t_text: str) -> dict:
    reached = count_to_reach(int(value), op, threshold)
    if reached is None:
        return {"miss": f"no whole number is {act.OP_WORDS[op]} {t_text}."}
    target, change = reached
    metric = measure.metric if isinstance(measure, MetricRef) else None
    out: dict = {"needed": {"target": target, "change": change}}
    if metric is not None and metric.kind == "sessions" and change > 0:
        noun = _filter_words(metric, "session" if change == 1 else "sessions")
        bounds = ctx.bounds_words(metric.window)
        text = (f"{change} more {noun} {_window_words(metric.window)}{bounds} would make it {target}, which is "
                f"{act.OP_WORDS[op]} {t_text}.")
        room = ctx.x.room(metric, ctx.row, ctx.scope)
        if room is not None and room < change:
            text += (f" But the window has only {room} other possible session{'s' if room != 1 else ''} for this "
                     f"pupil as of {day_words(ctx.x.as_of)}, so it cannot be met in this window.")
        if room is not None:
            out["needed"]["room"] = room
        out["needed"]["sessions"] = change
        out["miss"] = text
        return out
    if metric is not None and metric.is_current_run and change > 0:
        unit = "sessions" if metric.run_unit == "sessions" else "school days"
        matching = _filter_words(dataclasses.replace(metric, half=None, weekdays=None), unit)
        out["miss"] = (f"{change} more consecutive {matching} after the current run would make it {target}, which is "
                       f"{act.OP_WORDS[op]} {t_text}.")
        if metric.run_unit == "sessions":
            out["needed"]["sessions"] = change
        return out
    if metric is not None and metric.kind == "run" and metric.run_which == "longest" and change > 0:
        unit = "sessions" if metric.run_unit == "sessions" else "school days"
        out["miss"] = f"it needs a run of {target} {unit} in the window, which is {act.OP_WORDS[op]} {t_text}."
        return out
    more = f"{abs(change)} {'more' if change > 0 else 'fewer' if change < 0 else ''}".strip()
    out["miss"] = f"it would have to be {target} ({more}), which is {act.OP_WORDS[op]} {t_text}."
    return out


def _rate_miss(ctx: _RuleContext, rate: RateRef, op: str, threshold: Fraction, value: Fraction) -> dict:
    cols = ctx.x.facts.metric_columns
    n, d = ctx.row[cols[rate.numerator]], ctx.row[cols[rate.denominator]]
    t_text = _threshold_text(threshold, True)
    if op in ("=", "!="):
        wanted = f"exactly {t_text}" if op == "=" else f"other than {t_text}"
        return {"miss": f"it would have to be {wanted}."}
    rise = op in (">", ">=")
    gap = abs(threshold - value)
    if gap == 0:
        move = f"it is exactly {t_text}; any {'rise' if rise else 'fall'} would meet it."
    else:
        target = {">": "above", ">=": "to at least", "<": "below", "<=": "to at most"}[op]
        by = "by more than" if op in ("<", ">") else "by at least"
        move = (f"it would have to {'rise' if rise else 'fall'} {target} {t_text}, {by} "
                f"{_points_toward_zero(gap)} points.")
    out: dict = {"needed": {"points": str(gap), "direction": "rise" if rise else "fall"}}
    counted = _category_of(rate.numerator.codes)
    if rise:
        kind = {"attending": "attended", "absent": "absent", "authorised": "authorised absent",
                "unauthorised": "unauthorised absent"}.get(counted, "counted")
    else:
        kind = "absent" if counted == "attending" else "attended"
    k = sessions_to_reach(n, d, op, threshold, rise)
    where = "" if ctx.scope in PUPIL_SCOPES else f" across the {_SUBJECT_WORDS[ctx.scope]}"
    if k is None:
        sessions = f" No number of added {kind} sessions{where} can do that."
    else:
        top = n + k if rise else n
        after = act.percent_text(Fraction(100 * top, d + k))
        sessions = (f" Assuming each added session is a possible session and nothing else changes, {k} more {kind} "
                    f"session{'s' if k != 1 else ''}{where} would do it ({top} of {d + k}, {after})"
                    + (f"; {k - 1} would not." if k > 1 else "."))
        out["needed"].update({"sessions": k, "added_sessions_are": kind, "assumption":
                              "each added session is a possible session; nothing else changes"})
    out["miss"] = move + sessions
    return out


# ---- conditions: and / or / tests ---------------------------------------------------------------

def _explain_predicate(ctx: _RuleContext, node) -> dict:
    if isinstance(node, (AllOf, AnyOf)):
        parts = [_explain_predicate(ctx, p) for p in node.parts]
        truths = [p["holds"] for p in parts]
        if isinstance(node, AllOf):
            holds = False if False in truths else (True if all(t is True for t in truths) else None)
            out = {"kind": "and", "holds": holds, "parts": parts}
            failing = [i for i, t in enumerate(truths) if t is not True]
            out["failing"] = failing
            if len(failing) == 1:
                out["sessions"] = parts[failing[0]].get("sessions")
        else:
            holds = True if True in truths else (False if all(t is False for t in truths) else None)
            out = {"kind": "or", "holds": holds, "parts": parts}
            if not holds:
                reachable = [(p["sessions"], i) for i, p in enumerate(parts) if p.get("sessions") is not None]
                if reachable:
                    out["nearest"] = min(reachable)[1]
                    out["sessions"] = min(reachable)[0]
        return out
    k = ctx.compiled.atoms.index(node)
    holds = ctx.reader.atom_holds(ctx.compiled.rule.id, k, node)
    out = {"kind": "test", "condition": node.text, "holds": holds}
    if isinstance(node, Comparison):
        out.update(_explain_comparison(ctx, node, holds))
    else:
        out.update(_explain_attribute_test(ctx, node, holds))
    if holds is not True and "needed" in out and out["needed"].get("sessions") is not None:
        out["sessions"] = out["needed"]["sessions"]
    return out


def _explain_attribute_test(ctx: _RuleContext, node, holds) -> dict:
    if isinstance(node, Truth):
        if isinstance(node.value, bool):
            return {"says": f"always {'true' if holds else 'false'}"}
        v = ctx.row.get(node.value.name)
        shown = "empty" if v is None else str(v).lower()
        expected = "true" if node.expected else "false"
        verdict = (", so this is unknown and treated as not met" if holds is None else
                   (": it holds" if holds else ": it does not hold"))
        return {"value": shown, "says": f"pupil.{node.value.name} is {shown}; the condition needs {expected}{verdict}"}
    if isinstance(node, Membership):
        value = ctx.reader.value(node.value)
        shown = _value_words(node.value, value, isinstance(node.value, RateRef))
        options = ", ".join(str(o.name) if isinstance(o, AttributeRef) else _number_text(o) if isinstance(o, Fraction)
                            else f'"{o}"' for o in node.options)
        need = ("not one of" if node.negated else "one of") if len(node.options) > 1 else ("not" if node.negated else "")
        verdict = (", so this is unknown and treated as not met" if holds is None else
                   (": it holds" if holds else ": it does not hold"))
        return {"value": shown, "says": f"{_expr_words(node.value, ctx.measures)} is {shown}; the condition needs "
                                        f"{need + ' ' if need else ''}{options}{verdict}"}
    raise TypeError(node)


def _truth_words(holds) -> str:
    return {True: "met", False: "not met", None: "unknown (treated as not met)"}[holds]


# ---- the explainer ----------------------------------------------------------------------------

class _Explainer:
    def __init__(self, plan, facts, connection, as_of: date, pupil: dict):
        self.plan, self.facts, self.connection, self.as_of, self.pupil = plan, facts, connection, as_of, pupil
        self.bounds = window_bounds(facts, connection)
        self.rooms: dict = {}

    def window_info(self, window, row: dict | None, scope: str) -> dict:
        """A window's bounds for this subject, as the metrics stage computed them (both days
        included), with the pupil's time on roll and the exclusions resolved."""
        wid = self.facts.window_ids[_school_window(window)]
        start, end, complete = self.bounds.get((wid, self.pupil["school_id"]), (None, None, None))
        if window.kind == "since" and window.since.attribute is not None:
            start = row.get(window.since.attribute) if row else None
        from_first_mark = window.kind == "ever"
        if from_first_mark:
            start = None
        info = {"description": _window_words(window),
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "includes_as_of": bool(end and end >= self.as_of and (from_first_mark or (start and start <= self.as_of)))}
        if from_first_mark:
            info["from_first_mark"] = True
        if complete is False:
            info["complete"] = False
        if scope in PUPIL_SCOPES and end:
            joined, left = self.pupil.get("joined_on"), self.pupil.get("left_on")
            if joined and (from_first_mark or (start and joined > start)):
                info["counted_from"] = joined.isoformat()
            if left and left < end:
                info["counted_to"] = left.isoformat()

        def resolve(ref):
            if ref.literal is not None:
                return ref.literal.isoformat()
            v = row.get(ref.attribute) if row else None
            return v.isoformat() if v else None

        excluded = []
        if window.exclude_before is not None:
            excluded.append({"before": resolve(window.exclude_before)})
        if window.exclude_to is not None:
            excluded.append({"from": resolve(window.exclude_from), "to": resolve(window.exclude_to)})
        if excluded:
            info["excluding"] = excluded
        return info

    def room(self, metric: MetricSpec, row: dict | None, scope: str) -> int | None:
        """The pupil's other possible sessions in the metric's window (with its weekday and half-day
        filters), when every code it counts is a possible one; else None."""
        if scope not in PUPIL_SCOPES or row is None or metric.codes is None:
            return None
        possible = national_codes().codes_in("possible")
        if not metric.codes <= possible:
            return None
        columns = self.facts.metric_columns
        return row[columns[_room_metric(metric)]] - row[columns[metric]]


def _room_metric(metric: MetricSpec) -> MetricSpec:
    return dataclasses.replace(metric, codes=national_codes().codes_in("possible"))


def _absent_metric(rate: RateRef) -> MetricSpec:
    return dataclasses.replace(rate.numerator, codes=national_codes().codes_in("absent"))


def _extra_metrics(plan) -> tuple[MetricSpec, ...]:
    """Metrics explain shows beyond the plan's own: the possible sessions around a count (room for
    more) and the absent sessions behind an attendance rate."""
    extra = []
    for compiled in plan.rules:
        for _, expr in compiled.measures:
            for m in metrics_in(expr):
                if m.kind == "sessions" and m.codes is not None:
                    extra.append(_room_metric(m))
            if isinstance(expr, RateRef):
                extra.append(_absent_metric(expr))
    out = []
    for m in extra:
        if m not in plan.metrics and m not in out:
            out.append(m)
    return tuple(out)


def _find_pupil(connection, table: str, pupil_id: str, school_id: str | None) -> dict:
    rows = connection.execute(
        f"SELECT school_id, pupil_id, joined_on, left_on, year_group, reg_group FROM {table} WHERE pupil_id = ? "
        "ORDER BY school_id", [pupil_id]).fetchall()
    names = ("school_id", "pupil_id", "joined_on", "left_on", "year_group", "reg_group")
    found = [dict(zip(names, r)) for r in rows]
    if not found:
        from .diagnostics import nearest

        ids = [r[0] for r in connection.execute(f"SELECT DISTINCT pupil_id FROM {table}").fetchall()]
        close = nearest(pupil_id, ids)
        hint = f" (did you mean {close}?)" if close else ""
        raise ExplainError(f"pupil {pupil_id} is not in the register{hint}; check --pupil")
    if school_id is not None:
        at = [p for p in found if p["school_id"] == school_id]
        if not at:
            schools = ", ".join(p["school_id"] or "''" for p in found)
            raise ExplainError(f"pupil {pupil_id} is not on the register of school {school_id!r}; "
                               f"the register has them at: {schools}")
        return at[0]
    if len(found) > 1:
        schools = ", ".join(p["school_id"] for p in found)
        raise ExplainError(f"pupil id {pupil_id} is on the register of {len(found)} schools ({schools}); "
                           "pupil ids are unique per school: say which with --school", usage=True)
    return found[0]


def _subjects(pupil: dict) -> dict[str, str]:
    """The subject id, per scope, of the pupil and the groups the pupil belongs to."""
    return {"pupil": pupil["pupil_id"], "leaver": pupil["pupil_id"], "class": pupil["reg_group"] or "",
            "year_group": pupil["year_group"] or "",
            "school": pupil["school_id"]}


def explain_pupil(policy, register, as_of, pupil_id: str, school_id: str | None = None, prior_actions=None,
                  rule_id: str | None = None) -> dict:
    """Explain every rule of `policy` (or only `rule_id`) for one pupil on `as_of`: whether it
    fired, the values and thresholds, windows and counted sessions, and the nearest miss.

    Evaluates on the whole register (ranks compare the whole cohort), then reads the pupil.
    Returns the explanation as plain data (the JSON output). Raises ExplainError / RollbookError
    for problems in the input; a pupil not on roll on `as_of` raises ExplainError whose `partial`
    holds what can still be explained.
    """
    result = explain_pupils(policy, register, as_of, [(pupil_id, school_id)], prior_actions, rule_id)[0]
    if not result["pupil"]["on_roll"]:
        raise ExplainError(f"pupil {pupil_id} is not on roll on {result['as_of']}: {result['pupil']['not_on_roll']}",
                           partial=result)
    return result


def explain_pupils(policy, register, as_of, pupils: list[tuple[str, str | None]], prior_actions=None,
                   rule_id: str | None = None) -> list[dict]:
    """`explain_pupil` for several (pupil id, school id or None) at once, sharing one evaluation.
    A pupil not on roll gets an explanation with `pupil.on_roll` false and the reason in
    `pupil.not_on_roll`; an unknown pupil raises ExplainError."""
    from .prior_actions import load_ledger_table
    from .rules import fire

    as_of = as_of_date(as_of)
    policy = checked_policy(policy)
    if rule_id is not None and rule_id not in {r.id for r in policy.rules}:
        if rule_id in policy.disabled:
            raise ExplainError(f"rule {rule_id} is disabled in {policy.id}: {policy.disabled[rule_id]}")
        from .diagnostics import did_you_mean

        hint = did_you_mean(rule_id, [r.id for r in policy.rules])
        raise ExplainError(f"the policy {policy.id} has no rule {rule_id}" + (f" ({hint})" if hint else ""))
    prior = prior_action_list(prior_actions)
    register, warnings = prepare_register(register, policy)
    connection = register.connection
    found = [_find_pupil(connection, register.pupils_table, pupil_id, school_id) for pupil_id, school_id in pupils]
    plan = compile_policy(policy)
    plan = dataclasses.replace(plan, metrics=plan.metrics + _extra_metrics(plan))
    ledger = None
    if prior or any(m.kind in ("action_count", "since_action") for m in plan.metrics):
        load_ledger_table(connection, prior)
        ledger = "ledger"
    facts = build_facts(plan, connection, as_of, ledger=ledger)
    firings = fire(plan, facts, connection, "builtin")
    note = register.calendar_note if register.calendar_inferred else None
    shared = _Shared(policy, plan, facts, firings, connection, as_of, prior, act.prior_by_subject(prior, as_of),
                     act.Calendars(connection, register.calendar_table), note, list(warnings), rule_id)
    return [_explain_one(shared, pupil) for pupil in found]


@dataclasses.dataclass
class _Shared:
    """One evaluation, shared by the pupils explained."""

    policy: object
    plan: object
    facts: object
    firings: list
    connection: object
    as_of: date
    prior: list
    history: dict
    calendars: object
    note: str | None
    warnings: list
    rule_id: str | None


def _explain_one(shared: _Shared, pupil: dict) -> dict:
    policy, plan, facts, connection, as_of = shared.policy, shared.plan, shared.facts, shared.connection, shared.as_of
    prior, history, calendars, note, warnings, rule_id = (shared.prior, shared.history, shared.calendars, shared.note,
                                                          shared.warnings, shared.rule_id)
    subjects = _subjects(pupil)
    mine = [f for f in shared.firings if f.school_id == pupil["school_id"] and f.subject_id == subjects[f.scope]]
    actions = act.build_actions(plan, facts, mine, connection, as_of, prior, calendar_note=note)
    rows = {}
    for scope, table in facts.tables.items():
        cursor = connection.execute(f"SELECT * FROM {table} WHERE school_id = ? AND subject_id = ?",
                                    [pupil["school_id"], subjects[scope]])
        names = [d[0] for d in cursor.description]
        row = cursor.fetchone()
        rows[scope] = dict(zip(names, row)) if row else None
    on_roll = not ((pupil["joined_on"] and pupil["joined_on"] > as_of) or (pupil["left_on"] and pupil["left_on"] < as_of))
    if on_roll and "pupil" in facts.tables and rows["pupil"] is None:
        raise AssertionError(f"explain: pupil {pupil['pupil_id']} is on roll but has no facts row")
    x = _Explainer(plan, facts, connection, as_of, pupil)
    # The sessions behind each count and rate, for the pupil: one query.
    needs: dict = {}
    for compiled in plan.rules:
        if compiled.rule.scope in PUPIL_SCOPES and (rule_id is None or compiled.rule.id == rule_id):
            for _, expr in compiled.measures:
                metric = _listed_metric(expr)
                if metric is not None:
                    needs.setdefault(metric, set()).add((pupil["school_id"], pupil["pupil_id"]))
    sessions = counted_marks(facts, connection, needs)
    out_rules = []
    for compiled in plan.rules:
        rule = compiled.rule
        if rule_id is not None and rule.id != rule_id:
            continue
        scope = rule.scope
        subject = {"kind": subject_kind(scope), "id": subjects[scope], "school_id": pupil["school_id"]}
        entry = {"rule": rule.id, "title": rule.title, "defined_in": rule.defined_in, "scope": scope,
                 "subject": subject, "condition": rule.condition_text,
                 "parameters": act.parameters_used(rule, compiled.parameters)}
        row = rows.get(scope)
        if (scope == "pupil" and not on_roll) or (scope == "leaver" and row is None):
            why = _not_on_roll_words(pupil, as_of) if scope == "pupil" else _not_a_leaver_words(pupil, as_of)
            entry.update({"holds": None, "fired": False, "evaluated": False, "why_not_evaluated": why})
            out_rules.append(entry)
            continue
        if row is None:  # a group with no pupils on the register: cannot happen for the pupil's own groups
            raise AssertionError(f"explain: no facts row for {scope} {subjects[scope]!r}")
        words = f"{_SUBJECT_WORDS[scope]} {subjects[scope] or pupil['school_id'] or '(the school)'}"
        ctx = _RuleContext(x, compiled, scope, row, words)
        tree = _explain_predicate(ctx, compiled.predicate)
        holds = tree["holds"]
        fired_by_engine = any(f.rule_id == rule.id for f in mine)
        if fired_by_engine != (holds is True):
            raise AssertionError(f"explain: rule {rule.id}: the rules engine and the atoms disagree")
        gate = act.repetition_gate(rule, history.get((subject_kind(scope), pupil["school_id"], subjects[scope]), []),
                                   pupil["school_id"], as_of, calendars,
                                   act.run_start_of(compiled, row, x.facts.metric_columns))
        emitted = [a for a in actions if a["rule"] == rule.id]
        if holds is True and (gate.acts and bool(gate.actions)) != bool(emitted):
            raise AssertionError(f"explain: rule {rule.id}: the repetition decision and the actions disagree")
        entry.update({"evaluated": True, "holds": holds, "fired": bool(emitted),
                      "actions": [{"verb": a["verb"], "params": a["params"], "alternative": a["alternative"],
                                   "id": a["id"]} for a in emitted]})
        repetition = {"acts": gate.acts}
        if not gate.acts:
            repetition.update({"control": gate.control, "reason": gate.reason,
                               "prior": [d.isoformat() for d in gate.blocking]})
        if gate.limit:
            repetition["limit"] = gate.limit
        if gate.escalation:
            repetition["escalation"] = gate.escalation
        entry["repetition"] = repetition
        if emitted:
            entry["reason"] = emitted[0]["reason"]
        entry["measures"] = [_measure_entry(x, ctx, text, expr, sessions) for text, expr in compiled.measures]
        entry["test"] = tree
        if holds is not True:
            entry["nearest_miss"] = _misses(tree)
        entry["summary"] = _summary(entry, tree, gate)
        out_rules.append(entry)
    pupil_out = {"id": pupil["pupil_id"], "school_id": pupil["school_id"], "year_group": pupil["year_group"],
                 "reg_group": pupil["reg_group"],
                 "joined_on": pupil["joined_on"].isoformat() if pupil["joined_on"] else None,
                 "left_on": pupil["left_on"].isoformat() if pupil["left_on"] else None, "on_roll": on_roll}
    result = {
        "format": EXPLAIN_FORMAT,
        "policy": {"id": policy.id, "version": policy.version, "path": policy.path, "sha256": policy.sha256},
        "as_of": as_of.isoformat(),
        "pupil": pupil_out,
        "rules": out_rules,
        "disabled": [{"rule": r, "reason": why} for r, why in policy.disabled.items()
                     if rule_id is None or r == rule_id],
        "prior_actions": len(prior),
    }
    if note:
        result["calendar"] = note
    if warnings:
        result["warnings"] = list(warnings)
    if not on_roll:
        pupil_out["not_on_roll"] = _not_on_roll_words(pupil, as_of)
    return result


def _not_on_roll_words(pupil: dict, as_of: date) -> str:
    joined, left = pupil["joined_on"], pupil["left_on"]
    if joined and joined > as_of:
        return (f"they join on {joined.isoformat()}; a pupil is evaluated only while on roll, so no pupil rule "
                f"applies yet (try --as-of {joined.isoformat()} or later)")
    return (f"they left on {left.isoformat()}; a pupil is evaluated only while on roll, so no pupil rule applies "
            f"on {as_of.isoformat()} (try --as-of {left.isoformat()}, their last day on roll); rules about leavers "
            "still apply")


def _not_a_leaver_words(pupil: dict, as_of: date) -> str:
    """Why a leaver rule does not evaluate this pupil (docs/semantics.md, On roll)."""
    joined = pupil["joined_on"]
    if joined and joined > as_of:
        return f"they join on {joined.isoformat()}; a rule about leavers applies only to pupils who have joined"
    return "no leave date is recorded; a rule about leavers applies only to pupils with a recorded leave date"


def _listed_metric(expr) -> MetricSpec | None:
    """The session count whose marks are listed for a measure: the count itself; for a rate, its
    absent sessions (for attendance: the possible sessions not attended)."""
    if isinstance(expr, MetricRef) and expr.metric.kind == "sessions":
        return expr.metric
    if isinstance(expr, RateRef):
        if _category_of(expr.numerator.codes) == "attending":
            return _absent_metric(expr)
        return expr.numerator
    return None


def _measure_entry(x: _Explainer, ctx: _RuleContext, text: str, expr, sessions) -> dict:
    value, shown, detail = act.value_of(expr, ctx.row, x.facts.metric_columns, x.facts.rank_columns.get(ctx.scope))
    entry = {"measure": text, "words": _expr_words_resolved(expr), "value": shown, **detail}
    metric = expr.metric if isinstance(expr, MetricRef) else (expr.numerator if isinstance(expr, RateRef) else None)
    if metric is not None and metric.window is not None:
        entry["window"] = x.window_info(metric.window, ctx.row, ctx.scope)
    if isinstance(expr, MetricRef) and expr.metric.is_current_run:
        start = ctx.row.get(run_start_column(x.facts.metric_columns[expr.metric]))
        if start is not None:
            entry["run_start"] = start.isoformat()
    listed = _listed_metric(expr)
    if listed is not None and ctx.scope == "pupil":
        entry["sessions"] = sessions[listed].get((x.pupil["school_id"], x.pupil["pupil_id"]), [])
        entry["sessions_are"] = ("the sessions counted" if isinstance(expr, MetricRef) else
                                 "the absent sessions (possible sessions not attended)"
                                 if listed != expr.numerator else "the sessions counted in the numerator")
    return entry


def _expr_words_resolved(expr) -> str:
    if isinstance(expr, RateRef):
        return _rate_words(expr)
    if isinstance(expr, MetricRef):
        return metric_words(expr.metric)
    if isinstance(expr, Rank):
        return f"rank of {_expr_words_resolved(expr.value)}"
    return _expr_words(expr, {})


def _misses(node: dict) -> list[str]:
    """The nearest-miss sentences of a condition that does not hold: a test's own; for `and`, those
    of every part that fails; for `or`, those of its nearest part (else of every part)."""
    if node["kind"] == "test":
        return [node["miss"]] if node.get("miss") and node["holds"] is not True else []
    if node["kind"] == "and":
        return [m for i in node["failing"] for m in _misses(node["parts"][i])]
    if "nearest" in node:
        return _misses(node["parts"][node["nearest"]])
    return [m for p in node["parts"] for m in _misses(p)]


def _summary(entry: dict, tree: dict, gate) -> str:
    holds = entry["holds"]
    if holds is True:
        if entry["fired"]:
            if gate.limit:
                return (f"the condition is met; the limit of {gate.limit['max']} in {gate.limit['within']} is reached, "
                        "so the rule takes its alternative actions")
            return "the condition is met: the rule acts"
        return f"the condition is met, but the rule does not act: {gate.reason}"
    text = "the condition is " + _truth_words(holds) + ": the rule does not act"
    if not gate.acts:
        text += f" (and even if it were met, it would not act today: {gate.reason})"
    return text


# ---- text -------------------------------------------------------------------------------------

def _sessions_text(marks: list[dict], limit: int) -> list[str]:
    items = [f"{m['date']} {m['session']} {m['code']}" for m in marks]
    shown = items[:limit]
    lines, line = [], ""
    for item in shown:
        if line and len(line) + len(item) + 3 > 96:
            lines.append(line)
            line = ""
        line = f"{line} · {item}" if line else item
    if line:
        lines.append(line)
    if len(items) > limit:
        lines.append(f"... and {len(items) - limit} more (--format json lists them all)")
    return lines


def _window_text(w: dict) -> str:
    if w.get("end") is None or (w.get("start") is None and not w.get("from_first_mark")):
        return f"{w['description']}: no such period in the calendar"
    start = "the first mark" if w.get("from_first_mark") else day_words(date.fromisoformat(w["start"]))
    text = f"{w['description']}: {start} to {day_words(date.fromisoformat(w['end']))}, " + \
           ("the as-of day included" if w["includes_as_of"] else "the as-of day not included")
    if w.get("complete") is False:
        text += " (the calendar holds less than the whole window)"
    if w.get("counted_from"):
        text += f"; counted from {w['counted_from']}, when the pupil joined"
    if w.get("counted_to"):
        text += f"; counted to {w['counted_to']}, when the pupil left"
    for e in w.get("excluding", []):
        text += (f"; excluding days before {e['before'] or '(empty: nothing excluded)'}" if "before" in e else
                 f"; excluding {e['from']} to {e['to']}" if e["to"] else "; (empty exclusion: nothing excluded)")
    return text


def _tree_text(node: dict, indent: str, lines: list[str], nearest: bool = False) -> None:
    mark = {True: "✓", False: "✗", None: "?"}[node["holds"]]
    tag = "  ← nearest" if nearest else ""
    if node["kind"] in ("and", "or"):
        what = ("all of these must hold" if node["kind"] == "and" else "at least one of these must hold")
        lines.append(f"{indent}{mark} {node['kind']}: {what}{tag}")
        for i, part in enumerate(node["parts"]):
            _tree_text(part, indent + "    ", lines, nearest=node.get("nearest") == i)
        if node["kind"] == "or" and node["holds"] is not True and "nearest" not in node:
            lines.append(f"{indent}    (no part can be reached by adding sessions alone)")
        return
    lines.append(f"{indent}{mark} {node['condition']}{tag}")
    lines.append(f"{indent}    {node['says']}.")
    if node.get("miss") and node["holds"] is not True:
        lines.append(f"{indent}    nearest miss: {node['miss']}")


def render_text(explanation: dict, session_limit: int = 24) -> str:
    """The explanation for people: one block per rule."""
    p = explanation["pupil"]
    pol = explanation["policy"]
    school = f" at school {p['school_id']}" if p["school_id"] else ""
    lines = [f"Pupil {p['id']}{school} (year {p['year_group']}, class {p['reg_group']}), as of "
             f"{date.fromisoformat(explanation['as_of']).strftime('%A')} {day_words(date.fromisoformat(explanation['as_of']))}",
             f"Policy {pol['id']} v{pol['version']} ({pol['path']}); "
             f"{explanation['prior_actions']} prior action{'s' if explanation['prior_actions'] != 1 else ''} read"]
    if explanation.get("calendar"):
        lines.append(f"Note: {explanation['calendar']}")
    if not p["on_roll"]:
        lines.append(f"Not on roll on this date: {p['not_on_roll']}")
    rules = explanation["rules"]
    fired = [r["rule"] for r in rules if r["fired"]]
    lines.append(f"{len(rules)} rule{'s' if len(rules) != 1 else ''} explained; acting: "
                 + (", ".join(fired) if fired else "none"))
    for r in rules:
        lines.append("")
        verdict = "ACTS" if r["fired"] else "does not act"
        lines.append(f"{r['rule']}: {verdict} — {r['title']}")
        lines.append(f"  defined in {r['defined_in']}; about the {_SUBJECT_WORDS[r['scope']]}"
                     + (f" {r['subject']['id']}" if r["scope"] not in ("pupil", "leaver", "school") else "")
                     + ("" if r["scope"] in PUPIL_SCOPES else " (not the pupil alone)")
                     + (" (a rule about leavers)" if r["scope"] == "leaver" else ""))
        lines.append(f"  when: {r['condition']}")
        if r["parameters"]:
            lines.append("  parameters: " + ", ".join(
                f"{k} = {', '.join(v) if isinstance(v, list) else v}" for k, v in r["parameters"].items()))
        if not r["evaluated"]:
            lines.append(f"  not evaluated: {r['why_not_evaluated']}")
            continue
        lines.append(f"  result: {r['summary']}")
        for a in r["actions"]:
            alt = " (alternative: the limit is reached)" if a["alternative"] else ""
            params = ", ".join(f"{k}={', '.join(v) if isinstance(v, list) else v}" for k, v in a["params"].items())
            lines.append(f"    → {a['verb']}" + (f" ({params})" if params else "") + alt)
        for m in r["measures"]:
            words = f" [{m['words']}]" if m["words"] != m["measure"] else ""
            lines.append(f"  {m['measure']}{words} = {m['value']}"
                         + (f" ({m['numerator']} of {m['denominator']} possible sessions)" if "denominator" in m
                            and m["denominator"] else ""))
            if "window" in m:
                lines.append(f"    window: {_window_text(m['window'])}")
            if "run_start" in m:
                lines.append(f"    the run started on {m['run_start']}")
            if "sessions" in m:
                label = "sessions counted" if m["sessions_are"] == "the sessions counted" else (
                    "absent sessions" if "absent" in m["sessions_are"] else "sessions in the numerator")
                if m["sessions"]:
                    body = _sessions_text(m["sessions"], session_limit)
                    lines.append(f"    {label} ({len(m['sessions'])}): {body[0]}")
                    lines.extend(f"      {b}" for b in body[1:])
                else:
                    lines.append(f"    {label}: none")
        lines.append("  condition:")
        _tree_text(r["test"], "    ", lines)
    for d in explanation["disabled"]:
        lines.append("")
        lines.append(f"{d['rule']}: disabled in this policy — {d['reason'].strip()}")
    return "\n".join(lines) + "\n"
