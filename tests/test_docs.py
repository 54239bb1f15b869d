"""The documentation tells the truth: the tables and lists in docs/ that restate the code table,
the grammar or the CLI are checked against the code, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.codes import national_codes
from engine.parse import keywords, parse_condition

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _codes_table(text: str) -> dict[str, list[str]]:
    block = text.split("<!-- codes-table:", 1)[1].split("<!-- /codes-table -->", 1)[0]
    table = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("category", "---"):
            table[cells[0]] = re.findall(r"`([^`]+)`", cells[1])
    return table


def test_semantics_codes_table_is_the_code_data():
    table = _codes_table((DOCS / "semantics.md").read_text(encoding="utf-8"))
    catalogue = national_codes()
    expected: dict[str, set[str]] = {}
    for symbol in catalogue.codes:
        expected.setdefault(catalogue.category_of(symbol), set()).add(symbol)
    assert {category: set(codes) for category, codes in table.items()} == expected
    listed = [c for codes in table.values() for c in codes]
    assert len(listed) == len(set(listed)), "a code is listed twice"


def test_language_reserved_words_are_the_grammar_keywords():
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    paragraph = text.split("Reserved words cannot be parameter names:", 1)[1].split("`.", 1)[0]
    documented = set(paragraph.replace("`", " ").split())
    assert documented == set(keywords())


def _window_examples() -> list[str]:
    text = (DOCS / "language.md").read_text(encoding="utf-8")
    section = text.split("## Windows\n", 1)[1].split("\n## ", 1)[0]
    examples = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            examples.append(cells[1].strip("`"))
    return examples


def test_every_window_in_the_grammar_has_an_example():
    assert len(_window_examples()) == 12


@pytest.mark.parametrize("example", _window_examples())
def test_window_examples_parse(example):
    tree, problems = parse_condition(example)
    assert tree is not None and not problems, problems


def test_links_to_semantics_name_real_sections():
    semantics = (DOCS / "semantics.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", semantics, flags=re.M)}
    for doc in DOCS.glob("*.md"):
        for anchor in re.findall(r"\(semantics\.md#([^)]+)\)", doc.read_text(encoding="utf-8")):
            assert anchor in anchors, f"{doc.name} links to semantics.md#{anchor}, which does not exist"


def test_files_the_docs_name_exist():
    for doc in [REPO / "README.md", *DOCS.glob("*.md")]:
        for name in re.findall(r"`((?:engine|tests|schemas|scripts|benchmarks|policies|grammar|docs)/[\w./*-]+)`",
                               doc.read_text(encoding="utf-8")):
            if "*" in name:
                assert list(REPO.glob(name)), f"{doc.name} names {name}, which matches nothing"
            else:
                assert (REPO / name).exists(), f"{doc.name} names {name}, which does not exist"
