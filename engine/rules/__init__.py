"""Evaluate stage: which rules hold for which subjects, given the facts tables.

Two interchangeable engines behind one function, `fire`:

- `builtin`: each rule's predicate (negation normal form over exact integer atoms) as a SQL
  filter over the facts table, run in DuckDB. Works everywhere.
- `durable`: durable-rules (a Rete engine with a C core) evaluates the same predicates over one
  fact per subject. It imports only on Python 3.11 and 3.12; nothing outside engine.rules.durable
  imports it.

Both return the same Firings in the same order; tests hold them to it.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("builtin", "durable")


@dataclass(frozen=True, order=True)
class Firing:
    """Rule `rule_id` holds for one subject on the as-of date."""

    rule_index: int  # position of the rule in the policy, so output order follows the policy
    scope: str
    school_id: str
    subject_id: str
    rule_id: str


class RulesEngineUnavailable(Exception):
    """The requested rules engine cannot run here (e.g. durable-rules on Python 3.13+)."""


def durable_available() -> tuple[bool, str]:
    """Whether durable-rules can be imported here, and why not."""
    try:
        import durable.lang  # noqa: F401
    except Exception as exc:  # ImportError, or an undefined C symbol on Python 3.13+
        return False, f"durable-rules cannot be imported here ({type(exc).__name__}: {exc})"
    return True, ""


def fire(plan, facts, connection, engine: str = "builtin") -> list[Firing]:
    """Every (rule, subject) whose condition is true, sorted by rule order, school, subject."""
    if engine == "builtin":
        from .builtin import fire_builtin

        firings = fire_builtin(plan, facts, connection)
    elif engine == "durable":
        ok, why = durable_available()
        if not ok:
            raise RulesEngineUnavailable(why + "; use --rules-engine builtin")
        from .durable import fire_durable

        firings = fire_durable(plan, facts, connection)
    else:
        raise ValueError(f"unknown rules engine {engine!r}")
    return sorted(firings)
