"""AST -> canonical condition text. parse(format(tree)) == tree for every tree the parser makes."""

from __future__ import annotations

from decimal import Decimal

from . import ast

# Binding strength, loosest first; a child binding looser than its parent gets parentheses.
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(8)

_WINDOW_WORDS = {
    "this_school_week": "this school week",
    "this_half_term": "this half term",
    "this_term": "this term",
    "previous_term": "previous term",
    "this_and_previous_term": "this and previous term",
    "this_academic_year": "this academic year",
    "previous_academic_year": "previous academic year",
    "ever": "ever",
}
_UNIT_WORDS = {"school_weeks": "school weeks", "school_days": "school days", "weeks": "weeks", "days": "days", "years": "years"}
_RATE_WORDS = {"attendance": "attendance", "absence": "absence", "authorised_absence": "authorised absence",
               "unauthorised_absence": "unauthorised absence"}


def _number(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _strength(node) -> int:
    if isinstance(node, ast.BoolOp):
        return _OR if node.op == "or" else _AND
    if isinstance(node, ast.Not):
        return _NOT
    if isinstance(node, (ast.Compare, ast.Member)):
        return _COMPARE
    if isinstance(node, ast.Arith):
        return _SUM if node.op in "+-" else _PRODUCT
    if isinstance(node, ast.Negate):
        return _UNARY
    return _ATOM


def _wrap(node, minimum: int) -> str:
    text = format_condition(node)
    return f"({text})" if _strength(node) < minimum else text


def format_window(w: ast.Window) -> str:
    if w.kind == "last":
        text = f"in the last {format_condition(w.size)} {_UNIT_WORDS[w.unit]}"
    elif w.kind == "since":
        text = f"since {format_condition(w.since)}"
    else:
        text = _WINDOW_WORDS[w.kind]
    if w.exclusion is not None:
        e = w.exclusion
        if e.kind == "before":
            text += f" excluding days before {format_condition(e.end)}"
        else:
            text += f" excluding days from {format_condition(e.start)} to {format_condition(e.end)}"
    return text


def format_filter(f: ast.SessionFilter, noun: str = "sessions") -> str:
    words = []
    if f.category:
        words.append(f.category)
    if f.half:
        words.append("morning" if f.half == "AM" else "afternoon")
    words.append(noun)
    if f.codes is not None:
        if isinstance(f.codes, ast.Parameter):
            words.append(f"coded {f.codes.name}")
        else:
            words.append("coded {" + ", ".join(f.codes) + "}")
    if f.weekdays:
        days = [d + "day" if not d.endswith("day") else d for d in f.weekdays]
        words.append(f"on {days[0]}" if len(days) == 1 else "on {" + ", ".join(days) + "}")
    return " ".join(words)


def _selector(s: ast.ActionSelector) -> str:
    return f"by rule {s.rule}" if s.rule else f"with verb {s.verb}"


def format_condition(node) -> str:
    """The canonical text of a condition tree."""
    if isinstance(node, ast.BoolOp):
        strength = _strength(node)
        return f" {node.op} ".join(_wrap(o, strength + 1) for o in node.operands)
    if isinstance(node, ast.Not):
        return "not " + _wrap(node.operand, _NOT)
    if isinstance(node, ast.Compare):
        return f"{_wrap(node.left, _SUM)} {node.op} {_wrap(node.right, _SUM)}"
    if isinstance(node, ast.Member):
        word = "not in" if node.negated else "in"
        return f"{_wrap(node.item, _SUM)} {word} {format_condition(node.values)}"
    if isinstance(node, ast.Arith):
        strength = _strength(node)
        # Left-associative: the right operand needs parentheses at equal strength.
        return f"{_wrap(node.left, strength)} {node.op} {_wrap(node.right, strength + 1)}"
    if isinstance(node, ast.Negate):
        return "-" + _wrap(node.operand, _UNARY)
    if isinstance(node, ast.Number):
        return _number(node.value)
    if isinstance(node, ast.Percent):
        return _number(node.value) + "%"
    if isinstance(node, ast.DateLiteral):
        return node.value.isoformat()
    if isinstance(node, ast.Text):
        return f'"{node.value}"'
    if isinstance(node, ast.Boolean):
        return "true" if node.value else "false"
    if isinstance(node, ast.Parameter):
        return node.name
    if isinstance(node, ast.Attribute):
        return f"pupil.{node.name}"
    if isinstance(node, ast.ValueSet):
        return "{" + ", ".join(format_condition(i) for i in node.items) + "}"
    if isinstance(node, ast.SessionCount):
        return f"{format_filter(node.filter)} {format_window(node.window)}"
    if isinstance(node, ast.Rate):
        return f"{_RATE_WORDS[node.kind]} {format_window(node.window)}"
    if isinstance(node, ast.Run):
        noun = "sessions" if node.unit == "sessions" else "school days"
        f = node.filter
        return f"{node.which} run of {format_filter(ast.SessionFilter(None, f.category, f.codes), noun)} {format_window(node.window)}"
    if isinstance(node, ast.MinutesLate):
        return f"minutes late {format_window(node.window)}"
    if isinstance(node, ast.ActionCount):
        return f"actions {_selector(node.selector)} {format_window(node.window)}"
    if isinstance(node, ast.TimeSinceAction):
        return f"{_UNIT_WORDS[node.unit]} since last action {_selector(node.selector)}"
    if isinstance(node, ast.Rank):
        return f"rank of {format_condition(node.measure)}"
    raise TypeError(f"cannot format {type(node).__name__}")
