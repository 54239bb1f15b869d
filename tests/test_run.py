"""`rollbook run` end to end through the CLI, on both ledger stores: incremental days, re-runs,
escalation read from the ledger, kill -9 at named points and at random moments, the webhook
outbox against a real HTTP server, the school.id mapping, and `rollbook ledger`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.ledger import open_ledger

from .ledger_stores import ledger_url  # noqa: F401  (the parametrised store fixture)
from .registers import RegisterBuilder, open_days

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "examples" / "integration" / "policies"  # one school: national + a two-letter escalation
EXE = Path(sys.executable).with_name("rollbook")
DAY1, DAY2 = date(2025, 10, 6), date(2025, 10, 7)


def register(tmp_path: Path, last: date) -> Path:
    """A school's register as its feed stands on `last`. Attendance this year on 6 / 7 October:
    P1 37.5% / 36% (both letters), P2 87.5% / 88% (letter 1), P3 91.7% / 88% (letter 1 on the
    7th only), P4 present throughout."""
    b = RegisterBuilder()
    start = date(2025, 9, 3)
    for p in ("P1", "P2", "P3", "P4"):
        b.pupil(p, joined_on="2025-09-01").present(p, start, last)
    days = open_days(start, last)
    b.days("P1", days[:15], "O")
    b.days("P2", days[3:6], "I")
    b.days("P3", days[8:10], "I")
    if last >= DAY2:
        b.day("P3", DAY2, "I")
    return b.write(tmp_path / f"register-{last.isoformat()}")


@pytest.fixture(scope="module")
def feeds(tmp_path_factory) -> dict[date, Path]:
    """The school's register on each day (built once: evaluation does not change them)."""
    folder = tmp_path_factory.mktemp("feeds")
    return {DAY1: register(folder, DAY1), DAY2: register(folder, DAY2)}


@pytest.fixture(scope="module")
def baseline(feeds, tmp_path_factory) -> dict[date, list[str]]:
    """The new action ids of uninterrupted runs on day 1 then day 2."""
    url = f"sqlite:///{tmp_path_factory.mktemp('baseline') / 'ledger.db'}"
    return {day: ids(rollbook(*run_args(reg, day, url)).stdout) for day, reg in feeds.items()}


def rollbook(*args, env=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(EXE), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def run_args(reg: Path, as_of: date, url: str, *more) -> list:
    return ["run", "--policies", POLICIES, "--register", reg, "--as-of", as_of.isoformat(), "--ledger", url,
            "--rules-engine", "builtin", *more]


def ids(jsonl: str) -> list[str]:
    return [json.loads(line)["id"] for line in jsonl.splitlines() if line.strip()]


def rules(jsonl: str) -> set[tuple[str, str]]:
    return {(json.loads(line)["rule"], json.loads(line)["subject"]["id"]) for line in jsonl.splitlines() if line.strip()}


def ledger_ids(url: str) -> list[str]:
    with open_ledger(url) as ledger:
        return [a["id"] for a in ledger.list_actions()]


def test_daily_runs_emit_each_action_once_and_escalate_from_the_ledger(feeds, ledger_url):
    reg1, reg2 = feeds[DAY1], feeds[DAY2]
    first = rollbook(*run_args(reg1, DAY1, ledger_url))
    day1 = rules(first.stdout)
    assert {("attendance-letter-1", "P1"), ("attendance-letter-1", "P2")} <= day1
    assert not any(r == "attendance-letter-2" for r, _ in day1)  # no letter 1 in the ledger yet
    assert "run 1 on 2025-10-06" in first.stderr and f"{len(ids(first.stdout))} new" in first.stderr
    # The same day again, by a re-run of the same feed: nothing new, and the decision log says so.
    again = rollbook(*run_args(reg1, DAY1, ledger_url))
    assert again.stdout == "" and "0 new" in again.stderr
    # The next day: letter 2 for P1 (letter 1 is in the ledger), letter 1 for P3 only; nothing repeated.
    second = rollbook(*run_args(reg2, DAY2, ledger_url))
    day2 = rules(second.stdout)
    assert ("attendance-letter-2", "P1") in day2 and ("attendance-letter-1", "P3") in day2
    assert ("attendance-letter-1", "P1") not in day2 and ("attendance-letter-2", "P2") not in day2
    assert not set(ids(second.stdout)) & set(ids(first.stdout))
    letter2 = next(json.loads(l) for l in second.stdout.splitlines() if json.loads(l)["rule"] == "attendance-letter-2")
    assert letter2["evidence"]["escalation"]["after_as_of"] == DAY1.isoformat()
    assert ledger_ids(ledger_url) == ids(first.stdout) + ids(second.stdout)
    with open_ledger(ledger_url) as ledger:
        log = ledger.runs()
    assert [(r["as_of"], r["new_actions"]) for r in log] == [("2025-10-07", len(ids(second.stdout))),
                                                             ("2025-10-06", 0), ("2025-10-06", len(ids(first.stdout)))]
    entry = log[0]
    assert entry["policies"][0]["id"] == "sample-primary" and len(entry["policies"][0]["sha256"]) == 64
    assert entry["register"]["sha256"] != log[1]["register"]["sha256"]  # a different feed
    assert set(entry["register"]["files"]) == {"marks", "pupils", "calendar"}
    assert entry["counts_per_rule"]["sample-primary/attendance-letter-2"] == 2  # send_letter and notify
    assert entry["rollbook_version"] and entry["new_per_rule"]


def test_a_dismissed_first_letter_does_not_escalate(feeds, ledger_url):
    reg1, reg2 = feeds[DAY1], feeds[DAY2]
    first = rollbook(*run_args(reg1, DAY1, ledger_url))
    letter1 = next(json.loads(l) for l in first.stdout.splitlines()
                   if (json.loads(l)["rule"], json.loads(l)["subject"]["id"]) == ("attendance-letter-1", "P1"))
    done = rollbook("ledger", "set-status", letter1["id"], "dismissed", "--by", "a.head", "--note", "coded wrongly",
                    "--ledger", ledger_url)
    assert f"{letter1['id']}: dismissed (by a.head" in done.stdout
    day2 = rules(rollbook(*run_args(reg2, DAY2, ledger_url)).stdout)
    # The act stage ignores dismissed actions: no escalation, and letter 1 is due again.
    assert ("attendance-letter-2", "P1") not in day2 and ("attendance-letter-1", "P1") in day2
    history = rollbook("ledger", "history", letter1["id"], "--ledger", ledger_url).stdout
    assert "dismissed  by a.head: coded wrongly" in history and "open       by rollbook run" in history


def _start_paused(args, point: str) -> subprocess.Popen:
    env = {**os.environ, "ROLLBOOK_PAUSE_AT": point}
    proc = subprocess.Popen([str(EXE), *map(str, args)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    seen = []
    for line in proc.stderr:  # blocks until the run reaches the point (or ends)
        seen.append(line)
        if f"paused at {point}" in line:
            return proc
    proc.wait(30)
    raise AssertionError(f"the run never reached {point}: {''.join(seen)}")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point, committed", [("run:before_record", False), ("record_run:before_commit", False),
                                              ("run:after_commit", True)])
def test_a_run_killed_at_any_point_loses_and_duplicates_nothing(feeds, baseline, ledger_url, point, committed):
    reg, baseline = feeds[DAY1], baseline[DAY1]
    assert baseline
    _kill(_start_paused(run_args(reg, DAY1, ledger_url), point))
    before = ledger_ids(ledger_url)  # the ledger opens and is consistent after the kill
    assert before == (baseline if committed else [])
    rerun = ids(rollbook(*run_args(reg, DAY1, ledger_url)).stdout)
    assert rerun == [i for i in baseline if i not in before]  # exactly what was not yet committed
    assert sorted(ledger_ids(ledger_url)) == sorted(baseline)
    with open_ledger(ledger_url) as ledger:
        runs = ledger.runs()
    assert len(runs) == (2 if committed else 1)  # a rolled-back run leaves no decision-log entry


def test_runs_killed_at_random_moments_over_two_days_end_in_the_uninterrupted_ledger(tmp_path, feeds, baseline):
    regs = feeds
    expected = baseline[DAY1] + baseline[DAY2]
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    rng = random.Random(20251006)
    printed: list[str] = []
    for day, reg in regs.items():
        for _ in range(2):
            proc = subprocess.Popen([str(EXE), *map(str, run_args(reg, day, url))], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(rng.uniform(0.2, 1.5))
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate(timeout=30)
            printed += ids(out)  # a run that finished before the kill printed its new actions
        printed += ids(rollbook(*run_args(reg, day, url)).stdout)
    assert len(printed) == len(set(printed))  # never printed twice
    assert sorted(ledger_ids(url)) == sorted(expected)
    assert set(printed) <= set(expected)


class _Hook(BaseHTTPRequestHandler):
    """Answers 503 to the first `fail_first` requests (or to all while `down`), then 200; keeps
    every request's Idempotency-Key and body."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append((self.headers.get("Idempotency-Key"), body["id"]))
            fail = server.down or len(server.requests) <= server.fail_first
        self.send_response(503 if fail else 200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.lock, server.requests, server.fail_first, server.down = threading.Lock(), [], 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/actions"
    yield server
    server.shutdown()
    server.server_close()


def test_the_webhook_gets_every_new_action_with_its_id_as_idempotency_key_after_retries(feeds, ledger_url, hook):
    hook.fail_first = 2
    reg = feeds[DAY1]
    result = rollbook(*run_args(reg, DAY1, ledger_url, "--webhook", hook.url, "--webhook-backoff", "0.01"))
    new = ids(result.stdout)
    assert f"{len(new)} delivered, 0 still queued" in result.stderr
    assert all(key == body_id for key, body_id in hook.requests)
    assert [k for k, _ in hook.requests[:3]] == [new[0]] * 3  # the first action, tried three times
    assert [k for k, _ in hook.requests[2:]] == new  # then each once, oldest first
    again = rollbook(*run_args(reg, DAY1, ledger_url, "--webhook", hook.url))
    assert again.stdout == "" and len(hook.requests) == len(new) + 2  # nothing new, nothing re-sent


def test_undelivered_actions_wait_in_the_outbox_for_the_next_run(feeds, ledger_url, hook):
    hook.down = True
    reg1, reg2 = feeds[DAY1], feeds[DAY2]
    first = rollbook(*run_args(reg1, DAY1, ledger_url, "--webhook", hook.url, "--webhook-attempts", "3",
                               "--webhook-backoff", "0.01"), check=False)
    day1 = ids(first.stdout)
    assert first.returncode == 1 and f"0 delivered, {len(day1)} still queued" in first.stderr
    assert len(hook.requests) == 3  # bounded: the server is down, the rest wait
    outbox = rollbook("ledger", "outbox", "--ledger", ledger_url).stdout
    assert f"{len(day1)} pending, 0 delivered" in outbox
    hook.down, hook.requests[:] = False, []
    second = rollbook(*run_args(reg2, DAY2, ledger_url, "--webhook", hook.url))
    day2 = ids(second.stdout)
    assert [k for k, _ in hook.requests] == day1 + day2  # yesterday's first, then today's
    assert f"{len(day1) + len(day2)} pending" not in rollbook("ledger", "outbox", "--ledger", ledger_url).stdout


def test_a_run_killed_between_post_and_mark_resends_with_the_same_key(feeds, ledger_url, hook):
    reg = feeds[DAY1]
    _kill(_start_paused(run_args(reg, DAY1, ledger_url, "--webhook", hook.url), "webhook:after_post"))
    first_key = hook.requests[0][0]
    rerun = rollbook(*run_args(reg, DAY1, ledger_url, "--webhook", hook.url))
    assert rerun.stdout == ""  # the actions were committed before the kill
    keys = [k for k, _ in hook.requests]
    assert keys[0] == keys[1] == first_key  # delivered twice, same key: the receiver drops the repeat
    assert sorted(set(keys)) == sorted(ledger_ids(ledger_url)) and len(keys) == len(set(keys)) + 1


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[int, Path]:
    """Synthetic registers with one school (no school_id) and with two (S01, S02)."""
    folder = tmp_path_factory.mktemp("samples")
    for n in (1, 2):
        rollbook("sample", "--pupils", "30", "--schools", str(n), "--seed", "5", "--out", folder / f"schools-{n}")
    return {n: folder / f"schools-{n}" for n in (1, 2)}


def _two_school_policies(folder: Path, ids_: dict[str, str]) -> Path:
    folder.mkdir()
    national = REPO / "policies" / "national.yaml"
    for policy_id, school_id in ids_.items():
        school = f"{{name: {policy_id}, id: {school_id}}}" if school_id else f"{{name: {policy_id}}}"
        (folder / f"{policy_id}.yaml").write_text(
            f"rollbook: 1\nid: {policy_id}\ntitle: {policy_id}\nextends: {national}\nschool: {school}\n"
            f"version: \"1\"\neffective_from: 2025-09-01\nrules: []\n")
    return folder


def test_each_school_is_evaluated_with_its_own_policy(tmp_path, ledger_url, samples):
    reg = samples[2]
    policies = _two_school_policies(tmp_path / "policies", {"school-a": "S01", "school-b": "S02", "school-c": "S03"})
    result = rollbook("run", "--policies", policies, "--register", reg, "--as-of", "2025-11-03", "--ledger", ledger_url,
                      "--rules-engine", "builtin")
    actions = [json.loads(l) for l in result.stdout.splitlines()]
    assert {(a["policy"], a["subject"]["school_id"]) for a in actions} == {("school-a", "S01"), ("school-b", "S02")}
    assert "policy" in result.stderr and "school 'S03'" in result.stderr and "not evaluated" in result.stderr
    # The same as evaluating school-a's policy on the whole register and keeping school S01.
    whole = rollbook("eval", "--policy", policies / "school-a.yaml", "--register", reg, "--as-of", "2025-11-03",
                     "--rules-engine", "builtin")
    expected = [json.loads(l) for l in whole.stdout.splitlines() if json.loads(l)["subject"]["school_id"] == "S01"]
    assert [a["id"] for a in actions if a["policy"] == "school-a"] == [a["id"] for a in expected]


@pytest.mark.parametrize("policies, register_schools, message", [
    ({"school-a": "S01"}, 2, "no policy in .* for school 'S02' of the register"),
    ({"school-a": "S01", "school-b": "S01"}, 2, "more than one policy for a school: S01"),
    ({"school-a": "S01", "school-b": None}, 2, "has no `school.id`"),
    ({"school-a": "S01", "school-b": "S02"}, 1, "no school_id column, so it is one school, but .* holds 2 school policies"),
])
def test_policies_that_do_not_map_to_the_register_stop_the_run(tmp_path, samples, policies, register_schools, message):
    import re

    reg = samples[register_schools]
    folder = _two_school_policies(tmp_path / "policies", policies)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = rollbook("run", "--policies", folder, "--register", reg, "--as-of", "2025-11-03", "--ledger", url,
                      check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_ledger_subcommands(tmp_path, feeds):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    out = rollbook(*run_args(feeds[DAY1], DAY1, url)).stdout
    first = ids(out)[0]
    table = rollbook("ledger", "actions", "--ledger", url, "--rule", "attendance-letter-1").stdout
    assert table.splitlines()[0].split()[:3] == ["seq", "id", "status"] and len(table.splitlines()) == 3  # P1, P2
    rollbook("ledger", "set-status", first, "done", "--by", "j.smith", "--ledger", url)
    done = rollbook("ledger", "actions", "--status", "done", "--format", "jsonl", "--ledger", url).stdout
    assert ids(done) == [first] and json.loads(done)["status"] == "done"
    paged = rollbook("ledger", "actions", "--since", "2", "--limit", "2", "--format", "jsonl", "--ledger", url)
    assert [json.loads(l)["ledger"]["seq"] for l in paged.stdout.splitlines()] == [3, 4]
    assert "next cursor: 4" in paged.stderr
    runs = rollbook("ledger", "runs", "--format", "json", "--ledger", url).stdout
    assert json.loads(runs)["policies"][0]["id"] == "sample-primary"
    bad = rollbook("ledger", "set-status", "act_nope", "done", "--by", "me", "--ledger", url, check=False)
    assert bad.returncode == 1 and bad.stderr == "error: no action 'act_nope' in the ledger\n"
    missing = rollbook("ledger", "runs", check=False, env={"ROLLBOOK_LEDGER": ""})
    assert missing.returncode == 2 and "--ledger" in missing.stderr


def test_a_register_without_school_id_takes_its_policy_school_id(feeds, tmp_path):
    """The same label as a service batch for that school gets (Register.label_school), so one
    ledger fed both ways records each action once."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    out = rollbook(*run_args(feeds[DAY1], DAY1, url)).stdout
    schools = {json.loads(line)["subject"]["school_id"] for line in out.splitlines()}
    assert schools == {"SAMPLE"}  # examples/integration/policies/sample-primary.yaml: school.id
