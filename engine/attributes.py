"""Built-in pupil attributes: the names conditions may use as `pupil.<name>`, and their types.

The register's pupils table may carry these columns (and any others a policy declares under
`attributes:`). Register loading and the checker both read this table.
"""

BOOLEAN = "boolean"
NUMBER = "number"
TEXT = "text"
DATE = "date"

BUILTIN_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "year_group": (TEXT, "National curriculum year group as the MIS writes it: N1, N2, R, 1 ... 13"),
    "reg_group": (TEXT, "Registration group (class)"),
    "date_of_birth": (DATE, "Date of birth"),
    "joined_on": (DATE, "First day on roll"),
    "left_on": (DATE, "Last day on roll (empty while on roll)"),
    "sen": (TEXT, "SEN provision: N (none), K (SEN support), E (EHC plan)"),
    "ehcp": (BOOLEAN, "Has an education, health and care plan"),
    "fsm": (BOOLEAN, "Eligible for free school meals"),
    "cin": (BOOLEAN, "Child in need"),
    "social_worker": (BOOLEAN, "Has a social worker"),
    "lac": (BOOLEAN, "Looked-after child"),
}

# Text values read as true / false in boolean attribute columns (compared case-insensitively).
TRUE_WORDS = ("true", "yes", "y", "1")
FALSE_WORDS = ("false", "no", "n", "0", "")
