"""Load stage: policy YAML -> plain data with source positions, `extends` chains resolved.

YAML is read safely and strictly:
- YAML 1.2 core schema for plain scalars: only true/false (any case of those words) are
  booleans, so `no`, `yes`, `on`, `off` stay text; dates stay text (the schema checks them).
- no tags at all (`!!python/...`, `!custom`, even `!!str`): a policy is data, not objects;
- aliases are allowed but bounded (a few thousand expanded nodes), so no "billion laughs";
- duplicate keys are errors, not silently overwritten.
Every value keeps a Span so later stages can point at file:line:col.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .diagnostics import Diagnostic, Span, did_you_mean, error

JsonPath = tuple  # ("rules", 3, "when")

MAX_ALIAS_EXPANSION = 10_000
MAX_EXTENDS_DEPTH = 16

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_IMPLICIT = "rollbook:implicit"


class _StrictLoader(yaml.SafeLoader):
    """Composes nodes only; records which tags were written explicitly in the file."""

    def resolve(self, kind, value, implicit):
        return _IMPLICIT


# libyaml composes the same nodes with the same marks about ten times faster (only a plain
# scalar's style differs: "" rather than None). Its error messages are terser, so a file it
# rejects is composed again by the pure-Python loader above for the message.
_FastLoader = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        def resolve(self, kind, value, implicit):
            return _IMPLICIT


def _compose_all(text: str) -> list:
    if _FastLoader is not None:
        try:
            return list(yaml.compose_all(text, Loader=_FastLoader))
        except yaml.YAMLError:
            pass
    return list(yaml.compose_all(text, Loader=_StrictLoader))


def _style(node: ScalarNode) -> str | None:
    """The scalar's quoting or block style; None for a plain scalar (whichever loader composed it)."""
    return node.style or None


@dataclass
class SourceDocument:
    """One YAML file: its text, its plain data, and where every value and key is."""

    path: str
    text: str
    data: object
    value_spans: dict[JsonPath, Span] = field(default_factory=dict)
    key_spans: dict[JsonPath, Span] = field(default_factory=dict)
    scalar_raw: dict[JsonPath, tuple[int, int, str | None]] = field(default_factory=dict)
    _line_starts: list[int] | None = field(default=None, repr=False, compare=False)

    def span(self, path: JsonPath, key: bool = False) -> Span:
        """The span of the value (or key) at path, or of its nearest located ancestor."""
        table = self.key_spans if key else self.value_spans
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if key and p in self.value_spans:
                return self.value_spans[p]
            p = p[:-1]
        return self.value_spans.get((), Span(self.path, 1, 1))

    def locator(self, path: JsonPath):
        """Map offsets within the scalar at path to (line, column) in the file.

        Works for plain, quoted and block scalars: every non-blank character of the value
        appears in the source in the same order, so it is matched greedily.
        """
        start, end, style = self.scalar_raw[path]
        raw = self.text[start:end]
        value = _get(self.data, path)
        if style in ("|", ">"):
            skip = raw.find("\n") + 1
        elif style in ("'", '"'):
            skip = 1
        else:
            skip = 0
        positions = []
        j = skip
        for ch in value:
            if ch.isspace():
                positions.append(None)
                continue
            k = raw.find(ch, j)
            if k < 0:
                positions.append(None)
                continue
            positions.append(start + k)
            j = k + 1
        # Blanks take the position just after the previous visible character.
        last = start + skip
        for i, p in enumerate(positions):
            if p is None:
                positions[i] = last
            else:
                last = p + 1
        positions.append(last)

        line_starts = self.line_starts()

        def locate(offset: int) -> tuple[int, int]:
            absolute = positions[min(max(offset, 0), len(positions) - 1)]
            line = bisect_right(line_starts, absolute)
            return line, absolute - line_starts[line - 1] + 1

        return locate

    def line_starts(self) -> list[int]:
        """The offset at which each line starts (computed once: `locate` runs for every AST node)."""
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        return self._line_starts


def _get(data, path):
    for p in path:
        data = data[p]
    return data


class _Builder:
    def __init__(self, doc: SourceDocument):
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []
        self.expanded = 0
        self.active: set[int] = set()

    def span(self, node: Node) -> Span:
        s, e = node.start_mark, node.end_mark
        end_line, end_col = e.line + 1, e.column + 1
        if end_line != s.line + 1:
            end_line, end_col = s.line + 1, None
        return Span(self.doc.path, s.line + 1, s.column + 1, end_line, end_col)

    def build(self, node: Node, path: JsonPath):
        self.expanded += 1
        if self.expanded > MAX_ALIAS_EXPANSION:
            if self.expanded == MAX_ALIAS_EXPANSION + 1:
                self.diagnostics.append(error(
                    "yaml.too-large", f"the document expands to more than {MAX_ALIAS_EXPANSION} values",
                    self.span(node), hint="aliases (*name) are expanded; a policy never needs this many"))
            return None
        if node.tag != _IMPLICIT:
            self.diagnostics.append(error(
                "yaml.tag", f"YAML tags such as `{node.tag}` are not allowed in a policy", self.span(node),
                hint="remove the tag; write the value as plain text, a number, true/false or a list"))
            return None
        self.doc.value_spans[path] = self.span(node)
        if isinstance(node, ScalarNode):
            self.doc.scalar_raw[path] = (node.start_mark.index, node.end_mark.index, _style(node))
            return self.scalar(node)
        if id(node) in self.active:
            self.diagnostics.append(error("yaml.recursive", "this alias refers to a value that contains it", self.span(node)))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode):
        text = node.value
        if _style(node) is not None:  # quoted or block scalars are always text
            return text
        if _NULL.match(text):
            return None
        if text in _BOOL:
            return _BOOL[text]
        if _INT.match(text):
            return int(text)
        if _INT_OCT.match(text):
            return int(text[2:], 8)
        if _INT_HEX.match(text):
            return int(text[2:], 16)
        if _FLOAT.match(text):
            return float(text)
        return text

    def mapping(self, node: MappingNode, path: JsonPath) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _IMPLICIT and isinstance(key_node, ScalarNode) and key_node.value == "<<" and _style(key_node) is None:
                self.diagnostics.append(error("yaml.merge-key", "merge keys (`<<`) are not allowed in a policy",
                                              self.span(key_node), hint="write the keys out, or use `extends` for a base policy"))
                continue
            if not isinstance(key_node, ScalarNode):
                self.diagnostics.append(error("yaml.key", "a key must be plain text", self.span(key_node)))
                continue
            key = key_node.value
            if key in out:
                first = self.doc.key_spans.get(path + (key,))
                where = f" (first at line {first.line})" if first else ""
                self.diagnostics.append(error("yaml.duplicate-key", f"duplicate key `{key}`{where}", self.span(key_node),
                                              hint="each key may appear once in a mapping; remove or rename one"))
                continue
            self.doc.key_spans[path + (key,)] = self.span(key_node)
            out[key] = self.build(value_node, path + (key,))
        return out


# Documents by (path, text): a base policy is composed once per process, not once per policy
# that extends it. Nothing downstream modifies a SourceDocument, so sharing it is safe.
_DOCUMENTS: dict[tuple[str, str], tuple] = {}
_DOCUMENTS_MAX = 256


def read_document(path: Path, text: str | None = None) -> tuple[SourceDocument | None, list[Diagnostic]]:
    """Read one YAML file into a SourceDocument, or return why it cannot be read."""
    shown = str(path)
    if text is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return None, [error("file.unreadable", f"cannot read {shown}: {exc.strerror}", Span(shown, 1, 1))]
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return None, [error("file.encoding", f"{shown} is not UTF-8 (byte {exc.start})", Span(shown, 1, 1),
                                hint="save the file as UTF-8")]
    key = (shown, text)
    if key not in _DOCUMENTS:
        if len(_DOCUMENTS) >= _DOCUMENTS_MAX:
            _DOCUMENTS.clear()
        _DOCUMENTS[key] = _read_text(shown, text)
    doc, diagnostics = _DOCUMENTS[key]
    return doc, list(diagnostics)


def _read_text(shown: str, text: str) -> tuple[SourceDocument | None, list[Diagnostic]]:
    doc = SourceDocument(shown, text, None)
    try:
        nodes = _compose_all(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "invalid YAML"
        if exc.context and "quoted scalar" in exc.context and "end of stream" in message and exc.context_mark:
            # The problem shows only at the end of the file; the cause is where the quote opened.
            mark, message = exc.context_mark, "this quoted text is never closed"
        elif exc.context:
            message = f"{message} ({exc.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return doc, [error("yaml.syntax", f"YAML syntax: {message}", Span(shown, line, col), hint=_yaml_hint(exc))]
    except yaml.YAMLError as exc:
        return doc, [error("yaml.syntax", f"YAML syntax: {exc}", Span(shown, 1, 1))]
    if not nodes or nodes[0] is None:
        return doc, [error("policy.empty", "the file is empty", Span(shown, 1, 1),
                           hint="start from a policy in policies/, e.g. `rollbook schema` shows the format")]
    if len(nodes) > 1:
        return doc, [error("yaml.documents", "a policy file holds one YAML document", _Builder(doc).span(nodes[1]),
                           hint="remove the `---` separator and the second document")]
    builder = _Builder(doc)
    doc.data = builder.build(nodes[0], ())
    return doc, builder.diagnostics


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str | None:
    problem = exc.problem or ""
    if "found character '\\t'" in problem:
        return "YAML indentation must use spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing `: ` must be quoted, e.g. when: \"...\""
    if "could not find expected ':'" in problem:
        return "check the indentation of this line and the one before it"
    if "found undefined alias" in problem:
        return "an alias `*name` needs an anchor `&name` earlier in the file"
    if "expected <block end>" in problem and ("block mapping start" in problem or "block sequence start" in problem):
        return "check the indentation of this line: keys of one mapping must start in the same column"
    if "expected <block end>" in problem and "<scalar>" in problem:
        return "text follows a quoted value: put the whole value inside the quotes"
    if "quoted scalar" in (exc.context or "") and "end of stream" in problem:
        return "add the matching closing quote at the end of the text"
    return None


@dataclass
class LoadedPolicy:
    """A policy file and the chain of files it extends, leaf first, base last."""

    path: str
    chain: list[SourceDocument]

    @property
    def leaf(self) -> SourceDocument:
        return self.chain[0]


def load_policy(path: Path | str) -> tuple[LoadedPolicy | None, list[Diagnostic], dict[str, str]]:
    """Read a policy and every base it extends. Returns (policy, diagnostics, texts by path).

    Schema validation happens in engine.validate; here only what is needed to follow `extends`
    (that it is text naming a readable file, and that the chain has no cycle) is checked.
    """
    texts: dict[str, str] = {}
    chain: list[SourceDocument] = []
    seen: list[Path] = []
    current = Path(path)
    extends_span: Span | None = None
    while True:
        resolved = current.resolve()
        if resolved in seen:
            cycle = " -> ".join(str(p.name) for p in seen + [resolved])
            return None, [error("extends.cycle", f"`extends` forms a cycle: {cycle}", extends_span,
                                hint="a base policy must not extend, directly or not, the policy that extends it")], texts
        if len(seen) >= MAX_EXTENDS_DEPTH:
            return None, [error("extends.depth", f"`extends` chain is deeper than {MAX_EXTENDS_DEPTH} files", extends_span)], texts
        if not current.exists():
            if extends_span is None:
                return None, [error("file.missing", f"no such file: {current}", None)], texts
            return None, [error("extends.missing", f"the base policy `{current}` does not exist", extends_span,
                                hint=_missing_base_hint(current, base))], texts
        doc, diagnostics = read_document(current)
        if doc is not None:
            texts[doc.path] = doc.text
        if doc is None or doc.data is None or any(d.severity == "error" for d in diagnostics):
            return None, diagnostics, texts
        chain.append(doc)
        seen.append(resolved)
        base = doc.data.get("extends") if isinstance(doc.data, dict) else None
        if base is None:
            return LoadedPolicy(str(path), chain), diagnostics, texts
        extends_span = doc.span(("extends",))
        if not isinstance(base, str) or not base.strip():
            return None, [error("extends.type", "`extends` must name a policy file", extends_span)], texts
        current = current.parent / base


def _missing_base_hint(missing: Path, written: str) -> str:
    """Suggest a policy file next to where the missing base was looked for."""
    try:
        siblings = [f.name for f in missing.parent.iterdir() if f.suffix in (".yaml", ".yml")]
    except OSError:
        siblings = []
    near = did_you_mean(missing.name, siblings)
    if near:
        folder = written[: len(written) - len(Path(written).name)]
        return near.replace("`", "`" + folder, 1)
    return "`extends` is a path relative to this file, e.g. `national.yaml`"


@dataclass
class Located:
    """A value from the merged policy and where it was written."""

    value: object
    doc: SourceDocument
    path: JsonPath


@dataclass
class MergedPolicy:
    """A policy with its `extends` chain applied: the base's parameters and rules, overridden.

    Parameters: a later file's parameter replaces the base's of the same name (the checker
    requires the unit to stay the same). Rules: a rule whose id is inherited replaces the
    inherited one in its place only when it says `override: true`; `disable` removes an inherited
    rule, with its reason kept. Attributes are the union of every file's declarations.
    """

    path: str
    chain: list[SourceDocument]
    header: dict
    parameters: dict[str, Located]
    attributes: dict[str, Located]
    rules: list[Located]
    disabled: dict[str, Located]


def merge_policy(policy: LoadedPolicy) -> tuple[MergedPolicy, list[Diagnostic]]:
    """Apply the extends chain, base first. Assumes each file passed schema validation."""
    diagnostics: list[Diagnostic] = []
    parameters: dict[str, Located] = {}
    attributes: dict[str, Located] = {}
    rules: list[Located] = []
    disabled: dict[str, Located] = {}
    for doc in reversed(policy.chain):
        data = doc.data
        for name, spec in (data.get("parameters") or {}).items():
            parameters[name] = Located(spec, doc, ("parameters", name))
        for name, spec in (data.get("attributes") or {}).items():
            attributes[name] = Located(spec, doc, ("attributes", name))
        for i, entry in enumerate(data.get("disable") or []):
            where = ("disable", i, "rule")
            index = next((k for k, r in enumerate(rules) if r.value["id"] == entry["rule"]), None)
            if index is None:
                known = [r.value["id"] for r in rules]
                diagnostics.append(error("extends.disable-unknown", f"`disable` names `{entry['rule']}`, which no base policy defines",
                                         doc.span(where), hint=did_you_mean(entry["rule"], known)))
                continue
            disabled[entry["rule"]] = Located(entry, doc, ("disable", i))
            del rules[index]
        seen_here: dict[str, int] = {}
        for i, rule in enumerate(data.get("rules") or []):
            rule_id = rule["id"]
            where = ("rules", i, "id")
            if rule_id in seen_here:
                diagnostics.append(error("rule.duplicate-id", f"rule id `{rule_id}` is used twice in this file "
                                         f"(first in rules[{seen_here[rule_id]}])", doc.span(where),
                                         hint="rule ids must be unique: rename one of them"))
                continue
            seen_here[rule_id] = i
            located = Located(rule, doc, ("rules", i))
            index = next((k for k, r in enumerate(rules) if r.value["id"] == rule_id), None)
            if index is not None and rule.get("override"):
                rules[index] = located
            elif index is not None:
                base = rules[index].doc.path
                diagnostics.append(error("rule.duplicate-id", f"rule `{rule_id}` is already defined in {base}", doc.span(where),
                                         hint="add `override: true` to replace the inherited rule, or choose another id"))
            elif rule.get("override"):
                diagnostics.append(error("rule.override-nothing", f"rule `{rule_id}` says `override: true` but no base policy "
                                         "defines it", doc.span(("rules", i, "override")),
                                         hint=did_you_mean(rule_id, [r.value["id"] for r in rules]) or "remove `override: true`"))
                rules.append(located)
            elif rule_id in disabled:
                diagnostics.append(error("rule.disabled-id", f"rule `{rule_id}` is switched off by `disable` in this chain",
                                         doc.span(where), hint="use another id for a new rule"))
            else:
                rules.append(located)
    leaf = policy.leaf.data
    header = {k: v for k, v in leaf.items() if k not in ("parameters", "attributes", "rules", "disable")}
    return MergedPolicy(policy.path, policy.chain, header, parameters, attributes, rules, disabled), diagnostics
