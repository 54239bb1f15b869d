"""Hand-computed edge tests for every rule policies/burton-hathow.yaml defines itself:
formal-meeting, first-day-call, additional-information-run, additional-information-term,
pa-attendance-officer-meeting, la-termly-return, leave-request-bar, escalation-after-one-term,
attendance-target and its override of penalty-notice-threshold (and that notice-to-improve is
switched off).

Every number was counted by hand on the test calendar of tests/registers.py. 2025/26: autumn opens
Wed 3 Sep 2025 (3 days that week), half term Mon 27 - Fri 31 Oct, autumn closes Fri 19 Dec, spring
opens Mon 5 Jan 2026, spring half term 16-20 Feb. Open days from 3 Sep: 38 to Fri 24 Oct, 73 to
Fri 19 Dec, 103 to Fri 13 Feb. Every open day has two possible sessions when the pupil is marked.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure
from .registers import RegisterBuilder, open_days

POLICY = Path(__file__).resolve().parent.parent / "policies" / "burton-hathow.yaml"
AUTUMN_START = date(2025, 9, 3)
# 95 open days from Wed 3 Sep 2025: 73 in autumn + 22 from Mon 5 Jan = Tue 3 Feb 2026; 190 sessions.
DAY_95 = date(2026, 2, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine="builtin"):
    return evaluate_register(POLICY, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, on: date, subject: str = "P1", kind: str = "pupil", **kw) -> PriorAction:
    return PriorAction(rule, verb, kind, subject, "", on, **kw)


def test_day_95_is_the_95th_open_day():
    assert len(open_days(AUTUMN_START, DAY_95)) == 95


# ---- formal-meeting: attendance this academic year below 85% (strictly) ----------------------------

FORMAL_AS_OF = date(2026, 2, 10)  # 100 open days from 3 Sep: 73 autumn + 27 (5 Jan - 10 Feb) = 200 sessions


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent, attending, acts", [
    (31, 169, True),   # 169 / 200 = 84.5%: below 85%
    (30, 170, False),  # 170 / 200 = 85.0% exactly: not below
    (29, 171, False),  # 171 / 200 = 85.5%
])
def test_formal_meeting_edges(tmp_path, engine, absent, attending, acts):
    assert len(open_days(AUTUMN_START, FORMAL_AS_OF)) == 100
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, FORMAL_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), absent, "I")
    got = fired(run(b, tmp_path, FORMAL_AS_OF, engine=engine), "formal-meeting")
    assert ("P1" in got) is acts
    if acts:
        notify, meeting = got["P1"]
        assert notify["verb"] == "notify" and notify["params"]["role"] == "attendance_officer"
        assert meeting["verb"] == "hold_meeting" and meeting["params"]["kind"] == "formal"
        assert meeting["advisory"] is False
        m = measure(meeting, "attendance this academic year")
        assert (m["numerator"], m["denominator"], m["value"]) == (attending, 200, "84.5%")
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2026-02-10")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("last, acts", [
    (date(2025, 10, 1), False),  # a meeting already this academic year: once per academic year
    (date(2025, 7, 10), True),   # last academic year's meeting does not count
])
def test_formal_meeting_once_per_academic_year(tmp_path, engine, last, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, FORMAL_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), 31, "I")  # 84.5%
    ledger = [prior("formal-meeting", "hold_meeting", last)]
    assert ("P1" in fired(run(b, tmp_path, FORMAL_AS_OF, prior=ledger, engine=engine), "formal-meeting")) is acts


def test_formal_meeting_has_no_minimum_number_of_sessions(tmp_path):
    # Reading: no minimum. As of Thu 4 Sep 2025 (the 2nd day): 4 sessions, one I: 3/4 = 75%: acts.
    # A pupil with no possible sessions (X, not of compulsory school age) is undefined: no action.
    as_of = date(2025, 9, 4)
    b = RegisterBuilder().pupil("EARLY").present("EARLY", AUTUMN_START, as_of).mark("EARLY", as_of, "PM", "I")
    b.pupil("NONE").days("NONE", [AUTUMN_START, as_of], "X")
    got = fired(run(b, tmp_path, as_of), "formal-meeting")
    assert set(got) == {"EARLY"}
    m = measure(got["EARLY"][0], "attendance this academic year")
    assert (m["numerator"], m["denominator"]) == (3, 4)


# ---- first-day-call: an N on the as-of school day --------------------------------------------------

@pytest.mark.parametrize("n_sessions, acts", [(0, False), (1, True), (2, True)])
def test_first_day_call_edges(tmp_path, n_sessions, acts):
    # As of Wed 12 Nov: the last 1 school day is 12 Nov; 0, 1 (AM) or 2 N sessions that day.
    as_of = date(2025, 11, 12)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 10), as_of)
    for session in ("AM", "PM")[:n_sessions]:
        b.mark("P1", as_of, session, "N")
    got = fired(run(b, tmp_path, as_of), "first-day-call")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "attendance_officer"
        m = measure(action, "sessions coded {N} in the last 1 school days")
        assert m["value"] == str(n_sessions) and (m["window"]["start"], m["window"]["end"]) == ("2025-11-12", "2025-11-12")


def test_first_day_call_follows_up_every_day_of_an_absence(tmp_path):
    # Reading: "will always follow up any absences": N on Mon 10, Tue 11 and Wed 12 Nov; calls were
    # made on 10 and 11 Nov (1 school day apart: the cooldown of 1 has passed): called again on 12 Nov.
    # OLD: an N on Tue 11 Nov only is not today's.
    as_of = date(2025, 11, 12)
    b = RegisterBuilder().pupil("P1").pupil("OLD")
    b.days("P1", open_days(date(2025, 11, 10), as_of), "N")
    b.present("OLD", date(2025, 11, 10), as_of).day("OLD", date(2025, 11, 11), "N")
    ledger = [prior("first-day-call", "notify", date(2025, 11, 10)), prior("first-day-call", "notify", date(2025, 11, 11))]
    assert set(fired(run(b, tmp_path, as_of, prior=ledger), "first-day-call")) == {"P1"}


# ---- additional-information-run: more than 6 consecutive sessions coded I, G, N, O or U ------------

RUN_SESSIONS = "current run of sessions coded info_request_codes ever"
@pytest.mark.parametrize("start, session_count, acts", [
    # Runs ending Thu 13 Nov PM: Tue 11 AM - Thu 13 PM = 6 sessions (3 school days): not more than 6;
    # Mon 10 PM - Thu 13 = 7 sessions; Mon 10 AM - Thu 13 = 8. A run starting on Monday afternoon
    # starts on Mon 10 Nov.
    ((date(2025, 11, 11), "AM"), 6, False),
    ((date(2025, 11, 10), "PM"), 7, True),
    ((date(2025, 11, 10), "AM"), 8, True),
])
def test_additional_information_run_edges(tmp_path, start, session_count, acts):
    as_of = date(2025, 11, 13)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    sessions = [(d, s) for d in open_days(date(2025, 11, 10), as_of) for s in ("AM", "PM")]
    sessions = sessions[sessions.index(start):]
    assert len(sessions) == session_count
    for k, (d, s) in enumerate(sessions):
        b.mark("P1", d, s, "IGNOU"[k % 5])  # any mix of the five codes
    got = fired(run(b, tmp_path, as_of), "additional-information-run")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "request_evidence" and action["params"]["evidence"] == "other"
        m = measure(action, RUN_SESSIONS)
        assert (m["value"], m["run_start"]) == (str(session_count), "2025-11-10")


def test_additional_information_run_leaves_out_known_absences(tmp_path):
    # Reading: absences the school already approved or knows about are not asked about. Mon 10 AM -
    # Thu 13 PM is 8 absent sessions, but Tue 11 PM is C (leave granted): the run after it is
    # 12 AM - 13 PM = 4 sessions. M (appointment) likewise.
    as_of = date(2025, 11, 13)
    b = RegisterBuilder()
    for pid, code in [("C", "C"), ("M", "M")]:
        b.pupil(pid).present(pid, date(2025, 11, 3), as_of)
        b.days(pid, open_days(date(2025, 11, 10), as_of), "I").mark(pid, date(2025, 11, 11), "PM", code)
    assert fired(run(b, tmp_path, as_of), "additional-information-run") == {}


@pytest.mark.parametrize("absent_days, as_of, acts", [
    # The rule acted on Thu 13 Nov for a run starting Mon 10 Nov AM.
    # Run continues to Mon 17 Nov: it started on Mon 10 Nov, before the action: not again.
    (open_days(date(2025, 11, 10), date(2025, 11, 17)), date(2025, 11, 17), False),
    # Run continues to Wed 19 Nov, 4 school days after the action (14, 17, 18, 19 Nov): still the
    # same run: not again.
    (open_days(date(2025, 11, 10), date(2025, 11, 19)), date(2025, 11, 19), False),
    # Present Fri 14 Nov, a new run Mon 17 - Thu 20 Nov (8 sessions) that started after the
    # action: asked again.
    (open_days(date(2025, 11, 10), date(2025, 11, 13)) + open_days(date(2025, 11, 17), date(2025, 11, 20)),
     date(2025, 11, 20), True),
])
def test_additional_information_run_once_per_run(tmp_path, absent_days, as_of, acts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of).days("P1", absent_days, "O")
    ledger = [prior("additional-information-run", "request_evidence", date(2025, 11, 13))]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "additional-information-run")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], RUN_SESSIONS)
        assert (m["value"], m["run_start"]) == ("8", "2025-11-17")


def test_additional_information_run_same_run_across_not_possible_days(tmp_path):
    # I Mon 10 - Thu 13 Nov (8 sessions): asked on Thu 13 Nov. D (at the other school, not a
    # possible session) Fri 14 - Thu 20 Nov, I again Fri 21 Nov: the same run (10 sessions, 5
    # whole days). School days since the action: 14, 17-21 Nov = 6 >= 5, cooldown 6 >= 4.
    as_of = date(2025, 11, 21)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.days("P1", open_days(date(2025, 11, 10), date(2025, 11, 13)), "I")
    b.days("P1", open_days(date(2025, 11, 14), date(2025, 11, 20)), "D")
    b.day("P1", as_of, "I")
    ledger = [prior("additional-information-run", "request_evidence", date(2025, 11, 13))]
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=ledger), "additional-information-run")


# ---- additional-information-term: more than 20 sessions coded I, G, N, O, U this term ------------

TERM = "sessions coded info_request_codes this term"


@pytest.mark.parametrize("sessions, acts", [(20, False), (21, True), (22, True)])
def test_additional_information_term_edges(tmp_path, sessions, acts):
    # As of Fri 12 Dec (autumn term: 3 Sep - 12 Dec). 10 sessions Mon 8 - Fri 12 Sep (first half)
    # and 10, 11 or 12 from Mon 17 Nov (second half): one term, both halves.
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.code_sessions("P1", date(2025, 9, 8), 10, "I")
    b.code_sessions("P1", date(2025, 11, 17), sessions - 10, "G")
    got = fired(run(b, tmp_path, as_of), "additional-information-term")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], TERM)
        assert m["value"] == str(sessions) and len(m["sessions"]) == sessions
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2025-12-12")


def test_additional_information_term_counts_only_listed_codes_in_this_term(tmp_path):
    b = RegisterBuilder()
    # KNOWN: 20 I and 2 M sessions this term: 20 counted (M left out): not more than 20.
    as_of = date(2025, 12, 12)
    b.pupil("KNOWN").present("KNOWN", AUTUMN_START, as_of)
    b.code_sessions("KNOWN", date(2025, 11, 17), 20, "I").day("KNOWN", date(2025, 12, 1), "M")
    # LAST: 22 O sessions Mon 17 - Wed 26 Nov: more than 20 in the autumn term (acts as of 12 Dec);
    # as of Fri 16 Jan 2026 (spring term) with 6 more from Mon 12 Jan: 6 this term, no action.
    b.pupil("LAST").present("LAST", AUTUMN_START, date(2026, 1, 16))
    b.code_sessions("LAST", date(2025, 11, 17), 22, "O").code_sessions("LAST", date(2026, 1, 12), 6, "O")
    assert set(fired(run(b, tmp_path, as_of), "additional-information-term")) == {"LAST"}
    assert "LAST" not in fired(run(b, tmp_path, date(2026, 1, 16)), "additional-information-term")


@pytest.mark.parametrize("last, acts", [(date(2025, 12, 1), False), (date(2025, 7, 22), True)])
def test_additional_information_term_once_per_term(tmp_path, last, acts):
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 11, 17), 21, "I")
    ledger = [prior("additional-information-term", "request_evidence", last)]
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "additional-information-term")) is acts


# ---- pa-attendance-officer-meeting: absence this academic year >= 10% -------------------------------

@pytest.mark.parametrize("absent, acts", [
    (18, False),  # 18 / 190 = 9.5%
    (19, True),   # 19 / 190 = 10.0% exactly: persistent absence
    (20, True),   # 20 / 190 = 10.5%
])
def test_pa_attendance_officer_meeting_edges(tmp_path, absent, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, DAY_95)
    b.code_sessions("P1", date(2025, 9, 8), absent, "I")
    got = fired(run(b, tmp_path, DAY_95), "pa-attendance-officer-meeting")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "hold_meeting" and action["params"]["kind"] == "informal"
        m = measure(action, "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (absent, 190)


@pytest.mark.parametrize("last, acts", [(date(2025, 11, 3), False), (date(2025, 7, 22), True)])
def test_pa_attendance_officer_meeting_once_per_academic_year(tmp_path, last, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, DAY_95).code_sessions("P1", date(2025, 9, 8), 19, "I")
    ledger = [prior("pa-attendance-officer-meeting", "hold_meeting", last)]
    assert ("P1" in fired(run(b, tmp_path, DAY_95, prior=ledger), "pa-attendance-officer-meeting")) is acts


# ---- la-termly-return: persistent absence, or >= 20 unauthorised sessions this year; once a term ----

@pytest.mark.parametrize("absent, acts", [(18, False), (19, True), (20, True)])
def test_la_termly_return_persistent_absence_edges(tmp_path, absent, acts):
    # Authorised absence only (I), so the unauthorised half is 0: 18, 19, 20 of 190 sessions.
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, DAY_95).code_sessions("P1", date(2025, 9, 8), absent, "I")
    got = fired(run(b, tmp_path, DAY_95), "la-termly-return")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (absent, 190)
        assert measure(got["P1"][0], "unauthorised sessions this academic year")["value"] == "0"


# 120 open days from 3 Sep 2025: 73 (autumn) + 30 (5 Jan - 13 Feb) + 17 (23 Feb - Tue 17 Mar) = 240
# sessions, so up to 23 absent sessions stay below 10% absence.
UNAUTH_AS_OF = date(2026, 3, 17)


@pytest.mark.parametrize("unauthorised, acts", [
    (19, False),  # 19 / 240 = 7.9% absence, 19 unauthorised
    (20, True),   # 20 unauthorised (absence 8.3%)
    (21, True),   # 21 unauthorised (absence 8.75%)
])
def test_la_termly_return_unauthorised_edges(tmp_path, unauthorised, acts):
    assert len(open_days(AUTUMN_START, UNAUTH_AS_OF)) == 120
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, UNAUTH_AS_OF)
    b.code_sessions("P1", date(2025, 10, 6), unauthorised, "O")
    got = fired(run(b, tmp_path, UNAUTH_AS_OF), "la-termly-return")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "inform_local_authority"
        assert measure(action, "unauthorised sessions this academic year")["value"] == str(unauthorised)
        m = measure(action, "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (unauthorised, 240)


def test_la_termly_return_counts_n_as_unauthorised(tmp_path):
    # Reading: "a return the school owes takes N too": 20 N sessions of 240 -> on the return.
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, UNAUTH_AS_OF).code_sessions("P1", date(2025, 10, 6), 20, "N")
    assert "P1" in fired(run(b, tmp_path, UNAUTH_AS_OF), "la-termly-return")


@pytest.mark.parametrize("last, acts", [
    (date(2026, 1, 5), False),   # already returned this (spring) term
    (date(2025, 12, 15), True),  # returned last (autumn) term: termly, so again
])
def test_la_termly_return_once_per_term(tmp_path, last, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, UNAUTH_AS_OF).code_sessions("P1", date(2025, 10, 6), 20, "O")
    ledger = [prior("la-termly-return", "inform_local_authority", last)]
    assert ("P1" in fired(run(b, tmp_path, UNAUTH_AS_OF, prior=ledger), "la-termly-return")) is acts


# ---- leave-request-bar: any G/O/U this year, or authorised absence above 10% -----------------------

@pytest.mark.parametrize("codes, acts", [
    ([], False),
    (["G"], True),        # a single unauthorised session bars leave
    (["G", "O"], True),
    (["U"], True),        # a single U counts, as written
    (["N"], False),       # a pending N is not yet unauthorised
])
def test_leave_request_bar_unauthorised_edges(tmp_path, codes, acts):
    # As of Fri 19 Sep: 13 open days (3-5, 8-12, 15-19 Sep), 26 sessions.
    as_of = date(2025, 9, 19)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    for code, (d, s) in zip(codes, [(date(2025, 9, 10), "AM"), (date(2025, 9, 10), "PM")]):
        b.mark("P1", d, s, code)
    got = fired(run(b, tmp_path, as_of), "leave-request-bar")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "flag" and action["params"]["flag"] == "leave_request_bar"
        m = measure(action, "sessions coded {G, O, U} this academic year")
        assert m["value"] == str(len(codes)) and [s["code"] for s in m["sessions"]] == codes


@pytest.mark.parametrize("authorised, acts", [
    (18, False),  # 18 / 190 = 9.5%
    (19, False),  # 19 / 190 = 10.0% exactly: not above 10%
    (20, True),   # 20 / 190 = 10.5%
])
def test_leave_request_bar_authorised_edges(tmp_path, authorised, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, DAY_95)
    b.code_sessions("P1", date(2025, 9, 8), authorised - 2, "I").day("P1", date(2025, 12, 1), "M")  # M is authorised
    got = fired(run(b, tmp_path, DAY_95), "leave-request-bar")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], "authorised absence this academic year")
        assert (m["numerator"], m["denominator"]) == (authorised, 190)


@pytest.mark.parametrize("last, acts", [(date(2025, 9, 12), False), (date(2025, 7, 1), True)])
def test_leave_request_bar_once_per_academic_year(tmp_path, last, acts):
    as_of = date(2025, 9, 19)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).mark("P1", date(2025, 9, 10), "AM", "G")
    ledger = [prior("leave-request-bar", "flag", last)]
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "leave-request-bar")) is acts


# ---- escalation-after-one-term: 12 school weeks after the PA meeting, absence still >= 10% ---------
# As of Fri 12 Dec 2025 the last 12 school weeks are the weeks of 15, 22, 29 Sep, 6, 13, 20 Oct,
# 3, 10, 17, 24 Nov, 1, 8 Dec (half term skipped): 15 Sep - 12 Dec, 60 open days, 120 sessions.

ESC_AS_OF = date(2025, 12, 12)
ESC_ABSENCE = "absence in the last escalation_school_weeks school weeks"
ESC_SINCE = "school weeks since last action by rule pa-attendance-officer-meeting"


def _escalation_register(absent: int) -> RegisterBuilder:
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, ESC_AS_OF)
    return b.code_sessions("P1", date(2025, 11, 17), absent, "O") if absent else b


@pytest.mark.parametrize("absent, acts", [
    (11, False),  # 11 / 120 = 9.2%
    (12, True),   # 12 / 120 = 10.0%
    (13, True),   # 13 / 120 = 10.8%
])
def test_escalation_absence_edges(tmp_path, absent, acts):
    # The PA meeting was on Fri 12 Sep: 12 school weeks since (the 12 weeks above, after its week).
    ledger = [prior("pa-attendance-officer-meeting", "hold_meeting", date(2025, 9, 12))]
    got = fired(run(_escalation_register(absent), tmp_path, ESC_AS_OF, prior=ledger), "escalation-after-one-term")
    assert ("P1" in got) is acts
    if acts:
        meeting, support = got["P1"]
        assert meeting["verb"] == "hold_meeting" and meeting["params"]["kind"] == "formal"
        assert support["verb"] == "offer_support"
        assert meeting["advisory"] is True and support["advisory"] is True
        m = measure(meeting, ESC_ABSENCE)
        assert (m["numerator"], m["denominator"]) == (absent, 120)
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-15", "2025-12-12")
        assert measure(meeting, ESC_SINCE)["value"] == "12"
        assert meeting["evidence"]["escalation"]["after_rule"] == "pa-attendance-officer-meeting"
        assert meeting["evidence"]["escalation"]["after_as_of"] == "2025-09-12"


@pytest.mark.parametrize("meeting_on, weeks, acts", [
    (date(2025, 9, 19), 11, False),  # school weeks after the week of 15 Sep: 22 Sep ... 8 Dec = 11
    (date(2025, 9, 12), 12, True),   # after the week of 8 Sep: 12
    (date(2025, 9, 5), 13, True),    # after the week of 1 Sep: 13
])
def test_escalation_school_weeks_edges(tmp_path, meeting_on, weeks, acts):
    ledger = [prior("pa-attendance-officer-meeting", "hold_meeting", meeting_on)]
    got = fired(run(_escalation_register(12), tmp_path, ESC_AS_OF, prior=ledger), "escalation-after-one-term")
    assert ("P1" in got) is acts
    if acts:
        assert measure(got["P1"][0], ESC_SINCE)["value"] == str(weeks)


def test_escalation_needs_the_pa_meeting_and_the_window_absence(tmp_path):
    b = RegisterBuilder()
    # NOMEET: absence 12/120 in the window but no PA meeting in the ledger: `after` holds it back
    # (its condition alone is true: "never" >= 12).
    b.pupil("NOMEET").present("NOMEET", AUTUMN_START, ESC_AS_OF).code_sessions("NOMEET", date(2025, 11, 17), 12, "O")
    # EARLY: 12 absent sessions Mon 8 - Fri 12 Sep, before the window starts on 15 Sep: 0 / 120.
    b.pupil("EARLY").present("EARLY", AUTUMN_START, ESC_AS_OF).code_sessions("EARLY", date(2025, 9, 8), 12, "O")
    # DONE: escalated already this term (Mon 1 Dec): once per term.
    b.pupil("DONE").present("DONE", AUTUMN_START, ESC_AS_OF).code_sessions("DONE", date(2025, 11, 17), 12, "O")
    # BOTH: control, meeting and absence: acts.
    b.pupil("BOTH").present("BOTH", AUTUMN_START, ESC_AS_OF).code_sessions("BOTH", date(2025, 11, 17), 12, "O")
    ledger = [prior("pa-attendance-officer-meeting", "hold_meeting", date(2025, 9, 12), pid) for pid in ("EARLY", "DONE", "BOTH")]
    ledger.append(prior("escalation-after-one-term", "hold_meeting", date(2025, 12, 1), "DONE"))
    assert set(fired(run(b, tmp_path, ESC_AS_OF, prior=ledger), "escalation-after-one-term")) == {"BOTH"}


# ---- attendance-target (school): whole-school attendance this year below 96% -------------------------
# Two pupils present Wed 3 Sep - Tue 18 Nov 2025: 50 open days (38 + 12), 100 sessions each, 200 pooled.

TARGET_AS_OF = date(2025, 11, 18)


@pytest.mark.parametrize("absent, acts", [
    (7, False),  # 193 / 200 = 96.5%
    (8, False),  # 192 / 200 = 96.0% exactly: not below
    (9, True),   # 191 / 200 = 95.5%
])
def test_attendance_target_edges(tmp_path, absent, acts):
    assert len(open_days(AUTUMN_START, TARGET_AS_OF)) == 50
    b = RegisterBuilder()
    for pid in ("P1", "P2"):
        b.pupil(pid).present(pid, AUTUMN_START, TARGET_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), 5, "I").code_sessions("P2", date(2025, 10, 6), absent - 5, "O")
    got = fired(run(b, tmp_path, TARGET_AS_OF), "attendance-target")
    assert bool(got) is acts
    if acts:
        flag, notify = got[""]
        assert flag["subject"]["kind"] == "school" and flag["verb"] == "flag"
        assert notify["params"]["role"] == "governors"
        m = measure(flag, "attendance this academic year")
        assert (m["numerator"], m["denominator"]) == (200 - absent, 200)


def test_attendance_target_pools_sessions_not_rates(tmp_path):
    # P1: 100 sessions (3 Sep - 18 Nov), 2 absent: 98%. P2 joined Mon 3 Nov: 12 open days to 18 Nov,
    # 24 sessions, 2 absent: 91.7%. The mean of the two rates is 94.8% (below 96%), but the school's
    # rate is (98 + 22) / (100 + 24) = 120 / 124 = 96.8%: not below.
    b = RegisterBuilder().pupil("P1").pupil("P2", joined_on=date(2025, 11, 3))
    b.present("P1", AUTUMN_START, TARGET_AS_OF).day("P1", date(2025, 9, 8), "I")
    b.present("P2", date(2025, 11, 3), TARGET_AS_OF).day("P2", date(2025, 11, 4), "I")
    assert fired(run(b, tmp_path, TARGET_AS_OF), "attendance-target") == {}
    # One more absent session for P2 (21 of 24): the school's rate is 119 / 124 = 95.97%: now below.
    b.mark("P2", date(2025, 11, 5), "AM", "I")
    got = fired(run(b, tmp_path, TARGET_AS_OF), "attendance-target")
    m = measure(got[""][0], "attendance this academic year")
    assert (m["numerator"], m["denominator"]) == (119, 124)


@pytest.mark.parametrize("last, acts", [(date(2025, 11, 3), False), (date(2025, 7, 22), True)])
def test_attendance_target_once_per_term(tmp_path, last, acts):
    b = RegisterBuilder()
    for pid in ("P1", "P2"):
        b.pupil(pid).present(pid, AUTUMN_START, TARGET_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), 9, "I")  # 191 / 200
    ledger = [prior("attendance-target", "flag", last, subject="", kind="school")]
    assert bool(fired(run(b, tmp_path, TARGET_AS_OF, prior=ledger), "attendance-target")) is acts


# ---- penalty-notice-threshold (override): refer to the LA; threshold, spacing, limit unchanged -----

PENALTY = "sessions coded penalty_codes in the last penalty_window school weeks"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sessions, acts", [(9, False), (10, True), (11, True)])
def test_penalty_override_edges(tmp_path, engine, sessions, acts):
    # As of Fri 28 Nov; the last 10 school weeks are 15 Sep - 28 Nov; G sessions from Mon 17 Nov.
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 11, 17), sessions, "G")
    got = fired(run(b, tmp_path, as_of, engine=engine), "penalty-notice-threshold")
    assert ("P1" in got) is acts
    if acts:
        consider, refer = got["P1"]
        assert consider["verb"] == "consider_penalty_notice" and refer["verb"] == "refer_local_authority"
        assert all(a["advisory"] is True and a["alternative"] is False for a in (consider, refer))
        assert consider["defined_in"].endswith("burton-hathow.yaml")
        m = measure(consider, PENALTY)
        assert m["value"] == str(sessions) and (m["window"]["start"], m["window"]["end"]) == ("2025-09-15", "2025-11-28")


@pytest.mark.parametrize("ledger, verbs", [
    # Cooldown of 10 school weeks: a referral on Fri 21 Nov holds this one back.
    ([date(2025, 11, 21)], []),
    # Two in three years (Fri 1 Dec 2023 and Fri 14 Mar 2025): the alternative referral only.
    ([date(2023, 12, 1), date(2025, 3, 14)], ["refer_local_authority"]),
    # One of them more than three years ago (Mon 28 Nov 2022): both actions.
    ([date(2022, 11, 28), date(2025, 3, 14)], ["consider_penalty_notice", "refer_local_authority"]),
])
def test_penalty_override_keeps_spacing_and_limit(tmp_path, ledger, verbs):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 11, 17), 10, "G")
    ledger = [prior("penalty-notice-threshold", "consider_penalty_notice", d) for d in ledger]
    actions = fired(run(b, tmp_path, as_of, prior=ledger), "penalty-notice-threshold").get("P1", [])
    assert [a["verb"] for a in actions] == verbs
    if verbs == ["refer_local_authority"]:
        assert actions[0]["alternative"] is True
        assert actions[0]["evidence"]["limit"]["prior"] == ["2023-12-01", "2025-03-14"]


def test_notice_to_improve_is_switched_off(tmp_path):
    # The national notice-to-improve would act here (threshold met, support offered this year).
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 11, 17), 10, "G")
    actions = run(b, tmp_path, as_of, prior=[prior("escalation-after-one-term", "offer_support", date(2025, 10, 1))])
    assert "P1" in fired(actions, "penalty-notice-threshold")
    assert fired(actions, "notice-to-improve") == {}
