"""Hand-computed evaluation tests: the national rules at their edges and the counting rules
behind them. Every expected number here was counted by hand from the test calendar in
tests/registers.py (2025/26: autumn opens Wed 3 Sep, half term 27-31 Oct, Christmas
20 Dec - 4 Jan, spring opens Mon 5 Jan)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction, action_id
from engine.api import RollbookError

from .evaluation import ENGINES, evaluate_register, fired, measure
from .registers import RegisterBuilder, open_days

NATIONAL = Path(__file__).resolve().parent.parent / "policies" / "national.yaml"


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, policy: Path = NATIONAL, prior=None, engine="builtin"):
    return evaluate_register(policy, builder, tmp_path, as_of, prior, engine)


# ---- persistent and severe absence ---------------------------------------------------------

# 95 open days from 3 Sep 2025 = 190 possible sessions; 19 absent sessions = exactly 10.0%.
AUTUMN_START = date(2025, 9, 3)
DAY_95 = open_days(AUTUMN_START, date(2026, 3, 27))[94]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent_sessions, persistent", [(18, False), (19, True), (20, True)])
def test_persistent_absence_edges(tmp_path, engine, absent_sessions, persistent):
    b = RegisterBuilder().pupil("P1")
    b.present("P1", AUTUMN_START, DAY_95)
    b.sessions("P1", date(2025, 9, 8), absent_sessions, "I")
    actions = run(b, tmp_path, DAY_95, engine=engine)
    pa = fired(actions, "persistent-absence")
    assert ("P1" in pa) is persistent
    if persistent:
        m = measure(pa["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (absent_sessions, 190)
        assert m["window"]["start"] == "2025-09-03" and m["window"]["end"] == DAY_95.isoformat()


def test_exactly_ninety_percent_attendance_is_persistent_absence(tmp_path):
    # 171 of 190 sessions attended: attendance exactly 90.0%, absence exactly 10.0%.
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, DAY_95)
    b.sessions("P1", date(2025, 9, 8), 19, "O")
    actions = run(b, tmp_path, DAY_95)
    [flag, _] = fired(actions, "persistent-absence")["P1"]
    assert flag["evidence"]["measures"][0]["value"] == "10.0%"
    assert "10.0% (19 of 190 possible sessions)" in flag["reason"]


@pytest.mark.parametrize("absent_sessions, severe", [(9, False), (10, True), (11, True)])
def test_severe_absence_edges(tmp_path, absent_sessions, severe):
    # 10 open days (3-16 Sep) = 20 possible sessions; 10 absent = exactly 50%.
    as_of = open_days(AUTUMN_START, date(2025, 9, 30))[9]
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", AUTUMN_START, absent_sessions, "G")
    actions = run(b, tmp_path, as_of)
    assert ("P1" in fired(actions, "severe-absence")) is severe


# ---- what counts as a possible session --------------------------------------------------------

@pytest.mark.parametrize("code", ["X", "Y1", "Y4", "Y7", "Z", "#", "D"])
def test_not_possible_codes_are_left_out_of_every_rate(tmp_path, code):
    # 20 sessions: 16 present, 2 illness, 2 coded `code`. Possible = 18, absence = 2/18 = 11.1%.
    as_of = open_days(AUTUMN_START, date(2025, 9, 30))[9]
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.day("P1", date(2025, 9, 10), "I").day("P1", date(2025, 9, 11), code)
    actions = run(b, tmp_path, as_of)
    m = measure(fired(actions, "persistent-absence")["P1"][0], "absence this academic year")
    assert (m["numerator"], m["denominator"]) == (2, 18)


def test_late_after_register_closed_counts_as_unauthorised(tmp_path):
    # 10 U sessions in the last 10 school weeks meet the penalty threshold; L would not.
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("U1").pupil("L1")
    for p in ("U1", "L1"):
        b.present(p, AUTUMN_START, as_of)
    for d, s in [(d, "AM") for d in open_days(date(2025, 9, 15), as_of)[:10]]:
        b.mark("U1", d, s, "U", minutes_late=40)
        b.mark("L1", d, s, "L", minutes_late=10)
    actions = run(b, tmp_path, as_of)
    assert set(fired(actions, "penalty-notice-threshold")) == {"U1"}


def test_code_n_does_not_count_towards_the_penalty_threshold_by_default(tmp_path):
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 9, 15), 10, "N")
    assert "P1" not in fired(run(b, tmp_path, as_of), "penalty-notice-threshold")


# ---- the penalty-notice threshold and its rolling window --------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sessions, meets", [(9, False), (10, True), (11, True)])
def test_penalty_threshold_edges(tmp_path, engine, sessions, meets):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 17), sessions, "G")
    actions = run(b, tmp_path, as_of, engine=engine)
    got = fired(actions, "penalty-notice-threshold")
    assert ("P1" in got) is meets
    if meets:
        action = got["P1"][0]
        assert action["verb"] == "consider_penalty_notice" and action["advisory"] is True
        counted = measure(action, "sessions coded penalty_codes in the last penalty_window school weeks")
        assert len(counted["sessions"]) == sessions and all(s["code"] == "G" for s in counted["sessions"])


@pytest.mark.parametrize("first_day, counts", [
    # as of Fri 16 Jan 2026 the last 10 school weeks are the weeks of 12 Jan, 5 Jan, 15 Dec,
    # 8 Dec, 1 Dec, 24 Nov, 17 Nov, 10 Nov, 3 Nov and 20 Oct: the half-term week (27 Oct) and
    # the Christmas holiday are skipped. Monday 20 Oct is the first day in; Friday 17 Oct is out.
    (date(2025, 10, 20), True),
    (date(2025, 10, 17), False),
])
def test_ten_school_weeks_span_half_term_and_christmas(tmp_path, first_day, counts):
    as_of = date(2026, 1, 16)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.day("P1", first_day, "O")  # 2 sessions
    b.sessions("P1", date(2025, 12, 15), 8, "G")  # 8 sessions in the last week of autumn
    actions = run(b, tmp_path, as_of)
    got = fired(actions, "penalty-notice-threshold")
    assert ("P1" in got) is counts
    if counts:
        window = measure(got["P1"][0], "sessions coded penalty_codes in the last penalty_window school weeks")["window"]
        assert (window["start"], window["end"]) == ("2025-10-20", "2026-01-16")


@pytest.mark.parametrize("first_day, counts", [
    # as of Fri 12 Sep 2025 the last 10 school weeks reach back over the summer holiday into
    # 2024/25: weeks of 8 Sep, 1 Sep, 21 Jul, 14 Jul, 7 Jul, 30 Jun, 23 Jun, 16 Jun, 9 Jun, 2 Jun.
    (date(2025, 6, 2), True),
    (date(2025, 5, 23), False),
])
def test_ten_school_weeks_span_the_academic_year_boundary(tmp_path, first_day, counts):
    as_of = date(2025, 9, 12)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 4, 22), as_of)
    b.day("P1", first_day, "G")
    b.sessions("P1", date(2025, 9, 8), 8, "G")
    assert ("P1" in fired(run(b, tmp_path, as_of), "penalty-notice-threshold")) is counts


def test_third_notice_within_three_years_takes_the_alternative_action(tmp_path):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 17), 10, "G")

    def prior(*days):
        return [PriorAction("penalty-notice-threshold", "consider_penalty_notice", "pupil", "P1", "", d) for d in days]

    two_recent = run(b, tmp_path, as_of, prior=prior(date(2023, 12, 1), date(2025, 3, 14)))
    [alternative] = fired(two_recent, "penalty-notice-threshold")["P1"]
    assert alternative["verb"] == "refer_local_authority" and alternative["alternative"] is True
    assert alternative["evidence"]["limit"]["prior"] == ["2023-12-01", "2025-03-14"]
    # One of the two notices is more than three years old: a second notice is still possible.
    one_old = run(b, tmp_path, as_of, prior=prior(date(2022, 11, 28), date(2025, 3, 14)))
    [notice] = fired(one_old, "penalty-notice-threshold")["P1"]
    assert notice["verb"] == "consider_penalty_notice" and notice["alternative"] is False
    # A dismissed prior action does not count.
    dismissed = prior(date(2023, 12, 1)) + [PriorAction("penalty-notice-threshold", "consider_penalty_notice", "pupil",
                                                        "P1", "", date(2025, 3, 14), status="dismissed")]
    [notice] = fired(run(b, tmp_path, as_of, prior=dismissed), "penalty-notice-threshold")["P1"]
    assert notice["verb"] == "consider_penalty_notice"


def test_cooldown_stops_the_same_sessions_being_counted_twice(tmp_path):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 17), 10, "G")
    prior = [PriorAction("penalty-notice-threshold", "consider_penalty_notice", "pupil", "P1", "", date(2025, 11, 21))]
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=prior), "penalty-notice-threshold")


# ---- pupils on roll ---------------------------------------------------------------------------

def test_mid_year_joiner_counts_only_from_joining(tmp_path):
    # Joined 5 Jan 2026; Z (not yet on roll) before. 10 open days to 16 Jan, 2 days absent.
    as_of = date(2026, 1, 16)
    b = RegisterBuilder().pupil("J1", joined_on=date(2026, 1, 5))
    b.present("J1", date(2026, 1, 5), as_of)
    b.days("J1", open_days(date(2025, 12, 15), date(2025, 12, 19)), "Z")
    b.days("J1", [date(2026, 1, 7), date(2026, 1, 8)], "I")
    m = measure(fired(run(b, tmp_path, as_of), "persistent-absence")["J1"][0], "absence this academic year")
    assert (m["numerator"], m["denominator"]) == (4, 20)


def test_a_pupil_who_has_left_is_not_evaluated(tmp_path):
    b = RegisterBuilder().pupil("L1", left_on=date(2025, 12, 19))
    b.present("L1", AUTUMN_START, date(2025, 12, 19))
    b.days("L1", open_days(date(2025, 12, 1), date(2025, 12, 19)), "O")
    assert "L1" in fired(run(b, tmp_path, date(2025, 12, 19)), "persistent-absence")
    assert run(b, tmp_path, date(2026, 1, 16)) == []


SCOPES = """\
rollbook: 1
id: scopes
title: Who each pupil scope evaluates
version: "1"
effective_from: 2025-09-01
rules:
  - {id: any-pupil, title: any pupil, source: x, when: "sessions ever >= 0", then: [{flag: {flag: pupil}}]}
  - {id: any-leaver, title: any leaver, source: x, scope: leaver, when: "sessions ever >= 0", then: [{flag: {flag: leaver}}]}
  - id: leaver-absent
    title: a leaver with a day of O in their time on roll (a run and an attribute, as in a pupil rule)
    source: x
    scope: leaver
    when: longest run of sessions coded {O} ever >= 2 and pupil.year_group = "3"
    then: [{flag: {flag: leaver-absent}}]
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_who_the_pupil_and_leaver_scopes_evaluate(tmp_path, engine):
    # As of Fri 14 Nov 2025 (docs/semantics.md, On roll). A condition true for every subject shows
    # the population: pupil scope is on roll that day; leaver scope is a recorded leave date (past,
    # today or ahead) and joined by that day. LEFT's O day on Fri 24 Oct, its last day, is a run of
    # 2 sessions: the marks of a leaver are those while on roll.
    policy = tmp_path / "scopes.yaml"
    policy.write_text(SCOPES)
    b = RegisterBuilder()
    pupils = {  # id: (joined_on, left_on, a pupil subject, a leaver subject)
        "STAYING": (None, None, True, False),
        "LEFT": (AUTUMN_START, date(2025, 10, 24), False, True),
        "LEFT_TODAY": (None, date(2025, 11, 14), True, True),
        "LEAVING": (AUTUMN_START, date(2025, 12, 19), True, True),
        "JOINING": (date(2025, 11, 17), date(2025, 12, 19), False, False),
        "JOINING_TO_STAY": (date(2025, 11, 17), None, False, False),
    }
    for pid, (joined, left, _, _) in pupils.items():
        b.pupil(pid, joined_on=joined, left_on=left)
    b.present("LEFT", AUTUMN_START, date(2025, 10, 24)).day("LEFT", date(2025, 10, 24), "O")
    actions = run(b, tmp_path, date(2025, 11, 14), policy=policy, engine=engine)
    assert set(fired(actions, "any-pupil")) == {p for p, v in pupils.items() if v[2]}
    assert set(fired(actions, "any-leaver")) == {p for p, v in pupils.items() if v[3]}
    assert set(fired(actions, "leaver-absent")) == {"LEFT"}
    assert {a["subject"]["kind"] for a in actions} == {"pupil"}


# ---- determinism and bad input ----------------------------------------------------------------

def test_the_same_inputs_give_the_same_actions_with_the_same_ids(tmp_path):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder()
    for n in range(6):
        b.pupil(f"P{n}").present(f"P{n}", AUTUMN_START, as_of)
        b.sessions(f"P{n}", date(2025, 11, 3 + n), 4 * n, "G")
    first, second = run(b, tmp_path, as_of), run(b, tmp_path, as_of)
    assert first and json.dumps(first) == json.dumps(second)
    assert len({a["id"] for a in first}) == len(first)


def test_each_action_id_is_action_id_of_what_the_action_is(tmp_path):
    # build_actions assembles the id's key from parts worked out once per rule; it must be the
    # key action_id defines. Pupil ids with quotes and non-ASCII letters test the JSON escaping.
    as_of = date(2025, 11, 28)
    b = RegisterBuilder()
    for n, pupil in enumerate(["P0", 'P"1', "P\u00e92"]):
        b.pupil(pupil).present(pupil, AUTUMN_START, as_of)
        b.sessions(pupil, date(2025, 11, 3 + n), 12 + 4 * n, "G")
    actions = run(b, tmp_path, as_of)
    assert {a["subject"]["id"] for a in actions} >= {"P0", 'P"1', "P\u00e92"}
    positions: dict = {}
    for a in actions:
        key = (a["rule"], a["subject"]["school_id"], a["subject"]["id"])
        position = positions[key] = positions.get(key, -1) + 1  # the n-th action of one firing
        assert a["id"] == action_id(a["policy"], a["rule"], a["subject"], as_of, position, a["verb"], a["params"])


def test_a_bad_as_of_date_is_an_error_not_a_traceback(tmp_path):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, date(2025, 9, 30))
    with pytest.raises(RollbookError, match="YYYY-MM-DD"):
        run(b, tmp_path, "2025-13-01")
