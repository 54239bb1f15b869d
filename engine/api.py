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
from .validate import validate_document

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
