"""Validate stage: each policy file against schemas/policy.schema.json, errors at file:line:col."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from .diagnostics import Diagnostic, did_you_mean, error
from .load import SourceDocument

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "policy.schema.json"


@lru_cache(maxsize=None)
def policy_schema() -> dict:
    """The policy JSON Schema (the public contract of the policy format)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _inline_refs(node, root):
    """The schema with its local `$ref`s replaced by what they point to (the policy schema has no
    recursive refs). jsonschema resolves a `$ref` on every use, which made validation the slowest
    stage of `rollbook check`; the inlined schema validates the same documents, with the same errors."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target = root
            for part in ref[2:].split("/"):
                target = target[part]
            rest = {k: _inline_refs(v, root) for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(target, root), **rest}
        return {k: _inline_refs(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, root) for v in node]
    return node


@lru_cache(maxsize=None)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_inline_refs(policy_schema(), policy_schema()), format_checker=FormatChecker())


def action_verbs() -> tuple[str, ...]:
    """The typed action vocabulary, read from the schema (its single definition)."""
    return tuple(policy_schema()["$defs"]["verbs"])


def _where(path) -> str:
    parts = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "the document"


def _describe_type(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


_TYPE_WORDS = {"string": "text", "number": "a number", "integer": "a whole number", "boolean": "true or false",
               "array": "a list", "object": "a mapping (key: value)"}


def _where_in(doc: SourceDocument, path) -> str:
    """Name a location the way an author thinks of it: `rule formal-meeting` rather than rules[3]."""
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) and isinstance(doc.data, dict):
        rules = doc.data.get("rules")
        if isinstance(rules, list) and path[1] < len(rules) and isinstance(rules[path[1]], dict):
            rule_id = rules[path[1]].get("id")
            if isinstance(rule_id, str):
                rest = _where(path[2:])
                return f"rule `{rule_id}`" + ("" if rest == "the document" else f" ({rest})")
    return _where(path)


def _diagnostic(err: ValidationError, doc: SourceDocument) -> Diagnostic:
    path = tuple(err.absolute_path)
    where = _where_in(doc, path)
    kind = err.validator
    if err.context and kind in ("oneOf", "anyOf"):
        deeper = best_match(err.context)
        if deeper is not None and tuple(deeper.absolute_path) != path:
            return _diagnostic(deeper, doc)
    if kind == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        key = extra[0]
        what = "action" if "send_letter" in allowed else "key"
        hint = did_you_mean(key, allowed) or (f"allowed here: {', '.join(allowed)}" if allowed else None)
        return error("schema.unknown-key", f"unknown {what} `{key}` in {where}", doc.span(path + (key,), key=True), hint=hint)
    if kind == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return error("schema.missing-key", f"{where} is missing the required key `{missing}`", doc.span(path, key=True),
                     hint=f"add `{missing}:` to this mapping")
    if kind == "enum":
        options = [str(o) for o in err.validator_value]
        hint = did_you_mean(str(err.instance), options) if isinstance(err.instance, str) else None
        return error("schema.enum", f"`{err.instance}` is not allowed as {where}", doc.span(path),
                     expected="one of " + ", ".join(f"`{o}`" for o in options), hint=hint)
    if kind == "type":
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        hint = None
        if "string" in wanted and isinstance(err.instance, bool):
            hint = "true/false were read as booleans; quote the value to keep it as text"
        elif "string" in wanted and isinstance(err.instance, (int, float)) and path in doc.scalar_raw:
            start, end, _ = doc.scalar_raw[path]
            hint = f'quote it to keep it as text: "{doc.text[start:end]}"'
        elif "boolean" in wanted and isinstance(err.instance, str) and err.instance.lower() in ("yes", "no", "on", "off", "y", "n"):
            hint = f"policies are read as YAML 1.2, where `{err.instance}` is text: write true or false"
        return error("schema.type", f"{where} must be {words}, not {_describe_type(err.instance)}", doc.span(path),
                     expected=words, hint=hint)
    if kind == "pattern":
        schema_pattern = err.validator_value
        if "school weeks" in schema_pattern:
            expected = "a duration such as `4 school weeks`, `10 school days` or `3 years`"
        elif schema_pattern.startswith("^[a-z0-9]+(-"):
            expected = "a kebab-case id such as `formal-meeting` (lower case letters, digits, hyphens)"
            if isinstance(err.instance, str):
                kebab = "-".join(re.findall(r"[a-z0-9]+", err.instance.lower()))
                if kebab:
                    # A bad rule id would otherwise name the rule by itself: "not valid for rule `X` (id)".
                    what = "a valid rule id" if path[:1] == ("rules",) and path[-1:] == ("id",) else f"valid for {where}"
                    return error("schema.pattern", f"`{err.instance}` is not {what}", doc.span(path),
                                 expected=expected, hint=f"write it `{kebab}`")
        elif "ya?ml" in schema_pattern:
            expected = "a .yaml file name"
        else:
            expected = f"text matching {schema_pattern}"
        return error("schema.pattern", f"`{err.instance}` is not valid for {where}", doc.span(path), expected=expected)
    if kind == "format":
        return error("schema.format", f"`{err.instance}` is not a valid {err.validator_value} for {where}", doc.span(path),
                     expected="a date written YYYY-MM-DD that exists" if err.validator_value == "date" else err.validator_value)
    if kind == "const":
        return error("schema.const", f"{where} must be `{err.validator_value}`", doc.span(path),
                     hint="this is the version of the policy format Rollbook reads")
    if kind in ("minItems", "minProperties"):
        hint = None
        if path and path[-1] in ("then", "otherwise"):
            hint = "list at least one action, e.g. `- notify: {role: attendance_officer}`"
        return error("schema.empty", f"{where} must not be empty", doc.span(path), hint=hint)
    if kind == "maxProperties" and "send_letter" in err.schema.get("properties", {}):
        return error("schema.action", f"an action names exactly one verb; {where} has {len(err.instance)}", doc.span(path),
                     hint="write each action as its own list item: `- send_letter: {...}`")
    if kind == "uniqueItems":
        return error("schema.duplicate", f"{where} lists the same item twice", doc.span(path))
    if kind in ("minimum", "maximum", "minLength"):
        return error("schema.range", f"{where}: {err.message}", doc.span(path))
    return error("schema", f"{where}: {err.message}", doc.span(path))


# Results by (path, text): a base policy is validated once, not once per policy that extends it.
_RESULTS: dict[tuple[str, str], list[Diagnostic]] = {}
_RESULTS_MAX = 256


def validate_document(doc: SourceDocument) -> list[Diagnostic]:
    """Every schema violation in one file, one diagnostic per location."""
    key = (doc.path, doc.text)
    if key not in _RESULTS:
        if len(_RESULTS) >= _RESULTS_MAX:
            _RESULTS.clear()
        _RESULTS[key] = _validate(doc)
    return list(_RESULTS[key])


def _validate(doc: SourceDocument) -> list[Diagnostic]:
    if not isinstance(doc.data, dict):
        return [error("schema.type", "a policy file must be a mapping of keys (id:, title:, rules: ...)", doc.span(()))]
    out: list[Diagnostic] = []
    seen = set()
    for err in sorted(_validator().iter_errors(doc.data), key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        d = _diagnostic(err, doc)
        key = (d.span.line if d.span else 0, d.span.column if d.span else 0, d.code)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def validate_against(schema: dict, doc: SourceDocument) -> list[Diagnostic]:
    """Every violation of another Rollbook schema (such as the policy-test schema) in one file,
    reported as policy files are: one diagnostic per location, at file:line:col."""
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    out: list[Diagnostic] = []
    seen = set()
    for err in sorted(validator.iter_errors(doc.data), key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        d = _diagnostic(err, doc)
        key = (d.span.line if d.span else 0, d.span.column if d.span else 0, d.code)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
