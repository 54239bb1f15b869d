"""Condition trees in plain English, for the policy a school publishes (`rollbook render`).

One function per AST node kind turns a checked condition into words: parameters become their
values, code sets their symbols (with the meaning from the code table when there is one code),
windows the words of the condition language. Nothing here reads the condition's text, so the
published sentence always says what the engine runs.

A condition becomes a `Phrase`: a sentence fragment, or a `Clause` joining several (all of them,
any of them, none of them...) that the renderer lays out as a list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Union

from . import ast
from .check import PUPIL_SCOPES
from .codes import national_codes
from .format_condition import _UNIT_WORDS, _WINDOW_WORDS, _number

# ---- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    """Conditions joined: `all` / `any` of them true, `none` of them, or `not_all` of them."""

    joiner: str
    items: tuple["Phrase", ...]


Phrase = Union[str, Clause]

CLAUSE_LEADS = {"all": "all of these are true", "any": "any of these is true",
                "none": "none of these is true", "not_all": "not all of these are true"}
_INLINE_JOIN = {"all": "and", "any": "or", "none": "or", "not_all": "and"}


def inline(phrase: Phrase) -> str:
    """A phrase as one sentence fragment (nested clauses in words, for lists inside lists)."""
    if isinstance(phrase, str):
        return phrase
    parts = [inline(p) if isinstance(p, str) else f"({inline(p)})" for p in phrase.items]
    text = join_words(parts, _INLINE_JOIN[phrase.joiner])
    if phrase.joiner == "all":
        return ("both " if len(parts) == 2 else "all of: ") + text
    if phrase.joiner == "any":
        return ("either " if len(parts) == 2 else "any of: ") + text
    if phrase.joiner == "none":
        return "none of: " + text
    return "not all of: " + text


# ---- words -----------------------------------------------------------------------------------

def join_words(items: list[str], last: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def date_words(day: date) -> str:
    return f"{day.day} {day.strftime('%B')} {day.year}"


def number_words(value: Decimal) -> str:
    return _number(value)


# Sessions of each category of the code table (engine/codes.py CATEGORIES), as a plural noun.
SESSION_NOUNS = {
    "present": ("session present at school", "sessions present at school"),
    "approved_activity": ("session at an approved educational activity", "sessions at an approved educational activity"),
    "authorised": ("session of authorised absence", "sessions of authorised absence"),
    "unauthorised": ("session of unauthorised absence", "sessions of unauthorised absence"),
    "not_possible": ("session that is not a possible session", "sessions that are not possible sessions"),
    "attending": ("session attended", "sessions attended"),
    "absent": ("session of absence", "sessions of absence"),
    "possible": ("possible session", "possible sessions"),
}
# Rates (engine/ast.py RATE_KINDS).
RATE_WORDS = {"attendance": "attendance", "absence": "absence", "authorised_absence": "authorised absence",
              "unauthorised_absence": "unauthorised absence"}
# Who a rule is about (its scope).
SUBJECTS = {"pupil": "the pupil", "leaver": "the pupil", "class": "the class", "year_group": "the year group",
            "school": "the school"}
GROUP_PLURALS = {"class": "classes", "year_group": "year groups", "school": "schools"}
# Built-in pupil attributes (engine/attributes.py) as they read in a sentence. Attributes a
# policy declares read as their name; `rollbook render` lists every attribute with its description.
ATTRIBUTE_NOUNS = {
    "year_group": "year group", "reg_group": "registration group (class)", "date_of_birth": "date of birth",
    "joined_on": "first day on roll", "left_on": "leaving date (last day on roll)", "sen": "SEN provision",
    "ehcp": "education, health and care plan", "fsm": "free school meals eligibility", "cin": "child in need status",
    "social_worker": "social worker", "lac": "looked-after status",
}
# A boolean built-in attribute that is true, as a predicate of "the pupil".
ATTRIBUTE_TRUE = {
    "ehcp": ("has an education, health and care plan", "does not have an education, health and care plan"),
    "fsm": ("is eligible for free school meals", "is not eligible for free school meals"),
    "cin": ("is a child in need", "is not a child in need"),
    "social_worker": ("has a social worker", "does not have a social worker"),
    "lac": ("is a looked-after child", "is not a looked-after child"),
}
# Action verbs as things counted (`actions with verb V`): singular, plural.
VERB_NOUNS = {
    "notify": ("notification", "notifications"), "send_letter": ("letter", "letters"),
    "hold_meeting": ("meeting", "meetings"), "request_evidence": ("request for evidence", "requests for evidence"),
    "inform_local_authority": ("report to the local authority", "reports to the local authority"),
    "refer_local_authority": ("referral to the local authority", "referrals to the local authority"),
    "consider_penalty_notice": ("penalty notice considered", "penalty notices considered"),
    "issue_notice_to_improve": ("notice to improve", "notices to improve"),
    "offer_support": ("offer of support", "offers of support"), "award": ("award", "awards"),
    "flag": ("flag", "flags"),
}
_INVERSE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "=": "!=", "!=": "="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}
# Comparison words by what is compared.
_AMOUNT = {"<": "less than", "<=": "at most", ">": "more than", ">=": "at least", "=": "exactly", "!=": "not"}
_RATE_OPS = {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above", "=": "exactly", "!=": "not"}
_DATE_OPS = {"<": "before", "<=": "on or before", ">": "after", ">=": "on or after", "=": "on", "!=": "not on"}
_GENERIC = {"<": "less than", "<=": "at most", ">": "more than", ">=": "at least", "=": "equal to", "!=": "not equal to"}
_ARITH = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_EVERY_CHECK = "at every check"


def weekday_words(days: tuple[str, ...]) -> str:
    return join_words([d if d.endswith("s") else d + "s" for d in days], "or")


class Describer:
    """Puts the conditions of one rule of a checked policy into words."""

    def __init__(self, policy, rule):
        self.policy = policy
        self.rule = rule
        self.subject = SUBJECTS[rule.scope]
        self.catalogue = national_codes()

    # -- helpers -------------------------------------------------------------------------------
    def possessive(self) -> str:
        return self.subject + "’s"

    def rule_title(self, rule_id: str) -> str:
        if rule_id == self.rule.id:
            return "this rule"
        titles = {r.id: r.title for r in self.policy.rules}
        return f"“{titles.get(rule_id, rule_id)}”"

    def param_value(self, node: ast.Parameter):
        return self.policy.parameters[node.name]

    def constant(self, node) -> tuple[Decimal, str | None] | None:
        """(value, unit) of a number, percentage or numeric parameter; None for anything else."""
        if isinstance(node, ast.Number):
            return node.value, None
        if isinstance(node, ast.Percent):
            return node.value, "percent"
        if isinstance(node, ast.Parameter):
            p = self.param_value(node)
            if isinstance(p.value, Decimal):
                return p.value, p.unit
        if isinstance(node, ast.Negate):
            inner = self.constant(node.operand)
            return (-inner[0], inner[1]) if inner else None
        return None

    def amount(self, node) -> str:
        """A constant as words: `85%`, `10`, `12 school weeks`."""
        value, unit = self.constant(node)
        if unit == "percent":
            return number_words(value) + "%"
        return number_words(value)

    def codes(self, codes) -> tuple[str, ...]:
        if isinstance(codes, ast.Parameter):
            return tuple(self.param_value(codes).value)
        return tuple(codes)

    def codes_words(self, symbols: tuple[str, ...]) -> str:
        if len(symbols) == 1 and symbols[0] in self.catalogue:
            meaning = self.catalogue.codes[symbols[0]].meaning
            return f"coded {symbols[0]} ({meaning[0].lower() + meaning[1:]})"
        return "coded " + join_words(list(symbols), "or")

    def attribute_noun(self, name: str) -> str:
        return ATTRIBUTE_NOUNS.get(name, name.replace("_", " "))

    # -- windows and filters -------------------------------------------------------------------
    def window(self, w: ast.Window, noun_is_day: bool = False) -> str:
        if w.kind == "last":
            size = self.constant(w.size)[0]
            unit = _UNIT_WORDS[w.unit]
            if size == 1:
                text = {"school_days": "on the latest school day", "days": "today",
                        "school_weeks": "in the latest school week"}.get(w.unit, f"in the last {unit[:-1]}")
            else:
                text = f"in the last {number_words(size)} {unit}"
        elif w.kind == "since":
            text = f"since {self.date_value(w.since)}"
        elif w.kind == "ever":
            text = "at any time"
        elif w.kind in ("previous_term", "previous_academic_year"):
            text = "in the " + _WINDOW_WORDS[w.kind]
        elif w.kind == "this_and_previous_term":
            text = "this term and the previous term"
        else:
            text = _WINDOW_WORDS[w.kind]
        if w.exclusion is not None:
            text += " " + self.exclusion(w.exclusion)
        return text

    def exclusion(self, e: ast.Exclusion) -> str:
        if e.kind == "before":
            text = f"(leaving out the days before {self.date_value(e.end)}"
            dates = [e.end]
        else:
            text = f"(leaving out {self.date_value(e.start)} to {self.date_value(e.end)}"
            dates = [e.start, e.end]
        if any(isinstance(d, ast.Attribute) for d in dates):
            text += ", when recorded"
        return text + ")"

    def date_value(self, node) -> str:
        if isinstance(node, ast.DateLiteral):
            return date_words(node.value)
        if isinstance(node, ast.Parameter):
            return date_words(self.param_value(node).value)
        if isinstance(node, ast.Attribute):
            return f"the pupil’s {self.attribute_noun(node.name)}"
        return self.value(node)

    def sessions(self, f: ast.SessionFilter, plural: bool = True, noun: str = "sessions") -> str:
        """`morning sessions of unauthorised absence coded G or O on Mondays`."""
        if f.category:
            words = SESSION_NOUNS[f.category][1 if plural else 0]
        else:
            words = noun if plural else noun[:-1]
        if f.half:
            words = ("morning " if f.half == "AM" else "afternoon ") + words
        if f.codes is not None:
            words += " " + self.codes_words(self.codes(f.codes))
        if f.weekdays:
            words += " on " + weekday_words(f.weekdays)
        return words

    # -- values (noun phrases) -----------------------------------------------------------------
    def value(self, node) -> str:
        """A noun phrase for a value: `the pupil’s attendance this term`, `85%`."""
        return getattr(self, "_value_" + type(node).__name__)(node)

    def _value_Number(self, node):
        return number_words(node.value)

    def _value_Percent(self, node):
        return number_words(node.value) + "%"

    def _value_DateLiteral(self, node):
        return date_words(node.value)

    def _value_Text(self, node):
        return f"“{node.value}”"

    def _value_Boolean(self, node):
        return "yes" if node.value else "no"

    def _value_Parameter(self, node):
        p = self.param_value(node)
        if p.unit == "date":
            return date_words(p.value)
        if p.unit == "codes":
            return join_words(list(p.value), "or")
        return self.amount(node)

    def _value_Attribute(self, node):
        return f"the pupil’s {self.attribute_noun(node.name)}"

    def _value_ValueSet(self, node):
        return join_words([self.value(i) for i in node.items], "or")

    def _value_Arith(self, node):
        left, right = self.value(node.left), self.arith_operand(node.right, node)
        if isinstance(node.left, ast.Arith):
            left = f"({left})"
        if isinstance(node.right, ast.Arith):
            right = f"({right})"
        return f"{left} {_ARITH[node.op]} {right}"

    def arith_operand(self, node, parent: ast.Arith) -> str:
        # A percentage added to or taken from a rate is a difference in percentage points.
        c = self.constant(node)
        if c is not None and c[1] == "percent" and parent.op in "+-":
            return f"{number_words(c[0])} percentage point{'' if c[0] == 1 else 's'}"
        return self.value(node)

    def _value_Negate(self, node):
        return "minus " + self.value(node.operand)

    def _value_SessionCount(self, node):
        return f"the number of {self.sessions(node.filter)} {self.window(node.window)}"

    def _value_Rate(self, node):
        return f"{self.possessive()} {RATE_WORDS[node.kind]} {self.window(node.window)}"

    def run_words(self, node: ast.Run) -> str:
        noun = "sessions" if node.unit == "sessions" else "school days"
        window = "" if node.window.kind == "ever" else " " + self.window(node.window)
        which = "current" if node.which == "current" else "longest"
        return f"{self.possessive()} {which} run of consecutive {self.sessions(node.filter, noun=noun)}{window}"

    def _value_Run(self, node):
        return f"the length of {self.run_words(node)}"

    def _value_MinutesLate(self, node):
        return f"{self.possessive()} total minutes late {self.window(node.window)}"

    def selector_count_words(self, s: ast.ActionSelector) -> str:
        if s.rule:
            return f"the number of times {self.rule_title(s.rule)} has applied to {self.subject}"
        return f"the number of {VERB_NOUNS[s.verb][1]} for {self.subject}"

    def _value_ActionCount(self, node):
        return f"{self.selector_count_words(node.selector)} {self.window(node.window)}"

    def _value_TimeSinceAction(self, node):
        return f"the number of {_UNIT_WORDS[node.unit]} since {self.last_action(node.selector)}"

    def last_action(self, s: ast.ActionSelector) -> str:
        if s.rule:
            return f"{self.rule_title(s.rule)} last applied to {self.subject}"
        return f"the last {VERB_NOUNS[s.verb][0]} for {self.subject}"

    def _value_Rank(self, node):
        return f"{self.possessive()} place among the {self.group_plural()} of its school by {self.value_without_owner(node.measure)}"

    def group_plural(self) -> str:
        return GROUP_PLURALS.get(self.rule.scope, "groups")

    def value_without_owner(self, node) -> str:
        text = self.value(node)
        prefix = self.possessive() + " "
        return text[len(prefix):] if text.startswith(prefix) else text

    # -- conditions (phrases) ------------------------------------------------------------------
    def condition(self, node) -> Phrase:
        """A phrase saying when the condition is true."""
        return getattr(self, "_cond_" + type(node).__name__)(node)

    def _cond_BoolOp(self, node):
        joiner = "all" if node.op == "and" else "any"
        items: list[Phrase] = []
        for operand in node.operands:
            phrase = self.condition(operand)
            if isinstance(phrase, Clause) and phrase.joiner == joiner:
                items.extend(phrase.items)
            else:
                items.append(phrase)
        return Clause(joiner, tuple(items))

    def _cond_Not(self, node):
        operand = node.operand
        if isinstance(operand, ast.Compare):
            return self.condition(ast.Compare(operand.span, _INVERSE[operand.op], operand.left, operand.right))
        if isinstance(operand, ast.Member):
            return self.condition(ast.Member(operand.span, operand.item, operand.values, not operand.negated))
        if isinstance(operand, ast.Not):
            return self.condition(operand.operand)
        if isinstance(operand, ast.Attribute):
            return self.boolean_attribute(operand.name, False)
        if isinstance(operand, ast.Boolean):
            return self.condition(ast.Boolean(operand.span, not operand.value))
        if isinstance(operand, ast.BoolOp):
            # De Morgan, as the engine compiles `not` (negation normal form): the published words
            # then mean the same as the executed condition when a value is undefined, too.
            flipped = "or" if operand.op == "and" else "and"
            return self.condition(ast.BoolOp(operand.span, flipped, tuple(ast.Not(o.span, o) for o in operand.operands)))
        return Clause("none", (self.condition(operand),))

    def _cond_Boolean(self, node):
        return _EVERY_CHECK if node.value else "never"

    def _cond_Attribute(self, node):
        return self.boolean_attribute(node.name, True)

    def boolean_attribute(self, name: str, value: bool) -> str:
        if name in ATTRIBUTE_TRUE:
            return f"{self.subject} {ATTRIBUTE_TRUE[name][0 if value else 1]}"
        return f"{self.possessive()} record {'says' if value else 'does not say'} “{self.attribute_noun(name)}”"

    def _cond_Member(self, node):
        values = [self.value(v) for v in node.values.items]
        verb = "is not" if node.negated else "is"
        if len(values) == 1:
            return f"{self.value(node.item)} {verb} {values[0]}"
        return f"{self.value(node.item)} {verb} one of {join_words(values, 'or')}"

    def _cond_Compare(self, node):
        left, op, right = node.left, node.op, node.right
        if self.constant(left) is not None and self.constant(right) is None:
            left, op, right = right, _FLIP[op], left
        c = self.constant(right)
        if c is not None:
            method = getattr(self, "_against_" + type(left).__name__, None)
            if method is not None:
                text = method(left, op, right)
                if text is not None:
                    return text
        if isinstance(left, ast.Attribute) and isinstance(right, ast.Boolean):
            value = right.value if op == "=" else not right.value
            return self.boolean_attribute(left.name, value)
        if isinstance(left, ast.Attribute) and self.policy.attributes.get(left.name) == "date":
            if isinstance(right, ast.DateLiteral) and right.value.year <= 1900 and op in (">=", ">"):
                return (f"{self.value(left)} is recorded (any date {_DATE_OPS[op]} {date_words(right.value)})")
            return f"{self.value(left)} is {_DATE_OPS[op]} {self.date_value(right)}"
        if isinstance(left, (ast.Attribute, ast.Text)) and op in ("=", "!="):
            return f"{self.value(left)} {'is' if op == '=' else 'is not'} {self.value(right)}"
        words = _RATE_OPS if self.is_rate(left) or self.is_rate(right) else _GENERIC
        return f"{self.value(left)} is {words[op]} {self.value(right)}"

    def is_rate(self, node) -> bool:
        return isinstance(node, ast.Rate) or (isinstance(node, ast.Arith) and (self.is_rate(node.left) or self.is_rate(node.right)))

    # measure OP constant, by measure
    def quantity(self, op: str, value: Decimal) -> tuple[str, bool]:
        """(`10 or more`, plural?) for a count compared with a number."""
        n = number_words(value)
        if (op == ">=" and value == 1) or (op == ">" and value == 0):
            return "at least one", False
        if op == "=" and value == 0:
            return "no", True
        if (op == "<" and value == 1) or (op == "<=" and value == 0):
            return "no", True
        plural = value != 1
        return {">=": f"{n} or more", ">": f"more than {n}", "<=": f"{n} or fewer", "<": f"fewer than {n}",
                "=": f"exactly {n}", "!=": f"a number other than {n} of"}[op], plural or op in (">=", ">", "!=")

    def _against_SessionCount(self, node, op, right):
        value = self.constant(right)[0]
        quantity, plural = self.quantity(op, value)
        verb = "has" if self.rule.scope in PUPIL_SCOPES else "has, over all its pupils,"
        return f"{self.subject} {verb} {quantity} {self.sessions(node.filter, plural)} {self.window(node.window)}"

    def _against_Rate(self, node, op, right):
        together = "" if self.rule.scope in PUPIL_SCOPES else " (all its pupils’ sessions together)"
        return f"{self._value_Rate(node)}{together} is {_RATE_OPS[op]} {self.amount(right)}"

    def _against_Run(self, node, op, right):
        unit = "sessions" if node.unit == "sessions" else "school days"
        value = self.constant(right)[0]
        if value == 1:
            unit = unit[:-1]
        return f"{self.run_words(node)} is {_AMOUNT[op]} {number_words(value)} {unit}"

    def _against_MinutesLate(self, node, op, right):
        return f"{self._value_MinutesLate(node)} {'is' if op != '!=' else 'is not'} {_AMOUNT[op] + ' ' if op != '!=' else ''}{self.amount(right)}"

    def _against_ActionCount(self, node, op, right):
        value = self.constant(right)[0]
        s = node.selector
        window = self.window(node.window)
        if s.rule:
            who = self.rule_title(s.rule)
            if (op == "=" and value == 0) or (op == "<" and value == 1) or (op == "<=" and value == 0):
                return f"{who} has not applied to {self.subject} {window}"
            if (op == ">=" and value == 1) or (op == ">" and value == 0):
                return f"{who} has applied to {self.subject} at least once {window}"
            times = {">=": f"{number_words(value)} or more times", ">": f"more than {number_words(value)} times",
                     "<=": f"at most {number_words(value)} times", "<": f"fewer than {number_words(value)} times",
                     "=": f"exactly {number_words(value)} times", "!=": f"a number of times other than {number_words(value)}"}[op]
            return f"{who} has applied to {self.subject} {times} {window}"
        quantity, plural = self.quantity(op, value)
        return f"{self.subject} has had {quantity} {VERB_NOUNS[s.verb][1 if plural else 0]} {window}"

    def _against_TimeSinceAction(self, node, op, right):
        value = self.constant(right)[0]
        unit = _UNIT_WORDS[node.unit]
        if value == 1:
            unit = unit[:-1]
        amount = f"{_AMOUNT[op]} {number_words(value)} {unit}"
        never = " (or it never has)" if op in (">", ">=", "!=") else ""
        verb = "have" if value != 1 or op in (">",) else "has"
        return f"{amount} {verb} passed since {self.last_action(node.selector)}{never}"

    def _against_Rank(self, node, op, right):
        value = self.constant(right)[0]
        measure = self.value_without_owner(node.measure)
        groups = f"the {self.group_plural()} of its school"
        if (op == "=" and value == 1) or (op == "<=" and value == 1) or (op == "<" and value == 2):
            return f"{self.subject} has the highest {measure} of {groups} (a tie for first place counts)"
        if op in ("<=", "<"):
            top = value if op == "<=" else value - 1
            return f"{self.subject} is among the {number_words(top)} highest by {measure} of {groups} (ties share a place)"
        return f"{self.possessive()} place by {measure} among {groups} (1 is the highest) is {_AMOUNT[op]} {number_words(value)}"


def describe_condition(policy, rule, node=None) -> Phrase:
    """The condition of `rule` (or another tree, read as if in that rule) as a phrase."""
    return Describer(policy, rule).condition(rule.condition if node is None else node)
