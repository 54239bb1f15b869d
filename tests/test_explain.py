"""`rollbook explain`: nearest misses counted by hand at the edges, the rate arithmetic against
brute force, a golden text file, agreement with `rollbook eval` for every sample pupil, errors,
and the command line end to end."""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import evaluate
from engine.explain import ExplainError, count_to_reach, explain_pupil, explain_pupils, render_text, sessions_to_reach

from .evaluation import POLICIES, checked
from .registers import RegisterBuilder, open_days

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-register"
BURTON = POLICIES / "burton-hathow.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden" / "explain"
FIRST, AS_OF = date(2025, 9, 3), date(2025, 9, 30)  # 20 open days: 40 possible sessions


def _rule(explanation: dict, rule_id: str) -> dict:
    return next(r for r in explanation["rules"] if r["rule"] == rule_id)


def _test(rule: dict) -> dict:
    """The rule's single comparison (these rules' conditions are one comparison each)."""
    assert rule["test"]["kind"] == "test"
    return rule["test"]


# ---- nearest misses at the edges, counted by hand ------------------------------------------------
# Each pupil is present every open session from 3 to 30 September 2025 (20 open days, 40 possible
# sessions) except `absent` sessions coded O from the first morning on.
#
# - penalty-notice-threshold: sessions coded G, O or U in the last 10 school weeks >= 10
# - additional-information-term: sessions coded I, G, N, O or U this term > 20 (strict)
# - persistent-absence: absence this academic year >= 10% (non-strict)
#     3 of 40 = 7.5%: (3 + k) / (40 + k) >= 10% <=> 90k >= 100 <=> k >= 2 (4 of 41 is 9.76%)
#     4 of 40 = 10% exactly: met
# - formal-meeting: attendance this academic year < 85% (strict)
#     34 of 40 = 85% exactly: not met; 34 / (40 + k) < 85% <=> k > 0: 1 more absent session
#     35 of 40 = 87.5%: 3500 < 85(40 + k) <=> k > 1.18: 2 (35 of 41 is 85.37%, not below)
#     33 of 40 = 82.5%: met
CASES = [
    # (rule, absent sessions, fired, sessions still needed, words in the nearest miss)
    ("penalty-notice-threshold", 9, False, 1, "1 more session coded G, O or U in the last 10 school weeks"),
    ("penalty-notice-threshold", 10, True, None, None),
    ("penalty-notice-threshold", 11, True, None, None),
    ("penalty-notice-threshold", 8, False, 2, "2 more sessions coded G, O or U in the last 10 school weeks"),
    ("additional-information-term", 19, False, 2, "would make it 21, which is above 20"),
    ("additional-information-term", 20, False, 1, "1 more session coded I, G, N, O or U this term"),
    ("additional-information-term", 21, True, None, None),
    ("persistent-absence", 3, False, 2, "2 more absent sessions would do it (5 of 42, 11.9%); 1 would not"),
    ("persistent-absence", 4, True, None, None),
    ("persistent-absence", 5, True, None, None),
    ("formal-meeting", 6, False, 1, "it is exactly 85%; any fall would meet it"),
    ("formal-meeting", 5, False, 2, "fall below 85%, by more than 2.5 points"),
    ("formal-meeting", 7, True, None, None),
]


@pytest.fixture(scope="module")
def edge_register(tmp_path_factory) -> Path:
    assert len(open_days(FIRST, AS_OF)) == 20
    builder = RegisterBuilder()
    for absent in sorted({c[1] for c in CASES}):
        pid = f"A{absent:02d}"
        builder.pupil(pid, social_worker=False).present(pid, FIRST, AS_OF)
        builder.code_sessions(pid, FIRST, absent, "O")
    return builder.write(tmp_path_factory.mktemp("explain") / "register")


@pytest.fixture(scope="module")
def edge_explanations(edge_register) -> dict[str, dict]:
    pupils = sorted({f"A{c[1]:02d}" for c in CASES})
    return {e["pupil"]["id"]: e for e in explain_pupils(checked(BURTON), edge_register, AS_OF, [(p, None) for p in pupils])}


@pytest.mark.parametrize("rule_id, absent, fired, needed, words", CASES)
def test_nearest_miss_at_the_edge(edge_explanations, rule_id, absent, fired, needed, words):
    rule = _rule(edge_explanations[f"A{absent:02d}"], rule_id)
    assert rule["fired"] is fired
    assert rule["holds"] is fired
    test = _test(rule)
    if fired:
        assert "nearest_miss" not in rule and "miss" not in test
        return
    assert test["needed"]["sessions"] == needed
    assert words in test["miss"]
    assert rule["nearest_miss"] == [test["miss"]]


def test_counted_sessions_and_window(edge_explanations):
    rule = _rule(edge_explanations["A09"], "penalty-notice-threshold")
    measure = rule["measures"][0]
    coded = [(d.isoformat(), s) for d in open_days(FIRST, AS_OF) for s in ("AM", "PM")][:9]
    assert [(m["date"], m["session"], m["code"]) for m in measure["sessions"]] == [(d, s, "O") for d, s in coded]
    # As of Tuesday 30 September 2025 the last 10 school weeks reach back over the summer holiday.
    assert measure["window"]["end"] == "2025-09-30" and measure["window"]["includes_as_of"] is True
    # Weeks of 29, 22, 15, 8 and 1 September; 21, 14 and 7 July; 30 and 23 June.
    assert measure["window"]["start"] == "2025-06-23"
    assert "(23 June 2025 to 30 September 2025, the as-of day included)" in rule["test"]["miss"]
    # 40 possible sessions, 9 counted: room for the 1 more needed.
    assert rule["test"]["needed"]["room"] == 31


def test_a_count_the_window_cannot_reach_says_so(tmp_path):
    # As of Friday 5 September 2025 this term has 3 open days (6 sessions); more than 20 are needed.
    builder = RegisterBuilder().pupil("P1").present("P1", FIRST, date(2025, 9, 5))
    e = explain_pupil(checked(BURTON), builder.write(tmp_path / "r"), date(2025, 9, 5), "P1",
                      rule_id="additional-information-term")
    test = _test(e["rules"][0])
    assert test["needed"] == {"target": 21, "change": 21, "room": 6, "sessions": 21}
    assert "only 6 other possible sessions for this pupil as of 5 September 2025, so it cannot be met" in test["miss"]


def test_or_names_the_nearest_part_and_and_names_the_failing_parts(edge_explanations):
    # la-termly-return: absence >= 10% or unauthorised sessions this academic year >= 20.
    # 3 of 40 absent: 2 more absent sessions reach 10%; 17 more unauthorised sessions reach 20.
    rule = _rule(edge_explanations["A03"], "la-termly-return")
    assert rule["test"]["kind"] == "or" and rule["test"]["nearest"] == 0
    assert [p["needed"]["sessions"] for p in rule["test"]["parts"]] == [2, 17]
    assert rule["nearest_miss"] == [rule["test"]["parts"][0]["miss"]]
    # social-worker-unexplained-absence: pupil.social_worker is true and an N today: both fail.
    rule = _rule(edge_explanations["A03"], "social-worker-unexplained-absence")
    assert rule["test"]["kind"] == "and" and rule["test"]["failing"] == [0, 1]
    assert rule["test"]["parts"][0]["says"] == "pupil.social_worker is false; the condition needs true: it does not hold"


def test_a_condition_that_holds_but_is_stopped_by_repetition_says_why(edge_register):
    policy = checked(BURTON)
    earlier = date(2025, 9, 26)
    prior_actions = evaluate(policy, edge_register, earlier)
    prior_file = edge_register.parent / "prior.jsonl"
    prior_file.write_text("".join(json.dumps(a) + "\n" for a in prior_actions))
    e = explain_pupil(policy, edge_register, AS_OF, "A07", prior_actions=prior_file)
    rule = _rule(e, "formal-meeting")
    assert rule["holds"] is True and rule["fired"] is False
    assert rule["repetition"] == {"acts": False, "control": "once_per", "prior": ["2025-09-26"], "reason":
                                  "the rule acts at most once per academic year, and it already acted in this "
                                  "academic year on 2025-09-26"}
    assert rule["summary"].startswith("the condition is met, but the rule does not act")
    # penalty-notice-threshold: a cooldown of 10 school weeks; 26 September is 1 school week back.
    e = explain_pupil(policy, edge_register, AS_OF, "A11", prior_actions=prior_file, rule_id="penalty-notice-threshold")
    rule = e["rules"][0]
    assert rule["holds"] is True and rule["fired"] is False
    assert rule["repetition"]["control"] == "cooldown"
    assert rule["repetition"]["reason"] == ("the rule last acted for this subject on 2025-09-26, 1 school week before "
                                            "the as-of date; it acts again only 10 school weeks or more after that "
                                            "(cooldown)")


@pytest.mark.parametrize("last, acts, reason", [
    # O Mon 10 - Fri 21 Nov 2025 (the run's first day Mon 10), explained as of Fri 21 Nov.
    (date(2025, 11, 10), False, "the rule acts at most once per run, and it already acted on 2025-11-10 in the current "
                                "run, which started on 2025-11-10; it acts again only in a run that starts after that day"),
    (date(2025, 11, 7), True, None),
])
def test_once_per_run_says_when_the_run_started(tmp_path, last, acts, reason):
    from engine.act import PriorAction

    as_of = date(2025, 11, 21)
    builder = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    builder.days("P1", open_days(date(2025, 11, 10), as_of), "O")
    register = builder.write(tmp_path / "register")
    prior = [PriorAction("la-continuous-absence", "inform_local_authority", "pupil", "P1", "", last)]
    e = explain_pupil(checked(POLICIES / "national.yaml"), register, as_of, "P1", prior_actions=prior,
                      rule_id="la-continuous-absence")
    rule = e["rules"][0]
    assert rule["holds"] is True and rule["fired"] is acts
    [run] = rule["measures"]
    assert (run["value"], run["run_start"]) == ("10", "2025-11-10")
    if acts:
        assert rule["repetition"] == {"acts": True}
    else:
        assert rule["repetition"] == {"acts": False, "control": "once_per", "prior": ["2025-11-10"], "reason": reason}
        assert reason in render_text(e)
    assert "    the run started on 2025-11-10\n" in render_text(e)


# ---- the rate arithmetic against brute force ------------------------------------------------------

def _meets(n: int, d: int, op: str, t: Fraction, rise: bool, k: int) -> bool:
    top = n + k if rise else n
    rate = Fraction(100 * top, d + k)
    return {"<": rate < t, "<=": rate <= t, ">": rate > t, ">=": rate >= t}[op]


def _brute(n: int, d: int, op: str, t: Fraction, rise: bool, limit: int = 3000):
    return next((k for k in range(limit) if _meets(n, d, op, t, rise, k)), None)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.integers(1, 200), st.sampled_from(["<", "<=", ">", ">="]),
       st.integers(0, 1000).map(lambda tenths: Fraction(tenths, 10)))
def test_sessions_to_reach_is_the_smallest_k(n, d, op, t):
    n = min(n, d)
    rise = op in (">", ">=")
    k = sessions_to_reach(n, d, op, t, rise)
    found = _brute(n, d, op, t, rise)
    if found is not None:
        assert k == found
    elif k is not None:  # beyond the brute force's reach: k meets it and k - 1 does not
        assert k >= 3000 and _meets(n, d, op, t, rise, k) and not _meets(n, d, op, t, rise, k - 1)
    else:  # unreachable: not even a million added sessions meet it
        assert not _meets(n, d, op, t, rise, 10**6)


@pytest.mark.parametrize("value, op, threshold, expected", [
    (9, ">=", 10, (10, 1)), (10, ">=", 10, (10, 0)), (10, ">", 10, (11, 1)), (20, ">", 20, (21, 1)),
    (5, "<", 5, (4, -1)), (5, "<=", 4, (4, -1)), (3, "=", 5, (5, 2)), (3, ">=", Fraction(5, 2), (3, 0)),
    (3, "=", Fraction(5, 2), None),
])
def test_count_to_reach(value, op, threshold, expected):
    assert count_to_reach(value, op, Fraction(threshold)) == expected


# ---- the sample register ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_pupils() -> list[str]:
    import csv

    with open(SAMPLE / "pupils.csv", newline="") as f:
        return [row["pupil_id"] for row in csv.DictReader(f)]


def test_fired_agrees_with_eval_for_every_sample_pupil(sample_pupils):
    policy = checked(BURTON)
    as_of = date(2026, 3, 13)
    acted = {(a["rule"], a["subject"]["kind"], a["subject"]["id"]) for a in evaluate(policy, SAMPLE, as_of)}
    explanations = explain_pupils(policy, SAMPLE, as_of, [(p, None) for p in sample_pupils])
    compared = 0
    for e in explanations:
        for r in e["rules"]:
            if not r["evaluated"]:
                continue
            assert r["fired"] == ((r["rule"], r["subject"]["kind"], r["subject"]["id"]) in acted), (e["pupil"]["id"], r["rule"])
            compared += 1
    assert compared > 1000
    assert any(r["fired"] for e in explanations for r in e["rules"] if r["scope"] == "pupil")


def test_golden_text_for_a_sample_pupil(update_golden):
    # The policy's absolute path depends on where the repository is checked out.
    text = render_text(explain_pupil(checked(BURTON), SAMPLE, "2026-03-13", "P000003")).replace(f"{REPO}/", "")
    path = GOLDEN / "burton-hathow-P000003-2026-03-13.txt"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


# ---- errors ------------------------------------------------------------------------------------

def test_unknown_pupil_bad_date_unknown_rule():
    with pytest.raises(ExplainError, match="pupil P999999 is not in the register"):
        explain_pupil(checked(BURTON), SAMPLE, "2026-03-13", "P999999")
    with pytest.raises(Exception, match="--as-of must be a date written YYYY-MM-DD, not '2026-02-30'"):
        explain_pupil(checked(BURTON), SAMPLE, "2026-02-30", "P000003")
    with pytest.raises(ExplainError, match="did you mean `formal-meeting`"):
        explain_pupil(checked(BURTON), SAMPLE, "2026-03-13", "P000003", rule_id="formal-meting")
    with pytest.raises(ExplainError, match="rule notice-to-improve is disabled in burton-hathow"):
        explain_pupil(checked(BURTON), SAMPLE, "2026-03-13", "P000003", rule_id="notice-to-improve")


def test_a_pupil_not_on_roll_is_explained_as_far_as_it_can_be():
    # P000037 left on 23 April 2026: not evaluated the day after; the school's rule still is.
    with pytest.raises(ExplainError, match="not on roll on 2026-04-24: they left on 2026-04-23") as caught:
        explain_pupil(checked(BURTON), SAMPLE, "2026-04-24", "P000037")
    partial = caught.value.partial
    assert all(not r["evaluated"] for r in partial["rules"] if r["scope"] == "pupil")
    assert _rule(partial, "attendance-target")["evaluated"] is True
    assert "try --as-of 2026-04-23" in partial["pupil"]["not_on_roll"]
    # The rules about leavers are: P000037 has marks on roll in the last 10 school days and no
    # social worker, so the deletion return acts, as `rollbook eval` says on that day.
    deletion = _rule(partial, "la-deletion-return")
    assert (deletion["scope"], deletion["evaluated"], deletion["fired"]) == ("leaver", True, True)
    assert deletion["subject"] == {"kind": "pupil", "id": "P000037", "school_id": ""}
    assert _rule(partial, "social-worker-deletion")["fired"] is False
    acted = evaluate(checked(BURTON), SAMPLE, date(2026, 4, 24))
    assert [a["id"] for a in acted if a["subject"]["id"] == "P000037"] == [a["id"] for a in deletion["actions"]]


def test_a_leaver_rule_is_not_evaluated_for_a_pupil_without_a_leave_date():
    result = explain_pupil(checked(BURTON), SAMPLE, "2026-03-13", "P000003", rule_id="la-deletion-return")
    [rule] = result["rules"]
    assert (rule["evaluated"], rule["fired"]) == (False, False)
    assert rule["why_not_evaluated"].startswith("no leave date is recorded")


def test_the_same_pupil_id_at_two_schools_needs_school(tmp_path):
    from .test_multi_school import _merge

    a = RegisterBuilder().pupil("P1").present("P1", FIRST, AS_OF)
    a.code_sessions("P1", FIRST, 4, "O")
    b = RegisterBuilder().pupil("P1").present("P1", FIRST, AS_OF)
    register = _merge({"A": a.write(tmp_path / "a"), "B": b.write(tmp_path / "b")}, tmp_path / "trust")
    with pytest.raises(ExplainError, match="on the register of 2 schools \\(A, B\\)") as caught:
        explain_pupil(checked(BURTON), register, AS_OF, "P1")
    assert caught.value.usage
    at_a = explain_pupil(checked(BURTON), register, AS_OF, "P1", school_id="A", rule_id="persistent-absence")
    at_b = explain_pupil(checked(BURTON), register, AS_OF, "P1", school_id="B", rule_id="persistent-absence")
    assert (at_a["rules"][0]["fired"], at_b["rules"][0]["fired"]) == (True, False)
    with pytest.raises(ExplainError, match="not on the register of school 'C'"):
        explain_pupil(checked(BURTON), register, AS_OF, "P1", school_id="C")


# ---- the command line ---------------------------------------------------------------------------

def test_cli_end_to_end(rollbook):
    args = ["explain", "--policy", "policies/burton-hathow.yaml", "--register", "examples/sample-register",
            "--as-of", "2026-03-13", "--pupil", "P000003"]
    text = rollbook(*args, "--rule", "formal-meeting")
    assert text.returncode == 0, text.stderr
    assert "formal-meeting: does not act" in text.stdout
    assert "17 more absent sessions would do it (203 of 239, 84.9%); 16 would not." in text.stdout
    js = rollbook(*args, "--format", "json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["format"] == 1 and data["pupil"]["id"] == "P000003"
    assert {r["rule"] for r in data["rules"] if r["fired"]} == {"leave-request-bar", "attendance-target"}
    missing = rollbook(*args[:-1], "P404")
    assert missing.returncode == 1 and missing.stderr.startswith("error: pupil P404 is not in the register")
    left = rollbook(*args[:6], "2026-04-24", "--pupil", "P000037")
    assert left.returncode == 1 and "Not on roll on this date" in left.stdout and "error: pupil P000037" in left.stderr
