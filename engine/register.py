"""Load a register (marks, pupils, calendar) into canonical DuckDB tables, or say exactly why not.

`load_register(path_or_paths)` reads a register folder (``marks.*``, ``pupils.*``, optional
``calendar.*``, each ``.csv``, ``.parquet`` or ``.jsonl``) or explicit files, validates every row
with set-based SQL, and returns a `RegisterLoad`: either a `Register` whose tables are ready for
the metrics stage, or ``register=None`` and the list of problems (file, row, column, message,
hint). Nothing is dropped or guessed: one bad row anywhere and no table is created.

Canonical tables (created in the DuckDB connection, replacing tables of the same name)
-------------------------------------------------------------------------------------
``marks``, one row per pupil per session::

    pupil_id     ENUM      of the pupils' ids (type rb_pupil_<hash>, see `id_types`)
    school_id    ENUM      of the pupils' schools (rb_school_<hash>) when pupils have a school_id
                           column; else VARCHAR, '' when the marks have no school_id column either
    date         DATE
    session      ENUM      'AM' | 'PM' (type rb_session_<hash>, see `enum_type`)
    code         ENUM      a symbol of the national code catalogue (engine.codes); the type
                           (rb_code_<hash>) has every code of the catalogue, in sorted order
    minutes_late INTEGER   NULL when not given; never negative

``pupils``, one row per pupil per school (the same pupil_id may be on roll at two schools)::

    pupil_id      ENUM      the type of marks.pupil_id
    school_id     ENUM      the type of marks.school_id (VARCHAR when that is)
    year_group    VARCHAR   as written ('R', '7', ...); NULL if not given
    reg_group     VARCHAR
    date_of_birth DATE
    joined_on     DATE      first day on roll, inclusive; NULL = on roll from the start
    left_on       DATE      last day on roll, inclusive; NULL = still on roll
    <attributes>            every further column, in file order: the known boolean flags
                            (BOOLEAN_ATTRIBUTES) as BOOLEAN, the known dates (DATE_ATTRIBUTES)
                            as DATE, `sen` as VARCHAR 'N' | 'K' | 'E', anything else as text
                            (or its own type when read from Parquet)

``calendar``: see `engine.calendar` (school_id, date, academic_year, term, half_term, open_am,
open_pm, school_day, school_week, week_start, then any extra columns of a calendar file as text).

Row numbers in problems: for CSV, `row` is the line number in the file with the header as line 1
(so the first data row is line 2); for JSON Lines, the line number (first record = line 1); for
Parquet, the 1-based row index. `RegisterProblem.row_unit` says which ('line' or 'row').
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import duckdb

from .calendar import (
    CALENDAR_COLUMNS, HALF_TERM_TERM, TERM_HALVES, TERMS, build_calendar_table, infer_calendar,
)
from .codes import national_codes
from .diagnostics import did_you_mean

MAX_PROBLEMS = 200
ROLES = ("marks", "pupils", "calendar")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}

MARKS_REQUIRED = ("pupil_id", "date", "session", "code")
MARKS_OPTIONAL = ("minutes_late", "school_id")
PUPILS_REQUIRED = ("pupil_id",)
PUPILS_STANDARD = ("pupil_id", "school_id", "year_group", "reg_group", "date_of_birth", "joined_on", "left_on")
CALENDAR_REQUIRED = ("date", "term", "half_term")
CALENDAR_OPTIONAL = ("school_id", "open_am", "open_pm")
# Columns Rollbook derives from the dates; a calendar file may not supply its own.
CALENDAR_DERIVED = ("academic_year", "school_day", "school_week", "week_start")

# Pupil attributes with a known type. Anything else is kept as text.
BOOLEAN_ATTRIBUTES = ("ehcp", "fsm", "cin", "lac", "social_worker", "cp", "young_carer", "pupil_premium", "eal")
DATE_ATTRIBUTES = ("date_of_birth", "joined_on", "left_on", "integration_end")
SEN_CODES = ("N", "K", "E")
TRUE_WORDS = ("true", "yes", "y", "1")
FALSE_WORDS = ("false", "no", "n", "0")

DATE_HINT = "write dates as YYYY-MM-DD, e.g. 2025-09-03"


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class RegisterProblem:
    """One reason a register cannot be loaded. `row` is None for a problem with a whole file."""

    file: str
    row: int | None
    column: str | None
    message: str
    hint: str | None = None
    row_unit: str = "line"  # 'line' (CSV: header is line 1; JSONL) or 'row' (Parquet, 1-based)

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" {self.row_unit} {self.row}"
        if self.column:
            where += f", column {self.column}"
        text = f"{where}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict:
        return {"file": self.file, "row": self.row, "row_unit": self.row_unit, "column": self.column,
                "message": self.message, "hint": self.hint}


@dataclass
class Register:
    """A loaded register: canonical tables in `connection`, and what they came from."""

    connection: duckdb.DuckDBPyConnection
    calendar_inferred: bool
    calendar_note: str
    sources: dict[str, str]
    row_counts: dict[str, int]
    schools: tuple[str, ...]
    pupil_attributes: dict[str, str] = field(default_factory=dict)  # extra column -> DuckDB type
    marks_table: str = "marks"
    pupils_table: str = "pupils"
    calendar_table: str = "calendar"

    def label_school(self, school_id: str) -> None:
        """Give rows loaded without a school_id (a one-school register) the school's id, so its
        actions carry it. `rollbook run` and `rollbook serve` both do this, so the same data fed
        either way gives the same action ids."""
        if "" not in self.schools:
            return
        for table in (self.marks_table, self.pupils_table, self.calendar_table):
            self.connection.execute(f"UPDATE {table} SET school_id = ? WHERE school_id = ''", [school_id])
        self.schools = tuple(sorted({school_id if s == "" else s for s in self.schools}))


@dataclass
class RegisterLoad:
    """The outcome of load_register: a register, or None and every problem (up to a cap)."""

    register: Register | None
    problems: list[RegisterProblem]
    more_problems: int = 0  # problems found beyond the listed ones

    @property
    def ok(self) -> bool:
        return self.register is not None

    def report(self) -> str:
        """The problems as text, one per line, with the count of any left off."""
        lines = [str(p) for p in self.problems]
        if self.more_problems:
            lines.append(f"... and {self.more_problems} more problem(s) not listed")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _q(name: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote a string literal for SQL."""
    return "'" + value.replace("'", "''") + "'"


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join(_lit(v) for v in sorted(values))


def normalise_header(name: str) -> str:
    """Header matching is forgiving: BOM, surrounding whitespace and case are ignored, and inner
    runs of spaces or hyphens become underscores ('Pupil ID' -> 'pupil_id')."""
    name = name.replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s\-]+", "_", name)


def enum_type(con: duckdb.DuckDBPyConnection, stem: str, members: Iterable[str]) -> str:
    """The name of an ENUM type of `members` in sorted order, created in `con` if it is not there
    yet. The name carries a hash of the members, so a second load into the same connection reuses
    the type, and a type of the same stem with other members cannot be mistaken for it. Sorted
    members make ORDER BY give the same order as on text."""
    members = sorted(members)
    digest = hashlib.sha256("\n".join(members).encode()).hexdigest()[:12]
    name = f"{stem}_{digest}"
    con.execute(f"CREATE TYPE IF NOT EXISTS {name} AS ENUM ({', '.join(_lit(m) for m in members)})")
    return name


def enum_type_of(con: duckdb.DuckDBPyConnection, stem: str, column: str, table: str) -> str:
    """As `enum_type`, for the distinct non-NULL values of `column` in `table`, which may be too
    many to write out (a trust's pupils): the members and their hash are computed in DuckDB."""
    members = f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL"
    digest = con.execute(f"SELECT sha256(coalesce(string_agg({column}, chr(10) ORDER BY {column}), '')) FROM ({members})").fetchone()[0]
    name = f"{stem}_{digest[:12]}"
    con.execute(f"CREATE TYPE IF NOT EXISTS {name} AS ENUM ({members} ORDER BY 1)")
    return name


def _strict_date(x: str) -> str:
    """SQL: the DATE written as YYYY-MM-DD in text expression `x`, else NULL. (strptime alone
    also takes '2025-9-3  ', ' 025-09-03' as year 25, or '1-09-03   ' as year 1: digits first.)"""
    return (f"CASE WHEN length({x}) = 10 AND regexp_full_match({x}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') "
            f"THEN CAST(try_strptime({x}, '%Y-%m-%d') AS DATE) END")


def _date_from(col: str, typ: str, trim: bool = False) -> tuple[str, str | None]:
    """(expression for a DATE, expression for the raw text when it is not a valid date).
    `trim`: surrounding spaces are ignored and a blank text is an empty date (as in CSV)."""
    c = _q(col)
    if typ == "DATE":
        return c, None
    if typ.startswith("TIMESTAMP"):
        ok = f"CAST({c} AS DATE) = {c}"
        return f"CASE WHEN {ok} THEN CAST({c} AS DATE) END", f"CASE WHEN NOT ({ok}) THEN CAST({c} AS VARCHAR) END"
    text = c if typ == "VARCHAR" else f"CAST({c} AS VARCHAR)"
    if trim:
        text = f"NULLIF(trim({text}), '')"
    parsed = _strict_date(text)
    return parsed, f"CASE WHEN {text} IS NOT NULL AND ({parsed}) IS NULL THEN {text} END"


def _text_from(col: str, typ: str, trim: bool = True) -> str:
    c = _q(col)
    if typ != "VARCHAR":
        return f"CAST({c} AS VARCHAR)"
    return f"NULLIF(trim({c}), '')" if trim else c


def _bool_from(col: str, typ: str) -> tuple[str, str]:
    c = _q(col)
    if typ == "BOOLEAN":
        return c, "NULL"
    text = f"lower(trim(CAST({c} AS VARCHAR)))"
    value = f"CASE WHEN {text} IN ({_sql_list(TRUE_WORDS)}) THEN true WHEN {text} IN ({_sql_list(FALSE_WORDS)}) THEN false END"
    bad = f"CASE WHEN NULLIF({text}, '') IS NOT NULL AND ({value}) IS NULL THEN CAST({c} AS VARCHAR) END"
    return value, bad


class _RowLocator:
    """Maps a staged table's rowid (its record index in file order, rejected records excluded) to
    the row number reported to people (see the module docstring)."""

    def __init__(self, path: Path, fmt: str, records: int, rejected_lines: Sequence[int] = ()):
        self.path, self.fmt, self.records = path, fmt, records
        self.rejected = sorted(set(rejected_lines))
        self.unit = "row" if fmt == "parquet" else "line"
        self._simple: bool | None = None
        self._record_lines: list[int] | None = None

    def rows(self, rowids: Iterable[int]) -> dict[int, int]:
        rowids = sorted(set(rowids))
        if self.fmt == "parquet":
            return {r: r + 1 for r in rowids}
        first = 2 if self.fmt == "csv" else 1  # the line of the first record
        if self._simple is None:
            self._simple = self._simple_layout(first)
        if self._simple:
            out = {}
            for r in rowids:
                line = r + first
                for rejected in self.rejected:  # good records fill the lines rejects leave free
                    if rejected <= line:
                        line += 1
                out[r] = line
            return out
        lines = self._good_record_lines()
        return {r: lines[r] if r < len(lines) else None for r in rowids}

    def _simple_layout(self, first: int) -> bool:
        """True when every physical line after the header is one record (no blank lines, no
        quoted line breaks): then record k sits on line k + first, shifted past rejected lines.
        Counting newlines is cheap; only files that fail this walk the slow path."""
        newlines, size, blank, previous = 0, 0, False, b"\n"
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 24):
                newlines += chunk.count(b"\n")
                blank = blank or b"\n\n" in chunk or b"\n\r\n" in chunk or (previous == b"\n" and chunk[:1] in (b"\n", b"\r"))
                previous, size = chunk[-1:], size + len(chunk)
        lines = newlines + (1 if size and previous != b"\n" else 0)
        return not blank and lines == self.records + len(self.rejected) + (first - 1)

    def _good_record_lines(self) -> list[int]:
        """Slow path: walk the file with the csv module to find where each record starts."""
        if self._record_lines is not None:
            return self._record_lines
        rejected = set(self.rejected)
        starts: list[int] = []
        with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as f:
            if self.fmt == "csv":
                reader = csv.reader(f)
                next(reader, None)
                line = reader.line_num
                for record in reader:
                    start = line + 1
                    line = reader.line_num
                    if record and any(field != "" for field in record) or len(record) > 1:
                        if start not in rejected:
                            starts.append(start)
            else:
                for number, text in enumerate(f, 1):
                    if text.strip():
                        starts.append(number)
        self._record_lines = starts
        return starts


def _physical_lines(path: Path, numbers: Sequence[int]) -> dict[int, int]:
    """DuckDB numbers a rejected CSV line by counting records (blank lines included) from the
    header as 1, so a quoted value that spans lines shifts every later number. Map each such
    number to the physical line where that record starts. Files without a quote character cannot
    hold a multi-line record: there the numbers are already physical."""
    wanted = set(numbers)
    if not wanted:
        return {}
    quoted = False
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            if b'"' in chunk:
                quoted = True
                break
    out = {n: n for n in wanted}
    if not quoted:
        return out
    last, record, line = max(wanted), 0, 0
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.reader(f)
        try:
            for _ in reader:
                record += 1
                if record in wanted:
                    out[record] = line + 1
                line = reader.line_num
                if record >= last:
                    break
        except csv.Error:  # a line the csv module cannot split: keep DuckDB's numbers from here on
            pass
    return out


@dataclass
class _Source:
    """One input file: how to read it, and its columns. Nothing is materialised until a stage_*
    method creates the typed table, in a single pass over the file."""

    role: str
    path: Path
    fmt: str
    columns: dict[str, tuple[str, str]]  # normalised name -> (source column name, source type)
    relation: str  # SQL that reads the file (table function)
    header_width: int = 0
    rows: int = 0
    locator: _RowLocator | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def has(self, column: str) -> bool:
        return column in self.columns


class _Problems:
    """Collects problems, keeping at most `limit` listed and counting the rest."""

    def __init__(self, limit: int):
        self.limit = limit
        self.items: list[RegisterProblem] = []
        self.total = 0

    def add(self, problem: RegisterProblem) -> None:
        self.total += 1
        self.items.append(problem)

    def counted(self, n: int) -> None:
        """Record n problems found by a count whose rows were not all fetched."""
        self.total += n

    def __bool__(self) -> bool:
        return self.total > 0

    def result(self) -> tuple[list[RegisterProblem], int]:
        def key(p: RegisterProblem):
            return (p.row is not None, p.file, p.row or 0, p.column or "")

        listed = sorted(self.items, key=key)[: self.limit]
        return listed, self.total - len(listed)


# --------------------------------------------------------------------------- the loader


def load_register(path_or_paths, *, connection: duckdb.DuckDBPyConnection | None = None,
                  max_problems: int = MAX_PROBLEMS) -> RegisterLoad:
    """Load and validate a register into canonical tables (see the module docstring).

    `path_or_paths`: a folder holding marks.*, pupils.* and optionally calendar.*; a dict
    {"marks": path, "pupils": path, "calendar": path} (calendar optional); or a list of files
    named marks.*, pupils.*, calendar.*. Formats by extension: .csv, .parquet, .jsonl.

    Never raises for bad input: returns RegisterLoad(register, problems). `register` is None when
    there is any problem; `problems` lists up to `max_problems` of them in file and row order and
    `more_problems` counts the rest.
    """
    # DuckDB draws a progress bar on stdout for long queries; on a pipe that would corrupt the
    # actions written there, so it is off.
    con = connection if connection is not None else duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    loader = _Loader(con, max_problems)
    try:
        register = loader.run(path_or_paths)
    finally:
        loader.drop_staging()
    problems, more = loader.problems.result()
    return RegisterLoad(None if problems or more else register, problems, more)


class _Loader:
    marks_table = "_rb_marks"

    def __init__(self, con: duckdb.DuckDBPyConnection, max_problems: int):
        self.con = con
        self.max = max_problems
        self.problems = _Problems(max_problems)
        self.staging: list[str] = []
        self.catalogue = national_codes()
        self.calendar_school_text = False
        # Every valid code, not only those in the file: a policy may name any of them.
        self.code_type = enum_type(con, "rb_code", self.catalogue.codes)
        self.session_type = enum_type(con, "rb_session", ("AM", "PM"))

    # -- plumbing -----------------------------------------------------------------------------

    def sql(self, query: str, params=None):
        return self.con.execute(query, params or [])

    def problem(self, src: _Source | str, row: int | None, column: str | None, message: str, hint: str | None = None) -> None:
        if isinstance(src, _Source):
            # Before the file is staged (a missing column) there is no locator yet: the unit
            # follows from the format.
            unit = src.locator.unit if src.locator else ("row" if src.fmt == "parquet" else "line")
            self.problems.add(RegisterProblem(src.name, row, column, message, hint, unit))
        else:
            self.problems.add(RegisterProblem(src, row, column, message, hint))

    def drop_staging(self) -> None:
        for table in self.staging:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        self.staging.clear()

    def row_check(self, src: _Source, column: str, condition: str, select: str, message, hint=None,
                  count: int | None = None, table: str | None = None) -> int:
        """Report every row of `src`'s staged table (or `table`, a query with a `_rowid` column)
        matching `condition`: fetch the first rows in file order, count the rest. `select` lists
        the columns `message(row)` and `hint(row)` read (as a dict)."""
        source = table
        if count is None:
            count = self.sql(f"SELECT count(*) FROM {source} t WHERE {condition}").fetchone()[0]
        if not count:
            return 0
        cursor = self.sql(f"SELECT _rowid, {select} FROM {source} t WHERE {condition} ORDER BY _rowid LIMIT {self.max}")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r)) for r in cursor.fetchall()]
        lines = src.locator.rows(r["_rowid"] for r in rows)
        for r in rows:
            self.problem(src, lines[r["_rowid"]], column, message(r), hint(r) if callable(hint) else hint)
        self.problems.counted(count - len(rows))
        return count

    # -- sources ------------------------------------------------------------------------------

    def resolve(self, path_or_paths) -> dict[str, Path]:
        """Which file plays which role."""
        found: dict[str, list[Path]] = {role: [] for role in ROLES}
        if isinstance(path_or_paths, Mapping):
            for role, path in path_or_paths.items():
                if role not in ROLES:
                    self.problem("register", None, None, f"unknown register part {role!r}", did_you_mean(role, ROLES))
                elif path is not None:
                    found[role].append(Path(path))
        else:
            paths = [Path(path_or_paths)] if isinstance(path_or_paths, (str, Path)) else [Path(p) for p in path_or_paths]
            for path in paths:
                if path.is_dir():
                    for child in sorted(path.iterdir()):
                        stem, ext = child.stem.lower(), child.suffix.lower()
                        if stem in ROLES and ext in FORMATS:
                            found[stem].append(child)
                    if not any(found.values()):
                        self.problem(str(path), None, None, "no register files in this folder",
                                     "a register folder holds marks.csv (or .parquet/.jsonl), pupils.csv and optionally calendar.csv")
                else:
                    stem = path.stem.lower()
                    role = next((r for r in ROLES if stem == r or stem.startswith(r)), None)
                    if role is None:
                        self.problem(str(path), None, None, "cannot tell which register part this file is",
                                     "name it marks.*, pupils.* or calendar.*, or pass a dict {'marks': ..., 'pupils': ...}")
                    else:
                        found[role].append(path)
        chosen: dict[str, Path] = {}
        for role in ROLES:
            paths = found[role]
            if len(paths) > 1:
                self.problem(str(paths[0].parent), None, None,
                             f"more than one {role} file: {', '.join(p.name for p in paths)}", "keep exactly one")
            elif paths:
                path = paths[0]
                if path.suffix.lower() not in FORMATS:
                    self.problem(str(path), None, None, f"unsupported file type {path.suffix!r}", "use .csv, .parquet or .jsonl")
                elif not path.is_file():
                    self.problem(str(path), None, None, "file not found")
                else:
                    chosen[role] = path
            elif role != "calendar":
                self.problem("register", None, None, f"no {role} file", f"add {role}.csv (or .parquet or .jsonl)")
        return chosen

    def describe(self, role: str, path: Path) -> _Source | None:
        """Find a file's columns and types without reading its rows (CSV: the header line;
        Parquet: the footer; JSON Lines: a scan to collect the keys)."""
        fmt = FORMATS[path.suffix.lower()]
        p = _lit(str(path))
        try:
            if fmt == "csv":
                header = self.read_csv_header(path)
                if header is None:
                    return None
                if not header:
                    self.problem(path.name, 1, None, "the file is empty", "the first line must be the header")
                    return None
                # Positional names: the header's own text may be anything; we match it ourselves.
                source_names = [f"c{i}" for i in range(len(header))]
                types = ["VARCHAR"] * len(header)
                columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in source_names) + "}"
                relation = (f"read_csv({p}, auto_detect = false, header = true, delim = ',', quote = '\"', escape = '\"', "
                            f"columns = {columns}, store_rejects = true, rejects_table = '_rb_rejects_{role}', "
                            f"rejects_scan = '_rb_scans_{role}', rejects_limit = 0)")
                self.staging += [f"_rb_rejects_{role}", f"_rb_scans_{role}"]
            elif fmt == "parquet":
                relation = f"read_parquet({p})"
                described = self.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
                header = source_names = [d[0] for d in described]
                types = [d[1] for d in described]
            else:
                keys = self.sql(f"DESCRIBE SELECT * FROM read_json({p}, format = 'newline_delimited', sample_size = -1)").fetchall()
                header = source_names = [k[0] for k in keys]
                types = ["VARCHAR"] * len(header)
                columns = "{" + ", ".join(f"{_lit(k)}: 'VARCHAR'" for k in header) + "}"
                relation = f"read_json({p}, format = 'newline_delimited', columns = {columns})"
        except duckdb.Error as error:
            self.file_error(path, error)
            return None
        columns: dict[str, tuple[str, str]] = {}
        for original, source, typ in zip(header, source_names, types):
            name = normalise_header(original)
            if not name:
                self.problem(path.name, 1 if fmt == "csv" else None, None, "a column has no name", "every column needs a header")
            elif name in columns:
                self.problem(path.name, 1 if fmt == "csv" else None, name, f"column {name!r} appears twice", "keep one")
            else:
                columns[name] = (source, typ)
        return _Source(role, path, fmt, columns, relation, len(header))

    def file_error(self, path: Path, error: Exception) -> None:
        if FORMATS.get(path.suffix.lower()) == "jsonl" and self.jsonl_line_problems(path):
            return
        message = str(error).split("\n")[0]
        hint = "save the file as UTF-8" if "unicode" in message.lower() or "utf" in message.lower() else None
        self.problem(path.name, None, None, f"cannot read the file: {message}", hint)

    def jsonl_line_problems(self, path: Path) -> int:
        """DuckDB reports a malformed JSON Lines record as a whole-file error whose line number is
        off by one: find the lines that are not UTF-8 JSON objects ourselves, each with its line.
        Returns how many were found (0: the reader's own message stands)."""
        found = 0
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                reason = None
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    reason, hint = "the line is not valid UTF-8 text", "save the file as UTF-8"
                else:
                    if number == 1 and text.startswith("\ufeff"):
                        reason, hint = "the file starts with a byte order mark (BOM)", "save JSON Lines as UTF-8 without BOM"
                    elif text.strip():
                        try:
                            value = json.loads(text)
                        except ValueError as error:
                            reason, hint = f"not valid JSON: {error.args[0].split(':')[0]}", "write one JSON object per line"
                        else:
                            if not isinstance(value, dict):
                                reason, hint = "the line is not a JSON object", "write one JSON object per line"
                if reason is None:
                    continue
                found += 1
                if found <= self.max:
                    self.problem(path.name, number, None, reason, hint)
                else:
                    self.problems.counted(1)
        return found

    def materialise(self, src: _Source, table: str, select: Sequence[str]) -> bool:
        """Create `table` from one pass over `src` with the typed `select` list; its rowid is the
        record's position in the file (DuckDB preserves insertion order). Records the CSV
        reader could not split or decode are reported with their line numbers."""
        self.staging.append(table)
        try:
            self.sql(f"CREATE OR REPLACE TABLE {table} AS SELECT {', '.join(select)} FROM {src.relation}")
        except duckdb.Error as error:
            self.file_error(src.path, error)
            return False
        rejected = self.report_rejects(src) if src.fmt == "csv" else []
        src.rows = self.sql(f"SELECT count(*) FROM {table}").fetchone()[0]
        src.locator = _RowLocator(src.path, src.fmt, src.rows, rejected)
        return True

    def read_csv_header(self, path: Path) -> list[str] | None:
        with open(path, "rb") as f:
            first = f.readline(1 << 20)
        try:
            text = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.problem(path.name, 1, None, "the header is not UTF-8 text", "save the file as UTF-8 (with or without BOM)")
            return None
        if not text.strip():
            return []
        header = next(csv.reader(io.StringIO(text)))
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            self.problem(path.name, 1, None, "the header has a single column", "the file must be comma-separated")
            return None
        return header

    def report_rejects(self, src: _Source) -> list[int]:
        """Rows DuckDB's CSV reader could not split into the header's columns, or could not decode."""
        path = src.path
        # DuckDB stores one reject per missing column of a short line ('Found: 2', 'Found: 3', ...):
        # keep the first per line (the true count of fields), so each line is one problem.
        rows = self.sql(f"""SELECT line, arg_min(error_type, coalesce(column_idx, 0)), arg_min(error_message, coalesce(column_idx, 0))
                            FROM _rb_rejects_{src.role} GROUP BY line ORDER BY line""").fetchall()
        physical = _physical_lines(path, [int(r[0]) for r in rows])
        rows = [(physical[int(line)], error_type, message) for line, error_type, message in rows]
        for line, error_type, message in rows[: self.max]:
            if error_type == "INVALID ENCODING":
                self.problem(path.name, int(line), None, "the line is not valid UTF-8 text", "save the file as UTF-8")
            elif error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
                found = re.search(r"Found: (\d+)", message or "")
                self.problem(path.name, int(line), None,
                             f"expected {src.header_width} fields (as in the header), found {found.group(1) if found else 'a different number'}",
                             "quote values that contain commas")
            else:
                self.problem(path.name, int(line), None, f"cannot read the line: {message}")
        self.problems.counted(max(0, len(rows) - self.max))
        return [int(r[0]) for r in rows]

    def require(self, src: _Source, required: Sequence[str]) -> bool:
        ok = True
        for column in required:
            if not src.has(column):
                hint = did_you_mean(column, src.columns) or f"the header needs {', '.join(required)}"
                alike = [c for c in src.columns if did_you_mean(c, [column])]
                if alike:
                    hint = f"rename {alike[0]!r} to {column!r}"
                self.problem(src, None, column, f"missing column {column!r}", hint)
                ok = False
        return ok

    # -- the run ------------------------------------------------------------------------------

    def run(self, path_or_paths) -> Register | None:
        paths = self.resolve(path_or_paths)
        if self.problems:
            return None
        sources = {role: self.describe(role, path) for role, path in paths.items()}
        if self.problems:
            return None
        marks, pupils, calendar = sources["marks"], sources["pupils"], sources.get("calendar")
        ok = self.require(marks, MARKS_REQUIRED)
        ok &= self.require(pupils, PUPILS_REQUIRED)
        if calendar is not None:
            ok &= self.require(calendar, CALENDAR_REQUIRED)
            for column in CALENDAR_DERIVED:
                if calendar.has(column):
                    self.problem(calendar, None, column, f"column {column!r} is derived by Rollbook from the dates",
                                 "remove it from the calendar file")
                    ok = False
        if not ok:
            return None

        attributes = self.stage_pupils(pupils)
        if attributes is None:
            return None
        self.type_ids(pupils)
        if not self.stage_marks(marks, pupils):
            return None
        if not self.resolve_pupil_schools(marks, pupils):
            return None
        if calendar is not None and not self.stage_calendar(calendar):
            return None
        if self.problems:
            return None
        self.check_marks(marks, pupils, calendar)
        if self.problems:
            return None
        return self.finish(sources, attributes)

    def marks_school(self, marks: _Source, pupils: _Source) -> str | None:
        """Where the marks' school_id comes from: the marks' own column; else the pupils' single
        school (or '' when pupils have no school_id either); None: from each mark's pupil."""
        if marks.has("school_id"):
            return _text_from(*marks.columns["school_id"], trim=False)
        if not pupils.has("school_id"):
            return "''"
        names = self.sql("SELECT DISTINCT school_id FROM _rb_pupils WHERE school_id IS NOT NULL LIMIT 2").fetchall()
        return f"CAST({_lit(names[0][0])} AS {self.school_type})" if len(names) == 1 else None

    def resolve_pupil_schools(self, marks: _Source, pupils: _Source) -> bool:
        """Pupils without school_id take the marks' school, which must be a single one."""
        if pupils.has("school_id") or not marks.has("school_id"):
            return True
        names = [r[0] for r in self.sql(
            f"SELECT DISTINCT school_id FROM {self.marks_table} WHERE school_id IS NOT NULL ORDER BY 1 LIMIT 4").fetchall()]
        if len(names) > 1:
            shown = ", ".join(map(repr, names[:3])) + (", ..." if len(names) > 3 else "")
            self.problem(pupils, None, "school_id",
                         f"{pupils.name} has no school_id column, but {marks.name} names more than one school ({shown})",
                         "add school_id to the pupils file")
            return False
        if names:
            self.sql(f"UPDATE _rb_pupils SET school_id = {_lit(names[0])}")
        return True

    # -- pupils -------------------------------------------------------------------------------

    def stage_pupils(self, src: _Source) -> dict[str, str] | None:
        """Type the pupils file: standard columns first, then every attribute column in file order.
        Returns the attribute columns and their types (None if the file cannot be read)."""
        select, raw_checks, attributes = [], [], {}
        select.append(f"{_text_from(*src.columns['pupil_id'])} AS pupil_id")
        select.append(f"{_text_from(*src.columns['school_id']) if src.has('school_id') else chr(39) * 2} AS school_id")
        extra = [c for c in src.columns if c not in PUPILS_STANDARD]
        for column in ("year_group", "reg_group", "date_of_birth", "joined_on", "left_on", *extra):
            if column not in src.columns:  # an absent standard column is NULL of its type
                select.append(f"CAST(NULL AS {'DATE' if column in DATE_ATTRIBUTES else 'VARCHAR'}) AS {column}")
                continue
            name, typ = src.columns[column]
            if column in DATE_ATTRIBUTES:
                value, bad = _date_from(name, typ, trim=True)
                select.append(f"{value} AS {_q(column)}")
                if bad:
                    select.append(f"{bad} AS {_q('_bad_' + column)}")
                    raw_checks.append((column, "malformed date {value!r}", DATE_HINT))
                kind = "DATE"
            elif column in BOOLEAN_ATTRIBUTES:
                value, bad = _bool_from(name, typ)
                select += [f"{value} AS {_q(column)}", f"{bad} AS {_q('_bad_' + column)}"]
                raw_checks.append((column, "{value!r} is not a yes/no value", "use true/false, yes/no, y/n or 1/0"))
                kind = "BOOLEAN"
            elif column == "sen":
                text = f"upper(trim(CAST({_q(name)} AS VARCHAR)))"
                select.append(f"CASE WHEN {text} IN ({_sql_list(SEN_CODES)}) THEN {text} END AS sen")
                select.append(f"CASE WHEN NULLIF({text}, '') IS NOT NULL AND {text} NOT IN ({_sql_list(SEN_CODES)}) "
                              f"THEN CAST({_q(name)} AS VARCHAR) END AS _bad_sen")
                raw_checks.append(("sen", "{value!r} is not an SEN provision code",
                                   "use the census codes N (no special provision), K (SEN support) or E (EHC plan)"))
                kind = "VARCHAR"
            else:  # year_group, reg_group and unknown attributes: text (or the Parquet type)
                select.append(f"{_text_from(name, typ)} AS {_q(column)}")
                kind = "VARCHAR" if typ == "VARCHAR" or column in ("year_group", "reg_group") else typ
                if column in ("year_group", "reg_group") and typ != "VARCHAR":
                    select[-1] = f"CAST({_q(name)} AS VARCHAR) AS {column}"
            if column in extra:
                attributes[column] = kind
        table = "_rb_pupils"
        if not self.materialise(src, table, select):
            return None

        self.row_check(src, "pupil_id", "pupil_id IS NULL", "1", lambda r: "pupil_id is empty",
                       table=f"(SELECT rowid AS _rowid, * FROM {table})")
        if src.has("school_id"):
            self.row_check(src, "school_id", "school_id IS NULL", "1", lambda r: "school_id is empty",
                           "every row needs its school, or leave out the school_id column", table=f"(SELECT rowid AS _rowid, * FROM {table})")
        for column, template, hint in raw_checks:
            self.row_check(src, column, f"{_q('_bad_' + column)} IS NOT NULL", f"{_q('_bad_' + column)} AS value",
                           lambda r, t=template: t.format(value=r["value"]), hint, table=f"(SELECT rowid AS _rowid, * FROM {table})")
        self.row_check(src, "pupil_id", "_first <> _rowid",
                       "pupil_id, school_id, _first",
                       lambda r: f"pupil {r['pupil_id']!r} is listed more than once"
                                 + (f" at school {r['school_id']!r}" if r["school_id"] else "")
                                 + f" (first at {src.locator.unit} {src.locator.rows([r['_first']])[r['_first']]})",
                       "keep one row per pupil per school",
                       table=f"(SELECT rowid AS _rowid, pupil_id, school_id, min(rowid) OVER (PARTITION BY school_id, pupil_id) AS _first "
                             f"FROM {table} WHERE pupil_id IS NOT NULL)")
        self.row_check(src, "left_on", "joined_on > left_on", "pupil_id, joined_on, left_on",
                       lambda r: f"pupil {r['pupil_id']!r} left on {r['left_on']} before joining on {r['joined_on']}",
                       "joined_on is the first day on roll and left_on the last", table=f"(SELECT rowid AS _rowid, * FROM {table})")
        return attributes

    def type_ids(self, pupils: _Source) -> None:
        """Make the pupils' pupil_id, and school_id when the file has it, ENUMs of their values,
        the types the marks' ids are cast to: the metrics join marks to pupils on both, and
        integers compare much faster than text over a trust's year of marks. Without a school_id
        column the pupils' school is only known from the marks (resolve_pupil_schools) or is ''
        (relabelled by Register.label_school): it stays text."""
        self.pupil_type = enum_type_of(self.con, "rb_pupil", "pupil_id", "_rb_pupils")
        self.sql(f"ALTER TABLE _rb_pupils ALTER pupil_id SET DATA TYPE {self.pupil_type}")
        self.school_type = "VARCHAR"
        if pupils.has("school_id"):
            self.school_type = enum_type_of(self.con, "rb_school", "school_id", "_rb_pupils")
            self.sql(f"ALTER TABLE _rb_pupils ALTER school_id SET DATA TYPE {self.school_type}")

    # -- marks --------------------------------------------------------------------------------

    def stage_marks(self, src: _Source, pupils: _Source) -> bool:
        """Type the marks in one pass over the file. Values are not trimmed here (that costs a
        second on a trust's year); normalise_marks_whitespace fixes the rows that need it.

        session and code are ENUMs (rules compare codes with lists of codes: as integers that is
        a third faster on a trust's year). A value that is not a member is NULL there and kept as
        text in _bad_session / _bad_code for the checks to quote. So are pupil_id and school_id
        (see type_ids): a value that is not a pupil's (unknown, empty or padded) is kept as text
        in _bad_pupil_id / _bad_school_id."""
        cols = src.columns
        school = self.marks_school(src, pupils)
        self.fill_school_from_pupils = school is None
        pupil_text = _text_from(*cols["pupil_id"], trim=False)
        pupil_cast = f"TRY_CAST({pupil_text} AS {self.pupil_type})"
        if src.has("school_id") and self.school_type != "VARCHAR":
            school_text = school
            school = f"TRY_CAST({school_text} AS {self.school_type})"
            bad_school = f"CASE WHEN {school} IS NULL THEN {school_text} END"
        else:  # the school is text, or a pupil's (fill_marks_school), or the one school's
            bad_school = "CAST(NULL AS VARCHAR)"
        date_value, date_bad = _date_from(*cols["date"])
        session_text = _text_from(*cols["session"], trim=False)
        code_text = _text_from(*cols["code"], trim=False)
        canonical = f"{session_text} IN ('AM', 'PM')"
        select = [
            f"{pupil_cast} AS pupil_id",
            f"{school if school is not None else f'CAST(NULL AS {self.school_type})'} AS school_id",
            f"{date_value} AS date",
            # Canonical values pass through untouched; only others pay for normalising.
            f"TRY_CAST(CASE WHEN {canonical} THEN {session_text} ELSE upper(trim({session_text})) END AS {self.session_type}) AS session",
            f"TRY_CAST({code_text} AS {self.code_type}) AS code",
        ]
        if src.has("minutes_late"):
            column, typ = cols["minutes_late"]
            c = _q(column)
            if typ in ("VARCHAR",):
                # TRY_CAST: digits beyond INTEGER's range are a bad row, not an unreadable file.
                ok = f"regexp_full_match(trim({c}), '[0-9]+') AND TRY_CAST(trim({c}) AS INTEGER) IS NOT NULL"
                select.append(f"CASE WHEN {ok} THEN TRY_CAST(trim({c}) AS INTEGER) END AS minutes_late")
                select.append(f"CASE WHEN NULLIF(trim({c}), '') IS NOT NULL AND NOT ({ok}) THEN {c} END AS _bad_minutes")
            elif typ in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT"):
                select.append(f"CASE WHEN {c} >= 0 THEN TRY_CAST({c} AS INTEGER) END AS minutes_late")
                select.append(f"CASE WHEN {c} < 0 OR TRY_CAST({c} AS INTEGER) IS NULL AND {c} IS NOT NULL "
                              f"THEN CAST({c} AS VARCHAR) END AS _bad_minutes")
            else:
                select.append(f"TRY_CAST({c} AS INTEGER) AS minutes_late")
                select.append(f"CASE WHEN {c} IS NOT NULL AND ({c} < 0 OR TRY_CAST({c} AS INTEGER) IS NULL "
                              f"OR {c} <> TRY_CAST({c} AS INTEGER)) THEN CAST({c} AS VARCHAR) END AS _bad_minutes")
        else:
            select += ["CAST(NULL AS INTEGER) AS minutes_late", "CAST(NULL AS VARCHAR) AS _bad_minutes"]
        select.append(f"{date_bad or 'CAST(NULL AS VARCHAR)'} AS _bad_date")
        select.append(f"CASE WHEN NOT {canonical} AND upper(trim({session_text})) NOT IN ('AM', 'PM') "
                      f"THEN upper(trim({session_text})) END AS _bad_session")
        select.append(f"CASE WHEN TRY_CAST({code_text} AS {self.code_type}) IS NULL THEN {code_text} END AS _bad_code")
        select.append(f"CASE WHEN {pupil_cast} IS NULL THEN {pupil_text} END AS _bad_pupil_id")
        select.append(f"{bad_school} AS _bad_school_id")
        return self.materialise(src, self.marks_table, select)

    def normalise_marks_whitespace(self, marks: _Source) -> int:
        """Trim surrounding whitespace (and turn blanks into NULL) in the rows that have it.
        Done only when the first checks fail, so clean files never pay for it."""
        t = self.marks_table
        # A value with whitespace did not cast to its ENUM: its text is in _bad_*.
        school = "school_id" if self.school_type == "VARCHAR" else "_bad_school_id"
        columns = ["_bad_pupil_id", "_bad_session", "_bad_code", "_bad_date"] + ([school] if marks.has("school_id") else [])
        needs = " OR ".join(f"({c} <> trim({c}) OR {c} = '')" for c in columns)
        n = self.sql(f"SELECT count(*) FROM {t} WHERE {needs}").fetchone()[0]
        if n:
            trimmed_date = "NULLIF(trim(_bad_date), '')"
            trimmed_session = "NULLIF(upper(trim(_bad_session)), '')"
            trimmed_code = "NULLIF(trim(_bad_code), '')"
            trimmed_pupil = f"TRY_CAST(NULLIF(trim(_bad_pupil_id), '') AS {self.pupil_type})"
            trimmed_school = f"TRY_CAST(NULLIF(trim(_bad_school_id), '') AS {self.school_type})"
            if not marks.has("school_id"):
                schools = ""
            elif self.school_type == "VARCHAR":
                schools = " school_id = NULLIF(trim(school_id), ''),"
            else:
                schools = (f" school_id = coalesce(school_id, {trimmed_school}),"
                           f" _bad_school_id = CASE WHEN school_id IS NULL AND {trimmed_school} IS NULL"
                           f" THEN NULLIF(trim(_bad_school_id), '') END,")
            self.sql(f"""
                UPDATE {t} SET pupil_id = coalesce(pupil_id, {trimmed_pupil}),
                    _bad_pupil_id = CASE WHEN pupil_id IS NULL AND {trimmed_pupil} IS NULL THEN NULLIF(trim(_bad_pupil_id), '') END,{schools}
                    session = coalesce(session, TRY_CAST({trimmed_session} AS {self.session_type})),
                    _bad_session = CASE WHEN session IS NULL AND TRY_CAST({trimmed_session} AS {self.session_type}) IS NULL
                                   THEN {trimmed_session} END,
                    code = coalesce(code, TRY_CAST({trimmed_code} AS {self.code_type})),
                    _bad_code = CASE WHEN code IS NULL AND TRY_CAST({trimmed_code} AS {self.code_type}) IS NULL THEN {trimmed_code} END,
                    date = coalesce(date, {_strict_date(trimmed_date)}),
                    _bad_date = CASE WHEN date IS NULL AND ({_strict_date(trimmed_date)}) IS NULL THEN _bad_date END
                WHERE {needs}
            """)
        return n

    def fill_marks_school(self, marks: _Source, pupils: _Source) -> None:
        """Marks without school_id, pupils at several schools: each mark takes its pupil's school,
        which must be unambiguous."""
        t = self.marks_table
        self.row_check(
            marks, "pupil_id", "true", "pupil_id, schools",
            lambda r: f"pupil {r['pupil_id']!r} is on roll at {r['schools']} schools in {pupils.name}, and {marks.name} has no school_id column",
            "add school_id to the marks file",
            table=f"""(SELECT min(m.rowid) AS _rowid, m.pupil_id, any_value(p.n) AS schools FROM {t} m
                       JOIN (SELECT pupil_id, count(*) AS n FROM _rb_pupils GROUP BY pupil_id HAVING count(*) > 1) p
                       ON p.pupil_id = m.pupil_id GROUP BY m.pupil_id)""")
        if not self.problems:
            self.sql(f"UPDATE {t} SET school_id = p.school_id FROM _rb_pupils p WHERE p.pupil_id = {t}.pupil_id")

    def check_marks(self, marks: _Source, pupils: _Source, calendar: _Source | None) -> None:
        """Decide from two small aggregates whether the marks are clean (marks_look_clean); if
        they may not be, count every kind of problem exactly (row checks; then the join of every
        mark to its pupil and calendar day, with duplicates) and fetch the offending rows of each
        non-zero count."""
        if self.fill_school_from_pupils:
            self.fill_marks_school(marks, pupils)
            if self.problems:
                return
        row_checks = self.marks_row_checks(marks)
        relational = self.marks_relational_checks(marks, pupils, calendar)
        if self.marks_look_clean(marks, pupils, row_checks, relational, calendar is not None):
            return
        source = self.marks_relational_source(calendar is not None)

        def counts() -> dict[str, int]:
            # NULL checks in one scan; codes and sessions from a tiny GROUP BY (cheaper than
            # testing each of 9 million codes against a list).
            simple = [(i, c) for i, c in enumerate(row_checks) if c[0] not in ("code", "session")]
            filters = ", ".join(f"count(*) FILTER (WHERE {c[1]})" for _, c in simple)
            values = self.sql(f"SELECT {filters}, min(date), max(date) FROM {self.marks_table}").fetchone()
            found = {f"row:{i}": n for (i, _), n in zip(simple, values)}
            groups = self.sql(f"SELECT code, session, count(*) FROM {self.marks_table} GROUP BY ALL").fetchall()
            for i, check in enumerate(row_checks):
                if check[0] == "code":
                    found[f"row:{i}"] = sum(n for code, _, n in groups if code not in self.catalogue.codes)
                elif check[0] == "session":
                    found[f"row:{i}"] = sum(n for _, session, n in groups if session not in ("AM", "PM"))
            found.update(self.relational_counts(source, relational, *values[len(simple):]))
            return found

        found = counts()
        if any(found.values()) and self.normalise_marks_whitespace(marks):
            found = counts()
        if not any(found.values()):
            return
        # The error path: fetch the offending rows of every failing check.
        table = f"(SELECT rowid AS _rowid, * FROM {self.marks_table})"
        for i, (column, condition, select, message, hint) in enumerate(row_checks):
            if found[f"row:{i}"]:
                self.row_check(marks, column, condition, select, message, hint, count=found[f"row:{i}"], table=table)
        for name, (column, condition, select, message, hint) in relational.items():
            if found[name]:
                self.row_check(marks, column, condition, select, message, hint, count=found[name], table=source)
        if found["duplicate"]:
            self.report_duplicates(marks, found["duplicate"])

    # Above this many bits (128 MiB) in all of the per-pupil bitstrings of marks_look_clean (a
    # date far from the rest widens every pupil's), the exact queries decide instead.
    PUPIL_BITS_LIMIT = 2 ** 30

    def marks_look_clean(self, marks: _Source, pupils: _Source, row_checks: list[tuple],
                         relational: dict[str, tuple], with_calendar: bool) -> bool:
        """True only when every count of check_marks would be zero; False when any might not be
        (the exact queries then count and report). Joining nine million marks to their pupils and
        calendar days costs about as much as typing them; these two aggregates cost much less:

        - marks by (school_id, date, session, code), joined to the calendar: the checks that read
          only those columns, with the very conditions the exact queries use, weighted by count;
        - only when that finds nothing (so every date and session is valid), marks by (school_id,
          pupil_id), joined to pupils: unknown pupils (the same condition), a first mark other
          than Z before joined_on, a last mark after left_on, and duplicates as the pupil's marks
          less the distinct (date, session) keys in a bitstring over the register's dates.

        Duplicates of unknown pupils are counted here but not by the exact bitstring query; it
        does not matter, as an unmatched (school_id, pupil_id) always fails another check (an
        empty pupil_id or school_id, or an unknown pupil)."""
        t = self.marks_table
        by_day = {"school_id", "date", "session", "code"}
        day_checks = [c[1] for c in row_checks if c[0] in by_day]
        if "closed_session" in relational:
            day_checks.append(relational["closed_session"][1])
        calendar_cols = ", c.open_am, c.open_pm, c.date AS _calendar_date" if with_calendar else ""
        calendar_join = "LEFT JOIN _rb_calendar c ON c.school_id = d.school_id AND c.date = d.date" if with_calendar else ""
        filters = ", ".join(f"coalesce(sum(_n) FILTER (WHERE {condition}), 0)" for condition in day_checks)
        # A mark whose pupil_id or school_id is not a pupil's fails a check, or needs trimming:
        # with none, _bad_pupil_id and _bad_school_id are NULL throughout, as written here.
        *found, bad_minutes, bad_ids, first, last = self.sql(f"""
            SELECT {filters}, coalesce(sum(_bad_minutes), 0), coalesce(sum(_bad_ids), 0), min(date), max(date)
            FROM (SELECT d.school_id, d.date, d.session, d.code, d._n, d._bad_minutes, d._bad_ids,
                         NULL AS _bad_pupil_id, NULL AS _bad_school_id{calendar_cols}
                  FROM (SELECT school_id, date, session, code, count(*) AS _n, count(_bad_minutes) AS _bad_minutes,
                               count(_bad_pupil_id) + count(_bad_school_id) AS _bad_ids
                        FROM {t} GROUP BY school_id, date, session, code) d
                  {calendar_join})""").fetchone()
        if any(found) or bad_minutes or bad_ids or first is None:
            return False
        span = ((last - first).days + 1) * 2
        if pupils.rows * span > self.PUPIL_BITS_LIMIT:
            return False
        # Every date and session is valid by now (the first aggregate), so every mark has a key.
        key = f"date_diff('day', DATE '{first}', date) * 2 + CASE session WHEN 'PM' THEN 1 ELSE 0 END"
        unknown = relational["unknown_pupil"][1]
        found = self.sql(f"""
            SELECT count(*) FILTER (WHERE pupil_id IS NULL), count(*) FILTER (WHERE {unknown}),
                   count(*) FILTER (WHERE _first_not_z < joined_on), count(*) FILTER (WHERE _last > left_on),
                   coalesce(sum(_duplicates), 0)
            FROM (SELECT g.*, NULL AS _bad_pupil_id, NULL AS _bad_school_id, p.pupil_id AS _pupil, p.joined_on, p.left_on
                  FROM (SELECT school_id, pupil_id, min(date) FILTER (WHERE code <> 'Z') AS _first_not_z,
                               max(date) AS _last,
                               count(*) - bit_count(bitstring_agg({key}, 0, {span - 1})) AS _duplicates
                        FROM {t} GROUP BY school_id, pupil_id) g
                  LEFT JOIN _rb_pupils p ON p.school_id = g.school_id AND p.pupil_id = g.pupil_id)""").fetchone()
        return not any(found)

    def marks_row_checks(self, marks: _Source) -> list[tuple]:
        """(column, condition, columns to fetch, message(row), hint) for checks of a mark alone."""
        codes, retired = self.catalogue.codes, self.catalogue.retired

        def code_message(r):
            if r["code"] is None:
                return "code is empty"
            if r["code"] in retired:
                return f"code {r['code']!r} was retired in 2024 and is not accepted"
            return f"unknown attendance code {r['code']!r}"

        def code_hint(r):
            code = r["code"]
            if code is None:
                return "every mark needs a code"
            if code in retired:
                return retired[code]
            if code.upper() in codes:
                return f"codes are upper case: did you mean {code.upper()!r}?"
            return did_you_mean(code, codes) or f"valid codes: {' '.join(sorted(codes))}"

        def minutes_message(r):
            value = r["value"].strip()
            if re.fullmatch(r"-\s*[0-9]+(\.0*)?", value):
                return f"minutes_late {value!r} is negative"
            return f"minutes_late {value!r} is not a whole number of minutes"

        def date_message(r):
            raw = r["_bad_date"]
            return f"malformed date {raw!r}" if raw and raw.strip() else "date is empty"

        return [
            # An id that is not a pupil's is NULL, its text in _bad_*: empty only when both are.
            ("pupil_id", "pupil_id IS NULL AND _bad_pupil_id IS NULL", "1", lambda r: "pupil_id is empty", None),
            ("school_id", "school_id IS NULL AND _bad_school_id IS NULL" if marks.has("school_id") else "false", "1",
             lambda r: "school_id is empty", "every row needs its school, or leave out the school_id column"),
            ("date", "date IS NULL", "_bad_date", date_message, DATE_HINT),
            # A session or code that is not a member of its ENUM is NULL, its text in _bad_*.
            ("session", "session IS NULL", "_bad_session AS session",
             lambda r: f"session {r['session']!r} is not AM or PM" if r["session"] else "session is empty",
             "session is AM (morning) or PM (afternoon)"),
            ("code", "code IS NULL", "_bad_code AS code", code_message, code_hint),
            ("minutes_late", "_bad_minutes IS NOT NULL", "_bad_minutes AS value", minutes_message,
             "minutes_late is a whole number of minutes, 0 or more"),
        ]

    def marks_relational_source(self, with_calendar: bool) -> str:
        """The marks joined to their pupil (`_pupil` NULL when unknown) and, with a calendar file,
        to their calendar day (`_calendar_date` NULL when the calendar lacks the date).

        When pupil_id is unique across schools (the usual case: UPNs are national) the join is on
        pupil_id alone and the school is compared afterwards, which is much cheaper than hashing
        both strings for nine million marks."""
        unique = self.sql("SELECT count(*) = count(DISTINCT pupil_id) FROM _rb_pupils").fetchone()[0]
        if unique:
            match = "p.school_id = m.school_id"
            join = "p.pupil_id = m.pupil_id"
            pupil_cols = ", ".join(f"CASE WHEN {match} THEN p.{c} END AS {a}" for c, a in (
                ("_pid", "_pid"), ("pupil_id", "_pupil"), ("joined_on", "joined_on"), ("left_on", "left_on")))
        else:
            join = "p.school_id = m.school_id AND p.pupil_id = m.pupil_id"
            pupil_cols = "p._pid, p.pupil_id AS _pupil, p.joined_on, p.left_on"
        calendar_cols = ", c.open_am, c.open_pm, c.date AS _calendar_date" if with_calendar else ""
        # A calendar naming a school that is not a pupil's kept text school ids (stage_calendar):
        # a mark's school not a pupil's either then matches it by its text, as when all was text.
        school = "coalesce(CAST(m.school_id AS VARCHAR), m._bad_school_id)" if self.calendar_school_text else "m.school_id"
        calendar_join = f"LEFT JOIN _rb_calendar c ON c.school_id = {school} AND c.date = m.date" if with_calendar else ""
        return f"""(SELECT m.rowid AS _rowid, m.pupil_id, m.school_id, m._bad_pupil_id, m._bad_school_id, m.date, m.session, m.code,
                           {pupil_cols}{calendar_cols}
                    FROM {self.marks_table} m
                    LEFT JOIN (SELECT rowid AS _pid, pupil_id, school_id, joined_on, left_on FROM _rb_pupils) p ON {join}
                    {calendar_join})"""

    def marks_relational_checks(self, marks: _Source, pupils: _Source, calendar: _Source | None) -> dict[str, tuple]:
        """Checks that need each mark's pupil (and calendar day), over marks_relational_source."""
        at_school = lambda r: f" at school {r['school_id']!r}" if r["school_id"] else ""
        school_known = "(school_id IS NOT NULL OR _bad_school_id IS NOT NULL)" if marks.has("school_id") else "true"
        checks = {
            "unknown_pupil": ("pupil_id", f"(pupil_id IS NOT NULL OR _bad_pupil_id IS NOT NULL) AND {school_known} AND _pupil IS NULL",
                              "coalesce(CAST(pupil_id AS VARCHAR), _bad_pupil_id) AS pupil_id, coalesce(CAST(school_id AS VARCHAR), _bad_school_id) AS school_id",
                              lambda r: f"no pupil {r['pupil_id']!r}{at_school(r)} in {pupils.name}",
                              f"every pupil with marks needs a row in {pupils.name}"),
            "before_roll": ("date", "date < joined_on AND code <> 'Z'", "pupil_id, date, session, code, joined_on",
                            lambda r: f"mark {r['code']!r} on {r['date']} {r['session']} is before pupil {r['pupil_id']!r} joined on {r['joined_on']}",
                            "only Z (prospective pupil, not yet on roll) may be recorded before joined_on"),
            "after_roll": ("date", "date > left_on", "pupil_id, date, session, code, left_on",
                           lambda r: f"mark {r['code']!r} on {r['date']} {r['session']} is after pupil {r['pupil_id']!r} left on {r['left_on']}",
                           "left_on is the pupil's last day on roll; no marks may follow it"),
        }
        if calendar is not None:
            possible = _sql_list(self.catalogue.codes_in("possible"))
            checks["closed_session"] = (
                "date",
                f"date IS NOT NULL AND code IN ({possible}) AND session IN ('AM', 'PM') "
                "AND NOT coalesce(CASE session WHEN 'AM' THEN open_am ELSE open_pm END, false)",
                "pupil_id, date, session, code, _calendar_date",
                lambda r: (f"mark {r['code']!r} on {r['date']} {r['session']}: "
                           + (f"the date is not in {calendar.name}" if r["_calendar_date"] is None
                              else f"{calendar.name} says the school is closed for that session")),
                "a closed session may carry only codes that are not possible sessions (such as #); "
                "fix the calendar's open_am/open_pm or the mark",
            )
        return checks

    def relational_counts(self, source: str, checks: dict[str, tuple], first, last) -> dict[str, int]:
        """One pass over the joined marks: the count of each relational problem and of duplicate
        marks. Duplicates are counted with a bitstring over a dense (pupil, date, session) key when
        it fits in 2^28 bits (a trust's year is ~2^24), with a GROUP BY otherwise."""
        filters = [f"count(*) FILTER (WHERE {c[1]})" for c in checks.values()]
        n_pupils = self.sql("SELECT count(*) FROM _rb_pupils").fetchone()[0]
        span = ((last - first).days + 1) * 2 if first and last else 0
        use_bits = 0 < n_pupils * span <= 2 ** 28
        if use_bits:
            valid = "date IS NOT NULL AND session IN ('AM', 'PM') AND _pid IS NOT NULL"
            key = f"_pid * {span} + date_diff('day', DATE '{first}', date) * 2 + CASE session WHEN 'PM' THEN 1 ELSE 0 END"
            filters.append(f"count(*) FILTER (WHERE {valid}) - "
                           f"coalesce(bit_count(bitstring_agg(CASE WHEN {valid} THEN {key} END, 0, {n_pupils * span - 1})), 0)")
        values = self.sql(f"SELECT {', '.join(filters)} FROM {source}").fetchone()
        out = dict(zip(checks, values))
        if use_bits:
            out["duplicate"] = values[-1]
        else:
            out["duplicate"] = self.sql(f"""
                SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {self.marks_table}
                WHERE date IS NOT NULL AND session IN ('AM', 'PM')
                GROUP BY school_id, _bad_school_id, pupil_id, _bad_pupil_id, date, session HAVING count(*) > 1)
            """).fetchone()[0]
        return out

    def report_duplicates(self, marks: _Source, count: int) -> None:
        t = self.marks_table
        # An id that is not a pupil's is NULL, its text in _bad_*: the pair is the id. As when
        # ids were text, a mark with an empty one (both NULL) matches no group.
        same = " AND ".join(f"d.{c} IS NOT DISTINCT FROM m.{c}" for c in ("school_id", "_bad_school_id", "pupil_id", "_bad_pupil_id"))
        dupes = f"""(SELECT m.rowid AS _rowid, coalesce(CAST(m.pupil_id AS VARCHAR), m._bad_pupil_id) AS pupil_id,
                           coalesce(CAST(m.school_id AS VARCHAR), m._bad_school_id) AS school_id, m.date, m.session, d._first
                    FROM {t} m JOIN (
                        SELECT school_id, _bad_school_id, pupil_id, _bad_pupil_id, date, session, min(rowid) AS _first FROM {t}
                        WHERE date IS NOT NULL AND session IN ('AM', 'PM')
                        GROUP BY ALL HAVING count(*) > 1) d
                    ON {same} AND (m.school_id IS NOT NULL OR m._bad_school_id IS NOT NULL)
                       AND (m.pupil_id IS NOT NULL OR m._bad_pupil_id IS NOT NULL) AND d.date = m.date AND d.session = m.session
                    WHERE m.rowid <> d._first)"""

        def message(r):
            first = marks.locator.rows([r["_first"]])[r["_first"]]
            school = f" at school {r['school_id']!r}" if r["school_id"] else ""
            return f"duplicate mark for pupil {r['pupil_id']!r}{school} on {r['date']} {r['session']} (first at {marks.locator.unit} {first})"

        self.row_check(marks, "session", "true", "pupil_id, school_id, date, session, _first", message,
                       "one mark per pupil per session", count=count, table=dupes)

    # -- calendar -----------------------------------------------------------------------------

    def stage_calendar(self, src: _Source) -> bool:
        cols = src.columns
        date_value, date_bad = _date_from(*cols["date"], trim=True)
        term_text = f"lower(trim(CAST({_q(cols['term'][0])} AS VARCHAR)))"
        half_text = f"trim(CAST({_q(cols['half_term'][0])} AS VARCHAR))"
        select = [
            f"{_text_from(*cols['school_id']) if src.has('school_id') else 'CAST(NULL AS VARCHAR)'} AS school_id",
            f"{date_value} AS date",
            f"NULLIF({term_text}, '') AS term",
            f"CASE WHEN regexp_full_match({half_text}, '[1-6]') THEN CAST({half_text} AS INTEGER) END AS half_term",
            f"NULLIF({half_text}, '') AS _half_text",
            f"{date_bad or 'CAST(NULL AS VARCHAR)'} AS _bad_date",
        ]
        for column in ("open_am", "open_pm"):
            if src.has(column):
                value, bad = _bool_from(*cols[column])
                select += [f"coalesce({value}, true) AS {column}", f"{bad} AS _bad_{column}"]
            else:
                select += [f"true AS {column}", f"CAST(NULL AS VARCHAR) AS _bad_{column}"]
        extras = [c for c in cols if c not in CALENDAR_REQUIRED + CALENDAR_OPTIONAL]
        for column in extras:
            select.append(f"{_text_from(*cols[column])} AS {_q(column)}")
        self.calendar_extras = extras
        staged = "_rb_calendar_file"
        if not self.materialise(src, staged, select):
            return False
        t = f"(SELECT rowid AS _rowid, * FROM {staged})"
        checks = [
            ("school_id", "school_id IS NULL" if src.has("school_id") else "false", "1", lambda r: "school_id is empty",
             "every row needs its school, or leave out the school_id column for a calendar shared by every school"),
            ("date", "date IS NULL", "_bad_date", lambda r: f"malformed date {r['_bad_date']!r}" if r["_bad_date"] else "date is empty", DATE_HINT),
            ("term", f"term IS NOT NULL AND term NOT IN ({_sql_list(TERMS)})", "term", lambda r: f"unknown term {r['term']!r}",
             "term is autumn, spring or summer"),
            ("half_term", "_half_text IS NOT NULL AND half_term IS NULL", "_half_text",
             lambda r: f"half_term {r['_half_text']!r} is not a number from 1 to 6",
             "half terms are numbered 1 to 6 through the academic year: autumn 1-2, spring 3-4, summer 5-6"),
            ("half_term", f"half_term IS NOT NULL AND term IN ({_sql_list(TERMS)}) AND NOT list_contains("
                          f"CASE term {' '.join(f'WHEN {_lit(k)} THEN {list(v)}' for k, v in TERM_HALVES.items())} END, half_term)",
             "term, half_term", lambda r: f"half_term {r['half_term']} is not in the {r['term']} term",
             "autumn has half terms 1-2, spring 3-4, summer 5-6"),
            ("open_am", "_bad_open_am IS NOT NULL", "_bad_open_am", lambda r: f"{r['_bad_open_am']!r} is not a yes/no value",
             "use true/false, yes/no, y/n or 1/0"),
            ("open_pm", "_bad_open_pm IS NOT NULL", "_bad_open_pm", lambda r: f"{r['_bad_open_pm']!r} is not a yes/no value",
             "use true/false, yes/no, y/n or 1/0"),
            ("term", "(open_am OR open_pm) AND (term IS NULL OR half_term IS NULL) AND date IS NOT NULL", "date",
             lambda r: f"{r['date']} is open but has no term or half term", "every open day needs its term and half_term"),
        ]
        for column, condition, select_cols, message, hint in checks:
            self.row_check(src, column, condition, select_cols, message, hint, table=t)
        self.row_check(src, "date", "_first <> _rowid", "date, _first",
                       lambda r: f"{r['date']} is listed more than once (first at {src.locator.unit} {src.locator.rows([r['_first']])[r['_first']]})",
                       "one row per school per date",
                       table=f"(SELECT rowid AS _rowid, date, min(rowid) OVER (PARTITION BY school_id, date) AS _first FROM {staged} WHERE date IS NOT NULL)")
        # Half terms must run in order through each academic year.
        self.row_check(src, "half_term", "half_term < _previous", "date, half_term, _previous",
                       lambda r: f"half term {r['half_term']} on {r['date']} comes after half term {r['_previous']}",
                       "half terms run 1 to 6 in date order within an academic year",
                       table=f"""(SELECT rowid AS _rowid, date, half_term, lag(half_term) OVER (
                                     PARTITION BY school_id, CASE WHEN month(date) >= 9 THEN year(date) ELSE year(date) - 1 END
                                     ORDER BY date) AS _previous
                                  FROM {staged} WHERE date IS NOT NULL AND half_term IS NOT NULL)""")
        if self.problems:
            return False
        # The calendar for every school: its own rows, or the shared rows copied to each school.
        # Schools as written in the marks, those that are not a pupil's (in _bad_school_id) too.
        t = self.marks_table
        all_schools = f"""SELECT DISTINCT school_id FROM (SELECT CAST(school_id AS VARCHAR) AS school_id FROM _rb_pupils UNION ALL
                          SELECT CAST(school_id AS VARCHAR) FROM (SELECT DISTINCT school_id FROM {t}) UNION ALL
                          SELECT DISTINCT _bad_school_id FROM {t}) WHERE school_id IS NOT NULL"""
        keep = ", ".join(["date", "term", "half_term", "open_am", "open_pm"] + [_q(c) for c in extras])
        self.staging.append("_rb_calendar")
        if src.has("school_id"):
            self.sql(f"CREATE OR REPLACE TABLE _rb_calendar AS SELECT school_id, {keep} FROM {staged}")
            missing = [r[0] for r in self.sql(
                f"SELECT school_id FROM ({all_schools}) WHERE school_id NOT IN (SELECT school_id FROM {staged}) ORDER BY 1").fetchall()]
            for school in missing[: self.max]:
                self.problem(src, None, "school_id", f"no calendar rows for school {school!r}",
                             "give every school its days, or leave out school_id for one calendar shared by every school")
        else:
            self.sql(f"CREATE OR REPLACE TABLE _rb_calendar AS SELECT s.school_id, {keep} FROM {staged}, ({all_schools}) s")
        # The marks' school type when every school of the calendar is a pupil's (a calendar may
        # also name other schools, or copy the shared days to a school only the marks name).
        self.calendar_school_text = self.school_type != "VARCHAR" and bool(self.sql(
            f"SELECT count(*) FROM _rb_calendar WHERE TRY_CAST(school_id AS {self.school_type}) IS NULL").fetchone()[0])
        if self.school_type != "VARCHAR" and not self.calendar_school_text:
            self.sql(f"ALTER TABLE _rb_calendar ALTER school_id SET DATA TYPE {self.school_type}")
        return not self.problems

    # -- finish -------------------------------------------------------------------------------

    def finish(self, sources: dict[str, _Source], attributes: dict[str, str]) -> Register:
        con = self.con
        pupils_src = sources["pupils"]
        extra = [c for c in pupils_src.columns if c not in PUPILS_STANDARD]
        columns = ", ".join(list(PUPILS_STANDARD) + [_q(c) for c in extra])
        con.execute(f"CREATE OR REPLACE TABLE pupils AS SELECT {columns} FROM _rb_pupils ORDER BY rowid")

        t = self.marks_table
        for column in ("_bad_minutes", "_bad_date", "_bad_session", "_bad_code", "_bad_pupil_id", "_bad_school_id"):
            con.execute(f"ALTER TABLE {t} DROP COLUMN {column}")
        con.execute("DROP TABLE IF EXISTS marks")
        con.execute(f"ALTER TABLE {t} RENAME TO marks")
        self.staging.remove(t)

        calendar_src = sources.get("calendar")
        if calendar_src is not None:
            build_calendar_table(con, "_rb_calendar", "calendar", self.calendar_extras)
            note = f"Calendar from {calendar_src.name}."
            inferred = False
        else:
            inference = infer_calendar(con, "marks", "calendar")
            note, inferred = inference.note, True
        counts = {role: src.rows for role, src in sources.items()}
        counts["calendar_days"] = con.execute("SELECT count(*) FROM calendar").fetchone()[0]
        school_ids = tuple(r[0] for r in con.execute(
            "SELECT DISTINCT school_id FROM (SELECT school_id FROM pupils UNION ALL SELECT DISTINCT school_id FROM marks) ORDER BY 1").fetchall())
        return Register(con, inferred, note, {role: str(src.path) for role, src in sources.items()}, counts,
                        school_ids, attributes)
