"""Compile stage: a CheckedPolicy -> a Plan of metric specs and rule predicates.

The plan is engine-agnostic relational algebra in small dataclasses:

- `MetricSpec`: one per-subject aggregate over the register (a count of marks that pass a code,
  weekday and half-day filter inside a window; a run; minutes late; a ledger count or time since
  an action). engine.metrics turns the specs into one set-based SQL query.
- `Predicate`: each rule's condition in negation normal form (`and` / `or` over atoms, every `not`
  pushed into an atom), so it is monotone: an atom that is undefined can be read as false and
  the rule still acts exactly when the three-valued condition is true.
- Atoms compare exact numeric expressions (integers, fractions, ratios of metrics) or test
  attributes. Nothing here is SQL or Python-per-mark; both rules engines evaluate these atoms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from . import ast
from .check import CheckedPolicy, Rule
from .codes import RATE_NUMERATORS, national_codes

# ---- the plan's data types ----------------------------------------------------------------


@dataclass(frozen=True)
class DateRef:
    """A date given in a condition: a literal, or a pupil attribute (per pupil)."""

    literal: date | None = None
    attribute: str | None = None


@dataclass(frozen=True)
class WindowSpec:
    kind: str
    size: int | None = None
    unit: str | None = None
    since: DateRef | None = None
    exclude_from: DateRef | None = None  # exclusion start (None: from the beginning)
    exclude_to: DateRef | None = None  # exclusion end (inclusive)
    exclude_before: DateRef | None = None  # `excluding days before D`: removes dates < D

    def describe(self) -> str:
        return window_text(self)


@dataclass(frozen=True)
class MetricSpec:
    """One per-subject number computed set-based over the register or the ledger."""

    kind: str  # sessions | minutes_late | run | action_count | since_action
    window: WindowSpec | None = None
    codes: frozenset[str] | None = None  # None: every code
    weekdays: tuple[int, ...] | None = None  # ISO weekday numbers, Monday = 1
    half: str | None = None  # AM | PM
    run_which: str | None = None  # longest | current
    run_unit: str | None = None  # sessions | school_days
    rule: str | None = None  # action selectors
    verb: str | None = None
    elapsed_unit: str | None = None  # school_days | school_weeks | days

    @property
    def is_current_run(self) -> bool:
        """A current run: its first day is computed with it (`once_per: run`, evidence `run_start`)."""
        return self.kind == "run" and self.run_which == "current"


# Numeric expressions. Every value is an exact rational; a Ratio with a zero denominator, a
# missing attribute, or a division by zero is undefined.


@dataclass(frozen=True)
class Const:
    value: Fraction


@dataclass(frozen=True)
class MetricRef:
    metric: MetricSpec


@dataclass(frozen=True)
class RateRef:
    """100 * numerator / denominator: a percentage; undefined when the denominator is 0."""

    numerator: MetricSpec
    denominator: MetricSpec


@dataclass(frozen=True)
class AttributeRef:
    name: str
    kind: str  # boolean | number | text | date


@dataclass(frozen=True)
class Arithmetic:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Rank:
    """Rank of a group's value among the groups of its kind in its school; 1 = highest."""

    value: object


# Atoms and the NNF predicate.


@dataclass(frozen=True)
class Comparison:
    op: str  # < <= > >= = !=
    left: object
    right: object
    text: str  # the condition text of this comparison, for evidence


@dataclass(frozen=True)
class Membership:
    value: object
    options: tuple
    negated: bool
    text: str


@dataclass(frozen=True)
class Truth:
    """A boolean attribute (or literal) that must equal `expected`."""

    value: object  # AttributeRef or bool
    expected: bool
    text: str


@dataclass(frozen=True)
class AllOf:
    parts: tuple


@dataclass(frozen=True)
class AnyOf:
    parts: tuple


Atom = Comparison | Membership | Truth


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    predicate: object  # AllOf | AnyOf | Atom
    atoms: tuple  # every atom of the predicate, in order
    measures: tuple  # (text, expression) of each measure the condition names, for evidence
    parameters: dict  # the policy's parameters (name -> check.Parameter), for evidence


@dataclass(frozen=True)
class Plan:
    policy: CheckedPolicy
    rules: tuple[CompiledRule, ...]
    metrics: tuple[MetricSpec, ...]  # every distinct metric any rule needs
    scopes: tuple[str, ...]


# ---- compiling ------------------------------------------------------------------------------

_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "=": "!=", "!=": "="}
_WEEKDAYS = {"Mon": 1, "Tues": 2, "Wednes": 3, "Thurs": 4, "Fri": 5}


def _weekday_number(name: str) -> int:
    for prefix, number in _WEEKDAYS.items():
        if name.startswith(prefix):
            return number
    raise ValueError(name)


class _RuleCompiler:
    def __init__(self, policy: CheckedPolicy, rule: Rule):
        self.policy = policy
        self.rule = rule
        self.metrics: list[MetricSpec] = []
        self.measures: list[tuple[str, object]] = []

    def _metric(self, spec: MetricSpec) -> MetricSpec:
        if spec not in self.metrics:
            self.metrics.append(spec)
        return spec

    def _int_param(self, node) -> int:
        if isinstance(node, ast.Number):
            return int(node.value)
        return int(self.policy.parameters[node.name].value)

    def date_ref(self, node) -> DateRef:
        if isinstance(node, ast.DateLiteral):
            return DateRef(literal=node.value)
        if isinstance(node, ast.Attribute):
            return DateRef(attribute=node.name)
        return DateRef(literal=self.policy.parameters[node.name].value)

    def window(self, w: ast.Window) -> WindowSpec:
        spec = WindowSpec(w.kind)
        if w.kind == "last":
            spec = WindowSpec("last", self._int_param(w.size), w.unit)
        elif w.kind == "since":
            spec = WindowSpec("since", since=self.date_ref(w.since))
        if w.exclusion is not None:
            e = w.exclusion
            if e.kind == "before":
                spec = WindowSpec(spec.kind, spec.size, spec.unit, spec.since, exclude_before=self.date_ref(e.end))
            else:
                spec = WindowSpec(spec.kind, spec.size, spec.unit, spec.since,
                                  exclude_from=self.date_ref(e.start), exclude_to=self.date_ref(e.end))
        return spec

    def codes(self, f: ast.SessionFilter) -> frozenset[str] | None:
        catalogue = national_codes()
        selected = None
        if f.category:
            selected = catalogue.codes_in(f.category)
        if f.codes is not None:
            listed = frozenset(self.policy.parameters[f.codes.name].value if isinstance(f.codes, ast.Parameter) else f.codes)
            selected = listed if selected is None else selected & listed
        return selected

    # numeric expressions
    def value(self, node):
        if isinstance(node, ast.Number):
            return Const(Fraction(node.value))
        if isinstance(node, ast.Percent):
            return Const(Fraction(node.value))
        if isinstance(node, ast.Negate):
            return Arithmetic("-", Const(Fraction(0)), self.value(node.operand))
        if isinstance(node, ast.Arith):
            return Arithmetic(node.op, self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Parameter):
            value = self.policy.parameters[node.name].value
            if isinstance(value, date):
                return Const(Fraction(value.toordinal()))
            return Const(Fraction(value))
        if isinstance(node, ast.DateLiteral):
            return Const(Fraction(node.value.toordinal()))
        if isinstance(node, ast.Attribute):
            return AttributeRef(node.name, self.policy.attributes[node.name])
        if isinstance(node, ast.Text):
            return node.value
        if isinstance(node, ast.Boolean):
            return node.value
        expression = self.measure(node)
        self.measures.append((_measure_text(node), expression))
        return expression

    def measure(self, node):
        if isinstance(node, ast.SessionCount):
            f = node.filter
            weekdays = tuple(sorted({_weekday_number(d) for d in f.weekdays})) if f.weekdays else None
            return MetricRef(self._metric(MetricSpec("sessions", self.window(node.window), self.codes(f), weekdays, f.half)))
        if isinstance(node, ast.Rate):
            window = self.window(node.window)
            catalogue = national_codes()
            numerator_category = RATE_NUMERATORS[node.kind]
            numerator = self._metric(MetricSpec("sessions", window, catalogue.codes_in(numerator_category)))
            denominator = self._metric(MetricSpec("sessions", window, catalogue.codes_in("possible")))
            return RateRef(numerator, denominator)
        if isinstance(node, ast.Run):
            return MetricRef(self._metric(MetricSpec("run", self.window(node.window), self.codes(node.filter),
                                                     run_which=node.which, run_unit=node.unit)))
        if isinstance(node, ast.MinutesLate):
            return MetricRef(self._metric(MetricSpec("minutes_late", self.window(node.window))))
        if isinstance(node, ast.ActionCount):
            s = node.selector
            return MetricRef(self._metric(MetricSpec("action_count", self.window(node.window), rule=s.rule, verb=s.verb)))
        if isinstance(node, ast.TimeSinceAction):
            s = node.selector
            return MetricRef(self._metric(MetricSpec("since_action", rule=s.rule, verb=s.verb, elapsed_unit=node.unit)))
        if isinstance(node, ast.Rank):
            return Rank(self.value(node.measure))
        raise TypeError(f"not a measure: {type(node).__name__}")

    # predicates in negation normal form
    def predicate(self, node, negated: bool = False):
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.predicate(o, negated) for o in node.operands)
            conjunction = (node.op == "and") != negated
            return AllOf(parts) if conjunction else AnyOf(parts)
        if isinstance(node, ast.Not):
            return self.predicate(node.operand, not negated)
        text = ("not " if negated else "") + _atom_text(node)
        if isinstance(node, ast.Compare):
            op = _NEGATE[node.op] if negated else node.op
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(left, bool) or isinstance(right, bool):
                # A comparison of booleans: pupil.ehcp = true, pupil.lac != false ...
                attribute, literal = (left, right) if isinstance(right, bool) else (right, left)
                if isinstance(attribute, bool):
                    return Truth(attribute == literal if op == "=" else attribute != literal, True, text)
                return Truth(attribute, literal if op == "=" else not literal, text)
            if _is_text(left) or _is_text(right):
                # Text is compared for equality only (the checker refuses ordering): a membership
                # test with one option, decided in SQL like `in {...}`.
                if isinstance(left, str) and isinstance(right, str):
                    return Truth((left == right) == (op == "="), True, text)
                item, other = (right, left) if isinstance(left, str) else (left, right)
                return Membership(item, (other,), op == "!=", text)
            return Comparison(op, left, right, text)
        if isinstance(node, ast.Member):
            options = tuple(i.value if isinstance(i, ast.Text) else Fraction(i.value) for i in node.values.items)
            return Membership(self.value(node.item), options, node.negated != negated, text)
        if isinstance(node, ast.Attribute):
            return Truth(self.value(node), not negated, text)
        if isinstance(node, ast.Boolean):
            return Truth(node.value, not negated, text)
        raise TypeError(f"not a condition: {type(node).__name__}")


def _is_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, AttributeRef) and value.kind == "text")


def _measure_text(node) -> str:
    from .format_condition import format_condition

    return format_condition(node)


def _atom_text(node) -> str:
    from .format_condition import format_condition

    return format_condition(node)


def atoms_of(predicate) -> tuple:
    """Every atom of a predicate, depth first."""
    if isinstance(predicate, (AllOf, AnyOf)):
        return tuple(a for p in predicate.parts for a in atoms_of(p))
    return (predicate,)


def current_run_metric(compiled: CompiledRule) -> MetricSpec | None:
    """The `current run of ...` metric a rule with `repeat: {once_per: run}` counts runs of (the
    checker allows exactly one in its condition); None for any other rule."""
    if compiled.rule.repeat.once_per != "run":
        return None
    for _, expr in compiled.measures:
        if isinstance(expr, MetricRef) and expr.metric.is_current_run:
            return expr.metric
    return None


def metrics_in(expr) -> list[MetricSpec]:
    """The metrics a compiled expression or atom reads, in order (repeats kept)."""
    if isinstance(expr, MetricRef):
        return [expr.metric]
    if isinstance(expr, RateRef):
        return [expr.numerator, expr.denominator]
    if isinstance(expr, (Arithmetic, Comparison)):
        return metrics_in(expr.left) + metrics_in(expr.right)
    if isinstance(expr, (Rank, Membership)):
        return metrics_in(expr.value)
    return []


def compile_policy(policy: CheckedPolicy) -> Plan:
    """Compile every rule of a checked policy into one plan."""
    rules = []
    metrics: list[MetricSpec] = []
    for rule in policy.rules:
        compiler = _RuleCompiler(policy, rule)
        predicate = compiler.predicate(rule.condition)
        for m in compiler.metrics:
            if m not in metrics:
                metrics.append(m)
        # A measure named twice in one condition is shown once in the evidence.
        measures = tuple(dict(compiler.measures).items())
        rules.append(CompiledRule(rule, predicate, atoms_of(predicate), measures, policy.parameters))
    scopes = tuple(sorted({r.scope for r in policy.rules}))
    return Plan(policy, tuple(rules), tuple(metrics), scopes)


_WINDOW_WORDS = {
    "this_school_week": "this school week", "this_half_term": "this half term", "this_term": "this term",
    "previous_term": "previous term", "this_and_previous_term": "this and previous term",
    "this_academic_year": "this academic year", "previous_academic_year": "previous academic year", "ever": "ever",
}


def window_text(w: WindowSpec) -> str:
    if w.kind == "last":
        return f"the last {w.size} {w.unit.replace('_', ' ')}"
    if w.kind == "since":
        return f"since {w.since.literal or 'pupil.' + str(w.since.attribute)}"
    return _WINDOW_WORDS[w.kind]
