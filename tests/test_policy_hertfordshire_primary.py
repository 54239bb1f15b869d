"""Hand-computed edge tests for every rule policies/hertfordshire-primary.yaml defines itself:
penalty-notice-request, religious-observance-cap, attendance-certificate-term,
attendance-certificate-year, first-day-contact, la-10-day-absence, part-time-timetable-start,
part-time-timetable-end, unresolved-code-n (override), attendance-target and lateness-concern.

Every number was counted by hand on the test calendar of tests/registers.py. 2024/25: summer term
Tue 22 Apr - Tue 22 Jul 2025 (second half from Mon 2 Jun: 37 open days). 2025/26: autumn term
Wed 3 Sep - Fri 19 Dec 2025 (73 open days; half term Mon 27 - Fri 31 Oct), spring term from
Mon 5 Jan 2026. "The k-th school day back" counts the as-of day as the first.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction

from .evaluation import ENGINES, evaluate_register, fired, measure
from .registers import RegisterBuilder, open_days, open_days_back

POLICY = Path(__file__).resolve().parent.parent / "policies" / "hertfordshire-primary.yaml"
AUTUMN_START = date(2025, 9, 3)


def run(builder: RegisterBuilder, tmp_path: Path, as_of: date, prior=None, engine="builtin"):
    return evaluate_register(POLICY, builder, tmp_path, as_of, prior, engine)


def prior(rule: str, verb: str, on: date, subject: str = "P1", kind: str = "pupil", **kw) -> PriorAction:
    return PriorAction(rule, verb, kind, subject, "", on, **kw)


# ---- penalty-notice-request: >= 15 G/O/U sessions in the current and previous term -------------------
# As of Fri 16 Jan 2026 (spring term) the window is the autumn term's first open day, Wed 3 Sep 2025,
# to 16 Jan 2026. Autumn sessions start Mon 6 Oct; the 7 spring sessions are Mon 12 Jan AM - Thu
# 15 Jan AM.

PNR_AS_OF = date(2026, 1, 16)
PNR = "sessions coded penalty_codes this and previous term"


def _pnr_register(pid: str = "P1", autumn: int = 8, spring: int = 7, b: RegisterBuilder | None = None) -> RegisterBuilder:
    b = b or RegisterBuilder()
    b.pupil(pid).present(pid, AUTUMN_START, PNR_AS_OF)
    if autumn:
        b.code_sessions(pid, date(2025, 10, 6), autumn, "G")
    if spring:
        b.code_sessions(pid, date(2026, 1, 12), spring, "G")
    return b


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("autumn, acts", [
    (7, False),  # 7 last term + 7 this term = 14
    (8, True),   # 8 + 7 = 15: at least 15, spanning the two terms
    (9, True),   # 9 + 7 = 16
])
def test_penalty_notice_request_edges_across_two_terms(tmp_path, engine, autumn, acts):
    got = fired(run(_pnr_register(autumn=autumn), tmp_path, PNR_AS_OF, engine=engine), "penalty-notice-request")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "consider_penalty_notice" and action["advisory"] is True
        assert action["alternative"] is False
        m = measure(action, PNR)
        assert m["value"] == str(autumn + 7)
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2026-01-16")
        dates = [s["date"] for s in m["sessions"]]
        assert sum(d < "2026" for d in dates) == autumn and sum(d >= "2026" for d in dates) == 7


def test_penalty_notice_request_window_and_codes(tmp_path):
    b = RegisterBuilder()
    # ONETERM: 15 G this term alone ("and/or"), Mon 5 Jan AM - Wed 14 Jan AM: acts.
    _pnr_register("ONETERM", autumn=0, spring=0, b=b).code_sessions("ONETERM", date(2026, 1, 5), 15, "G")
    # OLDER: 8 G in July 2025 (summer 2024/25, the term before the previous one) + 7 in spring: 7.
    b.pupil("OLDER").present("OLDER", date(2025, 7, 7), PNR_AS_OF)
    b.code_sessions("OLDER", date(2025, 7, 7), 8, "G").code_sessions("OLDER", date(2026, 1, 12), 7, "G")
    # NCODE: 8 N in autumn (N is not in penalty_codes) + 7 G in spring: 7.
    _pnr_register("NCODE", autumn=0, spring=7, b=b).code_sessions("NCODE", date(2025, 10, 6), 8, "N")
    got = fired(run(b, tmp_path, PNR_AS_OF), "penalty-notice-request")
    assert set(got) == {"ONETERM"}
    assert measure(got["ONETERM"][0], PNR)["value"] == "15"


def test_penalty_notice_request_in_autumn_looks_back_to_last_years_summer(tmp_path):
    # Reading: in the autumn term the previous term is the previous academic year's summer term.
    # As of Fri 10 Oct 2025: window Tue 22 Apr 2025 - 10 Oct 2025. 8 G Mon 7 - Thu 10 Jul 2025 and
    # 7 G Mon 6 - Thu 9 Oct AM: 15.
    as_of = date(2025, 10, 10)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 6, 30), as_of)
    b.code_sessions("P1", date(2025, 7, 7), 8, "G").code_sessions("P1", date(2025, 10, 6), 7, "G")
    [action] = fired(run(b, tmp_path, as_of), "penalty-notice-request")["P1"]
    m = measure(action, PNR)
    assert m["value"] == "15" and (m["window"]["start"], m["window"]["end"]) == ("2025-04-22", "2025-10-10")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("ledger, verb, limit_prior", [
    # Once per term: already considered on Mon 5 Jan 2026 (this term): nothing.
    ([("penalty-notice-request", date(2026, 1, 5))], None, None),
    # Considered on Fri 19 Dec 2025 (last term): again this term (1 prior, below the limit of 2).
    ([("penalty-notice-request", date(2025, 12, 19))], "consider_penalty_notice", None),
    # Two within 3 years, one from the national rule (counted with it): the alternative instead.
    ([("penalty-notice-threshold", date(2023, 12, 1)), ("penalty-notice-request", date(2025, 3, 14))],
     "refer_local_authority", ["2023-12-01", "2025-03-14"]),
    # 3 years before Fri 16 Jan 2026 is 16 Jan 2023: an action that day is outside the last 3 years,
    # one on 17 Jan 2023 is inside.
    ([("penalty-notice-threshold", date(2023, 1, 16)), ("penalty-notice-request", date(2025, 3, 14))],
     "consider_penalty_notice", None),
    ([("penalty-notice-threshold", date(2023, 1, 17)), ("penalty-notice-request", date(2025, 3, 14))],
     "refer_local_authority", ["2023-01-17", "2025-03-14"]),
    # Both rules on the same day are one occasion, not two.
    ([("penalty-notice-threshold", date(2025, 3, 14)), ("penalty-notice-request", date(2025, 3, 14))],
     "consider_penalty_notice", None),
])
def test_penalty_notice_request_repetition_and_limit(tmp_path, engine, ledger, verb, limit_prior):
    actions = run(_pnr_register(), tmp_path, PNR_AS_OF, engine=engine,
                  prior=[prior(rule, "consider_penalty_notice", d) for rule, d in ledger])
    got = fired(actions, "penalty-notice-request").get("P1", [])
    assert [a["verb"] for a in got] == ([verb] if verb else [])
    if verb == "refer_local_authority":
        assert got[0]["alternative"] is True
        assert got[0]["params"]["service"] == "attendance legal intervention"
        assert got[0]["evidence"]["limit"]["prior"] == limit_prior


def test_penalty_notice_request_limit_ignores_earlier_alternatives(tmp_path):
    # An earlier alternative (a referral instead of a notice) is not a notice: 1 notice + 1
    # alternative within 3 years is below the limit of 2.
    ledger = [prior("penalty-notice-request", "consider_penalty_notice", date(2024, 3, 1)),
              prior("penalty-notice-request", "refer_local_authority", date(2025, 3, 14), alternative=True)]
    [action] = fired(run(_pnr_register(), tmp_path, PNR_AS_OF, prior=ledger), "penalty-notice-request")["P1"]
    assert action["verb"] == "consider_penalty_notice"


def test_national_threshold_counts_earlier_penalty_notice_requests(tmp_path):
    # As of Fri 28 Nov 2025: 10 G sessions Mon 17 - Fri 21 Nov meet the national threshold (10 in
    # the last 10 school weeks); penalty-notice-request does not act (10 < 15). Two notices were
    # considered through penalty-notice-request on 1 Mar 2024 and 14 Mar 2025 (both within 3 years).
    as_of = date(2025, 11, 28)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 11, 17), 10, "G")
    ledger = [prior("penalty-notice-request", "consider_penalty_notice", d) for d in (date(2024, 3, 1), date(2025, 3, 14))]
    actions = run(b, tmp_path, as_of, prior=ledger)
    assert "P1" not in fired(actions, "penalty-notice-request")
    assert [a["verb"] for a in fired(actions, "penalty-notice-threshold")["P1"]] == ["refer_local_authority"]


# ---- religious-observance-cap: more than 4 R sessions this academic year -------------------------

@pytest.mark.parametrize("sessions, acts", [(4, False), (5, True), (6, True)])
def test_religious_observance_cap_edges(tmp_path, sessions, acts):
    # As of Fri 12 Dec 2025; R sessions from Mon 6 Oct.
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 10, 6), sessions, "R")
    got = fired(run(b, tmp_path, as_of), "religious-observance-cap")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "headteacher"
        assert action["advisory"] is True
        m = measure(action, "sessions coded {R} this academic year")
        assert m["value"] == str(sessions) and (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2025-12-12")


@pytest.mark.parametrize("ledger, acts", [
    ([], False),  # 4 R in June 2025 (2024/25) + 4 R in Oct 2025: 4 this year
    ([prior("religious-observance-cap", "notify", date(2025, 11, 3))], False),
    ([prior("religious-observance-cap", "notify", date(2025, 7, 1))], True),
])
def test_religious_observance_cap_year_and_once_per_year(tmp_path, ledger, acts):
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 6, 2), as_of)
    b.code_sessions("P1", date(2025, 6, 9), 4, "R").code_sessions("P1", date(2025, 10, 6), 4, "R")
    if acts or ledger:  # the ledger cases have 5 R this year
        b.mark("P1", date(2025, 10, 8), "AM", "R")
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "religious-observance-cap")) is acts


# ---- attendance-certificate-term: attendance previous term = 100% -------------------------------------
# As of Fri 9 Jan 2026 the previous term is the autumn term: 3 Sep - 19 Dec 2025, 73 open days,
# 146 sessions.

CERT_AS_OF = date(2026, 1, 9)


@pytest.mark.parametrize("case, attending, possible, acts", [
    ("one absence", 145, 146, False),  # 145 / 146 = 99.3%
    ("all present", 146, 146, True),
    ("L and K count as attendance", 146, 146, True),
    ("a Y1 day is not possible", 144, 144, True),
])
def test_attendance_certificate_term_edges(tmp_path, case, attending, possible, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, CERT_AS_OF)
    b.day("P1", date(2026, 1, 6), "I")  # absent this term: irrelevant to last term's award
    if case == "one absence":
        b.mark("P1", date(2025, 12, 19), "PM", "I")
    elif case.startswith("L and K"):
        b.mark("P1", date(2025, 10, 1), "AM", "L", minutes_late=5).mark("P1", date(2025, 10, 2), "AM", "K")
    elif case.startswith("a Y1"):
        b.day("P1", date(2025, 11, 12), "Y1")
    got = fired(run(b, tmp_path, CERT_AS_OF), "attendance-certificate-term")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "award"
        m = measure(action, "attendance previous term")
        assert (m["numerator"], m["denominator"]) == (attending, possible)
        assert (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2025-12-19")


@pytest.mark.parametrize("ledger, acts", [
    ([prior("attendance-certificate-term", "award", date(2026, 1, 5))], False),  # awarded this term
    ([prior("attendance-certificate-term", "award", date(2025, 12, 1))], True),  # last term's (for summer)
])
def test_attendance_certificate_term_once_per_term(tmp_path, ledger, acts):
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, CERT_AS_OF)
    assert ("P1" in fired(run(b, tmp_path, CERT_AS_OF, prior=ledger), "attendance-certificate-term")) is acts


def test_attendance_certificate_term_needs_a_possible_session(tmp_path):
    # Joined Mon 5 Jan 2026: no possible session last term, attendance undefined: no award.
    b = RegisterBuilder().pupil("NEW", joined_on=date(2026, 1, 5)).present("NEW", date(2026, 1, 5), CERT_AS_OF)
    assert fired(run(b, tmp_path, CERT_AS_OF), "attendance-certificate-term") == {}


# ---- attendance-certificate-year: attendance previous academic year = 100% --------------------------
# As of Fri 12 Sep 2025 the previous academic year is 4 Sep 2024 - 22 Jul 2025. Pupils joined Mon
# 2 Jun 2025: 37 open days to 22 Jul (2 Jun - 18 Jul = 7 weeks, 21-22 Jul), 74 sessions.

YEAR_AS_OF = date(2025, 9, 12)


@pytest.mark.parametrize("absent, acts", [(1, False), (0, True)])  # 73 / 74 = 98.6%; 74 / 74
def test_attendance_certificate_year_edges(tmp_path, absent, acts):
    assert len(open_days(date(2025, 6, 2), date(2025, 7, 22))) == 37
    b = RegisterBuilder().pupil("P1", joined_on=date(2025, 6, 2)).present("P1", date(2025, 6, 2), YEAR_AS_OF)
    if absent:
        b.mark("P1", date(2025, 7, 22), "PM", "O")
    got = fired(run(b, tmp_path, YEAR_AS_OF), "attendance-certificate-year")
    assert ("P1" in got) is acts
    if acts:
        m = measure(got["P1"][0], "attendance previous academic year")
        assert (m["numerator"], m["denominator"]) == (74, 74)
        assert (m["window"]["start"], m["window"]["end"]) == ("2024-09-04", "2025-07-22")


def test_attendance_certificate_year_who_gets_it(tmp_path):
    b = RegisterBuilder()
    for pid, extra in [("FULL", {}), ("DONE", {}), ("LEFT", {"left_on": date(2025, 7, 22)})]:
        b.pupil(pid, joined_on=date(2025, 6, 2), **extra).present(pid, date(2025, 6, 2), date(2025, 7, 22))
        if pid != "LEFT":
            b.present(pid, AUTUMN_START, YEAR_AS_OF)
    b.pupil("NEW", joined_on=AUTUMN_START).present("NEW", AUTUMN_START, YEAR_AS_OF)  # nothing last year
    # DONE already had this year's award on Fri 5 Sep; FULL's award last year (10 Sep 2024) was for 2023/24.
    ledger = [prior("attendance-certificate-year", "award", date(2025, 9, 5), "DONE"),
              prior("attendance-certificate-year", "award", date(2024, 9, 10), "FULL")]
    # LEFT left on 22 Jul 2025: not on roll on 12 Sep, so no award from this rule.
    assert set(fired(run(b, tmp_path, YEAR_AS_OF, prior=ledger), "attendance-certificate-year")) == {"FULL"}


# ---- first-day-contact: an N on the as-of school day ------------------------------------------------

@pytest.mark.parametrize("n_sessions, acts", [(0, False), (1, True), (2, True)])
def test_first_day_contact_edges(tmp_path, n_sessions, acts):
    # As of Wed 12 Nov: the last 1 school day is 12 Nov; 0, 1 (AM) or 2 N sessions that day.
    as_of = date(2025, 11, 12)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 10), as_of)
    for session in ("AM", "PM")[:n_sessions]:
        b.mark("P1", as_of, session, "N")
    got = fired(run(b, tmp_path, as_of), "first-day-contact")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "attendance_officer"
        m = measure(action, "sessions coded {N} in the last 1 school days")
        assert m["value"] == str(n_sessions) and (m["window"]["start"], m["window"]["end"]) == ("2025-11-12", "2025-11-12")


def test_first_day_contact_only_today_and_again_each_day(tmp_path):
    # OLD: an N on Tue 11 Nov only. P1: N on 11 and 12 Nov, contacted on 11 Nov (1 school day ago,
    # the cooldown of 1 has passed): contacted again on 12 Nov.
    as_of = date(2025, 11, 12)
    b = RegisterBuilder()
    for pid in ("P1", "OLD"):
        b.pupil(pid).present(pid, date(2025, 11, 10), as_of).day(pid, date(2025, 11, 11), "N")
    b.day("P1", as_of, "N")
    ledger = [prior("first-day-contact", "notify", date(2025, 11, 11))]
    assert set(fired(run(b, tmp_path, as_of, prior=ledger), "first-day-contact")) == {"P1"}


# ---- la-10-day-absence: >= 20 unauthorised (G, N, O, U) sessions this academic year -------------------

TEN_DAY = "unauthorised sessions this academic year"


@pytest.mark.parametrize("sessions, acts", [(19, False), (20, True), (21, True)])
def test_la_10_day_absence_edges(tmp_path, sessions, acts):
    # As of Fri 12 Dec 2025; O sessions from Mon 6 Oct.
    as_of = date(2025, 12, 12)
    b = RegisterBuilder().pupil("P1").present("P1", AUTUMN_START, as_of).code_sessions("P1", date(2025, 10, 6), sessions, "O")
    got = fired(run(b, tmp_path, as_of), "la-10-day-absence")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "inform_local_authority"
        m = measure(action, TEN_DAY)
        assert m["value"] == str(sessions) and (m["window"]["start"], m["window"]["end"]) == ("2025-09-03", "2025-12-12")


def test_la_10_day_absence_codes_year_and_repetition(tmp_path):
    as_of = date(2025, 12, 12)
    b = RegisterBuilder()
    # MIX: 5 sessions each of G, N, O and U (N counts: a return the school owes takes N too): 20.
    b.pupil("MIX").present("MIX", AUTUMN_START, as_of)
    for k, code in enumerate("GNOU"):
        b.code_sessions("MIX", open_days(date(2025, 10, 6), as_of)[3 * k], 5, code)
    # LASTYEAR: 10 O in July 2025 and 10 in Oct 2025: 10 this year.
    b.pupil("LASTYEAR").present("LASTYEAR", date(2025, 7, 7), as_of)
    b.code_sessions("LASTYEAR", date(2025, 7, 7), 10, "O").code_sessions("LASTYEAR", date(2025, 10, 6), 10, "O")
    # DONE: 20 O, form sent on Mon 3 Nov: once per academic year.
    b.pupil("DONE").present("DONE", AUTUMN_START, as_of).code_sessions("DONE", date(2025, 10, 6), 20, "O")
    ledger = [prior("la-10-day-absence", "inform_local_authority", date(2025, 11, 3), "DONE")]
    got = fired(run(b, tmp_path, as_of, prior=ledger), "la-10-day-absence")
    assert set(got) == {"MIX"}
    assert sorted(s["code"] for s in measure(got["MIX"][0], TEN_DAY)["sessions"]) == sorted("GNOU" * 5)


# ---- part-time-timetable-start / -end: C2 marks in the last 5 and 20 school days ---------------------
# As of Fri 28 Nov 2025, counting back: 1 = 28 Nov, 4 = Tue 25 Nov, 5 = Mon 24 Nov, 6 = Fri 21 Nov,
# 19 = Tue 4 Nov, 20 = Mon 3 Nov, 21 = Fri 24 Oct (the half-term week is skipped).

PT_AS_OF = date(2025, 11, 28)
PT_NEW = "sessions coded {C2} in the last part_time_new_school_days school days"
PT_LOOKBACK = "sessions coded {C2} in the last part_time_lookback_school_days school days"
PT_QUIET = "sessions coded {C2} in the last part_time_quiet_school_days school days"


def back(k: int) -> date:
    return open_days_back(PT_AS_OF, k)[0]


def _pt_register(*days_back: int) -> RegisterBuilder:
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 13), PT_AS_OF)
    for k in days_back:
        b.mark("P1", back(k), "PM", "C2")
    return b


def test_counting_back():
    assert [back(k) for k in (1, 4, 5, 6, 19, 20, 21)] == [
        date(2025, 11, 28), date(2025, 11, 25), date(2025, 11, 24), date(2025, 11, 21),
        date(2025, 11, 4), date(2025, 11, 3), date(2025, 10, 24)]


@pytest.mark.parametrize("k, acts", [(4, True), (5, True), (6, False)])
def test_part_time_start_new_edge(tmp_path, k, acts):
    # The first and only C2 on the k-th school day back: within the last 5 school days for k <= 5.
    got = fired(run(_pt_register(k), tmp_path, PT_AS_OF), "part-time-timetable-start")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "notify" and action["params"]["role"] == "attendance_officer"
        new, lookback = measure(action, PT_NEW), measure(action, PT_LOOKBACK)
        assert new["value"] == "1" and lookback["value"] == "1"
        assert (new["window"]["start"], new["window"]["end"]) == ("2025-11-24", "2025-11-28")
        assert (lookback["window"]["start"], lookback["window"]["end"]) == ("2025-11-03", "2025-11-28")


@pytest.mark.parametrize("k, acts", [
    (19, False),  # an earlier C2 on Tue 4 Nov: the timetable is continuing, not new
    (20, False),  # on Mon 3 Nov, the 20th school day back: still inside the lookback
    (21, True),   # on Fri 24 Oct, the 21st: outside, so today's C2 starts a new timetable
])
def test_part_time_start_lookback_edge(tmp_path, k, acts):
    got = fired(run(_pt_register(1, k), tmp_path, PT_AS_OF), "part-time-timetable-start")
    assert ("P1" in got) is acts


@pytest.mark.parametrize("last, acts", [
    (date(2025, 11, 3), False),  # school days since: 4 - 28 Nov = 19 < 20
    (date(2025, 10, 24), True),  # 3 - 28 Nov = 20
])
def test_part_time_start_cooldown(tmp_path, last, acts):
    ledger = [prior("part-time-timetable-start", "notify", last)]
    assert ("P1" in fired(run(_pt_register(1), tmp_path, PT_AS_OF, prior=ledger), "part-time-timetable-start")) is acts


@pytest.mark.parametrize("k, acts", [
    (5, False),   # the last C2 on Mon 24 Nov: still inside the last 5 school days
    (6, True),    # Fri 21 Nov: 5 quiet school days
    (20, True),   # Mon 3 Nov: the 20th school day back, still inside the lookback
    (21, False),  # Fri 24 Oct: outside the lookback: no timetable to check
])
def test_part_time_end_edges(tmp_path, k, acts):
    got = fired(run(_pt_register(k), tmp_path, PT_AS_OF), "part-time-timetable-end")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]
        assert action["verb"] == "flag" and action["params"]["flag"] == "part_time_timetable_ended"
        assert action["advisory"] is True
        assert measure(action, PT_LOOKBACK)["value"] == "1"
        quiet = measure(action, PT_QUIET)
        assert quiet["value"] == "0" and (quiet["window"]["start"], quiet["window"]["end"]) == ("2025-11-24", "2025-11-28")


@pytest.mark.parametrize("last, acts", [(date(2025, 11, 3), False), (date(2025, 10, 24), True)])
def test_part_time_end_cooldown(tmp_path, last, acts):
    # Last C2 on Fri 21 Nov; a flag on Mon 3 Nov is 19 school days ago, one on Fri 24 Oct 20.
    ledger = [prior("part-time-timetable-end", "flag", last)]
    assert ("P1" in fired(run(_pt_register(6), tmp_path, PT_AS_OF, prior=ledger), "part-time-timetable-end")) is acts


# ---- unresolved-code-n (override): an N older than 5 school days -----------------------------------

@pytest.mark.parametrize("as_of, acts", [
    # N on Mon 10 Nov: as of Fri 14 Nov it is the 5th school day back (inside the last 5); as of
    # Mon 17 Nov the last 5 are 11-17 Nov.
    (date(2025, 11, 14), False),
    (date(2025, 11, 17), True),
])
def test_unresolved_code_n_override(tmp_path, as_of, acts):
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of).mark("P1", date(2025, 11, 10), "AM", "N")
    got = fired(run(b, tmp_path, as_of), "unresolved-code-n")
    assert ("P1" in got) is acts
    if acts:
        [action] = got["P1"]  # the override replaces the national rule: one action, not two
        assert action["defined_in"].endswith("hertfordshire-primary.yaml")
        assert "record the absence as unauthorised (O)" in action["params"]["message"]
        assert measure(action, "sessions coded {N} ever")["value"] == "1"
        assert measure(action, "sessions coded {N} in the last code_n_school_days school days")["value"] == "0"


@pytest.mark.parametrize("last, acts", [(date(2025, 11, 17), False), (date(2025, 11, 14), True)])
def test_unresolved_code_n_override_cooldown(tmp_path, last, acts):
    # As of Fri 21 Nov with the N of Mon 10 Nov still there: since Mon 17 Nov 4 school days (18-21),
    # held back; since Fri 14 Nov 5 (17-21): told again.
    as_of = date(2025, 11, 21)
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 11, 3), as_of).mark("P1", date(2025, 11, 10), "AM", "N")
    ledger = [prior("unresolved-code-n", "notify", last)]
    assert ("P1" in fired(run(b, tmp_path, as_of, prior=ledger), "unresolved-code-n")) is acts


# ---- attendance-target (school): whole-school attendance this year at most 96% ----------------------
# Two pupils present Wed 3 Sep - Tue 18 Nov 2025: 50 open days (38 + 12), 100 sessions each, 200 pooled.

TARGET_AS_OF = date(2025, 11, 18)


@pytest.mark.parametrize("absent, acts", [
    (7, False),  # 193 / 200 = 96.5%: above the target
    (8, True),   # 192 / 200 = 96.0%: not above
    (9, True),   # 191 / 200 = 95.5%
])
def test_attendance_target_edges(tmp_path, absent, acts):
    b = RegisterBuilder()
    for pid in ("P1", "P2"):
        b.pupil(pid).present(pid, AUTUMN_START, TARGET_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), 5, "I").code_sessions("P2", date(2025, 10, 6), absent - 5, "O")
    got = fired(run(b, tmp_path, TARGET_AS_OF), "attendance-target")
    assert bool(got) is acts
    if acts:
        flag, notify = got[""]
        assert flag["subject"]["kind"] == "school" and flag["verb"] == "flag"
        assert notify["verb"] == "notify" and notify["params"]["role"] == "governors"
        m = measure(flag, "attendance this academic year")
        assert (m["numerator"], m["denominator"]) == (200 - absent, 200)


def test_attendance_target_pools_sessions_not_rates(tmp_path):
    # P1: 100 sessions, 2 absent (98%). P2 joined Mon 3 Nov: 24 sessions to 18 Nov, 2 absent (91.7%).
    # Mean of rates 94.8% (would act); pooled (98 + 22) / 124 = 96.8%: above the target, no action.
    b = RegisterBuilder().pupil("P1").pupil("P2", joined_on=date(2025, 11, 3))
    b.present("P1", AUTUMN_START, TARGET_AS_OF).day("P1", date(2025, 9, 8), "I")
    b.present("P2", date(2025, 11, 3), TARGET_AS_OF).day("P2", date(2025, 11, 4), "I")
    assert fired(run(b, tmp_path, TARGET_AS_OF), "attendance-target") == {}


@pytest.mark.parametrize("last, acts", [(date(2025, 11, 3), False), (date(2025, 7, 22), True)])
def test_attendance_target_once_per_term(tmp_path, last, acts):
    b = RegisterBuilder()
    for pid in ("P1", "P2"):
        b.pupil(pid).present(pid, AUTUMN_START, TARGET_AS_OF)
    b.code_sessions("P1", date(2025, 9, 8), 8, "I")  # 192 / 200
    ledger = [prior("attendance-target", "flag", last, subject="", kind="school")]
    assert bool(fired(run(b, tmp_path, TARGET_AS_OF, prior=ledger), "attendance-target")) is acts


# ---- lateness-concern: >= 5 sessions coded L or U in the last 6 school weeks ------------------------
# As of Fri 28 Nov 2025 the last 6 school weeks are the weeks of 13, 20 Oct, 3, 10, 17, 24 Nov (half
# term skipped): Mon 13 Oct - Fri 28 Nov.

LATE_AS_OF = date(2025, 11, 28)
LATE = "sessions coded {L, U} in the last late_weeks school weeks"


def _late_register(codes: list[str], extra: date | None = None) -> RegisterBuilder:
    b = RegisterBuilder().pupil("P1").present("P1", date(2025, 10, 6), LATE_AS_OF)
    for code, d in zip(codes, open_days(date(2025, 11, 17), LATE_AS_OF)):
        b.mark("P1", d, "AM", code, minutes_late=10 if code == "L" else 40)
    if extra:
        b.mark("P1", extra, "AM", "L", minutes_late=10)
    return b


@pytest.mark.parametrize("late, acts", [(4, False), (5, True), (6, True)])
def test_lateness_concern_edges(tmp_path, late, acts):
    got = fired(run(_late_register(["L"] * late), tmp_path, LATE_AS_OF), "lateness-concern")
    assert ("P1" in got) is acts
    if acts:
        notify, meeting = got["P1"]
        assert notify["verb"] == "notify" and meeting["verb"] == "hold_meeting"
        assert meeting["params"]["kind"] == "support" and meeting["advisory"] is True
        m = measure(notify, LATE)
        assert m["value"] == str(late) and (m["window"]["start"], m["window"]["end"]) == ("2025-10-13", "2025-11-28")


@pytest.mark.parametrize("codes, extra, acts", [
    (["L", "U", "L", "U", "L"], None, True),   # L and U together: 5
    (["L"] * 4, date(2025, 10, 13), True),      # 4 + Mon 13 Oct, the first day of the window
    (["L"] * 4, date(2025, 10, 10), False),     # 4 + Fri 10 Oct, the day before it
])
def test_lateness_concern_codes_and_window(tmp_path, codes, extra, acts):
    assert ("P1" in fired(run(_late_register(codes, extra), tmp_path, LATE_AS_OF), "lateness-concern")) is acts


@pytest.mark.parametrize("last, acts", [
    (date(2025, 10, 13), False),  # school weeks after the week of 13 Oct: 20 Oct, 3, 10, 17, 24 Nov = 5
    (date(2025, 10, 10), True),   # after the week of 6 Oct: 6
])
def test_lateness_concern_cooldown(tmp_path, last, acts):
    ledger = [prior("lateness-concern", "notify", last)]
    assert ("P1" in fired(run(_late_register(["L"] * 5), tmp_path, LATE_AS_OF, prior=ledger), "lateness-concern")) is acts
