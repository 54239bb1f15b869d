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


_SQL_TYPES = {BOOLEAN: "BOOLEAN", NUMBER: "DECIMAL(18,6)", TEXT: "VARCHAR", DATE: "DATE"}


def type_attribute_columns(connection, table: str, needed: dict[str, str]) -> tuple[list[str], list[str]]:
    """Give the pupils columns a policy names their declared types. Returns (problems, warnings).

    Columns the register already typed are left alone. A value that does not convert is never
    guessed into an empty one: the problem names the pupil and the value. A column the register
    lacks altogether is added empty (undefined for every pupil, so no condition on it is true)
    and a warning says so.
    """
    columns = {name: kind.upper() for name, kind, *_ in connection.execute(f"DESCRIBE {table}").fetchall()}
    problems, warnings = [], []
    replacements = []
    additions = []
    for name, kind in sorted(needed.items()):
        if name not in columns:
            warnings.append(f"the pupils table has no `{name}` column: pupil.{name} is undefined for every pupil, "
                            "so conditions that need it are never true")
            additions.append(f"NULL::{_SQL_TYPES[kind]} AS \"{name}\"")
            continue
        sql_type = _SQL_TYPES[kind]
        if columns[name].startswith(sql_type.split("(")[0]):
            continue
        text = f"nullif(trim(CAST(\"{name}\" AS VARCHAR)), '')"
        if kind == BOOLEAN:
            trues = ", ".join(f"'{w}'" for w in TRUE_WORDS)
            falses = ", ".join(f"'{w}'" for w in FALSE_WORDS if w)
            converted = f"CASE WHEN lower({text}) IN ({trues}) THEN true WHEN lower({text}) IN ({falses}) THEN false END"
        else:
            converted = f"TRY_CAST({text} AS {sql_type})"
        bad = connection.execute(f"SELECT pupil_id, \"{name}\" FROM {table} WHERE {text} IS NOT NULL AND ({converted}) IS NULL "
                                 "ORDER BY pupil_id LIMIT 5").fetchall()
        if bad:
            total = connection.execute(f"SELECT count(*) FROM {table} WHERE {text} IS NOT NULL AND ({converted}) IS NULL").fetchone()[0]
            shown = ", ".join(f"{pid}: {value!r}" for pid, value in bad)
            problems.append(f"pupils column `{name}` must be {kind}, but {total} value(s) are not (e.g. {shown})")
            continue
        replacements.append(f"{converted} AS \"{name}\"")
    if (replacements or additions) and not problems:
        replace = f" REPLACE ({', '.join(replacements)})" if replacements else ""
        added = "".join(", " + a for a in additions)
        connection.execute(f"CREATE OR REPLACE TABLE {table}_typed AS SELECT *{replace}{added} FROM {table}")
        connection.execute(f"DROP TABLE {table}")
        connection.execute(f"ALTER TABLE {table}_typed RENAME TO {table}")
    return problems, warnings
