"""End-to-end: `rollbook sample` and `rollbook eval` through the installed entry point, as a user
or an integrator runs them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from engine.rules import durable_available

from .evaluation import SHIPPED_POLICIES

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-register"
ACTION_SCHEMA = json.loads((REPO / "schemas" / "action.schema.json").read_text(encoding="utf-8"))
POLICIES = SHIPPED_POLICIES
AS_OF = "2026-03-13"


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def burton_actions(rollbook) -> list[dict]:
    result = rollbook("eval", "--policy", "policies/burton-hathow.yaml", "--register", SAMPLE,
                      "--as-of", AS_OF, "--rules-engine", "builtin")
    assert result.returncode == 0, result.stderr
    return _jsonl(result.stdout)


def test_eval_on_the_bundled_sample_emits_valid_actions(burton_actions):
    assert burton_actions, "the bundled sample should call for some actions"
    validator = jsonschema.Draft202012Validator(ACTION_SCHEMA)
    for action in burton_actions:
        errors = list(validator.iter_errors(action))
        assert not errors, (action["id"], errors[0].message)
        assert action["policy"] == "burton-hathow" and action["as_of"] == AS_OF
    rules = {a["rule"] for a in burton_actions}
    # Inherited rules name the national file, Burton Hathow's own rules their own file.
    assert "persistent-absence" in rules and "formal-meeting" in rules
    defined = {a["rule"]: Path(a["defined_in"]).name for a in burton_actions}
    assert defined["persistent-absence"] == "national.yaml"
    assert defined["formal-meeting"] == "burton-hathow.yaml"
    assert len({a["id"] for a in burton_actions}) == len(burton_actions)


def test_formal_meeting_evidence_agrees_with_its_threshold(burton_actions):
    for action in (a for a in burton_actions if a["rule"] == "formal-meeting"):
        m = next(m for m in action["evidence"]["measures"] if m["measure"].startswith("attendance"))
        assert m["denominator"] > 0 and 100 * m["numerator"] < 85 * m["denominator"], m


def test_eval_is_deterministic_and_writes_out(rollbook, tmp_path, burton_actions):
    out = tmp_path / "actions.jsonl"
    result = rollbook("eval", "--policy", "policies/burton-hathow.yaml", "--register", SAMPLE,
                      "--as-of", AS_OF, "--rules-engine", "builtin", "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"wrote {len(burton_actions)} actions to {out}" in result.stderr
    assert _jsonl(out.read_text(encoding="utf-8")) == burton_actions


@pytest.mark.skipif(not durable_available()[0], reason="durable-rules is not installed (Python 3.13+)")
@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.stem)
def test_both_rules_engines_give_the_same_actions_from_the_cli(rollbook, policy):
    outputs = []
    for engine in ("builtin", "durable"):
        result = rollbook("eval", "--policy", policy, "--register", SAMPLE, "--as-of", AS_OF, "--rules-engine", engine)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]


def test_csv_and_table_formats(rollbook, burton_actions):
    result = rollbook("eval", "--policy", "policies/burton-hathow.yaml", "--register", SAMPLE,
                      "--as-of", AS_OF, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == [a["id"] for a in burton_actions]
    table = rollbook("eval", "--policy", "policies/burton-hathow.yaml", "--register", SAMPLE,
                     "--as-of", AS_OF, "--format", "table")
    assert table.returncode == 0, table.stderr
    assert f"{len(burton_actions)} actions" in table.stdout
    assert "formal-meeting" in table.stdout


def test_prior_actions_change_what_is_emitted(rollbook, tmp_path, burton_actions):
    # Yesterday's actions as the ledger: rules with `repeat` controls must not act again today.
    prior = tmp_path / "prior.jsonl"
    yesterday = [dict(a, as_of="2026-03-12") for a in burton_actions]
    prior.write_text("".join(json.dumps(a) + "\n" for a in yesterday), encoding="utf-8")
    result = rollbook("eval", "--policy", "policies/burton-hathow.yaml", "--register", SAMPLE,
                      "--as-of", AS_OF, "--prior", prior)
    assert result.returncode == 0, result.stderr
    again = _jsonl(result.stdout)
    assert len(again) < len(burton_actions)
    assert {a["id"] for a in again} <= {a["id"] for a in burton_actions}


def test_sample_then_eval(rollbook, tmp_path):
    out = tmp_path / "register"
    made = rollbook("sample", "--pupils", "40", "--schools", "2", "--seed", "5", "--format", "parquet", "--out", out)
    assert made.returncode == 0, made.stderr
    assert "for 40 pupils in 2 schools" in made.stdout
    assert sorted(p.name for p in out.iterdir()) == ["calendar.parquet", "marks.parquet", "pupils.parquet"]
    result = rollbook("eval", "--policy", "policies/national.yaml", "--register", out, "--as-of", "2026-02-06")
    assert result.returncode == 0, result.stderr
    actions = _jsonl(result.stdout)
    assert {a["subject"]["kind"] for a in actions} == {"pupil"}
    again = rollbook("sample", "--pupils", "40", "--schools", "2", "--seed", "5", "--format", "parquet", "--out", out)
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize("args, code, message", [
    (["--policy", "policies/nope.yaml"], 1, "nope.yaml"),
    (["--register", "examples/no-such-register"], 1, "no-such-register"),
    (["--as-of", "2026-13-01"], 1, "YYYY-MM-DD"),
])
def test_eval_input_errors_are_messages_not_tracebacks(rollbook, args, code, message):
    base = {"--policy": "policies/burton-hathow.yaml", "--register": str(SAMPLE), "--as-of": AS_OF}
    base.update(dict(zip(args[::2], args[1::2])))
    result = rollbook("eval", *[x for kv in base.items() for x in kv])
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_eval_refuses_a_policy_with_errors(rollbook, tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (REPO / "policies" / "national.yaml").read_text(encoding="utf-8")
    bad.write_text(text.replace("absence this academic year >= persistent_absence_threshold",
                                "absence this academic year >= persistent_absense_threshold"), encoding="utf-8")
    result = rollbook("eval", "--policy", bad, "--register", SAMPLE, "--as-of", AS_OF)
    assert result.returncode == 1
    assert "persistent_absense_threshold" in result.stderr and "bad.yaml:" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_eval_says_how_many_register_problems_it_did_not_list(rollbook, tmp_path):
    from datetime import date

    from .registers import RegisterBuilder, open_days

    b = RegisterBuilder().pupil("P1")
    days = open_days(date(2025, 9, 3), date(2026, 3, 13))
    for day in days[:110]:
        b.day("P1", day, "H")  # retired in 2024: every one of these 220 marks is a problem
    folder = b.write(tmp_path / "register")
    result = rollbook("eval", "--policy", "policies/national.yaml", "--register", folder, "--as-of", AS_OF)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("marks.csv line") == 200
    assert "... and 20 more problem(s) not listed" in result.stderr


def test_table_marks_cut_columns_with_an_ellipsis():
    """A table cell too long for its column ends with an ellipsis; one that fits is padded."""
    from engine.sinks import to_table

    action = {"subject": {"kind": "pupil", "id": "P1"}, "rule": "r" * 30, "verb": "notify",
              "params": {"message": "Attendance has dropped below the threshold"}, "advisory": False,
              "reason": "Pupil P1: attendance is low."}
    row = to_table([action]).splitlines()[-1]
    assert row.startswith("P1                 " + "r" * 27 + "… notify (message=Attendance has droppe… Pupil P1")
