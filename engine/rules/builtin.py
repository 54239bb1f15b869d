"""The built-in rules engine: each rule's predicate runs as one SQL filter in DuckDB."""

from __future__ import annotations

from ..metrics import predicate_sql
from . import Firing


def fire_builtin(plan, facts, connection) -> list[Firing]:
    firings: list[Firing] = []
    for index, compiled in enumerate(plan.rules):
        rule = compiled.rule
        table = facts.tables[rule.scope]
        condition = predicate_sql(compiled.predicate, rule.id, compiled.atoms)
        rows = connection.execute(f"SELECT school_id, subject_id FROM {table} WHERE {condition}").fetchall()
        firings.extend(Firing(index, rule.scope, school, subject, rule.id) for school, subject in rows)
    return firings
