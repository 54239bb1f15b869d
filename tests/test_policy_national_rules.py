"""Hand-computed edge tests for the national rules that tests/test_evaluate_national.py does not
already test at their edges: unresolved-code-n, la-continuous-absence,
deletion-ground-continuous-absence, health-absence-la, social-worker-unexplained-absence,
social-worker-deletion, la-deletion-return, la-new-pupil-return and notice-to-improve, plus the
once-per-academic-year repetition of persistent-absence and severe-absence (their thresholds are
tested there; penalty-notice-threshold is fully covered there).

Every number was counted by hand on the test calendar of tests/registers.py. 2025/26: autumn opens
Wed 3 Sep 2025, half term Mon 27 - Fri 31 Oct, autumn closes Fri 19 Dec, spring opens Mon 5 Jan
2026. 2024/25 closes Tue 22 Jul 2025. "The k-th school day back" counts the as-of day as the first.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure
from .registers import RegisterBuilder, open_days, open_days_back

NATIONAL = Path(__file__).resolve().parent.parent / "policies" / "national.yaml"
AUTUMN_START = date(2025, 9, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine="builtin"):
    return evaluate_register(NATIONAL, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, on: date, subject: str = "P1", **kw) -> PriorAction:
    return PriorAction(rule, verb, "pupil", subject, "", on, **kw)


# ---- unresolved-code-n: N sessions ever - N sessions in the last 5 school days > 0 ----------------

N_ALL = "sessions coded {N} ever"
N_RECENT = "sessions coded {N} in the last code_n_school_days school days"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("as_of, overdue", [
    # N on Mon 10 Nov AM. As of Thu 13 Nov the last 5 school days are 7, 10, 11, 12, 13 Nov and as
    # of Fri 14 Nov they are 10-14 Nov: the N is still inside (the 4th and 5th school day back).
    # As of Mon 17 Nov they are 11, 12, 13, 14, 17 Nov: the N is the 6th school day back, overdue.
    (date(2025, 11, 13), False),
    (date(2025, 11, 14), False),
    (date(2025, 11, 17), True),
])
def test_unresolved_code_n_edges(tmp_path, engine, as_of, overdue):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.mark("P1", date(2025, 11, 10), "AM", "N")
    got = fired(run(b, tmp_path, as_of, engine=engine), "unresolved-code-n")
    assert ("P1" in got) is overdue
    if overdue:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "attendance_officer"
        ever = measure(action, N_ALL)
        assert ever["value"] == "1"
        assert ever["sessions"] == [{"date": "2025-11-10", "session": "AM", "code": "N"}]
        recent = measure(action, N_RECENT)
        assert recent["value"] == "0"
        assert (recent["window"]["start"], recent["window"]["end"]) == ("2025-11-11", "2025-11-17")


@pytest.mark.parametrize("as_of, overdue", [
    # N on Fri 24 Oct; the half-term week 27-31 Oct has no school days. As of Thu 6 Nov the last 5
    # school days are 24 Oct, 3, 4, 5, 6 Nov (N inside); as of Fri 7 Nov they are 3-7 Nov (N out).
    (date(2025, 11, 6), False),
    (date(2025, 11, 7), True),
])
def test_unresolved_code_n_counts_school_days_not_calendar_days(tmp_path, as_of, overdue):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 20), as_of)
    b.mark("P1", date(2025, 10, 24), "PM", "N")
    assert ("P1" in fired(run(b, tmp_path, as_of), "unresolved-code-n")) is overdue


@pytest.mark.parametrize("as_of, overdue", [
    # `ever` and school days reach back across the summer holiday. N on Tue 22 Jul 2025, the last
    # day of 2024/25. As of Mon 8 Sep the last 5 school days are 22 Jul, 3, 4, 5, 8 Sep (N inside);
    # as of Tue 9 Sep they are 3, 4, 5, 8, 9 Sep (N out: ever = 1, recent = 0).
    (date(2025, 9, 8), False),
    (date(2025, 9, 9), True),
])
def test_unresolved_code_n_reaches_back_across_the_academic_year(tmp_path, as_of, overdue):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 7, 14), as_of)
    b.mark("P1", date(2025, 7, 22), "AM", "N")
    got = fired(run(b, tmp_path, as_of), "unresolved-code-n")
    assert ("P1" in got) is overdue
    if overdue:
        assert measure(got["P1"][0], N_ALL)["value"] == "1" and measure(got["P1"][0], N_RECENT)["value"] == "0"


@pytest.mark.parametrize("as_of, again", [
    # Prior action Mon 17 Nov. Elapsed school days after it: as of Fri 21 Nov 18-21 Nov = 4 (< 5,
    # the cooldown holds it back); as of Mon 24 Nov 18-21, 24 Nov = 5 (acts again).
    (date(2025, 11, 21), False),
    (date(2025, 11, 24), True),
])
def test_unresolved_code_n_cooldown_of_five_school_days(tmp_path, as_of, again):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.mark("P1", date(2025, 11, 10), "AM", "N")
    ledger = [prior("unresolved-code-n", "notify", date(2025, 11, 17))]
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "unresolved-code-n")) is again


# ---- la-continuous-absence: a run of >= 10 school days all G/N/O, once per run --------------------

RUN = "current run of school days coded continuous_absence_codes ever"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("days, acts", [
    # Runs ending Fri 21 Nov: 9 school days = 11-21 Nov, 10 = 10-21 Nov, 11 = Fri 7-21 Nov.
    (9, False), (10, True), (11, True),
])
def test_la_continuous_absence_edges(tmp_path, engine, days, acts):
    as_of = date(2025, 11, 21)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    for k, d in enumerate(open_days_back(as_of, days)):
        b.day("P1", d, "GNO"[k % 3])  # any mix of G, N and O
    got = fired(run(b, tmp_path, as_of, engine=engine), "la-continuous-absence")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "inform_local_authority"
        m = measure(action, RUN)
        assert m["value"] == str(days) and m["window"]["end"] == "2025-11-21"
        assert m["run_start"] == open_days_back(as_of, days)[0].isoformat()


@pytest.mark.parametrize("run_days, as_of, acts", [
    # Run of O from Mon 10 Nov; the rule acted on Fri 21 Nov (the 10th day).
    # As of Mon 24 Nov: run 11 school days, 1 school day since the action: not again.
    (list(open_days(date(2025, 11, 10), date(2025, 11, 24))), date(2025, 11, 24), False),
    # As of Fri 5 Dec: run 20 (10 Nov - 5 Dec), 10 school days since (24 Nov - 5 Dec), but the
    # run started on 10 Nov, before the action: the same run, not reported again.
    (list(open_days(date(2025, 11, 10), date(2025, 12, 5))), date(2025, 12, 5), False),
    # Present Mon 24 Nov, then a new run 25 Nov - 8 Dec (10 school days) that started after the
    # action: the new run is reported.
    (list(open_days(date(2025, 11, 10), date(2025, 11, 21))) + list(open_days(date(2025, 11, 25), date(2025, 12, 8))),
     date(2025, 12, 8), True),
])
def test_la_continuous_absence_once_per_run(tmp_path, run_days, as_of, acts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of).days("P1", run_days, "O")
    ledger = [prior("la-continuous-absence", "inform_local_authority", date(2025, 11, 21))]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "la-continuous-absence")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], RUN)
        assert (m["value"], m["run_start"]) == ("10", "2025-11-25")


def _continuous_case(name: str, b: RegisterBuilder) -> tuple[date, int]:
    """Registers for the run readings; returns (as-of, expected run length)."""
    if name == "half term neither breaks nor extends":
        # O Mon 20 - Fri 24 Oct and Mon 3 - Fri 7 Nov: 5 + 5 = 10 school days (27-31 Oct skipped).
        b.present("P1", date(2025, 10, 6), date(2025, 11, 7))
        b.days("P1", open_days(date(2025, 10, 20), date(2025, 11, 7)), "O")
        return date(2025, 11, 7), 10
    if name == "academic years":
        # G Mon 14 - Tue 22 Jul 2025 (7 school days) and Wed 3 - Fri 5 Sep 2025 (3): 10.
        b.present("P1", date(2025, 7, 7), date(2025, 9, 5))
        b.days("P1", open_days(date(2025, 7, 14), date(2025, 9, 5)), "G")
        return date(2025, 9, 5), 10
    if name.startswith("not-possible day"):
        # O Fri 7 - Fri 21 Nov (11 weekdays) with Wed 12 Nov (and Thu 13 Nov) coded Y1 both
        # sessions: the Y1 days are skipped, so the run is 10 (or 9) school days.
        b.present("P1", date(2025, 11, 3), date(2025, 11, 21))
        b.days("P1", open_days(date(2025, 11, 7), date(2025, 11, 21)), "O")
        b.day("P1", date(2025, 11, 12), "Y1")
        if name.endswith("two"):
            b.day("P1", date(2025, 11, 13), "Y1")
            return date(2025, 11, 21), 9
        return date(2025, 11, 21), 10
    if name == "U ends the run":
        # 10-21 Nov (10 school days) with Mon 10 Nov coded U: U is not in {G, N, O}: run 9.
        b.present("P1", date(2025, 11, 3), date(2025, 11, 21))
        b.days("P1", open_days(date(2025, 11, 10), date(2025, 11, 21)), "O").day("P1", date(2025, 11, 10), "U")
        return date(2025, 11, 21), 9
    if name == "half a day present ends the run":
        # 10-21 Nov O, but Mon 10 Nov PM present: Monday is not a matching day: run 9.
        b.present("P1", date(2025, 11, 3), date(2025, 11, 21))
        b.days("P1", open_days(date(2025, 11, 10), date(2025, 11, 21)), "O").mark("P1", date(2025, 11, 10), "PM", "\\")
        return date(2025, 11, 21), 9
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["half term neither breaks nor extends", "academic years", "not-possible day",
                                  "not-possible day, two", "U ends the run", "half a day present ends the run"])
def test_la_continuous_absence_run_readings(tmp_path, name):
    b = RegisterBuilder().pupil("P1")
    as_of, length = _continuous_case(name, b)
    got = fired(run(b, tmp_path, as_of), "la-continuous-absence")
    assert ("P1" in got) is (length >= 10)
    if length >= 10:
        assert measure(got["P1"][0], RUN)["value"] == str(length)


@pytest.mark.parametrize("engine", ENGINES)
def test_la_continuous_absence_same_run_across_not_possible_days_is_not_reported_again(tmp_path, engine):
    # G Mon 10 - Fri 21 Nov (10 school days): reported on Fri 21 Nov. Then D (dual registered, at
    # the other school) Mon 24 Nov - Fri 5 Dec (10 school days): neither breaks nor extends the run.
    # G again Mon 8 Dec: the same run, now 11 days long, which started on Mon 10 Nov (before the
    # action): not reported again. (The old idiom compared 11 school days since the action with
    # the run of 11 and reported it again.)
    as_of = date(2025, 12, 8)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.days("P1", open_days(date(2025, 11, 10), date(2025, 11, 21)), "G")
    b.days("P1", open_days(date(2025, 11, 24), date(2025, 12, 5)), "D")
    b.day("P1", as_of, "G")
    ledger = [prior("la-continuous-absence", "inform_local_authority", date(2025, 11, 21))]
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=ledger, engine=engine), "la-continuous-absence")
    # Without the report the same register acts, and the evidence shows where the run began.
    [action] = fired(run(b, tmp_path, as_of, engine=engine), "la-continuous-absence")["P1"]
    m = measure(action, RUN)
    assert (m["value"], m["run_start"]) == ("11", "2025-11-10")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("run_from, last, as_of, acts", [
    # O from Mon 10 Nov; as of Fri 21 Nov the run is 10 school days. An action on Mon 10 Nov, the
    # run's first day, was in this run: hold.
    (date(2025, 11, 10), date(2025, 11, 10), date(2025, 11, 21), False),
    # O from Tue 11 Nov (present Mon 10); as of Mon 24 Nov the run is 10 (11-14, 17-21, 24 Nov). An
    # action on Mon 10 Nov, the school day before the run's first: a new run, act.
    (date(2025, 11, 11), date(2025, 11, 10), date(2025, 11, 24), True),
    # O from Mon 10 Nov, action on Fri 7 Nov: the run starts the next school day, across the
    # weekend: act.
    (date(2025, 11, 10), date(2025, 11, 7), date(2025, 11, 21), True),
])
def test_la_continuous_absence_run_start_against_last_action(tmp_path, engine, run_from, last, as_of, acts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.days("P1", open_days(run_from, as_of), "O")
    ledger = [prior("la-continuous-absence", "inform_local_authority", last)]
    got = fired(run(b, tmp_path, as_of, prior=ledger, engine=engine), "la-continuous-absence")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], RUN)
        assert (m["value"], m["run_start"]) == ("10", run_from.isoformat())


@pytest.mark.parametrize("engine", ENGINES)
def test_la_continuous_absence_half_day_present_breaks_the_run_and_a_new_run_is_reported(tmp_path, engine):
    # O Mon 10 - Fri 21 Nov, reported Fri 21 Nov. Mon 24 Nov: present AM, O PM, so Monday is not a
    # whole absent day and ends the run. O Tue 25 Nov - Mon 8 Dec: a new run of 10 school days
    # (25-28 Nov, 1-5 Dec, 8 Dec) whose first day, Tue 25 Nov, is after the report: reported.
    as_of = date(2025, 12, 8)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.days("P1", open_days(date(2025, 11, 10), as_of), "O").mark("P1", date(2025, 11, 24), "AM", "/")
    ledger = [prior("la-continuous-absence", "inform_local_authority", date(2025, 11, 21))]
    got = fired(run(b, tmp_path, as_of, prior=ledger, engine=engine), "la-continuous-absence")
    m = measure(got["P1"][0], RUN)
    assert (m["value"], m["run_start"]) == ("10", "2025-11-25")


# ---- deletion-ground-continuous-absence: a run of >= 20 school days, once per run -----------------

@pytest.mark.parametrize("days, acts", [
    # Runs ending Fri 5 Dec: 19 school days = Tue 11 Nov - 5 Dec, 20 = Mon 10 Nov - 5 Dec (4 full
    # weeks), 21 = Fri 7 Nov - 5 Dec.
    (19, False), (20, True), (21, True),
])
def test_deletion_ground_edges(tmp_path, days, acts):
    as_of = date(2025, 12, 5)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of)
    b.days("P1", open_days_back(as_of, days), "N")
    got = fired(run(b, tmp_path, as_of), "deletion-ground-continuous-absence")
    assert ("P1" in got) is acts
    if acts:
        refer, notify = got["P1"]
        assert refer["verb"] == "refer_local_authority" and refer["params"]["service"] == "children missing education"
        assert notify["verb"] == "notify" and notify["params"]["role"] == "attendance_lead"
        assert refer["advisory"] is True and notify["advisory"] is True
        assert measure(refer, RUN)["value"] == str(days)


@pytest.mark.parametrize("as_of, last, acts", [
    # Run of O from Mon 10 Nov; previous action on Fri 5 Dec (its 20th day).
    # As of Mon 8 Dec: run 21, 1 school day since: not again.
    (date(2025, 12, 8), date(2025, 12, 5), False),
    # As of Fri 16 Jan 2026: run 40 (10 Nov - 19 Dec = 30, 5 - 16 Jan = 10), across the Christmas
    # holiday, started on 10 Nov, before the action: the same run, not again.
    (date(2026, 1, 16), date(2025, 12, 5), False),
    # An action in an earlier run, Wed 1 Oct: as of Fri 5 Dec (run 20, from Mon 10 Nov): acts.
    (date(2025, 12, 5), date(2025, 10, 1), True),
])
def test_deletion_ground_once_per_run(tmp_path, as_of, last, acts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 9, 22), as_of)
    b.days("P1", open_days(date(2025, 11, 10), as_of), "O")
    ledger = [prior("deletion-ground-continuous-absence", "refer_local_authority", last)]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "deletion-ground-continuous-absence")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], RUN)
        assert (m["value"], m["run_start"]) == ("20", "2025-11-10")


def test_deletion_ground_same_run_across_not_possible_days(tmp_path):
    # N Mon 10 Nov - Fri 5 Dec (20 school days), referred on Fri 5 Dec. X (non-compulsory school
    # age, not required to attend: not possible) Mon 8 - Fri 19 Dec, N again from Mon 5 Jan 2026:
    # as of Fri 23 Jan the X days neither break nor extend the run: 20 + 15 = 35 school days from
    # Mon 10 Nov, the run the referral was made in. Not again.
    as_of = date(2026, 1, 23)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), date(2025, 11, 7))
    b.days("P1", open_days(date(2025, 11, 10), date(2025, 12, 5)), "N")
    b.days("P1", open_days(date(2025, 12, 8), date(2025, 12, 19)), "X")
    b.days("P1", open_days(date(2026, 1, 5), as_of), "N")
    ledger = [prior("deletion-ground-continuous-absence", "refer_local_authority", date(2025, 12, 5))]
    assert "P1" not in fired(run(b, tmp_path, as_of, prior=ledger), "deletion-ground-continuous-absence")
    [refer, _] = fired(run(b, tmp_path, as_of), "deletion-ground-continuous-absence")["P1"]
    m = measure(refer, RUN)
    assert (m["value"], m["run_start"]) == ("35", "2025-11-10")


# ---- health-absence-la: >= 30 illness (I) sessions this academic year --------------------------

SICK = "sessions coded sickness_codes this academic year"


@pytest.mark.parametrize("sessions, acts", [(29, False), (30, True), (31, True)])
def test_health_absence_la_edges(tmp_path, sessions, acts):
    # Cumulative, not consecutive: 14 I sessions from Mon 8 Sep (8-12, 15-16 Sep) and the rest
    # (15, 16 or 17) from Mon 1 Dec. As of Fri 12 Dec 2025.
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 9, 8), 14, "I")
    b.sessions("P1", date(2025, 12, 1), sessions - 14, "I")
    got = fired(run(b, tmp_path, as_of), "health-absence-la")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "inform_local_authority"
        m = measure(action, SICK)
        assert m["value"] == str(sessions) and len(m["sessions"]) == sessions
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2025-12-12")


def test_health_absence_la_leaves_out_appointments_and_last_year(tmp_path):
    as_of = date(2025, 12, 12)
    b = RegisterBuilder()
    # M1: 30 absence sessions Mon 24 Nov - Fri 12 Dec (15 school days), one of them M (an
    # appointment): 29 I -> no return.
    b.pupil("M1").present("M1", AUTUMN_START, as_of)
    b.sessions("M1", date(2025, 11, 24), 30, "I")
    b.mark("M1", date(2025, 12, 3), "AM", "M")
    # Y1: 10 I sessions Mon 14 - Fri 18 Jul 2025 (last academic year) and 20 Mon 1 - Fri 12 Dec:
    # 20 this year.
    b.pupil("Y1").present("Y1", date(2025, 7, 14), as_of)
    b.sessions("Y1", date(2025, 7, 14), 10, "I")
    b.sessions("Y1", date(2025, 12, 1), 20, "I")
    # C1: control, 30 I sessions Mon 24 Nov - Fri 12 Dec: acts.
    b.pupil("C1").present("C1", AUTUMN_START, as_of)
    b.sessions("C1", date(2025, 11, 24), 30, "I")
    assert set(fired(run(b, tmp_path, as_of), "health-absence-la")) == {"C1"}


@pytest.mark.parametrize("last, acts", [(date(2025, 10, 1), False), (date(2025, 7, 1), True)])
def test_health_absence_la_once_per_academic_year(tmp_path, last, acts):
    # A return made on 1 Oct 2025 (this academic year) is not repeated; one made on 1 Jul 2025
    # (2024/25) does not stop this year's.
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 24), 30, "I")  # Mon 24 Nov - Fri 12 Dec
    ledger = [prior("health-absence-la", "inform_local_authority", last)]
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "health-absence-la")) is acts


# ---- social-worker-unexplained-absence: social worker and an N on the as-of school day --------------

@pytest.mark.parametrize("n_sessions, acts", [(0, False), (1, True), (2, True)])
def test_social_worker_unexplained_absence_edges(tmp_path, n_sessions, acts):
    # As of Wed 12 Nov: the last 1 school day is 12 Nov itself; 0, 1 (AM) or 2 N sessions that day.
    as_of = date(2025, 11, 12)
    b = RegisterBuilder().pupil("P1", social_worker=True).present("P1", date(2025, 11, 10), as_of)
    for session in ("AM", "PM")[:n_sessions]:
        b.mark("P1", as_of, session, "N")
    got = fired(run(b, tmp_path, as_of), "social-worker-unexplained-absence")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "social_worker"
        m = measure(action, "sessions coded {N} in the last 1 school days")
        assert m["value"] == str(n_sessions)
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-11-12", "2025-11-12")


def test_social_worker_unexplained_absence_who_and_when(tmp_path):
    as_of = date(2025, 11, 12)
    b = RegisterBuilder()
    for pid, attrs in [("SW", {"social_worker": True}), ("NO", {"social_worker": False}), ("EMPTY", {}),
                       ("YESTERDAY", {"social_worker": True})]:
        b.pupil(pid, **attrs).present(pid, date(2025, 11, 10), as_of)
    for pid in ("SW", "NO", "EMPTY"):
        b.mark(pid, as_of, "AM", "N")
    b.mark("YESTERDAY", date(2025, 11, 11), "AM", "N")  # an N on Tue 11 Nov only: not today
    # SW was already notified on Tue 11 Nov (1 school day ago: the cooldown of 1 has passed) and a
    # ledger entry dated today itself does not count (strictly before the as-of date).
    ledger = [prior("social-worker-unexplained-absence", "notify", date(2025, 11, 11), "SW"),
              prior("social-worker-unexplained-absence", "notify", as_of, "SW")]
    assert set(fired(run(b, tmp_path, as_of, prior=ledger), "social-worker-unexplained-absence")) == {"SW"}


# ---- social-worker-deletion and la-deletion-return: a recorded leave date -------------------------

DELETION_RULES = ["social-worker-deletion", "la-deletion-return"]
RECENT = "sessions in the last recent_leaver_school_days school days"


@pytest.mark.parametrize("rule", DELETION_RULES)
@pytest.mark.parametrize("left_on, acts", [
    # As of Fri 14 Nov. A leave date of today, or one recorded ahead (Fri 21 Nov), acts; none does not.
    (date(2025, 11, 14), True),
    (date(2025, 11, 21), True),
    (None, False),
])
def test_deletion_rules_on_a_recorded_leave_date(tmp_path, rule, left_on, acts):
    as_of = date(2025, 11, 14)
    b = RegisterBuilder().pupil("P1", social_worker=True, joined_on=AUTUMN_START, left_on=left_on)
    b.present("P1", AUTUMN_START, as_of)
    got = fired(run(b, tmp_path, as_of), rule)
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["params"]["role"] == ("social_worker" if rule == "social-worker-deletion" else "attendance_officer")
        # 10 school days back from Fri 14 Nov: 3-7 and 10-14 Nov, 20 sessions marked.
        m = measure(action, RECENT)
        assert m["value"] == "20" and (m["window"]["start"], m["window"]["end"]) == ("2025-11-03", "2025-11-14")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("has_left", [False, True])
@pytest.mark.parametrize("rule", DELETION_RULES)
@pytest.mark.parametrize("last_mark, acts", [
    # As of Fri 14 Nov the last 10 school days are 3-7 and 10-14 Nov: a last mark on Tue 4 Nov (9th
    # school day back) or Mon 3 Nov (10th) is recent; Fri 24 Oct (11th, before half term) is not.
    (date(2025, 11, 4), True),
    (date(2025, 11, 3), True),
    (date(2025, 10, 24), False),
])
def test_deletion_rules_recent_leaver_edge(tmp_path, rule, last_mark, acts, has_left, engine):
    # The leave date is recorded ahead (Fri 21 Nov: still on roll), or is the last marked day (the
    # pupil has left, and is evaluated as a leaver after it).
    as_of = date(2025, 11, 14)
    left_on = last_mark if has_left else date(2025, 11, 21)
    b = RegisterBuilder().pupil("P1", social_worker=True, joined_on=AUTUMN_START, left_on=left_on)
    b.present("P1", AUTUMN_START, last_mark)
    got = fired(run(b, tmp_path, as_of, engine=engine), rule)
    assert ("P1" in got) is acts
    if acts:
        # 4 sessions (3 and 4 Nov) or 2 (3 Nov).
        assert measure(got["P1"][0], RECENT)["value"] == {date(2025, 11, 4): "4", date(2025, 11, 3): "2"}[last_mark]


def test_deletion_rules_need_a_social_worker_and_act_once(tmp_path):
    as_of = date(2025, 11, 14)
    b = RegisterBuilder()
    b.pupil("NOSW", social_worker=False, joined_on=AUTUMN_START, left_on=as_of).present("NOSW", AUTUMN_START, as_of)
    b.pupil("DONE", social_worker=True, joined_on=AUTUMN_START, left_on=as_of).present("DONE", AUTUMN_START, as_of)
    ledger = [prior("social-worker-deletion", "notify", date(2025, 11, 7), "DONE"),
              prior("la-deletion-return", "notify", date(2025, 11, 7), "DONE")]
    actions = run(b, tmp_path, as_of, prior=ledger)
    assert set(fired(actions, "social-worker-deletion")) == set()  # NOSW: no social worker; DONE: done
    assert set(fired(actions, "la-deletion-return")) == {"NOSW"}  # DONE: once per pupil, ever


@pytest.mark.parametrize("rule", DELETION_RULES)
def test_deletion_rules_with_no_join_date(tmp_path, rule):
    # The reading: "true exactly when a leave date is recorded". P1 was on roll before the register
    # began (joined_on empty) and leaves today, Fri 14 Nov 2025.
    as_of = date(2025, 11, 14)
    b = RegisterBuilder().pupil("P1", social_worker=True, left_on=as_of).present("P1", AUTUMN_START, as_of)
    assert "P1" in fired(run(b, tmp_path, as_of), rule)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rule", DELETION_RULES)
def test_deletion_rules_report_a_recent_leaver(tmp_path, rule, engine):
    # P1's last day on roll was Thu 13 Nov (marks to 13 Nov, the 2nd school day back); as of
    # Fri 14 Nov P1 has 18 sessions in the last 10 school days (3-7, 10-13 Nov). The rules are about
    # leavers (scope leaver), so a leave date that has passed is still reported.
    as_of = date(2025, 11, 14)
    b = RegisterBuilder().pupil("P1", social_worker=True, joined_on=AUTUMN_START, left_on=date(2025, 11, 13))
    b.present("P1", AUTUMN_START, date(2025, 11, 13))
    got = fired(run(b, tmp_path, as_of, engine=engine), rule)
    assert measure(got["P1"][0], RECENT)["value"] == "18"
    assert got["P1"][0]["subject"] == {"kind": "pupil", "id": "P1", "school_id": ""}


@pytest.mark.parametrize("rule", DELETION_RULES)
def test_deletion_rules_not_for_a_pupil_who_has_not_joined(tmp_path, rule):
    # P1 joins on Mon 17 Nov with a leave date already recorded (Fri 19 Dec); as of Fri 14 Nov P1 is
    # not yet a subject of any rule, leaver rules included. The Z marks before joining are not on roll.
    as_of = date(2025, 11, 14)
    b = RegisterBuilder().pupil("P1", social_worker=True, joined_on=date(2025, 11, 17), left_on=date(2025, 12, 19))
    b.days("P1", open_days(date(2025, 11, 3), date(2025, 11, 14)), "Z")
    b.present("P1", date(2025, 11, 17), date(2025, 12, 19))
    assert "P1" not in fired(run(b, tmp_path, as_of), rule)
    assert "P1" in fired(run(b, tmp_path, date(2025, 11, 17)), rule)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_pupil_who_has_left_gets_no_pupil_rule_action(tmp_path, engine):
    # P1 is absent (O) every day from Mon 3 Nov and leaves on Thu 13 Nov: 3 Sep - 24 Oct is 38 open
    # days present, 3-13 Nov 9 days absent, so absence this academic year is 18 of 94 sessions
    # (19.1%, at least 10%). On Thu 13 Nov, on roll, persistent-absence acts; on Fri 14 Nov P1 has
    # left: only the leaver rules act, never persistent-absence.
    b = RegisterBuilder().pupil("P1", social_worker=True, joined_on=AUTUMN_START, left_on=date(2025, 11, 13))
    b.present("P1", AUTUMN_START, date(2025, 11, 13))
    b.days("P1", open_days(date(2025, 11, 3), date(2025, 11, 13)), "O")
    on_last_day = run(b, tmp_path, date(2025, 11, 13), engine=engine)
    m = measure(fired(on_last_day, "persistent-absence")["P1"][0], "absence this academic year")
    assert (m["numerator"], m["denominator"]) == (18, 94)
    day_after = run(b, tmp_path, date(2025, 11, 14), engine=engine)
    assert sorted({a["rule"] for a in day_after}) == ["la-deletion-return", "social-worker-deletion"]


# ---- la-new-pupil-return: every mark on roll within the last 5 calendar days ----------------------

@pytest.mark.parametrize("first_day, acts", [
    # As of Mon 17 Nov the last 5 days are Thu 13 - Mon 17 Nov. A pupil whose first day on roll is
    # Wed 12 Nov (as-of - 5) is not new; Thu 13 Nov (as-of - 4) and Fri 14 Nov are.
    (date(2025, 11, 12), False),
    (date(2025, 11, 13), True),
    (date(2025, 11, 14), True),
])
def test_la_new_pupil_return_edges(tmp_path, first_day, acts):
    as_of = date(2025, 11, 17)
    b = RegisterBuilder().pupil("P1", joined_on=first_day).present("P1", first_day, as_of)
    got = fired(run(b, tmp_path, as_of), "la-new-pupil-return")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        sessions = 2 * len(open_days(first_day, as_of))  # 13 Nov: 13, 14, 17 = 6; 14 Nov: 4
        assert measure(action, "sessions ever")["value"] == str(sessions)
        last5 = measure(action, "sessions in the last new_pupil_return_days days")
        assert last5["value"] == str(sessions)
        assert (last5["window"]["start"], last5["window"]["end"]) == ("2025-11-13", "2025-11-17")


def test_la_new_pupil_return_ignores_z_before_joining_and_acts_once(tmp_path):
    as_of = date(2025, 11, 17)
    b = RegisterBuilder()
    # Z (not yet on roll) on 10-12 Nov, joined Thu 13 Nov: the Z marks are not on roll: new.
    b.pupil("Z1", joined_on=date(2025, 11, 13)).present("Z1", date(2025, 11, 13), as_of)
    b.days("Z1", open_days(date(2025, 11, 10), date(2025, 11, 12)), "Z")
    # Same, already reported on Fri 14 Nov: once per pupil.
    b.pupil("Z2", joined_on=date(2025, 11, 13)).present("Z2", date(2025, 11, 13), as_of)
    ledger = [prior("la-new-pupil-return", "notify", date(2025, 11, 14), "Z2")]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "la-new-pupil-return")
    assert set(got) == {"Z1"}
    assert measure(got["Z1"][0], "sessions ever")["value"] == "6"


# ---- notice-to-improve: the penalty threshold and support offered this academic year --------------

SUPPORT = "actions with verb offer_support this academic year"


@pytest.mark.parametrize("sessions, acts", [(9, False), (10, True), (11, True)])
def test_notice_to_improve_edges(tmp_path, sessions, acts):
    # As of Fri 28 Nov; G sessions from Mon 17 Nov (inside the last 10 school weeks, 15 Sep - 28 Nov);
    # support was offered (offer_support, by any rule) on Wed 1 Oct 2025.
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 17), sessions, "G")
    ledger = [prior("escalation-after-one-term", "offer_support", date(2025, 10, 1))]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "notice-to-improve")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "issue_notice_to_improve" and action["advisory"] is True
        assert measure(action, SUPPORT)["value"] == "1"
        assert measure(action, "sessions coded penalty_codes in the last penalty_window school weeks")["value"] == str(sessions)


@pytest.mark.parametrize("ledger, acts", [
    ([], False),  # no support offered
    ([prior("x", "offer_support", date(2025, 7, 1))], False),  # offered in 2024/25
    ([prior("x", "offer_support", date(2025, 10, 1), status="dismissed")], False),
    ([prior("x", "offer_support", date(2025, 11, 28))], False),  # dated the as-of day itself
    ([prior("x", "offer_support", date(2025, 9, 3))], True),  # the first day of this year
    # Cooldown of 10 school weeks after a notice: Fri 19 Sep -> 9 school weeks (22 Sep ... 24 Nov,
    # half term skipped): held back; Fri 12 Sep -> 10 (15 Sep ... 24 Nov): acts again.
    ([prior("x", "offer_support", date(2025, 9, 3)), prior("notice-to-improve", "issue_notice_to_improve",
                                                           date(2025, 9, 19))], False),
    ([prior("x", "offer_support", date(2025, 9, 3)), prior("notice-to-improve", "issue_notice_to_improve",
                                                           date(2025, 9, 12))], True),
])
def test_notice_to_improve_support_and_cooldown(tmp_path, ledger, acts):
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", date(2025, 11, 17), 10, "G")
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "notice-to-improve")) is acts


# ---- persistent-absence and severe-absence: once per academic year ----------------------------------

@pytest.mark.parametrize("rule", ["persistent-absence", "severe-absence"])
@pytest.mark.parametrize("last, acts", [
    (None, True),
    (date(2025, 9, 12), False),  # earlier this academic year
    (date(2025, 7, 22), True),  # the last day of 2024/25
])
def test_absence_flags_once_per_academic_year(tmp_path, rule, last, acts):
    # 10 school days 3-16 Sep = 20 possible sessions, 10 absent (I): absence 50%: persistent and severe.
    as_of = date(2025, 9, 16)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of)
    b.sessions("P1", AUTUMN_START, 10, "I")
    ledger = [prior(rule, "flag", last)] if last else []
    got = fired(run(b, tmp_path, as_of, prior=ledger), rule)
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], "absence this academic year")
        assert (m["numerator"], m["denominator"]) == (10, 20)


# ---- repeat: {once_per: run}, the decision itself ---------------------------------------------------

@pytest.mark.parametrize("history, run_start, acts", [
    ([], date(2025, 11, 10), True),                                   # never acted
    ([date(2025, 11, 10)], date(2025, 11, 10), False),                # the run started on the action's day
    ([date(2025, 11, 10)], date(2025, 11, 11), True),                 # ... or the day after
    ([date(2025, 11, 10)], None, False),                              # no current run: wait for one
    ([date(2025, 11, 3), date(2025, 11, 10)], date(2025, 11, 5), False),  # the latest action counts
    ([("la-new-pupil-return", "notify", date(2025, 11, 10))], date(2025, 11, 3), True),  # another rule's action
])
def test_once_per_run_gate(history, run_start, acts):
    from engine.act import repetition_gate

    from .evaluation import checked

    rule = checked(NATIONAL).rule("la-continuous-absence")
    assert rule.repeat.once_per == "run"
    prior_actions = [prior(*h) if isinstance(h, tuple) else prior("la-continuous-absence", "notify", h) for h in history]
    gate = repetition_gate(rule, prior_actions, "", date(2025, 11, 21), calendars=None, run_start=run_start)
    assert gate.acts is acts
    if not acts:
        assert gate.control == "once_per" and gate.blocking == (max(p.as_of for p in prior_actions),)
