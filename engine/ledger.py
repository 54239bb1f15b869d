"""The action ledger: every action ever emitted, once, with its follow-up and the decision log.

A ledger is a database chosen by URL: ``sqlite:///path/to/ledger.db`` (the embedded default, a
file; four slashes for an absolute path) or ``postgresql://user@host:port/db`` (production).
Both hold the same schema, created and upgraded by the numbered SQL files in
engine/migrations/, applied in order and recorded in `schema_version`.

Exactly once: action ids are deterministic (engine/act.py), and `record_run` inserts, in ONE
transaction under the ledger's write lock, the actions whose id is not yet present, the
decision-log entry and the outbox rows of the sinks still to be told. A run killed at any point
either committed all of that or none of it; the next run re-evaluates, finds the committed ids
and records exactly the rest. The write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: a
transaction-scoped advisory lock) also makes sequence numbers follow commit order, so a reader
paging with `actions_since` never skips an action that commits late.

A Ledger object serialises its own calls (one connection, one lock): it may be shared between
threads; open one per worker for parallel readers.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .act import PriorAction

STATUSES = ("open", "done", "dismissed")
MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant: the key of PostgreSQL's advisory lock that serialises ledger writers.
_PG_LOCK_KEY = 0x526F6C6C626F6F6B  # "Rollbook"
_CHUNK = 500  # ids per IN (...) list


class LedgerError(Exception):
    """A problem the user can fix: a bad URL, an unreachable server, an unknown action id."""


def checkpoint(name: str) -> None:
    """A named point in a run where the crash tests stop it: with ROLLBOOK_PAUSE_AT=name the
    process says so on stderr and sleeps, so a test can kill -9 it exactly there."""
    if os.environ.get("ROLLBOOK_PAUSE_AT") == name:
        print(f"rollbook: paused at {name}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("ROLLBOOK_PAUSE_SECONDS", "60")))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def redact(url: str) -> str:
    """The URL without its password, for messages and the decision log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in version order."""
    found = []
    for f in sorted(MIGRATIONS.glob("*.sql")):
        m = re.match(r"^(\d+)_(.+)\.sql$", f.name)
        if m:
            found.append((int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number in {MIGRATIONS}")
    return sorted(found)


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (our migrations have no `;` inside literals)."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def open_ledger(url: str) -> "Ledger":
    """Open (creating if need be) the ledger at `url` and bring its schema up to date.
    Raises LedgerError with a plain message for a bad URL or an unreachable server."""
    if not isinstance(url, str) or "://" not in url:
        raise LedgerError(f"the ledger URL {url!r} has no scheme: use sqlite:///path/to/ledger.db "
                          "or postgresql://user@host:port/database")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return _SQLiteLedger(url)
    if scheme in ("postgresql", "postgres"):
        return _PostgresLedger(url)
    raise LedgerError(f"unknown ledger URL scheme {scheme!r} in {redact(url)}: use sqlite:///path/to/ledger.db "
                      "or postgresql://user@host:port/database")


class Ledger:
    """The store of emitted actions, their status history, the decision log and the outbox."""

    placeholder = "?"
    url: str

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # ---- connection plumbing (one store per subclass) ------------------------------------------
    def _execute(self, sql: str, params=()):  # -> cursor
        raise NotImplementedError

    @contextmanager
    def _write(self):
        """A transaction holding the ledger's write lock (one writer at a time, all processes)."""
        raise NotImplementedError

    @contextmanager
    def _read(self):
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _rows(self, sql: str, params=()) -> list[tuple]:
        return self._execute(self._q(sql), params).fetchall()

    # ---- migrations ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply the migrations not yet recorded in schema_version, in order, in one transaction
        under the write lock: a second process starting at the same moment waits, then finds
        them applied."""
        with self._write():
            self._execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                          "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            applied = {v for (v,) in self._rows("SELECT version FROM schema_version")}
            known = migrations()
            newest = max((v for v, _, _ in known), default=0)
            if applied and max(applied) > newest:
                raise LedgerError(f"the ledger at {redact(self.url)} has schema version {max(applied)}, newer than this "
                                  f"Rollbook knows ({newest}); upgrade Rollbook")
            for version, name, sql in known:
                if version in applied:
                    continue
                for statement in _statements(sql):
                    self._execute(statement)
                self._execute(self._q("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)"),
                              (version, name, _now()))

    def schema_version(self) -> list[tuple[int, str]]:
        """(version, name) of every applied migration, oldest first."""
        with self._lock, self._read():
            return [(v, n) for v, n in self._rows("SELECT version, name FROM schema_version ORDER BY version")]

    # ---- recording a run ------------------------------------------------------------------------
    def record_run(self, run: dict, actions: list[dict], deliver_to: list[str] | tuple[str, ...] = ()) -> list[dict]:
        """In ONE transaction: insert the actions whose id is not yet in the ledger, append the
        decision-log entry `run` (with the counts of evaluated and new actions added), and queue
        each new action for every sink in `deliver_to` (the outbox). Returns the new actions, in
        input order. Actions repeated within `actions` count once."""
        unique: dict[str, dict] = {}
        for a in actions:
            unique.setdefault(a["id"], a)
        with self._lock, self._write():
            present = self._present(list(unique))
            new = [a for a in unique.values() if a["id"] not in present]
            now = _now()
            (last_run,), = self._rows("SELECT COALESCE(MAX(id), 0) FROM runs")
            (last_seq,), = self._rows("SELECT COALESCE(MAX(seq), 0) FROM actions")
            run_id = last_run + 1
            per_rule_new: dict[str, int] = {}
            for a in new:
                key = f"{a['policy']}/{a['rule']}"
                per_rule_new[key] = per_rule_new.get(key, 0) + 1
            detail = dict(run)
            detail["new_per_rule"] = per_rule_new
            self._execute(self._q("INSERT INTO runs (id, recorded_at, as_of, rollbook_version, evaluated_actions, "
                                  "new_actions, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"),
                          (run_id, now, run.get("as_of"), run.get("rollbook_version"), len(actions), len(new),
                           json.dumps(detail, sort_keys=True, ensure_ascii=False)))
            by = str(run.get("recorded_by") or "rollbook run")
            action_rows, history_rows, outbox_rows = [], [], []
            for i, a in enumerate(new, start=1):
                subject = a["subject"]
                seq = last_seq + i
                action_rows.append((a["id"], seq, run_id, a["policy"], a["rule"], a["verb"], subject["kind"],
                                    subject.get("id") or "", subject.get("school_id") or "", a["as_of"],
                                    int(bool(a.get("alternative", False))), "open", now, by, now,
                                    json.dumps(a, ensure_ascii=False)))
                history_rows.append((a["id"], 1, "open", by, now, f"recorded by run {run_id}"))
                for sink in deliver_to:
                    outbox_rows.append((sink, a["id"], seq, "pending", 0))
            self._executemany("INSERT INTO actions (id, seq, run_id, policy, rule, verb, subject_kind, subject_id, "
                              "school_id, as_of, alternative, status, status_changed_at, status_changed_by, "
                              "recorded_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", action_rows)
            self._executemany("INSERT INTO action_history (action_id, n, status, changed_by, changed_at, note) "
                              "VALUES (?, ?, ?, ?, ?, ?)", history_rows)
            self._executemany("INSERT INTO deliveries (sink, action_id, seq, state, attempts) VALUES (?, ?, ?, ?, ?)",
                              outbox_rows)
            checkpoint("record_run:before_commit")
        self.last_run_id = run_id
        return new

    def _present(self, ids: list[str]) -> set[str]:
        present: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            present.update(i for (i,) in self._rows(f"SELECT id FROM actions WHERE id IN ({marks})", chunk))
        return present

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        raise NotImplementedError

    # ---- reading --------------------------------------------------------------------------------
    def prior_actions(self, school_ids: set[str] | None = None) -> list[PriorAction]:
        """Every recorded action (of these schools), as the evaluation's repetition, escalation
        and limit controls read them. Dismissed actions are included with their status: the act
        stage ignores them."""
        sql = "SELECT rule, verb, subject_kind, subject_id, school_id, as_of, alternative, status FROM actions"
        with self._lock, self._read():
            rows = self._filtered(sql, school_ids, "ORDER BY seq")
        return [PriorAction(rule, verb, kind, subject_id, school_id, date.fromisoformat(as_of), bool(alternative), status)
                for rule, verb, kind, subject_id, school_id, as_of, alternative, status in rows]

    def _filtered(self, sql: str, school_ids, tail: str, params=()) -> list[tuple]:
        where = " WHERE " if " WHERE " not in sql else " AND "
        if school_ids is None:
            return self._rows(f"{sql} {tail}", params)
        ids = sorted(school_ids)
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self._rows(f"{sql}{where}school_id IN ({marks}) {tail}", (*params, *ids))

    _ACTION_COLUMNS = "record, status, seq, run_id, recorded_at, status_changed_at, status_changed_by"

    @staticmethod
    def _action(row) -> dict:
        record, status, seq, run_id, recorded_at, changed_at, changed_by = row
        action = json.loads(record)
        action["status"] = status
        action["ledger"] = {"seq": seq, "run": run_id, "recorded_at": recorded_at,
                            "status_changed_at": changed_at, "status_changed_by": changed_by}
        return action

    def actions_since(self, cursor: int, school_ids: set[str] | None = None, limit: int = 1000) -> tuple[list[dict], int]:
        """Actions with a sequence number above `cursor`, oldest first, at most `limit`, each with
        its current status (and `ledger.seq`). Returns (actions, next_cursor): pass next_cursor
        back to get the following page; it stays `cursor` when there is nothing new."""
        limit = max(1, int(limit))
        with self._lock, self._read():
            rows = self._filtered(f"SELECT {self._ACTION_COLUMNS} FROM actions WHERE seq > ?", school_ids,
                                  f"ORDER BY seq LIMIT {limit}", (int(cursor),))
        actions = [self._action(r) for r in rows]
        return actions, (actions[-1]["ledger"]["seq"] if actions else int(cursor))

    def list_actions(self, status: str | None = None, school_ids: set[str] | None = None, rule: str | None = None,
                     policy: str | None = None, limit: int | None = None) -> list[dict]:
        """Actions filtered by status, school, rule and policy, oldest first."""
        if status is not None and status not in STATUSES:
            raise LedgerError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        conditions, params = [], []
        for column, value in (("status", status), ("rule", rule), ("policy", policy)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {self._ACTION_COLUMNS} FROM actions WHERE " + (" AND ".join(conditions) or "1 = 1")
        tail = "ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else "")
        with self._lock, self._read():
            rows = self._filtered(sql, school_ids, tail, tuple(params))
        return [self._action(r) for r in rows]

    def get_action(self, action_id: str) -> dict | None:
        """The action record with its current status, `ledger` metadata and status `history`."""
        with self._lock, self._read():
            rows = self._rows(f"SELECT {self._ACTION_COLUMNS} FROM actions WHERE id = ?", (action_id,))
            if not rows:
                return None
            action = self._action(rows[0])
            action["history"] = self._history(action_id)
        return action

    def history(self, action_id: str) -> list[dict]:
        """Every status the action has had, oldest first. LedgerError for an unknown id."""
        with self._lock, self._read():
            if not self._rows("SELECT 1 FROM actions WHERE id = ?", (action_id,)):
                raise LedgerError(f"no action {action_id!r} in the ledger")
            return self._history(action_id)

    def _history(self, action_id: str) -> list[dict]:
        return [{"status": s, "changed_by": by, "changed_at": at, "note": note} for s, by, at, note in
                self._rows("SELECT status, changed_by, changed_at, note FROM action_history WHERE action_id = ? "
                           "ORDER BY n", (action_id,))]

    def set_status(self, action_id: str, status: str, changed_by: str, note: str | None = None) -> dict:
        """Change an action's status, appending the change (who, when, note) to its history.
        Returns the action as get_action does. LedgerError for an unknown id or a bad status."""
        if status not in STATUSES:
            raise LedgerError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        if not changed_by or not str(changed_by).strip():
            raise LedgerError("say who changed the status (changed_by must not be empty)")
        with self._lock:
            with self._write():
                if not self._rows("SELECT 1 FROM actions WHERE id = ?", (action_id,)):
                    raise LedgerError(f"no action {action_id!r} in the ledger")
                (n,), = self._rows("SELECT COALESCE(MAX(n), 0) FROM action_history WHERE action_id = ?", (action_id,))
                now = _now()
                self._execute(self._q("INSERT INTO action_history (action_id, n, status, changed_by, changed_at, note) "
                                      "VALUES (?, ?, ?, ?, ?, ?)"), (action_id, n + 1, status, changed_by, now, note))
                self._execute(self._q("UPDATE actions SET status = ?, status_changed_at = ?, status_changed_by = ? "
                                      "WHERE id = ?"), (status, now, changed_by, action_id))
            return self.get_action(action_id)

    def runs(self, limit: int = 20) -> list[dict]:
        """The decision log, newest first: each run's entry as recorded, with its id, the time
        it was recorded and the counts of evaluated and new actions."""
        with self._lock, self._read():
            rows = self._rows(f"SELECT id, recorded_at, evaluated_actions, new_actions, detail FROM runs "
                              f"ORDER BY id DESC LIMIT {max(1, int(limit))}")
        out = []
        for run_id, recorded_at, evaluated, new, detail in rows:
            entry = {"id": run_id, "recorded_at": recorded_at, "evaluated_actions": evaluated, "new_actions": new}
            entry.update(json.loads(detail))
            out.append(entry)
        return out

    # ---- the outbox -------------------------------------------------------------------------------
    def pending_deliveries(self, sink: str, limit: int | None = None) -> list[dict]:
        """Actions queued for `sink` and not yet delivered, oldest first (with `ledger.attempts`)."""
        sql = (f"SELECT {', '.join('a.' + c.strip() for c in self._ACTION_COLUMNS.split(','))}, d.attempts "
               "FROM deliveries d JOIN actions a ON a.id = d.action_id WHERE d.sink = ? AND d.state = 'pending' "
               "ORDER BY d.seq" + (f" LIMIT {int(limit)}" if limit else ""))
        with self._lock, self._read():
            rows = self._rows(sql, (sink,))
        out = []
        for row in rows:
            action = self._action(row[:-1])
            action["ledger"]["attempts"] = row[-1]
            out.append(action)
        return out

    def mark_delivered(self, sink: str, action_id: str) -> None:
        """The sink acknowledged the action: it leaves the outbox."""
        with self._lock, self._write():
            self._execute(self._q("UPDATE deliveries SET state = 'delivered', delivered_at = ?, attempts = attempts + 1, "
                                  "last_attempt_at = ? WHERE sink = ? AND action_id = ?"), (_now(), _now(), sink, action_id))

    def record_delivery_failure(self, sink: str, action_id: str, error: str) -> None:
        """An attempt failed: the action stays in the outbox for the next run."""
        with self._lock, self._write():
            self._execute(self._q("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? "
                                  "WHERE sink = ? AND action_id = ?"), (error[:1000], _now(), sink, action_id))

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """{sink: {state: count}} over the whole outbox."""
        with self._lock, self._read():
            rows = self._rows("SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state")
        out: dict[str, dict[str, int]] = {}
        for sink, state, n in rows:
            out.setdefault(sink, {})[state] = n
        return out

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- SQLite ---------------------------------------------------------------------------------------

class _SQLiteLedger(Ledger):
    def __init__(self, url: str):
        super().__init__()
        self.url = url
        path = url.split("://", 1)[1]
        if not path.startswith("/"):
            raise LedgerError(f"a SQLite ledger URL is sqlite:///path/to/ledger.db (three slashes, then the path; "
                              f"four for an absolute path), not {url!r}")
        path = path[1:]
        if not path:
            raise LedgerError(f"the SQLite ledger URL {url!r} names no file: use sqlite:///path/to/ledger.db")
        self.path = path
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.is_dir():
                raise LedgerError(f"cannot open the ledger {path}: the folder {parent} does not exist")
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE takes the write lock).
            self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
            self.connection.execute("PRAGMA busy_timeout = 60000")
            if path != ":memory:":
                self.connection.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed run survives a power cut too, not only a killed process.
            self.connection.execute("PRAGMA synchronous = FULL")
            self.connection.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open the SQLite ledger {path}: {exc}") from None

    def _execute(self, sql, params=()):
        return self.connection.execute(sql, params)

    def _executemany(self, sql, rows):
        if rows:
            self.connection.executemany(sql, rows)

    @contextmanager
    def _write(self):
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    @contextmanager
    def _read(self):
        # One snapshot for the statements of a read (WAL readers never block the writer).
        self.connection.execute("BEGIN")
        try:
            yield
        finally:
            self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


# ---- PostgreSQL -----------------------------------------------------------------------------------

class _PostgresLedger(Ledger):
    placeholder = "%s"

    def __init__(self, url: str):
        super().__init__()
        import psycopg

        self.url = url
        self._psycopg = psycopg
        try:
            self.connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            message = " ".join(str(exc).split())
            raise LedgerError(f"cannot connect to the PostgreSQL ledger at {redact(url)}: {message}") from None
        try:
            self._migrate()
        except psycopg.Error as exc:
            raise LedgerError(f"cannot prepare the PostgreSQL ledger at {redact(url)}: {' '.join(str(exc).split())}") from None

    def _execute(self, sql, params=()):
        return self.connection.execute(sql, params or None)

    def _executemany(self, sql, rows):
        if rows:
            with self.connection.cursor() as cur:
                cur.executemany(self._q(sql), rows)

    @contextmanager
    def _write(self):
        with self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            yield

    @contextmanager
    def _read(self):
        with self.connection.transaction():
            self.connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def close(self) -> None:
        self.connection.close()
