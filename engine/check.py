"""Check stage: a merged policy with parsed conditions -> a typed, resolved CheckedPolicy.

Resolves every name (parameters, pupil attributes, codes, rule ids in escalations and action
selectors, action verbs), checks types and units (a percentage never meets a session count),
and warns about conditions that can never be true and rules that duplicate another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from . import ast
from .attributes import BUILTIN_ATTRIBUTES
from .codes import CATEGORIES, national_codes
from .diagnostics import Diagnostic, Span, did_you_mean, error, warning
from .format_condition import format_condition
from .load import Located, MergedPolicy


# The parser (Lark) and the schema's verbs (jsonschema) are imported only when a policy is being
# checked, so a command that reuses a checked policy (engine/check_cache.py) never loads them.
def _keywords() -> frozenset[str]:
    from .parse import keywords

    return keywords()


def _action_verbs():
    from .validate import action_verbs

    return action_verbs()


# ---- the checked policy: plain data handed to the compiler --------------------------------

DURATION_UNITS = {"school week": "school_weeks", "school weeks": "school_weeks", "school day": "school_days",
                  "school days": "school_days", "week": "weeks", "weeks": "weeks", "day": "days", "days": "days",
                  "year": "years", "years": "years"}
INTEGER_UNITS = ("sessions", "school_days", "school_weeks", "days", "weeks", "years", "minutes", "count")

# Scopes whose subjects are single pupils: `pupil` (on roll on the as-of day) and `leaver` (a
# recorded leave date, joined by the as-of day). Who each evaluates: docs/semantics.md, On roll.
PUPIL_SCOPES = ("pupil", "leaver")


def subject_kind(scope: str) -> str:
    """The kind of subject a rule of `scope` acts on, as action records and the ledger name it:
    a leaver rule acts on a pupil, so it shares the pupil's ledger history (repeat, after, limit)."""
    return "pupil" if scope in PUPIL_SCOPES else scope


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # school_weeks | school_days | weeks | days | years

    @classmethod
    def parse(cls, text: str) -> "Duration":
        amount, unit = text.split(" ", 1)
        return cls(int(amount), DURATION_UNITS[unit])

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.replace('_', ' ')}"


@dataclass(frozen=True)
class Parameter:
    name: str
    value: Decimal | tuple[str, ...] | date
    unit: str
    description: str | None
    defined_in: str


@dataclass(frozen=True)
class Action:
    verb: str
    params: tuple[tuple[str, object], ...]

    def params_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params}


@dataclass(frozen=True)
class Repeat:
    once_per: str | None = None
    cooldown: Duration | None = None


@dataclass(frozen=True)
class Escalation:
    rule: str
    at_least: Duration | None


@dataclass(frozen=True)
class Limit:
    max: int
    within: Duration
    rules: tuple[str, ...]
    otherwise: tuple[Action, ...]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str | None
    reading: str | None
    scope: str
    condition: ast.Expr
    condition_text: str
    actions: tuple[Action, ...]
    advisory: bool
    repeat: Repeat
    after: Escalation | None
    limit: Limit | None
    defined_in: str
    span: Span


@dataclass(frozen=True)
class CheckedPolicy:
    id: str
    title: str
    version: str
    path: str
    sha256: str
    header: dict
    chain: tuple[str, ...]
    parameters: dict[str, Parameter]
    attributes: dict[str, str]
    rules: tuple[Rule, ...]
    disabled: dict[str, str] = field(default_factory=dict)
    # What each attribute is, for readers: the built-in descriptions and the policy's own.
    attribute_descriptions: dict[str, str] = field(default_factory=dict)

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)


# ---- types ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Type:
    kind: str  # boolean | number | date | text | codes | set
    unit: str | None = None  # for numbers: percent, sessions, ..., or None (a bare number)

    def __str__(self) -> str:
        if self.kind == "number":
            return _UNIT_WORDS.get(self.unit, "a number")
        return _KIND_WORDS.get(self.kind, self.kind)


_UNIT_WORDS = {None: "a plain number", "percent": "a percentage", "sessions": "a number of sessions",
               "school_days": "a number of school days", "school_weeks": "a number of school weeks",
               "days": "a number of days", "weeks": "a number of weeks", "years": "a number of years",
               "minutes": "a number of minutes", "count": "a count of actions", "rank": "a rank"}
_KIND_WORDS = {"boolean": "true/false", "date": "a date", "text": "text", "codes": "a set of codes", "set": "a set"}
BOOL = Type("boolean")
DATE = Type("date")
TEXT = Type("text")

# Bounds of measures, for "can never be true" warnings.
_BOUNDS = {"percent": (Decimal(0), Decimal(100)), "sessions": (Decimal(0), None), "school_days": (Decimal(0), None),
           "school_weeks": (Decimal(0), None), "minutes": (Decimal(0), None), "count": (Decimal(0), None),
           "days": (Decimal(0), None), "rank": (Decimal(1), None)}


class _RuleChecker:
    def __init__(self, policy: "_Context", rule: Located):
        self.ctx = policy
        self.rule = rule
        self.scope = rule.value.get("scope", "pupil")
        self.diagnostics: list[Diagnostic] = []

    def err(self, code, message, node_or_span, hint=None, expected=None):
        span = node_or_span.span if isinstance(node_or_span, ast.Node) else node_or_span
        self.diagnostics.append(error(code, message, span or self.ctx.span_of(self.rule, "when"), hint, expected))

    def warn(self, code, message, node_or_span, hint=None):
        span = node_or_span.span if isinstance(node_or_span, ast.Node) else node_or_span
        self.diagnostics.append(warning(code, message, span or self.ctx.span_of(self.rule, "when"), hint))

    # -- expressions ------------------------------------------------------------------------
    def infer(self, node) -> Type | None:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Number(self, node):
        return Type("number", None)

    def _Percent(self, node):
        if node.value > 100:
            self.warn("condition.percent-range", f"{format_condition(node)} is more than 100%", node)
        return Type("number", "percent")

    def _DateLiteral(self, node):
        return DATE

    def _Text(self, node):
        return TEXT

    def _Boolean(self, node):
        return BOOL

    def _Parameter(self, node):
        param = self.ctx.parameters.get(node.name)
        if param is None:
            candidates = list(self.ctx.parameters)
            hint = did_you_mean(node.name, candidates)
            if hint is None and node.name in self.ctx.all_attributes:
                hint = f"pupil attributes are written `pupil.{node.name}`"
            self.err("name.parameter", f"unknown parameter `{node.name}`", node,
                     hint=hint or "declare it under `parameters:` with a value and a unit")
            return None
        self.ctx.used_parameters.add(node.name)
        if param.unit == "codes":
            return Type("codes")
        if param.unit == "date":
            return DATE
        return Type("number", param.unit)

    def _Attribute(self, node):
        if self.scope not in PUPIL_SCOPES:
            self.err("scope.attribute", f"`pupil.{node.name}` is a pupil attribute, but this rule's scope is {self.scope}",
                     node, hint="use pupil attributes only in rules with scope: pupil or leaver")
            return None
        kind = self.ctx.all_attributes.get(node.name)
        if kind is None:
            self.err("name.attribute", f"unknown pupil attribute `{node.name}`", node,
                     hint=did_you_mean(node.name, self.ctx.all_attributes) or
                     "declare it under `attributes:` with its type (boolean, number, text, date)")
            return None
        return Type(kind if kind != "number" else "number", None)

    def _ValueSet(self, node):
        return Type("set")

    def _BoolOp(self, node):
        for operand in node.operands:
            t = self.infer(operand)
            if t is not None and t != BOOL:
                self.err("type.condition", f"each side of `{node.op}` must be a condition (true/false), not {t}", operand,
                         hint="compare it with a threshold, e.g. `... below 90%`")
        if node.op == "and":
            self._check_contradiction(node)
        return BOOL

    def _Not(self, node):
        t = self.infer(node.operand)
        if t is not None and t != BOOL:
            self.err("type.condition", f"`not` needs a condition (true/false), not {t}", node.operand)
        return BOOL

    def _Compare(self, node):
        left, right = self.infer(node.left), self.infer(node.right)
        if left is None or right is None:
            return BOOL
        if left.kind == "number" and right.kind == "number":
            self._check_units(node, left, right)
            self._check_range(node, left, right)
        elif left.kind == right.kind and left.kind in ("date", "text", "boolean"):
            if left.kind in ("text", "boolean") and node.op not in ("=", "!="):
                self.err("type.compare", f"{left} can only be compared with `is` / `=` or `is not` / `!=`", node)
        else:
            hint = None
            if {left.kind, right.kind} == {"number", "text"}:
                hint = 'text values are quoted: `pupil.year_group is "R"`'
            self.err("type.compare", f"cannot compare {left} with {right}", node, hint=hint)
        return BOOL

    def _Member(self, node):
        item = self.infer(node.item)
        if item is None:
            return BOOL
        for value in node.values.items:
            t = self.infer(value)
            if item.kind == "text" and t.kind != "text":
                self.err("type.member", f"{format_condition(value)} is a number but {format_condition(node.item)} is text",
                         value, hint=f'quote it: "{format_condition(value)}"')
            elif item.kind == "number" and t.kind != "number":
                self.err("type.member", f"{format_condition(value)} is text but {format_condition(node.item)} is a number", value)
        if item.kind not in ("text", "number"):
            self.err("type.member", f"`in {{...}}` compares text or numbers, not {item}", node.item)
        return BOOL

    def _Arith(self, node):
        left, right = self.infer(node.left), self.infer(node.right)
        if left is None or right is None:
            return None
        if left.kind != "number" or right.kind != "number":
            self.err("type.arith", f"`{node.op}` works on numbers, not {left if left.kind != 'number' else right}", node)
            return None
        if node.op in "+-":
            if left.unit and right.unit and left.unit != right.unit:
                self.err("type.unit", f"cannot add or subtract {left} and {right}", node)
                return None
            return Type("number", left.unit or right.unit)
        if node.op == "*":
            if left.unit and right.unit:
                self.err("type.unit", f"cannot multiply {left} by {right}", node)
                return None
            return Type("number", left.unit or right.unit)
        if right.unit and left.unit != right.unit:
            self.err("type.unit", f"cannot divide {left} by {right}", node)
            return None
        if left.unit == right.unit and left.unit is not None:
            return Type("number", None)
        return Type("number", left.unit)

    def _Negate(self, node):
        t = self.infer(node.operand)
        if t is not None and t.kind != "number":
            self.err("type.arith", f"`-` works on numbers, not {t}", node)
            return None
        return t

    # -- measures ---------------------------------------------------------------------------
    def _SessionCount(self, node):
        self._check_filter(node.filter, node)
        self._check_window(node.window)
        return Type("number", "sessions")

    def _Rate(self, node):
        self._check_window(node.window)
        return Type("number", "percent")

    def _Run(self, node):
        if self.scope not in PUPIL_SCOPES:
            self.err("scope.run", f"a run of consecutive sessions belongs to one pupil; this rule's scope is {self.scope}",
                     node, hint="use runs in rules with scope: pupil or leaver")
        self._check_filter(node.filter, node)
        self._check_window(node.window)
        return Type("number", node.unit)

    def _MinutesLate(self, node):
        self._check_window(node.window)
        return Type("number", "minutes")

    def _ActionCount(self, node):
        self._check_selector(node.selector)
        self._check_window(node.window)
        return Type("number", "count")

    def _TimeSinceAction(self, node):
        self._check_selector(node.selector)
        return Type("number", node.unit)

    def _Rank(self, node):
        if self.scope in PUPIL_SCOPES:
            self.err("scope.rank", "`rank of` compares groups: it needs a rule with scope class, year_group or school",
                     node, hint="set `scope: class` (or year_group) on this rule")
        inner = self.infer(node.measure)
        if inner is not None and inner.kind != "number":
            self.err("type.rank", f"`rank of` needs a measure, not {inner}", node.measure)
        return Type("number", "rank")

    def _check_selector(self, selector: ast.ActionSelector):
        if selector.rule is not None:
            self.ctx.referenced_rules.append((selector.rule, selector.span, self))
        elif selector.verb not in _action_verbs():
            self.err("name.verb", f"unknown action verb `{selector.verb}`", selector,
                     hint=did_you_mean(selector.verb, _action_verbs()), expected=", ".join(_action_verbs()))

    def _check_filter(self, f: ast.SessionFilter, measure):
        codes = f.codes
        if isinstance(codes, ast.Parameter):
            t = self._Parameter(codes)
            if t is not None and t.kind != "codes":
                self.err("type.codes", f"`coded {codes.name}` needs a parameter with unit `codes`, not {t}", codes)
                return
            symbols = self.ctx.parameters[codes.name].value if t is not None else ()
        else:
            symbols = codes or ()
            catalogue = national_codes()
            for symbol in symbols:
                if symbol in catalogue:
                    continue
                if symbol in catalogue.retired:
                    self.err("code.retired", f"`{symbol}` has not been a national attendance code since August 2024", f,
                             hint=f"{symbol} was: {catalogue.retired[symbol]}")
                else:
                    self.err("code.unknown", f"`{symbol}` is not a national attendance code", f,
                             hint=did_you_mean(symbol, catalogue.codes) or "see the code table in docs/language.md")
        if f.category and symbols:
            in_category = national_codes().codes_in(f.category)
            outside = [s for s in symbols if s in national_codes() and s not in in_category]
            if outside and len(outside) == len([s for s in symbols if s in national_codes()]):
                self.warn("condition.never", f"no code in {{{', '.join(symbols)}}} is {f.category.replace('_', ' ')}: "
                          "this count is always 0", measure, hint=f"drop `{f.category}` or change the codes")
            elif outside:
                self.warn("condition.codes-outside-category", f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not "
                          f"{f.category.replace('_', ' ')} and will never be counted here", measure)

    def _check_date_value(self, node):
        t = self.infer(node)
        if t is not None and t != DATE:
            self.err("type.date", f"a window boundary must be a date, not {t}", node)

    def _check_window(self, w: ast.Window):
        if w.kind == "last":
            size = w.size
            if isinstance(size, ast.Number):
                if size.value < 1 or size.value != size.value.to_integral():
                    self.err("window.size", f"`the last {format_condition(size)}` needs a whole number of at least 1", size)
            else:
                t = self._Parameter(size)
                if t is not None and not (t.kind == "number" and t.unit in (w.unit, "count", None)):
                    self.err("type.unit", f"`{size.name}` is {t}, but the window counts {w.unit.replace('_', ' ')}", size,
                             hint=f"give the parameter unit `{w.unit}`")
                elif t is not None:
                    value = self.ctx.parameters[size.name].value
                    if value < 1 or value != value.to_integral():
                        self.err("window.size", f"`{size.name}` is {value}; a window needs a whole number of at least 1", size)
        if w.kind == "since":
            self._check_date_value(w.since)
        if w.exclusion is not None:
            if w.exclusion.start is not None:
                self._check_date_value(w.exclusion.start)
            self._check_date_value(w.exclusion.end)

    # -- units, ranges and contradictions ------------------------------------------------------
    def _check_units(self, node, left: Type, right: Type):
        if left.unit == right.unit:
            return
        if left.unit is None or right.unit is None:
            unit = left.unit or right.unit
            bare = node.left if left.unit is None else node.right
            if unit == "percent":
                hint = f"write `{format_condition(bare)}%`" if isinstance(bare, ast.Number) else "use a parameter with unit percent"
                self.err("type.unit", f"`{format_condition(bare)}` has no unit but is compared with a percentage", bare, hint=hint)
            return
        if {left.unit, right.unit} <= {"count", None}:
            return
        self.err("type.unit", f"cannot compare {left} with {right}", node,
                 hint="compare like with like: a rate with a percentage, a count of sessions with a number of sessions")

    def _constant(self, node) -> Decimal | None:
        if isinstance(node, (ast.Number, ast.Percent)):
            return node.value
        if isinstance(node, ast.Parameter) and node.name in self.ctx.parameters:
            value = self.ctx.parameters[node.name].value
            return value if isinstance(value, Decimal) else None
        if isinstance(node, ast.Negate):
            inner = self._constant(node.operand)
            return -inner if inner is not None else None
        return None

    def _bounded(self, node, t: Type) -> bool:
        return isinstance(node, ast.MEASURES) and t.unit in _BOUNDS

    def _check_range(self, node: ast.Compare, left: Type, right: Type):
        # measure OP constant, or constant OP measure (flipped).
        flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
        if self._bounded(node.left, left) and self._constant(node.right) is not None:
            measure, op, value, unit = node.left, node.op, self._constant(node.right), left.unit
        elif self._bounded(node.right, right) and self._constant(node.left) is not None:
            measure, op, value, unit = node.right, flip[node.op], self._constant(node.left), right.unit
        else:
            return
        low, high = _BOUNDS[unit]
        never = ((op == "<" and value <= low) or (op == "<=" and value < low) or
                 (high is not None and ((op == ">" and value >= high) or (op == ">=" and value > high))) or
                 (op == "=" and (value < low or (high is not None and value > high))))
        always = ((op == ">=" and value <= low) or (op == ">" and value < low) or
                  (high is not None and ((op == "<=" and value >= high) or (op == "<" and value > high))))
        if never:
            self.warn("condition.never", f"`{format_condition(node)}` can never be true: "
                      f"{format_condition(measure)} is never {'below' if op in ('<', '<=') else 'above'} "
                      f"{format_condition(ast.Percent(None, value)) if unit == 'percent' else value}", node)
        elif always:
            self.warn("condition.always", f"`{format_condition(node)}` is always true", node)

    def _check_contradiction(self, node: ast.BoolOp):
        """`x < 80% and x > 90%` on the same measure can never be true."""
        bounds: dict[str, list] = {}
        for operand in node.operands:
            if not isinstance(operand, ast.Compare):
                continue
            if isinstance(operand.left, ast.MEASURES) and self._constant(operand.right) is not None:
                measure, op, value = operand.left, operand.op, self._constant(operand.right)
            else:
                continue
            key = format_condition(measure)
            # How the bound reads in the message: `80%` for a rate, `10` for a count.
            shown = f"{format_condition(ast.Number(None, value))}{'%' if isinstance(measure, ast.Rate) else ''}"
            low, high = bounds.setdefault(key, [None, None])
            if op in (">", ">="):
                strict = op == ">"
                if low is None or value > low[0] or (value == low[0] and strict):
                    bounds[key][0] = (value, strict, shown)
            elif op in ("<", "<="):
                strict = op == "<"
                if high is None or value < high[0] or (value == high[0] and strict):
                    bounds[key][1] = (value, strict, shown)
            low, high = bounds[key]
            if low and high and (low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1]))):
                self.warn("condition.never", f"this condition can never be true: {key} cannot be both "
                          f"{'above' if low[1] else 'at least'} {low[2]} and {'below' if high[1] else 'at most'} {high[2]}", node,
                          hint="did you mean `or` (outside the band) rather than `and`?" if low[0] > high[0] else None)
                return


class _Context:
    def __init__(self, merged: MergedPolicy, parameters: dict[str, Parameter]):
        self.merged = merged
        self.parameters = parameters
        self.all_attributes = {name: kind for name, (kind, _) in BUILTIN_ATTRIBUTES.items()}
        for name, located in merged.attributes.items():
            self.all_attributes[name] = located.value["type"]
        self.used_parameters: set[str] = set()
        self.referenced_rules: list[tuple[str, Span, _RuleChecker]] = []

    def span_of(self, located: Located, *path) -> Span:
        return located.doc.span(located.path + tuple(path))


def _check_parameters(merged: MergedPolicy) -> tuple[dict[str, Parameter], list[Diagnostic]]:
    out: dict[str, Parameter] = {}
    diagnostics: list[Diagnostic] = []
    catalogue = national_codes()
    # A parameter redefined down the chain must keep its unit. A rejected override is left out,
    # so the base's rules are checked against the base's definition and do not report it again.
    rejected: dict[str, Located] = {}
    for position, doc in enumerate(merged.chain[:-1]):
        for name, spec in (doc.data.get("parameters") or {}).items():
            for base in merged.chain[position + 1:]:
                base_spec = (base.data.get("parameters") or {}).get(name)
                if base_spec is not None and base_spec["unit"] != spec["unit"]:
                    diagnostics.append(error("type.unit", f"parameter `{name}` has unit `{base_spec['unit']}` in {base.path}; "
                                             f"an override must keep it, not `{spec['unit']}`", doc.span(("parameters", name, "unit")),
                                             hint=f"keep `unit: {base_spec['unit']}`, or declare a new parameter with another name"))
                    rejected[name] = Located(base_spec, base, ("parameters", name))
    for name, located in merged.parameters.items():
        located = rejected.get(name, located)
        spec, doc = located.value, located.doc
        if name in _keywords():
            diagnostics.append(error("parameter.reserved", f"`{name}` is a reserved word of the condition language and cannot "
                                     "name a parameter", doc.span(located.path, key=True),
                                     hint=f"rename it, e.g. `{name}_threshold` (the reserved words are listed in docs/language.md)"))
        unit, value = spec["unit"], spec["value"]
        span = doc.span(located.path + ("value",))
        if unit == "codes":
            if not isinstance(value, list):
                diagnostics.append(error("type.parameter", f"parameter `{name}` has unit codes: its value must be a list of codes",
                                         span, hint="e.g. value: [G, O, U]"))
                continue
            for symbol in value:
                if symbol not in catalogue:
                    hint = catalogue.retired.get(symbol) or did_you_mean(symbol, catalogue.codes)
                    diagnostics.append(error("code.unknown", f"`{symbol}` in parameter `{name}` is not a national attendance code",
                                             span, hint=hint))
            out[name] = Parameter(name, tuple(str(v) for v in value), unit, spec.get("description"), doc.path)
        elif unit == "date":
            try:
                out[name] = Parameter(name, date.fromisoformat(str(value)), unit, spec.get("description"), doc.path)
            except ValueError:
                diagnostics.append(error("type.parameter", f"parameter `{name}` has unit date: `{value}` is not YYYY-MM-DD", span))
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                diagnostics.append(error("type.parameter", f"parameter `{name}` has unit {unit}: its value must be a number", span))
                continue
            number = Decimal(str(value))
            if number < 0:
                diagnostics.append(error("type.parameter", f"parameter `{name}` must not be negative", span))
            elif unit == "percent" and number > 100:
                diagnostics.append(error("type.parameter", f"parameter `{name}` is a percentage above 100", span))
            elif unit in INTEGER_UNITS and number != number.to_integral():
                diagnostics.append(error("type.parameter", f"parameter `{name}` counts {unit.replace('_', ' ')}: "
                                         "it must be a whole number", span))
            out[name] = Parameter(name, number, unit, spec.get("description"), doc.path)
    return out, diagnostics


def _action(entry: dict) -> Action:
    (verb, params), = entry.items()
    params = params or {}
    return Action(verb, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))


def policy_sha256(merged: MergedPolicy) -> str:
    """The content hash of a policy: every file of its chain, in order, byte for byte."""
    digest = hashlib.sha256()
    for doc in merged.chain:
        digest.update(doc.text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


# Parsed conditions by (file, its text, where in it): a base policy's conditions are parsed once,
# not once per policy that extends it. The trees are immutable, so sharing them is safe.
_PARSED: dict[tuple[str, str, tuple], tuple] = {}
_PARSED_MAX = 20000


def _parse_when(doc, when_path: tuple, text: str):
    key = (doc.path, doc.text, when_path)
    if key not in _PARSED:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        from .parse import parse_condition

        _PARSED[key] = parse_condition(text, doc.path, doc.locator(when_path))
    tree, syntax = _PARSED[key]
    return tree, list(syntax)


def check_policy(merged: MergedPolicy) -> tuple[CheckedPolicy | None, list[Diagnostic]]:
    """Parse and check every rule of a merged policy. Returns (policy, diagnostics);
    policy is None when there is any error."""
    parameters, diagnostics = _check_parameters(merged)
    ctx = _Context(merged, parameters)
    for name, located in merged.attributes.items():
        if name in BUILTIN_ATTRIBUTES and BUILTIN_ATTRIBUTES[name][0] != located.value["type"]:
            diagnostics.append(error("type.attribute", f"`{name}` is a built-in attribute of type {BUILTIN_ATTRIBUTES[name][0]}",
                                     located.doc.span(located.path + ("type",))))
    rules: list[Rule] = []
    checkers: list[_RuleChecker] = []
    rule_ids = {r.value["id"] for r in merged.rules}
    for located in merged.rules:
        data, doc = located.value, located.doc
        when_path = located.path + ("when",)
        tree, syntax = _parse_when(doc, when_path, data["when"])
        diagnostics.extend(syntax)
        if tree is None:
            continue
        checker = _RuleChecker(ctx, located)
        checkers.append(checker)
        t = checker.infer(tree)
        if t is not None and t != BOOL:
            checker.err("type.condition", f"`when` must be a condition (true/false), but this is {t}", tree,
                        hint=f"compare it with a threshold, e.g. `{format_condition(tree)} below 90%`"
                        if t.unit == "percent" else "compare it with a threshold")
        after = None
        if data.get("after"):
            target = data["after"]["rule"]
            span = doc.span(located.path + ("after", "rule"))
            checker.ctx.referenced_rules.append((target, span, checker))
            if target == data["id"]:
                checker.err("rule.escalation-self", "a rule cannot escalate from itself", span,
                            hint="use `repeat: {cooldown: ...}` to space out repeats of one rule")
            at_least = data["after"].get("at_least")
            after = Escalation(target, Duration.parse(at_least) if at_least else None)
        limit = None
        if data.get("limit"):
            spec = data["limit"]
            for i, target in enumerate(spec.get("rules", [])):
                checker.ctx.referenced_rules.append((target, doc.span(located.path + ("limit", "rules", i)), checker))
            limit = Limit(spec["max"], Duration.parse(spec["within"]), tuple(spec.get("rules", [])),
                          tuple(_action(a) for a in spec["otherwise"]))
        repeat_spec = data.get("repeat") or {}
        repeat = Repeat(repeat_spec.get("once_per"), Duration.parse(repeat_spec["cooldown"]) if "cooldown" in repeat_spec else None)
        if repeat.once_per == "run":
            _check_once_per_run(checker, tree, doc.span(located.path + ("repeat", "once_per"), key=True))
        rules.append(Rule(
            id=data["id"], title=data["title"], source=data.get("source"), reading=data.get("reading"),
            scope=data.get("scope", "pupil"), condition=tree, condition_text=format_condition(tree),
            actions=tuple(_action(a) for a in data["then"]), advisory=bool(data.get("advisory", False)),
            repeat=repeat, after=after, limit=limit, defined_in=doc.path, span=doc.span(located.path + ("id",))))
    for target, span, checker in ctx.referenced_rules:
        if target in rule_ids:
            continue
        if target in merged.disabled:
            checker.err("name.rule", f"rule `{target}` is switched off by `disable` in this policy", span)
        else:
            checker.err("name.rule", f"no rule `{target}` in this policy (or the policies it extends)", span,
                        hint=did_you_mean(target, rule_ids))
    for checker in checkers:
        diagnostics.extend(checker.diagnostics)
    diagnostics.extend(_shadowed(rules))
    leaf = merged.chain[0]
    for name in (leaf.data.get("parameters") or {}):
        if name not in ctx.used_parameters and name in parameters and parameters[name].defined_in == leaf.path \
                and name not in _keywords():
            declared_in_base = any(name in (d.data.get("parameters") or {}) for d in merged.chain[1:])
            if not declared_in_base:
                diagnostics.append(warning("parameter.unused", f"parameter `{name}` is not used by any rule",
                                           leaf.span(("parameters", name), key=True),
                                           hint="use it in a rule's `when`, or remove it"))
    if any(d.severity == "error" for d in diagnostics):
        return None, diagnostics
    header = merged.header
    disabled = {rid: loc.value["reason"] for rid, loc in merged.disabled.items()}
    return CheckedPolicy(
        id=header["id"], title=header["title"], version=str(header["version"]), path=merged.path,
        sha256=policy_sha256(merged), header=header, chain=tuple(d.path for d in merged.chain),
        parameters=parameters, attributes=dict(ctx.all_attributes), rules=tuple(rules), disabled=disabled,
        attribute_descriptions={**{name: d for name, (_, d) in BUILTIN_ATTRIBUTES.items()},
                                **{name: loc.value["description"] for name, loc in merged.attributes.items()
                                   if loc.value.get("description")}},
    ), diagnostics


def current_runs(tree) -> list:
    """The distinct `current run of ...` measures of a condition, in order of first appearance
    (the same measure written twice is one)."""
    out: dict[str, ast.Run] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Run) and node.which == "current":
            out.setdefault(format_condition(node), node)
    return list(out.values())


def _check_once_per_run(checker: "_RuleChecker", tree, span: Span) -> None:
    """`repeat: {once_per: run}` counts runs of the condition's one current run: it needs exactly one."""
    runs = current_runs(tree)
    if len(runs) == 1:
        return
    if not runs:
        checker.err("repeat.run", "`once_per: run` needs a `current run of ...` measure in this rule's condition, "
                    "and there is none", span,
                    hint="compare a current run with a threshold (e.g. `current run of school days coded {N, O} ever >= 3`), "
                         "or repeat once per a period or with a cooldown")
    else:
        shown = ", ".join(f"`{format_condition(r)}`" for r in runs)
        checker.err("repeat.run", f"`once_per: run` needs exactly one `current run of ...` measure in this rule's "
                    f"condition, but it has {len(runs)}: {shown}", span,
                    hint="keep one current run in the condition, so it is clear which run the rule acts once in")


def _shadowed(rules: list[Rule]) -> list[Diagnostic]:
    """A rule with the same scope, condition and actions as an earlier one adds nothing."""
    out = []
    seen: dict[tuple, Rule] = {}
    for rule in rules:
        key = (rule.scope, rule.condition, rule.actions)
        if key in seen:
            first = seen[key]
            out.append(warning("rule.shadowed", f"rule `{rule.id}` has the same condition and actions as `{first.id}` "
                               f"({first.defined_in}) and can never add an action of its own", rule.span,
                               hint="remove one of them, or change its condition"))
        else:
            seen[key] = rule
    return out
