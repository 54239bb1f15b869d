"""Comparisons stay exact whatever the size of their numbers: the act stage reads an atom's
cross-multiplied sides as BIGINT only when every value fits, and as HUGEINT otherwise; durable-rules,
whose numbers are doubles, refuses a value beyond 2**53 with a clear error instead of rounding."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.api import evaluate
from engine.rules import RulesEngineUnavailable

from .evaluation import ENGINES
from .registers import RegisterBuilder, open_days

# 10**17 per session: 100 sessions make 10**19, beyond a BIGINT (about 9.2 * 10**18).
POLICY = """\
rollbook: 1
id: exact
title: Exact comparisons
version: "1"
effective_from: 2025-09-01
rules:
  - {id: huge, title: Huge product, source: "x", then: [{flag: {flag: huge}}],
     when: "unauthorised sessions this academic year * 100000000000000000 >= 10000000000000000000"}
  - {id: small, title: Small numbers, source: "x", then: [{flag: {flag: small}}],
     when: "unauthorised sessions this academic year >= 99"}
"""


@pytest.mark.parametrize("sessions, fired", [(98, set()), (99, {"small"}), (100, {"small", "huge"}),
                                             (101, {"small", "huge"})])
def test_products_beyond_a_bigint_compare_exactly(tmp_path, sessions, fired):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    days = open_days(date(2025, 9, 3), date(2026, 3, 31))
    b = RegisterBuilder()
    b.pupil("P1")
    for i, day in enumerate(days):
        for session in ("AM", "PM"):
            b.mark("P1", day, session, "O" if 2 * i + (session == "PM") < sessions else "/")
    last = days[-1]
    register = b.write(tmp_path / "register")
    actions = evaluate(policy, register, last, rules_engine="builtin")
    assert {a["rule"] for a in actions} == fired
    for a in actions:
        (comparison,) = a["evidence"]["comparisons"]
        assert comparison["holds"] is True
        assert a["evidence"]["measures"][0]["value"] == str(sessions)
    if "durable" in ENGINES:
        with pytest.raises(RulesEngineUnavailable, match=r"rule huge compares a number \(\d+\) beyond 2\*\*53"):
            evaluate(policy, register, last, rules_engine="durable")
