"""Hand-computed edge tests for the eleven rules Mason Moor Primary adds to the national policy
(policies/mason-moor.yaml).

Every number was counted by hand from the test calendar in tests/registers.py. 2025/26: autumn
opens Wed 3 Sep; weeks of 8 Sep to 20 Oct are full (Mon-Fri); half term 27-31 Oct; autumn 2 runs
Mon 3 Nov - Fri 19 Dec. A "school week" is a Mon-Sun week with an open session (the half-term
week of 27 Oct is not one). Marks after the as-of day's last marked session are simply absent
from the register (the afternoon register not yet taken).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure, window
from .registers import RegisterBuilder, open_days

POLICY = Path(__file__).resolve().parent.parent / "policies" / "mason-moor.yaml"
AUTUMN = date(2025, 9, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine: str = "builtin") -> list[dict]:
    return evaluate_register(POLICY, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, subject: str, *days: date, kind: str = "pupil") -> list[PriorAction]:
    return [PriorAction(rule, verb, kind, subject, "", d) for d in days]


# ---- medical-evidence (fixed id) ----------------------------------------------------------------

RUN_SESSIONS = "current run of sessions coded {I} ever"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("illness_sessions, as_of, asks", [
    (6, date(2025, 10, 8), False),  # Mon 6 - Wed 8 Oct: 3 whole days = 6 sessions, not longer than 3 days
    (7, date(2025, 10, 9), True),   # + Thu 9 AM (afternoon not yet registered): the 7th session
    (8, date(2025, 10, 9), True),   # Mon 6 - Thu 9 Oct: 4 days
])
def test_medical_evidence_three_and_four_days(tmp_path, engine, illness_sessions, as_of, asks):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.sessions("P1", date(2025, 10, 6), illness_sessions, "I")
    got = fired(run(b, tmp_path, as_of, engine=engine), "medical-evidence")
    assert ("P1" in got) is asks
    if asks:
        assert [a["verb"] for a in got["P1"]] == ["request_evidence", "notify"]
        assert got["P1"][0]["params"]["evidence"] == "medical"
        assert measure(got["P1"][0], RUN_SESSIONS)["value"] == str(illness_sessions)
        assert measure(got["P1"][0], RUN_SESSIONS)["run_start"] == "2025-10-06"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("illness, as_of, run_sessions", [
    # Thu 9, Fri 10, Mon 13 Oct: 5 calendar days, but 3 school days = 6 sessions: no request.
    ([(date(2025, 10, 9), 6)], date(2025, 10, 13), None),
    # ... and Tue 14 AM: the 7th consecutive session, across the weekend.
    ([(date(2025, 10, 9), 7)], date(2025, 10, 14), 7),
    # Thu 23, Fri 24 Oct, (half term), Mon 3 Nov, Tue 4 Nov AM: 7 sessions across the holiday.
    ([(date(2025, 10, 23), 7)], date(2025, 11, 4), 7),
])
def test_medical_evidence_spell_across_weekend_and_half_term(tmp_path, engine, illness, as_of, run_sessions):
    first, count = illness[0]
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), first - timedelta(days=1))
    b.sessions("P1", first, count, "I")
    got = fired(run(b, tmp_path, as_of, engine=engine), "medical-evidence")
    assert ("P1" in got) is (run_sessions is not None)
    if run_sessions:
        assert measure(got["P1"][0], RUN_SESSIONS)["value"] == str(run_sessions)


@pytest.mark.parametrize("marks, as_of, asks", [
    # I Mon 6, Tue 7, Y1 (not possible) Wed 8, I Thu 9: the Y1 day neither breaks nor extends: 6.
    ([(date(2025, 10, 6), "I"), (date(2025, 10, 7), "I"), (date(2025, 10, 8), "Y1"), (date(2025, 10, 9), "I")],
     date(2025, 10, 9), False),
    # ... and I on Fri 10 AM: 7 sessions.
    ([(date(2025, 10, 6), "I"), (date(2025, 10, 7), "I"), (date(2025, 10, 8), "Y1"), (date(2025, 10, 9), "I"),
      (date(2025, 10, 10), "I-AM")], date(2025, 10, 10), True),
    # I on part of 4 days (Mon PM, Tue, Wed, Thu AM) is 6 sessions: not "longer than 3 days".
    ([(date(2025, 10, 6), "I-PM"), (date(2025, 10, 7), "I"), (date(2025, 10, 8), "I"), (date(2025, 10, 9), "I-AM")],
     date(2025, 10, 9), False),
])
def test_medical_evidence_counts_sessions_not_days(tmp_path, marks, as_of, asks):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.mark("P1", date(2025, 10, 6), "AM", "/")  # present Mon AM unless a case codes the whole day
    for d, code in marks:
        if code.endswith("-AM") or code.endswith("-PM"):
            b.mark("P1", d, code[-2:], code[:-3])
        else:
            b.day("P1", d, code)
    assert ("P1" in fired(run(b, tmp_path, as_of), "medical-evidence")) is asks


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("as_of, prior_day, asks", [
    # Spell 1: Mon 6 - Fri 17 Oct (10 school days). Asked on Thu 9 Oct. As of Fri 17 the spell
    # started on Mon 6, before the request: the same spell, not again.
    (date(2025, 10, 17), date(2025, 10, 9), False),
    # Spell 2: present Mon 20, I Tue 21 - Fri 24 AM (7 sessions from Tue 21). Asked on Thu 9 Oct:
    # spell 2 started after it, a new spell.
    (date(2025, 10, 24), date(2025, 10, 9), True),
    # Asked on Mon 20 (the school day before spell 2): a new spell.
    (date(2025, 10, 24), date(2025, 10, 20), True),
    # Asked on Tue 21 (spell 2's first day): the same spell.
    (date(2025, 10, 24), date(2025, 10, 21), False),
])
def test_medical_evidence_once_per_spell(tmp_path, engine, as_of, prior_day, asks):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.days("P1", open_days(date(2025, 10, 6), date(2025, 10, 17)), "I")
    b.present("P1", date(2025, 10, 20), date(2025, 10, 20))
    if as_of == date(2025, 10, 24):
        b.sessions("P1", date(2025, 10, 21), 7, "I")
    ledger = prior("medical-evidence", "request_evidence", "P1", prior_day)
    got = fired(run(b, tmp_path, as_of, prior=ledger, engine=engine), "medical-evidence")
    assert ("P1" in got) is asks
    if asks:
        m = measure(got["P1"][0], RUN_SESSIONS)
        assert (m["value"], m["run_start"]) == ("7", "2025-10-21")


def test_medical_evidence_not_asked_again_when_not_possible_days_interrupt_the_spell(tmp_path):
    # I Mon 6 - Thu 9 Oct (8 sessions), asked on Thu 9 (the run was then 4 school days).
    # Y6 (public-health guidance: not a possible session) Fri 10, Mon 13, Tue 14, Wed 15 Oct.
    # I again Thu 16 AM. By the reading this is the same spell (the Y6 days neither break nor
    # extend it), so it must not be asked about again. Actual as of Thu 16: run 9 sessions /
    # 5 school days (6-9 and 16 Oct); school days since Thu 9 = 10, 13, 14, 15, 16 = 5 >= 5, and
    # the 4-day cooldown is met: the request is sent a second time.
    as_of = date(2025, 10, 16)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.days("P1", open_days(date(2025, 10, 6), date(2025, 10, 9)), "I")
    b.days("P1", open_days(date(2025, 10, 10), date(2025, 10, 15)), "Y6")
    b.mark("P1", as_of, "AM", "I")
    ledger = prior("medical-evidence", "request_evidence", "P1", date(2025, 10, 9))
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=ledger), "medical-evidence")


# ---- lateness-pattern ---------------------------------------------------------------------------

PATTERN_AS_OF = date(2025, 10, 17)  # last 4 school weeks: Mon 22 Sep - Fri 17 Oct
FRIDAY_LATE = "morning sessions coded {L, U} on Friday in the last lateness_pattern_weeks school weeks"


@pytest.mark.parametrize("late, reports", [
    ([(date(2025, 10, 3), "AM", "L"), (date(2025, 10, 10), "AM", "U")], False),                                # 2 Fridays
    ([(date(2025, 9, 26), "AM", "L"), (date(2025, 10, 3), "AM", "U"), (date(2025, 10, 10), "AM", "L")], True),  # 3
    ([(date(2025, 9, 26), "AM", "L"), (date(2025, 10, 3), "AM", "L"), (date(2025, 10, 10), "AM", "L"),
      (date(2025, 10, 17), "AM", "L")], True),                                                                 # 4
    # Fri 19 Sep is in the 5th school week back: 2 in the window.
    ([(date(2025, 9, 19), "AM", "L"), (date(2025, 10, 3), "AM", "L"), (date(2025, 10, 10), "AM", "L")], False),
    # 3 late mornings on different weekdays: no weekday pattern.
    ([(date(2025, 10, 6), "AM", "L"), (date(2025, 10, 7), "AM", "L"), (date(2025, 10, 8), "AM", "L")], False),
    # Late on 3 Friday afternoons: afternoons are not counted.
    ([(date(2025, 9, 26), "PM", "L"), (date(2025, 10, 3), "PM", "L"), (date(2025, 10, 10), "PM", "L")], False),
])
def test_lateness_pattern_edges(tmp_path, late, reports):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 15), PATTERN_AS_OF)
    for d, s, code in late:
        b.mark("P1", d, s, code, minutes_late=10)
    got = fired(run(b, tmp_path, PATTERN_AS_OF), "lateness-pattern")
    assert ("P1" in got) is reports
    if reports:
        [action] = got["P1"]
        assert action["advisory"] is True and action["params"]["role"] == "headteacher"
        m = measure(action, FRIDAY_LATE)
        assert m["value"] == str(len(late))
        assert window(m) == ("2025-09-22", "2025-10-17")


@pytest.mark.parametrize("prior_day, reports", [
    (date(2025, 9, 26), False),  # school weeks after 22 Sep's week: 29 Sep, 6 Oct, 13 Oct = 3 < 4
    (date(2025, 9, 19), True),   # after 15 Sep's week: 22 Sep ... 13 Oct = 4
])
def test_lateness_pattern_cooldown(tmp_path, prior_day, reports):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 22), PATTERN_AS_OF)
    for d in [date(2025, 10, 3), date(2025, 10, 10), date(2025, 10, 17)]:
        b.mark("P1", d, "AM", "L")
    ledger = prior("lateness-pattern", "notify", "P1", prior_day)
    assert ("P1" in fired(run(b, tmp_path, PATTERN_AS_OF, prior=ledger), "lateness-pattern")) is reports


# ---- unexplained-absence-call ---------------------------------------------------------------------

@pytest.mark.parametrize("n_marks, as_of, prior_day, calls", [
    ([], date(2025, 10, 14), None, False),
    ([(date(2025, 10, 13), "AM")], date(2025, 10, 14), None, False),        # N yesterday only
    ([(date(2025, 10, 14), "AM")], date(2025, 10, 14), None, True),         # 1 N today
    ([(date(2025, 10, 13), "AM"), (date(2025, 10, 14), "AM")], date(2025, 10, 14), date(2025, 10, 13), True),
    # Re-run on Sat 18 Oct after Friday's call: 0 school days since, the cooldown holds.
    ([(date(2025, 10, 17), "AM")], date(2025, 10, 18), date(2025, 10, 17), False),
])
def test_unexplained_absence_call(tmp_path, n_marks, as_of, prior_day, calls):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), min(as_of, date(2025, 10, 17)))
    for d, s in n_marks:
        b.mark("P1", d, s, "N")
    ledger = prior("unexplained-absence-call", "notify", "P1", prior_day) if prior_day else []
    got = fired(run(b, tmp_path, as_of, prior=ledger), "unexplained-absence-call")
    assert ("P1" in got) is calls
    if calls:
        m = measure(got["P1"][0], "sessions coded {N} in the last 1 school days")
        assert m["value"] == "1" and window(m) == (as_of.isoformat(), as_of.isoformat())


# ---- unexplained-absence-ewo ----------------------------------------------------------------------

EWO_RUN = "current run of school days coded {N, O} ever"


@pytest.mark.parametrize("days, considers", [
    (["N", "O"], False),            # Mon 13, Tue 14
    (["N", "O", "N"], True),        # + Wed 15: 3 school days
    (["N", "O", "N", "O"], True),   # + Thu 16
    (["N", "O", "N-AM"], True),     # Wed 15 registered only in the morning: 3 days, 5 sessions
    (["N", "N/", "N", "N"], False), # Tue 14 has a present afternoon: the run is Wed-Thu, 2 days
    (["N", "G", "N", "N"], False),  # G is not N or O: the run is Wed-Thu, 2 days
])
def test_unexplained_absence_ewo_edges(tmp_path, days, considers):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), date(2025, 10, 10))
    spell = open_days(date(2025, 10, 13), date(2025, 10, 17))[:len(days)]
    for d, code in zip(spell, days):
        if code == "N/":
            b.mark("P1", d, "AM", "N").mark("P1", d, "PM", "\\")
        elif code == "N-AM":
            b.mark("P1", d, "AM", "N")
        else:
            b.day("P1", d, code)
    as_of = spell[-1]
    got = fired(run(b, tmp_path, as_of), "unexplained-absence-ewo")
    assert ("P1" in got) is considers
    if considers:
        [action] = got["P1"]
        assert action["advisory"] is True and action["params"]["role"] == "education_welfare_officer"
        assert measure(action, EWO_RUN)["value"] == str(len(days))


@pytest.mark.parametrize("as_of, prior_day, considers", [
    # Run of N Mon 6 - Fri 17 Oct (10 days); considered on Wed 8. As of Fri 17: 7 school days
    # since (cooldown of 3 met), but the run is 10 days: the same run, not again.
    (date(2025, 10, 17), date(2025, 10, 8), False),
    # A new run (Present Mon 20, N Tue 21 - Thu 23): 11 school days since >= 3.
    (date(2025, 10, 23), date(2025, 10, 8), True),
])
def test_unexplained_absence_ewo_once_per_run(tmp_path, as_of, prior_day, considers):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.days("P1", open_days(date(2025, 10, 6), date(2025, 10, 17)), "N")
    if as_of == date(2025, 10, 23):
        b.present("P1", date(2025, 10, 20), date(2025, 10, 20))
        b.days("P1", open_days(date(2025, 10, 21), date(2025, 10, 23)), "N")
    ledger = prior("unexplained-absence-ewo", "notify", "P1", prior_day)
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "unexplained-absence-ewo")) is considers


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("prior_day, considers", [
    # N Mon 6 - Wed 8 Oct (3 school days), considered on Wed 8. Y1 (non-compulsory school age:
    # not possible) Thu 9 - Wed 15 Oct, N again Thu 16 - Fri 17: as of Fri 17 one run of 5 days
    # from Mon 6 (the Y1 days neither break nor extend it), the run considered on Wed 8: not again.
    # The old idiom read 7 school days since (9-17 Oct) >= the run's 5 and considered it again.
    (date(2025, 10, 8), False),
    # Considered on Fri 3 Oct, the school day before the run: the run started after it.
    (date(2025, 10, 3), True),
    # Considered on Mon 6 Oct, the run's first day: the same run.
    (date(2025, 10, 6), False),
])
def test_unexplained_absence_ewo_once_per_run_across_not_possible_days(tmp_path, engine, prior_day, considers):
    as_of = date(2025, 10, 17)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 29), date(2025, 10, 3))
    b.days("P1", open_days(date(2025, 10, 6), date(2025, 10, 8)), "N")
    b.days("P1", open_days(date(2025, 10, 9), date(2025, 10, 15)), "Y1")
    b.days("P1", open_days(date(2025, 10, 16), as_of), "N")
    ledger = prior("unexplained-absence-ewo", "notify", "P1", prior_day)
    got = fired(run(b, tmp_path, as_of, prior=ledger, engine=engine), "unexplained-absence-ewo")
    assert ("P1" in got) is considers
    if considers:
        m = measure(got["P1"][0], EWO_RUN)
        assert (m["value"], m["run_start"]) == ("5", "2025-10-06")


# ---- yot-unexplained-absence ----------------------------------------------------------------------

def test_yot_unexplained_absence(tmp_path):
    as_of = date(2025, 10, 14)
    b = RegisterBuilder()
    b.pupil("YOT", youth_offending_team=True)
    b.pupil("YOT_PRESENT", youth_offending_team=True)
    b.pupil("YOT_YESTERDAY", youth_offending_team=True)
    b.pupil("NOT_YOT", youth_offending_team=False)
    b.pupil("EMPTY", youth_offending_team=None)  # empty attribute: no action
    for p in b.pupils:
        b.present(p, date(2025, 10, 6), as_of)
    for p in ("YOT", "NOT_YOT", "EMPTY"):
        b.mark(p, as_of, "AM", "N")
    b.mark("YOT_YESTERDAY", date(2025, 10, 13), "AM", "N")
    got = fired(run(b, tmp_path, as_of), "yot-unexplained-absence")
    assert set(got) == {"YOT"}
    assert measure(got["YOT"][0], "sessions coded {N} in the last 1 school days")["value"] == "1"
    # Once per school day: already reported earlier on a previous day is no bar (1 school day).
    again = run(b, tmp_path, as_of, prior=prior("yot-unexplained-absence", "notify", "YOT", date(2025, 10, 13)))
    assert set(fired(again, "yot-unexplained-absence")) == {"YOT"}


# ---- home-visit-actions-list ----------------------------------------------------------------------

def test_home_visit_actions_list(tmp_path):
    as_of = date(2025, 10, 14)
    b = RegisterBuilder()
    today = {
        "LIST_ILL": ("AM", "I"),         # absent with a reason: still a visit
        "LIST_C_PM": ("PM", "C"),        # authorised absence in the afternoon
        "LIST_PRESENT": None,
        "LIST_LATE": ("AM", "L"),        # late is present
        "LIST_NOT_POSSIBLE": ("AM", "Y1"),
        "LIST_YESTERDAY": None,
        "NOT_LIST": ("AM", "O"),
        "EMPTY": ("AM", "O"),
    }
    for p in today:
        flag = None if p == "EMPTY" else p.startswith("LIST")
        b.pupil(p, home_visit_list=flag).present(p, date(2025, 10, 6), as_of)
        if today[p]:
            b.mark(p, as_of, *today[p])
    b.mark("LIST_YESTERDAY", date(2025, 10, 13), "AM", "O")
    got = fired(run(b, tmp_path, as_of), "home-visit-actions-list")
    assert set(got) == {"LIST_ILL", "LIST_C_PM"}
    m = measure(got["LIST_ILL"][0], "absent sessions in the last 1 school days")
    assert m["value"] == "1" and window(m) == ("2025-10-14", "2025-10-14")
    # Once per school day: a visit yesterday does not stop today's.
    again = run(b, tmp_path, as_of, prior=prior("home-visit-actions-list", "notify", "LIST_ILL", date(2025, 10, 13)))
    assert set(fired(again, "home-visit-actions-list")) == {"LIST_ILL", "LIST_C_PM"}


# ---- best-class-celebration -----------------------------------------------------------------------

WEEK_FRIDAY = date(2025, 10, 10)  # this school week: Mon 6 - Fri 10 Oct
WEEK_ATTENDANCE = "attendance this school week"


def class_week(absences: dict[str, int], as_of: date = WEEK_FRIDAY, last_day: date = WEEK_FRIDAY) -> RegisterBuilder:
    """Two pupils per class, present Mon 6 Oct - last_day; `absences[cls]` I sessions from the
    class's first pupil's Monday AM."""
    b = RegisterBuilder()
    for cls, absent in absences.items():
        for k in (1, 2):
            pid = f"{cls}-{k}"
            b.pupil(pid, reg_group=cls).present(pid, date(2025, 10, 6), last_day)
        if absent:
            b.sessions(f"{cls}-1", date(2025, 10, 6), absent, "I")
    return b


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("absent_3b, winners", [
    # Each class: 2 pupils x 10 sessions = 20. 3A: 1 absent = 19/20 = 95%; 4A: 3 absent = 85%.
    (0, {"3B"}),        # 20/20 = 100%
    (1, {"3A", "3B"}),  # 19/20 = 95%: tied, both celebrated
    (2, {"3A"}),        # 18/20 = 90%
])
def test_best_class_celebration_edges(tmp_path, engine, absent_3b, winners):
    b = class_week({"3A": 1, "3B": absent_3b, "4A": 3})
    got = fired(run(b, tmp_path, WEEK_FRIDAY, engine=engine), "best-class-celebration")
    assert set(got) == winners
    for cls in winners:
        [action] = got[cls]
        assert action["subject"]["kind"] == "class" and action["verb"] == "award"
        m = measure(action, WEEK_ATTENDANCE)
        assert (m["numerator"], m["denominator"]) == (19 if cls == "3A" else 20 - absent_3b, 20)
        assert window(m) == ("2025-10-06", "2025-10-10")
        assert measure(action, "rank of attendance this school week")["value"] == "1"  # ties share rank 1


def test_best_class_celebration_pools_sessions(tmp_path):
    # Class A: A1 10/10; A2 Y2 (not possible) Mon-Thu, present Fri AM, ill Fri PM: 1/2.
    #   Pooled 11/12 = 91.7%; the average of pupils' rates would be 75%.
    # Class B: B1 9/10, B2 8/10: pooled 17/20 = 85%, average 85%. Pooled ranks A first.
    b = RegisterBuilder().pupil("A1", reg_group="A").pupil("A2", reg_group="A")
    b.pupil("B1", reg_group="B").pupil("B2", reg_group="B")
    for p in b.pupils:
        b.present(p, date(2025, 10, 6), WEEK_FRIDAY)
    b.days("A2", open_days(date(2025, 10, 6), date(2025, 10, 9)), "Y2").mark("A2", WEEK_FRIDAY, "PM", "I")
    b.sessions("B1", date(2025, 10, 7), 1, "I")
    b.sessions("B2", date(2025, 10, 7), 2, "I")
    got = fired(run(b, tmp_path, WEEK_FRIDAY), "best-class-celebration")
    assert set(got) == {"A"}
    m = measure(got["A"][0], WEEK_ATTENDANCE)
    assert (m["numerator"], m["denominator"]) == (11, 12)


@pytest.mark.parametrize("case", ["thursday", "friday_pm_not_taken", "friday_closed"])
def test_best_class_celebration_waits_for_the_friday_afternoon_register(tmp_path, case):
    if case == "thursday":
        b, as_of = class_week({"3A": 0, "3B": 2}, last_day=date(2025, 10, 9)), date(2025, 10, 9)
    elif case == "friday_pm_not_taken":
        b, as_of = class_week({"3A": 0, "3B": 2}, last_day=date(2025, 10, 9)), WEEK_FRIDAY
        for p in list(b.pupils):
            b.mark(p, WEEK_FRIDAY, "AM", "/")
    else:  # Friday 10 Oct is an INSET day: no school that Friday, so no celebration that week
        b, as_of = class_week({"3A": 0, "3B": 2}, last_day=date(2025, 10, 9)), WEEK_FRIDAY
        b.closures.add(WEEK_FRIDAY)
    assert fired(run(b, tmp_path, as_of), "best-class-celebration") == {}


@pytest.mark.parametrize("prior_day, celebrated", [
    (date(2025, 10, 7), False),  # already celebrated this school week (Tue 7 Oct)
    (date(2025, 10, 3), True),   # last week's celebration
])
def test_best_class_celebration_once_per_school_week(tmp_path, prior_day, celebrated):
    b = class_week({"3A": 0, "3B": 2})
    ledger = prior("best-class-celebration", "award", "3A", prior_day, kind="class")
    assert ("3A" in fired(run(b, tmp_path, WEEK_FRIDAY, prior=ledger), "best-class-celebration")) is celebrated


# ---- the absence bands: acceptable-attendance-contract, severe-absence-ewo-review, pa-sa-parent-meetings

# 50 open days from Wed 3 Sep to Tue 18 Nov 2025 (3 + 35 to 24 Oct, + 10 to 14 Nov, + 17, 18
# Nov) = 100 possible sessions: n absent sessions is exactly n% absence.
BAND_AS_OF = date(2025, 11, 18)


def band_register(absent: int) -> RegisterBuilder:
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN, BAND_AS_OF)
    if absent:
        b.sessions("P1", date(2025, 9, 8), absent, "I")
    return b


def check_band(actions, rule, absent, acts):
    got = fired(actions, rule)
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (absent, 100)
        assert window(m) == ("2025-09-03", "2025-11-18")
    return got


@pytest.mark.parametrize("absent, acts", [(7, False), (8, True), (9, True), (10, False)])
def test_acceptable_attendance_contract_edges(tmp_path, absent, acts):
    # 8.0% is "approaching 10%"; 10.0% is persistent absence itself.
    got = check_band(run(band_register(absent), tmp_path, BAND_AS_OF), "acceptable-attendance-contract", absent, acts)
    if acts:
        assert got["P1"][0]["advisory"] is True and got["P1"][0]["verb"] == "offer_support"


@pytest.mark.parametrize("prior_day, acts", [(date(2025, 10, 1), False), (date(2025, 7, 1), True)])
def test_acceptable_attendance_contract_once_per_academic_year(tmp_path, prior_day, acts):
    ledger = prior("acceptable-attendance-contract", "offer_support", "P1", prior_day)
    check_band(run(band_register(9), tmp_path, BAND_AS_OF, prior=ledger), "acceptable-attendance-contract", 9, acts)


@pytest.mark.parametrize("absent, acts", [(39, False), (40, True), (49, True), (50, False)])
def test_severe_absence_ewo_review_edges(tmp_path, absent, acts):
    # 40.0% up to, not including, severe absence (50.0%, handled by severe-absence).
    actions = run(band_register(absent), tmp_path, BAND_AS_OF)
    got = check_band(actions, "severe-absence-ewo-review", absent, acts)
    if acts:
        assert got["P1"][0]["advisory"] is True and got["P1"][0]["params"]["kind"] == "multi_agency"
    assert ("P1" in fired(actions, "severe-absence")) is (absent >= 50)


@pytest.mark.parametrize("prior_day, acts", [(date(2025, 9, 30), False), (date(2025, 7, 1), True)])
def test_severe_absence_ewo_review_once_per_academic_year(tmp_path, prior_day, acts):
    ledger = prior("severe-absence-ewo-review", "hold_meeting", "P1", prior_day)
    check_band(run(band_register(45), tmp_path, BAND_AS_OF, prior=ledger), "severe-absence-ewo-review", 45, acts)


@pytest.mark.parametrize("absent, acts", [(9, False), (10, True), (11, True), (50, True)])
def test_pa_sa_parent_meetings_edges(tmp_path, absent, acts):
    got = check_band(run(band_register(absent), tmp_path, BAND_AS_OF), "pa-sa-parent-meetings", absent, acts)
    if acts:
        assert got["P1"][0]["advisory"] is False and got["P1"][0]["params"]["kind"] == "support"


@pytest.mark.parametrize("prior_day, acts", [
    (date(2025, 11, 3), False),   # met earlier this half term (autumn 2 began Mon 3 Nov)
    (date(2025, 10, 24), True),   # last met in autumn 1: "regular" = once per half term
])
def test_pa_sa_parent_meetings_once_per_half_term(tmp_path, prior_day, acts):
    ledger = prior("pa-sa-parent-meetings", "hold_meeting", "P1", prior_day)
    check_band(run(band_register(12), tmp_path, BAND_AS_OF, prior=ledger), "pa-sa-parent-meetings", 12, acts)


# ---- ehcp-falling-attendance ------------------------------------------------------------------------

EHCP_AS_OF = date(2025, 12, 12)


def ehcp_register(recent: int, ehcp: bool = True, prior_year_absent: bool = False) -> RegisterBuilder:
    """As of Fri 12 Dec: the year to date is 3 Sep - 12 Dec = 68 days = 136 sessions; the last 6
    school weeks are 3 Nov - 12 Dec = 30 days = 60 sessions (half term skipped). 16 illness
    sessions from Mon 15 Sep (before the 6 weeks), `recent` from Mon 17 Nov."""
    b = RegisterBuilder().pupil("P1", ehcp=ehcp).present("P1", AUTUMN, EHCP_AS_OF)
    b.sessions("P1", date(2025, 9, 15), 16, "I")
    b.sessions("P1", date(2025, 11, 17), recent, "I")
    return b


@pytest.mark.parametrize("recent, informs", [
    # recent (60 - R)/60 <= year (136 - 16 - R)/136 - 5 points  <=>  19R >= 15 * 16 + 102 = 342
    (17, False),  # 43/60 = 71.67% vs 103/136 = 75.74% - 5 = 70.74%
    (18, True),   # 42/60 = 70.00% vs 102/136 = 75.00% - 5 = 70.00%: exactly 5 points lower
    (19, True),   # 41/60 = 68.33% vs 101/136 = 74.26% - 5 = 69.26%
])
def test_ehcp_falling_attendance_edges(tmp_path, recent, informs):
    got = fired(run(ehcp_register(recent), tmp_path, EHCP_AS_OF), "ehcp-falling-attendance")
    assert ("P1" in got) is informs
    if informs:
        [action] = got["P1"]
        assert action["advisory"] is True and action["verb"] == "inform_local_authority"
        recent_m = measure(action, "attendance in the last ehcp_recent_weeks school weeks")
        assert (recent_m["numerator"], recent_m["denominator"]) == (60 - recent, 60)
        assert window(recent_m) == ("2025-11-03", "2025-12-12")
        year_m = measure(action, "attendance this academic year")
        assert (year_m["numerator"], year_m["denominator"]) == (120 - recent, 136)


def test_ehcp_falling_attendance_needs_an_ehc_plan(tmp_path):
    assert fired(run(ehcp_register(19, ehcp=False), tmp_path, EHCP_AS_OF), "ehcp-falling-attendance") == {}


@pytest.mark.parametrize("prior_day, informs", [(date(2025, 11, 7), False), (date(2025, 10, 24), True)])
def test_ehcp_falling_attendance_once_per_half_term(tmp_path, prior_day, informs):
    ledger = prior("ehcp-falling-attendance", "inform_local_authority", "P1", prior_day)
    got = fired(run(ehcp_register(19), tmp_path, EHCP_AS_OF, prior=ledger), "ehcp-falling-attendance")
    assert ("P1" in got) is informs


def test_ehcp_falling_attendance_cannot_act_while_the_periods_coincide(tmp_path):
    # As of Fri 10 Oct the last 6 school weeks (from Mon 1 Sep) hold the whole year to date, so
    # the two rates are equal however the pupil attends: 10 absent of 56 in both.
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("P1", ehcp=True).present("P1", AUTUMN, as_of)
    b.days("P1", open_days(date(2025, 10, 6), as_of), "I")
    assert fired(run(b, tmp_path, as_of), "ehcp-falling-attendance") == {}


def test_ehcp_falling_attendance_does_not_compare_last_summer_with_this_september(tmp_path):
    # EHC-plan pupil ill 14-22 Jul 2025 (7 days = 14 sessions), then present every session of
    # 3-12 Sep 2025 (8 days = 16 sessions). As of Fri 12 Sep the last 6 school weeks are the
    # weeks of 8 Sep, 1 Sep, 21 Jul, 14 Jul, 7 Jul and 30 Jun: 30 Jun - 22 Jul (17 days) + 3-12
    # Sep = 50 sessions, 36 attended = 72%; this academic year is 16/16 = 100%. Attendance has
    # risen, not fallen, and the reading says the rule cannot act while this year is shorter than
    # the 6 weeks; yet 72% <= 100% - 5 points and the LA is informed.
    as_of = date(2025, 9, 12)
    b = RegisterBuilder().pupil("P1", ehcp=True).present("P1", date(2025, 6, 30), as_of)
    b.days("P1", open_days(date(2025, 7, 14), date(2025, 7, 22)), "I")
    assert fired(run(b, tmp_path, as_of), "ehcp-falling-attendance") == {}
