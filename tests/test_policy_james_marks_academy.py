"""Hand-computed edge tests for the eight rules James Marks Academy adds to the national policy
(policies/james-marks-academy.yaml).

Every number was counted by hand from the test calendar in tests/registers.py. 2025/26: autumn
opens Wed 3 Sep; weeks of 8 Sep to 20 Oct are full (Mon-Fri); half term 27-31 Oct; autumn 2 runs
Mon 3 Nov - Fri 19 Dec. So 3 Sep - 24 Oct is 38 open days, 3 Nov - 12 Dec is 30, and a full
school week is 5 days = 10 sessions. A "school week" is a Mon-Sun week with an open session: the
half-term week of 27 Oct is not one.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure, window
from .registers import RegisterBuilder, open_days

POLICY = Path(__file__).resolve().parent.parent / "policies" / "james-marks-academy.yaml"
AUTUMN = date(2025, 9, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine: str = "builtin") -> list[dict]:
    return evaluate_register(POLICY, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, pupil: str, *days: date) -> list[PriorAction]:
    return [PriorAction(rule, verb, "pupil", pupil, "", d) for d in days]


ADJUSTED = "attendance this academic year excluding days before pupil.integration_end"


# ---- adjusted-attendance-contact (fixed id) ------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent_after, contact", [
    (1, False),  # 39/40 = 97.5%
    (2, False),  # 38/40 = 95.0% exactly: not *below* 95%
    (3, True),   # 37/40 = 92.5%
])
def test_adjusted_attendance_contact_edges(tmp_path, engine, absent_after, contact):
    # Joined Wed 3 Sep, integration_end Mon 6 Oct: 3 Sep - Fri 3 Oct (23 days) is left out.
    # From Mon 6 Oct to Fri 7 Nov: 6-24 Oct (15 days) + 3-7 Nov (5 days) = 20 days = 40 sessions.
    # During integration: 6 illness sessions (15-17 Sep) and O on Fri 3 Oct, the last day left out.
    # Actual attendance 3 Sep - 7 Nov is 43 days = 86 sessions with at least 9 absent (at most
    # 77/86 = 89.5%), so every case would be contacted on actual attendance; adjusted decides.
    # The adjusted absences start on Mon 6 Oct AM: integration_end itself is counted.
    as_of = date(2025, 11, 7)
    b = RegisterBuilder().pupil("P1", joined_on=AUTUMN, integration_end=date(2025, 10, 6))
    b.present("P1", AUTUMN, as_of)
    b.days("P1", [date(2025, 9, 15), date(2025, 9, 16), date(2025, 9, 17)], "I")
    b.day("P1", date(2025, 10, 3), "O")
    b.sessions("P1", date(2025, 10, 6), absent_after, "C")
    got = fired(run(b, tmp_path, as_of, engine=engine), "adjusted-attendance-contact")
    assert ("P1" in got) is contact
    if contact:
        assert [a["verb"] for a in got["P1"]] == ["notify", "hold_meeting", "offer_support"]
        assert all(a["advisory"] is False for a in got["P1"])
        m = measure(got["P1"][0], ADJUSTED)
        assert (m["numerator"], m["denominator"]) == (37, 40)
        assert m["window"]["end"] == "2025-11-07"


@pytest.mark.parametrize("engine", ENGINES)
def test_adjusted_attendance_contact_reading_cases(tmp_path, engine):
    # As of Fri 7 Nov 2025: 3 Sep - 7 Nov is 43 open days = 86 sessions.
    # Every pupil has 5 illness sessions this year (8 Sep, 9 Sep, 10 Sep AM): 81/86 = 94.2%.
    as_of = date(2025, 11, 7)
    b = RegisterBuilder()
    b.pupil("STILL_INTEGRATING", joined_on=AUTUMN, integration_end=date(2025, 11, 10))  # (1)
    b.pupil("ENDED_LAST_YEAR", joined_on=date(2024, 9, 4), integration_end=date(2024, 10, 7))  # (2)
    b.pupil("NO_DATE_OLD", joined_on=date(2024, 9, 4))  # (3) on roll (with marks) last year
    b.pupil("NO_DATE_NEW", joined_on=AUTUMN)  # (3) joined this year, no date recorded
    for p in b.pupils:
        b.present(p, AUTUMN, as_of)
        b.sessions(p, date(2025, 9, 8), 5, "I")
    b.present("ENDED_LAST_YEAR", date(2025, 7, 14), date(2025, 7, 22))
    b.present("NO_DATE_OLD", date(2025, 7, 14), date(2025, 7, 22))
    got = fired(run(b, tmp_path, as_of, engine=engine), "adjusted-attendance-contact")
    # (1) no possible session left after the exclusion: undefined, no contact.
    # (2) nothing of this year is left out: adjusted = actual this year = 81/86.
    # (3) no integration_end: only the pupil on roll last year is judged (81/86); a pupil who
    #     joined this year without a recorded date is never contacted.
    assert set(got) == {"ENDED_LAST_YEAR", "NO_DATE_OLD"}
    for p in ("ENDED_LAST_YEAR", "NO_DATE_OLD"):
        m = measure(got[p][0], ADJUSTED)
        assert (m["numerator"], m["denominator"]) == (81, 86)
    assert measure(got["NO_DATE_OLD"][0], "possible sessions previous academic year")["value"] == "14"  # 14-22 Jul: 7 days


@pytest.mark.parametrize("prior_day, contact", [
    (date(2025, 10, 20), False),  # contacted earlier this (autumn) term: once per term
    (date(2025, 7, 10), True),    # last contact in the summer term of 2024/25
])
def test_adjusted_attendance_contact_once_per_term(tmp_path, prior_day, contact):
    # The 92.5% register of the edge test (37 of 40 adjusted sessions).
    as_of = date(2025, 11, 7)
    b = RegisterBuilder().pupil("P1", joined_on=AUTUMN, integration_end=date(2025, 10, 6))
    b.present("P1", AUTUMN, as_of).sessions("P1", date(2025, 10, 6), 3, "C")
    actions = run(b, tmp_path, as_of, prior=prior("adjusted-attendance-contact", "notify", "P1", prior_day))
    assert ("P1" in fired(actions, "adjusted-attendance-contact")) is contact


# ---- adjusted-attendance-deterioration ------------------------------------------------------------

DETERIORATION_AS_OF = date(2025, 12, 12)


def deterioration_register(earlier: int, recent: int) -> RegisterBuilder:
    """Joined 3 Sep, integration_end Mon 8 Sep: 3-5 Sep (6 sessions, all C) are left out.
    Adjusted year to date as of Fri 12 Dec: 8 Sep - 24 Oct (35 days) + 3 Nov - 12 Dec (30 days)
    = 65 days = 130 sessions. The last 6 school weeks are 3 Nov - 12 Dec = 60 sessions (the
    half-term week is skipped). `earlier` illness sessions from Mon 15 Sep, `recent` O sessions
    from Mon 1 Dec."""
    b = RegisterBuilder().pupil("P1", joined_on=AUTUMN, integration_end=date(2025, 9, 8))
    b.present("P1", AUTUMN, DETERIORATION_AS_OF)
    b.days("P1", [date(2025, 9, 3), date(2025, 9, 4), date(2025, 9, 5)], "C")
    if earlier:
        b.sessions("P1", date(2025, 9, 15), earlier, "I")
    if recent:
        b.sessions("P1", date(2025, 12, 1), recent, "O")
    return b


@pytest.mark.parametrize("recent, deteriorated", [
    # Last 6 weeks (60 - R)/60 against the year (130 - 7 - R)/130; lower when 7R > 6 * 7.
    (5, False),  # 55/60 = 91.7% vs 118/130 = 90.8%
    (6, False),  # 54/60 = 90.0% vs 117/130 = 90.0%: equal is not lower
    (7, True),   # 53/60 = 88.3% vs 116/130 = 89.2%
    # Had the 6 integration sessions counted, R = 7 would be 53/60 vs 116/136 = 85.3%: no action.
])
def test_adjusted_attendance_deterioration_edges(tmp_path, recent, deteriorated):
    # Contact on Fri 24 Oct: school weeks after its week and up to 12 Dec are 3 Nov, 10 Nov,
    # 17 Nov, 24 Nov, 1 Dec and 8 Dec = 6 (half term skipped), so the 6-week wait is met.
    b = deterioration_register(earlier=7, recent=recent)
    actions = run(b, tmp_path, DETERIORATION_AS_OF,
                  prior=prior("adjusted-attendance-contact", "notify", "P1", date(2025, 10, 24)))
    got = fired(actions, "adjusted-attendance-deterioration")
    assert ("P1" in got) is deteriorated
    if deteriorated:
        [action] = got["P1"]
        assert action["verb"] == "refer_local_authority" and action["advisory"] is True
        recent_m = measure(action, "attendance in the last deterioration_school_weeks school weeks "
                                   "excluding days before pupil.integration_end")
        assert (recent_m["numerator"], recent_m["denominator"]) == (53, 60)
        assert window(recent_m) == ("2025-11-03", "2025-12-12")
        year_m = measure(action, ADJUSTED)
        assert (year_m["numerator"], year_m["denominator"]) == (116, 130)
        assert action["evidence"]["escalation"]["after_rule"] == "adjusted-attendance-contact"
        assert action["evidence"]["escalation"]["after_as_of"] == "2025-10-24"


@pytest.mark.parametrize("contact_day, weeks, acts", [
    (date(2025, 11, 3), 5, False),   # weeks of 10 Nov ... 8 Dec
    (date(2025, 10, 24), 6, True),   # weeks of 3 Nov ... 8 Dec (half term is not a school week)
    (date(2025, 10, 17), 7, True),   # weeks of 20 Oct, 3 Nov ... 8 Dec
    (None, None, False),             # never contacted: `after` blocks, though "never" >= 6
])
def test_adjusted_attendance_deterioration_waits_six_school_weeks_after_the_contact(tmp_path, contact_day, weeks, acts):
    b = deterioration_register(earlier=7, recent=7)  # deteriorated: 53/60 vs 116/130
    ledger = prior("adjusted-attendance-contact", "notify", "P1", contact_day) if contact_day else []
    got = fired(run(b, tmp_path, DETERIORATION_AS_OF, prior=ledger), "adjusted-attendance-deterioration")
    assert ("P1" in got) is acts
    if acts:
        since = measure(got["P1"][0], "school weeks since last action by rule adjusted-attendance-contact")
        assert since["value"] == str(weeks)


def test_adjusted_attendance_deterioration_needs_the_year_below_95(tmp_path):
    # No earlier absence, 6 recent: 54/60 = 90.0% < 124/130 = 95.4%, but the year to date is
    # not below 95%, so there is nothing to escalate.
    b = deterioration_register(earlier=0, recent=6)
    actions = run(b, tmp_path, DETERIORATION_AS_OF,
                  prior=prior("adjusted-attendance-contact", "notify", "P1", date(2025, 10, 17)))
    assert "P1" not in fired(actions, "adjusted-attendance-deterioration")


def test_adjusted_attendance_deterioration_once_per_term(tmp_path):
    b = deterioration_register(earlier=7, recent=7)
    ledger = (prior("adjusted-attendance-contact", "notify", "P1", date(2025, 10, 17))
              + prior("adjusted-attendance-deterioration", "refer_local_authority", "P1", date(2025, 12, 5)))
    assert "P1" not in fired(run(b, tmp_path, DETERIORATION_AS_OF, prior=ledger), "adjusted-attendance-deterioration")


# ---- daily-absence-call --------------------------------------------------------------------------

@pytest.mark.parametrize("n_marks, calls", [
    ([], False),
    ([(date(2025, 10, 13), "AM"), (date(2025, 10, 13), "PM")], False),  # yesterday only
    ([(date(2025, 10, 14), "PM")], True),                               # 1 today
    ([(date(2025, 10, 14), "AM"), (date(2025, 10, 14), "PM")], True),   # 2 today
])
def test_daily_absence_call_edges(tmp_path, n_marks, calls):
    # As of Tue 14 Oct 2025; the last 1 school day is 14 Oct itself.
    as_of = date(2025, 10, 14)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), as_of)
    for d, s in n_marks:
        b.mark("P1", d, s, "N")
    got = fired(run(b, tmp_path, as_of), "daily-absence-call")
    assert ("P1" in got) is calls
    if calls:
        m = measure(got["P1"][0], "sessions coded {N} in the last 1 school days")
        assert m["value"] == str(len(n_marks))
        assert window(m) == ("2025-10-14", "2025-10-14")


@pytest.mark.parametrize("as_of, prior_day, calls", [
    (date(2025, 10, 10), date(2025, 10, 9), True),    # called Thu, N again Fri: 1 school day later
    (date(2025, 10, 11), None, True),                 # Sat: the last school day is Fri 10 Oct
    (date(2025, 10, 11), date(2025, 10, 10), False),  # Sat after Friday's call: 0 school days
])
def test_daily_absence_call_once_per_school_day(tmp_path, as_of, prior_day, calls):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), date(2025, 10, 10))
    b.mark("P1", date(2025, 10, 9), "AM", "N").mark("P1", date(2025, 10, 10), "AM", "N")
    ledger = prior("daily-absence-call", "notify", "P1", prior_day) if prior_day else []
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "daily-absence-call")) is calls


# ---- la-10-day-absence -----------------------------------------------------------------------------

CYCLE = ["N", "O", "G", "U"]


@pytest.mark.parametrize("unauthorised, informs", [(19, False), (20, True), (21, True)])
def test_la_10_day_absence_edges(tmp_path, unauthorised, informs):
    # As of Fri 10 Oct 2025. One unauthorised morning on each school day from Mon 8 Sep (never
    # two sessions in a row: "irregularly"), codes cycling N, O, G, U: 20 of them hold 5 N, so
    # the rule fires at 20 only if N counts, as the reading says.
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, as_of)
    for k, d in enumerate(open_days(date(2025, 9, 8), as_of)[:unauthorised]):
        b.mark("P1", d, "AM", CYCLE[k % 4])
    got = fired(run(b, tmp_path, as_of), "la-10-day-absence")
    assert ("P1" in got) is informs
    if informs:
        m = measure(got["P1"][0], "unauthorised sessions this academic year")
        assert m["value"] == str(unauthorised) and len(m["sessions"]) == unauthorised
        assert sum(s["code"] == "N" for s in m["sessions"]) == (unauthorised + 3) // 4
        assert window(m) == ("2025-09-03", "2025-10-10")
        assert got["P1"][0]["verb"] == "inform_local_authority"


@pytest.mark.parametrize("prior_day, last_year_sessions, informs", [
    (None, 2, False),              # 19 this year + 2 in July 2025: last year does not count
    (date(2025, 7, 15), 0, True),  # 20 this year; informed last academic year: a new year
    (date(2025, 9, 30), 0, False), # 20 this year; already informed this academic year
])
def test_la_10_day_absence_counts_and_acts_per_academic_year(tmp_path, prior_day, last_year_sessions, informs):
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 7, 14), as_of)
    if last_year_sessions:
        b.sessions("P1", date(2025, 7, 21), last_year_sessions, "O")  # Mon 21 Jul AM and PM
    b.sessions("P1", date(2025, 9, 8), 19 if last_year_sessions else 20, "O")
    ledger = prior("la-10-day-absence", "inform_local_authority", "P1", prior_day) if prior_day else []
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "la-10-day-absence")) is informs


# ---- persistent-lateness-meeting -----------------------------------------------------------------

LATE_AS_OF = date(2025, 12, 12)  # last 6 school weeks: Mon 3 Nov - Fri 12 Dec


@pytest.mark.parametrize("late, meets", [(4, False), (5, True), (6, True)])
def test_persistent_lateness_meeting_edges(tmp_path, late, meets):
    # Late mornings on consecutive school days from Mon 3 Nov (the window's first day),
    # alternating L and U; one more L on Fri 24 Oct, the school day before the window.
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 20), LATE_AS_OF)
    b.mark("P1", date(2025, 10, 24), "AM", "L", minutes_late=10)
    for k, d in enumerate(open_days(date(2025, 11, 3), LATE_AS_OF)[:late]):
        b.mark("P1", d, "AM", "LU"[k % 2], minutes_late=15)
    got = fired(run(b, tmp_path, LATE_AS_OF), "persistent-lateness-meeting")
    assert ("P1" in got) is meets
    if meets:
        [action] = got["P1"]
        assert action["advisory"] is True and action["verb"] == "hold_meeting"
        m = measure(action, "sessions coded {L, U} in the last late_weeks school weeks excluding days before pupil.integration_end")
        assert m["value"] == str(late)
        assert window(m) == ("2025-11-03", "2025-12-12")


@pytest.mark.parametrize("integration_end, meets", [
    (date(2025, 11, 3), True),   # nothing left out: 5 late marks (3-7 Nov)
    (date(2025, 11, 4), False),  # Mon 3 Nov is in the integration period: 4 counted
])
def test_persistent_lateness_meeting_leaves_out_integration_days(tmp_path, integration_end, meets):
    b = RegisterBuilder().pupil("P1", joined_on=date(2025, 11, 3), integration_end=integration_end)
    b.present("P1", date(2025, 11, 3), LATE_AS_OF)
    for d in [date(2025, 11, 3), date(2025, 11, 4), date(2025, 11, 5), date(2025, 11, 6), date(2025, 11, 7)]:
        b.mark("P1", d, "AM", "L")
    assert ("P1" in fired(run(b, tmp_path, LATE_AS_OF), "persistent-lateness-meeting")) is meets


@pytest.mark.parametrize("prior_day, meets", [
    (date(2025, 11, 3), False),  # school weeks after: 10 Nov ... 8 Dec = 5 < 6
    (date(2025, 10, 24), True),  # 3 Nov ... 8 Dec = 6 (half term skipped)
])
def test_persistent_lateness_meeting_cooldown(tmp_path, prior_day, meets):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), LATE_AS_OF)
    b.sessions("P1", date(2025, 12, 8), 5, "L")
    ledger = prior("persistent-lateness-meeting", "hold_meeting", "P1", prior_day)
    assert ("P1" in fired(run(b, tmp_path, LATE_AS_OF, prior=ledger), "persistent-lateness-meeting")) is meets


# ---- unauthorised-lateness-la-advice ---------------------------------------------------------------

@pytest.mark.parametrize("u_marks, advises", [(4, False), (5, True), (6, True)])
def test_unauthorised_lateness_la_advice_edges(tmp_path, u_marks, advises):
    # As of Fri 12 Dec the last 10 school weeks are the weeks of 8 Dec, 1 Dec, 24 Nov, 17 Nov,
    # 10 Nov, 3 Nov, 20 Oct, 13 Oct, 6 Oct and 29 Sep: from Mon 29 Sep, across half term.
    # U mornings on each Monday from 29 Sep; one U on Fri 26 Sep (outside) and 3 L marks (not U).
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 22), LATE_AS_OF)
    b.mark("P1", date(2025, 9, 26), "AM", "U")
    mondays = [date(2025, 9, 29), date(2025, 10, 6), date(2025, 10, 13), date(2025, 10, 20),
               date(2025, 11, 3), date(2025, 11, 10)]
    for d in mondays[:u_marks]:
        b.mark("P1", d, "AM", "U", minutes_late=45)
    for d in [date(2025, 12, 9), date(2025, 12, 10), date(2025, 12, 11)]:
        b.mark("P1", d, "AM", "L")
    got = fired(run(b, tmp_path, LATE_AS_OF), "unauthorised-lateness-la-advice")
    assert ("P1" in got) is advises
    if advises:
        [action] = got["P1"]
        assert action["advisory"] is True and action["verb"] == "refer_local_authority"
        m = measure(action, "sessions coded {U} in the last unauthorised_late_weeks school weeks "
                            "excluding days before pupil.integration_end")
        assert m["value"] == str(u_marks) and {s["code"] for s in m["sessions"]} == {"U"}
        assert window(m) == ("2025-09-29", "2025-12-12")


@pytest.mark.parametrize("prior_day, integration_end, advises", [
    (date(2025, 9, 29), None, False),              # school weeks after 29 Sep's week: 6 Oct ... 8 Dec = 9
    (date(2025, 9, 26), None, True),               # after 22 Sep's week: 29 Sep ... 8 Dec = 10
    (None, date(2025, 9, 30), False),              # the U on Mon 29 Sep is an integration day: 4 left
])
def test_unauthorised_lateness_la_advice_cooldown_and_integration(tmp_path, prior_day, integration_end, advises):
    b = RegisterBuilder().pupil("P1", joined_on=date(2025, 9, 22), integration_end=integration_end)
    b.present("P1", date(2025, 9, 22), LATE_AS_OF)
    for d in [date(2025, 9, 29), date(2025, 10, 6), date(2025, 10, 13), date(2025, 10, 20), date(2025, 11, 3)]:
        b.mark("P1", d, "AM", "U")
    ledger = prior("unauthorised-lateness-la-advice", "refer_local_authority", "P1", prior_day) if prior_day else []
    assert ("P1" in fired(run(b, tmp_path, LATE_AS_OF, prior=ledger), "unauthorised-lateness-la-advice")) is advises


# ---- leaver-form -----------------------------------------------------------------------------------

def test_leaver_form(tmp_path):
    # As of Fri 17 Oct 2025; the last 10 school days are Mon 6 - Fri 17 Oct.
    as_of = date(2025, 10, 17)
    b = RegisterBuilder()
    b.pupil("LEAVER", joined_on=AUTUMN, left_on=as_of).present("LEAVER", AUTUMN, as_of)
    # The reading: Year 11 leavers are not filtered out (end of Year 11 cannot be told).
    b.pupil("YEAR11", year_group="11", joined_on=AUTUMN, left_on=as_of).present("YEAR11", AUTUMN, as_of)
    b.pupil("FUTURE", joined_on=AUTUMN, left_on=date(2025, 12, 19)).present("FUTURE", AUTUMN, as_of)
    b.pupil("STAYING", joined_on=AUTUMN).present("STAYING", AUTUMN, as_of)
    # Recent-leaver edge: last mark Mon 6 Oct (the 10th school day back) vs Fri 3 Oct (the 11th).
    b.pupil("LAST_6_OCT", joined_on=AUTUMN, left_on=as_of).present("LAST_6_OCT", AUTUMN, date(2025, 10, 6))
    b.pupil("LAST_3_OCT", joined_on=AUTUMN, left_on=as_of).present("LAST_3_OCT", AUTUMN, date(2025, 10, 3))
    b.pupil("DONE", joined_on=AUTUMN, left_on=as_of).present("DONE", AUTUMN, as_of)
    actions = run(b, tmp_path, as_of, prior=prior("leaver-form", "notify", "DONE", date(2025, 9, 30)))
    got = fired(actions, "leaver-form")
    # DONE: no `repeat`, so once per pupil ever.
    assert set(got) == {"LEAVER", "YEAR11", "FUTURE", "LAST_6_OCT"}
    m = measure(got["LAST_6_OCT"][0], "sessions in the last recent_leaver_school_days school days")
    assert m["value"] == "2" and window(m) == ("2025-10-06", "2025-10-17")
    assert measure(got["LEAVER"][0], "sessions in the last recent_leaver_school_days school days")["value"] == "20"


def test_leaver_form_for_a_pupil_who_left_yesterday(tmp_path):
    # Left Thu 16 Oct (recorded as such); the office runs the policy on Fri 17 Oct. The pupil has
    # 18 marks in the last 10 school days (Mon 6 - Thu 16 Oct: 9 days), so by the rule's reading
    # ("only recent leavers", recent_leaver_school_days = 10) the form is due: the rule is about
    # leavers (scope leaver), who are evaluated after their leave date too.
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("LEFT", joined_on=AUTUMN, left_on=date(2025, 10, 16))
    b.present("LEFT", AUTUMN, date(2025, 10, 16))
    got = fired(run(b, tmp_path, as_of), "leaver-form")
    assert "LEFT" in got
    m = measure(got["LEFT"][0], "sessions in the last recent_leaver_school_days school days")
    assert m["value"] == "18" and window(m) == ("2025-10-06", "2025-10-17")
    assert got["LEFT"][0]["subject"]["kind"] == "pupil"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("last_day, sessions", [
    # As of Fri 17 Oct, counting the as-of day as the 1st school day back: Tue 7 Oct is the 9th
    # (6 and 7 Oct in the window: 4 sessions), Mon 6 Oct the 10th (2 sessions), Fri 3 Oct the 11th
    # (outside the last 10 school days: no action).
    (date(2025, 10, 7), 4),
    (date(2025, 10, 6), 2),
    (date(2025, 10, 3), None),
])
def test_leaver_form_recent_leaver_edge_for_a_pupil_who_has_left(tmp_path, engine, last_day, sessions):
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("LEFT", joined_on=AUTUMN, left_on=last_day).present("LEFT", AUTUMN, last_day)
    got = fired(run(b, tmp_path, as_of, engine=engine), "leaver-form")
    assert ("LEFT" in got) is (sessions is not None)
    if sessions is not None:
        m = measure(got["LEFT"][0], "sessions in the last recent_leaver_school_days school days")
        assert m["value"] == str(sessions) and window(m) == ("2025-10-06", "2025-10-17")


# ---- medical-evidence-repeated ---------------------------------------------------------------------

MED_AS_OF = date(2025, 10, 17)


@pytest.mark.parametrize("spells, requests", [
    ([(date(2025, 9, 15), 3), (date(2025, 10, 6), 2)], False),  # 5 in two spells
    ([(date(2025, 9, 15), 3), (date(2025, 10, 6), 3)], True),   # 6 in two spells: longest 3 < 6
    ([(date(2025, 9, 15), 4), (date(2025, 10, 6), 3)], True),   # 7 in two spells
    ([(date(2025, 9, 15), 6)], False),                          # 6 in one spell: longest = all
    ([(date(2025, 9, 15), 8)], False),                          # 8 in one spell
])
def test_medical_evidence_repeated_edges(tmp_path, spells, requests):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, MED_AS_OF)
    for first, count in spells:
        b.sessions("P1", first, count, "I")
    got = fired(run(b, tmp_path, MED_AS_OF), "medical-evidence-repeated")
    assert ("P1" in got) is requests
    if requests:
        [action] = got["P1"]
        assert action["advisory"] is True and action["verb"] == "request_evidence"
        total = sum(c for _, c in spells)
        assert measure(action, "sessions coded {I} this term")["value"] == str(total)
        assert measure(action, "longest run of sessions coded {I} this term")["value"] == str(max(c for _, c in spells))
        assert window(measure(action, "sessions coded {I} this term")) == ("2025-09-03", "2025-10-17")


@pytest.mark.parametrize("marks, requests", [
    # Thu 9, Fri 10, Mon 13 Oct: one spell across the weekend (6 sessions), not two.
    ({date(2025, 10, 9): "I", date(2025, 10, 10): "I", date(2025, 10, 13): "I"}, False),
    # Wed 8, Thu 9, Mon 13 with Y1 (not possible) on Fri 10: still one spell of 6.
    ({date(2025, 10, 8): "I", date(2025, 10, 9): "I", date(2025, 10, 10): "Y1", date(2025, 10, 13): "I"}, False),
    # Wed 8, Thu 9, present Fri 10, Mon 13: two spells (4 + 2).
    ({date(2025, 10, 8): "I", date(2025, 10, 9): "I", date(2025, 10, 13): "I"}, True),
])
def test_medical_evidence_repeated_spells(tmp_path, marks, requests):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, MED_AS_OF)
    for d, code in marks.items():
        b.day("P1", d, code)
    assert ("P1" in fired(run(b, tmp_path, MED_AS_OF), "medical-evidence-repeated")) is requests


@pytest.mark.parametrize("prior_day, summer_spell, requests", [
    # A 3-session spell in July 2025 is last term: this term has one spell of 6, no request.
    (None, True, False),
    # Two spells this term (3 + 3), already asked this term / last term.
    (date(2025, 9, 30), False, False),
    (date(2025, 7, 15), False, True),
])
def test_medical_evidence_repeated_this_term_only(tmp_path, prior_day, summer_spell, requests):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 7, 14), MED_AS_OF)
    if summer_spell:
        b.sessions("P1", date(2025, 7, 15), 3, "I")
        b.sessions("P1", date(2025, 10, 6), 6, "I")
    else:
        b.sessions("P1", date(2025, 9, 15), 3, "I")
        b.sessions("P1", date(2025, 10, 6), 3, "I")
    ledger = prior("medical-evidence-repeated", "request_evidence", "P1", prior_day) if prior_day else []
    assert ("P1" in fired(run(b, tmp_path, MED_AS_OF, prior=ledger), "medical-evidence-repeated")) is requests
