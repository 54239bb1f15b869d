"""The condition language's abstract syntax tree: plain, immutable data with source spans.

Spans are left out of equality so two parses of the same condition compare equal wherever they
came from. `to_data` turns a tree into plain JSON-able data for golden tests and `--format json`.
docs/language.md gives the meaning of every node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Union

from .diagnostics import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    span: Span | None = _span()


# ---- literals and references -------------------------------------------------------------

@dataclass(frozen=True)
class Number(Node):
    value: Decimal = Decimal(0)


@dataclass(frozen=True)
class Percent(Node):
    """A percentage literal: `85%` is Percent(85)."""

    value: Decimal = Decimal(0)


@dataclass(frozen=True)
class DateLiteral(Node):
    value: date = date(1970, 1, 1)


@dataclass(frozen=True)
class Text(Node):
    value: str = ""


@dataclass(frozen=True)
class Boolean(Node):
    value: bool = False


@dataclass(frozen=True)
class Parameter(Node):
    """A policy parameter by name, resolved by the checker."""

    name: str = ""


@dataclass(frozen=True)
class Attribute(Node):
    """A pupil attribute: `pupil.<name>`."""

    name: str = ""


@dataclass(frozen=True)
class ValueSet(Node):
    items: tuple[Expr, ...] = ()


# ---- operators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BoolOp(Node):
    """`and` / `or` over two or more operands (flattened: a and b and c is one node)."""

    op: str = "and"
    operands: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class Not(Node):
    operand: Expr | None = None


# Comparison operators in their canonical spelling.
COMPARISONS = ("<", "<=", ">", ">=", "=", "!=")


@dataclass(frozen=True)
class Compare(Node):
    op: str = "="
    left: Expr | None = None
    right: Expr | None = None


@dataclass(frozen=True)
class Member(Node):
    """`x in {...}` (negated: `x not in {...}`)."""

    item: Expr | None = None
    values: ValueSet | None = None
    negated: bool = False


@dataclass(frozen=True)
class Arith(Node):
    op: str = "+"
    left: Expr | None = None
    right: Expr | None = None


@dataclass(frozen=True)
class Negate(Node):
    operand: Expr | None = None


# ---- windows -----------------------------------------------------------------------------

# Window kinds. Every window ends on the as-of date inclusive, except `previous_term` and
# `previous_academic_year`, which are whole past periods.
WINDOW_KINDS = (
    "last", "this_school_week", "this_half_term", "this_term", "previous_term",
    "this_and_previous_term", "this_academic_year", "previous_academic_year", "since", "ever",
)
# Units of `the last N <unit>`: school time counts only weeks/days the school was open;
# calendar time counts every day.
WINDOW_UNITS = ("school_weeks", "school_days", "weeks", "days", "years")


@dataclass(frozen=True)
class Exclusion(Node):
    """Days removed from a window: before a date, or from one date to another (inclusive)."""

    kind: str = "before"  # "before" | "between"
    start: Expr | None = None
    end: Expr | None = None


@dataclass(frozen=True)
class Window(Node):
    kind: str = "ever"
    size: Expr | None = None  # for kind "last"
    unit: str | None = None  # for kind "last"
    since: Expr | None = None  # for kind "since"
    exclusion: Exclusion | None = None


# ---- measures ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionFilter(Node):
    """Which sessions a measure counts: a category, a code set, a weekday set, AM/PM."""

    category: str | None = None
    codes: tuple[str, ...] | Parameter | None = None
    weekdays: tuple[str, ...] | None = None
    half: str | None = None  # "AM" | "PM"


@dataclass(frozen=True)
class SessionCount(Node):
    filter: SessionFilter = SessionFilter()
    window: Window = Window()


RATE_KINDS = ("attendance", "absence", "authorised_absence", "unauthorised_absence")


@dataclass(frozen=True)
class Rate(Node):
    kind: str = "attendance"
    window: Window = Window()


@dataclass(frozen=True)
class Run(Node):
    """The longest run, or the run ending on the as-of date, of consecutive matching sessions/days."""

    which: str = "longest"  # "longest" | "current"
    unit: str = "sessions"  # "sessions" | "school_days"
    filter: SessionFilter = SessionFilter()
    window: Window = Window()


@dataclass(frozen=True)
class MinutesLate(Node):
    window: Window = Window()


@dataclass(frozen=True)
class ActionSelector(Node):
    rule: str | None = None
    verb: str | None = None


@dataclass(frozen=True)
class ActionCount(Node):
    selector: ActionSelector = ActionSelector()
    window: Window = Window()


@dataclass(frozen=True)
class TimeSinceAction(Node):
    unit: str = "school_days"  # "school_days" | "school_weeks" | "days"
    selector: ActionSelector = ActionSelector()


@dataclass(frozen=True)
class Rank(Node):
    """Rank of a group's measure among the groups of the same kind in its school (1 = highest)."""

    measure: Expr | None = None


Expr = Union[
    Number, Percent, DateLiteral, Text, Boolean, Parameter, Attribute, ValueSet, BoolOp, Not,
    Compare, Member, Arith, Negate, SessionCount, Rate, Run, MinutesLate, ActionCount,
    TimeSinceAction, Rank,
]
MEASURES = (SessionCount, Rate, Run, MinutesLate, ActionCount, TimeSinceAction, Rank)


def to_data(node) -> object:
    """A plain-data view of a tree (no spans), stable for golden files."""
    if isinstance(node, Node):
        out: dict[str, object] = {"node": type(node).__name__}
        for f in fields(node):
            if f.name == "span":
                continue
            value = getattr(node, f.name)
            if value is None or value == ():
                continue
            out[f.name] = to_data(value)
        return out
    if isinstance(node, tuple):
        return [to_data(v) for v in node]
    if isinstance(node, Decimal):
        return format(node.normalize(), "f") if node == node.to_integral() else str(node)
    if isinstance(node, date):
        return node.isoformat()
    return node


def walk(node):
    """Every node of a tree, parents before children."""
    if isinstance(node, Node):
        yield node
        for f in fields(node):
            if f.name != "span":
                yield from walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for v in node:
            yield from walk(v)
