"""Sinks: where action records go. JSON Lines (the contract), CSV (for spreadsheets) and a
readable table for people. Output order is the evaluation's order, which is deterministic."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

CSV_COLUMNS = ("id", "policy", "policy_version", "rule", "subject_kind", "subject_id", "school_id", "verb", "params",
               "as_of", "advisory", "alternative", "reason", "evidence", "source", "defined_in", "policy_sha256")


def to_jsonl(actions: list[dict]) -> str:
    return "".join(json.dumps(a, ensure_ascii=False, sort_keys=False) + "\n" for a in actions)


def to_csv(actions: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for a in actions:
        writer.writerow({
            "id": a["id"], "policy": a["policy"], "policy_version": a["policy_version"], "rule": a["rule"],
            "subject_kind": a["subject"]["kind"], "subject_id": a["subject"]["id"],
            "school_id": a["subject"].get("school_id", ""), "verb": a["verb"],
            "params": json.dumps(a["params"], ensure_ascii=False, sort_keys=True), "as_of": a["as_of"],
            "advisory": str(a["advisory"]).lower(), "alternative": str(a.get("alternative", False)).lower(),
            "reason": a["reason"], "evidence": json.dumps(a["evidence"], ensure_ascii=False),
            "source": a.get("source") or "", "defined_in": a["defined_in"], "policy_sha256": a["policy_sha256"],
        })
    return out.getvalue()


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={', '.join(v) if isinstance(v, list) else v}" for k, v in params.items())


def fit_column(text: str, width: int) -> str:
    """`text` padded to `width`, or cut to it with an ellipsis, so a cut is never read as the whole."""
    return f"{text:<{width}}" if len(text) <= width else text[:width - 1] + "…"


def to_table(actions: list[dict], evaluation=None, limit: int = 50) -> str:
    """A summary for people: counts per rule, then the first actions with their reasons."""
    lines = []
    if evaluation is not None:
        nouns = {"pupil": ("pupil", "pupils"), "leaver": ("leaver", "leavers"), "class": ("class", "classes"),
                 "year_group": ("year group", "year groups"),
                 "school": ("school", "schools")}
        subjects = ", ".join(f"{n} {nouns[scope][n != 1]}" for scope, n in evaluation.subjects.items())
        lines.append(f"Policy {evaluation.policy.id} v{evaluation.policy.version} on {evaluation.as_of.isoformat()}: "
                     f"{subjects} evaluated, {len(actions)} action{'s' if len(actions) != 1 else ''}.")
        if evaluation.calendar_note:
            lines.append(f"Note: {evaluation.calendar_note}")
        lines.append("")
    if not actions:
        lines.append("No actions.")
        return "\n".join(lines) + "\n"
    per_rule = Counter((a["rule"], a["verb"]) for a in actions)
    width = max(len(f"{r} → {v}") for r, v in per_rule)
    lines.append("Actions per rule:")
    for (rule, verb), n in per_rule.items():
        lines.append(f"  {f'{rule} → {verb}':<{width}}  {n:>6}")
    lines.append("")
    shown = actions[:limit]
    lines.append(f"{'subject':<18} {'rule':<28} {'action':<38} reason")
    for a in shown:
        subject = a["subject"]["id"] or a["subject"].get("school_id", "")
        action = a["verb"] + (f" ({_params_text(a['params'])})" if a["params"] else "")
        if a["advisory"]:
            action = "may: " + action
        lines.append(f"{fit_column(subject, 18)} {fit_column(a['rule'], 28)} {fit_column(action, 38)} {a['reason']}")
    if len(actions) > limit:
        lines.append(f"... and {len(actions) - limit} more (use --format jsonl or csv for all of them)")
    return "\n".join(lines) + "\n"
