"""Hand-computed edge tests for the fourteen rules of Middleton St Mary's CE Primary
(policies/middleton-st-marys.yaml): thirteen of its own and its override of the national
unresolved-code-n.

Every number was counted by hand from the test calendar in tests/registers.py. 2025/26: autumn
opens Wed 3 Sep; weeks of 8 Sep to 20 Oct are full (Mon-Fri); half term 27-31 Oct; autumn 2 runs
Mon 3 Nov - Fri 19 Dec; Christmas 22 Dec - 2 Jan; spring opens Mon 5 Jan 2026. Open days from
3 Sep: 38 to 24 Oct, 73 to 19 Dec, 103 to 13 Feb, 128 to 27 Mar, 157 to 22 May (bank holiday
4 May), 195 to Wed 22 Jul 2026. Marks dated after the as-of date are ignored by every measure.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure, window
from .registers import RegisterBuilder, open_days

POLICY = Path(__file__).resolve().parent.parent / "policies" / "middleton-st-marys.yaml"
AUTUMN = date(2025, 9, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine: str = "builtin") -> list[dict]:
    return evaluate_register(POLICY, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, subject: str, *days: date, kind: str = "pupil") -> list[PriorAction]:
    return [PriorAction(rule, verb, kind, subject, "", d) for d in days]


# ---- fast-track (fixed id) ------------------------------------------------------------------------

FAST_AS_OF = date(2026, 1, 12)  # Mon 12 Jan 2026: the last 12 weeks are 12 Jan - 83 days = Tue 21 Oct 2025 on
FAST_COUNT = "sessions coded penalty_codes in the last fast_track_weeks weeks"


def fast_track_register(extra: list[tuple[date, str, str]]) -> RegisterBuilder:
    """Present 13 Oct 2025 - 12 Jan 2026, with 8 unauthorised sessions in December (G Mon 8 and
    Tue 9 Dec, O Wed 10 Dec, U Thu 11 Dec) and N on Fri 12 Dec (2 sessions: N is not among
    penalty_codes, so not counted), and the `extra` marks."""
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 13), FAST_AS_OF)
    b.days("P1", [date(2025, 12, 8), date(2025, 12, 9)], "G").day("P1", date(2025, 12, 10), "O")
    b.day("P1", date(2025, 12, 11), "U").day("P1", date(2025, 12, 12), "N")
    for d, s, code in extra:
        b.mark("P1", d, s, code)
    return b


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("extra, count, fast_track, penalty_threshold", [
    ([], 8, False, False),
    ([(date(2025, 10, 21), "AM", "G")], 9, False, False),
    # Tue 21 Oct, the window's first day (the window then crosses half term and Christmas).
    ([(date(2025, 10, 21), "AM", "G"), (date(2025, 10, 21), "PM", "G")], 10, True, True),
    ([(date(2025, 10, 21), "AM", "G"), (date(2025, 10, 21), "PM", "G"), (date(2025, 10, 22), "AM", "O")], 11, True, True),
    # Mon 20 Oct is 84 days back: outside the 12 calendar weeks, so 8 for Fast Track. It is
    # inside the national last 10 school weeks (weeks of 12 Jan, 5 Jan, 15 Dec ... 3 Nov, 20 Oct),
    # and a reading of "12 weeks" as school weeks would have counted it (from Mon 6 Oct).
    ([(date(2025, 10, 20), "AM", "G"), (date(2025, 10, 20), "PM", "G")], 8, False, True),
])
def test_fast_track_edges_across_half_term(tmp_path, engine, extra, count, fast_track, penalty_threshold):
    actions = run(fast_track_register(extra), tmp_path, FAST_AS_OF, engine=engine)
    got = fired(actions, "fast-track")
    assert ("P1" in got) is fast_track
    assert ("P1" in fired(actions, "penalty-notice-threshold")) is penalty_threshold
    if fast_track:
        assert [a["verb"] for a in got["P1"]] == ["flag", "notify"]
        m = measure(got["P1"][0], FAST_COUNT)
        assert m["value"] == str(count)
        assert {s["code"] for s in m["sessions"]} <= {"G", "O", "U"}
        assert window(m) == ("2025-10-21", "2026-01-12")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("prior_day, fast_track", [
    (date(2025, 10, 21), False),  # 83 days ago: 11 whole weeks, inside the 12-week cooldown
    (date(2025, 10, 20), True),   # 84 days ago: 12 weeks
])
def test_fast_track_cooldown_is_twelve_calendar_weeks(tmp_path, engine, prior_day, fast_track):
    b = fast_track_register([(date(2025, 10, 21), "AM", "G"), (date(2025, 10, 21), "PM", "G")])
    actions = run(b, tmp_path, FAST_AS_OF, prior=prior("fast-track", "flag", "P1", prior_day), engine=engine)
    assert ("P1" in fired(actions, "fast-track")) is fast_track


# ---- pa-year-lock and pa-la-half-termly ------------------------------------------------------------

YEAR_END = date(2026, 7, 22)  # 195 open days from 3 Sep = 390 sessions


def year_register(absent: int) -> RegisterBuilder:
    """Present all of 2025/26 to Wed 22 Jul 2026 (390 sessions); `absent` sessions: 10 O from
    Mon 5 Jan 2026, the rest I from Mon 8 Sep 2025 (authorised and unauthorised both count)."""
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, YEAR_END)
    b.sessions("P1", date(2025, 9, 8), absent - 10, "I")
    b.sessions("P1", date(2026, 1, 5), 10, "O")
    return b


@pytest.mark.parametrize("absent, flagged", [(30, False), (31, True), (32, True)])
def test_pa_year_lock_edges(tmp_path, absent, flagged):
    # 31 of 390 sessions is 7.9%: the school's list, not national persistent absence.
    actions = run(year_register(absent), tmp_path, YEAR_END)
    got = fired(actions, "pa-year-lock")
    assert ("P1" in got) is flagged
    assert "P1" not in fired(actions, "persistent-absence")
    if flagged:
        [action] = got["P1"]
        assert action["verb"] == "flag" and action["params"]["flag"] == "school_persistent_absentee"
        m = measure(action, "absent sessions this academic year")
        assert m["value"] == str(absent) and window(m) == ("2025-09-03", "2026-07-22")


@pytest.mark.parametrize("prior_day, flagged", [(date(2025, 12, 1), False), (date(2025, 7, 1), True)])
def test_pa_year_lock_once_per_academic_year(tmp_path, prior_day, flagged):
    ledger = prior("pa-year-lock", "flag", "P1", prior_day)
    assert ("P1" in fired(run(year_register(31), tmp_path, YEAR_END, prior=ledger), "pa-year-lock")) is flagged


# 50 open days from Wed 3 Sep to Tue 18 Nov 2025 = 100 sessions: n absent sessions = n% absence.
HT2_AS_OF = date(2025, 11, 18)


def hundred_register(absent: int) -> RegisterBuilder:
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, HT2_AS_OF)
    b.sessions("P1", date(2025, 9, 8), absent, "I")
    return b


@pytest.mark.parametrize("absent, informs", [(9, False), (10, True), (11, True)])
def test_pa_la_half_termly_rate_edges(tmp_path, absent, informs):
    got = fired(run(hundred_register(absent), tmp_path, HT2_AS_OF), "pa-la-half-termly")
    assert ("P1" in got) is informs
    if informs:
        assert [a["verb"] for a in got["P1"]] == ["inform_local_authority", "notify"]
        assert got["P1"][1]["params"]["role"] == "dsl"
        m = measure(got["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (absent, 100)


@pytest.mark.parametrize("absent, informs", [(30, False), (31, True)])
def test_pa_la_half_termly_31_session_list(tmp_path, absent, informs):
    # 30 or 31 of 390 sessions: below 10%, so only the school's 31-session list can qualify.
    got = fired(run(year_register(absent), tmp_path, YEAR_END), "pa-la-half-termly")
    assert ("P1" in got) is informs
    if informs:
        assert measure(got["P1"][0], "absent sessions this academic year")["value"] == "31"
        m = measure(got["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (31, 390)


@pytest.mark.parametrize("prior_day, informs", [
    (date(2025, 11, 3), False),   # informed earlier in autumn 2
    (date(2025, 10, 24), True),   # informed in autumn 1: a new half term
])
def test_pa_la_half_termly_once_per_half_term(tmp_path, prior_day, informs):
    ledger = prior("pa-la-half-termly", "inform_local_authority", "P1", prior_day)
    got = fired(run(hundred_register(10), tmp_path, HT2_AS_OF, prior=ledger), "pa-la-half-termly")
    assert ("P1" in got) is informs


# ---- unauthorised-holiday-la -----------------------------------------------------------------------

HOLIDAY_RUN = "current run of sessions coded {G} ever"


@pytest.mark.parametrize("g_marks, as_of, prior_day, informs, run_sessions", [
    # A spell of G, Mon 13 - Fri 17 Oct. On its first day: run 2 sessions, 1 day, never informed.
    ("13-17", date(2025, 10, 13), None, True, 2),
    # Informed Mon 13: Tue 14 is 1 school day later and the spell has 2 whole G days (1 > 2 false).
    ("13-17", date(2025, 10, 14), date(2025, 10, 13), False, None),
    ("13-17", date(2025, 10, 17), date(2025, 10, 13), False, None),  # 4 school days, 5 G days
    # The spell starts on Mon 13 PM (present AM): 1 session, 0 whole G days.
    ("13pm-17", date(2025, 10, 13), None, True, 1),
    ("13pm-17", date(2025, 10, 14), date(2025, 10, 13), False, None),  # 1 school day, 1 whole day
    # An earlier spell (G Mon 6 Oct, informed that day), present 7-10 Oct, new spell Mon 13:
    # 5 school days since > 1 whole G day.
    ("6,13-17", date(2025, 10, 13), date(2025, 10, 6), True, 2),
    # G on Fri 10 only, present on Mon 13: the current run is 0.
    ("10", date(2025, 10, 13), None, False, None),
])
def test_unauthorised_holiday_la_once_per_spell(tmp_path, g_marks, as_of, prior_day, informs, run_sessions):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), date(2025, 10, 17))
    if g_marks == "10":
        b.day("P1", date(2025, 10, 10), "G")
    else:
        if g_marks.startswith("6,"):
            b.day("P1", date(2025, 10, 6), "G")
        b.days("P1", open_days(date(2025, 10, 14), date(2025, 10, 17)), "G")
        b.mark("P1", date(2025, 10, 13), "PM", "G")
        if g_marks != "13pm-17":
            b.mark("P1", date(2025, 10, 13), "AM", "G")
    ledger = prior("unauthorised-holiday-la", "inform_local_authority", "P1", prior_day) if prior_day else []
    got = fired(run(b, tmp_path, as_of, prior=ledger), "unauthorised-holiday-la")
    assert ("P1" in got) is informs
    if informs:
        assert got["P1"][0]["verb"] == "inform_local_authority"
        assert measure(got["P1"][0], HOLIDAY_RUN)["value"] == str(run_sessions)
        assert measure(got["P1"][0], HOLIDAY_RUN)["run_start"] == "2025-10-13"


def test_unauthorised_holiday_la_informs_a_new_spell_the_day_after_a_morning_spell(tmp_path):
    # G on Mon 13 Oct AM; the LA is informed that morning (the rule run after registration).
    # Present Mon 13 PM: that spell is over. G Tue 14 - Fri 17: a new spell, a week's holiday.
    # As of Tue 14 AM: current run 1 session / 1 whole G day; school days since Monday's action = 1;
    # 1 > 1 is false, and on each later day both sides grow together, so this holiday is never
    # reported. Expected: informed on Tue 14.
    as_of = date(2025, 10, 14)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), date(2025, 10, 13))
    b.mark("P1", date(2025, 10, 13), "AM", "G")
    b.mark("P1", as_of, "AM", "G")
    ledger = prior("unauthorised-holiday-la", "inform_local_authority", "P1", date(2025, 10, 13))
    assert "P1" in fired(run(b, tmp_path, as_of, prior=ledger), "unauthorised-holiday-la")


def test_unauthorised_holiday_la_not_reported_twice_when_not_possible_days_interrupt_the_spell(tmp_path):
    # G Mon 13 Oct (the LA informed that day); Y2 (travel disruption: not a possible session) Tue
    # 14 and Wed 15; G again Thu 16. One spell by the reading ("not-possible sessions neither break
    # nor extend" runs), so no second report. Actual as of Thu 16: whole G days in the run = 2
    # (13 and 16 Oct), school days since Monday's report = 3 (14, 15, 16): 3 > 2, reported again.
    as_of = date(2025, 10, 16)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), date(2025, 10, 10))
    b.day("P1", date(2025, 10, 13), "G").days("P1", [date(2025, 10, 14), date(2025, 10, 15)], "Y2")
    b.day("P1", as_of, "G")
    ledger = prior("unauthorised-holiday-la", "inform_local_authority", "P1", date(2025, 10, 13))
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=ledger), "unauthorised-holiday-la")


# ---- religious-observance-cap ------------------------------------------------------------------------

@pytest.mark.parametrize("r_sessions, prior_day, reviews", [
    (4, None, False),               # 2 days: within the cap
    (5, None, True),                # above 2 days
    (6, None, True),
    (5, date(2025, 9, 30), False),  # already reviewed this academic year
    (5, date(2025, 7, 1), True),    # reviewed last academic year
])
def test_religious_observance_cap_edges(tmp_path, r_sessions, prior_day, reviews):
    # R sessions from Mon 6 Oct 2025; and 4 R sessions on 21-22 Jul 2025 (last academic year,
    # not counted: with them even 4 would exceed the cap).
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 7, 14), date(2025, 7, 22))
    b.present("P1", date(2025, 10, 6), as_of)
    b.days("P1", [date(2025, 7, 21), date(2025, 7, 22)], "R")
    b.sessions("P1", date(2025, 10, 6), r_sessions, "R")
    ledger = prior("religious-observance-cap", "notify", "P1", prior_day) if prior_day else []
    got = fired(run(b, tmp_path, as_of, prior=ledger), "religious-observance-cap")
    assert ("P1" in got) is reviews
    if reviews:
        [action] = got["P1"]
        assert action["advisory"] is True and action["params"]["role"] == "headteacher"
        m = measure(action, "sessions coded {R} this academic year")
        assert m["value"] == str(r_sessions) and window(m) == ("2025-09-03", "2025-10-17")


# ---- full-day-medical-appointment --------------------------------------------------------------------

def test_full_day_medical_appointment(tmp_path):
    as_of = date(2025, 10, 14)  # Tue
    yesterday = date(2025, 10, 13)
    b = RegisterBuilder()
    cases = {
        "FULL_DAY": [(as_of, "AM"), (as_of, "PM")],
        "FULL_DAY_CALLED_YESTERDAY": [(yesterday, "AM"), (yesterday, "PM"), (as_of, "AM"), (as_of, "PM")],
        "MORNING_ONLY": [(as_of, "AM")],                 # present in the afternoon
        "AFTERNOON_ONLY": [(as_of, "PM")],
        "PM_NOT_TAKEN": [(as_of, "AM")],                 # afternoon register not yet taken
        "YESTERDAY": [(yesterday, "AM"), (yesterday, "PM")],
    }
    for p, marks in cases.items():
        b.pupil(p).present(p, date(2025, 10, 6), as_of)
        for d, s in marks:
            b.mark(p, d, s, "M")
    del b.marks[("PM_NOT_TAKEN", as_of, "PM")]
    ledger = prior("full-day-medical-appointment", "notify", "FULL_DAY_CALLED_YESTERDAY", yesterday)
    got = fired(run(b, tmp_path, as_of, prior=ledger), "full-day-medical-appointment")
    assert set(got) == {"FULL_DAY", "FULL_DAY_CALLED_YESTERDAY"}
    action = got["FULL_DAY"][0]
    assert action["params"]["role"] == "headteacher"
    assert measure(action, "morning sessions coded {M} in the last 1 school days")["value"] == "1"
    m = measure(action, "afternoon sessions coded {M} in the last 1 school days")
    assert m["value"] == "1" and window(m) == ("2025-10-14", "2025-10-14")


# ---- persistent-lateness-contact and persistent-lateness-panel ----------------------------------------

LATE_AS_OF = date(2025, 12, 12)  # the last 6 school weeks: Mon 3 Nov - Fri 12 Dec
LATE_COUNT = "sessions coded {L, U} in the last late_weeks school weeks"


def late_register(late: int) -> RegisterBuilder:
    """Late mornings (alternating L and U) on consecutive school days from Mon 3 Nov, the
    window's first day, and one L on Fri 24 Oct, the school day before the window."""
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 20), LATE_AS_OF)
    b.mark("P1", date(2025, 10, 24), "AM", "L", minutes_late=5)
    for k, d in enumerate(open_days(date(2025, 11, 3), LATE_AS_OF)[:late]):
        b.mark("P1", d, "AM", "LU"[k % 2], minutes_late=20)
    return b


@pytest.mark.parametrize("late, contacts", [(4, False), (5, True), (6, True)])
def test_persistent_lateness_contact_edges(tmp_path, late, contacts):
    got = fired(run(late_register(late), tmp_path, LATE_AS_OF), "persistent-lateness-contact")
    assert ("P1" in got) is contacts
    if contacts:
        [action] = got["P1"]
        assert action["advisory"] is True and action["params"]["role"] == "attendance_officer"
        m = measure(action, LATE_COUNT)
        assert m["value"] == str(late) and window(m) == ("2025-11-03", "2025-12-12")


@pytest.mark.parametrize("prior_day, contacts", [
    (date(2025, 11, 3), False),  # school weeks after 3 Nov's week: 10 Nov ... 8 Dec = 5 < 6
    (date(2025, 10, 24), True),  # after 20 Oct's week: 3 Nov ... 8 Dec = 6 (half term skipped)
])
def test_persistent_lateness_contact_cooldown(tmp_path, prior_day, contacts):
    ledger = prior("persistent-lateness-contact", "notify", "P1", prior_day)
    got = fired(run(late_register(5), tmp_path, LATE_AS_OF, prior=ledger), "persistent-lateness-contact")
    assert ("P1" in got) is contacts


@pytest.mark.parametrize("late, contact_day, weeks, panel", [
    (5, date(2025, 11, 19), 3, False),  # school weeks after 17 Nov's week: 24 Nov, 1 Dec, 8 Dec
    (5, date(2025, 11, 12), 4, True),   # 17 Nov ... 8 Dec
    (5, date(2025, 11, 5), 5, True),    # 10 Nov ... 8 Dec
    (4, date(2025, 11, 5), 5, False),   # no longer persistently late
    (5, None, None, False),             # never contacted: `after` blocks ("never" >= 4 is true)
])
def test_persistent_lateness_panel_edges(tmp_path, late, contact_day, weeks, panel):
    ledger = prior("persistent-lateness-contact", "notify", "P1", contact_day) if contact_day else []
    got = fired(run(late_register(late), tmp_path, LATE_AS_OF, prior=ledger), "persistent-lateness-panel")
    assert ("P1" in got) is panel
    if panel:
        [action] = got["P1"]
        assert action["advisory"] is True and action["params"]["kind"] == "attendance_panel"
        since = measure(action, "school weeks since last action by rule persistent-lateness-contact")
        assert since["value"] == str(weeks)
        assert action["evidence"]["escalation"]["after_as_of"] == contact_day.isoformat()


@pytest.mark.parametrize("panel_day, panel", [
    (date(2025, 11, 3), False),  # a panel 5 school weeks ago: the 6-week cooldown holds
    (date(2025, 10, 24), True),  # 6 school weeks ago
])
def test_persistent_lateness_panel_cooldown(tmp_path, panel_day, panel):
    ledger = (prior("persistent-lateness-contact", "notify", "P1", date(2025, 10, 17))
              + prior("persistent-lateness-panel", "hold_meeting", "P1", panel_day))
    got = fired(run(late_register(5), tmp_path, LATE_AS_OF, prior=ledger), "persistent-lateness-panel")
    assert ("P1" in got) is panel


# ---- first-day-contact -------------------------------------------------------------------------------

@pytest.mark.parametrize("n_marks, as_of, prior_day, contacts", [
    ([], date(2025, 10, 14), None, False),
    ([(date(2025, 10, 13), "AM")], date(2025, 10, 14), None, False),  # yesterday's N only
    ([(date(2025, 10, 14), "AM")], date(2025, 10, 14), None, True),   # the first day
    # Each successive day: contacted Mon, N again Tue.
    ([(date(2025, 10, 13), "AM"), (date(2025, 10, 14), "AM")], date(2025, 10, 14), date(2025, 10, 13), True),
    # Re-run on Sat 18 Oct after Friday's contact: 0 school days since.
    ([(date(2025, 10, 17), "AM")], date(2025, 10, 18), date(2025, 10, 17), False),
])
def test_first_day_contact(tmp_path, n_marks, as_of, prior_day, contacts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), min(as_of, date(2025, 10, 17)))
    for d, s in n_marks:
        b.mark("P1", d, s, "N")
    ledger = prior("first-day-contact", "notify", "P1", prior_day) if prior_day else []
    got = fired(run(b, tmp_path, as_of, prior=ledger), "first-day-contact")
    assert ("P1" in got) is contacts
    if contacts:
        m = measure(got["P1"][0], "sessions coded {N} in the last 1 school days")
        assert m["value"] == "1" and window(m) == (as_of.isoformat(), as_of.isoformat())


# ---- unresolved-code-n (override) ----------------------------------------------------------------------

N_EVER = "sessions coded {N} ever"
N_RECENT = "sessions coded {N} in the last code_n_school_days school days"


@pytest.mark.parametrize("n_day, as_of, overdue, recent_window", [
    # As of Fri 17 Oct the last 5 school days are Mon 13 - Fri 17.
    (date(2025, 10, 13), date(2025, 10, 17), False, None),
    (date(2025, 10, 10), date(2025, 10, 17), True, ("2025-10-13", "2025-10-17")),
    # As of Wed 5 Nov they are Thu 23, Fri 24 Oct, Mon 3, Tue 4, Wed 5 Nov: half term skipped.
    (date(2025, 10, 23), date(2025, 11, 5), False, None),
    (date(2025, 10, 22), date(2025, 11, 5), True, ("2025-10-23", "2025-11-05")),
])
def test_unresolved_code_n_override_edges(tmp_path, n_day, as_of, overdue, recent_window):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), as_of)
    b.mark("P1", n_day, "AM", "N")
    got = fired(run(b, tmp_path, as_of), "unresolved-code-n")
    assert ("P1" in got) is overdue
    if overdue:
        [action] = got["P1"]  # the override replaces the national rule: one action, not two
        assert action["defined_in"].endswith("middleton-st-marys.yaml")
        assert "CPOMS" in action["params"]["message"] and action["params"]["role"] == "attendance_officer"
        assert measure(action, N_EVER)["value"] == "1"
        recent = measure(action, N_RECENT)
        assert recent["value"] == "0" and window(recent) == recent_window


def test_unresolved_code_n_keeps_the_national_position(tmp_path):
    # An old N (Fri 10 Oct) and a new one today (Fri 17 Oct): the override acts in the inherited
    # rule's place, before Middleton's own rules (first-day-contact).
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), as_of)
    b.mark("P1", date(2025, 10, 10), "AM", "N").mark("P1", as_of, "AM", "N")
    rules = [a["rule"] for a in run(b, tmp_path, as_of)]
    assert rules.count("unresolved-code-n") == 1 and "first-day-contact" in rules
    assert rules.index("unresolved-code-n") < rules.index("first-day-contact")


@pytest.mark.parametrize("prior_day, acts", [
    (date(2025, 10, 13), False),  # 4 school days since (14-17 Oct)
    (date(2025, 10, 10), True),   # 5 school days since (13-17 Oct)
])
def test_unresolved_code_n_every_five_school_days(tmp_path, prior_day, acts):
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), as_of)
    b.mark("P1", date(2025, 10, 3), "AM", "N")  # still not replaced
    ledger = prior("unresolved-code-n", "notify", "P1", prior_day)
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "unresolved-code-n")) is acts


# ---- class-trophy and class-trophy-extra-break -----------------------------------------------------------

FRIDAY = date(2025, 10, 10)  # this school week: Mon 6 - Fri 10 Oct
WEEK_ATTENDANCE = "attendance this school week"


def trophy_week(absences: dict[str, int], friday_pm: bool = False, last_day: date = FRIDAY) -> RegisterBuilder:
    """Two pupils per class (reg_group = class, year group from its name), present Mon 6 Oct to
    Thu 9 Oct and Friday morning (Friday afternoon only if `friday_pm`); `absences[cls]` I
    sessions for the class's first pupil from Mon 6 AM."""
    b = RegisterBuilder()
    for cls, absent in absences.items():
        for k in (1, 2):
            pid = f"{cls}-{k}"
            b.pupil(pid, reg_group=cls, year_group=cls.rstrip("AB") or "R")
            b.present(pid, date(2025, 10, 6), min(last_day, date(2025, 10, 9)))
            if last_day >= FRIDAY:
                b.mark(pid, FRIDAY, "AM", "/")
                if friday_pm:
                    b.mark(pid, FRIDAY, "PM", "\\")
        if absent:
            b.sessions(f"{cls}-1", date(2025, 10, 6), absent, "I")
    return b


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent_1a, winners", [
    # Friday afternoon not yet registered: 9 sessions a pupil, 18 a class.
    # 5A: 1 absent = 17/18; R: 3 absent = 15/18.
    (0, {"1A"}),        # 18/18
    (1, {"1A", "5A"}),  # 17/18 each: tied classes share the trophy
    (2, {"5A"}),        # 16/18
])
def test_class_trophy_edges(tmp_path, engine, absent_1a, winners):
    # One trophy for the school's highest attending class(es), not one per phase: the
    # Reception class R gets none though it is the only Early Years class.
    b = trophy_week({"R": 3, "1A": absent_1a, "5A": 1})
    got = fired(run(b, tmp_path, FRIDAY, engine=engine), "class-trophy")
    assert set(got) == winners
    for cls in winners:
        [action] = got[cls]
        assert action["subject"]["kind"] == "class" and action["verb"] == "award"
        m = measure(action, WEEK_ATTENDANCE)
        assert (m["numerator"], m["denominator"]) == (17 if cls == "5A" else 18 - absent_1a, 18)
        assert window(m) == ("2025-10-06", "2025-10-10")
        assert measure(action, "rank of attendance this school week")["value"] == "1"


@pytest.mark.parametrize("case", ["thursday", "friday_closed"])
def test_class_trophy_waits_for_the_friday_morning_register(tmp_path, case):
    b = trophy_week({"1A": 0, "5A": 2}, last_day=date(2025, 10, 9))
    if case == "friday_closed":
        b.closures.add(FRIDAY)
    as_of = date(2025, 10, 9) if case == "thursday" else FRIDAY
    assert fired(run(b, tmp_path, as_of), "class-trophy") == {}


@pytest.mark.parametrize("prior_day, trophy", [(date(2025, 10, 6), False), (date(2025, 10, 3), True)])
def test_class_trophy_once_per_school_week(tmp_path, prior_day, trophy):
    b = trophy_week({"1A": 0, "5A": 2})
    ledger = prior("class-trophy", "award", "1A", prior_day, kind="class")
    assert ("1A" in fired(run(b, tmp_path, FRIDAY, prior=ledger), "class-trophy")) is trophy


@pytest.mark.parametrize("absent_4a, extra_break", [
    (2, True),   # 98/100
    (3, True),   # 97/100 = 97.0% exactly: "97% or above"
    (4, False),  # 96/100: still the trophy class, but no extra break
])
def test_class_trophy_extra_break_edges(tmp_path, absent_4a, extra_break):
    # Class 4A: 10 pupils x 10 sessions (Mon 6 - Fri 10 Oct, Friday afternoon registered) = 100.
    # Class 4B: 1 pupil, 5 of 10 absent = 50%. 4A wins the trophy in every case.
    b = RegisterBuilder()
    for k in range(10):
        b.pupil(f"4A-{k}", reg_group="4A", year_group="4").present(f"4A-{k}", date(2025, 10, 6), FRIDAY)
    for k in range(absent_4a):
        b.mark(f"4A-{k}", date(2025, 10, 8), "AM", "I")
    b.pupil("4B-0", reg_group="4B", year_group="4").present("4B-0", date(2025, 10, 6), FRIDAY)
    b.sessions("4B-0", date(2025, 10, 6), 5, "I")
    actions = run(b, tmp_path, FRIDAY)
    assert set(fired(actions, "class-trophy")) == {"4A"}
    got = fired(actions, "class-trophy-extra-break")
    assert ("4A" in got) is extra_break and "4B" not in got
    if extra_break:
        [action] = got["4A"]
        assert action["advisory"] is True and action["verb"] == "award"
        m = measure(action, WEEK_ATTENDANCE)
        assert (m["numerator"], m["denominator"]) == (100 - absent_4a, 100)


def test_class_trophy_extra_break_once_per_school_week(tmp_path):
    b = trophy_week({"1A": 0, "5A": 2}, friday_pm=True)  # 1A: 20/20 = 100%
    assert set(fired(run(b, tmp_path, FRIDAY), "class-trophy-extra-break")) == {"1A"}
    ledger = prior("class-trophy-extra-break", "award", "1A", date(2025, 10, 8), kind="class")
    assert fired(run(b, tmp_path, FRIDAY, prior=ledger), "class-trophy-extra-break") == {}


# ---- weekly-house-point ------------------------------------------------------------------------------------

def test_weekly_house_point(tmp_path):
    # Week of Mon 6 Oct, as of Fri 10 Oct after the afternoon register.
    monday, wednesday = date(2025, 10, 6), date(2025, 10, 8)
    b = RegisterBuilder()
    for p in ["FULL", "ONE_ABSENT", "LATE", "APPROVED", "NOT_POSSIBLE_DAY", "ALL_NOT_POSSIBLE",
              "NO_FRIDAY_PM", "ABSENT_LAST_WEEK"]:
        b.pupil(p).present(p, date(2025, 9, 29), FRIDAY)
    b.mark("ONE_ABSENT", wednesday, "AM", "I")            # 9/10
    b.mark("LATE", monday, "AM", "L")                     # L is attendance: 10/10
    b.day("APPROVED", wednesday, "P")                     # approved sporting activity: 10/10
    b.day("NOT_POSSIBLE_DAY", monday, "Y1")               # 8/8
    b.days("ALL_NOT_POSSIBLE", open_days(monday, FRIDAY), "X")  # no possible session: undefined
    del b.marks[("NO_FRIDAY_PM", FRIDAY, "PM")]           # Friday afternoon not yet registered
    b.day("ABSENT_LAST_WEEK", date(2025, 10, 3), "O")     # last week does not count
    got = fired(run(b, tmp_path, FRIDAY), "weekly-house-point")
    assert set(got) == {"FULL", "LATE", "APPROVED", "NOT_POSSIBLE_DAY", "ABSENT_LAST_WEEK"}
    m = measure(got["NOT_POSSIBLE_DAY"][0], WEEK_ATTENDANCE)
    assert (m["numerator"], m["denominator"]) == (8, 8) and window(m) == ("2025-10-06", "2025-10-10")
    assert measure(got["FULL"][0], "afternoon sessions on Friday this school week")["value"] == "1"
    # Once per school week.
    again = run(b, tmp_path, FRIDAY, prior=prior("weekly-house-point", "award", "FULL", date(2025, 10, 9)))
    assert "FULL" not in fired(again, "weekly-house-point")


# ---- attendance-target ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent, below", [
    (2, False),  # 98/100
    (3, False),  # 97/100 = 97.0%: not below the target
    (4, True),   # 96/100
])
def test_attendance_target_edges(tmp_path, engine, absent, below):
    # 5 pupils x 10 open days (Wed 3 - Tue 16 Sep: 3 + 5 + 2) x 2 = 100 sessions, pooled.
    as_of = date(2025, 9, 16)
    b = RegisterBuilder()
    for k in range(5):
        b.pupil(f"P{k}", reg_group=f"C{k % 2}").present(f"P{k}", AUTUMN, as_of)
    for k in range(absent):
        b.mark(f"P{k}", date(2025, 9, 10), "AM", "I")
    got = fired(run(b, tmp_path, as_of, engine=engine), "attendance-target")
    assert set(got) == ({""} if below else set())  # one subject: the school ("" = the school id)
    if below:
        assert [a["verb"] for a in got[""]] == ["flag", "notify"]
        assert got[""][0]["subject"]["kind"] == "school"
        m = measure(got[""][0], "attendance this academic year")
        assert (m["numerator"], m["denominator"]) == (96, 100)
        assert window(m) == ("2025-09-03", "2025-09-16")


def test_attendance_target_pools_sessions(tmp_path):
    # P0-P3 present every session of 12 open days (3 Sep - Thu 18 Sep) = 4 x 24 = 96 sessions;
    # P4 joined Wed 17 Sep: 4 sessions, 2 absent (50%). Pooled: 98/100 = 98%, not below 97%;
    # the average of the five pupils' rates would be 90%.
    as_of = date(2025, 9, 18)
    b = RegisterBuilder()
    for k in range(4):
        b.pupil(f"P{k}").present(f"P{k}", AUTUMN, as_of)
    b.pupil("P4", joined_on=date(2025, 9, 17)).present("P4", date(2025, 9, 17), as_of)
    b.day("P4", date(2025, 9, 18), "O")
    assert fired(run(b, tmp_path, as_of), "attendance-target") == {}


@pytest.mark.parametrize("prior_day, below", [(date(2025, 9, 10), False), (date(2025, 7, 1), True)])
def test_attendance_target_once_per_term(tmp_path, prior_day, below):
    as_of = date(2025, 9, 16)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, as_of)
    b.day("P1", date(2025, 9, 10), "I")  # 18/20 = 90%
    ledger = prior("attendance-target", "flag", "", prior_day, kind="school")
    assert ("" in fired(run(b, tmp_path, as_of, prior=ledger), "attendance-target")) is below
