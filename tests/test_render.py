"""`rollbook render`: the published English of every shipped policy (golden files), conditions in
words for every AST node and window kind, no drift from the executed numbers, escaping, the CLI."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ast
from engine.api import check_policy_file
from engine.english import Clause, describe_condition, inline
from engine.render import ROLES, action_words, build_document, md_escape, render_policy, to_html, to_markdown
from engine.check import Action

from .conftest import GOLDEN, REPO
from .evaluation import SHIPPED_POLICIES

POLICIES = SHIPPED_POLICIES
GOLDEN_RENDER = GOLDEN / "render"


def _checked(path):
    result = check_policy_file(path)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.policy


# ---- golden files: what schools publish ------------------------------------------------------

@pytest.mark.parametrize("path", POLICIES, ids=[p.stem for p in POLICIES])
def test_rendered_markdown_matches_golden(path, update_golden):
    text = render_policy(_checked(path), "md")
    golden = GOLDEN_RENDER / f"{path.stem}.md"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"run ROLLBOOK_UPDATE_GOLDEN=1 and review {golden}"


@pytest.mark.parametrize("path", POLICIES, ids=[p.stem for p in POLICIES])
def test_every_rule_is_rendered_with_its_source_and_version(path):
    policy = _checked(path)
    text = render_policy(policy, "md")
    for rule in policy.rules:
        assert f"*Rule {rule.id}, " in text
        if rule.source:
            assert md_escape(" ".join(rule.source.split())) in text
    for rule_id in policy.disabled:
        assert f"- {rule_id}: " in text
    assert policy.sha256 in text and policy.version in text


# ---- conditions in words: every node kind and window kind --------------------------------------

# (scope, condition, words the rendering must contain). The policy below declares the parameters
# and attributes these use; each row becomes one rule of it.
CONDITIONS = [
    ("pupil", "unauthorised sessions in the last 10 school weeks >= 10",
     "the pupil has 10 or more sessions of unauthorised absence in the last 10 school weeks"),
    ("pupil", "sessions coded {G, O, U} in the last 5 school days > 2", "more than 2 sessions coded G, O or U in the last 5 school days"),
    ("pupil", "sessions coded {N} in the last 1 school days >= 1",
     "at least one session coded N (reason for absence not yet provided) on the latest school day"),
    ("pupil", "sessions coded my_codes in the last 12 weeks >= my_sessions", "7 or more sessions coded G or O in the last 12 weeks"),
    ("pupil", "absent sessions in the last 30 days < 3", "fewer than 3 sessions of absence in the last 30 days"),
    ("pupil", "absent morning sessions on {Monday, Friday} in the last 2 years <= 4",
     "4 or fewer morning sessions of absence on Mondays or Fridays in the last 2 years"),
    ("pupil", "attendance this academic year below 90%", "the pupil’s attendance this academic year is below 90%"),
    ("pupil", "absence this term >= my_rate", "the pupil’s absence this term is at or above 12.5%"),
    ("pupil", "authorised absence this half term > 5%", "authorised absence this half term is above 5%"),
    ("pupil", "unauthorised absence previous term <= 1%", "unauthorised absence in the previous term is at or below 1%"),
    ("pupil", "attendance previous academic year = 100%", "attendance in the previous academic year is exactly 100%"),
    ("pupil", "sessions coded {G} this and previous term = 0", "no sessions coded G (holiday not granted by the school) this term and the previous term"),
    ("pupil", "attendance this school week != 100%", "attendance this school week is not 100%"),
    ("pupil", "attendance since 2025-09-01 < 95%", "attendance since 1 September 2025 is below 95%"),
    ("pupil", "attendance since pupil.joined_on < 95%", "attendance since the pupil’s first day on roll is below 95%"),
    ("pupil", "attendance since my_date < 95%", "since 6 October 2025"),
    ("pupil", "sessions coded {I} ever > 40", "more than 40 sessions coded I (illness (not medical or dental appointment)) at any time"),
    ("pupil", "attendance this term excluding days before pupil.integration_end < 90%",
     "attendance this term (leaving out the days before the pupil’s integration end, when recorded) is below 90%"),
    ("pupil", "unauthorised sessions this term excluding days from 2025-10-06 to 2025-10-10 > 4",
     "this term (leaving out 6 October 2025 to 10 October 2025)"),
    ("pupil", "longest run of absent sessions this term >= 6",
     "the pupil’s longest run of consecutive sessions of absence this term is at least 6 sessions"),
    ("pupil", "current run of school days coded {I} in the last 20 school days > 3",
     "the pupil’s current run of consecutive school days coded I (illness (not medical or dental appointment)) in the last 20 school days is more than 3 school days"),
    ("pupil", "minutes late this half term > 60", "the pupil’s total minutes late this half term is more than 60"),
    ("pupil", "actions by rule row-0 in the last 3 years >= 2",
     "has applied to the pupil 2 or more times in the last 3 years"),
    ("pupil", "actions with verb send_letter this term = 0", "the pupil has had no letters this term"),
    ("pupil", "school weeks since last action by rule row-0 >= 4",
     "at least 4 school weeks have passed since “Row 0” last applied to the pupil (or it never has)"),
    ("pupil", "days since last action with verb notify < 7", "less than 7 days have passed since the last notification for the pupil"),
    # The old "once per run" idiom is read literally: `repeat: {once_per: run}` says it instead.
    ("pupil", "current run of school days coded {N, O} ever >= 3 and school days since last action by rule row-26 >= current run of school days coded {N, O} ever",
     "the number of school days since this rule last applied to the pupil is at least the length of the pupil’s current run"),
    ("class", "rank of attendance this school week = 1",
     "the class has the highest attendance this school week of the classes of its school"),
    ("year_group", "rank of absence this term <= 3", "the year group is among the 3 highest by absence this term of the year groups of its school"),
    ("school", "attendance this academic year < 96%", "the school’s attendance this academic year (all its pupils’ sessions together) is below 96%"),
    ("class", "unauthorised sessions this term > 100", "the class has, over all its pupils, more than 100 sessions of unauthorised absence this term"),
    ("pupil", "pupil.year_group in {\"R\", \"1\", \"2\"}", "the pupil’s year group is one of “R”, “1” or “2”"),
    ("pupil", "pupil.year_group not in {\"11\"}", "the pupil’s year group is not “11”"),
    ("pupil", "pupil.year_group is \"R\"", "the pupil’s year group is “R”"),
    ("pupil", "pupil.ehcp is true", "the pupil has an education, health and care plan"),
    ("pupil", "pupil.ehcp = false", "the pupil does not have an education, health and care plan"),
    ("pupil", "pupil.social_worker", "the pupil has a social worker"),
    ("pupil", "not pupil.lac", "the pupil is not a looked-after child"),
    ("pupil", "pupil.young_carer is true", "the pupil’s record says “young carer”"),
    ("pupil", "pupil.left_on >= 1900-01-01", "the pupil’s leaving date (last day on roll) is recorded (any date on or after 1 January 1900)"),
    ("pupil", "pupil.joined_on > 2025-09-01", "the pupil’s first day on roll is after 1 September 2025"),
    ("pupil", "not (attendance this term < 90%)", "the pupil’s attendance this term is at or above 90%"),
    ("pupil", "not (attendance this term < 90% or pupil.ehcp)",
     "both the pupil’s attendance this term is at or above 90% and the pupil does not have an education, health and care plan"),
    ("pupil", "not (attendance this term < 90% and not pupil.ehcp)",
     "either the pupil’s attendance this term is at or above 90% or the pupil has an education, health and care plan"),
    ("pupil", "attendance in the last 6 school weeks <= attendance this academic year - 5%",
     "the pupil’s attendance in the last 6 school weeks is at or below the pupil’s attendance this academic year minus 5 percentage points"),
    ("pupil", "unauthorised sessions this term * 2 > possible sessions this term / 3 + 1",
     "the number of sessions of unauthorised absence this term times 2 is more than (the number of possible sessions this term divided by 3) plus 1"),
    ("pupil", "-unauthorised sessions this term < -3", "minus the number of sessions of unauthorised absence this term is less than minus 3"),
    ("pupil", "(absence this term >= 10% or absence this academic year >= 10%) and not pupil.ehcp",
     "either the pupil’s absence this term is at or above 10% or the pupil’s absence this academic year is at or above 10%"),
    ("pupil", "3 < unauthorised sessions this term", "the pupil has more than 3 sessions of unauthorised absence this term"),
]

_POLICY_HEAD = """\
rollbook: 1
id: conditions
title: Conditions
version: "1"
effective_from: 2025-09-01
attributes:
  integration_end: {type: date, description: The first full-time day.}
  young_carer: {type: boolean, description: The pupil is a young carer.}
parameters:
  my_codes: {value: [G, O], unit: codes}
  my_sessions: {value: 7, unit: sessions}
  my_rate: {value: 12.5, unit: percent}
  my_date: {value: 2025-10-06, unit: date}
rules:
"""


def _policy_text(rows) -> str:
    lines = [_POLICY_HEAD]
    for i, (scope, condition, _) in enumerate(rows):
        lines.append(f"  - id: row-{i}\n    title: Row {i}\n    scope: {scope}\n    when: {json.dumps(condition)}\n"
                     f"    then: [{{flag: {{flag: row_{i}}}}}]\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def conditions_policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("render") / "conditions.yaml"
    path.write_text(_policy_text(CONDITIONS), encoding="utf-8")
    return _checked(path)


def _words(policy, rule) -> str:
    phrase = describe_condition(policy, rule)
    return phrase if isinstance(phrase, str) else inline(phrase) + " | " + " | ".join(
        p if isinstance(p, str) else inline(p) for p in phrase.items) + " | " + phrase.joiner


@pytest.mark.parametrize("i", range(len(CONDITIONS)), ids=[c[1][:60] for c in CONDITIONS])
def test_condition_in_words(conditions_policy, i):
    rule = conditions_policy.rule(f"row-{i}")
    words = _words(conditions_policy, rule)
    assert CONDITIONS[i][2] in words, words
    assert "<" not in words and "pupil." not in words and "_" not in words


def test_condition_table_covers_every_node_and_window_kind(conditions_policy):
    kinds, windows = set(), set()
    for rule in conditions_policy.rules:
        for node in ast.walk(rule.condition):
            kinds.add(type(node).__name__)
            if isinstance(node, ast.Window):
                windows.add(node.unit if node.kind == "last" else node.kind)
                if node.exclusion:
                    windows.add("excluding " + node.exclusion.kind)
    expr_kinds = {t.__name__ for t in ast.Expr.__args__}
    assert expr_kinds <= kinds, expr_kinds - kinds
    expected_windows = (set(ast.WINDOW_KINDS) - {"last"}) | set(ast.WINDOW_UNITS) | {"excluding before", "excluding between"}
    assert expected_windows <= windows, expected_windows - windows


def test_nested_clauses_are_lists_of_phrases(conditions_policy):
    rule = conditions_policy.rule(f"row-{len(CONDITIONS) - 2}")
    phrase = describe_condition(conditions_policy, rule)
    assert isinstance(phrase, Clause) and phrase.joiner == "all" and len(phrase.items) == 2
    assert isinstance(phrase.items[0], Clause) and phrase.items[0].joiner == "any"


# ---- actions in words ----------------------------------------------------------------------------

def _schema():
    return json.loads((REPO / "schemas" / "policy.schema.json").read_text(encoding="utf-8"))


ACTIONS = [
    (Action("notify", (("role", "attendance_officer"), ("message", "Call home."))), False, "The attendance officer is told: “Call home.”"),
    (Action("notify", (("role", "headteacher"),)), True, "The headteacher may be told."),
    (Action("send_letter", (("letter", "first concern"),)), False, "The letter “first concern” is sent to the parents."),
    (Action("hold_meeting", (("kind", "formal"), ("with", ("parents", "dsl")))), False,
     "A formal meeting is arranged with the parents and the designated safeguarding lead."),
    (Action("request_evidence", (("evidence", "medical"), ("within_school_days", 5))), False,
     "The parents are asked for medical evidence of the illness, to be given within 5 school days."),
    (Action("inform_local_authority", (("reason", "Return"),)), False, "The local authority is informed: “Return”."),
    (Action("refer_local_authority", (("service", "early help"), ("reason", "Support"))), True,
     "The case may be referred to the local authority (early help): “Support”."),
    (Action("consider_penalty_notice", ()), True, "A penalty notice may be considered."),
    (Action("issue_notice_to_improve", (("note", "3 weeks"),)), False, "A notice to improve is issued: “3 weeks”."),
    (Action("offer_support", (("support", "an attendance contract"),)), False, "Support is offered: “an attendance contract”."),
    (Action("award", (("award", "a certificate"),)), False, "The pupil receives an award: “a certificate”."),
    (Action("flag", (("flag", "persistent_absence"),)), False, "The pupil’s record is flagged “persistent absence” for staff."),
]


@pytest.mark.parametrize("action,advisory,expected", ACTIONS, ids=[a[0].verb + ("-may" if a[1] else "") for a in ACTIONS])
def test_action_in_words(action, advisory, expected):
    assert action_words(action, advisory, "pupil") == expected


def test_every_verb_and_role_of_the_schema_has_words():
    schema = _schema()
    assert {a.verb for a, _, _ in ACTIONS} == set(schema["$defs"]["verbs"])
    assert set(ROLES) == set(schema["$defs"]["role"]["enum"])


# ---- no drift: the published number is the executed number ---------------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=st.integers(1, 400), new=st.integers(1, 400))
def test_changing_a_threshold_changes_the_sentence(old, new):
    if old == new:
        return
    with tempfile.TemporaryDirectory() as folder:
        texts = {}
        for n in (old, new):
            path = Path(folder) / f"p{n}.yaml"
            path.write_text(_POLICY_HEAD.replace("my_sessions: {value: 7,", f"my_sessions: {{value: {n},") +
                            "  - id: threshold\n    title: Threshold\n"
                            "    when: sessions coded my_codes in the last 10 school weeks >= my_sessions\n"
                            "    then: [{flag: {flag: threshold}}]\n", encoding="utf-8")
            texts[n] = render_policy(_checked(path), "md")
        when = {n: next(line for line in t.splitlines() if line.startswith("**When")) for n, t in texts.items()}
        phrase = {n: "at least one session " if n == 1 else f" {n} or more sessions " for n in (old, new)}
        assert phrase[new] in when[new] and phrase[old] not in when[new]
        assert phrase[old] in when[old] and phrase[new] not in when[old]


def test_changing_a_shipped_parameter_changes_the_published_sentence(tmp_path):
    for name in ("burton-hathow.yaml", "national.yaml"):
        shutil.copy(REPO / "policies" / name, tmp_path / name)
    leaf = tmp_path / "burton-hathow.yaml"
    before = render_policy(_checked(leaf), "md")
    assert "attendance this academic year is below 85%" in before
    text = leaf.read_text(encoding="utf-8")
    leaf.write_text(text.replace("meeting_threshold:\n    value: 85", "meeting_threshold:\n    value: 83"), encoding="utf-8")
    after = render_policy(_checked(leaf), "md")
    assert "attendance this academic year is below 83%" in after
    assert "attendance this academic year is below 85%" not in after
    assert _checked(leaf).sha256 in after and _checked(leaf).sha256 not in before


# ---- escaping --------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "link", "input"}
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "nav", "ul", "li", "a",
                "section", "article", "span", "blockquote", "table", "thead", "tbody", "tr", "th", "td", "code"}


class _Strict(HTMLParser):
    """Collects text and checks that tags nest and close, and are ones the renderer writes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.data, self.tags = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.data.append(data)


def _parse_html(text: str) -> _Strict:
    parser = _Strict()
    parser.feed(text)
    parser.close()
    return parser


@pytest.mark.parametrize("path", POLICIES, ids=[p.stem for p in POLICIES])
def test_html_is_valid_and_self_contained(path):
    text = render_policy(_checked(path), "html")
    parser = _parse_html(text)
    assert not parser.problems and not parser.stack
    assert parser.tags <= ALLOWED_TAGS, parser.tags - ALLOWED_TAGS
    assert "<script" not in text.lower() and "src=" not in text and "http" not in text


HOSTILE = ["<script>alert(1)</script>", "</p><img src=x onerror=alert(1)>", "a & b &amp; <b>bold</b>",
           "\"quoted\" 'single' <!-- comment -->", "[link](javascript:alert(1)) *em* _u_ `code` | pipe",
           "# heading\n- item\n> quote", "<![CDATA[x]]> &lt;already&gt; \\ backslash"]


def _hostile_policy(folder: Path, text: str) -> Path:
    path = folder / "hostile.yaml"
    quoted = json.dumps(text)
    path.write_text(f"""\
rollbook: 1
id: hostile
title: {quoted}
version: {quoted}
school: {{name: {quoted}}}
source_document: {{title: {quoted}}}
attributes:
  odd: {{type: boolean, description: {quoted}}}
rules:
  - id: hostile-rule
    title: {quoted}
    source: {quoted}
    when: pupil.odd and unauthorised sessions this term > 1
    then:
      - notify: {{role: parents, message: {quoted}}}
      - send_letter: {{letter: {quoted}}}
      - flag: {{flag: {quoted}, note: {quoted}}}
      - refer_local_authority: {{service: {quoted}, reason: {quoted}}}
    limit: {{max: 1, within: 1 years, otherwise: [{{award: {{award: {quoted}}}}}]}}
""", encoding="utf-8")
    return path


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_policy_text_is_escaped_in_html(tmp_path, text):
    policy = _checked(_hostile_policy(tmp_path, text))
    page = render_policy(policy, "html")
    parser = _parse_html(page)
    assert not parser.problems and not parser.stack
    assert parser.tags <= ALLOWED_TAGS
    flat = " ".join(text.split())
    data = "".join(parser.data)
    assert data.count(flat) >= 5  # title, heading, source, actions...: all there, as text
    # Every `<` in the page opens one of the renderer's own tags.
    for match in re.finditer(r"<(/?)([a-zA-Z0-9!]+)", page):
        assert match.group(2).lower() in ALLOWED_TAGS | {"!doctype"}, page[match.start():match.start() + 40]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_policy_text_is_escaped_in_markdown(tmp_path, text):
    page = render_policy(_checked(_hostile_policy(tmp_path, text)), "md")
    flat = " ".join(text.split())
    assert md_escape(flat) in page
    for line in page.splitlines():
        # Raw HTML or a link can only start at a `<` or `[` without a backslash before it.
        assert not re.search(r"(?<!\\)[<\[]", line), line


_UNESCAPE = re.compile(r"\\([\\`*_\[\]<>|~&#!{}])")


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_markdown_escape_is_lossless_and_inert(text):
    escaped = md_escape(text)
    assert _UNESCAPE.sub(r"\1", escaped) == " ".join(text.split())
    assert "\n" not in escaped
    unescaped_special = re.sub(r"\\.", "", escaped)
    assert not re.search(r"[\\`*_\[\]<>|~&#!{}]", unescaped_special)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_html_escape_leaves_no_markup(text):
    from engine.render import h

    escaped = h(text)
    assert "<" not in escaped and ">" not in escaped and '"' not in escaped
    parser = _parse_html(f"<p>{escaped}</p>")
    assert "".join(parser.data) == " ".join(text.split())


def test_markdown_and_html_say_the_same(tmp_path):
    policy = _checked(REPO / "policies" / "burton-hathow.yaml")
    doc = build_document(policy)
    page = _parse_html(to_html(doc))
    text = " ".join(" ".join(page.data).split())
    for section in doc.sections:
        for rule in section.rules:
            for sentence in rule.actions + [rule.how_often]:
                assert sentence in text
    assert to_markdown(doc) == render_policy(policy, "md")


def test_a_leaver_rule_says_who_it_is_about(tmp_path):
    # The rule's condition names no leave date; the document says the rule is about leavers, first
    # among its conditions, in how often it acts, and among the definitions and attributes. Its
    # measures read as a pupil rule's.
    path = tmp_path / "leavers.yaml"
    path.write_text(_POLICY_HEAD + """\
  - {id: leaver, title: Leaver, scope: leaver, when: "sessions in the last 10 school days >= 1", then: [{flag: {flag: l}}]}
  - {id: pupil, title: Pupil, when: "sessions in the last 10 school days >= 1 and not pupil.young_carer", then: [{flag: {flag: p}}]}
""", encoding="utf-8")
    doc = build_document(_checked(path))
    rules = {r.id: r for section in doc.sections for r in section.rules}
    assert rules["leaver"].when == Clause("all", ("the pupil has a leaving date recorded (the pupil has left, or is to leave)",
                                                  "the pupil has at least one session in the last 10 school days"))
    assert rules["leaver"].how_often == "Once only for each pupil who has left or has a leaving date recorded."
    assert rules["pupil"].when.items[0] == "the pupil has at least one session in the last 10 school days"
    assert rules["pupil"].how_often == "Once only for each pupil."
    assert "Pupils who have left" in [d.term for d in doc.counting]
    assert any("Leaving date" in d.term for d in doc.attributes)


# ---- the command line ---------------------------------------------------------------------------------

def test_cli_renders_markdown_and_html(rollbook, tmp_path):
    out = tmp_path / "bh.html"
    result = rollbook("render", "--policy", "policies/burton-hathow.yaml", "--format", "html", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and f"wrote {out}" in result.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = rollbook("render", "--policy", "policies/burton-hathow.yaml")
    assert result.returncode == 0
    assert result.stdout == (GOLDEN_RENDER / "burton-hathow.md").read_text(encoding="utf-8")


def test_cli_refuses_a_policy_that_fails_check(rollbook, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollbook: 1\nid: bad\ntitle: Bad\nversion: \"1\"\nrules:\n  - id: r\n    title: R\n"
                   "    when: attendance this term below 85\n    then: [{flag: {flag: x}}]\n", encoding="utf-8")
    out = tmp_path / "bad.md"
    result = rollbook("render", "--policy", bad, "--out", out)
    assert result.returncode == 1
    assert result.stdout == "" and not out.exists()
    assert f"{bad}:8:38: error[type.unit]" in result.stderr
    assert "   8 |     when: attendance this term below 85" in result.stderr and "^" in result.stderr
    assert "nothing was rendered" in result.stderr


def test_cli_usage(rollbook):
    assert rollbook("render", "--policy", "policies/national.yaml", "--format", "pdf").returncode == 2
    missing = rollbook("render", "--policy", "no/such.yaml")
    assert missing.returncode == 1 and "error: no such policy file" in missing.stderr
