"""Coverage of policy tests: which rules acted in some case, and which operands of each rule's
`and` / `or` were ever decisive.

Definitions (docs/policy-tests.md):

* A rule is **covered** when it produced at least one action in at least one case.
* Every `and` / `or` in a rule's condition, nested ones too, has operands. In one evaluation of
  one subject, an operand is **decisive** when flipping its truth value, with every other operand
  of every `and` / `or` kept as it was, flips the value of the rule's whole condition. Truth
  values are the engine's own: each atom (comparison, membership, attribute test) as the rules
  engines read it from the facts table (`engine.metrics.predicate_sql`), an undefined atom read
  as false, exactly as a rule is decided. The subjects are every subject the rule is evaluated
  for (every pupil on roll on the as-of date, or every class, year group, school).
* An operand is **covered** when it was decisive for at least one subject in at least one case.
  The report also says whether it was ever decisive while true (it made the condition hold, or
  an `or` hold) and while false (it stopped the condition); a well-tested operand is both.

The truth values come from the facts table the evaluation built (`Evaluation.facts`); nothing is
counted again here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast
from .compile import AllOf, AnyOf
from .metrics import predicate_sql


@dataclass(frozen=True)
class Operand:
    """One operand of an `and` / `or` in a rule's condition."""

    path: tuple[int, ...]  # child indices from the condition's root
    operator: str  # the `and` / `or` it is an operand of, as written
    text: str  # its source text (canonical form)
    line: int | None
    column: int | None
    negated: bool = False  # under an odd number of `not`s: its compiled value is the negation of its own


def rule_operands(rule, predicate) -> list[Operand]:
    """The operands of every `and` / `or` in a rule's condition, depth first, matched to the
    compiled predicate (negation normal form keeps the tree's shape; `not` only moves inward)."""
    from .format_condition import format_condition

    out: list[Operand] = []

    def walk(node, pred, path, negated=False):
        while isinstance(node, ast.Not):
            node, negated = node.operand, not negated
        if isinstance(pred, (AllOf, AnyOf)):
            if not isinstance(node, ast.BoolOp) or len(node.operands) != len(pred.parts):
                raise AssertionError(f"rule {rule.id}: the compiled predicate does not follow the condition")
            for i, (child, part) in enumerate(zip(node.operands, pred.parts)):
                span = child.span
                out.append(Operand(path + (i,), node.op, format_condition(child),
                                   span.line if span else None, span.column if span else None, negated))
                walk(child, part, path + (i,), negated)

    walk(rule.condition, predicate, ())
    return out


def _value(pred, atoms: tuple, truth: list[bool], path: tuple, flipped: tuple | None, seen: dict | None = None) -> bool:
    """The predicate's value with the operand at `flipped` negated; `seen` collects each
    operand's own (unflipped) value by path."""
    if isinstance(pred, (AllOf, AnyOf)):
        values = [_value(p, atoms, truth, path + (i,), flipped, seen) for i, p in enumerate(pred.parts)]
        value = all(values) if isinstance(pred, AllOf) else any(values)
    else:
        value = truth[atoms.index(pred)]
    if seen is not None:
        seen[path] = value
    return (not value) if path == flipped else value


def decisive_operands(predicate, atoms: tuple, truth: list[bool], operands: list[Operand]) -> set[tuple[tuple[int, ...], bool]]:
    """(path, the operand's value as written) of each operand that is decisive for one subject
    whose atoms have `truth`. (The compiled predicate is in negation normal form: an operand under
    `not` has the negation of its written value there.)"""
    own: dict = {}
    whole = _value(predicate, atoms, truth, (), None, own)
    return {(o.path, own[o.path] != o.negated) for o in operands if _value(predicate, atoms, truth, (), o.path) != whole}


@dataclass
class RuleObservation:
    evaluated: int = 0  # subject evaluations
    held: int = 0  # subjects for whom the condition held
    acted: int = 0  # actions produced
    decisive: set = field(default_factory=set)  # (operand path, its value) when it was decisive


@dataclass
class Observation:
    """What one case's evaluation showed, per rule id."""

    policy_path: str
    rules: dict[str, RuleObservation]


def observe(evaluation) -> Observation:
    """Read each rule's atoms for every subject from the evaluation's facts tables."""
    plan, facts = evaluation.plan, evaluation.facts
    connection = evaluation.register.connection
    acted: dict[str, int] = {}
    for a in evaluation.actions:
        acted[a["rule"]] = acted.get(a["rule"], 0) + 1
    rules = {}
    for compiled in plan.rules:
        rule = compiled.rule
        obs = RuleObservation(acted=acted.get(rule.id, 0))
        rules[rule.id] = obs
        table = facts.tables.get(rule.scope)
        if table is None:
            continue
        atoms = compiled.atoms
        distinct = list(dict.fromkeys(atoms))
        selects = [predicate_sql(a, rule.id, atoms) for a in distinct]
        operands = rule_operands(rule, compiled.predicate)
        rows = connection.execute(f"SELECT {', '.join(selects)} FROM {table}").fetchall()
        index = {a: k for k, a in enumerate(distinct)}
        for row in rows:
            truth = [bool(row[index[a]]) for a in atoms]
            obs.evaluated += 1
            if _value(compiled.predicate, atoms, truth, (), None):
                obs.held += 1
            if operands:
                obs.decisive |= decisive_operands(compiled.predicate, atoms, truth, operands)
    return Observation(evaluation.policy.path, rules)


# ---- the report ------------------------------------------------------------------------------

@dataclass
class RuleCoverage:
    rule_id: str
    where: str  # file:line:col of the rule's id
    acted: bool
    held: bool
    operands: list[tuple[Operand, bool, bool]]  # each operand; ever decisive when true; when false


@dataclass
class PolicyCoverage:
    policy_id: str
    policy_path: str
    cases: int
    rules: list[RuleCoverage]

    @property
    def rules_covered(self) -> int:
        return sum(1 for r in self.rules if r.acted)

    @property
    def percent(self) -> float:
        return 100.0 * self.rules_covered / len(self.rules) if self.rules else 100.0

    @property
    def operands_total(self) -> int:
        return sum(len(r.operands) for r in self.rules)

    @property
    def operands_decisive(self) -> int:
        return sum(1 for r in self.rules for _, t, f in r.operands if t or f)


def policy_coverage(policy, observations: list[Observation]) -> PolicyCoverage:
    """Combine the observations of every case run against one policy."""
    from .compile import compile_policy

    plan = compile_policy(policy)
    rules = []
    for compiled in plan.rules:
        rule = compiled.rule
        seen = [o.rules[rule.id] for o in observations if rule.id in o.rules]
        decisive = set().union(*(s.decisive for s in seen)) if seen else set()
        where = f"{rule.span.path}:{rule.span.line}:{rule.span.column}" if rule.span else rule.defined_in
        rules.append(RuleCoverage(rule.id, where, any(s.acted for s in seen), any(s.held for s in seen),
                                  [(op, (op.path, True) in decisive, (op.path, False) in decisive)
                                   for op in rule_operands(rule, compiled.predicate)]))
    return PolicyCoverage(policy.id, policy.path, len(observations), rules)


def render_coverage(report: PolicyCoverage) -> str:
    lines = [f"coverage of policy {report.policy_id} ({report.policy_path}) over {report.cases} "
             f"case{'s' if report.cases != 1 else ''}:",
             f"  rules: {report.rules_covered} of {len(report.rules)} acted ({report.percent:.1f}%)"]
    never = [r for r in report.rules if not r.acted]
    if never:
        lines.append("  rules that never acted:")
        width = max(len(r.rule_id) for r in never)
        for r in never:
            note = "  (its condition held, but repeat/after/limit stopped it)" if r.held else ""
            lines.append(f"    {r.rule_id:<{width}}  {r.where}{note}")
    if report.operands_total:
        lines.append(f"  condition operands: {report.operands_decisive} of {report.operands_total} ever decisive")
        for r in report.rules:
            if not r.operands:
                continue
            lines.append(f"    {r.rule_id}:")
            for op, when_true, when_false in r.operands:
                at = f"{op.line}:{op.column}" if op.line else "?"
                depth = "  " * (len(op.path) - 1)
                mark = {(True, True): "decisive", (True, False): "decisive (true only)",
                        (False, True): "decisive (false only)", (False, False): "NEVER decisive"}[(when_true, when_false)]
                lines.append(f"      {depth}{mark:<22} {op.operator} operand {op.path[-1] + 1} at {at}: {op.text}")
    return "\n".join(lines)


def coverage_dict(report: PolicyCoverage) -> dict:
    return {
        "policy": report.policy_id, "path": report.policy_path, "cases": report.cases,
        "rules_covered": report.rules_covered, "rules": len(report.rules), "percent": round(report.percent, 1),
        "never_acted": [{"rule": r.rule_id, "defined_at": r.where, "condition_held": r.held} for r in report.rules if not r.acted],
        "operands": [{"rule": r.rule_id, "operator": op.operator, "position": list(op.path), "text": op.text,
                      "line": op.line, "column": op.column, "decisive": t or f, "decisive_when_true": t,
                      "decisive_when_false": f} for r in report.rules for op, t, f in r.operands],
    }
