"""Parse stage: condition text -> AST (engine.ast) with spans, or syntax diagnostics.

The grammar is grammar/condition.lark (LALR, contextual lexer). A condition usually sits inside
a YAML scalar, so the caller passes a `locate` function that maps an offset in the condition
text to (line, column) in the policy file; spans and carets then point into the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, Span, did_you_mean, error

GRAMMAR_PATH = Path(__file__).resolve().parent.parent / "grammar" / "condition.lark"

Locate = Callable[[int], tuple[int, int]]

# How regex terminals are named in messages.
TERMINAL_NAMES = {
    "NUMBER": "a number", "INT": "a whole number", "PERCENT": "a percentage such as `85%`",
    "DATE": "a date such as `2025-09-01`", "STRING": 'a quoted text such as `"R"`',
    "NAME": "a parameter name", "RULE_ID": "a rule id", "CODE": "an attendance code such as `G`",
    "WEEKDAY": "a weekday such as `Monday`", "ADD_OP": "`+` or `-`", "MUL_OP": "`*` or `/`",
    "_OR_MORE": "`or more`", "_OR_FEWER": "`or fewer`", "_OR": "`or`", "_AND": "`and`",
    "_NOT": "`not`", "_IN": "`in`", "$END": "the end of the condition",
}
WINDOW_STARTS = {"in", "the", "last", "this", "previous", "since", "ever"}
# Windows that are fixed phrases, for hints when a phrase is half right (`this year`, `previous week`).
WINDOW_PHRASES = ("this school week", "this half term", "this term", "this and previous term", "this academic year",
                  "previous term", "previous academic year")


@lru_cache(maxsize=None)
def condition_parser() -> Lark:
    """The compiled LALR parser (built once per process)."""
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_parser_cache_path(grammar),
    )


def _parser_cache_path(grammar: str) -> str | bool:
    """Where Lark may keep the built LALR tables: building them takes ~0.3 s, a third of a
    one-school `rollbook eval`. The file is a pickle, so it lives in the user's own cache folder
    (never the shared temp folder) and its name carries a hash of everything it depends on."""
    import hashlib
    import os
    import sys

    import lark

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rollbook"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(base, os.W_OK):
        return False
    key = hashlib.sha256(f"{grammar}\0{lark.__version__}\0{sys.version}".encode()).hexdigest()[:24]
    return str(base / f"condition-grammar-{key}.lark-cache")


@lru_cache(maxsize=None)
def keywords() -> frozenset[str]:
    """Every reserved word of the language (for 'did you mean' hints)."""
    words = set()
    for t in condition_parser().terminals:
        if t.pattern.type == "str" and t.pattern.value.replace("_", "").isalpha():
            words.add(t.pattern.value)
    return frozenset(words)


def _describe_terminal(name: str) -> str:
    if name in TERMINAL_NAMES:
        return TERMINAL_NAMES[name]
    for t in condition_parser().terminals:
        if t.name == name and t.pattern.type == "str":
            return f"`{t.pattern.value}`"
    return name.lower()


def _expected_words(expected: set[str]) -> set[str]:
    words = set()
    for name in expected:
        for t in condition_parser().terminals:
            if t.name == name and t.pattern.type == "str":
                words.add(t.pattern.value)
    return words


def _describe_expected(expected: set[str]) -> str:
    words = _expected_words(expected)
    if words and words <= WINDOW_STARTS | {"excluding", "coded", "on", "morning", "afternoon", "sessions"} and words & WINDOW_STARTS:
        return "a window such as `this academic year` or `in the last 10 school weeks`"
    if {"attendance", "("} <= words:
        return "a value or a measure, such as `85%`, a parameter name or `attendance this term`"
    described = sorted({_describe_terminal(n) for n in expected})
    if len(described) > 8:
        return ", ".join(described[:8]) + ", …"
    return ", ".join(described)


def _plain_locate(text: str) -> Locate:
    def locate(offset: int) -> tuple[int, int]:
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return line, col

    return locate


class _ToAst(Transformer):
    """Lark tree -> engine.ast nodes. Spans are set from Lark's propagated positions."""

    def __init__(self, path: str, locate: Locate):
        super().__init__()
        self.path = path
        self.locate = locate

    def _span_of(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        line, col = self.locate(meta.start_pos)
        end_line, end_col = self.locate(meta.end_pos)
        return Span(self.path, line, col, end_line, end_col)

    def _token_span(self, tok: Token) -> Span:
        line, col = self.locate(tok.start_pos)
        end_line, end_col = self.locate(tok.end_pos)
        return Span(self.path, line, col, end_line, end_col)

    # literals -------------------------------------------------------------------------
    @v_args(meta=True)
    def number(self, meta, children):
        return ast.Number(self._span_of(meta), Decimal(str(children[0])))

    @v_args(meta=True)
    def percent(self, meta, children):
        return ast.Percent(self._span_of(meta), Decimal(str(children[0])[:-1]))

    @v_args(meta=True)
    def date(self, meta, children):
        tok = children[0]
        try:
            value = date.fromisoformat(str(tok))
        except ValueError:
            raise _SyntaxProblem(error(
                "syntax.bad-date", f"`{tok}` is not a calendar date", self._token_span(tok),
                expected="a date written YYYY-MM-DD that exists"))
        return ast.DateLiteral(self._span_of(meta), value)

    @v_args(meta=True)
    def text(self, meta, children):
        return ast.Text(self._span_of(meta), str(children[0])[1:-1])

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Boolean(self._span_of(meta), True)

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Boolean(self._span_of(meta), False)

    @v_args(meta=True)
    def parameter(self, meta, children):
        name = str(children[0])
        if name in keywords():
            raise _SyntaxProblem(error(
                "syntax", f"unexpected keyword `{name}` in condition", self._token_span(children[0]),
                expected="a value, a parameter name or a measure",
                hint=f"`{name}` is a reserved word of the condition language and cannot name a parameter: "
                     f"rename the parameter (e.g. `{name}_threshold`)"))
        return ast.Parameter(self._span_of(meta), name)

    @v_args(meta=True)
    def attribute(self, meta, children):
        return ast.Attribute(self._span_of(meta), str(children[0]))

    @v_args(meta=True)
    def value_set(self, meta, children):
        return ast.ValueSet(self._span_of(meta), tuple(c for c in children if c is not None))

    # operators ------------------------------------------------------------------------
    def _boolop(self, op, meta, children):
        operands = []
        for c in children:
            if isinstance(c, ast.BoolOp) and c.op == op:
                operands.extend(c.operands)
            else:
                operands.append(c)
        return ast.BoolOp(self._span_of(meta), op, tuple(operands))

    @v_args(meta=True)
    def or_expr(self, meta, children):
        return self._boolop("or", meta, children)

    @v_args(meta=True)
    def and_expr(self, meta, children):
        return self._boolop("and", meta, children)

    @v_args(meta=True)
    def not_(self, meta, children):
        return ast.Not(self._span_of(meta), children[0])

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        return ast.Compare(self._span_of(meta), op, left, right)

    @v_args(meta=True)
    def or_more(self, meta, children):
        # "10 or more unauthorised sessions ..." reads as: sessions >= 10.
        amount, measure = children
        return ast.Compare(self._span_of(meta), ">=", measure, amount)

    @v_args(meta=True)
    def or_fewer(self, meta, children):
        amount, measure = children
        return ast.Compare(self._span_of(meta), "<=", measure, amount)

    @v_args(meta=True)
    def member(self, meta, children):
        return ast.Member(self._span_of(meta), children[0], children[1], False)

    @v_args(meta=True)
    def not_member(self, meta, children):
        return ast.Member(self._span_of(meta), children[0], children[1], True)

    def lt(self, _):
        return "<"

    def le(self, _):
        return "<="

    def gt(self, _):
        return ">"

    def ge(self, _):
        return ">="

    def eq(self, _):
        return "="

    def ne(self, _):
        return "!="

    @v_args(meta=True)
    def arith(self, meta, children):
        left, op, right = children
        return ast.Arith(self._span_of(meta), str(op), left, right)

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Negate(self._span_of(meta), children[0])

    # measures -------------------------------------------------------------------------
    def _filter(self, meta, category, half, codes, weekdays):
        # With a code filter, the filter's span is `coded {...}` itself, so a bad code is
        # pointed at there rather than at the start of the measure.
        span = self._span_of(meta)
        if isinstance(codes, _CodeFilter):
            span, codes = codes.span or span, codes.codes
        return ast.SessionFilter(span, category, codes, weekdays, half)

    @v_args(meta=True)
    def session_count(self, meta, children):
        category, half, codes, weekdays, window = children
        return ast.SessionCount(self._span_of(meta), self._filter(meta, category, half, codes, weekdays), window)

    def cat_present(self, _):
        return "present"

    def cat_attending(self, _):
        return "attending"

    def cat_approved_activity(self, _):
        return "approved_activity"

    def cat_authorised(self, _):
        return "authorised"

    def cat_unauthorised(self, _):
        return "unauthorised"

    def cat_absent(self, _):
        return "absent"

    def cat_possible(self, _):
        return "possible"

    def cat_not_possible(self, _):
        return "not_possible"

    def am(self, _):
        return "AM"

    def pm(self, _):
        return "PM"

    @v_args(meta=True)
    def code_filter(self, meta, children):
        return _CodeFilter(children[0], self._span_of(meta))

    @v_args(meta=True)
    def code_param(self, meta, children):
        tok = children[0]
        return _CodeFilter(ast.Parameter(self._token_span(tok), str(tok)), self._span_of(meta))

    def code_set(self, children):
        return tuple(str(c) for c in children)

    def weekday_filter(self, children):
        names = []
        for c in children:
            day = str(c)
            day = day[:-1] if day.endswith("s") else day
            names.append(day)
        return tuple(names)

    @v_args(meta=True)
    def attendance(self, meta, children):
        return ast.Rate(self._span_of(meta), "attendance", children[0])

    @v_args(meta=True)
    def absence(self, meta, children):
        return ast.Rate(self._span_of(meta), "absence", children[0])

    @v_args(meta=True)
    def authorised_absence(self, meta, children):
        return ast.Rate(self._span_of(meta), "authorised_absence", children[0])

    @v_args(meta=True)
    def unauthorised_absence(self, meta, children):
        return ast.Rate(self._span_of(meta), "unauthorised_absence", children[0])

    @v_args(meta=True)
    def run(self, meta, children):
        which, category, unit, codes, window = children
        return ast.Run(self._span_of(meta), which, unit, self._filter(meta, category, None, codes, None), window)

    def longest(self, _):
        return "longest"

    def current(self, _):
        return "current"

    def run_sessions(self, _):
        return "sessions"

    def run_school_days(self, _):
        return "school_days"

    @v_args(meta=True)
    def minutes_late(self, meta, children):
        return ast.MinutesLate(self._span_of(meta), children[0])

    @v_args(meta=True)
    def action_count(self, meta, children):
        return ast.ActionCount(self._span_of(meta), children[0], children[1])

    @v_args(meta=True)
    def time_since_action(self, meta, children):
        return ast.TimeSinceAction(self._span_of(meta), children[0], children[1])

    # A selector's span is the rule id or verb itself: that is what the checker resolves.
    def by_rule(self, children):
        return ast.ActionSelector(self._token_span(children[0]), rule=str(children[0]))

    def by_verb(self, children):
        return ast.ActionSelector(self._token_span(children[0]), verb=str(children[0]))

    def school_days(self, _):
        return "school_days"

    def school_weeks(self, _):
        return "school_weeks"

    def days(self, _):
        return "days"

    def weeks(self, _):
        return "weeks"

    def years(self, _):
        return "years"

    @v_args(meta=True)
    def rank(self, meta, children):
        return ast.Rank(self._span_of(meta), children[0])

    # windows --------------------------------------------------------------------------
    @v_args(meta=True)
    def window(self, meta, children):
        base, exclusion = children
        return ast.Window(self._span_of(meta), base.kind, base.size, base.unit, base.since, exclusion)

    @v_args(meta=True)
    def last(self, meta, children):
        size, unit = children[-2], children[-1]
        return ast.Window(self._span_of(meta), "last", size=size, unit=unit)

    def _simple(kind):
        @v_args(meta=True)
        def build(self, meta, children):
            return ast.Window(self._span_of(meta), kind)

        return build

    this_school_week = _simple("this_school_week")
    this_half_term = _simple("this_half_term")
    this_term = _simple("this_term")
    previous_term = _simple("previous_term")
    this_and_previous_term = _simple("this_and_previous_term")
    this_academic_year = _simple("this_academic_year")
    previous_academic_year = _simple("previous_academic_year")
    ever = _simple("ever")

    @v_args(meta=True)
    def since(self, meta, children):
        return ast.Window(self._span_of(meta), "since", since=children[0])

    @v_args(meta=True)
    def exclude_before(self, meta, children):
        return ast.Exclusion(self._span_of(meta), "before", None, children[0])

    @v_args(meta=True)
    def exclude_between(self, meta, children):
        return ast.Exclusion(self._span_of(meta), "between", children[0], children[1])

    def start(self, children):
        return children[0]


@dataclass(frozen=True)
class _CodeFilter:
    """`coded {...}` / `coded name` while the tree is built: the codes and where they were written."""

    codes: tuple[str, ...] | ast.Parameter
    span: Span | None


@lru_cache(maxsize=8192)
def _parse_tree(text: str) -> Tree:
    """Lark's parse tree of a condition. Cached: a base policy's conditions are parsed again for
    every policy that extends it, and policies copied from one template share most wording. The
    tree is only read (the transformer builds new nodes), so sharing it is safe."""
    return condition_parser().parse(text)


class _SyntaxProblem(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _near_keyword(word: str) -> str | None:
    return did_you_mean(word, keywords())


def parse_condition(text: str, path: str = "<condition>", locate: Locate | None = None) -> tuple[ast.Expr | None, list[Diagnostic]]:
    """Parse one condition. Returns (tree, []) or (None, [syntax diagnostic])."""
    locate = locate or _plain_locate(text)
    if not text.strip():
        line, col = locate(0)
        return None, [error("syntax.empty", "the condition is empty", Span(path, line, col),
                            hint="write a condition such as `attendance this academic year below 90%`")]
    try:
        tree = _parse_tree(text)
    except UnexpectedInput as exc:
        return None, [_syntax_diagnostic(exc, text, path, locate)]
    try:
        return _ToAst(path, locate).transform(tree), []
    except VisitError as exc:
        if isinstance(exc.orig_exc, _SyntaxProblem):
            return None, [exc.orig_exc.diagnostic]
        raise


def _previous_word(text: str, offset: int) -> tuple[str, int] | None:
    """The word just before offset (for hints about misspelt keywords)."""
    i = offset
    while i > 0 and text[i - 1].isspace():
        i -= 1
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
        j -= 1
    return (text[j:i], j) if j < i else None


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str, locate: Locate) -> Diagnostic:
    offset = getattr(exc, "pos_in_stream", None)
    if offset is None:
        offset = len(text.rstrip())
    hint = None
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
        offset = len(text.rstrip())
        found = None
        expected = _describe_expected(set(exc.expected))
        width = 1
    elif isinstance(exc, UnexpectedToken):
        found = f"`{exc.token}`"
        expected = _describe_expected(set(exc.expected))
        width = max(1, len(str(exc.token)))
        word = str(exc.token)
        if word not in keywords() and (exc.token.type in ("NAME", "RULE_ID") or word.isalpha()):
            hint = did_you_mean(word, _expected_words(set(exc.expected))) or _near_keyword(word)
    elif isinstance(exc, UnexpectedCharacters):
        found = f"`{text[offset]}`"
        expected = _describe_expected(set(exc.allowed or ()))
        width = 1
        word_end = offset
        while word_end < len(text) and (text[word_end].isalnum() or text[word_end] in "_-"):
            word_end += 1
        if word_end > offset + 1:
            found = f"`{text[offset:word_end]}`"
            width = word_end - offset
            if text[offset:word_end] not in keywords():
                word = text[offset:word_end]
                hint = did_you_mean(word, _expected_words(set(exc.allowed or ()))) or _near_keyword(word)
    else:  # UnexpectedEOF
        found = None
        expected = _describe_expected(set(getattr(exc, "expected", ()) or ()))
        width = 1
    # `this year`, `previous week`: a window phrase with a word missing or wrong.
    if found is not None and found.strip("`").isalpha():
        prev = _previous_word(text, offset)
        if prev and prev[0] in ("this", "previous"):
            word = found.strip("`")
            phrases = [p for p in WINDOW_PHRASES if p.startswith(prev[0] + " ") and word in p.split()]
            if phrases:
                hint = f"did you mean `{phrases[0]}`?"
            else:
                hint = "the windows starting with `" + prev[0] + "` are " + ", ".join(
                    f"`{p}`" for p in WINDOW_PHRASES if p.startswith(prev[0] + " "))
    # A misspelt keyword is often read as a parameter name, and the error only shows on the
    # next word: point the hint at the word before when it is a near-miss keyword.
    if hint is None:
        prev = _previous_word(text, offset)
        if prev and prev[0] not in keywords():
            near = _near_keyword(prev[0])
            if near:
                hint = f"`{prev[0]}` is not a keyword here; {near}"
    line, col = locate(offset)
    end_line, end_col = locate(min(offset + width, len(text)))
    if end_line != line:
        end_line, end_col = line, col + 1
    message = f"unexpected {found} in condition" if found else "the condition ends too early"
    return error("syntax", message, Span(path, line, col, end_line, end_col), hint=hint, expected=expected)
