"""The condition language: golden source -> AST cases, and properties of parse and format.

Golden cases live in tests/golden/conditions.yaml: each has the condition as written, what it
covers, its canonical text (engine.format_condition) and its expected AST (engine.ast.to_data).
Every expected AST was checked by hand against docs/language.md. ROLLBOOK_UPDATE_GOLDEN=1
rewrites `canonical` and `ast` from the current parser; review the diff before committing.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ast
from engine.diagnostics import ERROR
from engine.format_condition import format_condition
from engine.parse import keywords, parse_condition

CONDITIONS = Path(__file__).resolve().parent / "golden" / "conditions.yaml"


def _load_cases() -> list[dict]:
    return yaml.safe_load(CONDITIONS.read_text(encoding="utf-8"))


CASES = _load_cases()


# ---- golden cases ---------------------------------------------------------------------------

class _GoldenDumper(yaml.SafeDumper):
    """Block style for nodes with children, one flow line for leaves: compact and reviewable."""


def _represent_dict(dumper, data):
    leaf = not any(isinstance(v, (dict, list)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=leaf)


def _represent_list(dumper, data):
    leaf = not any(isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=leaf)


_GoldenDumper.add_representer(dict, _represent_dict)
_GoldenDumper.add_representer(list, _represent_list)

_HEADER = """\
# Golden cases of the condition grammar: condition -> canonical text -> AST (engine.ast.to_data).
# Each expected AST has been reviewed by hand against docs/language.md. Regenerate `canonical`
# and `ast` with ROLLBOOK_UPDATE_GOLDEN=1 (tests/test_grammar.py), then review the diff.
"""


def test_golden_file_is_big_enough_and_unique():
    assert len(CASES) >= 40
    conditions = [c["condition"] for c in CASES]
    assert len(conditions) == len(set(conditions))


@pytest.mark.parametrize("case", CASES, ids=[c["covers"] for c in CASES])
def test_condition_parses_to_golden_ast(case, update_golden):
    tree, problems = parse_condition(case["condition"])
    assert problems == []
    if update_golden:
        case["ast"] = ast.to_data(tree)
    assert ast.to_data(tree) == case["ast"]


@pytest.mark.parametrize("case", CASES, ids=[c["covers"] for c in CASES])
def test_condition_formats_canonically_and_round_trips(case, update_golden):
    tree, _ = parse_condition(case["condition"])
    text = format_condition(tree)
    if update_golden:
        case["canonical"] = text
    assert text == case["canonical"]
    again, problems = parse_condition(text)
    assert problems == [] and again == tree


def test_regenerate_goldens(update_golden):
    """With ROLLBOOK_UPDATE_GOLDEN=1, write back what the two tests above recorded (runs after them)."""
    if not update_golden:
        pytest.skip("set ROLLBOOK_UPDATE_GOLDEN=1 to rewrite tests/golden/conditions.yaml")
    out = [{"covers": c["covers"], "condition": c["condition"], "canonical": c["canonical"], "ast": c["ast"]} for c in CASES]
    text = yaml.dump(out, Dumper=_GoldenDumper, sort_keys=False, allow_unicode=True, width=200)
    CONDITIONS.write_text(_HEADER + "\n" + text.replace("\n- covers:", "\n\n- covers:"), encoding="utf-8")


# Every construct of docs/language.md must appear in some golden condition. Word lists are
# checked against the written conditions, so a deleted case shows here.
CONSTRUCTS = {
    "windows": ["in the last 10 school weeks", "school days >", "last 6 weeks", "the last 30 days", "last 3 years",
                "this school week", "this half term", "in this term", "this and previous term", "this academic year",
                "previous term", "previous academic year", "since 2025-09-01", "since review_start",
                "since pupil.joined_on", " ever "],
    "exclusions": ["excluding days before pupil.", "excluding days from 2025-10-06 to 2025-10-10", "excluding days before trial_start"],
    "categories": ["present sessions", "attending sessions", "approved_activity sessions", "authorised sessions",
                   "unauthorised sessions", "absent", "possible sessions", "not_possible sessions"],
    "halves": ["morning sessions", "afternoon sessions"],
    "weekdays": ["on {Monday, Friday}", "on Fridays", "Tuesday", "Wednesday", "Thursday"],
    "codes": ["{/, \\, #}", "{C1, J1, Y1}", "coded penalty_codes", "coded {I, M}"],
    "rates": ["attendance this", "absence this academic year", "authorised absence", "unauthorised absence"],
    "runs": ["longest run of absent sessions", "current run of school days", "longest run of authorised school days"],
    "late": ["minutes late"],
    "actions": ["actions by rule", "actions with verb", "school weeks since last action", "school days since last action",
                "days since last action with verb"],
    "groups": ["rank of attendance", "rank of unauthorised sessions"],
    "membership": [" in {", " not in {"],
    "arithmetic": [" + ", " - ", " * ", " / ", "-2", "-(", "(1 + 2)"],
    "comparisons": [" < ", " <= ", " > ", " >= ", " = ", " != ", " below ", " under ", " above ", " over ", " at least ",
                    " at most ", " more than ", " fewer than ", " less than ", " is ", " is not "],
    "or more / or fewer": [" or more ", " or fewer ", " or less "],
    "logic": [" and ", " or ", "not ", "not (", "(pupil.ehcp or pupil.lac) and", "not not"],
    "literals": ["85%", "2.5%", "true", "false", '"R"', "2025-09-01", "2.5"],
}


@pytest.mark.parametrize("group", sorted(CONSTRUCTS))
def test_goldens_cover_every_construct(group):
    written = [f" {c['condition']} " for c in CASES]
    missing = [w for w in CONSTRUCTS[group] if not any(w in c for c in written)]
    assert not missing, f"no golden condition uses {missing}"


# ---- strategies: canonical trees ------------------------------------------------------------

KEYWORDS = keywords()
CATEGORIES = ("present", "attending", "approved_activity", "authorised", "unauthorised", "absent", "possible", "not_possible")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
CODES = ("/", "\\", "#", "G", "N", "O", "U", "I", "M", "L", "C1", "J1", "Y1", "Y7", "B", "Q2", "Z")

names = st.from_regex(r"\A[a-z_][a-z0-9_]{0,12}\Z").filter(lambda n: n not in KEYWORDS)
rule_ids = st.from_regex(r"\A[a-z0-9]{1,6}(-[a-z0-9]{1,6}){0,3}\Z")
decimals = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False).map(abs)
dates = st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31))
texts = st.text(st.characters(exclude_characters='"\n', exclude_categories=("Cs",)), max_size=12)

parameters = st.builds(ast.Parameter, name=names)
attributes = st.builds(ast.Attribute, name=st.from_regex(r"\A[a-z_][a-z0-9_]{0,12}\Z"))
numbers = st.builds(ast.Number, value=decimals)
literals = st.one_of(
    numbers,
    st.builds(ast.Percent, value=decimals),
    st.builds(ast.DateLiteral, value=dates),
    st.builds(ast.Text, value=texts),
    st.builds(ast.Boolean, value=st.booleans()),
    parameters,
    attributes,
)
date_values = st.one_of(st.builds(ast.DateLiteral, value=dates), parameters, attributes)


@st.composite
def windows(draw):
    kind = draw(st.sampled_from(ast.WINDOW_KINDS))
    size = unit = since = None
    if kind == "last":
        size = draw(st.one_of(st.builds(ast.Number, value=st.integers(0, 999).map(Decimal)), parameters))
        unit = draw(st.sampled_from(ast.WINDOW_UNITS))
    elif kind == "since":
        since = draw(date_values)
    exclusion = draw(st.one_of(
        st.none(),
        st.builds(ast.Exclusion, kind=st.just("before"), end=date_values),
        st.builds(ast.Exclusion, kind=st.just("between"), start=date_values, end=date_values),
    ))
    return ast.Window(kind=kind, size=size, unit=unit, since=since, exclusion=exclusion)


code_filters = st.one_of(st.none(), st.lists(st.sampled_from(CODES), min_size=1, max_size=4).map(tuple), parameters)
session_filters = st.builds(
    ast.SessionFilter,
    category=st.none() | st.sampled_from(CATEGORIES),
    codes=code_filters,
    weekdays=st.none() | st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3).map(tuple),
    half=st.sampled_from((None, "AM", "PM")),
)
run_filters = st.builds(ast.SessionFilter, category=st.none() | st.sampled_from(CATEGORIES), codes=code_filters)
selectors = st.one_of(st.builds(ast.ActionSelector, rule=rule_ids), st.builds(ast.ActionSelector, verb=names))

measures = st.recursive(
    st.one_of(
        st.builds(ast.SessionCount, filter=session_filters, window=windows()),
        st.builds(ast.Rate, kind=st.sampled_from(ast.RATE_KINDS), window=windows()),
        st.builds(ast.Run, which=st.sampled_from(("longest", "current")), unit=st.sampled_from(("sessions", "school_days")),
                  filter=run_filters, window=windows()),
        st.builds(ast.MinutesLate, window=windows()),
        st.builds(ast.ActionCount, selector=selectors, window=windows()),
        st.builds(ast.TimeSinceAction, unit=st.sampled_from(("school_days", "school_weeks", "days")), selector=selectors),
    ),
    lambda inner: st.builds(ast.Rank, measure=inner),  # rank of a measure (or of a rank)
    max_leaves=3,
)
value_sets = st.builds(ast.ValueSet, items=st.lists(
    st.one_of(st.builds(ast.Text, value=texts), numbers), max_size=3).map(tuple))


def _bool_op(op: str, children):
    # Canonical: at least two operands, none of them a BoolOp of the same op (the parser flattens).
    operand = children.filter(lambda c: not (isinstance(c, ast.BoolOp) and c.op == op))
    return st.builds(ast.BoolOp, op=st.just(op), operands=st.lists(operand, min_size=2, max_size=3).map(tuple))


def _extend(children):
    return st.one_of(
        _bool_op("and", children),
        _bool_op("or", children),
        st.builds(ast.Not, operand=children),
        st.builds(ast.Compare, op=st.sampled_from(ast.COMPARISONS), left=children, right=children),
        st.builds(ast.Member, item=children, values=value_sets, negated=st.booleans()),
        st.builds(ast.Arith, op=st.sampled_from("+-*/"), left=children, right=children),
        st.builds(ast.Negate, operand=children),
    )


trees = st.recursive(st.one_of(literals, measures), _extend, max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_format_then_parse_gives_the_same_tree(tree):
    text = format_condition(tree)
    parsed, problems = parse_condition(text)
    assert problems == [], f"{text!r}: {[p.message for p in problems]}"
    assert parsed == tree, text


# ---- strategies: the same trees written the many ways an author may write them ----------------

_WORDS = {"<": ["<", "below", "under", "fewer than", "less than"], "<=": ["<=", "at most"],
          ">": [">", "above", "over", "more than"], ">=": [">=", "at least"], "=": ["=", "is"], "!=": ["!=", "is not"]}
_WINDOW_WORDS = {"this_school_week": "this school week", "this_half_term": "this half term", "this_term": "this term",
                 "previous_term": "previous term", "this_and_previous_term": "this and previous term",
                 "this_academic_year": "this academic year", "previous_academic_year": "previous academic year"}
_UNITS = {"school_weeks": "school weeks", "school_days": "school days", "weeks": "weeks", "days": "days", "years": "years"}
_RATES = {"attendance": "attendance", "absence": "absence", "authorised_absence": "authorised absence",
          "unauthorised_absence": "unauthorised absence"}


def _space(draw) -> str:
    return draw(st.sampled_from((" ", "  ", "\t", "\n ")))


def _number(draw, value: Decimal) -> str:
    text = format(value, "f")
    if draw(st.booleans()) and "." not in text:
        text += "." + "0" * draw(st.integers(1, 2))  # 10.0 and 10 are the same number
    return text


def write(draw, node) -> str:
    """Any accepted spelling of a tree: synonyms, optional words, extra parentheses and spaces."""
    s = lambda: _space(draw)  # noqa: E731
    text = _write(draw, node, s)
    if not isinstance(node, (ast.ValueSet,)) and draw(st.integers(0, 5)) == 0:
        text = f"({s()}{text}{s()})"
    return text


def _window(draw, w: ast.Window, s) -> str:
    if w.kind == "last":
        lead = draw(st.sampled_from(("in the ", "the ", "in ", "")))
        size = _write(draw, w.size, s) if isinstance(w.size, ast.Parameter) else str(int(w.size.value))
        text = f"{lead}last{s()}{size}{s()}{_UNITS[w.unit]}"
    elif w.kind == "since":
        text = f"since {_write(draw, w.since, s)}"
    elif w.kind == "ever":
        text = "ever"
    else:
        text = draw(st.sampled_from(("", "in "))) + _WINDOW_WORDS[w.kind]
    if w.exclusion is not None:
        e = w.exclusion
        if e.kind == "before":
            text += f"{s()}excluding days before {_write(draw, e.end, s)}"
        else:
            text += f"{s()}excluding days{s()}from {_write(draw, e.start, s)} to {_write(draw, e.end, s)}"
    return text


def _filter(draw, f: ast.SessionFilter, noun: str, s) -> str:
    words = []
    if f.category:
        words.append(f.category)
    if f.half:
        words.append("morning" if f.half == "AM" else "afternoon")
    words.append(noun)
    if isinstance(f.codes, ast.Parameter):
        words.append(f"coded {f.codes.name}")
    elif f.codes:
        words.append("coded {" + ",".join(f"{s()}{c}" for c in f.codes) + "}")
    if f.weekdays:
        days = [d + draw(st.sampled_from(("", "s"))) for d in f.weekdays]
        words.append(f"on {days[0]}" if len(days) == 1 and draw(st.booleans()) else "on {" + ", ".join(days) + "}")
    return s().join(words)


def _selector(sel: ast.ActionSelector) -> str:
    return f"by rule {sel.rule}" if sel.rule else f"with verb {sel.verb}"


def _write(draw, node, s) -> str:
    if isinstance(node, ast.BoolOp):
        return f"{s()}{node.op}{s()}".join(f"({write(draw, o)})" if isinstance(o, ast.BoolOp) else _operand(draw, o, 2)
                                           for o in node.operands)
    if isinstance(node, ast.Not):
        return f"not{s()}{_operand(draw, node.operand, 3)}"
    if isinstance(node, ast.Compare):
        left, right = _operand(draw, node.left, 5), _operand(draw, node.right, 5)
        if node.op == ">=" and draw(st.booleans()):
            return f"{right}{s()}or more{s()}{left}"
        if node.op == "<=" and draw(st.booleans()):
            return f"{right}{s()}or {draw(st.sampled_from(('fewer', 'less')))}{s()}{left}"
        return f"{left}{s()}{draw(st.sampled_from(_WORDS[node.op]))}{s()}{right}"
    if isinstance(node, ast.Member):
        return f"{_operand(draw, node.item, 5)}{s()}{'not in' if node.negated else 'in'}{s()}{_write(draw, node.values, s)}"
    if isinstance(node, ast.Arith):
        strength = 5 if node.op in "+-" else 6
        return f"{_operand(draw, node.left, strength)}{s()}{node.op}{s()}{_operand(draw, node.right, strength + 1)}"
    if isinstance(node, ast.Negate):
        return "-" + _operand(draw, node.operand, 7)
    if isinstance(node, ast.Number):
        return _number(draw, node.value)
    if isinstance(node, ast.Percent):
        return _number(draw, node.value) + "%"
    if isinstance(node, ast.ValueSet):
        return "{" + ",".join(f"{s()}{_write(draw, i, s)}" for i in node.items) + "}"
    if isinstance(node, ast.SessionCount):
        return f"{_filter(draw, node.filter, 'sessions', s)}{s()}{_window(draw, node.window, s)}"
    if isinstance(node, ast.Rate):
        return f"{_RATES[node.kind]}{s()}{_window(draw, node.window, s)}"
    if isinstance(node, ast.Run):
        noun = "sessions" if node.unit == "sessions" else "school days"
        return f"{node.which} run of {_filter(draw, node.filter, noun, s)}{s()}{_window(draw, node.window, s)}"
    if isinstance(node, ast.MinutesLate):
        return f"minutes late{s()}{_window(draw, node.window, s)}"
    if isinstance(node, ast.ActionCount):
        return f"actions {_selector(node.selector)}{s()}{_window(draw, node.window, s)}"
    if isinstance(node, ast.TimeSinceAction):
        return f"{_UNITS[node.unit]} since last action {_selector(node.selector)}"
    if isinstance(node, ast.Rank):
        return f"rank{s()}of{s()}{_write(draw, node.measure, s)}"
    return format_condition(node)  # the remaining literals have one spelling


_STRENGTH = {ast.BoolOp: 1, ast.Not: 3, ast.Compare: 4, ast.Member: 4, ast.Negate: 7}


def _operand(draw, node, minimum: int) -> str:
    """Write a child, in parentheses when it binds looser than its place needs."""
    strength = _STRENGTH.get(type(node), 8)
    if isinstance(node, ast.BoolOp):
        strength = 1 if node.op == "or" else 2
    if isinstance(node, ast.Arith):
        strength = 5 if node.op in "+-" else 6
    text = write(draw, node)
    return f"({text})" if strength < minimum else text


@st.composite
def spellings(draw):
    tree = draw(trees)
    return tree, write(draw, tree)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spellings())
def test_every_spelling_parses_to_its_tree(case):
    """Synonyms, optional words, `N or more`, extra parentheses and spaces change nothing."""
    tree, text = case
    parsed, problems = parse_condition(text)
    assert problems == [], f"{text!r}: {[p.message for p in problems]}"
    assert parsed == tree, text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spellings())
def test_parse_format_parse_is_stable(case):
    """For text the parser accepts: format(parse(format(parse(t)))) == format(parse(t))."""
    _, text = case
    first, _ = parse_condition(text)
    canonical = format_condition(first)
    second, problems = parse_condition(canonical)
    assert problems == []
    assert second == first
    assert format_condition(second) == canonical


@pytest.mark.parametrize("case", CASES, ids=[c["covers"] for c in CASES])
def test_parse_format_parse_is_stable_on_goldens(case):
    first, _ = parse_condition(case["condition"])
    canonical = format_condition(first)
    assert format_condition(parse_condition(canonical)[0]) == canonical


# ---- the parser never raises ----------------------------------------------------------------

_VOCABULARY = sorted(KEYWORDS) + [
    "(", ")", "{", "}", ",", ".", "<", "<=", ">", ">=", "=", "!=", "+", "-", "*", "/", "\\", "#", "%",
    "10", "2.5", "85%", "2025-09-01", "2025-02-30", '"R"', '"', "pupil.ehcp", "G", "C1", "Monday", "Fridays",
    "penalty_codes", "letter-1", "or more", "or fewer", "\n", "\t", "é", "",
]


def _check_result(text: str):
    tree, problems = parse_condition(text)
    if tree is None:
        assert len(problems) == 1
        (d,) = problems
        assert d.severity == ERROR and d.message and d.span is not None
        assert d.span.line >= 1 and d.span.column >= 1
    else:
        assert problems == []
        assert parse_condition(format_condition(tree))[0] == tree


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_parse_never_raises_on_any_text(text):
    _check_result(text)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=16).map(" ".join))
def test_parse_never_raises_on_token_soup(text):
    _check_result(text)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=300, deadline=None)
@given(spellings(), st.integers(0, 200), st.sampled_from(["", " ", "x", ")", "(", "and", "{", "-", "%", "\"", "9999-99-99"]))
def test_parse_never_raises_on_damaged_conditions(case, at, insert):
    """A valid condition cut short or with junk spliced in: a diagnostic, never an exception."""
    _, text = case
    at = min(at, len(text))
    _check_result(text[:at] + insert + text[at + 1:])


@pytest.mark.parametrize("text", ["", "   ", "\n", "(", ")", "{", '"', "%", "-", "pupil.", "coded {", "2025-13-45",
                                  "sessions coded {H", "attendance this term below 85% and", "\x00", "é", "10 or more"])
def test_parse_never_raises_on_fragments(text):
    _check_result(text)


@pytest.mark.parametrize("name", sorted(KEYWORDS - {"true", "false"}))
def test_keywords_cannot_be_parameters(name):
    tree, problems = parse_condition(f"sessions this term > {name}")
    assert tree is None and problems


def test_true_and_false_are_values_not_parameters():
    assert parse_condition("pupil.ehcp = false")[0].right == ast.Boolean(value=False)
    assert parse_condition("pupil.ehcp = true")[0].right == ast.Boolean(value=True)


def test_names_that_merely_start_with_a_keyword_are_parameters():
    tree, problems = parse_condition("termly_limit or notable and ormore")
    assert problems == []
    assert tree == ast.BoolOp(op="or", operands=(
        ast.Parameter(name="termly_limit"),
        ast.BoolOp(op="and", operands=(ast.Parameter(name="notable"), ast.Parameter(name="ormore")))))

