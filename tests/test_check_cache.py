"""engine/check_cache.py: a kept checked policy is used only while every file its check read is
unchanged and the engine is the one that kept it; otherwise the policy is checked again."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from engine import check_cache
from engine.api import RollbookError, checked_policy, evaluate

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "examples" / "sample-register"

BASE = """\
rollbook: 1
id: base
title: Base
version: "1"
effective_from: 2025-09-01
rules:
  - id: unauthorised
    title: Unauthorised absence
    source: "a test policy"
    when: {threshold} or more unauthorised sessions this academic year
    then:
      - flag: {{flag: unauthorised}}
"""

CHILD = """\
rollbook: 1
id: child
title: Child
version: "1"
effective_from: 2025-09-01
extends: base.yaml
rules: []
"""


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("ROLLBOOK_NO_CACHE", raising=False)
    return home / "rollbook" / "policies"


@pytest.fixture
def policies(tmp_path, monkeypatch):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "base.yaml").write_text(BASE.format(threshold=10), encoding="utf-8")
    (folder / "child.yaml").write_text(CHILD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return folder


def _threshold(policy) -> str:
    return policy.rules[0].condition_text


def test_a_kept_policy_is_used_and_evaluates_the_same(cache_home, policies):
    first = checked_policy("policies/child.yaml")
    assert len(list(cache_home.glob("*.pickle"))) == 1
    kept = check_cache.cached_policy("policies/child.yaml")
    assert kept is not None and kept == first
    assert pickle.dumps(checked_policy("policies/child.yaml")) == pickle.dumps(first)
    fresh = evaluate(first, SAMPLE, "2026-03-13")
    assert fresh and evaluate("policies/child.yaml", SAMPLE, "2026-03-13") == fresh


@pytest.mark.parametrize("changed", ["base.yaml", "child.yaml"])
def test_editing_the_policy_or_a_base_it_extends_checks_it_again(cache_home, policies, changed):
    assert _threshold(checked_policy("policies/child.yaml")) == "unauthorised sessions this academic year >= 10"
    if changed == "base.yaml":
        (policies / "base.yaml").write_text(BASE.format(threshold=12), encoding="utf-8")
        assert _threshold(checked_policy("policies/child.yaml")) == "unauthorised sessions this academic year >= 12"
    else:
        (policies / "child.yaml").write_text(CHILD.replace("title: Child", "title: Renamed"), encoding="utf-8")
        assert checked_policy("policies/child.yaml").title == "Renamed"


def test_a_policy_that_now_has_errors_is_not_taken_from_the_cache(cache_home, policies):
    checked_policy("policies/child.yaml")
    (policies / "base.yaml").write_text(BASE.format(threshold="ten"), encoding="utf-8")
    with pytest.raises(RollbookError, match="has errors"):
        checked_policy("policies/child.yaml")


def test_a_removed_base_is_not_taken_from_the_cache(cache_home, policies):
    checked_policy("policies/child.yaml")
    (policies / "base.yaml").unlink()
    with pytest.raises(RollbookError):
        checked_policy("policies/child.yaml")


def test_another_engine_or_working_folder_does_not_use_the_entry(cache_home, policies, monkeypatch, tmp_path):
    checked_policy("policies/child.yaml")
    monkeypatch.setattr(check_cache, "engine_fingerprint", lambda: "another engine")
    assert check_cache.cached_policy("policies/child.yaml") is None
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home.parent.parent))
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "policies").mkdir(parents=True)
    for name in ("base.yaml", "child.yaml"):
        (elsewhere / "policies" / name).write_text((policies / name).read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    # The same relative path from another folder names other files: defined_in shows the path.
    assert check_cache.cached_policy("policies/child.yaml") is None


def test_the_fingerprint_follows_the_engine_files(tmp_path, monkeypatch):
    part = tmp_path / "engine"
    part.mkdir()
    (part / "module.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.setattr(check_cache, "_ENGINE_PARTS", (part,))
    before = check_cache.engine_fingerprint()
    assert check_cache.engine_fingerprint() == before
    (part / "module.py").write_text("x = 22\n", encoding="utf-8")
    assert check_cache.engine_fingerprint() != before


def test_an_unreadable_entry_means_a_fresh_check(cache_home, policies):
    first = checked_policy("policies/child.yaml")
    (entry,) = cache_home.glob("*.pickle")
    entry.write_bytes(b"not a pickle")
    assert check_cache.cached_policy("policies/child.yaml") is None
    assert checked_policy("policies/child.yaml") == first


def test_turned_off_nothing_is_kept(cache_home, policies, monkeypatch):
    monkeypatch.setenv("ROLLBOOK_NO_CACHE", "1")
    checked_policy("policies/child.yaml")
    assert not cache_home.exists() or not list(cache_home.glob("*"))


def test_a_command_line_eval_on_a_kept_policy_loads_neither_lark_nor_jsonschema(cache_home, policies):
    """What the cache is for: the one-school command skips the check and its imports."""
    script = ("import sys, engine.cli\n"
              "sys.argv = ['rollbook', 'eval', '--policy', 'policies/child.yaml', '--register', sys.argv[1],"
              " '--as-of', '2026-03-13', '--out', 'out.jsonl']\n"
              "try:\n    engine.cli.main()\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in ('lark', 'jsonschema') if m in sys.modules))\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home.parent.parent)}
    runs = [subprocess.run([sys.executable, "-c", script, str(SAMPLE)], capture_output=True, text=True, env=env,
                           check=True) for _ in range(2)]
    assert runs[0].stdout.strip() == "['jsonschema', 'lark']"  # the first run checks the policy
    assert runs[1].stdout.strip() == "[]"
