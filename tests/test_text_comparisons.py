"""Text attributes compared with `=`, `!=`, `is`, `is not` (with a quoted text or another text
attribute) evaluate like `in {...}`: an empty attribute makes the comparison unknown, so the rule
does not act."""

from __future__ import annotations

from datetime import date

import pytest

from engine.api import evaluate

from .evaluation import ENGINES
from .registers import RegisterBuilder

POLICY = """\
rollbook: 1
id: text-comparisons
title: Text comparisons
version: "1"
effective_from: 2025-09-01
rules:
  - {id: is-six, title: Year 6, source: "x", when: pupil.year_group = "6", then: [{flag: {flag: six}}]}
  - {id: is-not-six, title: Not year 6, source: "x", when: pupil.year_group is not "6", then: [{flag: {flag: not-six}}]}
  - {id: literal-first, title: Year 6, source: "x", when: '"6" is pupil.year_group', then: [{flag: {flag: six}}]}
  - {id: group-is-year, title: Group named as its year, source: "x", when: pupil.reg_group = pupil.year_group, then: [{flag: {flag: same}}]}
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_text_equality(tmp_path, engine):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    day = date(2025, 9, 3)
    b = RegisterBuilder()
    b.pupil("P6", year_group="6", reg_group="6A").present("P6", day, day)
    b.pupil("P5", year_group="5", reg_group="5").present("P5", day, day)
    b.pupil("PX", year_group="", reg_group="").present("PX", day, day)  # no year group recorded
    actions = evaluate(policy, b.write(tmp_path / "register"), day, rules_engine=engine)
    fired = {(a["rule"], a["subject"]["id"]) for a in actions}
    assert fired == {("is-six", "P6"), ("literal-first", "P6"), ("is-not-six", "P5"), ("group-is-year", "P5")}
