"""`rollbook render`: a checked policy as plain English a school can publish (Markdown or HTML).

    CheckedPolicy --build_document--> PolicyDocument --to_markdown / to_html--> text

Everything is generated from the checked policy (the rules the engine runs, inherited ones
included), so the published words cannot drift from the executed rules. Conditions are put into
words by engine/english.py; code meanings, categories and rates come from engine/codes.py, and
window meanings from engine/calendar.py. Both output formats are laid out from the same
document, and every piece of policy text is escaped for its format.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from . import ast
from .calendar import WINDOW_MEANINGS
from .check import PUPIL_SCOPES, Action, CheckedPolicy, Duration, Rule
from .codes import BASE_CATEGORIES, CATEGORIES, CATEGORY_MEANINGS, RATE_NUMERATORS, national_codes
from .english import (ATTRIBUTE_NOUNS, CLAUSE_LEADS, RATE_WORDS, SESSION_NOUNS, SUBJECTS, Clause, Describer, Phrase,
                      date_words, inline, join_words)

# ---- the document ----------------------------------------------------------------------------


@dataclass
class RuleText:
    """One rule in words."""

    id: str
    title: str
    origin: str  # the file that defines it
    inherited: bool
    advisory: bool
    when: Phrase
    actions: list[str]
    how_often: str
    after: str | None
    next_steps: list[str]
    limit: str | None
    limit_actions: list[str]
    source: str | None


@dataclass
class Section:
    key: str
    title: str
    intro: str
    rules: list[RuleText] = field(default_factory=list)


@dataclass
class Definition:
    term: str
    text: str


@dataclass
class PolicyDocument:
    title: str
    school: str | None
    policy_id: str
    version: str
    effective_from: str | None
    effective_to: str | None
    source_document: str | None
    files: list[str]
    sha256: str
    sections: list[Section]
    disabled: list[tuple[str, str]]
    codes: list[tuple[str, str, str]]  # symbol, meaning, counts as
    counting: list[Definition]
    periods: list[Definition]
    attributes: list[Definition]


# ---- sections: grouped by the step the rule leads to ------------------------------------------

# Stages of escalation, lightest first; a rule belongs to the stage of its heaviest action.
STAGES = (
    ("follow-up", "Following up absence and lateness",
     "What the school does when a pupil is absent, late or missing sessions: who is told, what is recorded and what "
     "parents are asked for."),
    ("support", "Meetings and support",
     "When the school meets parents and offers support to improve attendance."),
    ("local-authority", "Informing and referring to the local authority",
     "When the school tells the local authority about a pupil, or refers a case to it."),
    ("legal", "Penalty notices and legal intervention",
     "When a penalty notice, a notice to improve or another legal step is considered."),
    ("recognition", "Recognising good attendance",
     "Awards for good attendance."),
    ("monitoring", "Monitoring classes and the whole school",
     "Checks on the attendance of classes, year groups or the whole school."),
)
VERB_STAGES = {
    "notify": "follow-up", "flag": "follow-up", "request_evidence": "follow-up",
    "hold_meeting": "support", "send_letter": "support", "offer_support": "support",
    "inform_local_authority": "local-authority", "refer_local_authority": "local-authority",
    "consider_penalty_notice": "legal", "issue_notice_to_improve": "legal",
    "award": "recognition",
}
_STAGE_ORDER = [key for key, _, _ in STAGES]


def stage_of(rule: Rule) -> str:
    stages = {VERB_STAGES[a.verb] for a in rule.actions}
    if stages == {"recognition"}:
        return "recognition"
    if rule.scope not in PUPIL_SCOPES:
        return "monitoring"
    return max(stages - {"recognition"}, key=_STAGE_ORDER.index)


# ---- actions in words --------------------------------------------------------------------------

ROLES = {
    "parents": "the parents", "pupil": "the pupil", "attendance_lead": "the attendance lead",
    "attendance_officer": "the attendance officer", "headteacher": "the headteacher",
    "deputy_headteacher": "the deputy headteacher", "class_teacher": "the class teacher",
    "head_of_year": "the head of year", "pastoral_lead": "the pastoral lead",
    "dsl": "the designated safeguarding lead", "senco": "the special educational needs co-ordinator (SENCO)",
    "school_nurse": "the school nurse", "social_worker": "the pupil’s social worker",
    "virtual_school_head": "the virtual school head", "governors": "the governors", "trust": "the trust",
    "local_authority": "the local authority", "education_welfare_officer": "the education welfare officer",
}
MEETINGS = {"informal": "an informal meeting", "formal": "a formal meeting", "support": "a support meeting",
            "attendance_panel": "an attendance panel meeting", "multi_agency": "a multi-agency meeting"}
EVIDENCE = {"medical": "medical evidence of the illness", "appointment": "evidence of the appointment",
            "other": "more information about the absence"}
PERIODS = {"school_week": "school week", "half_term": "half term", "term": "term", "academic_year": "academic year"}


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _quoted(text: str) -> str:
    text = " ".join(str(text).split())
    return f"“{text}”"


def _sentence(text: str) -> str:
    text = _capital(text)
    if text.endswith(("!”", ".”", "?”")):
        return text
    return text if text.endswith((".", "?", "!")) else text + "."


def action_words(action: Action, advisory: bool, scope: str) -> str:
    """One action as a sentence: `The attendance officer is told: “...”`. Advisory: `may be`."""
    p = action.params_dict()
    be = "may be" if advisory else "is"
    are = "may be" if advisory else "are"
    subject = SUBJECTS[scope]
    v = action.verb
    if v == "notify":
        who = ROLES[p["role"]]
        text = f"{who} {are if p['role'] in ('parents', 'governors') else be} told"
        return _sentence(text + (f": {_quoted(p['message'])}" if p.get("message") else ""))
    if v == "send_letter":
        to = ROLES.get(p.get("to", "parents"), "the parents")
        return _sentence(f"the letter {_quoted(p['letter'])} {be} sent to {to}")
    if v == "hold_meeting":
        text = f"{MEETINGS[p['kind']]} {be} arranged"
        if p.get("with"):
            text += " with " + join_words([ROLES[r] for r in p["with"]])
        return _sentence(text)
    if v == "request_evidence":
        text = f"the parents {are} asked for {EVIDENCE[p['evidence']]}"
        if p.get("within_school_days"):
            n = p["within_school_days"]
            text += f", to be given within {n} school day{'' if n == 1 else 's'}"
        return _sentence(text)
    if v == "inform_local_authority":
        return _sentence(f"the local authority {be} informed: {_quoted(p['reason'])}")
    if v == "refer_local_authority":
        service = f" ({' '.join(str(p['service']).split())})" if p.get("service") else ""
        return _sentence(f"the case {be} referred to the local authority{service}: {_quoted(p['reason'])}")
    if v == "consider_penalty_notice":
        text = "a penalty notice " + ("may be" if advisory else "is") + " considered"
        return _sentence(text + (f": {_quoted(p['note'])}" if p.get("note") else ""))
    if v == "issue_notice_to_improve":
        text = f"a notice to improve {be} issued"
        return _sentence(text + (f": {_quoted(p['note'])}" if p.get("note") else ""))
    if v == "offer_support":
        return _sentence(f"support {be} offered: {_quoted(p['support'])}")
    if v == "award":
        return _sentence(f"{subject} {'may receive' if advisory else 'receives'} an award: {_quoted(p['award'])}")
    if v == "flag":
        flag = str(p["flag"]).replace("_", " ")
        owner = "the pupil’s record" if scope == "pupil" else f"{subject}’s record"
        text = f"{owner} {be} flagged {_quoted(flag)} for staff"
        return _sentence(text + (f": {_quoted(p['note'])}" if p.get("note") else ""))
    raise ValueError(f"no words for the action verb {v!r}")


def duration_words(d: Duration) -> str:
    unit = d.unit.replace("_", " ")
    return f"{d.amount} {unit[:-1] if d.amount == 1 else unit}"


def how_often(rule: Rule) -> str:
    each = {"school": "the school", "leaver": "each pupil who has left or has a leaving date recorded"}.get(
        rule.scope, f"each {SUBJECTS[rule.scope][4:]}")
    if rule.repeat.cooldown is not None:
        return (f"Again for the same {SUBJECTS[rule.scope][4:]} only when it last applied at least "
                f"{duration_words(rule.repeat.cooldown)} before.")
    if rule.repeat.once_per == "run":
        return (f"At most once per spell for {each}: again only for a spell (the current run in its condition) "
                "that starts after the day it last applied.")
    if rule.repeat.once_per and rule.repeat.once_per != "ever":
        return f"At most once per {PERIODS[rule.repeat.once_per]} for {each}."
    return f"Once only for {each}."


# ---- building the document ---------------------------------------------------------------------

def _origin(rule: Rule) -> str:
    return Path(rule.defined_in).name


# Who a leaver rule is about, as the first of its conditions (docs/semantics.md, On roll).
LEAVER_CONDITION = "the pupil has a leaving date recorded (the pupil has left, or is to leave)"


def _when(rule: Rule, condition: Phrase) -> Phrase:
    """The rule's condition in words; a leaver rule's starts with who it is about."""
    if rule.scope != "leaver":
        return condition
    items = condition.items if isinstance(condition, Clause) and condition.joiner == "all" else (condition,)
    return Clause("all", (LEAVER_CONDITION, *items))


def _rule_text(policy: CheckedPolicy, rule: Rule, escalations: dict[str, list[Rule]]) -> RuleText:
    describer = Describer(policy, rule)
    after = None
    if rule.after is not None:
        target = policy.rule(rule.after.rule)
        after = f"Only after {_quoted(target.title)} has applied to {SUBJECTS[rule.scope]}"
        after += f", at least {duration_words(rule.after.at_least)} earlier." if rule.after.at_least else "."
    next_steps = []
    for later in escalations.get(rule.id, []):
        wait = f" at least {duration_words(later.after.at_least)} later" if later.after.at_least else " later"
        next_steps.append(f"If the conditions of {_quoted(later.title)} are met{wait}, that rule follows.")
    limit = None
    limit_actions: list[str] = []
    if rule.limit is not None:
        others = [policy.rule(r).title for r in rule.limit.rules]
        counted = "this rule" + (" and " + join_words([_quoted(t) for t in others]) if others else "")
        times = "once" if rule.limit.max == 1 else ("twice" if rule.limit.max == 2 else f"{rule.limit.max} times")
        limit = (f"At most {times} in {duration_words(rule.limit.within)} for the same {SUBJECTS[rule.scope][4:]} "
                 f"(counting {counted}). When that limit is reached, instead:")
        limit_actions = [action_words(a, rule.advisory, rule.scope) for a in rule.limit.otherwise]
    return RuleText(
        id=rule.id, title=" ".join(rule.title.split()), origin=_origin(rule),
        inherited=rule.defined_in != policy.path, advisory=rule.advisory,
        when=_when(rule, describer.condition(rule.condition)),
        actions=[action_words(a, rule.advisory, rule.scope) for a in rule.actions],
        how_often=how_often(rule), after=after, next_steps=next_steps, limit=limit, limit_actions=limit_actions,
        source=" ".join(rule.source.split()) if rule.source else None,
    )


def _escalation_order(rules: list[Rule]) -> list[Rule]:
    """Policy order, except that a rule comes after the rule it escalates from."""
    placed: list[Rule] = []
    ids = {r.id for r in rules}
    pending = list(rules)
    while pending:
        for r in pending:
            if r.after is None or r.after.rule not in ids or any(p.id == r.after.rule for p in placed):
                placed.append(r)
                pending.remove(r)
                break
        else:  # a cycle cannot be checked in; keep policy order if one ever is
            placed.extend(pending)
            break
    return placed


def _used(policy: CheckedPolicy):
    """The categories, codes, rates, windows and attributes the policy's conditions use."""
    categories, codes, rates, windows, attributes = set(), set(), set(), set(), set()
    for rule in policy.rules:
        if rule.scope == "leaver":
            attributes.add("left_on")  # who a leaver rule is about
        for node in ast.walk(rule.condition):
            if isinstance(node, ast.SessionFilter):
                if node.category:
                    categories.add(node.category)
                if isinstance(node.codes, ast.Parameter):
                    codes.update(policy.parameters[node.codes.name].value)
                elif node.codes:
                    codes.update(node.codes)
            elif isinstance(node, ast.Rate):
                rates.add(node.kind)
                categories.update((RATE_NUMERATORS[node.kind], "possible"))
            elif isinstance(node, ast.Window):
                windows.add(node.unit if node.kind == "last" else node.kind)
            elif isinstance(node, ast.Attribute):
                attributes.add(node.name)
    return categories, codes, rates, windows, attributes


def _counts_as(category: str) -> str:
    return CATEGORY_MEANINGS[category]


def build_document(policy: CheckedPolicy) -> PolicyDocument:
    """The policy in words: sections of rules, the definitions it uses, and its version."""
    escalations: dict[str, list[Rule]] = {}
    for rule in policy.rules:
        if rule.after is not None:
            escalations.setdefault(rule.after.rule, []).append(rule)
    sections = {key: Section(key, title, intro) for key, title, intro in STAGES}
    by_stage: dict[str, list[Rule]] = {}
    for rule in policy.rules:
        by_stage.setdefault(stage_of(rule), []).append(rule)
    for key, rules in by_stage.items():
        sections[key].rules = [_rule_text(policy, r, escalations) for r in _escalation_order(rules)]

    catalogue = national_codes()
    categories, codes, rates, windows, attributes = _used(policy)
    # Every code in a category the policy counts, and every code it names.
    symbols = set(codes)
    for category in categories:
        if category != "possible":
            symbols |= catalogue.codes_in(category)
    code_rows = [(s, c.meaning, _counts_as(c.category)) for s, c in catalogue.codes.items() if s in symbols]

    counting: list[Definition] = []
    for category in sorted(categories, key=list(CATEGORIES).index):
        members = [s for s in catalogue.codes if s in catalogue.codes_in(category)]
        if category == "possible":
            excluded = [s for s in catalogue.codes if s in catalogue.codes_in("not_possible")]
            counting.append(Definition("Possible sessions", f"every session the pupil is on roll for, except sessions coded "
                                       f"{join_words(excluded, 'or')} ({CATEGORY_MEANINGS['not_possible']})."))
            continue
        base = [c for c in CATEGORIES[category] if c in BASE_CATEGORIES]
        term = _capital(SESSION_NOUNS[category][1])
        text = f"coded {join_words(members, 'or')}"
        if len(base) > 1:
            text += " (" + join_words([CATEGORY_MEANINGS[b] for b in base], "or") + ")"
        counting.append(Definition(term, text + "."))
    for kind in sorted(rates, key=list(RATE_WORDS).index):
        numerator = CATEGORY_MEANINGS[RATE_NUMERATORS[kind]].split(":")[0].split(",")[0]
        counting.append(Definition(f"{_capital(RATE_WORDS[kind])} (a percentage)",
                                   f"sessions of {numerator} as a share of possible sessions, compared exactly, "
                                   "without rounding."))
    if any(r.scope not in PUPIL_SCOPES for r in policy.rules):
        counting.append(Definition("Classes, year groups and the whole school",
                                   "sessions are added up over all the group’s pupils, so a group’s attendance is its "
                                   "pupils’ sessions attended as a share of their possible sessions together."))
    counting.append(Definition("On roll", "only sessions while the pupil is on the school’s roll count."))
    if any(r.scope == "leaver" for r in policy.rules):
        counting.append(Definition("Pupils who have left", "a rule about leavers is checked for each pupil with a "
                                   "leaving date recorded (whether that day has passed or not) who had joined by the "
                                   "day of the check; their sessions count up to their leaving date. Every other "
                                   "pupil rule is checked only for pupils on roll on the day of the check."))
    counting.append(Definition("Missing values", "a rule applies only when its conditions are met: a percentage over "
                               "a period with no possible sessions, or pupil information that is not recorded, "
                               "meets no condition (not even “is not” or “below”)."))
    if any(isinstance(n, (ast.ActionCount, ast.TimeSinceAction)) for r in policy.rules for n in ast.walk(r.condition)) \
            or any(r.after or r.limit or r.repeat.cooldown or r.repeat.once_per for r in policy.rules):
        counting.append(Definition("Earlier steps", "what the school has already done for the pupil is taken from its "
                                   "record of earlier actions, up to the day before the check; a step the school "
                                   "set aside does not count."))

    order = list(WINDOW_MEANINGS)
    periods = []
    for kind in sorted(windows, key=order.index):
        name, _, meaning = WINDOW_MEANINGS[kind].partition(": ")
        periods.append(Definition(_capital(name), meaning + "."))

    attribute_rows = [Definition(_capital(ATTRIBUTE_NOUNS.get(name, name.replace("_", " "))),
                                 policy.attribute_descriptions.get(name, "(no description in the policy)"))
                      for name in sorted(attributes)]
    header = policy.header
    school = (header.get("school") or {}).get("name")
    source = (header.get("source_document") or {}).get("title")
    return PolicyDocument(
        title=" ".join(policy.title.split()), school=school, policy_id=policy.id, version=policy.version,
        effective_from=_date_text(header.get("effective_from")), effective_to=_date_text(header.get("effective_to")),
        source_document=" ".join(source.split()) if source else None,
        files=[Path(p).name for p in policy.chain], sha256=policy.sha256,
        sections=[s for s in sections.values() if s.rules],
        disabled=[(rule_id, " ".join(reason.split())) for rule_id, reason in policy.disabled.items()],
        codes=code_rows, counting=counting, periods=periods, attributes=attribute_rows,
    )


def _date_text(value) -> str | None:
    if value is None:
        return None
    try:
        return date_words(date.fromisoformat(str(value)))
    except ValueError:
        return str(value)


INTRO = ("This page is generated from the policy file that the school’s attendance system runs, so it says "
         "exactly what each rule checks and what then happens. The checks are made on school days, over the "
         "school’s register; each period of time below includes the day of the check.")
ADVISORY_NOTE = ("Steps that say “may” are prompts: a member of staff considers them and decides. The others are "
                 "what the school does.")


def _version_line(doc: PolicyDocument) -> str:
    text = f"Policy {doc.policy_id}, version {doc.version}"
    if doc.effective_from:
        text += f", in effect from {doc.effective_from}"
    if doc.effective_to:
        text += f" to {doc.effective_to}"
    return text + "."


def _files_line(doc: PolicyDocument) -> str:
    files = join_words(doc.files)
    return f"Generated from {files}. SHA-256 of {'the file' if len(doc.files) == 1 else 'these files'}:"


def _origin_line(rule: RuleText) -> str:
    return f"Rule {rule.id}, " + (f"from {rule.origin}" if rule.inherited else f"in {rule.origin}") + "."


# ---- Markdown -----------------------------------------------------------------------------------

# Characters that can start emphasis, links, code, HTML, entities or table cells anywhere in a line.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#!{}])")


def md_escape(text: str) -> str:
    """Policy text made inert in Markdown: one line, every meaning-changing character escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _md_phrase(phrase: Phrase, indent: str = "") -> list[str]:
    if isinstance(phrase, str):
        return [md_escape(phrase)]
    lines = []
    for item in phrase.items:
        text = md_escape(item) if isinstance(item, str) else md_escape(inline(item))
        lines.append(f"{indent}- {text}")
    return lines


def to_markdown(doc: PolicyDocument) -> str:
    """The document as Markdown (CommonMark)."""
    out = [f"# {md_escape(doc.title)}", ""]
    out += [md_escape(_version_line(doc)), ""]
    if doc.source_document:
        out += [f"Source document: {md_escape(doc.source_document)}.", ""]
    out += [md_escape(INTRO) + " " + md_escape(ADVISORY_NOTE), ""]
    out += ["Contents:", ""]
    for s in doc.sections:
        out.append(f"- {md_escape(s.title)} ({len(s.rules)} rule{'' if len(s.rules) == 1 else 's'})")
    if doc.disabled:
        out.append("- Rules not applied at this school")
    out += ["- How we count", "- Which version this is", ""]
    for section in doc.sections:
        out += [f"## {md_escape(section.title)}", "", md_escape(section.intro), ""]
        for rule in section.rules:
            out += [f"### {md_escape(rule.title)}", ""]
            when = rule.when
            if isinstance(when, str):
                out += [f"**When:** {md_escape(when)}.", ""]
            else:
                out += [f"**When {md_escape(CLAUSE_LEADS[when.joiner])}:**", ""] + _md_phrase(when) + [""]
            out += ["**What staff may do** (advisory: a member of staff decides):" if rule.advisory else
                    "**What happens:**", ""]
            out += [f"- {md_escape(a)}" for a in rule.actions] + [""]
            out += [f"**How often:** {md_escape(rule.how_often)}", ""]
            if rule.after:
                out += [f"**Escalation:** {md_escape(rule.after)}", ""]
            for step in rule.next_steps:
                out += [f"**Next step:** {md_escape(step)}", ""]
            if rule.limit:
                out += [f"**Limit:** {md_escape(rule.limit)}", ""]
                out += [f"- {md_escape(a)}" for a in rule.limit_actions] + [""]
            if rule.source:
                out += [f"> Source: {md_escape(_quoted(rule.source))}", ""]
            out += [f"*{md_escape(_origin_line(rule))}*", ""]
    if doc.disabled:
        out += ["## Rules not applied at this school", "",
                "This policy builds on another and switches off these of its rules:", ""]
        out += [f"- {md_escape(rule_id)}: {md_escape(reason)}" for rule_id, reason in doc.disabled] + [""]
    out += ["## How we count", ""]
    out += [f"- **{md_escape(d.term)}:** {md_escape(d.text)}" for d in doc.counting] + [""]
    if doc.codes:
        out += ["Attendance codes used by these rules (the national codes in force from August 2024):", "",
                "| code | meaning | counts as |", "| --- | --- | --- |"]
        out += [f"| {md_escape(s)} | {md_escape(m)} | {md_escape(c)} |" for s, m, c in doc.codes] + [""]
    if doc.periods:
        out += ["Periods of time:", ""]
        out += [f"- **{md_escape(d.term)}:** {md_escape(d.text)}" for d in doc.periods] + [""]
    if doc.attributes:
        out += ["Pupil information the rules use:", ""]
        out += [f"- **{md_escape(d.term)}:** {md_escape(d.text)}" for d in doc.attributes] + [""]
    out += ["## Which version this is", "", md_escape(_version_line(doc)), "",
            md_escape(_files_line(doc)), "", f"`{doc.sha256}`", ""]
    return "\n".join(out)


# ---- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #1b1b1b; }
h1 { font-size: 1.8rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ccc; } h3 { margin-top: 1.8rem; }
.rule { border-left: 4px solid #2b6cb0; padding-left: 1rem; margin-bottom: 1.5rem; }
.rule.advisory { border-left-color: #b7791f; }
.label { font-weight: bold; }
blockquote { margin: 0.5rem 0; padding-left: 0.8rem; border-left: 2px solid #aaa; color: #444; font-style: italic; }
.origin { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }
code { font-size: 0.85rem; word-break: break-all; }
""".strip()


def h(text: str) -> str:
    """Policy text made inert in HTML."""
    return html.escape(" ".join(str(text).split()), quote=True)


def _html_phrase(phrase: Phrase) -> str:
    if isinstance(phrase, str):
        return h(phrase)
    return "<ul>" + "".join(f"<li>{h(item if isinstance(item, str) else inline(item))}</li>" for item in phrase.items) + "</ul>"


def to_html(doc: PolicyDocument) -> str:
    """The document as one self-contained HTML page (inline CSS, no scripts)."""
    out = ["<!DOCTYPE html>", '<html lang="en-GB">', "<head>", '<meta charset="utf-8">',
           f"<title>{h(doc.title)}</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
           f"<h1>{h(doc.title)}</h1>", f"<p>{h(_version_line(doc))}</p>"]
    if doc.source_document:
        out.append(f"<p>Source document: {h(doc.source_document)}.</p>")
    out.append(f"<p>{h(INTRO)} {h(ADVISORY_NOTE)}</p>")
    out.append("<nav><ul>")
    for s in doc.sections:
        out.append(f'<li><a href="#{s.key}">{h(s.title)}</a> ({len(s.rules)} rule{"" if len(s.rules) == 1 else "s"})</li>')
    if doc.disabled:
        out.append('<li><a href="#not-applied">Rules not applied at this school</a></li>')
    out.append('<li><a href="#how-we-count">How we count</a></li><li><a href="#version">Which version this is</a></li>')
    out.append("</ul></nav>")
    for section in doc.sections:
        out += [f'<section id="{section.key}">', f"<h2>{h(section.title)}</h2>", f"<p>{h(section.intro)}</p>"]
        for rule in section.rules:
            css = "rule advisory" if rule.advisory else "rule"
            out += [f'<article class="{css}" id="rule-{h(rule.id)}">', f"<h3>{h(rule.title)}</h3>"]
            if isinstance(rule.when, str):
                out.append(f'<p><span class="label">When:</span> {h(rule.when)}.</p>')
            else:
                out.append(f'<p><span class="label">When {h(CLAUSE_LEADS[rule.when.joiner])}:</span></p>')
                out.append(_html_phrase(rule.when))
            out.append('<p><span class="label">What staff may do</span> (advisory: a member of staff decides):</p>'
                       if rule.advisory else '<p><span class="label">What happens:</span></p>')
            out.append("<ul>" + "".join(f"<li>{h(a)}</li>" for a in rule.actions) + "</ul>")
            out.append(f'<p><span class="label">How often:</span> {h(rule.how_often)}</p>')
            if rule.after:
                out.append(f'<p><span class="label">Escalation:</span> {h(rule.after)}</p>')
            for step in rule.next_steps:
                out.append(f'<p><span class="label">Next step:</span> {h(step)}</p>')
            if rule.limit:
                out.append(f'<p><span class="label">Limit:</span> {h(rule.limit)}</p>')
                out.append("<ul>" + "".join(f"<li>{h(a)}</li>" for a in rule.limit_actions) + "</ul>")
            if rule.source:
                out.append(f"<blockquote>Source: {h(_quoted(rule.source))}</blockquote>")
            out += [f'<p class="origin">{h(_origin_line(rule))}</p>', "</article>"]
        out.append("</section>")
    if doc.disabled:
        out += ['<section id="not-applied">', "<h2>Rules not applied at this school</h2>",
                "<p>This policy builds on another and switches off these of its rules:</p>", "<ul>"]
        out += [f"<li>{h(rule_id)}: {h(reason)}</li>" for rule_id, reason in doc.disabled]
        out += ["</ul>", "</section>"]
    out += ['<section id="how-we-count">', "<h2>How we count</h2>", "<ul>"]
    out += [f'<li><span class="label">{h(d.term)}:</span> {h(d.text)}</li>' for d in doc.counting]
    out.append("</ul>")
    if doc.codes:
        out += ["<p>Attendance codes used by these rules (the national codes in force from August 2024):</p>",
                "<table><thead><tr><th>code</th><th>meaning</th><th>counts as</th></tr></thead><tbody>"]
        out += [f"<tr><td>{h(s)}</td><td>{h(m)}</td><td>{h(c)}</td></tr>" for s, m, c in doc.codes]
        out.append("</tbody></table>")
    if doc.periods:
        out += ["<p>Periods of time:</p>", "<ul>"]
        out += [f'<li><span class="label">{h(d.term)}:</span> {h(d.text)}</li>' for d in doc.periods]
        out.append("</ul>")
    if doc.attributes:
        out += ["<p>Pupil information the rules use:</p>", "<ul>"]
        out += [f'<li><span class="label">{h(d.term)}:</span> {h(d.text)}</li>' for d in doc.attributes]
        out.append("</ul>")
    out.append("</section>")
    out += ['<section id="version">', "<h2>Which version this is</h2>", f"<p>{h(_version_line(doc))}</p>",
            f"<p>{h(_files_line(doc))} <code>{h(doc.sha256)}</code></p>", "</section>", "</body>", "</html>", ""]
    return "\n".join(out)


def render_policy(policy: CheckedPolicy, fmt: str = "md") -> str:
    """A checked policy as Markdown (`md`) or a self-contained HTML page (`html`)."""
    doc = build_document(policy)
    return to_html(doc) if fmt == "html" else to_markdown(doc)
