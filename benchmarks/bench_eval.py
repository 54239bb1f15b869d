"""How fast is an evaluation, against hand-written DuckDB SQL computing the same metrics?

For national.yaml and the five school policies in policies/, on synthetic registers written by
`rollbook sample --seed 1` (cached and reused under --cache, default /tmp/rollbook-bench/<size>-<format>):

    school      1 school, 1,000 pupils, one school year     (~370k marks)
    trust       5 schools, 25,000 pupils, one school year   (~9.3M marks; `rollbook sample
                --schools 5` makes every fourth school a secondary weighted 4:1, so the
                schools have 3,125 / 3,125 / 3,125 / 12,500 / 3,125 pupils)
    mid         5 schools, 5,000 pupils (~1.8M marks), for trying a change between the two
    quick       1 school, 200 pupils (CSV), and quicktrust 5 schools, 250 pupils (Parquet): --quick

and the as-of date the register's last open day (2026-07-22) unless --as-of says otherwise, it
prints per (size, format, policy) median wall times over --repeat runs, in seconds:

    load      register load + policy attribute typing (engine.api.prepare_register)
    metric    the generated metrics query: engine.metrics.build_facts on the loaded tables, with
              an empty ledger table as run_evaluation gives it
    yardT     the YARDSTICK, the hand-written SQL below, on the same loaded tables
    m/yT      metric / yardT                                   (issue target <= 1.25)
    yardF     the same hand-written SQL reading the files (read_parquet / read_csv views)
    eval      engine.api.run_evaluation(..., rules_engine='builtin'): files to action records
    e/yF      eval / yardF                                     (issue target <= 2)
    durabl    the same with rules_engine='durable' (skipped unless durable_available())
    d/yF      durabl / yardF                                   (issue target <= 3)
    MB        peak RSS (VmHWM, reset before each stage through /proc/self/clear_refs) of yardF,
              of the metric stage (the loaded register is resident) and of each whole eval
    mem       eval peak / yardF peak                           (issue target <= 2)
    check     the yardstick's values against the facts tables build_facts wrote: every pupil on
              roll on the as-of date, and the class / school sums where the policy has those scopes

Every measurement runs in its own interpreter (a child of this script), so neither times nor
peaks pollute each other. Also printed: per (size, format) the mark count and a bare scan of the
marks file (count(*), which Parquet answers from its footer, and a scan that decodes every column
the metrics read), where each eval's time goes (run_evaluation's own timings), and `rollbook eval`
from the command line on the one-school register (issue target <= 1 s), with the policy checked in
the run and with the checked policy kept from an earlier run (engine/check_cache.py).

The yardstick is literal SQL (BOUNDS_SQL, METRIC_SQL, CURRENT_RUNS, LONGEST_RUNS), written from
docs/semantics.md, not generated from the Plan. The metrics each policy's plan must have are
listed by hand (POLICY_METRICS, with a hand-made MetricSpec per name in expected_specs); the
script checks the compiled plan has exactly those, in that order, so a change to a policy or to
the compiler shows as PLAN DRIFT instead of being compared column by wrong column. Ledger metrics
(`school days since last action ...`, `actions with verb ...`) are measured against an empty
ledger (no prior actions): the yardstick writes them as constants (0 actions, "never" = 10**12).

    .venv/bin/python benchmarks/bench_eval.py --quick            # about a minute: does it work?
    .venv/bin/python benchmarks/bench_eval.py --sizes school     # the 1,000-pupil school-year
    .venv/bin/python benchmarks/bench_eval.py                    # school and trust, both formats
    options: --sizes school,trust --formats parquet,csv --policies national,mason-moor
             --repeat 3 --as-of YYYY-MM-DD --check-dates D1,D2 --streaming-yardstick
             --no-cli --no-durable --json FILE

This is a script, not a test: it prints figures; it exits 1 if a cross-check finds a mismatch,
a plan has drifted from the hand-written list, or a measurement fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZES = {  # name -> (pupils, schools, marks the issue expects or None)
    "quick": (200, 1, None),
    "quicktrust": (250, 5, None),
    "school": (1000, 1, 380_000),
    "mid": (5000, 5, None),
    "trust": (25_000, 5, 9_500_000),
}
POLICIES = ("national", "burton-hathow", "hertfordshire-primary", "james-marks-academy", "mason-moor",
            "middleton-st-marys")
# As-of dates the quick mode cross-checks at (academic year 2025/26 of `rollbook sample`): early in
# the year (no previous term, fewer than 10 school weeks), a half-term day, a Christmas-holiday day
# labelled spring, a Friday, the Easter holiday, the polling-day closure, a Monday, the last
# school day, a Saturday in the summer holiday.
QUICK_CHECK_DATES = ("2025-09-12", "2025-10-29", "2026-01-02", "2026-01-16", "2026-04-08", "2026-05-07",
                     "2026-06-15", "2026-07-22", "2026-08-15")
NEVER = 10**12  # "no such prior action" (docs/semantics.md: greater than any number)

# ---- codes, by hand from the table in docs/semantics.md ------------------------------------------

PRESENT = ("/", "\\", "L")
APPROVED = ("K", "V", "P", "W", "B")
AUTHORISED = ("C1", "M", "J1", "S", "C2", "C", "T", "R", "I", "E", "Q")
UNAUTHORISED = ("G", "N", "O", "U")
ATTENDING = PRESENT + APPROVED
ABSENT = AUTHORISED + UNAUTHORISED
POSSIBLE = ATTENDING + ABSENT  # every code that is a possible session


def codes_sql(codes) -> str:
    return "(" + ", ".join("'" + c + "'" for c in codes) + ")"


# ---- the yardstick: window bounds per school, by hand ----------------------------------------------
# {as_of} is a DATE literal. One row per school with the first and last day of every window any of
# the six policies uses (docs/semantics.md, "Windows"). Open day = open for at least one session.
# The anchor day is the last open day on or before as-of; "this ..." periods are the anchor's.

BOUNDS_SQL = """
cal AS (
    SELECT school_id, date,
           CAST(date_trunc('week', date) AS DATE) AS monday,
           CASE WHEN month(date) >= 9 THEN year(date) ELSE year(date) - 1 END AS ay,
           (CASE WHEN month(date) >= 9 THEN year(date) ELSE year(date) - 1 END) * 3
               + CASE term WHEN 'autumn' THEN 0 WHEN 'spring' THEN 1 WHEN 'summer' THEN 2 END AS term_no
    FROM calendar WHERE open_am OR open_pm
),
open_back AS (      -- open days on or before as-of, 1 = the anchor day
    SELECT school_id, date, ay, term_no, row_number() OVER (PARTITION BY school_id ORDER BY date DESC) AS back
    FROM cal WHERE date <= {as_of}
),
week_back AS (      -- school weeks (a week with an open session) whose Monday is on or before as-of
    SELECT school_id, monday, row_number() OVER (PARTITION BY school_id ORDER BY monday DESC) AS back
    FROM (SELECT DISTINCT school_id, monday FROM cal WHERE monday <= {as_of})
),
days AS (
    SELECT school_id,
           max(ay) FILTER (WHERE back = 1) AS anchor_ay, max(term_no) FILTER (WHERE back = 1) AS anchor_term,
           min(date) FILTER (WHERE back <= 1) AS sd1, min(date) FILTER (WHERE back <= 5) AS sd5,
           min(date) FILTER (WHERE back <= 10) AS sd10, min(date) FILTER (WHERE back <= 20) AS sd20
    FROM open_back GROUP BY school_id
),
weeks AS (
    SELECT school_id,
           min(monday) FILTER (WHERE back = 1) AS this_week,
           min(monday) FILTER (WHERE back <= 4) AS sw4, min(monday) FILTER (WHERE back <= 6) AS sw6,
           min(monday) FILTER (WHERE back <= 10) AS sw10, min(monday) FILTER (WHERE back <= 12) AS sw12
    FROM week_back GROUP BY school_id
),
periods AS (
    SELECT d.school_id,
           min(c.date) FILTER (WHERE c.ay = d.anchor_ay) AS ay_first, max(c.date) FILTER (WHERE c.ay = d.anchor_ay) AS ay_last,
           min(c.date) FILTER (WHERE c.ay = d.anchor_ay - 1) AS pay_first, max(c.date) FILTER (WHERE c.ay = d.anchor_ay - 1) AS pay_last,
           min(c.date) FILTER (WHERE c.term_no = d.anchor_term) AS term_first, max(c.date) FILTER (WHERE c.term_no = d.anchor_term) AS term_last,
           min(c.date) FILTER (WHERE c.term_no = d.anchor_term - 1) AS pterm_first, max(c.date) FILTER (WHERE c.term_no = d.anchor_term - 1) AS pterm_last
    FROM days d JOIN cal c ON c.school_id = d.school_id GROUP BY d.school_id
),
bounds AS (
    SELECT s.school_id,
           p.ay_first AS ay_start, least(p.ay_last, {as_of}) AS ay_end,                 -- this academic year
           p.pay_first AS pay_start, p.pay_last AS pay_end,                             -- previous academic year
           p.term_first AS term_start, least(p.term_last, {as_of}) AS term_end,         -- this term
           p.pterm_first AS pterm_start, p.pterm_last AS pterm_end,                     -- previous term
           coalesce(p.pterm_first, p.term_first) AS tpt_start,                          -- this and previous term
           least(p.term_last, {as_of}) AS tpt_end,
           w.this_week AS tw_start, least(CAST(w.this_week + 6 AS DATE), {as_of}) AS tw_end,   -- this school week
           w.sw4, w.sw6, w.sw10, w.sw12,                                                -- last N school weeks (to as-of)
           d.sd1, d.sd5, d.sd10, d.sd20                                                 -- last N school days (to as-of)
    FROM (SELECT DISTINCT school_id FROM calendar) s
    LEFT JOIN periods p ON p.school_id = s.school_id
    LEFT JOIN weeks w ON w.school_id = s.school_id
    LEFT JOIN days d ON d.school_id = s.school_id
)"""

# Window predicates over one mark `o` joined to its school's bounds `b`. Every mark is already cut
# to as-of and to the pupil's time on roll (the `onroll` CTE), so windows ending on as-of need no
# upper bound.
AY = "o.date BETWEEN b.ay_start AND b.ay_end"
PAY = "o.date BETWEEN b.pay_start AND b.pay_end"
TERM = "o.date BETWEEN b.term_start AND b.term_end"
PTERM = "o.date BETWEEN b.pterm_start AND b.pterm_end"
TPT = "o.date BETWEEN b.tpt_start AND b.tpt_end"
TWEEK = "o.date BETWEEN b.tw_start AND b.tw_end"
SW4, SW6, SW10, SW12 = "o.date >= b.sw4", "o.date >= b.sw6", "o.date >= b.sw10", "o.date >= b.sw12"
SD1, SD5, SD10, SD20 = "o.date >= b.sd1", "o.date >= b.sd5", "o.date >= b.sd10", "o.date >= b.sd20"
D5 = "o.date >= CAST({as_of} - INTERVAL 4 DAY AS DATE)"        # the last 5 days: as-of - 4 .. as-of
W12 = "o.date >= CAST({as_of} - INTERVAL 83 DAY AS DATE)"      # the last 12 weeks: as-of - 83 .. as-of
NOT_BEFORE_INTEGRATION = "coalesce(o.date >= o.integration_end, true)"  # excluding days before pupil.integration_end

P_ABS, P_POS, P_ATT = codes_sql(ABSENT), codes_sql(POSSIBLE), codes_sql(ATTENDING)
P_AUTH, P_UNAUTH = codes_sql(AUTHORISED), codes_sql(UNAUTHORISED)


def count_where(condition: str) -> str:
    return f"count(*) FILTER (WHERE {condition})"


# Session counts: name -> one aggregate over the pupil's marks on roll (`o`, with bounds `b`).
METRIC_SQL = {
    "absent_ay": count_where(f"o.code IN {P_ABS} AND {AY}"),
    "possible_ay": count_where(f"o.code IN {P_POS} AND {AY}"),
    "attending_ay": count_where(f"o.code IN {P_ATT} AND {AY}"),
    "authorised_ay": count_where(f"o.code IN {P_AUTH} AND {AY}"),
    "unauthorised_ay": count_where(f"o.code IN {P_UNAUTH} AND {AY}"),
    "guo_ay": count_where(f"o.code IN ('G', 'O', 'U') AND {AY}"),
    "i_ay": count_where(f"o.code = 'I' AND {AY}"),
    "r_ay": count_where(f"o.code = 'R' AND {AY}"),
    "guo_sw10": count_where(f"o.code IN ('G', 'O', 'U') AND {SW10}"),
    "n_ever": count_where("o.code = 'N'"),
    "n_sd5": count_where(f"o.code = 'N' AND {SD5}"),
    "n_sd1": count_where(f"o.code = 'N' AND {SD1}"),
    "all_sd10": count_where(SD10),
    "all_ever": "count(*)",
    "all_d5": count_where(D5),
    "ginou_term": count_where(f"o.code IN ('G', 'I', 'N', 'O', 'U') AND {TERM}"),
    "absent_sw12": count_where(f"o.code IN {P_ABS} AND {SW12}"),
    "possible_sw12": count_where(f"o.code IN {P_POS} AND {SW12}"),
    "guo_tpt": count_where(f"o.code IN ('G', 'O', 'U') AND {TPT}"),
    "attending_pterm": count_where(f"o.code IN {P_ATT} AND {PTERM}"),
    "possible_pterm": count_where(f"o.code IN {P_POS} AND {PTERM}"),
    "attending_pay": count_where(f"o.code IN {P_ATT} AND {PAY}"),
    "possible_pay": count_where(f"o.code IN {P_POS} AND {PAY}"),
    "c2_sd5": count_where(f"o.code = 'C2' AND {SD5}"),
    "c2_sd20": count_where(f"o.code = 'C2' AND {SD20}"),
    "lu_sw6": count_where(f"o.code IN ('L', 'U') AND {SW6}"),
    "attending_ay_xi": count_where(f"o.code IN {P_ATT} AND {AY} AND {NOT_BEFORE_INTEGRATION}"),
    "possible_ay_xi": count_where(f"o.code IN {P_POS} AND {AY} AND {NOT_BEFORE_INTEGRATION}"),
    "attending_sw6_xi": count_where(f"o.code IN {P_ATT} AND {SW6} AND {NOT_BEFORE_INTEGRATION}"),
    "possible_sw6_xi": count_where(f"o.code IN {P_POS} AND {SW6} AND {NOT_BEFORE_INTEGRATION}"),
    "lu_sw6_xi": count_where(f"o.code IN ('L', 'U') AND {SW6} AND {NOT_BEFORE_INTEGRATION}"),
    "u_sw10_xi": count_where(f"o.code = 'U' AND {SW10} AND {NOT_BEFORE_INTEGRATION}"),
    "i_term": count_where(f"o.code = 'I' AND {TERM}"),
    "lu_mon_am_sw4": count_where(f"o.code IN ('L', 'U') AND isodow(o.date) = 1 AND o.session = 'AM' AND {SW4}"),
    "lu_tue_am_sw4": count_where(f"o.code IN ('L', 'U') AND isodow(o.date) = 2 AND o.session = 'AM' AND {SW4}"),
    "lu_wed_am_sw4": count_where(f"o.code IN ('L', 'U') AND isodow(o.date) = 3 AND o.session = 'AM' AND {SW4}"),
    "lu_thu_am_sw4": count_where(f"o.code IN ('L', 'U') AND isodow(o.date) = 4 AND o.session = 'AM' AND {SW4}"),
    "lu_fri_am_sw4": count_where(f"o.code IN ('L', 'U') AND isodow(o.date) = 5 AND o.session = 'AM' AND {SW4}"),
    "absent_sd1": count_where(f"o.code IN {P_ABS} AND {SD1}"),
    "attending_tweek": count_where(f"o.code IN {P_ATT} AND {TWEEK}"),
    "possible_tweek": count_where(f"o.code IN {P_POS} AND {TWEEK}"),
    "all_fri_am_tweek": count_where(f"isodow(o.date) = 5 AND o.session = 'AM' AND {TWEEK}"),
    "all_fri_pm_tweek": count_where(f"isodow(o.date) = 5 AND o.session = 'PM' AND {TWEEK}"),
    "attending_sw6": count_where(f"o.code IN {P_ATT} AND {SW6}"),
    "possible_sw6": count_where(f"o.code IN {P_POS} AND {SW6}"),
    "guo_w12": count_where(f"o.code IN ('G', 'O', 'U') AND {W12}"),
    "m_am_sd1": count_where(f"o.code = 'M' AND o.session = 'AM' AND {SD1}"),
    "m_pm_sd1": count_where(f"o.code = 'M' AND o.session = 'PM' AND {SD1}"),
}

# Current runs (docs/semantics.md, "Runs"): over the pupil's possible sessions (days) in the window,
# the stretch ending with the latest one. Pass 1 finds the latest possible session (day) that does
# not match; pass 2 counts the possible sessions (days) after it. A day matches when every possible
# session of the pupil that day matches, so the last day that fails is the last day with a possible
# session outside the code set. The session order is date, then AM before PM: key = 2*day + (PM).
SKEY = "(2 * date_diff('day', DATE '2000-01-01', o.date) + CASE o.session WHEN 'PM' THEN 1 ELSE 0 END)"
CURRENT_RUNS = {  # name -> (pass-1 aggregate: the last miss, pass-2 aggregate: the run)
    "run_days_gno": (f"max(o.date) FILTER (WHERE o.code IN {P_POS} AND o.code NOT IN ('G', 'N', 'O'))",
                     "count(DISTINCT o.date) FILTER (WHERE o.date > coalesce(a.lm_run_days_gno, DATE '0001-01-01'))"),
    "run_sessions_ginou": (f"max({SKEY}) FILTER (WHERE o.code IN {P_POS} AND o.code NOT IN ('G', 'I', 'N', 'O', 'U'))",
                           f"count(*) FILTER (WHERE {SKEY} > coalesce(a.lm_run_sessions_ginou, -1))"),
    "run_sessions_i": (f"max({SKEY}) FILTER (WHERE o.code IN {P_POS} AND o.code <> 'I')",
                       f"count(*) FILTER (WHERE {SKEY} > coalesce(a.lm_run_sessions_i, -1))"),
    "run_days_no": (f"max(o.date) FILTER (WHERE o.code IN {P_POS} AND o.code NOT IN ('N', 'O'))",
                    "count(DISTINCT o.date) FILTER (WHERE o.date > coalesce(a.lm_run_days_no, DATE '0001-01-01'))"),
    "run_sessions_g": (f"max({SKEY}) FILTER (WHERE o.code IN {P_POS} AND o.code <> 'G')",
                       f"count(*) FILTER (WHERE {SKEY} > coalesce(a.lm_run_sessions_g, -1))"),
}
# Longest runs: over the possible sessions in the window in order, the length of the matched stretch
# ending at each session is its position minus the position of the latest miss up to it. A pupil
# with no matching session in the window has 0 (the final LEFT JOIN), so only the others are walked.
LONGEST_RUNS = {  # name -> (pass-1 aggregate: does the pupil have a matching session, the run query)
    "longest_sessions_i_term": (f"count(*) FILTER (WHERE o.code = 'I' AND {TERM})", f"""
        SELECT school_id, pupil_id, max(pos - last_miss) AS longest_sessions_i_term FROM (
            SELECT school_id, pupil_id, pos,
                   max(CASE WHEN code = 'I' THEN 0 ELSE pos END) OVER (
                       PARTITION BY school_id, pupil_id ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS last_miss
            FROM (SELECT o.school_id, o.pupil_id, o.code,
                         row_number() OVER (PARTITION BY o.school_id, o.pupil_id ORDER BY o.date, o.session) AS pos
                  FROM onroll o JOIN bounds b ON b.school_id = o.school_id
                  JOIN per_pupil a ON a.school_id = o.school_id AND a.pupil_id = o.pupil_id
                  WHERE a.any_longest_sessions_i_term > 0 AND o.code IN {P_POS} AND {TERM}))
        GROUP BY school_id, pupil_id"""),
}
# Ledger measures against an empty ledger: no prior action, so a count is 0 and the time since the
# last action is "never".
LEDGER_CONSTANTS = {
    "since_pa_meeting": NEVER, "since_adjusted_attendance_contact": NEVER,
    "since_persistent_lateness_contact": NEVER, "offer_support_ay": 0,
}

# The metrics each policy's plan must have, in plan order (what compile_policy gives today).
NATIONAL_METRICS = ["absent_ay", "possible_ay", "guo_sw10", "n_ever", "n_sd5", "run_days_gno", "i_ay", "n_sd1", "all_sd10", "all_ever", "all_d5"]
POLICY_METRICS = {
    "national": NATIONAL_METRICS + ["offer_support_ay"],
    # notice-to-improve is disabled, so no `actions with verb offer_support`
    "burton-hathow": NATIONAL_METRICS + [
        "attending_ay", "run_sessions_ginou", "ginou_term",
        "unauthorised_ay", "guo_ay", "authorised_ay", "since_pa_meeting", "absent_sw12", "possible_sw12"],
    "hertfordshire-primary": NATIONAL_METRICS + [
        "offer_support_ay", "guo_tpt", "r_ay", "attending_pterm", "possible_pterm", "attending_pay", "possible_pay",
        "unauthorised_ay", "c2_sd5", "c2_sd20", "attending_ay", "lu_sw6"],
    "james-marks-academy": NATIONAL_METRICS + [
        "offer_support_ay", "possible_pay", "attending_ay_xi", "possible_ay_xi", "since_adjusted_attendance_contact",
        "attending_sw6_xi", "possible_sw6_xi", "unauthorised_ay", "lu_sw6_xi", "u_sw10_xi", "longest_sessions_i_term",
        "i_term"],
    "mason-moor": NATIONAL_METRICS + [
        "offer_support_ay", "run_sessions_i", "lu_mon_am_sw4", "lu_tue_am_sw4",
        "lu_wed_am_sw4", "lu_thu_am_sw4", "lu_fri_am_sw4", "run_days_no", "absent_sd1",
        "attending_tweek", "possible_tweek", "all_fri_pm_tweek", "possible_sw6", "attending_sw6", "attending_ay"],
    "middleton-st-marys": NATIONAL_METRICS + [
        "offer_support_ay", "guo_w12", "run_sessions_g", "r_ay",
        "m_am_sd1", "m_pm_sd1", "lu_sw6", "since_persistent_lateness_contact", "attending_tweek", "possible_tweek",
        "all_fri_am_tweek", "all_fri_pm_tweek", "attending_ay"],
}


def expected_specs() -> dict:
    """name -> the MetricSpec the compiler should produce for it, written by hand (drift check only)."""
    from engine.compile import DateRef, MetricSpec, WindowSpec

    def win(kind, size=None, unit=None, **kw):
        return WindowSpec(kind, size, unit, **kw)

    ay, pay, term, pterm, tpt = (win("this_academic_year"), win("previous_academic_year"), win("this_term"),
                                 win("previous_term"), win("this_and_previous_term"))
    tweek, ever = win("this_school_week"), win("ever")
    sw = {n: win("last", n, "school_weeks") for n in (4, 6, 10, 12)}
    sd = {n: win("last", n, "school_days") for n in (1, 5, 10, 20)}
    xi = DateRef(attribute="integration_end")
    ay_xi, sw6_xi = win("this_academic_year", exclude_before=xi), win("last", 6, "school_weeks", exclude_before=xi)
    sw10_xi = win("last", 10, "school_weeks", exclude_before=xi)
    f = frozenset

    def s(window, codes=None, weekdays=None, half=None):
        return MetricSpec("sessions", window, f(codes) if codes is not None else None, weekdays, half)

    def run(which, unit, codes, window=ever):
        return MetricSpec("run", window, f(codes), run_which=which, run_unit=unit)

    def since(rule, unit="school_days"):
        return MetricSpec("since_action", rule=rule, elapsed_unit=unit)

    lu = ("L", "U")
    return {
        "absent_ay": s(ay, ABSENT), "possible_ay": s(ay, POSSIBLE), "attending_ay": s(ay, ATTENDING),
        "authorised_ay": s(ay, AUTHORISED), "unauthorised_ay": s(ay, UNAUTHORISED), "guo_ay": s(ay, "GOU"),
        "i_ay": s(ay, ["I"]), "r_ay": s(ay, ["R"]), "guo_sw10": s(sw[10], "GOU"), "n_ever": s(ever, ["N"]),
        "n_sd5": s(sd[5], ["N"]), "n_sd1": s(sd[1], ["N"]), "all_sd10": s(sd[10]), "all_ever": s(ever),
        "all_d5": s(win("last", 5, "days")), "ginou_term": s(term, "GINOU"), "absent_sw12": s(sw[12], ABSENT),
        "possible_sw12": s(sw[12], POSSIBLE), "guo_tpt": s(tpt, "GOU"), "attending_pterm": s(pterm, ATTENDING),
        "possible_pterm": s(pterm, POSSIBLE), "attending_pay": s(pay, ATTENDING), "possible_pay": s(pay, POSSIBLE),
        "c2_sd5": s(sd[5], ["C2"]), "c2_sd20": s(sd[20], ["C2"]), "lu_sw6": s(sw[6], lu),
        "attending_ay_xi": s(ay_xi, ATTENDING), "possible_ay_xi": s(ay_xi, POSSIBLE),
        "attending_sw6_xi": s(sw6_xi, ATTENDING), "possible_sw6_xi": s(sw6_xi, POSSIBLE), "lu_sw6_xi": s(sw6_xi, lu),
        "u_sw10_xi": s(sw10_xi, ["U"]), "i_term": s(term, ["I"]),
        "lu_mon_am_sw4": s(sw[4], lu, (1,), "AM"), "lu_tue_am_sw4": s(sw[4], lu, (2,), "AM"),
        "lu_wed_am_sw4": s(sw[4], lu, (3,), "AM"), "lu_thu_am_sw4": s(sw[4], lu, (4,), "AM"),
        "lu_fri_am_sw4": s(sw[4], lu, (5,), "AM"), "absent_sd1": s(sd[1], ABSENT),
        "attending_tweek": s(tweek, ATTENDING), "possible_tweek": s(tweek, POSSIBLE),
        "all_fri_am_tweek": s(tweek, None, (5,), "AM"), "all_fri_pm_tweek": s(tweek, None, (5,), "PM"),
        "attending_sw6": s(sw[6], ATTENDING), "possible_sw6": s(sw[6], POSSIBLE), "guo_w12": s(win("last", 12, "weeks"), "GOU"),
        "m_am_sd1": s(sd[1], ["M"], None, "AM"), "m_pm_sd1": s(sd[1], ["M"], None, "PM"),
        "run_days_gno": run("current", "school_days", "GNO"), "run_sessions_ginou": run("current", "sessions", "GINOU"),
        "run_sessions_i": run("current", "sessions", "I"), "run_days_no": run("current", "school_days", "NO"),
        "run_sessions_g": run("current", "sessions", "G"),
        "longest_sessions_i_term": run("longest", "sessions", "I", term),
        "since_pa_meeting": since("pa-attendance-officer-meeting", "school_weeks"),
        "since_adjusted_attendance_contact": since("adjusted-attendance-contact", "school_weeks"),
        "since_persistent_lateness_contact": since("persistent-lateness-contact", "school_weeks"),
        "offer_support_ay": MetricSpec("action_count", ay, verb="offer_support"),
    }


def yardstick_sql(policy: str, as_of: date, streaming: bool = False) -> str:
    """The hand-written query for one policy: one row per pupil in the pupils table (leavers too),
    the policy's metrics as columns (named as in POLICY_METRICS), and `evaluated` (on roll on as-of).

    `onroll` is read by two or three passes; DuckDB materialises such a CTE by default (the files
    are read once, and the marks on roll are held in memory). `streaming` asks it not to: each pass
    reads the files again (less memory on Parquet, slower on CSV)."""
    names = POLICY_METRICS[policy]
    lit = f"DATE '{as_of.isoformat()}'"
    counts = [n for n in names if n in METRIC_SQL]
    currents = [n for n in names if n in CURRENT_RUNS]
    longest = [n for n in names if n in LONGEST_RUNS]
    unknown = [n for n in names if n not in METRIC_SQL and n not in CURRENT_RUNS and n not in LONGEST_RUNS
               and n not in LEDGER_CONSTANTS]
    assert not unknown, unknown
    needs_integration = any(n.endswith("_xi") for n in names)
    aggregates = ([f"{METRIC_SQL[n]} AS {n}" for n in counts] + [f"{CURRENT_RUNS[n][0]} AS lm_{n}" for n in currents]
                  + [f"{LONGEST_RUNS[n][0]} AS any_{n}" for n in longest])
    ctes = [BOUNDS_SQL.strip(),
            f"""onroll AS {'NOT MATERIALIZED ' if streaming else ''}(     -- marks on roll, dated on or before as-of
    SELECT m.school_id, m.pupil_id, m.date, m.session, m.code{', p.integration_end' if needs_integration else ''}
    FROM marks m JOIN pupils p ON p.school_id = m.school_id AND p.pupil_id = m.pupil_id
    WHERE m.date <= {{as_of}} AND (p.joined_on IS NULL OR m.date >= p.joined_on) AND (p.left_on IS NULL OR m.date <= p.left_on)
)""",
            f"""per_pupil AS (
    SELECT o.school_id, o.pupil_id,
           {(',' + chr(10) + '           ').join(aggregates)}
    FROM onroll o JOIN bounds b ON b.school_id = o.school_id
    GROUP BY o.school_id, o.pupil_id
)"""]
    if currents:
        # Only possible sessions on or after the earliest of the pupil's last misses can be in a run
        # (a sessions key k is on day 2000-01-01 + k // 2).
        starts = [f"coalesce(a.lm_{n}, DATE '0001-01-01')" if n.startswith("run_days") else
                  f"coalesce(CAST(DATE '2000-01-01' + CAST(a.lm_{n} // 2 AS INTEGER) AS DATE), DATE '0001-01-01')"
                  for n in currents]
        earliest = starts[0] if len(starts) == 1 else f"least({', '.join(starts)})"
        ctes.append(f"""current_runs AS (
    SELECT o.school_id, o.pupil_id,
           {(',' + chr(10) + '           ').join(f'{CURRENT_RUNS[n][1]} AS {n}' for n in currents)}
    FROM onroll o JOIN per_pupil a ON a.school_id = o.school_id AND a.pupil_id = o.pupil_id
    WHERE o.code IN {P_POS} AND o.date >= {earliest}
    GROUP BY o.school_id, o.pupil_id
)""")
    for n in longest:
        ctes.append(f"{n} AS ({LONGEST_RUNS[n][1]})")
    select = ["p.school_id", "p.pupil_id",
              f"(p.joined_on IS NULL OR p.joined_on <= {{as_of}}) AND (p.left_on IS NULL OR p.left_on >= {{as_of}}) AS evaluated"]
    for n in names:
        if n in METRIC_SQL:
            select.append(f"coalesce(a.{n}, 0) AS {n}")
        elif n in CURRENT_RUNS:
            select.append(f"coalesce(r.{n}, 0) AS {n}")
        elif n in LONGEST_RUNS:
            select.append(f"coalesce({n}.{n}, 0) AS {n}")
        else:
            select.append(f"CAST({LEDGER_CONSTANTS[n]} AS BIGINT) AS {n}")
    joins = ["LEFT JOIN per_pupil a ON a.school_id = p.school_id AND a.pupil_id = p.pupil_id"]
    if currents:
        joins.append("LEFT JOIN current_runs r ON r.school_id = p.school_id AND r.pupil_id = p.pupil_id")
    joins += [f"LEFT JOIN {n} ON {n}.school_id = p.school_id AND {n}.pupil_id = p.pupil_id" for n in longest]
    sql = ("WITH " + ",\n".join(ctes) + "\nSELECT " + ",\n       ".join(select) + "\nFROM pupils p\n" + "\n".join(joins))
    return sql.replace("{as_of}", lit)


# ---- register files as the yardstick reads them ---------------------------------------------------

def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as f:
        return f.readline().strip().split(",")


def file_views(con, folder: Path) -> None:
    """Views marks, pupils, calendar over the register files, typed by hand (school_id '' when the
    files have none, as Rollbook reads a one-school register)."""
    types = {"date": "DATE", "minutes_late": "INTEGER", "half_term": "INTEGER", "open_am": "BOOLEAN",
             "open_pm": "BOOLEAN", "joined_on": "DATE", "left_on": "DATE", "date_of_birth": "DATE",
             "integration_end": "DATE", "ehcp": "BOOLEAN", "fsm": "BOOLEAN", "cin": "BOOLEAN", "lac": "BOOLEAN"}
    for role, wanted in (("marks", ("pupil_id", "date", "session", "code")),
                         ("pupils", ("pupil_id", "reg_group", "joined_on", "left_on", "integration_end")),
                         ("calendar", ("date", "term", "half_term", "open_am", "open_pm"))):
        parquet, csv = folder / f"{role}.parquet", folder / f"{role}.csv"
        if parquet.exists():
            relation = f"read_parquet('{parquet}')"
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        else:
            columns = _csv_header(csv)
            spec = ", ".join(f"'{c}': '{types.get(c, 'VARCHAR')}'" for c in columns)
            relation = (f"read_csv('{csv}', auto_detect = false, header = true, delim = ',', quote = '\"', "
                        f"escape = '\"', columns = {{{spec}}})")
        school = "school_id" if "school_id" in columns else "'' AS school_id"
        picked = ", ".join(c if c in columns else f"CAST(NULL AS {types.get(c, 'VARCHAR')}) AS {c}" for c in wanted)
        con.execute(f"CREATE OR REPLACE VIEW {role} AS SELECT {school}, {picked} FROM {relation}")


# ---- measurement helpers (children) ----------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+)", f.read(), re.M).group(1))


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is this stage's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb() -> float:
    return _status_kb("VmHWM") / 1024


def _digest(con, table: str, columns: list[str]) -> str:
    cols = ", ".join(columns)
    return con.execute(f"SELECT md5(string_agg(CAST(ROW({cols}) AS VARCHAR), '|' ORDER BY school_id, pupil_id)) "
                       f"FROM {table}").fetchone()[0]


def _checked_policy(policy: str):
    from engine.api import check_policy_file

    result = check_policy_file(REPO / "policies" / f"{policy}.yaml")
    if not result.ok:
        raise SystemExit(f"policies/{policy}.yaml does not check clean")
    return result.policy


def plan_drift(plan, policy: str) -> list[str]:
    """Differences between the compiled plan's metrics and the hand-written list (empty: none)."""
    specs = expected_specs()
    expected = [specs[n] for n in POLICY_METRICS[policy]]
    actual = list(plan.metrics)
    named = {frozenset(ABSENT): "ABSENT", frozenset(POSSIBLE): "POSSIBLE", frozenset(ATTENDING): "ATTENDING",
             frozenset(AUTHORISED): "AUTHORISED", frozenset(UNAUTHORISED): "UNAUTHORISED"}

    def text(m) -> str:
        if m is None:
            return "(none)"
        parts = [m.kind]
        if m.window is not None:
            parts.append(m.window.describe() + (" excluding days before ..." if m.window.exclude_before else "")
                         + (" excluding days from ..." if m.window.exclude_to else ""))
        if m.codes is not None:
            parts.append("coded " + named.get(m.codes, "{" + ", ".join(sorted(m.codes)) + "}"))
        for label, value in (("weekdays", m.weekdays), ("half", m.half), ("run", m.run_which), ("of", m.run_unit),
                             ("rule", m.rule), ("verb", m.verb), ("in", m.elapsed_unit)):
            if value:
                parts.append(f"{label} {value}")
        return " ".join(parts)

    out = []
    for i in range(max(len(expected), len(actual))):
        e = expected[i] if i < len(expected) else None
        a = actual[i] if i < len(actual) else None
        if e != a:
            name = POLICY_METRICS[policy][i] if e is not None else "nothing"
            out.append(f"m{i}: expected {name} ({text(e)}), the plan has {text(a)}")
    return out


def cross_check(con, facts, policy: str, as_of: date, yard: str) -> dict:
    """Compare the yardstick table with the facts tables build_facts wrote. Returns a report."""
    names = POLICY_METRICS[policy]
    problems: list[str] = []
    mismatched: dict[str, int] = {}
    pupil_facts = facts.tables["pupil"]
    # Every metric column of the facts is m{i} for the plan's i-th metric.
    cols = {n: facts.metric_columns[m] for n, m in zip(names, facts.metric_columns)}
    keys = con.execute(f"""
        SELECT count(*) FILTER (WHERE y.pupil_id IS NULL), count(*) FILTER (WHERE f.subject_id IS NULL)
        FROM {pupil_facts} f FULL JOIN (SELECT * FROM {yard} WHERE evaluated) y
          ON y.school_id = f.school_id AND y.pupil_id = f.subject_id""").fetchone()
    if keys[0] or keys[1]:
        problems.append(f"pupil subjects: {keys[0]} only in the facts table, {keys[1]} only in the yardstick (on roll on as-of)")
    counts = con.execute("SELECT " + ", ".join(
        f"count(*) FILTER (WHERE f.{cols[n]} IS DISTINCT FROM y.{n})" for n in names) + f"""
        FROM {pupil_facts} f JOIN {yard} y ON y.school_id = f.school_id AND y.pupil_id = f.subject_id""").fetchone()
    for n, c in zip(names, counts):
        if c:
            mismatched[n] = c
            rows = con.execute(f"""
                SELECT f.school_id, f.subject_id, f.{cols[n]}, y.{n} FROM {pupil_facts} f
                JOIN {yard} y ON y.school_id = f.school_id AND y.pupil_id = f.subject_id
                WHERE f.{cols[n]} IS DISTINCT FROM y.{n} ORDER BY f.school_id, f.subject_id LIMIT 3""").fetchall()
            shown = "; ".join(f"{s or '-'}/{p}: engine {e}, yardstick {v}" for s, p, e, v in rows)
            problems.append(f"pupil {cols[n]} ({n}): {c} pupils differ, e.g. {shown}")
    # Group scopes: sums over every pupil's sessions while on roll, leavers included.
    group_keys = {"class": "coalesce(p.reg_group, '')", "school": "p.school_id"}
    for scope, table in facts.tables.items():
        if scope == "pupil":
            continue
        if scope == "leaver":
            problems += _check_leavers(con, table, cols, names, yard, as_of)
            continue
        register_names = [n for n in names if n not in LEDGER_CONSTANTS]
        sums = ", ".join(f"sum(y.{n}) AS {n}" for n in register_names)
        diff = con.execute(f"""
            WITH g AS (SELECT y.school_id, {group_keys[scope]} AS subject_id, {sums}
                       FROM {yard} y JOIN pupils p ON p.school_id = y.school_id AND p.pupil_id = y.pupil_id GROUP BY ALL)
            SELECT count(*) FILTER (WHERE g.subject_id IS NULL OR f.subject_id IS NULL), """ + ", ".join(
            f"count(*) FILTER (WHERE f.{cols[n]} IS DISTINCT FROM g.{n})" for n in register_names) + f"""
            FROM {table} f FULL JOIN g ON g.school_id = f.school_id AND g.subject_id = f.subject_id""").fetchone()
        if diff[0]:
            problems.append(f"{scope} subjects differ ({diff[0]})")
        for n, c in zip(register_names, diff[1:]):
            if c:
                mismatched[f"{scope}:{n}"] = c
                problems.append(f"{scope} {cols[n]} ({n}): {c} {scope} subjects differ")
    evaluated = con.execute(f"SELECT count(*) FROM {pupil_facts}").fetchone()[0]
    # Metrics with one value for every evaluated pupil are compared but barely exercised by the data.
    distinct = con.execute("SELECT " + ", ".join(f"count(DISTINCT {n})" for n in names)
                           + f" FROM {yard} WHERE evaluated").fetchone()
    all_same = [n for n, d in zip(names, distinct) if d <= 1 and n not in LEDGER_CONSTANTS]
    return {"as_of": as_of.isoformat(), "ok": not problems, "problems": problems, "mismatched": mismatched,
            "pupils_evaluated": evaluated, "constant": all_same}


def _check_leavers(con, table: str, cols: dict, names: list[str], yard: str, as_of: date) -> list[str]:
    """Leaver rules' subjects (docs/semantics.md, On roll): every pupil with a recorded leave date
    who had joined by the as-of date, with the same per-pupil values as any pupil."""
    leavers = (f"SELECT y.* FROM {yard} y JOIN pupils p ON p.school_id = y.school_id AND p.pupil_id = y.pupil_id "
               f"WHERE p.left_on IS NOT NULL AND (p.joined_on IS NULL OR p.joined_on <= DATE '{as_of.isoformat()}')")
    row = con.execute(f"""
        SELECT count(*) FILTER (WHERE y.pupil_id IS NULL OR f.subject_id IS NULL), """ + ", ".join(
        f"count(*) FILTER (WHERE f.{cols[n]} IS DISTINCT FROM y.{n})" for n in names) + f"""
        FROM {table} f FULL JOIN ({leavers}) y ON y.school_id = f.school_id AND y.pupil_id = f.subject_id""").fetchone()
    problems = [f"leaver subjects differ ({row[0]})"] if row[0] else []
    problems += [f"leaver {cols[n]} ({n}): {c} leavers differ" for n, c in zip(names, row[1:]) if c]
    return problems


def child_main(spec: dict) -> dict:
    kind = spec["kind"]
    folder = Path(spec["register"])
    as_of = date.fromisoformat(spec["as_of"])
    repeat = spec.get("repeat", 1)
    import duckdb

    out: dict = {"kind": kind, "rss_start_mb": _status_kb("VmRSS") / 1024}
    if kind in ("scan", "yardstick_files"):
        times, peaks, count_times = [], [], []
        for rep in range(repeat):
            con = duckdb.connect()
            file_views(con, folder)
            gc.collect()
            reset_peak()
            t = time.perf_counter()
            if kind == "scan":
                # count(*) alone is answered from Parquet metadata; the sums make DuckDB read and
                # decode every column the metrics use.
                out["marks"] = con.execute("SELECT count(*) FROM marks").fetchone()[0]
                count_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                con.execute("SELECT count(*), sum(strlen(school_id) + strlen(pupil_id) + strlen(session) + strlen(code)), "
                            "sum(date_diff('day', DATE '2000-01-01', date)) FROM marks").fetchone()
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE bench_yard AS "
                            f"{yardstick_sql(spec['policy'], as_of, spec.get('streaming', False))}")
            times.append(time.perf_counter() - t)
            peaks.append(peak_mb())
            if kind == "yardstick_files" and rep == 0:
                out["digest"] = _digest(con, "bench_yard", ["school_id", "pupil_id"] + POLICY_METRICS[spec["policy"]])
            con.close()
            del con
        out.update(wall=statistics.median(times), times=times, peak_mb=max(peaks))
        if count_times:
            out["count_wall"] = statistics.median(count_times)
        return out

    from engine.api import prepare_register, run_evaluation
    from engine.compile import compile_policy
    from engine.metrics import build_facts
    from engine.prior_actions import load_ledger_table

    policy_name = spec["policy"]
    if kind == "eval":
        times, peaks, stages = [], [], []
        for rep in range(repeat):
            gc.collect()
            reset_peak()
            t = time.perf_counter()
            evaluation = run_evaluation(str(REPO / "policies" / f"{policy_name}.yaml"), str(folder), as_of, None,
                                        spec["engine"])
            times.append(time.perf_counter() - t)
            peaks.append(peak_mb())
            stages.append(evaluation.timings)
            out["actions"] = len(evaluation.actions)
            out["subjects"] = evaluation.subjects
            del evaluation
        out.update(wall=statistics.median(times), times=times, peak_mb=max(peaks),
                   stages={k: statistics.median(s[k] for s in stages) for k in stages[0]})
        return out

    if kind == "stages":
        policy = _checked_policy(policy_name)
        loads, metrics, yards = [], [], []
        peaks = {"load": [], "metrics": [], "yard": []}
        for rep in range(repeat):
            gc.collect()
            reset_peak()
            t = time.perf_counter()
            register, _ = prepare_register(str(folder), policy)
            loads.append(time.perf_counter() - t)
            peaks["load"].append(peak_mb())
            con = register.connection
            plan = compile_policy(policy)
            if rep == 0:
                out["drift"] = plan_drift(plan, policy_name)
                out["marks"] = con.execute("SELECT count(*) FROM marks").fetchone()[0]
            load_ledger_table(con, [])

            def run_metrics():
                reset_peak()
                t0 = time.perf_counter()
                facts = build_facts(plan, con, as_of, ledger="ledger")
                metrics.append(time.perf_counter() - t0)
                peaks["metrics"].append(peak_mb())
                return facts

            def run_yard():
                reset_peak()
                t0 = time.perf_counter()
                con.execute(f"CREATE OR REPLACE TEMP TABLE bench_yard AS "
                            f"{yardstick_sql(policy_name, as_of, spec.get('streaming', False))}")
                yards.append(time.perf_counter() - t0)
                peaks["yard"].append(peak_mb())

            if rep % 2 == 0:  # alternate the order, so neither always runs second
                facts = run_metrics()
                run_yard()
            else:
                run_yard()
                facts = run_metrics()
            if rep == 0:
                out["digest"] = _digest(con, "bench_yard", ["school_id", "pupil_id"] + POLICY_METRICS[policy_name])
                out["check"] = (cross_check(con, facts, policy_name, as_of, "bench_yard") if not out["drift"]
                                else {"ok": False, "problems": ["plan drift: not compared"], "as_of": spec["as_of"]})
                extra = []
                for d in spec.get("check_dates", []):
                    day = date.fromisoformat(d)
                    if day == as_of or out["drift"]:
                        continue
                    f2 = build_facts(plan, con, day, ledger="ledger")
                    con.execute(f"CREATE OR REPLACE TEMP TABLE bench_yard2 AS {yardstick_sql(policy_name, day)}")
                    extra.append(cross_check(con, f2, policy_name, day, "bench_yard2"))
                out["extra_checks"] = extra
            con.close()
            del register, con, facts
        out.update(load=statistics.median(loads), metrics=statistics.median(metrics),
                   yard_tables=statistics.median(yards),
                   peak_load_mb=max(peaks["load"]), peak_metrics_mb=max(peaks["metrics"]),
                   peak_yard_tables_mb=max(peaks["yard"]))
        return out
    raise SystemExit(f"unknown child kind {kind}")


# ---- the parent: data, children, tables -------------------------------------------------------------

def run_child(spec: dict, scratch: Path) -> dict:
    """Run one measurement in a fresh interpreter; its own result plus the whole process's max RSS."""
    result_file = scratch / f"child-{time.monotonic_ns()}.json"
    spec = dict(spec, result=str(result_file))
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not result_file.exists():
        return {"error": f"child {spec['kind']} exited {proc.returncode}"}
    result = json.loads(result_file.read_text())
    result["process_max_rss_mb"] = usage.ru_maxrss / 1024
    return result


def time_cli(args_list: list[str], repeat: int, env: dict | None = None) -> dict:
    times, rss, code = [], [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.Popen(args_list, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - t)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        rss.append(usage.ru_maxrss / 1024)
    return {"wall": statistics.median(times), "times": times, "peak_mb": max(rss), "exit": code}


def ensure_register(cache: Path, size: str, fmt: str, seed: int) -> tuple[Path, int]:
    pupils, schools, _ = SIZES[size]
    folder = cache / f"{size}-{fmt}"
    stamp = cache / f"{size}-{fmt}.json"
    want = {"pupils": pupils, "schools": schools, "seed": seed, "format": fmt}
    if stamp.exists() and folder.exists():
        data = json.loads(stamp.read_text())
        if {k: data.get(k) for k in want} == want:
            return folder, data["marks"]
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("rollbook")
    t = time.perf_counter()
    done = subprocess.run([str(exe), "sample", "--pupils", str(pupils), "--schools", str(schools), "--seed", str(seed),
                           "--format", fmt, "--out", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rollbook sample failed: {done.stderr}")
    marks = int(re.search(r"wrote ([\d,]+) marks", done.stdout).group(1).replace(",", ""))
    stamp.write_text(json.dumps(dict(want, marks=marks)))
    print(f"  generated {folder} ({marks:,} marks) in {time.perf_counter() - t:.1f} s", flush=True)
    return folder, marks


def last_open_day(folder: Path) -> date:
    import duckdb

    con = duckdb.connect()
    file_views(con, folder)
    return con.execute("SELECT max(date) FROM calendar WHERE open_am OR open_pm").fetchone()[0]


def machine() -> dict:
    import duckdb

    info = {"python": platform.python_version(), "duckdb": duckdb.__version__, "cores": os.cpu_count(),
            "platform": platform.platform()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M).group(1).strip()
    except (OSError, AttributeError):
        info["cpu"] = platform.processor() or "?"
    try:
        info["ram_gb"] = round(int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 1024**2, 1)
    except (OSError, AttributeError):
        info["ram_gb"] = None
    try:
        from importlib.metadata import version

        info["durable_rules"] = version("durable_rules")
    except Exception:
        info["durable_rules"] = None
    info["loadavg"] = os.getloadavg()
    return info


def _ratio(a, b) -> str:
    return f"{a / b:5.2f}" if a is not None and b else "    -"


def _t(x) -> str:
    if x is None:
        return "     -"
    return f"{x:6.3f}" if x < 10 else f"{x:6.2f}"


def _mb(x) -> str:
    return f"{x:6.0f}" if x is not None else "     -"


def _verdict(stages: dict, yard: dict) -> tuple[str, int]:
    """The check column, and how many problems it counts."""
    if "error" in stages or "check" not in stages:
        return f"ERROR {stages.get('error', '')}", 1
    if stages.get("drift"):
        return "PLAN DRIFT", 1
    checks = [stages["check"]] + stages.get("extra_checks", [])
    bad = [c for c in checks if not c["ok"]]
    verdict = "OK" if not bad else f"MISMATCH at {', '.join(c['as_of'] for c in bad)}"
    if len(checks) > 1 and not bad:
        verdict += f" ({len(checks)} dates)"
    failures = int(bool(bad))
    if yard.get("digest") and stages.get("digest") and yard["digest"] != stages["digest"]:
        verdict += "; the yardstick differs between files and tables"
        failures += 1
    return verdict, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="school,trust", help="comma list of: " + ", ".join(SIZES))
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is shown (default 3)")
    parser.add_argument("--as-of", help="evaluation date (default: the register's last open day)")
    parser.add_argument("--check-dates", default="", help="more as-of dates to cross-check at (comma list)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of about a minute: 200 pupils in 1 school (CSV) and 250 in 5 schools "
                             "(Parquet), --repeat 1, cross-checked at 9 dates, the CLI for two policies")
    parser.add_argument("--streaming-yardstick", action="store_true",
                        help="tell DuckDB not to materialise the yardstick's marks-on-roll CTE (less memory on "
                             "Parquet, slower on CSV)")
    parser.add_argument("--no-cli", action="store_true", help="skip timing `rollbook eval` from the command line")
    parser.add_argument("--no-durable", action="store_true", help="skip the durable-rules evaluations")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", default="/tmp/rollbook-bench", help="where generated registers are kept and reused")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        spec = json.loads(args.child)
        result = child_main(spec)
        Path(spec["result"]).write_text(json.dumps(result, default=str))
        return 0

    policies = [p.removesuffix(".yaml") for p in args.policies.split(",") if p]
    if args.quick:
        combos = [("quick", "csv"), ("quicktrust", "parquet")]
        repeat, check_dates = 1, list(QUICK_CHECK_DATES)
        cli_size, cli_formats, cli_policies = "quick", ["csv", "parquet"], [p for p in policies if p in ("national", "mason-moor")]
    else:
        sizes = [s for s in args.sizes.split(",") if s]
        formats = [f for f in args.formats.split(",") if f]
        for name in sizes:
            if name not in SIZES:
                parser.error(f"unknown size {name!r}")
        for fmt in formats:
            if fmt not in ("parquet", "csv"):
                parser.error(f"unknown format {fmt!r}")
        combos = [(s, f) for s in sizes for f in formats]
        repeat, check_dates = args.repeat, [d for d in args.check_dates.split(",") if d]
        cli_size, cli_formats, cli_policies = "school", formats, policies
    for p in policies:
        if p not in POLICY_METRICS:
            parser.error(f"no hand-written yardstick for policy {p!r}")
    from engine.rules import durable_available

    durable = durable_available()[0] and not args.no_durable

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM; Python {info['python']}, "
          f"DuckDB {info['duckdb']}, durable-rules {info['durable_rules'] or 'not installed'}"
          f"{'' if durable else ' (durable runs skipped)'}")
    print(f"         {info['platform']}; load average {', '.join(f'{x:.2f}' for x in info['loadavg'])} "
          "(figures are noisy unless this is near 0)", flush=True)
    print(f"times are medians of {repeat} run{'s' if repeat > 1 else ''}, in seconds; each measurement runs in its own process")
    report = {"machine": info, "repeat": repeat, "streaming_yardstick": args.streaming_yardstick,
              "runs": [], "scans": [], "cli": []}
    failures = 0
    zero_noted: set[str] = set()
    scratch = Path(tempfile.mkdtemp(prefix="rollbook-bench-eval-"))
    cache = Path(args.cache)
    try:
        for size, fmt in combos:
            folder, marks = ensure_register(cache, size, fmt, args.seed)
            as_of = date.fromisoformat(args.as_of) if args.as_of else last_open_day(folder)
            pupils, schools, expect = SIZES[size]
            near = "" if not expect else (f" (issue: ~{expect:,}, " +
                                          ("near)" if abs(marks - expect) <= 0.15 * expect else "NOT near)"))
            scan = run_child({"kind": "scan", "register": str(folder), "as_of": as_of.isoformat(), "repeat": repeat}, scratch)
            report["scans"].append(dict(scan, size=size, format=fmt, marks=marks, as_of=as_of.isoformat()))
            print(f"\n== {size}: {pupils:,} pupils in {schools} school{'s' if schools > 1 else ''}, {fmt}, "
                  f"{marks:,} marks{near}, as of {as_of}  [{folder}]")
            print(f"   bare scan of the marks file: count(*) {_t(scan.get('count_wall')).strip()} s, reading every "
                  f"column the metrics use {_t(scan.get('wall')).strip()} s (peak {_mb(scan.get('peak_mb')).strip()} MB)")
            print(f"{'policy':22} {'load':>6} {'metric':>6} {'yardT':>6} {'m/yT':>5} {'yardF':>6} {'eval':>6} "
                  f"{'e/yF':>5} {'durabl':>6} {'d/yF':>5} | MB {'yardF':>6} {'metric':>6} {'eval':>6} {'durabl':>6} "
                  f"{'mem':>5} | check", flush=True)
            for policy in policies:
                base = {"register": str(folder), "as_of": as_of.isoformat(), "policy": policy, "repeat": repeat,
                        "streaming": args.streaming_yardstick}
                yard = run_child(dict(base, kind="yardstick_files"), scratch)
                stages = run_child(dict(base, kind="stages", check_dates=check_dates), scratch)
                ev = run_child(dict(base, kind="eval", engine="builtin"), scratch)
                du = run_child(dict(base, kind="eval", engine="durable"), scratch) if durable else {}
                report["runs"].append({"size": size, "format": fmt, "policy": policy, "marks": marks,
                                       "as_of": as_of.isoformat(), "yardstick_files": yard, "stages": stages,
                                       "eval_builtin": ev, "eval_durable": du})
                verdict, bad = _verdict(stages, yard)
                failures += bad
                print(f"{policy:22} {_t(stages.get('load'))} {_t(stages.get('metrics'))} {_t(stages.get('yard_tables'))} "
                      f"{_ratio(stages.get('metrics'), stages.get('yard_tables'))} {_t(yard.get('wall'))} "
                      f"{_t(ev.get('wall'))} {_ratio(ev.get('wall'), yard.get('wall'))} {_t(du.get('wall'))} "
                      f"{_ratio(du.get('wall'), yard.get('wall'))} |    {_mb(yard.get('peak_mb'))} "
                      f"{_mb(stages.get('peak_metrics_mb'))} {_mb(ev.get('peak_mb'))} {_mb(du.get('peak_mb'))} "
                      f"{_ratio(ev.get('peak_mb'), yard.get('peak_mb'))} | {verdict}", flush=True)
                for c in [stages.get("check")] + stages.get("extra_checks", []):
                    for problem in (c or {}).get("problems", [])[:8]:
                        print(f"    as of {c['as_of']}: {problem}")
                for d in stages.get("drift") or []:
                    print(f"    drift: {d}")
                for k, r in (("yardF", yard), ("stages", stages), ("eval", ev), ("durable", du)):
                    if r.get("error"):
                        print(f"    {k}: {r['error']}")
                zero = (stages.get("check") or {}).get("constant") or []
                if zero and policy not in zero_noted:
                    zero_noted.add(policy)
                    print(f"    (compared, but the same for every pupil here: {', '.join(zero)})")
            print("   where a whole eval's time goes (run_evaluation's timings), builtin | durable:")
            print(f"{'':22} {'load':>6} {'metric':>6} {'rules':>6} {'act':>6} | {'load':>6} {'metric':>6} {'rules':>6} {'act':>6}")
            for row in report["runs"]:
                if row["size"] == size and row["format"] == fmt:
                    cells = []
                    for r in (row["eval_builtin"], row["eval_durable"]):
                        st = (r or {}).get("stages", {})
                        cells.append(" ".join(_t(st.get(k)) for k in ("load", "metrics", "rules", "act")))
                    print(f"{row['policy']:22} {cells[0]} | {cells[1]}")
        if not args.no_cli and cli_policies:
            exe = Path(sys.executable).with_name("rollbook")
            engines = ["builtin"] + (["auto"] if durable else [])
            print(f"\n== `rollbook eval` from the command line on the {cli_size} register (one school, "
                  f"{SIZES[cli_size][0]:,} pupils): wall s and peak MB (issue target <= 1 s); auto = the CLI's default "
                  "engine (durable-rules here);\n   checked = the policy checked in the run (ROLLBOOK_NO_CACHE=1, as on "
                  "a first run after a policy changes), kept = the checked policy reused (engine/check_cache.py)")
            print(f"{'policy':22} " + " ".join(f"{f + ' ' + e + ' ' + k:>18}" for f in cli_formats for e in engines
                                               for k in ("checked", "kept")))
            for policy in cli_policies:
                cells = []
                for fmt in cli_formats:
                    folder, _ = ensure_register(cache, cli_size, fmt, args.seed)
                    as_of = date.fromisoformat(args.as_of) if args.as_of else last_open_day(folder)
                    for e in engines:
                        command = [str(exe), "eval", "--policy", str(REPO / "policies" / f"{policy}.yaml"),
                                   "--register", str(folder), "--as-of", as_of.isoformat(), "--rules-engine", e,
                                   "--out", str(scratch / "actions.jsonl")]
                        checked = time_cli(command, repeat, dict(os.environ, ROLLBOOK_NO_CACHE="1"))
                        time_cli(command, 1)  # keeps the checked policy for the runs below
                        kept = time_cli(command, repeat)
                        for r, policy_cache in ((checked, "checked"), (kept, "kept")):
                            report["cli"].append(dict(r, size=cli_size, format=fmt, policy=policy, engine=e,
                                                      policy_cache=policy_cache))
                            cells.append(f"{r['wall']:6.3f} s {r['peak_mb']:4.0f} MB" + ("" if r["exit"] == 0 else f" exit {r['exit']}"))
                            failures += r["exit"] != 0
                print(f"{policy:22} " + " ".join(f"{c:>18}" for c in cells), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["loadavg_end"] = os.getloadavg()
    print(f"\nload average at the end: {', '.join(f'{x:.2f}' for x in report['loadavg_end'])}")
    print("m/yT = build_facts / the yardstick on the same loaded tables; e/yF, d/yF = a whole eval (files to actions) / "
          "the yardstick reading the files;\nmem = the builtin eval's peak RSS / the yardstick-from-files' peak RSS. "
          f"The yardstick's marks-on-roll CTE is {'not ' if args.streaming_yardstick else ''}materialised "
          f"({'--streaming-yardstick' if args.streaming_yardstick else 'DuckDB default; see --streaming-yardstick'}).")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    if failures:
        print(f"{failures} problem(s): see above")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
