"""`rollbook fmt`: one canonical layout, idempotent, every comment kept (and kept above its key)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fmt import PARAMETER_ORDER, RULE_ORDER, TOP_ORDER, format_policy_text
from engine.load import read_document

from .evaluation import SHIPPED_POLICIES

REPO = Path(__file__).resolve().parent.parent
POLICIES = SHIPPED_POLICIES


def comment_lines(text: str) -> list[str]:
    return sorted(line.strip() for line in text.splitlines() if line.strip().startswith("#"))


def data_of(path: Path):
    doc, problems = read_document(path)
    assert not problems
    return doc.data


def test_there_are_policies_to_format():
    assert any(p.name == "national.yaml" for p in POLICIES)


@pytest.mark.parametrize("policy", POLICIES, ids=[p.name for p in POLICIES])
def test_fmt_is_idempotent_and_keeps_comments(policy, tmp_path, rollbook):
    copy = tmp_path / policy.name
    shutil.copy(policy, copy)
    original = copy.read_text(encoding="utf-8")

    first = rollbook("fmt", copy)
    assert first.returncode == 0, first.stderr
    once = copy.read_text(encoding="utf-8")
    second = rollbook("fmt", copy)
    assert second.returncode == 0, second.stderr
    assert copy.read_text(encoding="utf-8") == once, "formatting twice changed the file again"
    assert "0 reformatted" in second.stdout
    assert rollbook("fmt", "--check", copy).returncode == 0

    assert comment_lines(once) == comment_lines(original)
    assert data_of(copy) == data_of(policy), "fmt changed what the policy says"
    assert format_policy_text(once) == once


# ---- comments stay above the key they describe, whatever the original order ----------------

TOP_KEYS = ("rollbook", "id", "title", "version", "extends", "parameters", "rules")
RULE_KEYS = ("id", "title", "when", "then", "advisory", "repeat")
TOP_VALUES = {
    "rollbook": ["1"], "id": ["shuffled"], "title": ["Shuffled keys"], "version": ['"1"'], "extends": ["national.yaml"],
}
PARAMETER_KEYS = ("value", "unit", "description")
PARAMETER_VALUES = {"value": ["85"], "unit": ["percent   # inline on unit"], "description": ["The meeting threshold."]}
RULE_VALUES = {
    "id": ["meeting"], "title": ["Formal meeting"], "when": ["attendance this term below threshold   # inline on when"],
    "then": ["", "      - notify: {role: attendance_officer}", "      - flag: {flag: low_attendance}"],
    "advisory": ["false"], "repeat": ["{once_per: term}"],
}


def _block(keys, values, indent: str, first_prefix: str = "") -> list[str]:
    lines = []
    for i, key in enumerate(keys):
        if i > 0:  # a comment above the first key belongs to the enclosing block
            lines.append(f"{indent}# about {key}")
        head, *rest = values[key]
        prefix = first_prefix if i == 0 else indent
        lines.append(f"{prefix}{key}: {head}".rstrip())
        lines.extend(rest)
    return lines


def shuffled_policy(top: list[str], rule: list[str], parameter: list[str]) -> str:
    lines = ["# header: stays at the top"]
    values = dict(TOP_VALUES)
    values["parameters"] = ["", "  threshold:   # inline on a nested key"] + _block(parameter, PARAMETER_VALUES, "    ", "    ")
    values["rules"] = [""] + _block(rule, RULE_VALUES, "    ", first_prefix="  - ")
    lines += _block(top, values, "")
    lines.append("# trailing comment of the file")
    return "\n".join(lines) + "\n"


def _key_lines(lines: list[str], keys: tuple[str, ...], prefixes: tuple[str, ...]) -> dict[str, int]:
    """Where each key of one block is written: {key: line index}."""
    found = {}
    for i, line in enumerate(lines):
        for prefix in prefixes:
            for key in keys:
                if line.startswith(f"{prefix}{key}:"):
                    found[key] = i
    return found


@settings(max_examples=200, deadline=None)
@given(st.permutations(TOP_KEYS), st.permutations(RULE_KEYS), st.permutations(PARAMETER_KEYS))
def test_comments_stay_above_their_keys(top, rule, parameter):
    text = shuffled_policy(top, rule, parameter)
    out = format_policy_text(text)
    assert format_policy_text(out) == out
    assert comment_lines(out) == comment_lines(text)
    lines = out.splitlines()
    assert lines[0] == "# header: stays at the top"
    assert lines[-1] == "# trailing comment of the file"
    blocks = (
        (top, TOP_KEYS, TOP_ORDER, ("",)),
        (rule, RULE_KEYS, RULE_ORDER, ("  - ", "    ")),
        (parameter, PARAMETER_KEYS, PARAMETER_ORDER, ("    ",)),
    )
    for written, keys, order, prefixes in blocks:
        where = _key_lines(lines, keys, prefixes)
        assert sorted(where, key=where.get) == [k for k in order if k in keys], "\n" + out
        for key in written[1:]:  # every key that had a comment written above it
            assert lines[where[key] - 1].strip() == f"# about {key}", "\n" + out


def test_unformatted_policy_gets_the_documented_layout():
    text = (
        "title: T   # the title\n"
        "rollbook: 1\n"
        "rules:\n"
        "    -   when: attendance this term below 85%\n"
        "        id: meeting\n"
        "        then:\n"
        "            -   notify: {role: attendance_officer}\n"
        "        title: Meeting\n"
        "id: t\n"
        'version: "1"\n'
    )
    assert format_policy_text(text) == (
        "rollbook: 1\n"
        "id: t\n"
        "title: T   # the title\n"
        'version: "1"\n'
        "rules:\n"
        "  - id: meeting\n"
        "    title: Meeting\n"
        "    when: attendance this term below 85%\n"
        "    then:\n"
        "      - notify: {role: attendance_officer}\n"
    )
