"""What the evaluation tests share: the rules engines available here, a policy checked once per
test session, evaluating a RegisterBuilder register, and reading actions and their evidence."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path

from engine.api import check_policy_file, evaluate, policy_files
from engine.rules import durable_available

from .registers import RegisterBuilder

POLICIES = Path(__file__).resolve().parent.parent / "policies"
# The shipped policy files, found as `rollbook check policies/` finds them (test files left out).
SHIPPED_POLICIES = sorted(policy_files([POLICIES])[0])
ENGINES = ["builtin"] + (["durable"] if durable_available()[0] else [])


@lru_cache(maxsize=None)
def checked(path: Path):
    """The checked policy at path (checked once; the policy files do not change during a run)."""
    result = check_policy_file(path)
    assert result.ok, result.diagnostics
    return result.policy


def evaluate_register(policy: Path, builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None,
                      engine: str = "builtin") -> list[dict]:
    """Write the builder's register to a fresh folder under tmp_path and evaluate the policy on it."""
    folder = builder.write(tmp_path / f"register-{len(list(tmp_path.iterdir()))}")
    return evaluate(checked(policy), folder, as_of, prior_actions=prior, rules_engine=engine)


def fired(actions, rule: str) -> dict[str, list[dict]]:
    """The actions of one rule, by subject id."""
    out: dict[str, list[dict]] = {}
    for a in actions:
        if a["rule"] == rule:
            out.setdefault(a["subject"]["id"], []).append(a)
    return out


def measure(action: dict, text: str) -> dict:
    """The evidence entry of the measure written `text` in the rule's condition."""
    return next(m for m in action["evidence"]["measures"] if m["measure"] == text)


def window(m: dict) -> tuple[str, str]:
    """A measure's window bounds as (start, end) ISO dates."""
    return m["window"]["start"], m["window"]["end"]
