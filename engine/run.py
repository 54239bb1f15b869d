"""Incremental runs: every school's policy on a register for one day, recorded in the ledger.

    policies folder ──check──▶ one policy per school (matched by `school.id` to the register's school_id)
    register ──load once──▶ one register per school
    per school: ledger.prior_actions(school) + policy + register ──evaluate──▶ actions
    all actions + a decision-log entry ──ledger.record_run (ONE transaction)──▶ the new actions

Evaluation is a pure function of (policy, register, prior actions, as-of date) and action ids are
deterministic, so re-running a day evaluates to the same ids and the ledger keeps only those it
has not seen: the run prints only what is new. Escalations and limits read the ledger's prior
actions (dated before the as-of date, dismissed ones ignored: engine/act.py).

Which policy is a school's: a policy file with a `school` block is a school policy; files without
one (bases such as national.yaml) are only extended. With a school_id in the register, each school
needs exactly one policy whose `school.id` is that id. A register without school_id is one school
whose rows take the school id of the folder's one school policy (its `school.id`, else its policy
id), as `rollbook serve` does for a batch, so the same data fed either way gives the same actions.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path

from . import __version__
from .api import RollbookError, check_policy_file, policy_files, run_evaluation
from .ledger import Ledger, checkpoint, redact


@dataclass
class SchoolPolicy:
    school_id: str
    path: str
    policy: object  # CheckedPolicy


@dataclass
class RunResult:
    """What `rollbook run` reports: the new actions, the decision-log entry, notes for stderr."""

    new_actions: list[dict]
    evaluated: int
    run: dict
    run_id: int
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def school_id_of(policy) -> str | None:
    """The school a policy is for: its `school.id`, or its policy id when the school block has
    none; None for a policy without a `school` block (a base such as national)."""
    school = policy.header.get("school")
    if not isinstance(school, dict):
        return None
    return str(school.get("id") or policy.id)


def school_policies(folder: Path | str, register_schools: tuple[str, ...]) -> tuple[list[SchoolPolicy], list[str]]:
    """Match the policies in `folder` to the register's schools. Returns (per school, notes);
    raises RollbookError when a policy has errors or a school has no policy (or two)."""
    files, missing = policy_files([folder])
    if missing:
        raise RollbookError(f"no such policy folder: {folder}")
    if not files:
        raise RollbookError(f"no policy files (*.yaml) in {folder}")
    results = [check_policy_file(f) for f in files]
    broken = [r for r in results if not r.ok]
    if broken:
        raise RollbookError(f"{len(broken)} polic{'y has' if len(broken) == 1 else 'ies have'} errors; nothing was "
                            f"evaluated (run `rollbook check {folder}`)",
                            [d for r in broken for d in r.diagnostics if d.severity == "error"])
    checked = {r.path: r.policy for r in results}
    schools = []  # (school id or None, path): a policy's own `school` block (a base's is not inherited)
    for r in results:
        school = r.policy.header.get("school")
        if isinstance(school, dict):
            schools.append((school.get("id"), r.path))
    notes = []
    if not schools:
        raise RollbookError(f"no school policy in {folder}: a school's policy has a `school:` block "
                            "(with `id:` its school_id in the register)")
    single = register_schools == ("",)
    if single:
        if len(schools) != 1:
            raise RollbookError(f"the register has no school_id column, so it is one school, but {folder} holds "
                                f"{len(schools)} school policies ({', '.join(Path(p).name for _, p in schools)}): "
                                "add school_id to the register and `school: {id: ...}` to each policy, or run a folder "
                                "holding only this school's policy")
        chosen = {school_id_of(checked[schools[0][1]]): schools[0][1]}
    else:
        without_id = [p for i, p in schools if not i]
        if without_id:
            raise RollbookError(f"the register names its schools (school_id), but {', '.join(without_id)} "
                                "has no `school.id`: add `id:` (the school's school_id in the register) to its `school:` block")
        by_id: dict[str, list[str]] = {}
        for school_id, path in schools:
            by_id.setdefault(str(school_id), []).append(path)
        twice = {i: ps for i, ps in by_id.items() if len(ps) > 1}
        if twice:
            raise RollbookError("more than one policy for a school: " + "; ".join(
                f"{i}: {', '.join(ps)}" for i, ps in sorted(twice.items())))
        unmatched = [s for s in register_schools if s not in by_id]
        if unmatched:
            raise RollbookError(f"no policy in {folder} for school{'s' if len(unmatched) > 1 else ''} "
                                f"{', '.join(map(repr, unmatched))} of the register: add `school: {{id: ...}}` to its "
                                "policy; nothing was evaluated")
        for i, ps in sorted(by_id.items()):
            if i not in register_schools:
                notes.append(f"policy {ps[0]} (school {i!r}) has no rows in the register: not evaluated")
        chosen = {s: by_id[s][0] for s in register_schools}
    out = []
    out = [SchoolPolicy(school_id, path, checked[path]) for school_id, path in sorted(chosen.items())]
    return out, notes


def register_digest(sources: dict[str, str]) -> dict:
    """SHA-256 of each register file and one digest over them all (name and hash, in name order)."""
    files = {}
    for name, path in sorted(sources.items()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        files[name] = {"path": str(path), "sha256": h.hexdigest()}
    overall = hashlib.sha256("".join(f"{n}:{v['sha256']}\n" for n, v in files.items()).encode()).hexdigest()
    return {"files": files, "sha256": overall}


def _one_school(register, school_id: str):
    """The register's rows of one school, as a register of its own (a fresh DuckDB connection)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    counts = {}
    for table in (register.marks_table, register.pupils_table, register.calendar_table):
        relation = register.connection.sql(f"SELECT * FROM {table} WHERE school_id = $1", params=[school_id])
        # DuckDB 2 renamed the relation's arrow() to to_arrow_table().
        rows = (getattr(relation, "to_arrow_table", None) or relation.arrow)()
        con.register("_rb_rows", rows)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _rb_rows")
        con.unregister("_rb_rows")
        counts[table] = rows.num_rows
    return replace(register, connection=con, schools=(school_id,), row_counts={**register.row_counts, **counts})


def run_policies(policies: Path | str, register_path: Path | str, as_of, ledger: Ledger, rules_engine: str = "builtin",
                 webhook: str | None = None, progress=None) -> RunResult:
    """Evaluate every school's policy on the register for `as_of`, record the actions the ledger
    has not seen (and queue them for `webhook`) in one transaction, and return them."""
    from .register import load_register

    step = progress or (lambda message: None)
    started = datetime.now(timezone.utc)
    if isinstance(as_of, str):
        try:
            as_of = date.fromisoformat(as_of)
        except ValueError:
            raise RollbookError(f"--as-of must be a date written YYYY-MM-DD, not {as_of!r}") from None
    step("loading the register")
    loaded = load_register(register_path)
    if loaded.register is None:
        more = [f"... and {loaded.more_problems} more problem(s) not listed"] if loaded.more_problems else []
        raise RollbookError(f"the register at {register_path} has problems; nothing was evaluated", loaded.problems + more)
    register = loaded.register
    step("checking the policies")
    per_school, notes = school_policies(policies, register.schools)
    if register.schools == ("",):
        register.label_school(per_school[0].school_id)
    warnings: list[str] = []
    actions: list[dict] = []
    counts: dict[str, int] = {}
    policies_log = []
    t = time.perf_counter()
    for sp in per_school:
        step(f"evaluating {sp.policy.id}" + (f" for school {sp.school_id}" if sp.school_id else ""))
        school_register = register if len(register.schools) == 1 else _one_school(register, sp.school_id)
        prior = ledger.prior_actions({sp.school_id})
        evaluation = run_evaluation(sp.policy, school_register, as_of, prior, rules_engine)
        warnings.extend(f"{sp.policy.id}: {w}" for w in evaluation.warnings)
        if evaluation.calendar_note:
            notes.append(f"{sp.policy.id}: {evaluation.calendar_note}")
        for a in evaluation.actions:
            key = f"{a['policy']}/{a['rule']}"
            counts[key] = counts.get(key, 0) + 1
        actions.extend(evaluation.actions)
        policies_log.append({"id": sp.policy.id, "version": sp.policy.version, "file": sp.path,
                             "sha256": sp.policy.sha256, "school_id": sp.school_id,
                             "prior_actions": len(prior), "actions": len(evaluation.actions)})
    run = {
        "command": "rollbook run",
        "started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "as_of": as_of.isoformat(),
        "rollbook_version": __version__,
        "rules_engine": rules_engine,
        "policies": policies_log,
        "register": {"path": str(register_path), **register_digest(register.sources)},
        "counts_per_rule": counts,
        "evaluation_seconds": round(time.perf_counter() - t, 3),
        "webhook": redact(webhook) if webhook else None,
    }
    checkpoint("run:before_record")
    step("recording in the ledger")
    new = ledger.record_run(run, actions, deliver_to=[webhook] if webhook else [])
    checkpoint("run:after_commit")
    return RunResult(new, len(actions), run, ledger.last_run_id, notes, warnings)
