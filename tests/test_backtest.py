"""`rollbook backtest`: replaying a policy over school days must give, day by day, what `eval`
would give with the earlier days' actions as prior actions.

- The contract, for every shipped policy: the backtest's last day equals a plain evaluation of that
  day with the seeded prior actions plus every action the backtest emitted before it, compared as
  whole action records (ids, evidence, reasons). Also the whole replay against the naive loop
  (one full evaluation per day) on a short span, for the policies whose rules read the ledger.
- Hand-counted cases on a RegisterBuilder register: a threshold crossed on a known day (first date
  met), once per term across a term boundary, a cooldown in school days, escalation after N school
  weeks, a limit reached (the alternative action), a rule that reads the ledger (`school days since
  last action`), and a seeded prior action.
- Random small registers (hypothesis): the whole replay against the naive loop, day by day.
- The same answers whatever the per-day facts tables' row order (unsorted, reversed, shuffled) and
  thread count (1 or 4, on a 1,000-pupil year whose facts span several DuckDB row groups).
- The command line end to end, with a golden text report, and its streamed reports (the records
  written a chunk of days at a time, not kept) equal to the in-memory API's.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from engine.act import PriorAction
from engine.api import check_policy_file, evaluate
from engine import backtest
from engine.backtest import ReportWriter, naive_backtest, run_backtest, to_csv, to_json, to_text

from .evaluation import ENGINES, POLICIES, SHIPPED_POLICIES, checked
from .registers import RegisterBuilder

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-register"
GOLDEN = Path(__file__).resolve().parent / "golden" / "backtest"
SHIPPED = SHIPPED_POLICIES


def _ledger(actions: list[dict]) -> list[PriorAction]:
    """Action records as the prior actions `eval --prior` reads from them."""
    return [PriorAction(a["rule"], a["verb"], a["subject"]["kind"], a["subject"]["id"], a["subject"]["school_id"],
                        date.fromisoformat(a["as_of"]), a["alternative"]) for a in actions]


# ---- the contract: the last day equals eval with the backtest's ledger ------------------------------

@pytest.mark.parametrize("policy", SHIPPED, ids=lambda p: p.stem)
def test_last_day_equals_eval_with_the_backtest_ledger(policy):
    result = run_backtest(checked(policy), SAMPLE, date(2025, 10, 1), date(2025, 11, 7))
    last = result.days[-1]
    assert last == date(2025, 11, 7)
    before = [a for a in result.actions if a["as_of"] < last.isoformat()]
    on_last = [a for a in result.actions if a["as_of"] == last.isoformat()]
    assert before, "the replay should have acted before its last day"
    expected = evaluate(checked(policy), SAMPLE, last, prior_actions=_ledger(before))
    assert on_last == expected


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "builtin"])
@pytest.mark.parametrize("policy", ["burton-hathow"])
def test_last_day_equals_eval_with_durable_rules(policy, engine):
    path = POLICIES / f"{policy}.yaml"
    span = (date(2025, 10, 20), date(2025, 10, 24))
    result = run_backtest(checked(path), SAMPLE, *span, rules_engine=engine)
    last = result.days[-1]
    before = [a for a in result.actions if a["as_of"] < last.isoformat()]
    expected = evaluate(checked(path), SAMPLE, last, prior_actions=_ledger(before), rules_engine=engine)
    assert [a for a in result.actions if a["as_of"] == last.isoformat()] == expected
    # And the same actions as the built-in engine's replay.
    assert result.actions == run_backtest(checked(path), SAMPLE, *span).actions


@pytest.mark.parametrize("policy", ["burton-hathow", "middleton-st-marys", "mason-moor"])
def test_every_day_equals_the_naive_loop(policy):
    """Rules that read the ledger (escalation proxies, once-per-run rules) decided day by day."""
    path = POLICIES / f"{policy}.yaml"
    span = (date(2025, 10, 23), date(2025, 11, 4))  # across the October half term
    result = run_backtest(checked(path), SAMPLE, *span)
    assert result.actions == naive_backtest(checked(path), SAMPLE, *span)


# ---- hand-counted cases --------------------------------------------------------------------------

CASES = """\
rollbook: 1
id: backtest-cases
title: Backtest cases
version: "1"
effective_from: 2024-09-01
rules:
  - id: five-o
    title: Five sessions coded O this academic year
    source: x
    when: sessions coded {O} this academic year >= 5
    then: [{flag: {flag: five-o}}]
    repeat: {once_per: term}
  - id: n-today
    title: An N today
    source: x
    when: sessions coded {N} in the last 1 school days >= 1
    then: [{notify: {role: attendance_officer}}]
    repeat: {cooldown: 3 school days}
  - id: first-g
    title: A G this year
    source: x
    when: sessions coded {G} this academic year >= 1
    then: [{flag: {flag: holiday}}]
    repeat: {once_per: academic_year}
  - id: second-g
    title: Still a G, two school weeks after the first
    source: x
    when: sessions coded {G} this academic year >= 1
    then: [{hold_meeting: {kind: formal, with: [parents]}}]
    repeat: {once_per: academic_year}
    after: {rule: first-g, at_least: 2 school weeks}
  - id: u-today
    title: A U today
    source: x
    when: sessions coded {U} in the last 1 school days >= 1
    then: [{consider_penalty_notice: {note: x}}]
    repeat: {cooldown: 1 school day}
    limit:
      max: 2
      within: 1 year
      otherwise: [{refer_local_authority: {service: legal, reason: x}}]
  - id: n-run
    title: Two school days of illness in a row, once per run
    source: x
    when: >-
      current run of school days coded {I} ever >= 2
      and school days since last action by rule n-run >= current run of school days coded {I} ever
    then: [{notify: {role: attendance_lead}}]
    repeat: {cooldown: 1 school day}
  - id: m-spell
    title: Three sessions of appointments in a row, once per spell
    source: x
    when: current run of sessions coded {M} ever >= 3
    then: [{notify: {role: attendance_officer}}]
    repeat: {once_per: run}
"""

FROM, TO = date(2025, 9, 3), date(2026, 1, 9)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backtest")
    policy = folder / "cases.yaml"
    policy.write_text(CASES, encoding="utf-8")
    b = RegisterBuilder()
    for pupil in ("T", "C", "E", "L", "R", "S"):
        b.pupil(pupil).present(pupil, FROM, TO)
    # T: O on Mon 8 and Tue 9 September (4 sessions) and Wed 10 AM: the fifth O is on the 10th.
    b.days("T", [date(2025, 9, 8), date(2025, 9, 9)], "O").mark("T", date(2025, 9, 10), "AM", "O")
    # C: N on 8, 9, 11, 15 and 16 September.
    b.days("C", [date(2025, 9, d) for d in (8, 9, 11, 15, 16)], "N")
    # E: a G on Wed 10 September.
    b.mark("E", date(2025, 9, 10), "AM", "G")
    # L: a U on 8, 10 and 12 September.
    for d in (8, 10, 12):
        b.mark("L", date(2025, 9, d), "AM", "U")
    # R: ill Mon 8 to Fri 12 September (a run of 5 school days), then again on 22 and 23 September.
    b.days("R", [date(2025, 9, d) for d in (8, 9, 10, 11, 12)], "I")
    b.days("R", [date(2025, 9, 22), date(2025, 9, 23)], "I")
    # S: present Mon 8 September AM, M from the afternoon to Tue 9 (3 sessions: a spell from Mon 8),
    # Y1 (not possible) Wed 10, M Thu 11 (the same spell), present Fri 12; M Mon 15 and Tue 16
    # (a new spell from Mon 15, 3 sessions on Tue 16), M Wed 17 (the same).
    b.mark("S", date(2025, 9, 8), "PM", "M").day("S", date(2025, 9, 9), "M").day("S", date(2025, 9, 10), "Y1")
    b.day("S", date(2025, 9, 11), "M").day("S", date(2025, 9, 15), "M").day("S", date(2025, 9, 16), "M")
    b.day("S", date(2025, 9, 17), "M")
    register = b.write(folder / "register")
    return policy, register


def _acted(result, rule: str) -> list[tuple[str, str]]:
    return [(a["as_of"], a["subject"]["id"]) for a in result.actions if a["rule"] == rule]


@pytest.fixture(scope="module")
def replay(cases):
    policy, register = cases
    return run_backtest(policy, register, FROM, TO)


def test_first_date_met_is_the_day_the_threshold_is_crossed(replay):
    first = {(e["rule"], e["subject"]["id"]): e["date"] for e in replay.first_met}
    assert first[("five-o", "T")] == "2025-09-10"
    assert first[("n-today", "C")] == "2025-09-08"
    assert first[("second-g", "E")] == "2025-09-10"  # the condition held; the escalation waited
    assert first[("n-run", "R")] == "2025-09-09"
    assert ("five-o", "C") not in first


def test_once_per_term_acts_again_on_the_first_day_of_the_next_term(replay):
    # The condition holds every day from 10 September on; the autumn term acts once (the October
    # half term is inside it), and the spring term on its first open day, 5 January.
    assert _acted(replay, "five-o") == [("2025-09-10", "T"), ("2026-01-05", "T")]


def test_cooldown_counts_school_days(replay):
    # 8th acts; 9th is 1 school day later (< 3); 11th is 3 (9, 10, 11); 15th is 2 (12, 15); 16th is 3.
    assert _acted(replay, "n-today") == [("2025-09-08", "C"), ("2025-09-11", "C"), ("2025-09-16", "C")]


def test_escalation_waits_two_school_weeks(replay):
    assert _acted(replay, "first-g") == [("2025-09-10", "E")]
    # School weeks after the week of 8 September: the weeks of the 15th (1) and 22nd (2).
    assert _acted(replay, "second-g") == [("2025-09-22", "E")]
    second = next(a for a in replay.actions if a["rule"] == "second-g")
    assert second["evidence"]["escalation"]["after_as_of"] == "2025-09-10"


def test_limit_reached_takes_the_alternative(replay):
    acted = [(a["as_of"], a["verb"], a["alternative"]) for a in replay.actions if a["rule"] == "u-today"]
    assert acted == [("2025-09-08", "consider_penalty_notice", False), ("2025-09-10", "consider_penalty_notice", False),
                     ("2025-09-12", "refer_local_authority", True)]
    third = next(a for a in replay.actions if a["rule"] == "u-today" and a["alternative"])
    assert third["evidence"]["limit"]["prior"] == ["2025-09-08", "2025-09-10"]


def test_a_rule_reading_the_ledger_sees_the_replayed_actions(replay):
    # Run of 2 on the 9th: never acted before, so it acts. 10th-12th: the run (3..5) is longer than
    # the school days since that action (1..3). 22nd: a new run of 1. 23rd: run 2, and 10 school
    # days since the 9th.
    assert _acted(replay, "n-run") == [("2025-09-09", "R"), ("2025-09-23", "R")]


def test_once_per_run_acts_once_per_spell(replay):
    acted = [a for a in replay.actions if a["rule"] == "m-spell"]
    assert [(a["as_of"], a["subject"]["id"]) for a in acted] == [("2025-09-09", "S"), ("2025-09-16", "S")]
    starts = [a["evidence"]["measures"][0]["run_start"] for a in acted]
    assert starts == ["2025-09-08", "2025-09-15"]


def test_weekly_counts(replay):
    week = {(e["week_start"], e["rule"]): (e["subjects"], e["firings"], e["actions"]) for e in replay.weekly}
    assert week[("2025-09-08", "n-today")] == (1, 2, 2)  # C on the 8th and 11th
    assert week[("2025-09-08", "u-today")] == (1, 3, 3)  # L on the 8th, 10th and 12th
    assert week[("2025-09-15", "n-today")] == (1, 1, 1)
    assert ("2025-09-15", "u-today") not in week
    assert sum(a for _, _, a in week.values()) == len(replay.actions)


def test_the_cases_equal_the_naive_loop(cases, replay):
    policy, register = cases
    end = date(2025, 9, 24)  # every case has acted by then
    assert [a for a in replay.actions if a["as_of"] <= end.isoformat()] == naive_backtest(policy, register, FROM, end)


def test_a_seeded_prior_action_holds_back_the_replay(cases):
    policy, register = cases
    seed = [PriorAction("five-o", "flag", "pupil", "T", "", date(2025, 9, 5)),
            PriorAction("n-today", "notify", "pupil", "C", "", date(2025, 9, 5), status="dismissed")]
    result = run_backtest(policy, register, FROM, TO, prior_actions=seed)
    assert _acted(result, "five-o") == [("2026-01-05", "T")]  # the autumn term had one already
    assert _acted(result, "n-today")[0] == ("2025-09-08", "C")  # a dismissed action does not count


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "builtin"])
def test_the_cases_with_durable_rules(cases, replay, engine):
    policy, register = cases
    assert run_backtest(policy, register, FROM, date(2025, 9, 24), rules_engine=engine).actions == \
        [a for a in replay.actions if a["as_of"] <= "2025-09-24"]


# ---- the command line ------------------------------------------------------------------------------

def test_cli_end_to_end(cases, replay, rollbook, tmp_path, update_golden):
    policy, register = cases
    args = ["backtest", "--policy", policy, "--register", register, "--from", FROM.isoformat(), "--to", TO.isoformat(),
            "--rules-engine", "builtin"]
    run = rollbook(*args, "--format", "json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["actions"] == replay.actions
    assert document["school_days"] == len(replay.days)
    assert document["first_met"] == replay.first_met and document["weekly"] == replay.weekly

    out = tmp_path / "report.csv"
    run = rollbook(*args, "--format", "csv", "--out", out)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["action_id"] for r in rows if r["report"] == "action"] == [a["id"] for a in replay.actions]
    assert sum(1 for r in rows if r["report"] == "first_met") == len(replay.first_met)

    run = rollbook(*args)
    assert run.returncode == 0, run.stderr
    text = run.stdout.replace(str(register), "REGISTER")
    golden = GOLDEN / "cases.txt"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert text == to_text(replay, str(register)).replace(str(register), "REGISTER")


STREAM_SPAN = (date(2025, 10, 1), date(2025, 11, 7))


@pytest.fixture(scope="module")
def kept():
    """burton-hathow on the sample register over a short span, every record kept in memory."""
    return run_backtest(checked(REPO / "policies" / "burton-hathow.yaml"), SAMPLE, *STREAM_SPAN)


@pytest.mark.parametrize("fmt", ["json", "csv", "text"])
def test_cli_streamed_report_equals_the_in_memory_records(kept, rollbook, tmp_path, fmt):
    # The CLI streams the records to its report chunk by chunk; the API kept them all.
    out = tmp_path / f"report.{fmt}"
    run = rollbook("backtest", "--policy", REPO / "policies" / "burton-hathow.yaml", "--register", SAMPLE,
                   "--from", STREAM_SPAN[0].isoformat(), "--to", STREAM_SPAN[1].isoformat(), "--format", fmt, "--out", out)
    assert run.returncode == 0, run.stderr
    assert f"{len(kept.actions)} actions" in run.stderr and kept.actions
    report = {"json": lambda r: to_json(r, str(SAMPLE)), "csv": to_csv, "text": lambda r: to_text(r, str(SAMPLE))}[fmt]
    assert out.read_text(encoding="utf-8") == report(kept)
    if fmt == "json":
        assert json.loads(out.read_text(encoding="utf-8"))["actions"] == kept.actions


def test_streaming_over_many_chunks_keeps_nothing_and_changes_nothing(kept, monkeypatch):
    # Chunks of 3 days (the sample register has 60 pupils), records built for a few firings at a
    # time, so the weekly counts and the reports are carried across chunks and record groups.
    monkeypatch.setattr(backtest, "CHUNK_SUBJECT_DAYS", 60 * 3)
    monkeypatch.setattr(backtest, "RECORD_FIRINGS", 4)  # and records built a day or so at a time
    chunks: list[list[dict]] = []
    writers = {fmt: ReportWriter(fmt, str(SAMPLE)) for fmt in ("json", "csv", "text")}

    def on_actions(records):
        chunks.append(records)
        for w in writers.values():
            w.add(records)

    streamed = run_backtest(checked(REPO / "policies" / "burton-hathow.yaml"), SAMPLE, *STREAM_SPAN,
                            keep_actions=False, on_actions=on_actions)
    assert streamed.actions is None
    assert len(chunks) > 5
    assert [a for c in chunks for a in c] == kept.actions
    assert streamed.action_count == len(kept.actions)
    assert (streamed.weekly, streamed.first_met, streamed.days) == (kept.weekly, kept.first_met, kept.days)
    for fmt, writer in writers.items():
        out = io.StringIO()
        writer.finish(streamed, out)
        expected = {"json": to_json(kept, str(SAMPLE)), "csv": to_csv(kept), "text": to_text(kept, str(SAMPLE))}[fmt]
        assert out.getvalue() == expected, fmt


# ---- row order and threads ----------------------------------------------------------------------

# Orders of the per-day facts tables' rows other than the sort the backtest writes (FACTS_ORDER):
# none (the join's order), reversed, and a fixed shuffle.
FACTS_ORDERS = {"unsorted": "", "reversed": "ORDER BY day DESC, school_id DESC, subject_id DESC",
                "shuffled": "ORDER BY hash(subject_id, school_id, day)"}


def _answers(result) -> tuple:
    return result.actions, result.first_met, result.weekly, result.action_count, result.subjects_acted


@pytest.mark.parametrize("order", FACTS_ORDERS.values(), ids=FACTS_ORDERS.keys())
def test_the_answers_do_not_depend_on_the_facts_row_order(kept, monkeypatch, order):
    # burton-hathow: a rule reading the ledger (re-read day by day), once per run, leaver and school
    # scopes; chunks of 5 days, so the ledger rule's candidates cross chunks too.
    monkeypatch.setattr(backtest, "FACTS_ORDER", order)
    other = run_backtest(checked(REPO / "policies" / "burton-hathow.yaml"), SAMPLE, *STREAM_SPAN)
    assert _answers(other) == _answers(kept)
    monkeypatch.setattr(backtest, "CHUNK_SUBJECT_DAYS", 60 * 5)
    assert _answers(run_backtest(checked(REPO / "policies" / "burton-hathow.yaml"), SAMPLE, *STREAM_SPAN)) == _answers(kept)


@pytest.mark.parametrize("order", FACTS_ORDERS.values(), ids=FACTS_ORDERS.keys())
def test_ranks_do_not_depend_on_the_facts_row_order(monkeypatch, order):
    # mason-moor ranks pupils within each school and day (rank() over the facts rows).
    policy = checked(REPO / "policies" / "mason-moor.yaml")
    sorted_ = run_backtest(policy, SAMPLE, *STREAM_SPAN)
    monkeypatch.setattr(backtest, "FACTS_ORDER", order)
    assert _answers(run_backtest(policy, SAMPLE, *STREAM_SPAN)) == _answers(sorted_)


def test_the_answers_do_not_depend_on_threads_or_row_order_on_a_larger_register(tmp_path, monkeypatch):
    """1,000 pupils over the academic year: the facts table of the pupil scope (about 190,000 rows,
    one chunk) fills more than one DuckDB row group (122,880 rows), so its scans and joins run in
    parallel and come back in no fixed order. One thread with the sort; four threads unsorted and
    shuffled: the same answers."""
    from engine.register import load_register
    from engine.sample import generate_sample

    generate_sample(pupils=1000, schools=2, seed=5, out_dir=tmp_path / "register", format="parquet")
    policy = checked(REPO / "policies" / "burton-hathow.yaml")
    span = (date(2025, 9, 3), date(2026, 7, 22))

    def replay(threads: int):
        register = load_register(tmp_path / "register").register
        register.connection.execute(f"SET threads = {threads}")
        return run_backtest(policy, register, *span)

    one = replay(1)
    assert one.action_count > 1000
    for order in ("", FACTS_ORDERS["shuffled"]):
        monkeypatch.setattr(backtest, "FACTS_ORDER", order)
        assert _answers(replay(4)) == _answers(one), order


@pytest.mark.parametrize("args, message", [
    (["--from", "2025-13-01", "--to", "2025-09-30"], "--from must be a date"),
    (["--from", "2025-09-30", "--to", "2025-09-01"], "is before --from"),
])
def test_cli_bad_dates(cases, rollbook, args, message):
    policy, register = cases
    run = rollbook("backtest", "--policy", policy, "--register", register, *args)
    assert run.returncode == 1
    assert message in run.stderr and "Traceback" not in run.stderr


def test_cli_a_range_without_school_days(cases, rollbook):
    policy, register = cases
    run = rollbook("backtest", "--policy", policy, "--register", register, "--from", "2025-12-20", "--to", "2026-01-04")
    assert run.returncode == 0, run.stderr
    assert "0 school days replayed, 0 actions" in run.stdout


def test_cli_help_explains(rollbook):
    run = rollbook("backtest", "--help")
    assert run.returncode == 0
    for words in ("--prior", "simulated ledger", "first date", "per rule per school week", "Example:"):
        assert words in " ".join(run.stdout.split())


# ---- the set-wise metrics against the metrics stage's own SQL ------------------------------------

RUNS = """\
rollbook: 1
id: runs
title: Runs
version: "1"
effective_from: 2024-09-01
rules:
  - {id: a, title: a, source: x, when: "longest run of sessions coded {I} this term >= 2", then: [{flag: {flag: a}}]}
  - {id: b, title: b, source: x, when: "longest run of school days coded {I, N, O} in the last 3 school weeks >= 1", then: [{flag: {flag: b}}]}
  - {id: c, title: c, source: x, when: "longest run of sessions coded {O, U, G} ever >= 1", then: [{flag: {flag: c}}]}
  - {id: d, title: d, source: x, when: "current run of sessions coded {I, M} this half term >= 1", then: [{flag: {flag: d}}]}
  - {id: e, title: e, source: x, when: "longest run of sessions previous term >= 1", then: [{flag: {flag: e}}]}
"""


def test_set_wise_runs_equal_the_metrics_stage_day_by_day(tmp_path, monkeypatch):
    """Longest and current runs from the cumulative lists and islands, for every pupil on every
    day of a span across a half term and a term boundary, against metrics' own SQL per day."""
    import engine.backtest as backtest
    from engine.api import prepare_register
    from engine.compile import compile_policy

    policy = tmp_path / "runs.yaml"
    policy.write_text(RUNS, encoding="utf-8")
    plan = compile_policy(checked(policy))

    def values(setwise: bool):
        monkeypatch.setattr(backtest, "LONGEST_RUNS_SETWISE", setwise)
        register, _ = prepare_register(SAMPLE, plan.policy)
        replay = backtest._Replay(plan, register.connection, date(2025, 10, 20), date(2026, 1, 9), [], "builtin", None, None)
        replay.prepare_calendar()
        replay.prepare_lists()
        replay.per_day_fallback()
        replay.build_chunk(replay.days)
        columns = ", ".join(replay.columns[m] for m in plan.metrics)
        return replay.per_day, register.connection.execute(
            f"SELECT day, school_id, subject_id, {columns} FROM bt_facts_pupil ORDER BY ALL").fetchall()

    per_day, fast = values(True)
    assert per_day == []
    per_day, slow = values(False)
    assert len(per_day) == 4  # every longest run, computed with metrics' run_sql day by day
    assert fast == slow
    assert any(row[3] for row in fast) and any(row[4] for row in fast)  # some runs are not empty


# ---- ledger measures over a window bounded by the pupil's own dates --------------------------------

PUPIL_WINDOW = """\
rollbook: 1
id: pupil-window
title: Ledger counts since the pupil joined
version: "1"
effective_from: 2025-09-01
rules:
  - id: seen
    title: Present today
    source: x
    when: sessions coded {/} in the last 1 school days >= 1
    then: [{notify: {role: attendance_officer}}]
    repeat: {cooldown: 5 school days}
  - id: seen-twice-since-joining
    title: Two notices since the pupil joined
    source: x
    when: actions by rule seen since pupil.joined_on >= 2
    then: [{flag: {flag: seen-twice}}]
"""


def test_a_ledger_count_since_a_pupil_date_reads_each_pupils_own_date(tmp_path):
    """`actions by rule seen since pupil.joined_on` once failed with an internal error (its SQL
    named the pupils table without joining it). EARLY joined on 1 Sep, LATE on 1 Oct; both have
    `seen` actions on 22 Sep and 6 Oct (a prior action before LATE joined, as when a pupil
    re-joins): on 8 Oct EARLY has 2 since joining and LATE 1."""
    policy = tmp_path / "pupil-window.yaml"
    policy.write_text(PUPIL_WINDOW)
    b = RegisterBuilder()
    b.pupil("EARLY", joined_on="2025-09-01").present("EARLY", date(2025, 9, 3), date(2025, 10, 8))
    b.pupil("LATE", joined_on="2025-10-01").present("LATE", date(2025, 10, 1), date(2025, 10, 8))
    register = b.write(tmp_path / "register")
    prior = [PriorAction("seen", "notify", "pupil", p, "", d) for p in ("EARLY", "LATE")
             for d in (date(2025, 9, 22), date(2025, 10, 6))]
    flagged = [a["subject"]["id"] for a in evaluate(str(policy), register, date(2025, 10, 8), prior_actions=prior)
               if a["rule"] == "seen-twice-since-joining"]
    assert flagged == ["EARLY"]
    # The backtest computes the same measure set-wise: it agrees with the naive loop day by day.
    span = (date(2025, 9, 29), date(2025, 10, 17))
    checked_policy = check_policy_file(policy).policy
    assert run_backtest(checked_policy, register, *span).actions == naive_backtest(checked_policy, register, *span)


# ---- rules about leavers share the pupil's ledger -------------------------------------------------

LEAVERS = """\
rollbook: 1
id: leavers
title: Leaver rules after a pupil rule
version: "1"
effective_from: 2025-09-01
rules:
  - id: absent-today
    title: An O today
    source: x
    when: sessions coded {O} in the last 1 school days >= 1
    then: [{flag: {flag: absent}}]
    repeat: {cooldown: 1 school day}
  - id: leaver-after-absence
    title: A recent leaver who had an O
    source: x
    scope: leaver
    when: sessions in the last 10 school days >= 1
    then: [{notify: {role: attendance_officer}}]
    after: {rule: absent-today}
  - id: leaver-three-days-on
    title: Three school days after the O, for a leaver
    source: x
    scope: leaver
    when: school days since last action by rule absent-today >= 3 and school days since last action by rule absent-today <= 5
    then: [{notify: {role: attendance_lead}}]
"""


def test_leaver_rules_read_the_pupils_ledger_in_the_backtest(tmp_path):
    """LV joined on Wed 3 Sep, has an O on Mon 15 Sep and left on Wed 17 Sep (leave date recorded
    from the start); ST stays and is never absent. absent-today acts for LV on 15 Sep. The leaver
    rules see that pupil action: leaver-after-absence on Tue 16 Sep (the first day the 15 Sep
    action is prior), leaver-three-days-on on Thu 18 Sep (16, 17, 18 Sep: 3 school days since),
    the day after LV left, when no pupil rule evaluates LV any more (at most 5: never is not
    recent). Both once ever."""
    policy = tmp_path / "leavers.yaml"
    policy.write_text(LEAVERS)
    b = RegisterBuilder()
    b.pupil("LV", joined_on="2025-09-03", left_on="2025-09-17").present("LV", date(2025, 9, 3), date(2025, 9, 17))
    b.day("LV", date(2025, 9, 15), "O")
    b.pupil("ST", joined_on="2025-09-03").present("ST", date(2025, 9, 3), date(2025, 10, 3))
    register = b.write(tmp_path / "register")
    checked_policy = check_policy_file(policy).policy
    span = (date(2025, 9, 8), date(2025, 10, 3))
    result = run_backtest(checked_policy, register, *span)
    assert [(a["as_of"], a["rule"], a["subject"]["kind"], a["subject"]["id"]) for a in result.actions] == [
        ("2025-09-15", "absent-today", "pupil", "LV"),
        ("2025-09-16", "leaver-after-absence", "pupil", "LV"),
        ("2025-09-18", "leaver-three-days-on", "pupil", "LV")]
    assert result.actions == naive_backtest(checked_policy, register, *span)
    # First met: leaver-after-absence held from the first replayed day; the escalation waited.
    first = {(e["rule"], e["subject"]["id"]): e["date"] for e in result.first_met}
    assert first[("leaver-after-absence", "LV")] == "2025-09-08"
    assert {e["subject"]["kind"] for e in result.first_met} == {"pupil"}


# ---- once per run over a window with an exclusion (computed day by day) ---------------------------

RUN_EXCLUDING = """\
rollbook: 1
id: run-excluding
title: Once per run over a window with an exclusion
version: "1"
effective_from: 2025-09-01
rules:
  - id: spell
    title: Two school days of absence in a row
    source: x
    when: current run of school days coded {I, N, O, G, U} this academic year excluding days from 2025-11-03 to 2025-11-07 >= 2
    then: [{notify: {role: attendance_officer}}]
    repeat: {once_per: run}
  - id: plain
    title: Two school days of absence in a row, no exclusion
    source: x
    when: current run of school days coded {I, N, O, G, U} this academic year >= 2
    then: [{notify: {role: attendance_officer}}]
    repeat: {once_per: run}
"""


def test_once_per_run_over_a_window_with_an_exclusion_equals_the_naive_loop(tmp_path):
    """A current run over a window with `excluding` takes the backtest's day-by-day path for its
    start date; `once_per: run` must still act once per spell, as eval does on each day."""
    policy = tmp_path / "run-excluding.yaml"
    policy.write_text(RUN_EXCLUDING, encoding="utf-8")
    checked_policy = check_policy_file(policy).policy
    span = (date(2025, 10, 13), date(2025, 11, 21))
    actions = run_backtest(checked_policy, SAMPLE, *span).actions
    assert actions == naive_backtest(checked_policy, SAMPLE, *span)
    per_pupil = Counter((a["rule"], a["subject"]["id"]) for a in actions)
    # Some pupils have several spells in six weeks: the rule acted again for a new run.
    assert any(n > 1 for (rule, _), n in per_pupil.items() if rule == "spell")


# ---- random small registers: the set-wise counts against the naive loop ------------------------

RANDOM_POLICY = """\
rollbook: 1
id: random-registers
title: Counts, runs and ledger reads on random registers
version: "1"
effective_from: 2024-09-01
rules:
  - {id: a, title: a, source: x, when: "sessions coded {O, U, N} in the last 2 school weeks >= 3", then: [{flag: {flag: a}}],
     repeat: {cooldown: 3 school days}}
  - {id: b, title: b, source: x, when: "absent morning sessions on {Monday, Friday} this half term >= 2", then: [{flag: {flag: b}}]}
  - {id: c, title: c, source: x, when: "current run of sessions coded {O, U, N, I} this half term >= 3", then: [{flag: {flag: c}}],
     repeat: {cooldown: 2 school days}}
  - {id: d, title: d, source: x, when: "current run of school days coded {O, N} ever >= 2", then: [{flag: {flag: d}}]}
  - {id: e, title: e, source: x, when: "minutes late this term >= 25 and sessions coded {O} since pupil.joined_on >= 1",
     then: [{flag: {flag: e}}]}
  - {id: f, title: f, source: x, when: "actions by rule a this term >= 2 and absence this half term >= 10%",
     then: [{flag: {flag: f}}]}
  - {id: g, title: g, source: x, when: "current run of school days coded {O, U, N, I} ever >= 2", then: [{flag: {flag: g}}],
     repeat: {once_per: run}}
  - {id: h, title: h, source: x, scope: leaver, when: "sessions in the last 5 school days >= 1 and actions by rule c ever >= 1",
     then: [{flag: {flag: h}}]}
"""

RANDOM_CODES = ["/", "/", "/", "\\", "L", "I", "M", "O", "U", "N", "G", "#"]


def test_random_registers_equal_the_naive_loop_day_by_day(tmp_path_factory):
    """Random small registers (random codes, gaps, pupils joining and leaving mid-span): the
    backtest's set-wise counts, runs and ledger reads give, day by day, the records of the naive
    loop (a full `eval` per day with the earlier days' actions)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from .registers import open_days

    days = open_days(date(2025, 10, 6), date(2025, 11, 14))  # across the October half term
    span = (date(2025, 11, 3), date(2025, 11, 14))
    policy_file = tmp_path_factory.mktemp("random") / "random.yaml"
    policy_file.write_text(RANDOM_POLICY, encoding="utf-8")
    policy = check_policy_file(policy_file).policy
    session = st.one_of(st.none(), st.sampled_from(RANDOM_CODES))
    # Codes for every session, the day the pupil joined, how many days later it left (or not), lateness.
    pupil = st.tuples(st.lists(session, min_size=2 * len(days), max_size=2 * len(days)),
                      st.integers(0, len(days) - 1), st.one_of(st.none(), st.integers(0, len(days) - 1)),
                      st.integers(0, 3))

    @settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(pupil, min_size=1, max_size=3))
    def check(pupils):
        b = RegisterBuilder()
        for n, (codes, joined, left, late) in enumerate(pupils):
            pid = f"P{n}"
            last = min(joined + left, len(days) - 1) if left is not None else len(days) - 1
            b.pupil(pid, joined_on=days[joined].isoformat(), left_on=days[last].isoformat() if left is not None else "")
            for k, code in enumerate(codes):
                if code is not None and joined <= k // 2 <= last:  # marks only while on roll
                    b.mark(pid, days[k // 2], ("AM", "PM")[k % 2], code, 5 * late + 3 if code == "L" else None)
        register = b.write(tmp_path_factory.mktemp("register"))
        assert run_backtest(policy, register, *span).actions == naive_backtest(policy, register, *span)

    check()
