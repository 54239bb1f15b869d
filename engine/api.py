"""The public Python API: each function runs the pipeline stages in order and returns values.

    load -> validate -> merge -> parse + check   (check_policy_file)

No function here raises for a problem in the user's input: problems come back as diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .check import CheckedPolicy, check_policy
from .diagnostics import Diagnostic, Sources, has_errors
from .load import load_policy, merge_policy

POLICY_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")


@dataclass
class PolicyCheck:
    """The outcome of checking one policy file."""

    path: str
    policy: CheckedPolicy | None
    diagnostics: list[Diagnostic]
    sources: Sources = field(default_factory=Sources)

    @property
    def ok(self) -> bool:
        return self.policy is not None and not has_errors(self.diagnostics)


def check_policy_file(path: Path | str) -> PolicyCheck:
    """Load, validate, merge, parse and check one policy file (and the files it extends)."""
    loaded, diagnostics, texts = load_policy(path)
    sources = Sources(dict(texts))
    if loaded is None:
        return PolicyCheck(str(path), None, diagnostics, sources)
    from .validate import validate_document

    schema_problems = []
    for doc in loaded.chain:
        schema_problems.extend(validate_document(doc))
    if schema_problems:
        return PolicyCheck(str(path), None, diagnostics + schema_problems, sources)
    merged, merge_problems = merge_policy(loaded)
    policy, check_problems = check_policy(merged)
    all_problems = diagnostics + merge_problems + check_problems
    if has_errors(all_problems):
        policy = None
    return PolicyCheck(str(path), policy, all_problems, sources)


@dataclass
class PolicyCheckSummary:
    """What `rollbook check` reports about one file: small enough to pass between processes."""

    path: str
    ok: bool
    policy_id: str | None
    rules: int | None
    diagnostics: list[Diagnostic]
    sources: Sources


def _summarise(path: Path | str) -> PolicyCheckSummary:
    r = check_policy_file(path)
    return PolicyCheckSummary(r.path, r.ok, r.policy.id if r.policy else None,
                              len(r.policy.rules) if r.policy else None, r.diagnostics, r.sources)


# Below this many files one process is quicker than starting workers.
PARALLEL_CHECK_FROM = 64


def check_policy_files(paths: list[Path], jobs: int | None = None) -> list[PolicyCheckSummary]:
    """Check many policy files, in input order; on a machine with several cores, large batches
    are spread over worker processes (a trust's folder of hundreds of school policies)."""
    import os

    jobs = jobs or os.cpu_count() or 1
    if jobs < 2 or len(paths) < PARALLEL_CHECK_FROM:
        return [_summarise(p) for p in paths]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .parse import condition_parser

    condition_parser()  # built once here, inherited by the workers
    try:
        context = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform
        return [_summarise(p) for p in paths]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        return list(pool.map(_summarise, paths, chunksize=max(1, len(paths) // (jobs * 4))))


def policy_files(paths: list[Path | str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders into policy files (test files excluded). Returns (files, missing)."""
    files: list[Path] = []
    missing: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in POLICY_SUFFIXES
                                and not f.name.endswith(TEST_SUFFIXES) and f.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(str(p))
    return files, missing


# ---- evaluation -----------------------------------------------------------------------------

class RollbookError(Exception):
    """Raised by the Python API when an input is wrong; `problems` holds every message."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass
class Evaluation:
    """The outcome of evaluating one policy on one register for one as-of date."""

    actions: list[dict]
    policy: CheckedPolicy
    as_of: object
    rules_engine: str
    calendar_note: str | None
    subjects: dict[str, int]
    timings: dict[str, float]
    warnings: list[str]
    # The compiled plan, the facts tables and the register they live in (its DuckDB connection):
    # for callers that read per-subject facts, such as `rollbook test --coverage`.
    plan: object = None
    facts: object = None
    register: object = None


def prepare_register(register, policy: CheckedPolicy):
    """Load a register path (or take a loaded Register) and type the attributes the policy uses.
    Returns (register, warnings). Raises RollbookError listing every bad row."""
    from .attributes import type_attribute_columns
    from .register import Register, load_register

    if not isinstance(register, Register):
        loaded = load_register(register)
        if loaded.register is None:
            more = [f"... and {loaded.more_problems} more problem(s) not listed"] if loaded.more_problems else []
            raise RollbookError(f"the register at {register} has problems; nothing was evaluated", loaded.problems + more)
        register = loaded.register
    used = _attributes_used(policy)
    problems, warnings = type_attribute_columns(register.connection, register.pupils_table,
                                                {n: k for n, k in policy.attributes.items() if n in used})
    if problems:
        raise RollbookError("the register does not have the pupil attributes this policy needs", problems)
    return register, warnings


def _attributes_used(policy: CheckedPolicy) -> set[str]:
    from . import ast

    return {n.name for r in policy.rules for n in ast.walk(r.condition) if isinstance(n, ast.Attribute)}


def evaluate(policy, register, as_of, prior_actions=None, rules_engine: str = "builtin") -> list[dict]:
    """Evaluate a policy on a register for an as-of date and return the action records.

    `policy` is a path or a CheckedPolicy; `register` a folder path or a loaded Register;
    `as_of` a date or YYYY-MM-DD; `prior_actions` a JSONL path or a list of PriorAction.
    Raises RollbookError (with `.problems`) for any problem in the inputs.
    """
    return run_evaluation(policy, register, as_of, prior_actions, rules_engine).actions


def as_of_date(as_of):
    """An as-of date from a date or YYYY-MM-DD text. Raises RollbookError for anything else."""
    from datetime import date

    if isinstance(as_of, str):
        try:
            return date.fromisoformat(as_of)
        except ValueError:
            raise RollbookError(f"--as-of must be a date written YYYY-MM-DD, not {as_of!r}")
    return as_of


def checked_policy(policy) -> CheckedPolicy:
    """A CheckedPolicy from a path (checked here) or a CheckedPolicy. Raises RollbookError with
    the policy's errors."""
    if isinstance(policy, CheckedPolicy):
        return policy
    from .check_cache import cached_policy, keep_policy

    kept = cached_policy(str(policy))
    if kept is not None:
        return kept
    result = check_policy_file(policy)
    if not result.ok:
        raise RollbookError(f"the policy {policy} has errors; run `rollbook check {policy}`",
                            [d for d in result.diagnostics if d.severity == "error"])
    keep_policy(str(policy), result.sources.texts, result.policy)
    return result.policy


def prior_action_list(prior_actions) -> list:
    """Prior actions from a JSONL path or a list of PriorAction (None: none). Raises RollbookError."""
    from .prior_actions import read_prior_actions

    if isinstance(prior_actions, (str, Path)):
        prior_actions, problems = read_prior_actions(prior_actions)
        if problems:
            raise RollbookError("the prior actions file has problems", problems)
    return list(prior_actions or [])


def run_evaluation(policy, register, as_of, prior_actions=None, rules_engine: str = "builtin", progress=None) -> Evaluation:
    """`evaluate`, with the details the CLI reports (subjects, timings, calendar note)."""
    import time

    from .act import build_actions
    from .compile import compile_policy
    from .metrics import build_facts
    from .prior_actions import load_ledger_table
    from .rules import fire

    step = progress or (lambda message: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    as_of = as_of_date(as_of)
    if not isinstance(policy, CheckedPolicy):
        step("checking the policy")
    policy = checked_policy(policy)
    prior_actions = prior_action_list(prior_actions)
    step("loading the register")
    register, warnings = prepare_register(register, policy)
    timings["load"] = time.perf_counter() - started
    connection = register.connection
    plan = compile_policy(policy)
    ledger = None
    if prior_actions or any(m.kind in ("action_count", "since_action") for m in plan.metrics):
        load_ledger_table(connection, prior_actions)
        ledger = "ledger"
    step("computing metrics")
    t = time.perf_counter()
    facts = build_facts(plan, connection, as_of, ledger=ledger)
    timings["metrics"] = time.perf_counter() - t
    step("firing rules")
    t = time.perf_counter()
    firings = fire(plan, facts, connection, rules_engine)
    timings["rules"] = time.perf_counter() - t
    step("building actions")
    t = time.perf_counter()
    note = register.calendar_note if register.calendar_inferred else None
    actions = build_actions(plan, facts, firings, connection, as_of, prior_actions, calendar_note=note)
    timings["act"] = time.perf_counter() - t
    subjects = {scope: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for scope, table in facts.tables.items()}
    # Leavers are pupils with a recorded leave date: a register that records none shows no count.
    if subjects.get("leaver") == 0:
        del subjects["leaver"]
    timings["total"] = time.perf_counter() - started
    return Evaluation(actions, policy, as_of, rules_engine, note, subjects, timings, warnings, plan, facts, register)
