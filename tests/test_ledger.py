"""The action ledger (engine/ledger.py) on both stores: migrations, exactly-once recording,
status history, cursor paging, the outbox, concurrent writers."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.act import PriorAction
from engine.ledger import LedgerError, migrations, open_ledger

from .ledger_stores import ledger_url  # noqa: F401  (the parametrised store fixture)


def action(n: int, school: str = "S1", rule: str = "letter-1", as_of: str = "2025-10-06", **extra) -> dict:
    """An action record shaped as engine/act.py builds them (the fields the ledger reads)."""
    return {"id": f"act_{n:032x}", "format": 1, "policy": "p", "policy_version": "1", "policy_sha256": "0" * 64,
            "rule": rule, "rule_title": rule, "defined_in": "p.yaml",
            "subject": {"kind": "pupil", "id": f"P{n}", "school_id": school}, "verb": "send_letter",
            "params": {"letter": "l1"}, "alternative": False, "as_of": as_of, "advisory": False,
            "evidence": {"condition": "x", "measures": [], "comparisons": []}, "reason": f"Pupil P{n}.",
            "source": None, **extra}


RUN = {"as_of": "2025-10-06", "rollbook_version": "test"}


def test_migrations_are_recorded_once_and_reopening_changes_nothing(ledger_url):
    with open_ledger(ledger_url) as ledger:
        first = ledger.schema_version()
        ledger.record_run(RUN, [action(1)])
    assert first == [(v, n) for v, n, _ in migrations()]
    with open_ledger(ledger_url) as ledger:
        assert ledger.schema_version() == first
        assert [a["id"] for a in ledger.list_actions()] == [action(1)["id"]]


def test_two_processes_opening_a_new_ledger_at_once_both_succeed(ledger_url):
    code = ("import sys; from engine.ledger import open_ledger; "
            "l = open_ledger(sys.argv[1]); print(l.schema_version()); l.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, ledger_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    with open_ledger(ledger_url) as ledger:
        assert ledger.schema_version() == [(v, n) for v, n, _ in migrations()]


def test_record_run_inserts_each_action_once_and_returns_the_new_in_input_order(ledger_url):
    with open_ledger(ledger_url) as ledger:
        batch = [action(3), action(1), action(2)]
        assert [a["id"] for a in ledger.record_run(RUN, batch)] == [a["id"] for a in batch]
        # The same day again: nothing new. A later batch: only what the ledger has not seen.
        assert ledger.record_run(RUN, batch) == []
        again = [action(2), action(5), action(1), action(4), action(5)]
        assert [a["id"] for a in ledger.record_run(RUN, again)] == [action(5)["id"], action(4)["id"]]
        stored = ledger.list_actions()
        assert [a["id"] for a in stored] == [action(n)["id"] for n in (3, 1, 2, 5, 4)]
        assert [a["ledger"]["seq"] for a in stored] == [1, 2, 3, 4, 5]
        assert all(a["status"] == "open" for a in stored)
        runs = ledger.runs()
        assert [(r["id"], r["evaluated_actions"], r["new_actions"]) for r in runs] == [(3, 5, 2), (2, 3, 0), (1, 3, 3)]
        assert runs[0]["new_per_rule"] == {"p/letter-1": 2} and runs[0]["rollbook_version"] == "test"
        # The stored record is the record given, plus status and ledger metadata.
        got = ledger.get_action(action(3)["id"])
        assert {k: v for k, v in got.items() if k not in ("status", "ledger", "history")} == action(3)


def test_status_changes_keep_their_history_and_prior_actions_carry_the_status(ledger_url):
    with open_ledger(ledger_url) as ledger:
        ledger.record_run(RUN, [action(1), action(2, school="S2")])
        aid = action(1)["id"]
        ledger.set_status(aid, "done", "j.smith", "letter posted")
        ledger.set_status(aid, "dismissed", "a.head", "register corrected: the absence was authorised")
        after = ledger.set_status(aid, "open", "a.head", None)
        assert after["status"] == "open" and after["ledger"]["status_changed_by"] == "a.head"
        history = ledger.history(aid)
        assert [(h["status"], h["changed_by"], h["note"]) for h in history] == [
            ("open", "rollbook run", "recorded by run 1"), ("done", "j.smith", "letter posted"),
            ("dismissed", "a.head", "register corrected: the absence was authorised"), ("open", "a.head", None)]
        assert [h["changed_at"] for h in history] == sorted(h["changed_at"] for h in history)
        ledger.set_status(aid, "dismissed", "a.head")
        prior = ledger.prior_actions({"S1"})
        assert prior == [PriorAction("letter-1", "send_letter", "pupil", "P1", "S1", date(2025, 10, 6), False, "dismissed")]
        assert len(ledger.prior_actions()) == 2 and ledger.prior_actions(set()) == []
        assert [a["id"] for a in ledger.list_actions(status="dismissed")] == [aid]
        assert [a["id"] for a in ledger.list_actions(school_ids={"S2"})] == [action(2)["id"]]


@pytest.mark.parametrize("call, message", [
    (lambda l: l.set_status("act_missing", "done", "me"), "no action 'act_missing'"),
    (lambda l: l.set_status(action(1)["id"], "closed", "me"), "status must be one of open, done, dismissed"),
    (lambda l: l.set_status(action(1)["id"], "done", " "), "say who changed the status"),
    (lambda l: l.history("act_missing"), "no action 'act_missing'"),
])
def test_bad_status_changes_are_errors_and_change_nothing(ledger_url, call, message):
    with open_ledger(ledger_url) as ledger:
        ledger.record_run(RUN, [action(1)])
        with pytest.raises(LedgerError, match=message):
            call(ledger)
        assert len(ledger.history(action(1)["id"])) == 1
        assert ledger.get_action("act_missing") is None


def test_cursor_paging_returns_every_action_once_oldest_first(ledger_url):
    with open_ledger(ledger_url) as ledger:
        ids = []
        for day, batch in enumerate([range(0, 7), range(7, 19), range(19, 25)]):
            acts = [action(n, school="S1" if n % 3 else "S2", as_of=f"2025-10-0{day + 6}") for n in batch]
            ledger.record_run(RUN, acts)
            ids += [a["id"] for a in acts]
        seen, cursor, pages = [], 0, 0
        while True:
            page, cursor_next = ledger.actions_since(cursor, limit=10)
            if not page:
                assert cursor_next == cursor
                break
            pages += 1
            seen += [a["id"] for a in page]
            assert [a["ledger"]["seq"] for a in page] == sorted(a["ledger"]["seq"] for a in page)
            assert cursor_next == page[-1]["ledger"]["seq"] > cursor
            cursor = cursor_next
        assert seen == ids and pages == 3
        s2, last = ledger.actions_since(0, {"S2"}, limit=100)
        assert [a["subject"]["school_id"] for a in s2] == ["S2"] * 9 and last == s2[-1]["ledger"]["seq"]
        ledger.set_status(ids[0], "done", "me")
        page, _ = ledger.actions_since(0, limit=1)
        assert page[0]["status"] == "done"
        # A later run's actions come after the cursor: nothing is missed between polls.
        ledger.record_run(RUN, [action(99)])
        page, _ = ledger.actions_since(cursor)
        assert [a["id"] for a in page] == [action(99)["id"]]


def test_the_outbox_holds_new_actions_until_delivered(ledger_url):
    sink = "http://127.0.0.1:9/hook"
    with open_ledger(ledger_url) as ledger:
        ledger.record_run(RUN, [action(1), action(2)], deliver_to=[sink])
        ledger.record_run(RUN, [action(1), action(2), action(3)], deliver_to=[sink])
        assert [a["id"] for a in ledger.pending_deliveries(sink)] == [action(n)["id"] for n in (1, 2, 3)]
        ledger.record_delivery_failure(sink, action(1)["id"], "HTTP 503")
        ledger.mark_delivered(sink, action(2)["id"])
        pending = ledger.pending_deliveries(sink)
        assert [(a["id"], a["ledger"]["attempts"]) for a in pending] == [(action(1)["id"], 1), (action(3)["id"], 0)]
        assert ledger.delivery_counts() == {sink: {"pending": 2, "delivered": 1}}


def test_concurrent_record_run_of_the_same_actions_does_not_duplicate(ledger_url):
    """Two connections record overlapping batches at the same moment: every action once, and the
    new lists of the two calls partition the union."""
    open_ledger(ledger_url).close()
    batches = [[action(n) for n in range(0, 300)], [action(n) for n in range(150, 450)]]
    barrier = threading.Barrier(len(batches))
    results: list = [None] * len(batches)
    errors = []

    def record(i):
        try:
            with open_ledger(ledger_url) as ledger:
                barrier.wait()
                results[i] = [a["id"] for a in ledger.record_run(RUN, batches[i])]
        except Exception as exc:  # reported below, with the store
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    union = {a["id"] for b in batches for a in b}
    assert sorted(results[0] + results[1]) == sorted(union)
    with open_ledger(ledger_url) as ledger:
        stored = ledger.list_actions()
        assert len(stored) == len(union) == len({a["id"] for a in stored})
        assert [a["ledger"]["seq"] for a in stored] == list(range(1, len(union) + 1))


@pytest.mark.parametrize("url, message", [
    ("ledger.db", "has no scheme"),
    ("mysql://x@host/db", "unknown ledger URL scheme 'mysql'"),
    ("sqlite://ledger.db", "three slashes"),
    ("sqlite:///", "names no file"),
    ("sqlite:////no/such/folder/ledger.db", "the folder /no/such/folder does not exist"),
    ("postgresql://rollbook:secret@127.0.0.1:1/db", "cannot connect to the PostgreSQL ledger at "
                                                    r"postgresql://rollbook:\*\*\*@127.0.0.1:1/db"),
])
def test_bad_urls_are_plain_errors(url, message):
    with pytest.raises(LedgerError, match=message):
        open_ledger(url)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=15), max_size=6))
def test_any_sequence_of_runs_records_each_action_exactly_once(batches):
    with open_ledger("sqlite:///:memory:") as ledger:
        seen: list[int] = []
        for batch in batches:
            new = [a["id"] for a in ledger.record_run(RUN, [action(n) for n in batch])]
            expected = []
            for n in batch:
                if n not in seen and n not in expected:
                    expected.append(n)
            assert new == [action(n)["id"] for n in expected]
            seen += expected
        assert [a["id"] for a in ledger.list_actions()] == [action(n)["id"] for n in seen]
        assert len(ledger.runs(100)) == len(batches)
