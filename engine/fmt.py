"""`rollbook fmt`: one canonical layout for policy files, comments kept.

Canonical: keys in the documented order (unknown keys after, as written), two-space mappings,
list items indented by two under their key, no line folding of long text. Conditions are not
rewritten: authors keep the wording they chose (`below` or `<`).
"""

from __future__ import annotations

import io

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

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


def _reorder(mapping: CommentedMap, order: tuple[str, ...]) -> None:
    for key in [k for k in order if k in mapping] + [k for k in list(mapping) if k not in order]:
        mapping.move_to_end(key)


def format_policy_text(text: str) -> str:
    """The canonical text of a policy file. Raises ruamel's errors for unreadable YAML."""
    y = _yaml()
    data = y.load(text)
    if isinstance(data, CommentedMap):
        _reorder(data, TOP_ORDER)
        for spec in (data.get("parameters") or {}).values():
            if isinstance(spec, CommentedMap):
                _reorder(spec, PARAMETER_ORDER)
        rules = data.get("rules")
        if isinstance(rules, CommentedSeq):
            for rule in rules:
                if isinstance(rule, CommentedMap):
                    _reorder(rule, RULE_ORDER)
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()
