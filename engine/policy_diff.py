"""Impact diff of two versions of a policy: what changes in the policy text, and in the actions.

    check both files -> structural diff of the two merged policies (extends applied):
                        header fields, attributes, parameters, rules matched by id
    with a register  -> load it once, evaluate both checked policies on it for one as-of date
                        (and the same prior actions), match their actions by subject

Two actions are "the same action" when they come from the same rule, for the same subject, with
the same verb (the n-th action of that verb the rule emits for the subject). An action only one
version emits is gained or lost; one both emit is changed when its params, its alternative
(limit reached) or advisory flag, or the facts in its evidence (measured values, windows, the
sessions that counted, which comparisons hold, escalation and limit evidence) differ. Text in the
evidence that only quotes the policy (the condition, parameter values) is not compared: the
structural diff already shows that change.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from .api import PolicyCheck, check_policy_file
from .check import Action, CheckedPolicy, Parameter, Rule
from .load import Located, MergedPolicy, load_policy, merge_policy

DIFF_FORMAT = 1
DEFAULT_LIST_LIMIT = 10


# ---- plain data ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Location:
    """Where a value was written: file and line."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Change:
    """One structural difference between the two merged policies.

    `kind` is policy | attribute | parameter | rule; `name` the header field, attribute, parameter
    or rule id; `change` added | removed | changed; `field` what changed within a rule or
    parameter (`when`, `then`, `limit.max`, `value`...), None for whole additions and removals.
    `old` and `new` are the values as text (None where there is none)."""

    kind: str
    name: str
    change: str
    field: str | None
    old: str | None
    new: str | None
    old_at: Location | None
    new_at: Location | None
    note: str | None = None


@dataclass(frozen=True)
class SubjectActions:
    """The actions of one rule for one subject that only one version emits."""

    subject: dict
    verbs: tuple[str, ...]
    actions: tuple[dict, ...]


@dataclass(frozen=True)
class ChangedAction:
    """An action both versions emit for the same subject, with different params or evidence."""

    subject: dict
    verb: str
    what: tuple[str, ...]  # params | alternative | advisory | evidence
    old: dict
    new: dict


@dataclass
class RuleImpact:
    rule: str
    scope: str
    gained: list[SubjectActions] = field(default_factory=list)
    lost: list[SubjectActions] = field(default_factory=list)
    changed: list[ChangedAction] = field(default_factory=list)


@dataclass
class Impact:
    """What changes in the actions when both versions run on the same register and date."""

    register: str
    as_of: date
    prior: str | None
    subjects: dict[str, int]
    old_actions: int
    new_actions: int
    rules: list[RuleImpact]
    calendar_note: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def gained(self) -> int:
        return sum(len(s.actions) for r in self.rules for s in r.gained)

    @property
    def lost(self) -> int:
        return sum(len(s.actions) for r in self.rules for s in r.lost)

    @property
    def changed(self) -> int:
        return sum(len(r.changed) for r in self.rules)


@dataclass
class PolicyDiff:
    old: CheckedPolicy
    new: CheckedPolicy
    changes: list[Change]
    impact: Impact | None = None

    @property
    def differences(self) -> bool:
        return bool(self.changes) or (self.impact is not None and any(
            r.gained or r.lost or r.changed for r in self.impact.rules))


@dataclass
class DiffOutcome:
    """Both files' checks and, when both pass, the diff."""

    old_check: PolicyCheck
    new_check: PolicyCheck
    diff: PolicyDiff | None


# ---- values as text ---------------------------------------------------------------------------

def _flow(value) -> str:
    """A value as YAML flow text (how a policy author would write it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    text = str(value)
    plain = text and all(c.isalnum() or c in "_-./ " for c in text) and text == text.strip()
    return text if plain else json.dumps(text, ensure_ascii=False)


def parameter_text(p: Parameter) -> str:
    """A parameter's value with its unit: 85%, [G, O, U], 10 school weeks, 2025-09-01."""
    if isinstance(p.value, tuple):
        return _flow(p.value)
    if isinstance(p.value, date):
        return p.value.isoformat()
    number = _flow(p.value)
    if p.unit == "percent":
        return f"{number}%"
    return f"{number} {p.unit.replace('_', ' ')}" if p.unit else number


def action_text(a: Action) -> str:
    return f"{a.verb} {_flow(a.params_dict())}" if a.params else a.verb


def _repeat_text(rule: Rule) -> str:
    if rule.repeat.cooldown is not None:
        return f"{{cooldown: {rule.repeat.cooldown}}}"
    if rule.repeat.once_per is not None:
        return f"{{once_per: {rule.repeat.once_per}}}"
    return "none (once ever)"


def _after_text(rule: Rule) -> str:
    if rule.after is None:
        return "none"
    if rule.after.at_least is None:
        return f"{{rule: {rule.after.rule}}}"
    return f"{{rule: {rule.after.rule}, at_least: {rule.after.at_least}}}"


# ---- structural diff --------------------------------------------------------------------------

def _merged(path: str) -> MergedPolicy:
    """The merged policy again, for the positions of its fields (CheckedPolicy keeps only the
    rules' id spans). Only called on files that passed check, so it cannot fail."""
    loaded, _, _ = load_policy(path)
    merged, _ = merge_policy(loaded)
    return merged


def _at(located: Located | None, *path) -> Location | None:
    if located is None:
        return None
    span = located.doc.span(located.path + tuple(path))
    return Location(span.path, span.line)


class _Sides:
    """Both merged policies, to find where a field is written in each."""

    def __init__(self, old: MergedPolicy, new: MergedPolicy):
        self.old, self.new = old, new
        self.old_rules = {r.value["id"]: r for r in old.rules}
        self.new_rules = {r.value["id"]: r for r in new.rules}


def _diff_actions(old: tuple[Action, ...], new: tuple[Action, ...], prefix: str):
    """Align two action lists by verb; yield (field, old text, new text, old index, new index)."""
    matcher = difflib.SequenceMatcher(a=[a.verb for a in old], b=[a.verb for a in new], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                a, b = old[i].params_dict(), new[j].params_dict()
                for key in list(a) + [k for k in b if k not in a]:
                    if a.get(key) != b.get(key):
                        yield (f"{prefix}[{j}] {new[j].verb}.{key}", None if key not in a else _flow(a[key]),
                               None if key not in b else _flow(b[key]), i, j)
            continue
        for i in range(i1, i2):
            yield prefix, action_text(old[i]), None, i, None
        for j in range(j1, j2):
            yield prefix, None, action_text(new[j]), None, j


def _rule_changes(old: Rule, new: Rule, sides: _Sides) -> list[Change]:
    lo, ln = sides.old_rules[old.id], sides.new_rules[new.id]
    out: list[Change] = []

    def add(fld, a, b, old_path=(), new_path=()):
        out.append(Change("rule", new.id, "changed", fld, a, b, _at(lo, *old_path), _at(ln, *new_path)))

    for fld, a, b in (("title", old.title, new.title), ("scope", old.scope, new.scope)):
        if a != b:
            add(fld, _flow(a), _flow(b), (fld,), (fld,))
    if old.condition_text != new.condition_text:
        add("when", json.dumps(old.condition_text, ensure_ascii=False), json.dumps(new.condition_text, ensure_ascii=False),
            ("when",), ("when",))
    for fld, a, b, i, j in _diff_actions(old.actions, new.actions, "then"):
        add(fld, a, b, ("then",) + ((i,) if i is not None else ()), ("then",) + ((j,) if j is not None else ()))
    if old.advisory != new.advisory:
        add("advisory", _flow(old.advisory), _flow(new.advisory), ("advisory",), ("advisory",))
    if old.repeat != new.repeat:
        add("repeat", _repeat_text(old), _repeat_text(new), ("repeat",), ("repeat",))
    if old.after != new.after:
        add("after", _after_text(old), _after_text(new), ("after",), ("after",))
    if old.limit != new.limit:
        a, b = old.limit, new.limit
        if a is None or b is None:
            text = lambda x: "none" if x is None else (  # noqa: E731
                f"{{max: {x.max}, within: {x.within}" + (f", rules: {_flow(x.rules)}" if x.rules else "")
                + ", otherwise: [" + ", ".join(action_text(o) for o in x.otherwise) + "]}")
            add("limit", text(a), text(b), ("limit",), ("limit",))
        else:
            for fld, x, y in (("max", a.max, b.max), ("within", str(a.within), str(b.within)), ("rules", a.rules, b.rules)):
                if x != y:
                    add(f"limit.{fld}", _flow(x), _flow(y), ("limit", fld), ("limit", fld))
            for fld, x, y, i, j in _diff_actions(a.otherwise, b.otherwise, "limit.otherwise"):
                add(fld, x, y, ("limit", "otherwise") + ((i,) if i is not None else ()),
                    ("limit", "otherwise") + ((j,) if j is not None else ()))
    for fld, a, b in (("source", old.source, new.source), ("reading", old.reading, new.reading)):
        if a != b:
            add(fld, None if a is None else json.dumps(a, ensure_ascii=False),
                None if b is None else json.dumps(b, ensure_ascii=False), (fld,), (fld,))
    return out


def _parameter_users(policy: CheckedPolicy, name: str) -> list[str]:
    """Rules whose condition names the parameter anywhere (conditions, windows, code sets)."""
    from . import ast

    users = []
    for r in policy.rules:
        for node in ast.walk(r.condition):
            if isinstance(node, ast.Parameter) and node.name == name:
                users.append(r.id)
                break
    return users


def structural_diff(old: CheckedPolicy, new: CheckedPolicy) -> list[Change]:
    """Every difference between two checked policies, after `extends`: header fields, attributes,
    parameters (value, unit, description) and rules matched by id, with file:line of both sides."""
    sides = _Sides(_merged(old.path), _merged(new.path))
    old_leaf, new_leaf = sides.old.chain[0], sides.new.chain[0]
    changes: list[Change] = []

    # Header fields of the leaf files; `extends` is compared by the base policies' ids, since
    # the same base can be written with different relative paths.
    def header_fields(merged: MergedPolicy) -> dict[tuple, object]:
        out = {}
        for key, value in merged.header.items():
            if key == "extends":
                continue
            if isinstance(value, dict):
                for sub, v in value.items():
                    out[(key, sub)] = v
            else:
                out[(key,)] = value
        return out

    a, b = header_fields(sides.old), header_fields(sides.new)
    for key in list(a) + [k for k in b if k not in a]:
        if a.get(key) != b.get(key):
            name = ".".join(key)
            changes.append(Change("policy", name, "changed" if key in a and key in b else ("added" if key in b else "removed"),
                                  None, None if key not in a else _flow(a[key]), None if key not in b else _flow(b[key]),
                                  Location(*_line(old_leaf, key)) if key in a else None,
                                  Location(*_line(new_leaf, key)) if key in b else None))
    old_bases = [f"{d.data.get('id')} ({d.path})" for d in sides.old.chain[1:]]
    new_bases = [f"{d.data.get('id')} ({d.path})" for d in sides.new.chain[1:]]
    if [d.data.get("id") for d in sides.old.chain[1:]] != [d.data.get("id") for d in sides.new.chain[1:]]:
        changes.append(Change("policy", "extends", "changed", None, ", ".join(old_bases) or "none",
                              ", ".join(new_bases) or "none",
                              Location(*_line(old_leaf, ("extends",))), Location(*_line(new_leaf, ("extends",)))))

    for name in list(sides.old.attributes) + [n for n in sides.new.attributes if n not in sides.old.attributes]:
        lo, ln = sides.old.attributes.get(name), sides.new.attributes.get(name)
        ta = lo.value.get("type") if lo else None
        tb = ln.value.get("type") if ln else None
        if ta != tb:
            kind = "changed" if lo and ln else ("added" if ln else "removed")
            changes.append(Change("attribute", name, kind, "type" if kind == "changed" else None, ta, tb,
                                  _at(lo, "type"), _at(ln, "type")))

    for name in list(old.parameters) + [n for n in new.parameters if n not in old.parameters]:
        pa, pb = old.parameters.get(name), new.parameters.get(name)
        lo, ln = sides.old.parameters.get(name), sides.new.parameters.get(name)
        users = sorted(set(_parameter_users(old, name)) | set(_parameter_users(new, name)))
        note = f"used by {', '.join(users)}" if users else "used by no rule"
        if pa is None or pb is None:
            changes.append(Change("parameter", name, "added" if pb else "removed", None,
                                  parameter_text(pa) if pa else None, parameter_text(pb) if pb else None,
                                  _at(lo, "value"), _at(ln, "value"), note))
            continue
        if (pa.value, pa.unit) != (pb.value, pb.unit):
            changes.append(Change("parameter", name, "changed", "value", parameter_text(pa), parameter_text(pb),
                                  _at(lo, "value"), _at(ln, "value"), note))
        if pa.description != pb.description:
            changes.append(Change("parameter", name, "changed", "description",
                                  None if pa.description is None else json.dumps(pa.description, ensure_ascii=False),
                                  None if pb.description is None else json.dumps(pb.description, ensure_ascii=False),
                                  _at(lo, "description"), _at(ln, "description")))

    old_rules = {r.id: r for r in old.rules}
    new_ids = {r.id for r in new.rules}
    for rule in new.rules:
        if rule.id in old_rules:
            changes.extend(_rule_changes(old_rules[rule.id], rule, sides))
        else:
            note = "switched on: the old version disables it" if rule.id in old.disabled else None
            changes.append(Change("rule", rule.id, "added", None, None, _rule_summary(rule),
                                  None, _at(sides.new_rules[rule.id]), note))
    for rule in old.rules:
        if rule.id not in new_ids:
            reason = new.disabled.get(rule.id)
            note = f"disabled: {' '.join(reason.split())}" if reason else None
            where = None
            if rule.id in sides.new.disabled:
                where = _at(sides.new.disabled[rule.id], "rule")
            changes.append(Change("rule", rule.id, "removed", None, _rule_summary(rule), None,
                                  _at(sides.old_rules[rule.id]), where, note))
    return changes


def _line(doc, key: tuple) -> tuple[str, int]:
    span = doc.span(key)
    return span.path, span.line


def _rule_summary(rule: Rule) -> str:
    return f"when {json.dumps(rule.condition_text, ensure_ascii=False)} then " + "; ".join(action_text(a) for a in rule.actions)


# ---- impact on a register ---------------------------------------------------------------------

def action_key(action: dict, occurrence: int) -> tuple:
    """What makes two action records "the same action" across policy versions."""
    s = action["subject"]
    return (action["rule"], s["kind"], s.get("school_id", ""), s["id"], action["verb"], occurrence)


def keyed_actions(actions: list[dict]) -> dict[tuple, dict]:
    """Action records by action_key (the n-th action of a verb a rule emits for a subject)."""
    seen: Counter = Counter()
    out = {}
    for a in actions:
        s = a["subject"]
        base = (a["rule"], s["kind"], s.get("school_id", ""), s["id"], a["verb"])
        out[action_key(a, seen[base])] = a
        seen[base] += 1
    return out


def _evidence_facts(action: dict) -> dict:
    """The facts about the subject in an action's evidence, without the text that quotes the policy."""
    e = action.get("evidence") or {}
    return {"measures": e.get("measures"), "holds": [c.get("holds") for c in e.get("comparisons") or []],
            "escalation": e.get("escalation"), "limit": e.get("limit")}


def compare_actions(old: list[dict], new: list[dict], rule_order: list[str] | None = None) -> list[RuleImpact]:
    """Gained, lost and changed actions per rule between two evaluations of the same register.
    Rules in `rule_order` first (in that order), then any other rule by id; rules without any
    difference are left out."""
    a, b = keyed_actions(old), keyed_actions(new)
    by_rule: dict[str, RuleImpact] = {}

    def impact(action):
        rule = action["rule"]
        if rule not in by_rule:
            by_rule[rule] = RuleImpact(rule, action["subject"]["kind"])
        return by_rule[rule]

    def grouped(keys, source):
        groups: dict[tuple, list[dict]] = {}
        for k in keys:
            groups.setdefault(k[:4], []).append(source[k])
        return groups

    for (rule, *_), actions in sorted(grouped([k for k in b if k not in a], b).items(), key=_subject_order):
        impact(actions[0]).gained.append(SubjectActions(actions[0]["subject"], tuple(x["verb"] for x in actions), tuple(actions)))
    for (rule, *_), actions in sorted(grouped([k for k in a if k not in b], a).items(), key=_subject_order):
        impact(actions[0]).lost.append(SubjectActions(actions[0]["subject"], tuple(x["verb"] for x in actions), tuple(actions)))
    for k in sorted((k for k in b if k in a), key=lambda k: (k[0], k[2], k[3], k[4], k[5])):
        x, y = a[k], b[k]
        what = [f for f, same in (("params", x["params"] == y["params"]),
                                  ("alternative", x.get("alternative") == y.get("alternative")),
                                  ("advisory", x.get("advisory") == y.get("advisory")),
                                  ("evidence", _evidence_facts(x) == _evidence_facts(y))) if not same]
        if what:
            impact(y).changed.append(ChangedAction(y["subject"], y["verb"], tuple(what), x, y))
    order = {r: i for i, r in enumerate(rule_order or [])}
    return sorted(by_rule.values(), key=lambda r: (order.get(r.rule, len(order)), r.rule))


def _subject_order(item):
    (rule, kind, school, subject), _ = item
    return (rule, school, subject)


def impact_on_register(old: CheckedPolicy, new: CheckedPolicy, register, as_of, prior_actions=None,
                       rules_engine: str = "builtin") -> Impact:
    """Evaluate both policies on the same register (loaded once), as-of date and prior actions,
    and compare their actions. Raises RollbookError for a problem in the register or prior actions."""
    from .api import RollbookError, prepare_register, run_evaluation
    from .prior_actions import read_prior_actions

    prior_path = str(prior_actions) if isinstance(prior_actions, (str, Path)) else None
    if isinstance(prior_actions, (str, Path)):
        prior_actions, problems = read_prior_actions(prior_actions)
        if problems:
            raise RollbookError("the prior actions file has problems", problems)
    loaded, warnings = prepare_register(register, old)
    before = run_evaluation(old, loaded, as_of, prior_actions, rules_engine)
    # Typing the pupils' columns for one version changes them in place: when the versions declare
    # an attribute with different types, the new version gets a register of its own.
    retyped = any(old.attributes[n] != kind for n, kind in new.attributes.items() if n in old.attributes)
    after = run_evaluation(new, register if retyped else loaded, as_of, prior_actions, rules_engine)
    order = [r.id for r in new.rules] + [r.id for r in old.rules]
    rules = compare_actions(before.actions, after.actions, list(dict.fromkeys(order)))
    return Impact(str(register), after.as_of, prior_path, after.subjects, len(before.actions), len(after.actions),
                  rules, after.calendar_note, list(dict.fromkeys(warnings + before.warnings + after.warnings)))


def diff_policy_files(old_path, new_path, register=None, as_of=None, prior_actions=None,
                      rules_engine: str = "builtin") -> DiffOutcome:
    """Check both policy files; when both pass, diff them (and, given a register and an as-of
    date, their actions on it). Check problems come back in the outcome; a problem in the
    register or prior actions raises RollbookError."""
    old_check, new_check = check_policy_file(old_path), check_policy_file(new_path)
    if not (old_check.ok and new_check.ok):
        return DiffOutcome(old_check, new_check, None)
    diff = PolicyDiff(old_check.policy, new_check.policy, structural_diff(old_check.policy, new_check.policy))
    if register is not None:
        diff.impact = impact_on_register(old_check.policy, new_check.policy, register, as_of, prior_actions, rules_engine)
    return DiffOutcome(old_check, new_check, diff)


# ---- output -----------------------------------------------------------------------------------

_NOUNS = {"pupil": ("pupil", "pupils"), "leaver": ("leaver", "leavers"), "class": ("class", "classes"),
          "year_group": ("year group", "year groups"),
          "school": ("school", "schools")}


def _plural(n: int, kind: str) -> str:
    return f"{n} {_NOUNS.get(kind, (kind, kind + 's'))[n != 1]}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _subject_label(subject: dict, several_schools: bool) -> str:
    ident = subject.get("id") or subject.get("school_id", "")
    if several_schools and subject.get("kind") != "school":
        return f"{subject.get('school_id', '')}/{ident}"
    return ident


def _id_list(labels: list[str], limit: int | None) -> str:
    if limit is None or len(labels) <= limit:
        return ", ".join(labels)
    return ", ".join(labels[:limit]) + f" and {len(labels) - limit} more"


def _verbs(counter: Counter) -> str:
    return ", ".join(f"{v} ×{n}" for v, n in counter.items())


def render_change(c: Change) -> list[str]:
    """One change as text: the headline, then where it is written on each side."""
    if c.kind == "rule" and c.change == "added":
        head = f"rule {c.name}: added: {c.new}"
    elif c.kind == "rule" and c.change == "removed":
        head = f"rule {c.name}: removed: {c.old}"
    elif c.change == "added" and c.field is None:
        head = f"{c.kind} {c.name}: added: {c.new}"
    elif c.change == "removed" and c.field is None:
        head = f"{c.kind} {c.name}: removed: {c.old}"
    else:
        label = f"{c.field}: " if c.field else ""
        if c.old is None:
            head = f"{c.kind} {c.name}: {label}added {c.new}"
        elif c.new is None:
            head = f"{c.kind} {c.name}: {label}removed {c.old}"
        else:
            head = f"{c.kind} {c.name}: {label}{c.old} → {c.new}"
    if c.kind == "policy":
        head = head.replace("policy ", "policy field ", 1)
    if c.note:
        head += f" ({c.note})"
    where = f"{c.old_at or '(not in the old version)'} → {c.new_at or '(not in the new version)'}"
    return [head, "    " + where]


def render_text(diff: PolicyDiff, list_limit: int | None = DEFAULT_LIST_LIMIT) -> str:
    """The diff for people. `list_limit` caps each list of subjects (None: list them all)."""
    old, new = diff.old, diff.new
    lines = [f"old: {old.path} (policy {old.id} v{old.version})",
             f"new: {new.path} (policy {new.id} v{new.version})"]
    if old.id != new.id:
        lines.append(f"note: the two files are different policies ({old.id} and {new.id}); rules are matched by id")
    lines.append("")
    if diff.changes:
        lines.append(f"{_count(len(diff.changes), 'structural change')}:")
        for c in diff.changes:
            head, where = render_change(c)
            lines.append("  " + head)
            lines.append("  " + where)
    else:
        lines.append("No structural changes: the merged policies have the same header, parameters and rules.")
    impact = diff.impact
    if impact is not None:
        lines.append("")
        subjects = ", ".join(_plural(n, scope) for scope, n in impact.subjects.items())
        prior = f", prior actions from {impact.prior}" if impact.prior else ""
        lines.append(f"Impact on {impact.register} as of {impact.as_of.isoformat()} ({subjects}{prior}):")
        if impact.calendar_note:
            lines.append(f"  note: {impact.calendar_note}")
        lines.append(f"  actions: {impact.old_actions} → {impact.new_actions} "
                     f"({impact.gained} gained, {impact.lost} lost, {impact.changed} changed)")
        schools = {e.subject.get("school_id", "") for r in impact.rules for e in [*r.gained, *r.lost, *r.changed]}
        several = len(schools) > 1
        if not impact.rules:
            lines.append("  No action is gained, lost or changed.")
        for r in impact.rules:
            lines.append(f"  rule {r.rule}:")
            for word, entries in (("gained", r.gained), ("lost", r.lost)):
                if not entries:
                    continue
                verbs = Counter(v for e in entries for v in e.verbs)
                labels = [_subject_label(e.subject, several) for e in entries]
                lines.append(f"    {word}: {_count(sum(verbs.values()), 'action')} ({_verbs(verbs)}) for "
                             f"{_plural(len(entries), r.scope)}: {_id_list(labels, list_limit)}")
            groups: dict[tuple, list[ChangedAction]] = {}
            for c in r.changed:
                groups.setdefault((c.verb, c.what), []).append(c)
            for (verb, what), entries in groups.items():
                labels = list(dict.fromkeys(_subject_label(e.subject, several) for e in entries))
                detail = ""
                if "params" in what:
                    first = entries[0]
                    if all(e.old["params"] == first.old["params"] and e.new["params"] == first.new["params"] for e in entries):
                        detail = f": {_flow(first.old['params'])} → {_flow(first.new['params'])}"
                lines.append(f"    changed {verb} ({', '.join(what)}){detail} for {_plural(len(labels), r.scope)}: "
                             f"{_id_list(labels, list_limit)}")
    if impact is not None and impact.warnings:
        lines.append("")
        lines.extend(f"warning: {w}" for w in impact.warnings)
    return "\n".join(lines) + "\n"


def _location_json(loc: Location | None):
    return None if loc is None else {"file": loc.path, "line": loc.line}


def _policy_json(p: CheckedPolicy) -> dict:
    return {"path": p.path, "policy": p.id, "version": p.version, "sha256": p.sha256}


def to_json(diff: PolicyDiff) -> dict:
    """The diff as plain data (format 1, documented in docs/diff.md). Lists are always complete."""
    out = {
        "format": DIFF_FORMAT,
        "old": _policy_json(diff.old),
        "new": _policy_json(diff.new),
        "same_policy": diff.old.id == diff.new.id,
        "differences": diff.differences,
        "changes": [{"kind": c.kind, "name": c.name, "change": c.change, "field": c.field, "old": c.old, "new": c.new,
                     "old_at": _location_json(c.old_at), "new_at": _location_json(c.new_at), "note": c.note}
                    for c in diff.changes],
        "impact": None,
    }
    impact = diff.impact
    if impact is not None:
        out["impact"] = {
            "register": impact.register, "as_of": impact.as_of.isoformat(), "prior": impact.prior,
            "subjects": impact.subjects,
            "actions": {"old": impact.old_actions, "new": impact.new_actions,
                        "gained": impact.gained, "lost": impact.lost, "changed": impact.changed},
            "rules": [{
                "rule": r.rule, "scope": r.scope,
                "gained": [{"subject": e.subject, "verbs": list(e.verbs), "action_ids": [a["id"] for a in e.actions]}
                           for e in r.gained],
                "lost": [{"subject": e.subject, "verbs": list(e.verbs), "action_ids": [a["id"] for a in e.actions]}
                         for e in r.lost],
                "changed": [{"subject": c.subject, "verb": c.verb, "what": list(c.what),
                             "old": {"id": c.old["id"], "params": c.old["params"], "alternative": c.old.get("alternative"),
                                     "advisory": c.old.get("advisory"), "evidence": c.old.get("evidence")},
                             "new": {"id": c.new["id"], "params": c.new["params"], "alternative": c.new.get("alternative"),
                                     "advisory": c.new.get("advisory"), "evidence": c.new.get("evidence")}}
                            for c in r.changed],
            } for r in impact.rules],
            "calendar_note": impact.calendar_note,
            "warnings": impact.warnings,
        }
    return out
