"""Turn a school MIS attendance export into a register (docs/register-format.md).

Two shapes are read (docs/mis-import.md shows each with an example):

- ``long``: one row per pupil per session (UPN, Date, Session, Mark, ...), or one row per pupil
  per day with an AM and a PM mark column;
- ``grid``: one row per pupil, one column per session (``Mon 01/09/2025 AM``), or a two-row
  header (the date over AM / PM), or one column per day holding both marks (``/\\``).

Nothing is guessed. Every export row (and grid cell) that cannot be mapped to a national code, a
real date and a session is an `Unmapped` entry with its file, line, column and reason; the caller
decides whether the good rows may be written (`rollbook import --allow-unmapped`). Header
matching is forgiving (case, spaces and punctuation are ignored, and MIS spellings have aliases);
values are not: a date is read as day/month/year and nothing else, and a mark is a national code
exactly as in engine/data/attendance-codes-2024.yaml.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date
from pathlib import Path

from .codes import national_codes
from .diagnostics import did_you_mean
from .text_encoding import EncodingProblem, decode_export

SHAPES = ("long", "grid")
IGNORE = "ignore"
CUSTOM_PREFIX = "pupil."

# Each field of the register an export column can feed, with the MIS spellings read as it.
# Matching ignores case, spaces and punctuation: "Reg. Group", "REG_GROUP" and "reggroup" are one.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "pupil_id": ("pupil_id", "UPN", "Unique Pupil Number", "Pupil ID", "Student ID", "Adno", "Adm No",
                 "Admission No", "Admission Number", "MIS ID", "ID"),
    "school_id": ("school_id", "School", "School ID", "URN", "DfE Number", "LAESTAB"),
    "date": ("date", "Session Date", "Attendance Date", "Mark Date"),
    "session": ("session", "AM/PM", "Session Name", "Session Type"),
    "code": ("code", "Mark", "Attendance Mark", "Attendance Code", "Session Mark", "Roll Call Mark", "Statutory Mark"),
    "am_code": ("AM", "AM Mark", "AM Code", "Morning", "Morning Mark"),
    "pm_code": ("PM", "PM Mark", "PM Code", "Afternoon", "Afternoon Mark"),
    "minutes_late": ("minutes_late", "Minutes Late", "Mins Late", "Late Minutes", "Late (mins)"),
    "surname": ("surname", "Legal Surname", "Last Name", "Family Name", "Preferred Surname"),
    "forename": ("forename", "Legal Forename", "First Name", "Given Name", "Preferred Forename"),
    "name": ("name", "Pupil Name", "Student Name", "Full Name"),
    "year_group": ("year_group", "Year", "Yr", "NC Year", "National Curriculum Year", "Year Taught In"),
    "reg_group": ("reg_group", "Reg", "Registration Group", "Reg Grp", "Form", "Form Group", "Tutor Group", "Class"),
    "date_of_birth": ("date_of_birth", "DOB", "Birth Date"),
    "joined_on": ("joined_on", "Admission Date", "Date of Admission", "Start Date", "Entry Date", "Date of Entry"),
    "left_on": ("left_on", "Leaving Date", "Date of Leaving", "Leave Date", "End Date"),
    "gender": ("gender", "Sex"),
    "sen": ("sen", "SEN Status", "SEN Provision", "SEN Stage"),
    "ehcp": ("ehcp", "EHC Plan"),
    "fsm": ("fsm", "FSM Eligible", "FSM Eligibility", "Free School Meals"),
    "pupil_premium": ("pupil_premium", "PP", "PP Eligible"),
    "eal": ("eal", "English as an Additional Language"),
    "lac": ("lac", "CLA", "Looked After", "Child Looked After"),
    "cin": ("cin", "Child in Need"),
}
MARK_FIELDS = ("date", "session", "code", "am_code", "pm_code", "minutes_late")
# Pupil columns in the order pupils.csv is written.
PUPIL_FIELDS = ("surname", "forename", "name", "year_group", "reg_group", "date_of_birth", "joined_on", "left_on",
                "gender", "sen", "ehcp", "fsm", "pupil_premium", "eal", "lac", "cin")
DATE_FIELDS = ("date_of_birth", "joined_on", "left_on")
YES_NO_FIELDS = ("ehcp", "fsm", "pupil_premium", "eal", "lac", "cin")
YES_WORDS = ("true", "yes", "y", "t", "1")
NO_WORDS = ("false", "no", "n", "f", "0")
SEN_WORDS = {"n": "N", "k": "K", "e": "E", "nospecialprovision": "N", "none": "N", "sensupport": "K",
             "ehcplan": "E", "ehcp": "E", "educationhealthandcareplan": "E"}
NO_MARK = ("", "-")  # what an export shows for a session with no mark (yet)
HEADER_SEARCH_ROWS = 20

MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
MONTHS.update({"january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7, "august": 8,
               "sept": 9, "september": 9, "october": 10, "november": 11, "december": 12})
WEEKDAYS = {"mon": 0, "monday": 0, "tue": 1, "tues": 1, "tuesday": 1, "wed": 2, "wednesday": 2, "thu": 3,
            "thur": 3, "thurs": 3, "thursday": 3, "fri": 4, "friday": 4, "sat": 5, "saturday": 5, "sun": 6, "sunday": 6}
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SESSION_WORDS = {"am": "AM", "morning": "AM", "pm": "PM", "afternoon": "PM"}


def alias_key(name: str) -> str:
    """The form headers are compared in: no BOM, lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.replace("\ufeff", "").lower())


ALIAS_INDEX = {alias_key(a): f for f, aliases in FIELD_ALIASES.items() for a in (f, *aliases)}


@lru_cache(maxsize=4096)
def column_letter(index: int) -> str:
    """Spreadsheet column name of a 0-based index (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Unmapped:
    """One export row, cell or value that could not be mapped, and why."""

    file: str
    line: int | None
    column: str | None  # the export's header text
    column_letter: str | None
    value: str | None
    reason: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file + (f" line {self.line}" if self.line is not None else "")
        if self.column is not None:
            where += f", column {self.column_letter} '{self.column}'" if self.column_letter else f", column '{self.column}'"
        text = f"{where}: {self.reason}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "column": self.column, "column_letter": self.column_letter,
                "value": self.value, "reason": self.reason, "hint": self.hint}


@dataclass(slots=True)
class Mark:
    pupil_id: str
    school_id: str
    date: date
    session: str
    code: str
    minutes_late: str
    file: str  # where the mark came from in the export, for messages about it
    line: int
    column: str
    column_letter: str

    @property
    def origin(self) -> str:
        return f"{self.file} line {self.line}, column {self.column_letter} '{self.column}'"

    @property
    def key(self) -> tuple:
        return (self.school_id, self.pupil_id, self.date, self.session)


@dataclass
class ImportResult:
    """What an import produced. `errors` are problems with the file as a whole (unreadable, no
    pupil id column...): with any, nothing can be written. `unmapped` are rows and cells left out."""

    source: str
    shape: str
    encoding: str | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    pupils: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (school, pupil) -> fields
    pupil_columns: list[str] = field(default_factory=list)
    has_school: bool = False
    has_minutes_late: bool = False
    rows_read: int = 0

    def marks_rows(self) -> list[dict[str, str]]:
        """marks.csv rows in a canonical order: school, pupil, date, AM before PM."""
        rows = []
        for m in sorted(self.marks, key=lambda m: m.key):
            row = {"pupil_id": m.pupil_id}
            if self.has_school:
                row["school_id"] = m.school_id
            row.update(date=m.date.isoformat(), session=m.session, code=m.code)
            if self.has_minutes_late:
                row["minutes_late"] = m.minutes_late
            rows.append(row)
        return rows

    def pupils_rows(self) -> list[dict[str, str]]:
        rows = []
        for (school, pupil), values in sorted(self.pupils.items()):
            row = {"pupil_id": pupil}
            if self.has_school:
                row["school_id"] = school
            row.update({c: values.get(c, "") for c in self.pupil_columns})
            rows.append(row)
        return rows


# ---------------------------------------------------------------------------------- dates


@dataclass(frozen=True)
class DateReading:
    value: date | None
    reason: str | None = None
    hint: str | None = None
    numeric: tuple[int, int] | None = None  # the two leading numbers of a d/m/y date, for the ambiguity check


DATE_HINT = "write dates as dd/mm/yyyy (01/09/2025), yyyy-mm-dd or dd-Mon-yyyy (01-Sep-2025)"
_NUMERIC = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2}|\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NAMED = re.compile(r"^(\d{1,2})[\s\-]([A-Za-z]{3,9})[\s\-,]*(\d{2}|\d{4})$")
_MIDNIGHT = re.compile(r"\s+00:00(:00(\.0+)?)?$")
_WEEKDAY = re.compile(r"^([A-Za-z]{3,9})[\s,]+(?=\d)")


def _make_date(y: int, m: int, d: int, text: str) -> DateReading:
    try:
        return DateReading(date(y, m, d))
    except ValueError:
        return DateReading(None, f"'{text}' is not a real date", DATE_HINT)


@lru_cache(maxsize=65536)
def read_date(text: str, order: str = "dmy") -> DateReading:
    """Read one export date: dd/mm/yyyy and d/m/yyyy (or mm/dd with order='mdy'), yyyy-mm-dd,
    dd-Mon-yyyy; an optional leading weekday (checked) and a trailing midnight time (Excel) are
    allowed. Two-digit years, times other than midnight and impossible dates are refused."""
    raw = text.strip()
    body = _MIDNIGHT.sub("", raw)
    if re.search(r"\d:\d", body):
        return DateReading(None, f"'{raw}' has a time of day", "export dates without a time")
    weekday = None
    m = _WEEKDAY.match(body)
    if m and m.group(1).lower() in WEEKDAYS:
        weekday = WEEKDAYS[m.group(1).lower()]
        body = body[m.end():].strip()
    reading = _read_plain_date(body, raw, order)
    if reading.value is not None and weekday is not None and reading.value.weekday() != weekday:
        return DateReading(None, f"'{raw}': {reading.value.isoformat()} is a {reading.value.strftime('%A')}, "
                                 f"not a {DAY_NAMES[weekday]}",
                           "the weekday and the date disagree: check the day/month order of the export")
    return reading


def _read_plain_date(body: str, raw: str, order: str) -> DateReading:
    if not body:
        return DateReading(None, "the date is empty", DATE_HINT)
    if m := _ISO.match(body):
        return _make_date(int(m[1]), int(m[2]), int(m[3]), raw)
    if m := _NUMERIC.match(body):
        first, second, year = int(m[1]), int(m[2]), m[3]
        if len(year) == 2:
            return DateReading(None, f"'{raw}' has a two-digit year", "export dates with four-digit years")
        day, month = (first, second) if order == "dmy" else (second, first)
        if not 1 <= month <= 12 and 1 <= day <= 12 and 1 <= (second if order == "dmy" else first) <= 31:
            other = "month/day (US order)" if order == "dmy" else "day/month (UK order)"
            return DateReading(None, f"'{raw}' has no month {month}: it reads only as {other}, which is not assumed",
                               "export dates as dd/mm/yyyy" if order == "dmy" else "check --date-order")
        reading = _make_date(int(year), month, day, raw)
        return DateReading(reading.value, reading.reason, reading.hint, (first, second))
    if m := _NAMED.match(body):
        month = MONTHS.get(m[2].lower())
        if month is None:
            return DateReading(None, f"'{raw}': unknown month '{m[2]}'", DATE_HINT)
        if len(m[3]) == 2:
            return DateReading(None, f"'{raw}' has a two-digit year", "export dates with four-digit years")
        return _make_date(int(m[3]), month, int(m[1]), raw)
    return DateReading(None, f"'{raw}' is not a date in a format Rollbook reads", DATE_HINT)


def looks_like_date(text: str) -> bool:
    return bool(re.search(r"\d{1,4}[/.\-]\d{1,2}[/.\-]\d{2,4}|\d{1,2}[\s\-][A-Za-z]{3,9}[\s\-]\d{2,4}", text))


class DateReader:
    """Reads every date of one file with the same day/month order, and refuses a d/m date that
    would read differently as m/d once the file shows a date that reads only the other way."""

    def __init__(self, order: str, texts: list[str]):
        self.order = order
        self.evidence: str | None = None
        for t in texts:
            r = read_date(t, order)
            if r.value is None and r.reason and "reads only as" in r.reason:
                self.evidence = t.strip()
                break

    def read(self, text: str) -> DateReading:
        r = read_date(text, self.order)
        if r.value is not None and r.numeric and self.evidence and r.numeric[0] != r.numeric[1] and max(r.numeric) <= 12:
            a, b = r.numeric
            return DateReading(None, f"'{text.strip()}' is ambiguous: this file also has '{self.evidence}', which reads "
                                     f"only with the month first, so it could be {a}/{b} either way",
                               "export every date as dd/mm/yyyy, or yyyy-mm-dd")
        return r


@lru_cache(maxsize=1024)
def read_session(text: str) -> str | None:
    """AM or PM from 'AM', 'pm', 'Morning', 'Afternoon', 'a.m.'; None otherwise."""
    return SESSION_WORDS.get(alias_key(text))


# ---------------------------------------------------------------------------------- marks


@dataclass(frozen=True)
class CodeReading:
    code: str | None
    reason: str | None = None
    hint: str | None = None
    no_mark: bool = False


@lru_cache(maxsize=4096)
def read_code(text: str) -> CodeReading:
    """A national code exactly as written (after trimming spaces); anything else says why not."""
    value = text.strip()
    catalogue = national_codes()
    if value in NO_MARK:
        shown = "empty" if value == "" else f"'{value}'"
        return CodeReading(None, f"no mark recorded ({shown})", "a session with no mark cannot be counted; "
                                                               "complete the register in the MIS and export again",
                           no_mark=True)
    if value in catalogue:
        return CodeReading(value)
    if value in catalogue.retired:
        return CodeReading(None, f"code '{value}' was retired in 2024", catalogue.retired[value])
    if value.upper() in catalogue:
        return CodeReading(None, f"'{value}' is not a national attendance code", f"codes are upper case: did you mean '{value.upper()}'?")
    hint = None
    if re.fullmatch(r"[A-Z]\d\d", value):  # SIMS 8 sub-codes such as I01
        hint = "sub-codes are not national codes: export the statutory code"
    return CodeReading(None, f"'{value}' is not a national attendance code", hint or "see engine/data/attendance-codes-2024.yaml")


def split_day_cell(text: str) -> list[str] | None:
    """A day cell of a grid holding both sessions ('/\\', 'NN', 'C1/', '/ -'): the AM and PM
    marks, or None when the cell is not two marks. Two-character codes end in a digit and no code
    is a digit, so reading the longest code first is never ambiguous."""
    symbols = set(national_codes().codes) | set(national_codes().retired) | {"-"}
    value = text.replace(" ", "")
    tokens, i = [], 0
    while i < len(value):
        if value[i:i + 2] in symbols:
            tokens.append(value[i:i + 2])
            i += 2
        else:
            tokens.append(value[i])
            i += 1
    return tokens if len(tokens) == 2 else None


# ---------------------------------------------------------------------------------- reading the file


def read_table(text: str) -> list[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on (1-based); blank records are left out.
    A header line with tabs and no commas is read as tab-separated."""
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        if any(cell.strip() for cell in record):
            rows.append((start, record))
    return rows


@dataclass
class _Columns:
    fields: dict[str, int]  # field -> column index
    custom: dict[str, int]  # pupil attribute name -> column index
    other: list[int]        # columns no field claims (grid: candidates for sessions)


def parse_column_map(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--map COLUMN=field` options -> ({alias_key(COLUMN): field}, problems)."""
    mapping, problems = {}, []
    for item in items:
        column, sep, target = item.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            problems.append(f"--map {item!r}: write COLUMN=FIELD, e.g. --map 'Pupil Ref=pupil_id'")
            continue
        if target != IGNORE and target not in FIELD_ALIASES:
            if target.startswith(CUSTOM_PREFIX) and re.fullmatch(r"[a-z][a-z0-9_]*", target[len(CUSTOM_PREFIX):]) \
                    and target[len(CUSTOM_PREFIX):] not in FIELD_ALIASES:
                pass
            else:
                guess = did_you_mean(target, list(FIELD_ALIASES) + [IGNORE])
                problems.append(f"--map {item!r}: unknown field {target!r}" + (f" ({guess})" if guess else "")
                                + f"; fields: {', '.join(FIELD_ALIASES)}, {IGNORE}, or {CUSTOM_PREFIX}NAME for another pupil attribute")
                continue
        mapping[alias_key(column)] = target
    return mapping, problems


def _resolve_columns(header: list[str], column_map: dict[str, str], result: ImportResult, file: str) -> _Columns | None:
    claims: dict[str, list[tuple[int, bool]]] = {}
    custom: dict[str, int] = {}
    other: list[int] = []
    for i, name in enumerate(header):
        key = alias_key(name)
        if not key:
            other.append(i)
            continue
        if key in column_map:
            target = column_map[key]
            if target == IGNORE:
                result.notes.append(f"column {column_letter(i)} '{name}' ignored (--map)")
            elif target.startswith(CUSTOM_PREFIX):
                custom[target[len(CUSTOM_PREFIX):]] = i
            else:
                claims.setdefault(target, []).append((i, True))
        elif key in ALIAS_INDEX:
            claims.setdefault(ALIAS_INDEX[key], []).append((i, False))
        else:
            other.append(i)
    fields, ok = {}, True
    for f, columns in claims.items():
        chosen = [c for c in columns if c[1]] or columns
        if len(chosen) > 1:
            names = " and ".join(f"'{header[i]}'" for i, _ in chosen)
            result.errors.append(f"{file}: columns {names} both read as {f} (hint: choose one with "
                                 f"--map '{header[chosen[0][0]]}={f}'; the other is then ignored)")
            ok = False
            continue
        fields[f] = chosen[0][0]
        for i, _ in columns:
            if i != chosen[0][0]:
                result.notes.append(f"column {column_letter(i)} '{header[i]}' ignored: --map chose "
                                    f"'{header[chosen[0][0]]}' as {f}")
    return _Columns(fields, custom, other) if ok else None


def _find_header(rows, column_map, result: ImportResult, file: str) -> int | None:
    """Index of the header row: the first row (of the first few) with a pupil id column. Title lines
    above it (report name, date range) are skipped and noted."""
    ids = {k for k, v in ALIAS_INDEX.items() if v == "pupil_id"} - {k for k, v in column_map.items() if v != "pupil_id"}
    ids |= {k for k, v in column_map.items() if v == "pupil_id"}
    for n, (line, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(alias_key(c) in ids for c in cells):
            if n:
                result.notes.append(f"{file}: skipped {n} line(s) above the header ({_lines(rows[0][0], line - 1)})")
            return n
    looked = ", ".join(FIELD_ALIASES["pupil_id"][1:6])
    result.errors.append(f"{file}: no pupil id column in the first {HEADER_SEARCH_ROWS} rows (looked for {looked}, ...) "
                         f"(hint: name it with --map 'YOUR COLUMN=pupil_id')")
    return None


def _decode(path: Path, encoding: str | None, result: ImportResult) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        result.errors.append(f"{path}: file not found")
        return None
    except OSError as exc:
        result.errors.append(f"{path}: cannot read the file ({exc.strerror})")
        return None
    if path.suffix.lower() in (".xlsx", ".xls", ".ods"):
        result.errors.append(f"{path}: a spreadsheet file, not text (hint: save it as CSV (comma delimited) or CSV UTF-8 and import that)")
        return None
    try:
        decoded = decode_export(raw, encoding)
    except EncodingProblem as exc:
        result.errors.append(f"{path.name} line {exc.line}: {exc}")
        return None
    result.notes.append(f"{path.name}: {decoded.note}")
    if result.encoding is None:
        result.encoding = decoded.encoding
    return decoded.text


# ---------------------------------------------------------------------------------- pupils


class _PupilBuilder:
    """Pupil attributes from export rows or a pupil list: normalised, and checked for conflicts
    between rows of the same pupil (a conflict is reported and the value left empty)."""

    def __init__(self, result: ImportResult, dates: DateReader):
        self.result = result
        self.dates = dates
        self.first_line: dict[tuple, dict[str, tuple[str, int]]] = {}
        self.conflicted: set[tuple] = set()
        self.last_seen: dict[tuple, tuple] = {}  # the pupil's values as last read: a long export repeats them

    def normalise(self, f: str, value: str) -> tuple[str | None, str | None, str | None]:
        """(value to write, reason it cannot be read, hint)."""
        v = value.strip()
        if v == "":
            return "", None, None
        if f in DATE_FIELDS:
            r = self.dates.read(v)
            return (r.value.isoformat(), None, None) if r.value else (None, r.reason, r.hint)
        if f in YES_NO_FIELDS:
            k = alias_key(v)
            if k in YES_WORDS:
                return "true", None, None
            if k in NO_WORDS:
                return "false", None, None
            return None, f"'{v}' is not yes or no", "use Yes/No, Y/N, True/False or 1/0"
        if f == "sen":
            if alias_key(v) in SEN_WORDS:
                return SEN_WORDS[alias_key(v)], None, None
            return None, f"'{v}' is not an SEN provision", "use the census codes N, K or E"
        if f == "year_group":
            m = re.fullmatch(r"(?:year|yr|y)\s*(\d{1,2})", v, re.IGNORECASE)
            if m:
                return str(int(m[1])), None, None
            if v.lower() == "reception":
                return "R", None, None
        return v, None, None

    def add(self, key: tuple, values: dict[str, tuple[str, int | None, str]], line: int, file: str) -> None:
        """values: field -> (text, column index, header). An empty value says nothing; a value
        that cannot be read is reported once per pupil; two different values are a conflict."""
        raw = tuple((f, text) for f, (text, _, _) in values.items())
        if self.last_seen.get(key) == raw:
            return
        self.last_seen[key] = raw
        pupil = self.result.pupils.setdefault(key, {})
        seen = self.first_line.setdefault(key, {})
        for f, (text, index, header) in values.items():
            pupil.setdefault(f, "")
            written, reason, hint = self.normalise(f, text)
            letter = column_letter(index) if index is not None else None
            if reason:
                if (key, f, text.strip()) not in self.conflicted:
                    self.conflicted.add((key, f, text.strip()))
                    self.result.unmapped.append(Unmapped(file, line, header, letter, text.strip(),
                                                         f"pupil '{key[1]}': {f} {reason}; left empty", hint))
                continue
            if written == "" or (key, f) in self.conflicted:
                continue
            if f not in seen:
                seen[f] = (written, line)
                pupil[f] = written
            elif seen[f][0] != written:
                self.conflicted.add((key, f))
                self.result.unmapped.append(Unmapped(
                    file, line, header, letter, text.strip(),
                    f"pupil '{key[1]}' has {f} '{seen[f][0]}' at line {seen[f][1]} but '{written}' here; {f} left empty",
                    "export one value per pupil (or give the pupils with --pupils)"))
                pupil[f] = ""


def _read_export(path: Path, column_map: dict[str, str], encoding: str | None, result: ImportResult):
    """Decode an export, find its header row and map its columns. Returns (rows, header row index,
    header, columns), or None with the problem recorded in `result`."""
    text = _decode(path, encoding, result)
    if text is None:
        return None
    rows = read_table(text)
    n = _find_header(rows, column_map, result, path.name)
    if n is None:
        return None
    header = rows[n][1]
    columns = _resolve_columns(header, column_map, result, path.name)
    if columns is None:
        return None
    return rows, n, header, columns


def read_pupil_list(path: Path, column_map: dict[str, str], encoding: str | None, order: str,
                    result: ImportResult) -> bool:
    """Fill result.pupils from a separate pupil list export (same header aliases). False on an error."""
    export = _read_export(path, column_map, encoding, result)
    if export is None:
        return False
    rows, n, header, columns = export
    used = [f for f in columns.fields if f in PUPIL_FIELDS] + list(columns.custom)
    for f in columns.fields:
        if f not in PUPIL_FIELDS and f not in ("pupil_id", "school_id"):
            result.notes.append(f"{path.name}: column '{header[columns.fields[f]]}' ({f}) is not a pupil column; ignored")
    dates = DateReader(order, [r[1][columns.fields[f]] for r in rows[n + 1:] for f in DATE_FIELDS
                               if f in columns.fields and columns.fields[f] < len(r[1])])
    builder = _PupilBuilder(result, dates)
    result.has_school = result.has_school or "school_id" in columns.fields
    first_seen: dict[tuple, int] = {}
    for line, cells in rows[n + 1:]:
        cells = cells + [""] * (len(header) - len(cells))
        pupil_id = cells[columns.fields["pupil_id"]].strip()
        school = cells[columns.fields["school_id"]].strip() if "school_id" in columns.fields else ""
        if not pupil_id:
            result.unmapped.append(Unmapped(path.name, line, header[columns.fields["pupil_id"]],
                                            column_letter(columns.fields["pupil_id"]), "", "the row has no pupil id"))
            continue
        key = (school, pupil_id)
        if key in first_seen:
            result.unmapped.append(Unmapped(path.name, line, header[columns.fields["pupil_id"]],
                                            column_letter(columns.fields["pupil_id"]), pupil_id,
                                            f"pupil '{pupil_id}' is listed again (first at line {first_seen[key]}); row not read"))
            continue
        first_seen[key] = line
        values = {f: (cells[i], i, header[i]) for f, i in columns.fields.items() if f in PUPIL_FIELDS}
        values.update({f: (cells[i], i, header[i]) for f, i in columns.custom.items()})
        builder.add(key, values, line, path.name)
    result.pupil_columns = [f for f in PUPIL_FIELDS if f in used] + list(columns.custom)
    return True


# ---------------------------------------------------------------------------------- the import


def import_export(path: Path | str, shape: str, *, pupils: Path | str | None = None,
                  column_map: dict[str, str] | None = None, encoding: str | None = None,
                  date_order: str = "dmy") -> ImportResult:
    """Read an MIS export of the given shape ('long' or 'grid') into marks and pupils.

    `column_map` is {alias_key(header): field} (see parse_column_map); `pupils` a separate pupil
    list export that then supplies every pupil. Never raises for a problem in the files: look at
    `errors` (nothing usable) and `unmapped` (rows and cells left out)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown export shape {shape!r}")
    path = Path(path)
    column_map = dict(column_map or {})
    result = ImportResult(str(path), shape)
    pupil_list = None
    if pupils is not None:
        if not read_pupil_list(Path(pupils), column_map, encoding, date_order, result):
            return result
        pupil_list = dict(result.pupils)
        result.encoding = None  # the report's encoding is the export's
    export = _read_export(path, column_map, encoding, result)
    if export is None:
        return result
    rows, n, header, columns = export
    if pupil_list is not None and result.has_school != ("school_id" in columns.fields):
        which = ("the pupil list", "the export") if result.has_school else ("the export", "the pupil list")
        result.errors.append(f"{path.name}: {which[0]} has a school column but {which[1]} has none "
                             f"(hint: both need one, or neither; --map 'COLUMN=school_id' names it)")
        return result
    result.has_school = "school_id" in columns.fields
    reader = _LongReader if shape == "long" else _GridReader
    reader(path.name, rows, n, columns, result, pupil_list, date_order).run()
    _drop_conflicting_duplicates(result)
    result.marks.sort(key=lambda m: m.key)
    result.unmapped.sort(key=_report_order)
    return result


class _ShapeReader:
    def __init__(self, file, rows, header_index, columns: _Columns, result: ImportResult, pupil_list, order):
        self.file = file
        self.header_line = rows[header_index][0]
        self.header = rows[header_index][1]
        self.body = rows[header_index + 1:]
        self.columns = columns
        self.result = result
        self.pupil_list = pupil_list
        self.order = order
        self.width = len(self.header)

    def pupil_values(self, cells) -> dict[str, tuple[str, int, str]]:
        values = {f: (cells[i], i, self.header[i]) for f, i in self.columns.fields.items() if f in PUPIL_FIELDS}
        values.update({f: (cells[i], i, self.header[i]) for f, i in self.columns.custom.items()})
        return values

    def setup_pupils(self, date_texts: list[str]) -> None:
        self.dates = DateReader(self.order, date_texts)
        self.builder = _PupilBuilder(self.result, self.dates)
        if self.pupil_list is None:
            f = self.columns.fields
            self.result.pupil_columns = [p for p in PUPIL_FIELDS if p in f] + list(self.columns.custom)
        elif any(p in self.columns.fields for p in PUPIL_FIELDS):
            self.result.notes.append(f"{self.file}: pupil columns of the export were not used: the pupil list gives every pupil")

    def pupil_key(self, cells, line) -> tuple | None:
        """The (school, pupil) of a row, its attributes recorded; None (reported) when unusable."""
        i = self.columns.fields["pupil_id"]
        pupil_id = cells[i].strip()
        school = cells[self.columns.fields["school_id"]].strip() if "school_id" in self.columns.fields else ""
        if not pupil_id:
            self.result.unmapped.append(Unmapped(self.file, line, self.header[i], column_letter(i), "",
                                                 "the row has no pupil id; row not read"))
            return None
        if "school_id" in self.columns.fields and not school:
            j = self.columns.fields["school_id"]
            self.result.unmapped.append(Unmapped(self.file, line, self.header[j], column_letter(j), "",
                                                 "the row has no school; row not read"))
            return None
        key = (school, pupil_id)
        if self.pupil_list is not None:
            if key not in self.pupil_list:
                self.result.unmapped.append(Unmapped(self.file, line, self.header[i], column_letter(i), pupil_id,
                                                     f"no pupil '{pupil_id}' in the pupil list; row not read",
                                                     "every pupil with marks needs a row in the --pupils file"))
                return None
        else:
            self.builder.add(key, self.pupil_values(cells), line, self.file)
        return key

    def on_roll(self, key, day: date, code: str) -> str | None:
        pupil = self.result.pupils.get(key, {})
        joined, left = pupil.get("joined_on") or "", pupil.get("left_on") or ""
        if joined and day.isoformat() < joined and code != "Z":
            return f"mark '{code}' on {day.isoformat()} is before pupil '{key[1]}' joined on {joined}"
        if left and day.isoformat() > left:
            return f"mark '{code}' on {day.isoformat()} is after pupil '{key[1]}' left on {left}"
        return None

    def outside_roll(self, key, day: date) -> bool:
        pupil = self.result.pupils.get(key, {})
        joined, left = pupil.get("joined_on") or "", pupil.get("left_on") or ""
        return bool((joined and day.isoformat() < joined) or (left and day.isoformat() > left))

    def add_mark(self, key, day, session, code, minutes_late, line, index, value) -> None:
        letter = column_letter(index)
        problem = self.on_roll(key, day, code)
        if problem:
            self.result.unmapped.append(Unmapped(self.file, line, self.header[index], letter, value, problem,
                                                 "check the pupil's admission and leaving dates"))
            return
        self.result.marks.append(Mark(key[1], key[0], day, session, code, minutes_late,
                                      self.file, line, self.header[index], letter))


class _LongReader(_ShapeReader):
    def run(self) -> None:
        f = self.columns.fields
        per_session = "session" in f and "code" in f
        per_day = "am_code" in f or "pm_code" in f
        missing = [c for c in ("date",) if c not in f]
        if not per_session and not per_day:
            missing += [c for c in ("session", "code") if c not in f]
        if per_session and per_day:
            self.result.errors.append(f"{self.file}: the export has both a session and mark column and AM/PM mark "
                                      f"columns (hint: ignore one pair with --map 'COLUMN=ignore')")
            return
        if missing:
            self.result.errors.append(f"{self.file}: no {' or '.join(missing)} column (hint: a long export needs a pupil id, "
                                      f"a date, and a session with a mark, or AM and PM mark columns; name a column with "
                                      f"--map 'YOUR COLUMN=FIELD')")
            return
        self.result.has_minutes_late = "minutes_late" in f
        for i in self.columns.other:
            if self.header[i].strip():
                self.result.notes.append(f"{self.file}: column {column_letter(i)} '{self.header[i]}' is not a register "
                                         f"field; ignored (hint: --map '{self.header[i]}=FIELD' to read it)")
        date_cols = [f[c] for c in ("date",) + DATE_FIELDS if c in f]
        self.setup_pupils([cells[i] for _, cells in self.body for i in date_cols if i < len(cells)])
        sessions = [(s, f[c]) for s, c in (("AM", "am_code"), ("PM", "pm_code")) if c in f]
        for line, cells in self.body:
            self.result.rows_read += 1
            cells = cells + [""] * (self.width - len(cells)) if len(cells) < self.width else cells
            key = self.pupil_key(cells, line)
            if key is None:
                continue
            d = self.dates.read(cells[f["date"]])
            if d.value is None:
                self._unmapped(line, f["date"], cells, d.reason, d.hint)
                continue
            minutes = cells[f["minutes_late"]].strip() if "minutes_late" in f else ""
            if minutes and not minutes.isdigit():
                self._unmapped(line, f["minutes_late"], cells, f"minutes late '{minutes}' is not a whole number of minutes",
                               "a whole number, 0 or more; empty when not recorded")
                continue
            if per_day:
                for session, i in sessions:
                    self._one(key, d.value, session, i, cells, line, minutes)
                continue
            session = read_session(cells[f["session"]])
            if session is None:
                self._unmapped(line, f["session"], cells, f"session '{cells[f['session']].strip()}' is not AM or PM",
                               "AM, PM, Morning or Afternoon")
                continue
            self._one(key, d.value, session, f["code"], cells, line, minutes)

    def _one(self, key, day, session, index, cells, line, minutes) -> None:
        c = read_code(cells[index])
        if c.code is None:
            self.result.unmapped.append(Unmapped(self.file, line, self.header[index], column_letter(index),
                                                 cells[index].strip(), c.reason, c.hint))
            return
        self.add_mark(key, day, session, c.code, minutes, line, index, cells[index].strip())

    def _unmapped(self, line, index, cells, reason, hint) -> None:
        self.result.unmapped.append(Unmapped(self.file, line, self.header[index], column_letter(index),
                                             cells[index].strip(), reason + "; row not read", hint))


@dataclass
class _SessionColumn:
    index: int
    label: str           # header text, as shown in the report
    day: date | None
    session: str | None  # 'AM', 'PM', or None for a day column holding both marks
    problem: tuple[str, str | None] | None = None


_SESSION_SUFFIX = re.compile(r"^(?P<date>.*?\d.*?)[\s_\-/(]*(?P<session>a\.?m\.?|p\.?m\.?|morning|afternoon)\)?$", re.IGNORECASE)


class _GridReader(_ShapeReader):
    def run(self) -> None:
        f = self.columns.fields
        stray = [c for c in MARK_FIELDS if c in f]
        for c in stray:
            self.result.notes.append(f"{self.file}: column '{self.header[f[c]]}' ({c}) is not read in a grid export")
        header_dates = [self._split(self.header[i])[0] for i in self.columns.other]
        texts = [t for t in header_dates if t] + [cells[f[c]] for _, cells in self.body for c in DATE_FIELDS
                                                  if c in f and f[c] < len(cells)]
        self.setup_pupils(texts)
        columns = self._session_columns()
        if columns is None:
            return
        if not columns:
            self.result.errors.append(f"{self.file}: no session columns found (hint: grid headers look like "
                                      f"'Mon 01/09/2025 AM', '01/09/2025 PM', or a date over AM and PM columns; "
                                      f"see docs/mis-import.md)")
            return
        marked = {c.index for c in columns if any(
            c.index < len(cells) and cells[c.index].strip() not in NO_MARK for _, cells in self.body)}
        for c in columns:
            if c.index not in marked and c.problem is None:
                self.result.notes.append(f"{self.file}: no pupil has a mark in column {column_letter(c.index)} "
                                         f"'{c.label}': no session written for it")
        for line, cells in self.body:
            self.result.rows_read += 1
            cells = cells + [""] * (self.width - len(cells)) if len(cells) < self.width else cells
            key = self.pupil_key(cells, line)
            if key is None:
                continue
            for c in columns:
                if c.index in marked or c.problem:
                    self._cell(key, c, cells[c.index], line)

    def _split(self, text: str) -> tuple[str | None, str | None]:
        """(date text, session) of a header: '01/09/2025 AM' -> ('01/09/2025', 'AM');
        '01/09/2025' -> ('01/09/2025', None); not date-like -> (None, None)."""
        t = text.strip()
        m = _SESSION_SUFFIX.match(t)
        if m and looks_like_date(m["date"]):
            return m["date"].strip(), read_session(m["session"])
        if looks_like_date(t):
            return t, None
        return None, None

    def _session_columns(self) -> list[_SessionColumn] | None:
        columns: list[_SessionColumn] = []
        date_only: list[int] = []
        for i in self.columns.other:
            text = self.header[i]
            date_text, session = self._split(text)
            if date_text is None:
                if text.strip():
                    self.result.notes.append(f"{self.file}: column {column_letter(i)} '{text.strip()}' is not a pupil "
                                             f"field or a session; ignored")
                continue
            r = self.dates.read(date_text)
            problem = None if r.value else (f"column header: {r.reason}", r.hint)
            columns.append(_SessionColumn(i, text.strip(), r.value, session, problem))
            if session is None:
                date_only.append(i)
        # A two-row header: dates over a row of AM / PM labels (a merged date cell exports as the
        # date over its first column and blanks after it).
        if date_only and self.body:
            line2, second = self.body[0]
            labels = {i: read_session(second[i]) for i in range(min(len(second), self.width)) if second[i].strip()}
            if labels and all(v is not None for v in labels.values()) and not any(
                    second[i].strip() for i in self.columns.fields.values() if i < len(second)):
                columns = self._two_row(columns, labels)
                self.body = self.body[1:]
                self.result.notes.append(f"{self.file}: two-row header (dates on line {self.header_line}, sessions on line {line2})")
                if columns is None:
                    return None
        seen: dict[tuple, _SessionColumn] = {}
        for c in columns:
            if c.day is None:
                continue
            for s in ((c.session,) if c.session else ("AM", "PM")):
                if (c.day, s) in seen:
                    self.result.errors.append(f"{self.file}: columns {column_letter(seen[(c.day, s)].index)} and "
                                              f"{column_letter(c.index)} are both {c.day.isoformat()} {s} "
                                              f"(hint: remove one, or ignore it with --map 'HEADER=ignore')")
                    return None
                seen[(c.day, s)] = c
        return columns

    def _two_row(self, columns, labels) -> list[_SessionColumn] | None:
        by_index = {c.index: c for c in columns}
        out = [c for c in columns if c.session is not None]
        current: _SessionColumn | None = None
        for i in range(self.width):
            if i in by_index and by_index[i].session is None:
                current = by_index[i]
            elif self.header[i].strip():
                current = None
            if i in labels and current is not None:
                label = f"{current.label} {labels[i]}"
                out.append(_SessionColumn(i, label, current.day, labels[i], current.problem))
        covered = {c.index for c in out}
        for c in columns:
            if c.session is None and c.index not in covered:
                self.result.errors.append(f"{self.file}: column {column_letter(c.index)} '{c.label}' has no AM or PM "
                                          f"under it in the second header line")
                return None
        return sorted(out, key=lambda c: c.index)

    def _cell(self, key, c: _SessionColumn, text: str, line: int) -> None:
        letter = column_letter(c.index)
        value = text.strip()

        def unmapped(reason, hint=None):
            self.result.unmapped.append(Unmapped(self.file, line, c.label, letter, value, reason, hint))

        if c.problem:
            if value not in NO_MARK:
                unmapped(*c.problem)
            return
        if c.session is None:
            if value in NO_MARK:
                if not self.outside_roll(key, c.day):
                    r = read_code(value)
                    unmapped(r.reason, r.hint)
                return
            parts = split_day_cell(value)
            if parts is None:
                unmapped(f"'{value}' is not two marks (AM then PM)", "a day column holds the AM mark then the PM mark, e.g. /\\ or NN")
                return
            pairs = list(zip(("AM", "PM"), parts))
        else:
            pairs = [(c.session, value)]
        for session, part in pairs:
            r = read_code(part)
            if r.code is None:
                if r.no_mark and self.outside_roll(key, c.day):
                    continue
                where = f"{session} " if c.session is None else ""
                unmapped(f"{where}{r.reason}", r.hint)
                continue
            self.add_mark(key, c.day, session, r.code, "", line, c.index, value)


def _drop_conflicting_duplicates(result: ImportResult) -> None:
    """Two marks for one pupil and session: neither is trusted, both are reported."""
    groups: dict[tuple, list[Mark]] = {}
    for m in result.marks:
        groups.setdefault(m.key, []).append(m)
    dropped = set()
    for marks in groups.values():
        if len(marks) < 2:
            continue
        for m in marks:
            dropped.add(id(m))
            others = ", ".join(f"'{o.code}' at line {o.line}, column {o.column_letter}" for o in marks if o is not m)
            result.unmapped.append(Unmapped(m.file, m.line, m.column, m.column_letter, m.code,
                                            f"pupil '{m.pupil_id}' has more than one mark for {m.date.isoformat()} "
                                            f"{m.session} (also {others}); none of them read",
                                            "one mark per pupil per session"))
    result.marks = [m for m in result.marks if id(m) not in dropped]


def _report_order(u: Unmapped) -> tuple:
    return (u.file, u.line or 0, len(u.column_letter or ""), u.column_letter or "")


# ---------------------------------------------------------------------------------- writing


REPORT_CSV = "import-report.csv"
REPORT_JSON = "import-report.json"
REPORT_COLUMNS = ("file", "line", "column", "column_letter", "value", "reason", "hint")
REGISTER_STEMS = ("marks", "pupils", "calendar")
REGISTER_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson")


def existing_outputs(out: Path) -> list[Path]:
    """Files in `out` an import would write or that would be read as part of its register."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_file() and (
        (p.stem.lower() in REGISTER_STEMS and p.suffix.lower() in REGISTER_SUFFIXES)
        or p.name in (REPORT_CSV, REPORT_JSON)))


def _csv_text(rows: list[dict[str, str]], columns: list[str]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_register(result: ImportResult, out: Path, calendar: Path | None = None) -> list[str]:
    """Write marks.csv, pupils.csv (and the calendar, copied) into `out`, but only once the engine's
    own loader (engine.register.load_register) accepts them: they are written to a scratch folder,
    loaded, and moved in. Returns the loader's problems (nothing is written when there are any);
    a problem with a marks.csv line names the export line the mark came from."""
    import os
    import shutil
    import tempfile

    from .register import load_register

    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=out))
    try:
        marks = sorted(result.marks, key=lambda m: m.key)
        mark_rows = result.marks_rows()
        columns = list(mark_rows[0]) if mark_rows else ["pupil_id", "date", "session", "code"]
        (scratch / "marks.csv").write_text(_csv_text(mark_rows, columns), encoding="utf-8")
        pupil_rows = result.pupils_rows()
        columns = ["pupil_id"] + (["school_id"] if result.has_school else []) + result.pupil_columns
        (scratch / "pupils.csv").write_text(_csv_text(pupil_rows, columns), encoding="utf-8")
        if calendar is not None:
            shutil.copyfile(calendar, scratch / ("calendar" + calendar.suffix.lower()))
        loaded = load_register(scratch)
        if not loaded.ok:
            problems = []
            for p in loaded.problems:
                text = str(p)
                if p.file == "marks.csv" and p.row and 2 <= p.row < len(marks) + 2:
                    text += f" [from {marks[p.row - 2].origin}]"
                problems.append(text)
            if loaded.more_problems:
                problems.append(f"... and {loaded.more_problems} more problem(s) not listed")
            return problems
        loaded.register.connection.close()
        for f in sorted(scratch.iterdir()):
            os.replace(f, out / f.name)
        return []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report_document(result: ImportResult, written: bool, register_problems: list[str] | None = None) -> dict:
    """The import report as a JSON-ready dict (also the shape of import-report.json)."""
    return {
        "source": result.source,
        "format": result.shape,
        "encoding": result.encoding,
        "rows_read": result.rows_read,
        "marks": len(result.marks),
        "pupils": len(result.pupils),
        "unmapped_count": len(result.unmapped),
        "register_written": written,
        "complete": written and not result.unmapped,
        "notes": result.notes,
        "errors": result.errors + list(register_problems or []),
        "unmapped": [u.as_dict() for u in result.unmapped],
    }


def write_report(result: ImportResult, out: Path, written: bool, register_problems: list[str] | None = None) -> None:
    """import-report.csv (one row per unmapped row or cell) and import-report.json in `out`."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    rows = [{k: ("" if v is None else v) for k, v in u.as_dict().items()} for u in result.unmapped]
    (out / REPORT_CSV).write_text(_csv_text(rows, list(REPORT_COLUMNS)), encoding="utf-8")
    (out / REPORT_JSON).write_text(json.dumps(report_document(result, written, register_problems), indent=2,
                                              ensure_ascii=False) + "\n", encoding="utf-8")


def _lines(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"
