"""Checked policies kept between runs, so a command given an unchanged policy skips reading,
validating, parsing and checking it, and importing jsonschema and Lark to do so: 0.15-0.2 s of a
one-school `rollbook eval` of about 1.2 s (docs/benchmarks.md).

An entry holds a CheckedPolicy with the text of every file its check read (the policy and the
bases it extends). It is used only when each of those files still has that text, read from the
same working folder with the same path (the paths are part of the policy: actions show them as
`defined_in`), and when the engine that wrote it is this one: its code, grammar, schemas and code
catalogue, compared by each file's size and modification time. Anything else, or an entry that
cannot be read, means the policy is checked again. Only policies without errors are kept.

Entries are pickles, so they live in the user's own cache folder (never a shared temporary
folder), as the grammar's parser tables do. `ROLLBOOK_NO_CACHE=1` turns the cache off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# What a check's outcome depends on besides the policy files: the engine package (code and the
# code catalogue) and the grammar and schemas beside it.
_ENGINE_PARTS = (_PACKAGE, _PACKAGE.parent / "grammar", _PACKAGE.parent / "schemas")
_FORMAT = 1  # bump when an entry's layout changes


def cache_folder() -> Path | None:
    """The folder entries live in (created if missing), or None when caching is off or the
    folder cannot be made private and writable."""
    if os.environ.get("ROLLBOOK_NO_CACHE", "") not in ("", "0"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rollbook" / "policies"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return base if os.access(base, os.W_OK) else None


def engine_fingerprint() -> str:
    """A digest of every file of the engine that a check reads or runs (path, size, mtime)."""
    digest = hashlib.sha256(f"{_FORMAT}\0{sys.version}".encode())
    for part in _ENGINE_PARTS:
        if not part.is_dir():
            continue
        for root, dirs, files in os.walk(part):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _entry_path(folder: Path, policy_path: str) -> Path:
    key = hashlib.sha256(f"{engine_fingerprint()}\0{os.getcwd()}\0{policy_path}".encode()).hexdigest()[:32]
    return folder / f"{key}.pickle"


def _current_text(path: str) -> str | None:
    """A file's text as the policy loader reads it (UTF-8, an optional BOM dropped)."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def cached_policy(policy_path: str):
    """The CheckedPolicy an earlier check of `policy_path` kept, if it still holds; else None."""
    folder = cache_folder()
    if folder is None:
        return None
    try:
        with open(_entry_path(folder, policy_path), "rb") as f:
            texts, policy = pickle.load(f)
    except Exception:  # missing, truncated, or written by an incompatible version: check again
        return None
    if not isinstance(texts, dict) or not texts:
        return None
    for path, text in texts.items():
        if _current_text(path) != text:
            return None
    return policy


def keep_policy(policy_path: str, texts: dict[str, str], policy) -> None:
    """Keep a policy that checked without errors, with the texts of the files its check read."""
    folder = cache_folder()
    if folder is None or not texts:
        return
    target = _entry_path(folder, policy_path)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        with open(partial, "wb") as f:
            pickle.dump((dict(texts), policy), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, target)  # readers see the whole entry or none
    except Exception:  # a full disk or an unpicklable value: the cache is only a shortcut
        try:
            partial.unlink()
        except OSError:
            pass
