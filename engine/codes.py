"""The national attendance code catalogue: the one place a code's meaning is defined.

Everything that counts sessions (the checker, the compiler, register validation, the docs)
reads categories from here, so a code can never mean two things in two places.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

CATALOGUE_PATH = Path(__file__).with_name("data") / "attendance-codes-2024.yaml"

# The five statistical categories of the code table.
PRESENT = "present"
APPROVED_ACTIVITY = "approved_activity"
AUTHORISED = "authorised"
UNAUTHORISED = "unauthorised"
NOT_POSSIBLE = "not_possible"
BASE_CATEGORIES = (PRESENT, APPROVED_ACTIVITY, AUTHORISED, UNAUTHORISED, NOT_POSSIBLE)

# Derived categories the condition language offers, as unions of base categories.
# "attending" is what the DfE counts as attendance; "absent" is authorised + unauthorised;
# "possible" is every session that enters the denominator of a rate.
DERIVED_CATEGORIES = {
    "attending": (PRESENT, APPROVED_ACTIVITY),
    "absent": (AUTHORISED, UNAUTHORISED),
    "possible": (PRESENT, APPROVED_ACTIVITY, AUTHORISED, UNAUTHORISED),
}
CATEGORIES = {**{c: (c,) for c in BASE_CATEGORIES}, **DERIVED_CATEGORIES}

# What each category means, in words a parent can read (`rollbook render` publishes these).
CATEGORY_MEANINGS = {
    PRESENT: "present at school",
    APPROVED_ACTIVITY: "attending an approved educational activity away from the school",
    AUTHORISED: "authorised absence",
    UNAUTHORISED: "unauthorised absence",
    NOT_POSSIBLE: "not a possible session: in no count of attendance or absence",
    "attending": "attendance: present at school or at an approved educational activity",
    "absent": "absence, authorised or unauthorised",
    "possible": "a possible session: every session except those that are not possible",
}

# Each rate is the sessions of this category as a share of possible sessions (DfE definitions).
RATE_NUMERATORS = {"attendance": "attending", "absence": "absent", "authorised_absence": AUTHORISED,
                   "unauthorised_absence": UNAUTHORISED}


@dataclass(frozen=True)
class Code:
    """One attendance code and its statistical meaning."""

    symbol: str
    category: str
    group: str
    meaning: str

    @property
    def possible(self) -> bool:
        return self.category != NOT_POSSIBLE

    @property
    def attending(self) -> bool:
        return self.category in DERIVED_CATEGORIES["attending"]


@dataclass(frozen=True)
class CodeCatalogue:
    """The code set in force: symbol -> Code, plus retired symbols with the reason."""

    version: str
    codes: dict[str, Code]
    retired: dict[str, str]

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.codes

    def codes_in(self, category: str) -> frozenset[str]:
        """Symbols whose base category belongs to `category` (base or derived)."""
        members = CATEGORIES[category]
        return frozenset(s for s, c in self.codes.items() if c.category in members)

    def category_of(self, symbol: str) -> str:
        return self.codes[symbol].category


@lru_cache(maxsize=None)
def national_codes() -> CodeCatalogue:
    """The national 2024 code set, loaded once from the data file."""
    # libyaml when present: the pure-Python loader takes ~40 ms of every command on this file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(CATALOGUE_PATH.read_text(encoding="utf-8"), Loader=loader)
    codes = {}
    for symbol, entry in raw["codes"].items():
        if entry["category"] not in BASE_CATEGORIES:
            raise ValueError(f"{CATALOGUE_PATH}: code {symbol!r} has unknown category {entry['category']!r}")
        codes[str(symbol)] = Code(str(symbol), entry["category"], entry["group"], entry["meaning"])
    return CodeCatalogue(str(raw["version"]), codes, {str(k): v for k, v in raw.get("retired", {}).items()})
