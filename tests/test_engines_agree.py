"""durable-rules and the built-in evaluator must give identical actions: every shipped policy,
on randomised synthetic registers, on several as-of dates across the year, with and without a
ledger of prior actions."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction
from engine.api import check_policy_file, run_evaluation
from engine.register import load_register
from engine.rules import durable_available
from engine.sample import generate_sample

from .evaluation import SHIPPED_POLICIES

POLICIES = SHIPPED_POLICIES
AS_OF = [date(2025, 10, 17), date(2026, 2, 6), date(2026, 6, 26)]

pytestmark = pytest.mark.skipif(not durable_available()[0], reason=durable_available()[1])


@pytest.fixture(scope="module", params=[11, 29])
def register_folder(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"sample{request.param}")
    generate_sample(pupils=150, schools=2, seed=request.param, out_dir=folder)
    return folder


def _prior_from(actions: list[dict]) -> list[PriorAction]:
    return [PriorAction(a["rule"], a["verb"], a["subject"]["kind"], a["subject"]["id"], a["subject"].get("school_id", ""),
                        date.fromisoformat(a["as_of"]), a.get("alternative", False)) for a in actions]


@pytest.mark.parametrize("policy_path", POLICIES, ids=lambda p: p.stem)
def test_both_engines_give_the_same_actions(register_folder, policy_path):
    policy = check_policy_file(policy_path).policy
    assert policy is not None
    prior: list[PriorAction] = []
    total = 0
    for as_of in AS_OF:
        results = {}
        for engine in ("builtin", "durable"):
            loaded = load_register(register_folder)
            assert loaded.register is not None, loaded.problems
            results[engine] = run_evaluation(policy, loaded.register, as_of, prior, engine).actions
        assert json.dumps(results["builtin"]) == json.dumps(results["durable"]), f"{policy.id} on {as_of}"
        total += len(results["builtin"])
        prior += _prior_from(results["builtin"])
    # The comparison means something only if rules actually fired.
    assert total > 0
