"""`rollbook fmt`: one canonical layout for policy files, comments kept.

Canonical: keys in the documented order (unknown keys after, as written), two-space mappings,
list items indented by two under their key, no line folding of long text. Conditions are not
rewritten: authors keep the wording they chose (`below` or `<`).
"""

from __future__ import annotations

import io

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

TOP_ORDER = ("rollbook", "id", "title", "school", "version", "effective_from", "effective_to", "source_document",
             "description", "extends", "attributes", "parameters", "disable", "rules")
RULE_ORDER = ("id", "title", "source", "reading", "scope", "when", "then", "advisory", "override", "repeat", "after", "limit")
PARAMETER_ORDER = ("value", "unit", "description", "source")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    y.preserve_quotes = True
    return y


# ruamel keeps a comment on its own line as part of the comment after the value *before* it (for a
# collection, after its deepest last value). Moving a key would carry along the comments written
# above the next key, so _reorder first detaches those lines and, after the move, puts them back
# above the key they were written for.

def _post_comment(node, key, create: bool = False) -> CommentToken | None:
    index = 2 if isinstance(node, CommentedMap) else 0
    entry = node.ca.items.get(key)
    if entry is None or entry[index] is None:
        if not create:
            return None
        entry = node.ca.items.setdefault(key, [None, None, None, None] if index == 2 else [None, None])
        entry[index] = CommentToken("\n", CommentMark(0), None)
    return entry[index]


def _last_key(node):
    return next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1


def _block(value) -> bool:
    """A non-empty block collection: comments after it hang on its last value, not on it."""
    return isinstance(value, (CommentedMap, CommentedSeq)) and len(value) > 0 and not value.fa.flow_style()


def _text(tokens) -> str:
    """Comment tokens as the lines they were written as (ruamel keeps the indentation apart)."""
    out = ""
    for token in tokens:
        column = token.start_mark.column if token.start_mark is not None else token.column
        out += (" " * column if token.value.strip() else "") + token.value
    return out


def _take_following(node, key) -> str:
    """Detach the comment lines after key's value (they stand above whatever comes next)."""
    value = node[key]
    if _block(value):
        # Deepest first, then the comments ruamel keeps at the end of the collection itself.
        following = _take_following(value, _last_key(value)) + _text(value.ca.end or [])
        value.ca.end = []
        return following
    token = _post_comment(node, key)
    if token is None or "\n" not in token.value:
        return ""
    own, following = token.value.split("\n", 1)
    token.value = own + "\n"
    return following


def _put_following(node, key, lines: str) -> None:
    """Attach comment lines after key's value (so they stand above whatever comes next)."""
    value = node[key]
    if _block(value):
        return _put_following(value, _last_key(value), lines)
    token = _post_comment(node, key, create=True)
    token.value = token.value + lines


def _tokens(lines: str) -> list[CommentToken]:
    return [CommentToken(line.lstrip() + "\n", CommentMark(len(line) - len(line.lstrip())), None)
            for line in lines.splitlines()]


def _put_before(mapping: CommentedMap, lines: str) -> None:
    """Comment lines above the first key of the document's mapping."""
    if mapping.ca.comment is None:
        mapping.ca.comment = [None, []]
    mapping.ca.comment[1] = (mapping.ca.comment[1] or []) + _tokens(lines)


def _put_before_item(parent: CommentedMap, key, index: int, lines: str) -> None:
    """Comment lines above item `index` of the block sequence parent[key]."""
    if index > 0:
        return _put_following(parent[key], index - 1, lines)
    # Above the first item: ruamel emits these from the parent's entry for the key.
    entry = parent.ca.items.setdefault(key, [None, None, None, None])
    entry[3] = (entry[3] or []) + _tokens(lines)


def _put_after_key(mapping: CommentedMap, key, lines: str) -> None:
    """Comment lines just under `key:` (above the first entry of its block value)."""
    token = _post_comment(mapping, key, create=True)
    token.value = token.value + lines


def _reorder(mapping: CommentedMap, order: tuple[str, ...], put_before) -> None:
    """Put mapping's keys in order; put_before(lines) places comments above its (new) first key."""
    keys = list(mapping)
    wanted = [k for k in order if k in mapping] + [k for k in keys if k not in order]
    if wanted == keys:
        return
    above: dict[object, str] = {}  # key -> the comment lines written above it (None: after the last key)
    for i, key in enumerate(keys):
        entry = mapping.ca.items.get(key)
        if entry and entry[1]:  # ruamel keeps comments after a flow collection as the next key's "pre" list
            above[key] = above.get(key, "") + _text(entry[1])
            entry[1] = None
        lines = _take_following(mapping, key)
        if lines:
            nxt = keys[i + 1] if i + 1 < len(keys) else None
            above[nxt] = above.get(nxt, "") + lines
    for key in wanted:
        mapping.move_to_end(key)
    for j, key in enumerate(wanted):
        if key in above:
            if j == 0:
                put_before(above[key])
            else:
                _put_following(mapping, wanted[j - 1], above[key])
    if None in above:
        _put_following(mapping, wanted[-1], above[None])


def format_policy_text(text: str) -> str:
    """The canonical text of a policy file. Raises ruamel's errors for unreadable YAML."""
    y = _yaml()
    data = y.load(text)
    if isinstance(data, CommentedMap):
        _reorder(data, TOP_ORDER, lambda lines: _put_before(data, lines))
        parameters = data.get("parameters")
        if isinstance(parameters, CommentedMap):
            for name, spec in parameters.items():
                if isinstance(spec, CommentedMap):
                    _reorder(spec, PARAMETER_ORDER, lambda lines, name=name: _put_after_key(parameters, name, lines))
        rules = data.get("rules")
        if isinstance(rules, CommentedSeq):
            for i, rule in enumerate(rules):
                if isinstance(rule, CommentedMap):
                    _reorder(rule, RULE_ORDER, lambda lines, i=i: _put_before_item(data, "rules", i, lines))
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()
