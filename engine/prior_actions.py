"""Prior actions: the ledger an evaluation reads for repetition, escalation and limits.

Input is JSON Lines of action records (what `rollbook eval --format jsonl` writes, optionally
with a `status` of open / done / dismissed). Every line is validated; a bad line is reported
with its line number and nothing is evaluated.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from .act import PriorAction
from .diagnostics import Diagnostic, Span, error

REQUIRED = ("rule", "verb", "subject", "as_of")
STATUSES = ("open", "done", "dismissed")


def read_prior_actions(path: Path | str) -> tuple[list[PriorAction], list[Diagnostic]]:
    """Read a JSONL file of prior actions. Returns (actions, problems)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        return [], [error("prior.unreadable", f"cannot read {shown}: {exc.strerror}", Span(shown, 1, 1))]
    actions, problems = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(error("prior.json", f"not valid JSON: {exc.msg}", Span(shown, n, exc.colno)))
            continue
        if not isinstance(record, dict):
            problems.append(error("prior.record", "each line must be one action record (a JSON object)", Span(shown, n, 1)))
            continue
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            problems.append(error("prior.record", f"the action record lacks {', '.join(missing)}", Span(shown, n, 1)))
            continue
        subject = record["subject"]
        if not isinstance(subject, dict) or not isinstance(subject.get("kind"), str) or not isinstance(subject.get("id"), str):
            problems.append(error("prior.record", "`subject` must be an object with `kind` and `id`", Span(shown, n, 1)))
            continue
        try:
            as_of = date.fromisoformat(record["as_of"])
        except (TypeError, ValueError):
            problems.append(error("prior.record", f"`as_of` is not a date: {record['as_of']!r}", Span(shown, n, 1)))
            continue
        status = record.get("status", "open")
        if status not in STATUSES:
            problems.append(error("prior.record", f"`status` must be one of {', '.join(STATUSES)}, not {status!r}",
                                  Span(shown, n, 1)))
            continue
        actions.append(PriorAction(str(record["rule"]), str(record["verb"]), subject["kind"], subject["id"],
                                   str(subject.get("school_id", "")), as_of, bool(record.get("alternative", False)), status))
    return actions, problems


def load_ledger_table(connection, actions: list[PriorAction], table: str = "ledger") -> None:
    """The prior actions as a DuckDB table, for the metrics stage's set-based ledger measures."""
    connection.execute(f"CREATE OR REPLACE TEMP TABLE {table} (rule VARCHAR, verb VARCHAR, subject_kind VARCHAR, "
                       "subject_id VARCHAR, school_id VARCHAR, as_of DATE, alternative BOOLEAN, status VARCHAR)")
    append_ledger_rows(connection, actions, table)


def append_ledger_rows(connection, actions: list[PriorAction], table: str = "ledger") -> None:
    """Append prior actions to a ledger table made by load_ledger_table (the backtest appends
    each replayed day's actions to its simulated ledger this way)."""
    if not actions:
        return
    import pyarrow as pa

    # Through Arrow: executemany inserts row by row (~0.3 ms a row), too slow for a trust's ledger.
    rows = pa.table({
        "rule": [a.rule for a in actions], "verb": [a.verb for a in actions],
        "subject_kind": [a.subject_kind for a in actions], "subject_id": [a.subject_id for a in actions],
        "school_id": [a.school_id for a in actions], "as_of": pa.array([a.as_of for a in actions], pa.date32()),
        "alternative": [a.alternative for a in actions], "status": [a.status for a in actions]})
    connection.register("rb_ledger_rows", rows)
    try:
        connection.execute(f"INSERT INTO {table} SELECT * FROM rb_ledger_rows")
    finally:
        connection.unregister("rb_ledger_rows")
