"""The policies `rollbook serve` evaluates: a folder, checked, held as an immutable snapshot.

A school policy (one with a `school` block) serves batches for the school whose id is the policy's
`id`; its `school.trust` says which trust keys reach it. A policy without a `school` block (the
national base) is only extended.

The folder is polled: when any file's modification time or size changes, every file is checked
again (a base policy's change reaches the schools that extend it) and a new snapshot replaces the
old one in a single assignment. A request keeps the snapshot it started with. A file that fails
`check` is refused: the version it replaces keeps serving, and the refusal (with its diagnostics)
is in the snapshot for the policies list and in the log.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .api import POLICY_SUFFIXES, TEST_SUFFIXES, check_policy_file
from .check import CheckedPolicy
from .run import school_id_of

log = logging.getLogger("rollbook.service")


@dataclass(frozen=True)
class Refusal:
    """A version of a file that failed `check` and is not served."""

    sha256: str
    at: str
    diagnostics: tuple[dict, ...]


@dataclass(frozen=True)
class PolicyEntry:
    """One policy file: the version serving (if any) and the last refused version (if newer)."""

    path: str  # relative to the policies folder
    policy: CheckedPolicy | None
    loaded_at: str | None
    refused: Refusal | None = None
    extends: tuple[str, ...] = ()  # the bases, relative to the policies folder

    @property
    def school_id(self) -> str | None:
        """The register school_id this policy serves: `school.id`, else the policy id."""
        return school_id_of(self.policy) if self.policy is not None else None

    @property
    def trust(self) -> str | None:
        school = self.policy.header.get("school") if self.policy else None
        return school.get("trust") if isinstance(school, dict) else None

    def describe(self) -> dict:
        """The entry as the policies list shows it."""
        p = self.policy
        out = {
            "path": self.path,
            "id": p.id if p else None,
            "kind": ("school" if self.school_id else "base") if p else None,
            "status": "serving" if p else "refused",
            "school": dict(p.header["school"]) if self.school_id else None,
            "version": p.version if p else None,
            "sha256": p.sha256 if p else None,
            "rules": len(p.rules) if p else None,
            "extends": list(self.extends),
            "loaded_at": self.loaded_at,
            "refused": None,
        }
        if self.refused is not None:
            out["refused"] = {"sha256": self.refused.sha256, "at": self.refused.at,
                              "diagnostics": list(self.refused.diagnostics)}
        return out


@dataclass(frozen=True)
class PolicySnapshot:
    """Every policy file of the folder as served at one moment. Never modified once built."""

    generation: int
    folder: str
    entries: tuple[PolicyEntry, ...]
    signature: tuple
    built_at: str
    by_school: Mapping[str, PolicyEntry] = field(default_factory=lambda: MappingProxyType({}))

    def school(self, school_id: str) -> PolicyEntry | None:
        return self.by_school.get(school_id)

    def trust_of(self, school_id: str) -> str | None:
        entry = self.by_school.get(school_id)
        return entry.trust if entry else None

    @property
    def serving(self) -> int:
        return sum(1 for e in self.entries if e.policy is not None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def policy_paths(folder: Path) -> list[Path]:
    """The policy files of the folder (policy tests excluded), in a stable order."""
    return sorted(f for f in folder.rglob("*") if f.suffix in POLICY_SUFFIXES
                  and not f.name.endswith(TEST_SUFFIXES) and f.is_file())


def folder_signature(folder: Path) -> tuple:
    """What changes when a policy file is added, removed or rewritten."""
    out = []
    for f in policy_paths(folder):
        try:
            st = f.stat()
        except OSError:  # removed between listing and stat: the next poll sees it gone
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def relative_diagnostics(diagnostics, folder: Path) -> tuple[dict, ...]:
    """Diagnostics as dicts, with file paths relative to the policies folder."""
    prefix = str(folder).rstrip("/") + "/"
    out = []
    for d in diagnostics:
        item = d.as_dict()
        if isinstance(item.get("file"), str) and item["file"].startswith(prefix):
            item["file"] = item["file"][len(prefix):]
        out.append(item)
    return tuple(out)


def build_snapshot(folder: Path, previous: PolicySnapshot | None = None) -> PolicySnapshot:
    """Check every policy file of the folder and return the snapshot to serve next.

    A file that fails keeps its previous serving version (if it had one) and carries the refusal.
    Two school policies with the same id: the first by path serves, the other is refused.
    """
    signature = folder_signature(folder)
    before = {e.path: e for e in previous.entries} if previous else {}
    now = _now()
    entries: list[PolicyEntry] = []
    by_school: dict[str, PolicyEntry] = {}
    for path_text, _, _ in signature:
        path = Path(path_text)
        rel = str(path.relative_to(folder))
        try:
            text_sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
        result = check_policy_file(path)
        old = before.get(rel)
        problems = None
        if result.ok:
            policy = result.policy
            school_id = school_id_of(policy)
            if school_id is not None and school_id in by_school:
                problems = ({"severity": "error", "code": "service.duplicate-school",
                             "message": f"the school policy id `{school_id}` is already served from "
                                        f"{by_school[school_id].path}", "file": rel, "line": 1, "column": 1},)
            else:
                unchanged = old is not None and old.policy is not None and old.policy.sha256 == policy.sha256
                entry = PolicyEntry(rel, policy, old.loaded_at if unchanged else now,
                                    extends=tuple(os.path.relpath(c, folder) for c in policy.chain[1:]))
                if not unchanged:
                    what = "reloaded" if old is not None and previous is not None else "loaded"
                    log.info("policy %s: %s %s version %s (sha256 %s)", what, rel, policy.id, policy.version,
                             policy.sha256[:12])
        else:
            problems = relative_diagnostics([d for d in result.diagnostics if d.severity == "error"], folder)
        if problems is not None:
            refusal = old.refused if old is not None and old.refused is not None and old.refused.sha256 == text_sha else None
            refusal = refusal or Refusal(text_sha, now, problems)
            keep = old.policy if old is not None else None
            entry = PolicyEntry(rel, keep, old.loaded_at if keep is not None else None, refusal,
                                old.extends if keep is not None else ())
            if old is None or old.refused is None or old.refused.sha256 != text_sha:
                first = problems[0]
                where = f"{first.get('file', rel)}:{first.get('line', '?')}:{first.get('column', '?')}"
                still = (f"still serving version {keep.version} (sha256 {keep.sha256[:12]})" if keep is not None
                         else "nothing served from this file")
                log.warning("policy %s: refused (sha256 %s): %d error(s), first %s %s: %s; %s", rel, text_sha[:12],
                            len(problems), where, first.get("code"), first.get("message"), still)
        school_id = entry.school_id
        if school_id is not None and school_id not in by_school:
            by_school[school_id] = entry
        entries.append(entry)
    for gone in set(before) - {e.path for e in entries}:
        log.info("policy %s: removed from the folder; no longer served", gone)
    generation = previous.generation + 1 if previous else 1
    return PolicySnapshot(generation, str(folder), tuple(entries), signature, now, MappingProxyType(by_school))


class PolicyStore:
    """Holds the current snapshot; `current` is read without a lock (one attribute read)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.current: PolicySnapshot = build_snapshot(self.folder)

    def changed(self) -> bool:
        return folder_signature(self.folder) != self.current.signature

    def reload(self) -> PolicySnapshot:
        """Check the folder again and swap in the new snapshot (called from one poller only)."""
        snapshot = build_snapshot(self.folder, self.current)
        self.current = snapshot
        return snapshot


def folder_exists(folder: Path | str) -> bool:
    return os.path.isdir(folder)
