"""End-to-end: the installed `rollbook` entry point, run as a subprocess, as an author or CI runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from engine.cli import build_parser

from .evaluation import SHIPPED_POLICIES

REPO = Path(__file__).resolve().parent.parent
POLICIES = SHIPPED_POLICIES
ERRORS = Path(__file__).resolve().parent / "golden" / "errors"


# ---- rollbook check --------------------------------------------------------------------------

def test_check_policies_folder_is_clean(rollbook):
    result = rollbook("check", "policies/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors" in result.stdout
    assert f"checked {len(POLICIES)} polic" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_check_json_has_the_documented_shape(rollbook):
    result = rollbook("check", "--format", "json", "policies/")
    assert result.returncode == 0, result.stdout
    data = json.loads(result.stdout)
    assert set(data) == {"files", "errors", "warnings"}
    assert data["errors"] == 0 and isinstance(data["warnings"], int)
    assert sorted(Path(f["path"]).name for f in data["files"]) == [p.name for p in POLICIES]
    for entry in data["files"]:
        assert set(entry) == {"path", "ok", "policy", "rules", "diagnostics"}
        assert entry["ok"] is True and isinstance(entry["policy"], str) and entry["rules"] > 0
        for d in entry["diagnostics"]:
            assert d["severity"] == "warning"
            assert {"severity", "code", "message", "file", "line", "column"} <= set(d)
    national = next(f for f in data["files"] if f["path"].endswith("national.yaml"))
    assert national["policy"] == "national"


def test_check_json_reports_errors_with_positions(rollbook):
    result = rollbook("check", "--format", "json", "name-unknown-parameter.yaml", cwd=ERRORS)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    (entry,) = data["files"]
    assert entry == {"path": "name-unknown-parameter.yaml", "ok": False, "policy": None, "rules": None,
                     "diagnostics": [{
                         "severity": "error", "code": "name.parameter",
                         "message": "unknown parameter `persistant_absence_threshold`",
                         "file": "name-unknown-parameter.yaml", "line": 9, "column": 32, "end_line": 9, "end_column": 60,
                         "hint": "did you mean `persistent_absence_threshold`?"}]}
    assert (data["errors"], data["warnings"]) == (1, 0)


@pytest.mark.parametrize("args, code", [
    (["check", "warn-unused-parameter.yaml"], 0),
    (["check", "--strict", "warn-unused-parameter.yaml"], 1),
    (["check", "--strict", "--format", "json", "warn-unused-parameter.yaml"], 1),
    (["check", "--strict", "bases/national.yaml"], 0),
])
def test_strict_turns_warnings_into_failure(rollbook, args, code):
    result = rollbook(*args, cwd=ERRORS)
    assert result.returncode == code, result.stdout


def test_strict_on_the_policies(rollbook):
    result = rollbook("check", "--strict", "--format", "json", "policies/")
    data = json.loads(result.stdout)
    assert result.returncode == (1 if data["warnings"] else 0)


def test_check_missing_path(rollbook, tmp_path):
    result = rollbook("check", tmp_path / "no-such-policy.yaml")
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr and "no-such-policy.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    data = json.loads(rollbook("check", "--format", "json", tmp_path / "nope.yaml").stdout)
    assert data["errors"] == 1 and data["files"][0]["ok"] is False
    assert data["files"][0]["diagnostics"][0]["code"] == "file.missing"


def test_check_missing_path_next_to_a_good_one(rollbook, tmp_path):
    result = rollbook("check", "policies/national.yaml", tmp_path / "nope.yaml")
    assert result.returncode == 1
    assert "checked 1 policy: 1 ok, 1 error" in result.stdout


def test_check_empty_folder(rollbook, tmp_path):
    result = rollbook("check", tmp_path)
    assert result.returncode == 1
    assert "no policy files found" in result.stderr


def test_check_skips_policy_test_files(rollbook, tmp_path):
    shutil.copy(REPO / "policies" / "national.yaml", tmp_path / "national.yaml")
    (tmp_path / "national.test.yaml").write_text("not: [a policy\n", encoding="utf-8")
    result = rollbook("check", tmp_path)
    assert result.returncode == 0, result.stdout
    assert "checked 1 policy" in result.stdout


def test_a_bad_file_among_good_ones_fails_the_run(rollbook, tmp_path):
    shutil.copy(REPO / "policies" / "national.yaml", tmp_path / "national.yaml")
    (tmp_path / "broken.yaml").write_text("rollbook: 1\nid: broken\n  title: x\n", encoding="utf-8")
    result = rollbook("check", tmp_path)
    assert result.returncode == 1
    assert "broken.yaml:3:" in result.stdout and "1 ok" in result.stdout


def test_check_never_shows_a_traceback_on_garbage(rollbook, tmp_path):
    cases = {"binary.yaml": b"\xff\xfe\x00garbage", "list.yaml": b"- a\n- b\n", "scalar.yaml": b"just text\n",
             "empty.yaml": b"", "two-docs.yaml": b"a: 1\n---\nb: 2\n", "alias-bomb.yaml":
             b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
             b"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    result = rollbook("check", tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stderr
    for name in cases:
        assert f"{name}:" in result.stdout, name


# ---- rollbook schema -------------------------------------------------------------------------

class Yaml12Loader(yaml.SafeLoader):
    """PyYAML with YAML 1.2 plain scalars for what policies use: dates stay text, `no` stays text."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


@pytest.fixture(scope="module")
def printed_schema(rollbook):
    result = rollbook("schema")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_schema_is_valid_json_schema(printed_schema):
    jsonschema.Draft202012Validator.check_schema(printed_schema)
    assert printed_schema == json.loads((REPO / "schemas" / "policy.schema.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("policy", POLICIES, ids=[p.name for p in POLICIES])
def test_schema_validates_the_policies(printed_schema, policy):
    data = yaml.load(policy.read_text(encoding="utf-8"), Loader=Yaml12Loader)
    validator = jsonschema.Draft202012Validator(printed_schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_schema_rejects_a_broken_policy(printed_schema):
    data = yaml.load((ERRORS / "yaml-advisory-no.yaml").read_text(encoding="utf-8"), Loader=Yaml12Loader)
    assert data["rules"][0]["advisory"] == "no"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, printed_schema)


# ---- rollbook fmt ----------------------------------------------------------------------------

UNFORMATTED = """\
# yaml-language-server: $schema=../schemas/policy.schema.json
# A policy typed by hand: keys in no particular order, four-space indentation.
title: Unformatted school attendance policy   # the school's own title
rollbook: 1
version: "2025.1"
id: unformatted-school
extends: national.yaml
rules:
    # The formal meeting (policy section 4).
    -   when: attendance this academic year below meeting_threshold   # from the policy text
        id: formal-meeting
        then:
            -   hold_meeting: {kind: formal, with: [parents]}
        title: Formal meeting when attendance is below 85%
        repeat: {once_per: term}
# Thresholds from the school's text.
parameters:
    meeting_threshold:
        unit: percent     # percent, not sessions
        value: 85
"""


def test_fmt_check_then_fmt(rollbook, tmp_path):
    shutil.copy(REPO / "policies" / "national.yaml", tmp_path / "national.yaml")
    policy = tmp_path / "school.yaml"
    policy.write_text(UNFORMATTED, encoding="utf-8")
    assert rollbook("check", policy).returncode == 0

    check = rollbook("fmt", "--check", policy)
    assert check.returncode == 1
    assert f"would reformat {policy}" in check.stdout
    assert policy.read_text(encoding="utf-8") == UNFORMATTED, "--check must not change the file"

    fmt = rollbook("fmt", policy)
    assert fmt.returncode == 0 and f"reformatted {policy}" in fmt.stdout
    assert rollbook("fmt", "--check", policy).returncode == 0
    assert rollbook("check", policy).returncode == 0
    text = policy.read_text(encoding="utf-8")
    for line in UNFORMATTED.splitlines():
        if "#" in line:
            assert line[line.index("#"):] in text, f"lost comment: {line}"
    lines = text.splitlines()
    assert lines[:4] == [UNFORMATTED.splitlines()[0], UNFORMATTED.splitlines()[1], "rollbook: 1", "id: unformatted-school"]
    assert lines[lines.index("parameters:") - 1] == "# Thresholds from the school's text."
    assert lines[lines.index("  - id: formal-meeting") - 1].strip() == "# The formal meeting (policy section 4)."


def test_fmt_on_a_folder_and_a_missing_path(rollbook, tmp_path):
    (tmp_path / "school.yaml").write_text(UNFORMATTED, encoding="utf-8")
    result = rollbook("fmt", "--check", tmp_path, tmp_path / "missing.yaml")
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr


def test_fmt_refuses_invalid_yaml_without_a_traceback(rollbook, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollbook: 1\n  id: [x\n", encoding="utf-8")
    result = rollbook("fmt", bad)
    assert result.returncode == 1
    assert "cannot format" in result.stderr and "Traceback" not in result.stderr
    assert bad.read_text(encoding="utf-8") == "rollbook: 1\n  id: [x\n"


# ---- help and usage --------------------------------------------------------------------------

SUBCOMMANDS = sorted(next(a for a in build_parser()._actions if a.dest == "command").choices)


def test_help(rollbook):
    result = rollbook("--help")
    assert result.returncode == 0
    for command in SUBCOMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(rollbook, command):
    result = rollbook(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: rollbook {command}")


def test_known_subcommands_are_there():
    assert {"check", "fmt", "schema"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("args, code", [([], 2), (["no-such-command"], 2), (["check"], 2), (["check", "--format", "xml", "x"], 2)])
def test_usage_errors_exit_2(rollbook, args, code):
    result = rollbook(*args)
    assert result.returncode == code
    assert "Traceback" not in result.stderr


def test_version(rollbook):
    result = rollbook("--version")
    assert result.returncode == 0 and result.stdout.startswith("rollbook ")


def test_parallel_check_reports_exactly_what_one_process_does(tmp_path):
    from engine.api import PARALLEL_CHECK_FROM, check_policy_files

    shutil.copy(REPO / "policies" / "national.yaml", tmp_path / "national.yaml")
    school = (REPO / "policies" / "mason-moor.yaml").read_text(encoding="utf-8")
    files = [tmp_path / "national.yaml"]
    for i in range(PARALLEL_CHECK_FROM):
        path = tmp_path / f"school-{i:03}.yaml"
        text = school.replace("id: mason-moor", f"id: mason-moor-{i}")
        if i % 7 == 0:  # some files with an error, so diagnostics travel back from the workers
            text = text.replace("ever > medical_evidence_sessions", "ever > medical_evidence_sesions")
        path.write_text(text, encoding="utf-8")
        files.append(path)
    one = check_policy_files(files, jobs=1)
    many = check_policy_files(files, jobs=2)
    assert [(r.path, r.ok, r.policy_id, r.rules, [d.as_dict() for d in r.diagnostics]) for r in one] == \
           [(r.path, r.ok, r.policy_id, r.rules, [d.as_dict() for d in r.diagnostics]) for r in many]
    assert sum(not r.ok for r in one) == len(range(0, PARALLEL_CHECK_FROM, 7))
