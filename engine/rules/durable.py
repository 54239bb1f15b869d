"""The durable-rules engine, fed as the shared notes on the library direct:

- one fact per subject, asserted with `assert_fact` (batch `assert_facts` returned before its
  actions ran in measured runs, and events are consumed by the first matching rule);
- each rule is one `when_all` over the fact's atom fields: `(m.a_d == 1) & (m.a_l < m.a_r)`
  compares the two exact integer sides of a comparison when both are defined, `m.a == 1` is an
  attribute test. An undefined atom must read as false (predicates are in negation normal form),
  and durable-rules does not make a comparison with a missing field false (measured: `0 == `
  a missing field matched), so no field is ever missing: an undefined comparison has `a_d = 0`
  and an undefined attribute test `a = 0`;
- a fresh ruleset name per run, and every asserted fact retracted afterwards, so a run is a pure
  function of its inputs and leaves no state in the process-wide host.

Asserting a fact that no rule matches raises MessageNotHandledException: that is "no rule
fired" and is expected. A rule whose condition is an `or` runs its action once for each branch
that holds (measured: a pupil meeting both branches fired twice), so firings are de-duplicated:
a rule holds for a subject or it does not.
"""

from __future__ import annotations

import itertools
import operator

from durable.lang import assert_fact, m, retract_fact, ruleset, when_all

from ..compile import AllOf, AnyOf, Comparison
from . import Firing, RulesEngineUnavailable

_run_counter = itertools.count()
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq, "!=": operator.ne}
# Exact integers are passed as numbers; above 2**53 a double would round, so such a value is refused.
_EXACT_LIMIT = 2**53


def _field(name: str) -> str:
    return "f_" + name.replace(".", "_").replace("-", "_")


def _exact(column: str, value) -> int:
    value = int(value)
    if abs(value) >= _EXACT_LIMIT:
        rule = column.rsplit(".", 1)[0]
        raise RulesEngineUnavailable(
            f"rule {rule} compares a number ({value}) beyond 2**53, the largest durable-rules compares exactly "
            "(its numbers are doubles); use --rules-engine builtin, which is exact at any size")
    return value


def _condition(predicate, rule_id: str, atoms: tuple):
    if isinstance(predicate, (AllOf, AnyOf)):
        parts = [_condition(p, rule_id, atoms) for p in predicate.parts]
        combined = parts[0]
        for part in parts[1:]:
            combined = (combined & part) if isinstance(predicate, AllOf) else (combined | part)
        return combined
    k = atoms.index(predicate)
    if isinstance(predicate, Comparison):
        left = getattr(m, _field(f"{rule_id}.a{k}_l"))
        right = getattr(m, _field(f"{rule_id}.a{k}_r"))
        defined = getattr(m, _field(f"{rule_id}.a{k}_d"))
        return (defined == 1) & _OPS[predicate.op](left, right)
    return getattr(m, _field(f"{rule_id}.a{k}")) == 1


def _recorder(firings: list, index: int, scope: str, rule_id: str):
    """The action of one rule. durable-rules calls it as action(c, complete) and names the rule
    after the function, so each rule gets its own function (a closure, not default arguments)."""

    def action(c, *_):
        firings.append(Firing(index, scope, c.m.school_id, c.m.subject_id, rule_id))

    action.__name__ = f"rule_{index}"
    return action


def fire_durable(plan, facts, connection) -> list[Firing]:
    name = f"rollbook_{plan.policy.sha256[:12]}_{next(_run_counter)}"
    firings: list[Firing] = []
    rule_index = {c.rule.id: i for i, c in enumerate(plan.rules)}
    scope_of = {c.rule.id: c.rule.scope for c in plan.rules}
    with ruleset(name):
        for compiled in plan.rules:
            rule_id = compiled.rule.id

            action = _recorder(firings, rule_index[rule_id], scope_of[rule_id], rule_id)

            # Every condition also names the rule's scope, so a pupil fact never meets a class rule.
            when_all((m.scope == compiled.rule.scope) & _condition(compiled.predicate, rule_id, compiled.atoms))(action)
    asserted = []
    try:
        for scope, table in facts.tables.items():
            columns = [c for (rid, _), cols in facts.atom_columns.items() if scope_of[rid] == scope for c in cols]
            if not columns:
                continue
            select = ", ".join(f'"{c}"' for c in columns)
            # Per column, decided once: a plain field, or a comparison's (defined, left, right).
            layout = []
            for i, column in enumerate(columns):
                if column.endswith("_r"):
                    continue
                if column.endswith("_l"):
                    right_column = column[:-2] + "_r"
                    layout.append((i, columns.index(right_column), column, right_column,
                                   _field(column[:-2] + "_d"), _field(column), _field(right_column)))
                else:
                    layout.append((i, None, column, None, None, _field(column), None))
            cursor = connection.execute(f"SELECT school_id, subject_id, {select} FROM {table}")
            for n, row in enumerate(cursor.fetchall()):
                fact = {"fact_key": f"{scope}:{n}", "scope": scope, "school_id": row[0], "subject_id": row[1]}
                values = row[2:]
                for i, j, column, right_column, defined_field, field, right_field in layout:
                    value = values[i]
                    if j is None:
                        fact[field] = 0 if value is None else _exact(column, value)
                        continue
                    right = values[j]
                    defined = value is not None and right is not None
                    fact[defined_field] = 1 if defined else 0
                    fact[field] = _exact(column, value) if defined else 0
                    fact[right_field] = _exact(right_column, right) if defined else 0
                try:
                    assert_fact(name, fact)
                except Exception as exc:  # MessageNotHandledException: no rule matched this subject
                    if type(exc).__name__ != "MessageNotHandledException":
                        raise
                    continue
                asserted.append(fact)
    finally:
        for fact in asserted:
            try:
                retract_fact(name, fact)
            except Exception as exc:
                if type(exc).__name__ != "MessageNotHandledException":
                    raise
    return sorted(set(firings))
