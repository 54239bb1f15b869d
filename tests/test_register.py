"""The register contract (docs/register-format.md, schemas/register/*.schema.json), through
`engine.register.load_register` and the command line.

Every rejection is asserted with its file, row and exact message: the messages are the contract
integrators read, and docs/register-format.md quotes them.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from engine.codes import CATALOGUE_PATH, national_codes
from engine.register import _Loader, load_register

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas" / "register"

PUPILS = (
    "pupil_id,year_group,reg_group,joined_on,left_on\n"
    "P1,3,3A,2025-09-01,\n"
    "P2,3,3A,2025-09-10,2025-09-30\n"
)
# Lines 2-4; a case's extra rows start on line 5.
MARKS = (
    "pupil_id,date,session,code,minutes_late\n"
    "P1,2025-09-03,AM,/,\n"
    "P1,2025-09-03,PM,\\,\n"
    "P2,2025-09-10,AM,L,5\n"
)
CALENDAR = (
    "date,term,half_term,open_am,open_pm,note\n"
    "2025-09-03,autumn,1,true,true,\n"
    "2025-09-04,autumn,1,true,false,early close\n"
    "2025-09-05,autumn,1,false,false,INSET\n"
    "2025-09-10,autumn,1,true,true,\n"
)
BASE_MARKS = [
    ("P1", "", date(2025, 9, 3), "AM", "/", None),
    ("P1", "", date(2025, 9, 3), "PM", "\\", None),
    ("P2", "", date(2025, 9, 10), "AM", "L", 5),
]


def write(folder: Path, **files: str | bytes | None) -> Path:
    """Write register files named like `marks_csv=...` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, content in files.items():
        if content is None:
            continue
        path = folder / key.replace("_", ".")
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return folder


def register(tmp_path: Path, marks=MARKS, pupils=PUPILS, calendar=None, **kwargs):
    folder = write(tmp_path / "register", marks_csv=marks, pupils_csv=pupils, calendar_csv=calendar)
    return load_register(folder, **kwargs)


def problems(load) -> list[tuple]:
    return [(p.file, p.row, p.column, p.message) for p in load.problems]


def table(load, name: str) -> list[tuple]:
    return load.register.connection.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()


# --------------------------------------------------------------------------- accepted input


def test_a_clean_register_loads(tmp_path):
    load = register(tmp_path)
    assert load.ok and load.problems == [] and load.more_problems == 0
    assert table(load, "marks") == sorted(BASE_MARKS)
    assert load.register.row_counts["marks"] == 3 and load.register.row_counts["pupils"] == 2


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# (name, marks file content): each must load to exactly BASE_MARKS.
MESSY_BUT_VALID = [
    ("utf-8 BOM", "\ufeff" + MARKS),
    ("CRLF line ends", _crlf(MARKS)),
    ("BOM and CRLF", "\ufeff" + _crlf(MARKS)),
    ("no newline at the end", MARKS.rstrip("\n")),
    ("blank lines", MARKS.replace("\nP1,2025-09-03,PM", "\n\nP1,2025-09-03,PM") + "\n"),
    ("header in capitals", MARKS.replace("pupil_id,date,session,code,minutes_late", "PUPIL_ID,DATE,SESSION,CODE,MINUTES_LATE")),
    ("header as people write it", MARKS.replace("pupil_id,date,session,code,minutes_late", " Pupil ID ,Date,Session,Code,Minutes-Late")),
    ("columns in another order", "code,session,date,pupil_id,minutes_late\n/,AM,2025-09-03,P1,\n\\,PM,2025-09-03,P1,\nL,AM,2025-09-10,P2,5\n"),
    ("quoted fields", 'pupil_id,date,session,code,minutes_late\n"P1","2025-09-03","AM","/",""\n"P1","2025-09-03","PM","\\",\n"P2","2025-09-10","AM","L","5"\n'),
    ("session in lower case", MARKS.replace(",AM,", ",am,").replace(",PM,", ",Pm,")),
    ("spaces around values", "pupil_id,date,session,code,minutes_late\n P1 , 2025-09-03 , AM , / ,\nP1,2025-09-03,PM,\\,\nP2,2025-09-10,AM,L, 5 \n"),
    ("extra marks column ignored", "pupil_id,date,session,code,minutes_late,comment\nP1,2025-09-03,AM,/,,x\n"
                                   "P1,2025-09-03,PM,\\,,y\nP2,2025-09-10,AM,L,5,z\n"),
]


@pytest.mark.parametrize("marks", [m for _, m in MESSY_BUT_VALID], ids=[n for n, _ in MESSY_BUT_VALID])
def test_messy_csv_that_is_still_valid_gives_the_same_marks(tmp_path, marks):
    load = register(tmp_path, marks=marks)
    assert load.ok, load.report()
    assert table(load, "marks") == sorted(BASE_MARKS)


def test_bom_crlf_and_header_case_in_pupils_and_calendar(tmp_path):
    pupils = "\ufeff" + _crlf(PUPILS.replace("pupil_id,year_group", "Pupil_Id,YEAR GROUP").replace("left_on", "Left-On"))
    calendar = "\ufeff" + _crlf(CALENDAR.replace("date,term,half_term,open_am", "Date,TERM,Half Term,Open_AM"))
    messy = register(tmp_path / "messy", pupils=pupils, calendar=calendar)
    clean = register(tmp_path / "clean", calendar=CALENDAR)
    assert messy.ok, messy.report()
    for name in ("marks", "pupils", "calendar"):
        assert table(messy, name) == table(clean, name), name


def test_a_pupil_on_roll_at_two_schools_has_one_mark_per_school(tmp_path):
    pupils = "pupil_id,school_id\nP1,S1\nP1,S2\n"
    marks = "pupil_id,school_id,date,session,code\nP1,S1,2025-09-03,AM,/\nP1,S2,2025-09-03,AM,D\n"
    load = register(tmp_path, marks=marks, pupils=pupils)
    assert load.ok, load.report()
    assert [r[:5] for r in table(load, "marks")] == [("P1", "S1", date(2025, 9, 3), "AM", "/"),
                                                     ("P1", "S2", date(2025, 9, 3), "AM", "D")]


ON_ROLL_EDGES = [
    ("Z before joining", "P2,2025-09-09,AM,Z,\n"),
    ("on the day of joining", "P2,2025-09-10,PM,/,\n"),
    ("on the day of leaving", "P2,2025-09-30,AM,/,\n"),
]


@pytest.mark.parametrize("row", [r for _, r in ON_ROLL_EDGES], ids=[n for n, _ in ON_ROLL_EDGES])
def test_marks_at_the_edges_of_time_on_roll_are_accepted(tmp_path, row):
    load = register(tmp_path, marks=MARKS + row)
    assert load.ok, load.report()
    assert load.register.row_counts["marks"] == 4


# --------------------------------------------------------------------------- Parquet and JSON Lines


def _typed_tables():
    marks = pa.table({
        "pupil_id": ["P1", "P1", "P2"],
        "date": pa.array([date(2025, 9, 3), date(2025, 9, 3), date(2025, 9, 10)], pa.date32()),
        "session": ["AM", "PM", "AM"],
        "code": ["/", "\\", "L"],
        "minutes_late": pa.array([None, None, 5], pa.int32()),
    })
    pupils = pa.table({
        "pupil_id": ["P1", "P2"],
        "year_group": ["3", "3"],
        "reg_group": ["3A", "3A"],
        "joined_on": pa.array([date(2025, 9, 1), date(2025, 9, 10)], pa.date32()),
        "left_on": pa.array([None, date(2025, 9, 30)], pa.date32()),
    })
    calendar = pa.table({
        "date": pa.array([date(2025, 9, 3), date(2025, 9, 4), date(2025, 9, 5), date(2025, 9, 10)], pa.date32()),
        "term": ["autumn"] * 4,
        "half_term": pa.array([1, 1, 1, 1], pa.int64()),
        "open_am": [True, True, False, True],
        "open_pm": [True, False, False, True],
        "note": [None, "early close", "INSET", None],
    })
    return {"marks": marks, "pupils": pupils, "calendar": calendar}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _as_jsonl(tmp_path: Path, typed_values: bool) -> Path:
    folder = tmp_path / "jsonl"
    folder.mkdir()
    for name, t in _typed_tables().items():
        records = []
        for row in t.to_pylist():
            record = {}
            for key, value in row.items():
                if isinstance(value, date):
                    value = value.isoformat()
                elif not typed_values and value is not None and not isinstance(value, str):
                    value = str(value).lower()  # everything as JSON strings, as some exporters write
                record[key.upper() if name == "marks" else key] = value  # header case is not significant
            records.append(record)
        _write_jsonl(folder / f"{name}.jsonl", records)
    return folder


def _as_parquet(tmp_path: Path) -> Path:
    folder = tmp_path / "parquet"
    folder.mkdir()
    for name, t in _typed_tables().items():
        pq.write_table(t, folder / f"{name}.parquet")
    return folder


@pytest.mark.parametrize("fmt", ["parquet", "jsonl typed", "jsonl strings"])
def test_parquet_and_jsonl_give_the_same_register_as_csv(tmp_path, fmt):
    csv_load = register(tmp_path, calendar=CALENDAR)
    assert csv_load.ok, csv_load.report()
    folder = _as_parquet(tmp_path) if fmt == "parquet" else _as_jsonl(tmp_path, typed_values=fmt == "jsonl typed")
    load = load_register(folder)
    assert load.ok, load.report()
    for name in ("marks", "pupils", "calendar"):
        assert table(load, name) == table(csv_load, name), name
        columns = lambda l: l.register.connection.execute(f"DESCRIBE {name}").fetchall()
        assert columns(load) == columns(csv_load), name
    assert load.register.calendar_note == f"Calendar from calendar.{fmt.split()[0]}."


def test_explicit_files_of_mixed_formats(tmp_path):
    folder = _as_parquet(tmp_path)
    pupils_csv = write(tmp_path / "csv", pupils_csv=PUPILS) / "pupils.csv"
    load = load_register({"marks": folder / "marks.parquet", "pupils": pupils_csv})
    assert load.ok, load.report()
    assert table(load, "marks") == sorted(BASE_MARKS)
    assert load.register.sources == {"marks": str(folder / "marks.parquet"), "pupils": str(pupils_csv)}


# --------------------------------------------------------------------------- rejections

H_HINT = national_codes().retired["H"]

# (id, files (marks/pupils/calendar text; marks rows are appended to MARKS when the text starts
# with "+"), expected problems (file, row, column, message)). Row numbers: CSV lines, header = 1.
REJECTIONS = [
    ("unknown code", {"marks": "+P1,2025-09-04,AM,A,\n"},
     [("marks.csv", 5, "code", "unknown attendance code 'A'")]),
    ("lower-case code", {"marks": "+P1,2025-09-04,AM,l,\n"},
     [("marks.csv", 5, "code", "unknown attendance code 'l'")]),
    ("empty code", {"marks": "+P1,2025-09-04,AM,,\n"},
     [("marks.csv", 5, "code", "code is empty")]),
    ("blank code", {"marks": "+P1,2025-09-04,AM,  ,\n"},
     [("marks.csv", 5, "code", "code is empty")]),
    ("unknown code with spaces", {"marks": "+P1,2025-09-04,AM, A ,\n"},
     [("marks.csv", 5, "code", "unknown attendance code 'A'")]),
    ("lower-case code with spaces", {"marks": "+P1,2025-09-04,pm , l,\n"},
     [("marks.csv", 5, "code", "unknown attendance code 'l'")]),
    ("duplicate mark", {"marks": "+P1,2025-09-04,AM,/,\nP1,2025-09-03,AM,L,3\n"},
     [("marks.csv", 6, "session", "duplicate mark for pupil 'P1' on 2025-09-03 AM (first at line 2)")]),
    ("duplicate mark with spaces", {"marks": "+ P1 ,2025-09-03,AM,/,\n"},
     [("marks.csv", 5, "session", "duplicate mark for pupil 'P1' on 2025-09-03 AM (first at line 2)")]),
    ("date day first", {"marks": "+P1,03/09/2025,AM,/,\n"},
     [("marks.csv", 5, "date", "malformed date '03/09/2025'")]),
    ("date that does not exist", {"marks": "+P1,2025-02-30,AM,/,\n"},
     [("marks.csv", 5, "date", "malformed date '2025-02-30'")]),
    ("date without leading zeros", {"marks": "+P1,2025-9-4,AM,/,\n"},
     [("marks.csv", 5, "date", "malformed date '2025-9-4'")]),
    ("date padded to ten characters", {"marks": "+P1,2025-9-4  ,AM,/,\nP1,1-09-04   ,PM,/,\n"},
     [("marks.csv", 5, "date", "malformed date '2025-9-4  '"), ("marks.csv", 6, "date", "malformed date '1-09-04   '")]),
    ("date with a time", {"marks": "+P1,2025-09-04T09:00,AM,/,\n"},
     [("marks.csv", 5, "date", "malformed date '2025-09-04T09:00'")]),
    ("empty date", {"marks": "+P1,,AM,/,\n"},
     [("marks.csv", 5, "date", "date is empty")]),
    ("bad session", {"marks": "+P1,2025-09-04,XX,/,\nP1,2025-09-04,A M,/,\n"},
     [("marks.csv", 5, "session", "session 'XX' is not AM or PM"), ("marks.csv", 6, "session", "session 'A M' is not AM or PM")]),
    ("empty session", {"marks": "+P1,2025-09-04,,/,\n"},
     [("marks.csv", 5, "session", "session is empty")]),
    ("blank session", {"marks": "+P1,2025-09-04,  ,/,\n"},
     [("marks.csv", 5, "session", "session is empty")]),
    ("bad session with spaces", {"marks": "+P1,2025-09-04, xx ,/,\n"},
     [("marks.csv", 5, "session", "session 'XX' is not AM or PM")]),
    ("mark before joined_on", {"marks": "+P2,2025-09-09,AM,/,\n"},
     [("marks.csv", 5, "date", "mark '/' on 2025-09-09 AM is before pupil 'P2' joined on 2025-09-10")]),
    ("mark after left_on", {"marks": "+P2,2025-10-01,PM,N,\n"},
     [("marks.csv", 5, "date", "mark 'N' on 2025-10-01 PM is after pupil 'P2' left on 2025-09-30")]),
    ("Z after left_on", {"marks": "+P2,2025-10-01,AM,Z,\n"},
     [("marks.csv", 5, "date", "mark 'Z' on 2025-10-01 AM is after pupil 'P2' left on 2025-09-30")]),
    ("pupil not in pupils", {"marks": "+P9,2025-09-04,AM,/,\n"},
     [("marks.csv", 5, "pupil_id", "no pupil 'P9' in pupils.csv")]),
    ("pupil not at that school",
     {"pupils": "pupil_id,school_id\nP1,S1\nP2,S2\n", "marks": "pupil_id,school_id,date,session,code\nP1,S1,2025-09-03,AM,/\nP2,S1,2025-09-03,AM,/\n"},
     [("marks.csv", 3, "pupil_id", "no pupil 'P2' at school 'S1' in pupils.csv")]),
    ("empty pupil_id", {"marks": "+,2025-09-04,AM,/,\n"},
     [("marks.csv", 5, "pupil_id", "pupil_id is empty")]),
    ("empty school_id", {"pupils": "pupil_id,school_id\nP1,S1\n", "marks": "pupil_id,school_id,date,session,code\nP1,,2025-09-03,AM,/\n"},
     [("marks.csv", 2, "school_id", "school_id is empty")]),
    ("minutes_late not a number", {"marks": "+P1,2025-09-04,AM,L,five\n"},
     [("marks.csv", 5, "minutes_late", "minutes_late 'five' is not a whole number of minutes")]),
    ("minutes_late negative", {"marks": "+P1,2025-09-04,AM,L,-3\n"},
     [("marks.csv", 5, "minutes_late", "minutes_late '-3' is negative")]),
    ("minutes_late fractional", {"marks": "+P1,2025-09-04,AM,L,2.5\n"},
     [("marks.csv", 5, "minutes_late", "minutes_late '2.5' is not a whole number of minutes")]),
    ("minutes_late too large", {"marks": "+P1,2025-09-04,AM,L,99999999999\n"},
     [("marks.csv", 5, "minutes_late", "minutes_late '99999999999' is not a whole number of minutes")]),
    ("too few fields", {"marks": "+P1,2025-09-04\n"},
     [("marks.csv", 5, None, "expected 5 fields (as in the header), found 2")]),
    ("too many fields", {"marks": "+P1,2025-09-04,AM,/,,oops\n"},
     [("marks.csv", 5, None, "expected 5 fields (as in the header), found 6")]),
    ("line after a quoted line break", {"marks": '+P1,2025-09-04,AM,/,"\n"\nP1,2025-09-05\n'},
     [("marks.csv", 7, None, "expected 5 fields (as in the header), found 2")]),  # the record on line 5 spans 5-6
    ("not UTF-8", {"marks": MARKS.encode() + "P1,2025-09-04,AM,/,caf\xe9\n".encode("latin-1")},
     [("marks.csv", 5, None, "the line is not valid UTF-8 text")]),
    ("header not UTF-8", {"marks": "pupil_id,date,session,c\xf3de\n".encode("latin-1")},
     [("marks.csv", 1, None, "the header is not UTF-8 text")]),
    ("semicolons", {"marks": "pupil_id;date;session;code\nP1;2025-09-03;AM;/\n"},
     [("marks.csv", 1, None, "the header has a single column")]),
    ("empty file", {"marks": ""},
     [("marks.csv", 1, None, "the file is empty")]),
    ("missing column", {"marks": "pupil_id,date,session\nP1,2025-09-03,AM\n"},
     [("marks.csv", None, "code", "missing column 'code'")]),
    ("column without a name", {"marks": "pupil_id,date,,session,code\nP1,2025-09-03,,AM,/\n"},
     [("marks.csv", 1, None, "a column has no name")]),
    ("column twice", {"marks": "pupil_id,date,session,code,Code\nP1,2025-09-03,AM,/,/\n"},
     [("marks.csv", 1, "code", "column 'code' appears twice")]),
    ("marks without school, pupil at two schools",
     {"pupils": "pupil_id,school_id\nP1,S1\nP1,S2\n", "marks": "pupil_id,date,session,code\nP1,2025-09-03,AM,/\n"},
     [("marks.csv", 2, "pupil_id", "pupil 'P1' is on roll at 2 schools in pupils.csv, and marks.csv has no school_id column")]),
    ("pupils without school, marks at two",
     {"pupils": "pupil_id\nP1\n", "marks": "pupil_id,school_id,date,session,code\nP1,S1,2025-09-03,AM,/\nP1,S2,2025-09-03,AM,/\n"},
     [("pupils.csv", None, "school_id", "pupils.csv has no school_id column, but marks.csv names more than one school ('S1', 'S2')")]),
    # pupils
    ("pupil listed twice", {"pupils": PUPILS + "P1,4,4A,,\n"},
     [("pupils.csv", 4, "pupil_id", "pupil 'P1' is listed more than once (first at line 2)")]),
    ("pupil left before joining", {"pupils": PUPILS + "P3,3,3A,2025-09-10,2025-09-01\n"},
     [("pupils.csv", 4, "left_on", "pupil 'P3' left on 2025-09-01 before joining on 2025-09-10")]),
    ("pupil date malformed", {"pupils": PUPILS + "P3,3,3A,10/09/2025,\n"},
     [("pupils.csv", 4, "joined_on", "malformed date '10/09/2025'")]),
    ("pupil without id", {"pupils": PUPILS + ",3,3A,,\n"},
     [("pupils.csv", 4, "pupil_id", "pupil_id is empty")]),
    ("pupil attributes", {"pupils": "pupil_id,sen,fsm,integration_end\nP1,X,maybe,soon\nP2,k,Yes,\n"},
     [("pupils.csv", 2, "fsm", "'maybe' is not a yes/no value"),
      ("pupils.csv", 2, "integration_end", "malformed date 'soon'"),
      ("pupils.csv", 2, "sen", "'X' is not an SEN provision code")]),
    ("no pupils file", {"pupils": None},
     [("register", None, None, "no pupils file")]),
    # calendar
    ("calendar term unknown", {"calendar": CALENDAR + "2025-09-11,winter,1,true,true,\n"},
     [("calendar.csv", 6, "term", "unknown term 'winter'")]),
    ("calendar half term out of range", {"calendar": CALENDAR + "2025-09-11,autumn,7,true,true,\n"},
     [("calendar.csv", 6, "half_term", "half_term '7' is not a number from 1 to 6"),
      ("calendar.csv", 6, "term", "2025-09-11 is open but has no term or half term")]),
    ("calendar half term in the wrong term", {"calendar": CALENDAR + "2025-09-11,spring,1,true,true,\n"},
     [("calendar.csv", 6, "half_term", "half_term 1 is not in the spring term")]),
    ("calendar half terms out of order", {"calendar": CALENDAR.replace("2025-09-05,autumn,1", "2025-09-05,autumn,2")},
     [("calendar.csv", 5, "half_term", "half term 1 on 2025-09-10 comes after half term 2")]),
    ("calendar open day without a term", {"calendar": CALENDAR + "2025-09-11,,,true,false,\n"},
     [("calendar.csv", 6, "term", "2025-09-11 is open but has no term or half term")]),
    ("calendar date twice", {"calendar": CALENDAR + "2025-09-03,autumn,1,true,true,\n"},
     [("calendar.csv", 6, "date", "2025-09-03 is listed more than once (first at line 2)")]),
    ("calendar date malformed", {"calendar": CALENDAR + "11/09/2025,autumn,1,true,true,\n"},
     [("calendar.csv", 6, "date", "malformed date '11/09/2025'")]),
    ("calendar yes/no", {"calendar": CALENDAR + "2025-09-11,autumn,1,open,true,\n"},
     [("calendar.csv", 6, "open_am", "'open' is not a yes/no value")]),
    ("calendar with a derived column", {"calendar": "date,term,half_term,school_week\n2025-09-03,autumn,1,1\n"},
     [("calendar.csv", None, "school_week", "column 'school_week' is derived by Rollbook from the dates")]),
    ("calendar missing a school",
     {"pupils": "pupil_id,school_id\nP1,S1\nP2,S2\n", "marks": "pupil_id,school_id,date,session,code\nP1,S1,2025-09-03,AM,/\n",
      "calendar": "school_id,date,term,half_term\nS1,2025-09-03,autumn,1\n"},
     [("calendar.csv", None, "school_id", "no calendar rows for school 'S2'")]),
    ("mark on a closed session", {"calendar": CALENDAR, "marks": "+P1,2025-09-04,PM,/,\n"},
     [("marks.csv", 5, "date", "mark '/' on 2025-09-04 PM: calendar.csv says the school is closed for that session")]),
    ("mark on a date not in the calendar", {"calendar": CALENDAR, "marks": "+P1,2025-09-08,AM,O,\n"},
     [("marks.csv", 5, "date", "mark 'O' on 2025-09-08 AM: the date is not in calendar.csv")]),
]


def _files(spec: dict) -> dict:
    files = {"marks": MARKS, "pupils": PUPILS, "calendar": None, **spec}
    if isinstance(files["marks"], str) and files["marks"].startswith("+"):
        files["marks"] = MARKS + files["marks"][1:]
    return files


@pytest.mark.parametrize("spec, expected", [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_each_rejection_names_file_row_column_and_reason(tmp_path, spec, expected):
    load = register(tmp_path, **_files(spec))
    assert load.register is None
    assert problems(load) == expected


@pytest.mark.parametrize("code", sorted(national_codes().retired))
def test_retired_codes_are_rejected_with_their_replacement(tmp_path, code):
    load = register(tmp_path, marks=MARKS + f"P1,2025-09-04,AM,{code},\n")
    assert problems(load) == [("marks.csv", 5, "code", f"code {code!r} was retired in 2024 and is not accepted")]
    assert load.problems[0].hint == national_codes().retired[code]


def test_hints_for_codes_with_spaces_are_those_of_the_trimmed_code(tmp_path):
    load = register(tmp_path, marks=MARKS + "P1,2025-09-04,AM, l ,\nP1,2025-09-05,AM,H ,\n")
    assert [(p.row, p.message, p.hint) for p in load.problems] == [
        (5, "unknown attendance code 'l'", "codes are upper case: did you mean 'L'?"),
        (6, "code 'H' was retired in 2024 and is not accepted", H_HINT)]


def test_hints_say_what_to_do(tmp_path):
    load = register(tmp_path, marks=MARKS + "P1,2025-09-04,AM,l,\nP1,2025-09-05,AM,H,\nP1,2025/09/06,AM,/,\n")
    assert [p.hint for p in load.problems] == [
        "codes are upper case: did you mean 'L'?",
        H_HINT,
        "write dates as YYYY-MM-DD, e.g. 2025-09-03",
    ]


def test_rows_of_jsonl_and_parquet_are_numbered(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    _write_jsonl(folder / "pupils.jsonl", [{"pupil_id": "P1"}])
    (folder / "marks.jsonl").write_text(
        '{"pupil_id": "P1", "date": "2025-09-03", "session": "AM", "code": "/"}\n'
        "\n"  # a blank line still counts
        '{"pupil_id": "P1", "date": "2025-09-03", "session": "PM", "code": "H"}\n', encoding="utf-8")
    load = load_register(folder)
    assert [(p.file, p.row, p.row_unit, p.column) for p in load.problems] == [("marks.jsonl", 3, "line", "code")]
    (folder / "marks.jsonl").unlink()
    pq.write_table(pa.table({"pupil_id": ["P1", "P1", "P9"], "date": ["2025-09-03"] * 3,
                             "session": ["AM", "PM", "AM"], "code": ["/", "H", "/"]}), folder / "marks.parquet")
    load = load_register(folder)
    assert [(p.file, p.row, p.row_unit, p.column) for p in load.problems] == [
        ("marks.parquet", 2, "row", "code"), ("marks.parquet", 3, "row", "pupil_id")]
    assert str(load.problems[0]).startswith("marks.parquet row 2, column code: ")


JSONL_REJECTIONS = [
    ("not JSON", b'{"pupil_id": "P1", "date": "2025-09-03", "session": "AM", "code": "/"}\n{"pupil_id": "P1",\n',
     [("marks.jsonl", 2, None, "not valid JSON: Expecting property name enclosed in double quotes")]),
    ("not UTF-8", b'{"pupil_id": "P1", "date": "2025-09-03", "session": "AM", "code": "/"}\n{"pupil_id": "P\xe9"}\n',
     [("marks.jsonl", 2, None, "the line is not valid UTF-8 text")]),
    ("byte order mark", b'\xef\xbb\xbf{"pupil_id": "P1", "date": "2025-09-03", "session": "AM", "code": "/"}\n',
     [("marks.jsonl", 1, None, "the file starts with a byte order mark (BOM)")]),
    ("timestamp in a date", b'{"pupil_id": "P1", "date": "2025-09-03 09:00", "session": "AM", "code": "/"}\n',
     [("marks.jsonl", 1, "date", "malformed date '2025-09-03 09:00'")]),
    ("fractional minutes", b'{"pupil_id": "P1", "date": "2025-09-03", "session": "AM", "code": "L", "minutes_late": 5.0}\n',
     [("marks.jsonl", 1, "minutes_late", "minutes_late '5.0' is not a whole number of minutes")]),
]


def _load_jsonl_marks(tmp_path: Path, content: bytes):
    folder = tmp_path / "r"
    folder.mkdir(parents=True)
    _write_jsonl(folder / "pupils.jsonl", [{"pupil_id": "P1"}])
    (folder / "marks.jsonl").write_bytes(content)
    return load_register(folder)


@pytest.mark.parametrize("content, expected", [c[1:] for c in JSONL_REJECTIONS], ids=[c[0] for c in JSONL_REJECTIONS])
def test_jsonl_rejections(tmp_path, content, expected):
    assert problems(_load_jsonl_marks(tmp_path, content)) == expected


def _load_parquet_timestamps(tmp_path: Path):
    folder = write(tmp_path / "r", pupils_csv="pupil_id\nP1\n")
    pq.write_table(pa.table({"pupil_id": ["P1", "P1"], "date": pa.array([datetime(2025, 9, 3), datetime(2025, 9, 3, 13, 0)]),
                             "session": ["AM", "PM"], "code": ["/", "\\"],
                             "minutes_late": pa.array([0.0, 1e12])}), folder / "marks.parquet")
    return load_register(folder)


def test_parquet_timestamps_must_be_dates(tmp_path):
    assert problems(_load_parquet_timestamps(tmp_path)) == [
        ("marks.parquet", 2, "date", "malformed date '2025-09-03 13:00:00'"),
        ("marks.parquet", 2, "minutes_late", "minutes_late '1000000000000.0' is not a whole number of minutes"),
    ]


def _file_cases(root: Path) -> list[tuple]:
    """(what load_register is given, relative to `root`, the cwd) -> expected report lines."""
    write(root / "school-a", marks_csv=MARKS, marks_jsonl="", pupils_csv=PUPILS)
    (root / "empty-folder").mkdir()
    return [
        ("school-a", ["school-a: more than one marks file: marks.csv, marks.jsonl (hint: keep exactly one)"]),
        ("empty-folder", [
            "empty-folder: no register files in this folder (hint: a register folder holds marks.csv (or .parquet/.jsonl), "
            "pupils.csv and optionally calendar.csv)",
            "register: no marks file (hint: add marks.csv (or .parquet or .jsonl))",
            "register: no pupils file (hint: add pupils.csv (or .parquet or .jsonl))"]),
        (["school-a/pupils.csv", "school-a/roll.csv"], [
            "register: no marks file (hint: add marks.csv (or .parquet or .jsonl))",
            "school-a/roll.csv: cannot tell which register part this file is (hint: name it marks.*, pupils.* or "
            "calendar.*, or pass a dict {'marks': ..., 'pupils': ...})"]),
        ({"marks": "school-a/marks.xlsx", "pupils": "missing/pupils.csv"}, [
            "missing/pupils.csv: file not found",
            "school-a/marks.xlsx: unsupported file type '.xlsx' (hint: use .csv, .parquet or .jsonl)"]),
        ({"marks": "school-a/marks.csv", "pupil": "school-a/pupils.csv"}, [
            "register: unknown register part 'pupil' (hint: did you mean `pupils`?)",
            "register: no pupils file (hint: add pupils.csv (or .parquet or .jsonl))"]),
    ]


def test_which_file_is_which(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given, expected in _file_cases(tmp_path):
        load = load_register(given)
        assert load.register is None
        assert load.report().splitlines() == expected, given


def test_every_message_the_docs_quote_is_one_the_loader_prints(tmp_path, monkeypatch):
    """docs/register-format.md quotes each rejection; every quoted line must be real output."""
    text = (REPO / "docs" / "register-format.md").read_text(encoding="utf-8")
    section = text.split("\n## Rejections\n", 1)[1]
    quoted = {line for block in section.split("```text\n")[1:] for line in block.split("```", 1)[0].splitlines()}
    printed: set[str] = set()
    for i, (_, spec, _) in enumerate(REJECTIONS):
        printed |= set(register(tmp_path / f"case{i}", **_files(spec)).report().splitlines())
    for i, (_, content, _) in enumerate(JSONL_REJECTIONS):
        printed |= set(_load_jsonl_marks(tmp_path / f"jsonl{i}", content).report().splitlines())
    printed |= set(register(tmp_path / "retired", marks=MARKS + "P1,2025-09-04,AM,H,\n").report().splitlines())
    printed |= set(_load_parquet_timestamps(tmp_path / "parquet").report().splitlines())
    printed |= set(_load_too_many_problems(tmp_path / "cap").report().splitlines())
    monkeypatch.chdir(tmp_path)
    for _, expected in _file_cases(tmp_path):
        printed |= set(expected)
    assert len(quoted) > 50
    assert sorted(quoted - printed) == []


# --------------------------------------------------------------------------- all or nothing


def test_every_problem_in_the_marks_is_reported_at_once_in_file_order(tmp_path):
    rows = ("P1,2025-09-04,AM,H,\n"          # 5 retired code
            "P9,2025-09-04,AM,/,\n"          # 6 unknown pupil
            "P1,2025-09-03,AM,L,2\n"         # 7 duplicate of line 2
            "P1,04/09/2025,PM,/,\n"          # 8 malformed date
            "P2,2025-09-09,AM,/,\n"          # 9 before joined_on
            "P1,2025-09-05,XX,/,x\n")        # 10 bad session and minutes
    load = register(tmp_path, marks=MARKS + rows)
    assert load.register is None
    assert [(p.row, p.column) for p in load.problems] == [
        (5, "code"), (6, "pupil_id"), (7, "session"), (8, "date"), (9, "date"), (10, "minutes_late"), (10, "session")]
    assert load.report().count("\n") == 6


def test_pupils_and_calendar_problems_are_reported_together(tmp_path):
    load = register(tmp_path, pupils=PUPILS + "P3,3,3A,soon,\n", calendar=CALENDAR + "2025-09-11,winter,1,true,true,\n")
    assert [(p.file, p.row, p.column) for p in load.problems] == [("calendar.csv", 6, "term"), ("pupils.csv", 4, "joined_on")]


def _load_too_many_problems(tmp_path: Path):
    rows = "".join(f"P1,2025-10-{d:02d},AM,H,\n" for d in range(1, 26))
    return register(tmp_path, marks=MARKS + rows, max_problems=10)


def test_problems_beyond_the_cap_are_counted(tmp_path):
    load = _load_too_many_problems(tmp_path)
    assert len(load.problems) == 10 and load.more_problems == 15
    assert [p.row for p in load.problems] == list(range(5, 15))
    assert load.report().endswith("... and 15 more problem(s) not listed")


def test_a_bad_register_creates_no_tables(tmp_path):
    con = duckdb.connect()
    load = register(tmp_path, marks=MARKS + "P1,2025-09-04,AM,H,\n", connection=con)
    assert load.register is None
    assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == []


def test_a_good_register_keeps_every_row(tmp_path):
    load = register(tmp_path, calendar=CALENDAR)
    counts = {n: load.register.connection.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in ("marks", "pupils", "calendar")}
    assert counts == {"marks": 3, "pupils": 2, "calendar": 4}
    assert load.register.row_counts == {"marks": 3, "pupils": 2, "calendar": 4, "calendar_days": 4}


# --------------------------------------------------------------------------- the quick check of the marks
# check_marks first decides from two small aggregates whether the marks are clean
# (_Loader.marks_look_clean) and runs the exact per-mark queries only when they may not be. The
# quick check must never call clean what the exact queries would reject, and should not send clean
# registers down the slow path.


def _spy_quick_check(monkeypatch) -> list[bool]:
    """Record every verdict of the quick check."""
    verdicts: list[bool] = []
    quick = _Loader.marks_look_clean

    def spy(self, *args):
        verdicts.append(quick(self, *args))
        return verdicts[-1]

    monkeypatch.setattr(_Loader, "marks_look_clean", spy)
    return verdicts


def _exact_only(monkeypatch) -> None:
    monkeypatch.setattr(_Loader, "marks_look_clean", lambda self, *args: False)


def _outcome(load) -> tuple:
    return problems(load), load.more_problems, table(load, "marks") if load.ok else None


@pytest.mark.parametrize("spec, expected", [c[1:] for c in REJECTIONS], ids=[c[0] for c in REJECTIONS])
def test_the_quick_check_never_passes_a_register_the_exact_checks_reject(tmp_path, monkeypatch, spec, expected):
    verdicts = _spy_quick_check(monkeypatch)
    quick = register(tmp_path / "quick", **_files(spec))
    assert verdicts in ([], [False])  # [] when an earlier stage already failed
    with monkeypatch.context() as patch:
        _exact_only(patch)
        exact = register(tmp_path / "exact", **_files(spec))
    assert _outcome(quick) == _outcome(exact)
    assert problems(quick) == expected


PUPILS_AT_TWO_SCHOOLS = ("pupil_id,school_id,joined_on,left_on\n"
                         "P1,S1,2025-09-01,\n"
                         "P1,S2,2025-09-08,2025-09-30\n"
                         "P2,S2,,\n")
CALENDAR_BY_SCHOOL = ("school_id,date,term,half_term,open_am,open_pm\n"
                      "S1,2025-09-03,autumn,1,true,true\nS1,2025-09-10,autumn,1,true,true\n"
                      "S2,2025-09-03,autumn,1,false,false\nS2,2025-09-10,autumn,1,true,true\n")
SCHOOL_MARKS = "pupil_id,school_id,date,session,code\n"

# Each is the register's only problem, so the quick check alone decides whether it is seen.
# (id, files, expected problems (file, row, column, message)).
ONLY_PROBLEM = [
    ("duplicate at one of two schools with the same pupil id",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "marks": SCHOOL_MARKS + "P1,S1,2025-09-10,AM,/\nP1,S2,2025-09-10,AM,/\nP1,S2,2025-09-10,AM,L\n"},
     [("marks.csv", 4, "session", "duplicate mark for pupil 'P1' at school 'S2' on 2025-09-10 AM (first at line 3)")]),
    ("duplicate of the only mark of a pupil",
     {"marks": "+P2,2025-09-10,AM,/,\n"},
     [("marks.csv", 5, "session", "duplicate mark for pupil 'P2' on 2025-09-10 AM (first at line 4)")]),
    ("duplicate in the afternoon a year apart from the other marks",
     {"marks": "+P1,2026-09-03,PM,/,\nP1,2026-09-03,PM,/,\n"},
     [("marks.csv", 6, "session", "duplicate mark for pupil 'P1' on 2026-09-03 PM (first at line 5)")]),
    ("unknown pupil at a school where another pupil has the id",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "marks": SCHOOL_MARKS + "P1,S1,2025-09-10,AM,/\nP2,S1,2025-09-10,AM,/\n"},
     [("marks.csv", 3, "pupil_id", "no pupil 'P2' at school 'S1' in pupils.csv")]),
    ("unknown pupil, marks without school_id, pupils at two schools",
     {"pupils": "pupil_id,school_id\nP1,S1\nP2,S2\n", "marks": "pupil_id,date,session,code\nP1,2025-09-03,AM,/\nP9,2025-09-03,AM,/\n"},
     [("marks.csv", 3, "pupil_id", "no pupil 'P9' in pupils.csv")]),
    ("duplicate, marks without school_id, pupils at two schools",
     {"pupils": "pupil_id,school_id\nP1,S1\nP2,S2\n", "marks": "pupil_id,date,session,code\nP2,2025-09-03,AM,/\nP2,2025-09-03,AM,/\n"},
     [("marks.csv", 3, "session", "duplicate mark for pupil 'P2' at school 'S2' on 2025-09-03 AM (first at line 2)")]),
    ("before joining at the second school",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "marks": SCHOOL_MARKS + "P1,S1,2025-09-03,AM,/\nP1,S2,2025-09-03,PM,Z\nP1,S2,2025-09-03,AM,/\n"},
     [("marks.csv", 4, "date", "mark '/' on 2025-09-03 AM is before pupil 'P1' joined on 2025-09-08")]),
    ("after leaving the second school",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "marks": SCHOOL_MARKS + "P1,S1,2025-10-01,AM,/\nP1,S2,2025-10-01,AM,#\n"},
     [("marks.csv", 3, "date", "mark '#' on 2025-10-01 AM is after pupil 'P1' left on 2025-09-30")]),
    ("closed at one school, open at the other",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "calendar": CALENDAR_BY_SCHOOL,
      "marks": SCHOOL_MARKS + "P1,S1,2025-09-03,AM,/\nP2,S2,2025-09-03,AM,#\nP2,S2,2025-09-03,PM,N\n"},
     [("marks.csv", 4, "date", "mark 'N' on 2025-09-03 PM: calendar.csv says the school is closed for that session")]),
    ("a date the school's calendar lacks",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "calendar": CALENDAR_BY_SCHOOL, "marks": SCHOOL_MARKS + "P2,S2,2025-09-04,AM,X\nP2,S2,2025-09-04,PM,O\n"},
     [("marks.csv", 3, "date", "mark 'O' on 2025-09-04 PM: the date is not in calendar.csv")]),
    ("minutes_late only", {"marks": "+P1,2025-09-04,AM,L,x\n"},
     [("marks.csv", 5, "minutes_late", "minutes_late 'x' is not a whole number of minutes")]),
]


@pytest.mark.parametrize("spec, expected", [c[1:] for c in ONLY_PROBLEM], ids=[c[0] for c in ONLY_PROBLEM])
def test_a_single_problem_is_caught_by_the_quick_check(tmp_path, monkeypatch, spec, expected):
    verdicts = _spy_quick_check(monkeypatch)
    load = register(tmp_path, **_files(spec))
    assert verdicts == [False]
    assert problems(load) == expected


CLEAN = [
    ("base", {}),
    ("with a calendar", {"calendar": CALENDAR}),
    *[(name, {"marks": MARKS + row}) for name, row in ON_ROLL_EDGES],
    ("the same pupil id at two schools",
     {"pupils": PUPILS_AT_TWO_SCHOOLS, "calendar": CALENDAR_BY_SCHOOL,
      "marks": SCHOOL_MARKS + "P1,S1,2025-09-10,AM,/\nP1,S2,2025-09-10,AM,/\nP1,S1,2025-09-03,PM,/\nP1,S2,2025-09-03,PM,Z\n"}),
    ("marks without school_id, pupils at two schools",
     {"pupils": "pupil_id,school_id\nP1,S1\nP2,S2\n", "marks": "pupil_id,date,session,code\nP1,2025-09-03,AM,/\nP2,2025-09-03,AM,/\n"}),
    ("marks a century apart", {"marks": "+P1,1990-01-01,AM,Z,\nP1,2089-12-31,PM,/,\n"}),
]


@pytest.mark.parametrize("spec", [c[1] for c in CLEAN], ids=[c[0] for c in CLEAN])
def test_a_clean_register_is_passed_by_the_quick_check(tmp_path, monkeypatch, spec):
    verdicts = _spy_quick_check(monkeypatch)
    load = register(tmp_path / "quick", **_files(spec))
    assert load.ok, load.report()
    assert verdicts == [True]
    with monkeypatch.context() as patch:
        _exact_only(patch)
        assert _outcome(register(tmp_path / "exact", **_files(spec))) == _outcome(load)


def test_too_wide_a_span_of_dates_leaves_the_decision_to_the_exact_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(_Loader, "PUPIL_BITS_LIMIT", 2 * 2 * 8)  # 2 pupils, 8 days
    verdicts = _spy_quick_check(monkeypatch)
    assert register(tmp_path / "a", marks=MARKS.replace("2025-09-10", "2025-09-11")).ok
    load = register(tmp_path / "b", marks=MARKS + "P1,2025-09-03,AM,/,\n")
    assert verdicts == [False, False]
    assert problems(load) == [("marks.csv", 5, "session", "duplicate mark for pupil 'P1' on 2025-09-03 AM (first at line 2)")]


def _random_register(rng: random.Random) -> dict:
    """Two schools sharing pupil ids, a calendar per school, and marks that now and then break one
    rule (unknown pupil, outside time on roll, duplicate, closed session, date not in the calendar).
    Values carry no stray spaces, so the quick check's verdict alone says whether it loads."""
    days = [date(2025, 9, 1) + timedelta(days=i) for i in range(10)]
    calendar = ["school_id,date,term,half_term,open_am,open_pm"]
    for school in ("S1", "S2"):
        for day in days:
            if rng.random() < 0.9:
                calendar.append(f"{school},{day},autumn,1,{rng.random() < 0.9},{rng.random() < 0.9}")
    pupils, roll = ["pupil_id,school_id,joined_on,left_on"], {}
    for school in ("S1", "S2"):
        for pid in rng.sample(["P1", "P2", "P3", "P4"], 3):
            joined = rng.choice([None, None, *days])
            left = rng.choice([None, None, *[d for d in days if joined is None or d >= joined]])
            roll[school, pid] = (joined, left)
            pupils.append(f"{pid},{school},{joined or ''},{left or ''}")
    is_open = {(s, d): (am == "True", pm == "True") for s, d, _, _, am, pm in (row.split(",") for row in calendar[1:])}
    marks, used = ["pupil_id,school_id,date,session,code"], set()
    for (school, pid), (joined, left) in roll.items():
        for day in days:
            for i, session in enumerate(("AM", "PM")):
                if rng.random() < 0.5:
                    continue
                open_ = is_open.get((school, str(day)), (False, False))[i]
                on_roll = (joined is None or day >= joined) and (left is None or day <= left)
                code = "/" if open_ and on_roll else "#" if on_roll else "Z" if joined and day < joined and rng.random() < 0.5 else None
                if code is None and rng.random() < 0.97:
                    continue
                marks.append(f"{pid},{school},{day},{session},{code or rng.choice('/NO#')}")
                used.add((pid, school, day, session))
    for _ in range(rng.choice([0, 0, 1])):  # an unknown pupil, or a duplicate
        marks.append(rng.choice([f"P9,S1,{days[0]},AM,#", rng.choice(marks[1:])]))
    rng.shuffle(marks[1:])
    return {"marks": "\n".join(marks) + "\n", "pupils": "\n".join(pupils) + "\n", "calendar": "\n".join(calendar) + "\n"}


@pytest.mark.parametrize("seed", range(40))
def test_the_quick_check_agrees_with_the_exact_checks_on_random_registers(tmp_path, monkeypatch, seed):
    spec = _random_register(random.Random(seed))
    verdicts = _spy_quick_check(monkeypatch)
    quick = register(tmp_path / "quick", **spec)
    with monkeypatch.context() as patch:
        _exact_only(patch)
        exact = register(tmp_path / "exact", **spec)
    assert _outcome(quick) == _outcome(exact)
    assert verdicts == [exact.ok], exact.report()


def test_code_and_session_are_enums_of_the_whole_catalogue(tmp_path):
    load = register(tmp_path)
    con = load.register.connection
    code_type, session_type = con.execute("SELECT typeof(code), typeof(session) FROM marks LIMIT 1").fetchone()
    assert code_type.startswith("ENUM(") and session_type == "ENUM('AM', 'PM')"
    # Every code of the catalogue, in text order, though the file has three of them.
    assert con.execute("SELECT enum_range(code) FROM marks LIMIT 1").fetchone()[0] == sorted(national_codes().codes)
    assert con.execute("SELECT count(*) FROM marks WHERE code IN ('Y7', 'X') OR code = 'L'").fetchone() == (1,)
    assert con.execute("SELECT code FROM marks ORDER BY code").fetchall() == [("/",), ("L",), ("\\",)]
    assert con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'marks'").fetchall() == [
        ("pupil_id",), ("school_id",), ("date",), ("session",), ("code",), ("minutes_late",)]


def test_loading_twice_into_one_connection(tmp_path):
    con = duckdb.connect()
    first = register(tmp_path / "a", calendar=CALENDAR, connection=con)
    assert first.ok, first.report()
    bad = register(tmp_path / "b", marks=MARKS + "P1,2025-09-03,AM,/,\n", connection=con)
    assert problems(bad) == [("marks.csv", 5, "session", "duplicate mark for pupil 'P1' on 2025-09-03 AM (first at line 2)")]
    second = register(tmp_path / "c", marks=MARKS + "P1,2025-09-04,AM,L,7\n", calendar=CALENDAR, connection=con)
    assert second.ok, second.report()
    assert table(second, "marks") == sorted(BASE_MARKS + [("P1", "", date(2025, 9, 4), "AM", "L", 7)])
    assert con.execute("SELECT count(*) FROM marks WHERE code IN ('L', 'U') AND session = 'AM'").fetchone() == (2,)
    # The second load reused the ENUM types of the first.
    assert con.execute("SELECT count(*) FROM duckdb_types() WHERE type_name LIKE 'rb_code_%'").fetchone() == (1,)
    assert con.execute("SELECT typeof(code) FROM marks LIMIT 1").fetchone()[0].startswith("ENUM(")


# --------------------------------------------------------------------------- calendar


def test_without_a_calendar_it_is_inferred_and_says_so(tmp_path):
    load = register(tmp_path)
    assert load.ok and load.register.calendar_inferred
    assert load.register.calendar_note.startswith("No calendar file was given, so the calendar was inferred from the marks")
    days = load.register.connection.execute(
        "SELECT date, term, half_term, open_am, open_pm FROM calendar ORDER BY date").fetchall()
    # Every weekday from the first to the last marked date; open where a pupil has a mark.
    assert [d[0] for d in days] == [date(2025, 9, d) for d in (3, 4, 5, 8, 9, 10)]
    assert days[0] == (date(2025, 9, 3), "autumn", 1, True, True)
    assert days[1] == (date(2025, 9, 4), "autumn", 1, False, False)
    assert days[-1] == (date(2025, 9, 10), "autumn", 1, True, False)


def test_with_a_calendar_it_is_used_as_given(tmp_path):
    load = register(tmp_path, calendar=CALENDAR)
    assert load.ok and not load.register.calendar_inferred
    assert load.register.calendar_note == "Calendar from calendar.csv."
    rows = load.register.connection.execute(
        "SELECT date, term, half_term, open_am, open_pm, note FROM calendar ORDER BY date").fetchall()
    assert rows[1] == (date(2025, 9, 4), "autumn", 1, True, False, "early close")
    assert rows[2] == (date(2025, 9, 5), "autumn", 1, False, False, "INSET")


def test_calendar_open_columns_default_to_open(tmp_path):
    load = register(tmp_path, calendar="date,term,half_term,open_pm\n2025-09-03,Autumn,1,\n2025-09-10,autumn, 1 ,no\n"
                                        "2025-09-11,,,no\n")
    assert load.ok is False  # 2025-09-11 is open in the morning (no open_am column) but has no term
    assert problems(load) == [("calendar.csv", 4, "term", "2025-09-11 is open but has no term or half term")]
    load = register(tmp_path / "2", calendar="date,term,half_term,open_pm\n2025-09-03,Autumn,1,\n2025-09-10,autumn, 1 ,no\n")
    assert load.ok, load.report()
    assert load.register.connection.execute(
        "SELECT term, half_term, open_am, open_pm FROM calendar ORDER BY date").fetchall() == [
        ("autumn", 1, True, True), ("autumn", 1, True, False)]


# --------------------------------------------------------------------------- the command line


def test_eval_with_a_bad_register_exits_1_with_file_row_and_reason(rollbook, tmp_path):
    folder = write(tmp_path / "bad", marks_csv=MARKS + "P1,2025-09-04,AM,H,\nP9,2025-09-04,AM,/,\n", pupils_csv=PUPILS)
    result = rollbook("eval", "--policy", "policies/national.yaml", "--register", folder,
                      "--as-of", "2025-09-30", "--rules-engine", "builtin")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: the register at {folder} has problems; nothing was evaluated"
    assert lines[1] == f"error: marks.csv line 5, column code: code 'H' was retired in 2024 and is not accepted (hint: {H_HINT})"
    assert lines[2] == ("error: marks.csv line 6, column pupil_id: no pupil 'P9' in pupils.csv "
                        "(hint: every pupil with marks needs a row in pupils.csv)")
    assert len(lines) == 3


@pytest.mark.parametrize("which", ["marks", "pupils", "calendar"])
def test_schema_command_prints_the_register_schemas(rollbook, which):
    result = rollbook("schema", which)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema == json.loads((SCHEMAS / f"{which}.schema.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the schemas agree with the loader


def _schema(which: str) -> dict:
    return json.loads((SCHEMAS / f"{which}.schema.json").read_text(encoding="utf-8"))


def test_schema_code_enum_is_the_code_data_file():
    raw = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    enum = _schema("marks")["properties"]["code"]["enum"]
    assert len(enum) == len(set(enum))
    assert set(enum) == {str(c) for c in raw["codes"]} == set(national_codes().codes)
    assert not set(enum) & {str(c) for c in raw["retired"]}


def test_schema_required_columns_are_the_loaders():
    from engine import register as r

    assert _schema("marks")["required"] == list(r.MARKS_REQUIRED)
    assert _schema("pupils")["required"] == list(r.PUPILS_REQUIRED)
    assert _schema("calendar")["required"] == list(r.CALENDAR_REQUIRED)
    marks, pupils, calendar = (set(_schema(w)["properties"]) for w in ("marks", "pupils", "calendar"))
    assert marks == set(r.MARKS_REQUIRED + r.MARKS_OPTIONAL)
    assert pupils == set(r.PUPILS_STANDARD + r.BOOLEAN_ATTRIBUTES + r.DATE_ATTRIBUTES) | {"sen"}
    assert calendar == set(r.CALENDAR_REQUIRED + r.CALENDAR_OPTIONAL + r.CALENDAR_DERIVED)
    assert all(_schema("calendar")["properties"][c] is False for c in r.CALENDAR_DERIVED)


_MARK = {"pupil_id": "P1", "date": "2025-09-04", "session": "AM", "code": "/"}
_PUPIL = {"pupil_id": "P1"}
_DAY = {"date": "2025-09-04", "term": "autumn", "half_term": "1"}

# (role, record, accepted): the schema and the loader must both accept, or both reject, the
# record (values as a CSV or JSON Lines file carries them).
AGREEMENT = [
    ("marks", _MARK, True),
    ("marks", {**_MARK, "session": "pm"}, True),
    ("marks", {**_MARK, "session": "noon"}, False),
    ("marks", {**_MARK, "code": "Y7"}, True),
    ("marks", {**_MARK, "code": "#"}, True),
    ("marks", {**_MARK, "code": "H"}, False),
    ("marks", {**_MARK, "code": "y1"}, False),
    ("marks", {**_MARK, "date": "2025-09-31"}, False),
    ("marks", {**_MARK, "date": "20250904"}, False),
    ("marks", {**_MARK, "minutes_late": "12"}, True),
    ("marks", {**_MARK, "minutes_late": 12}, True),
    ("marks", {**_MARK, "minutes_late": None}, True),
    ("marks", {**_MARK, "minutes_late": ""}, True),
    ("marks", {**_MARK, "minutes_late": -1}, False),
    ("marks", {**_MARK, "minutes_late": "1.5"}, False),
    ("marks", {**_MARK, "pupil_id": ""}, False),
    ("marks", {k: v for k, v in _MARK.items() if k != "code"}, False),
    ("pupils", _PUPIL, True),
    ("pupils", {**_PUPIL, "joined_on": "2025-09-01", "left_on": None, "date_of_birth": ""}, True),
    ("pupils", {**_PUPIL, "joined_on": "1/9/2025"}, False),
    ("pupils", {**_PUPIL, "fsm": True, "ehcp": "No", "cin": "Y", "lac": 0, "eal": "TRUE"}, True),
    ("pupils", {**_PUPIL, "fsm": "maybe"}, False),
    ("pupils", {**_PUPIL, "sen": "k"}, True),
    ("pupils", {**_PUPIL, "sen": "S"}, False),
    ("pupils", {**_PUPIL, "year_group": "R", "house": "Red"}, True),
    ("calendar", _DAY, True),
    ("calendar", {**_DAY, "term": "Summer", "half_term": 5}, True),
    ("calendar", {**_DAY, "term": "summer", "half_term": 2}, False),
    ("calendar", {**_DAY, "term": "lent"}, False),
    ("calendar", {**_DAY, "half_term": "0"}, False),
    ("calendar", {**_DAY, "term": None, "half_term": None}, False),
    ("calendar", {**_DAY, "term": None, "half_term": None, "open_am": "no", "open_pm": "false"}, True),
    ("calendar", {**_DAY, "term": None, "half_term": None, "open_am": "no"}, False),
    ("calendar", {**_DAY, "open_am": "y", "open_pm": 0}, True),
    ("calendar", {**_DAY, "open_pm": "closed"}, False),
    ("calendar", {**_DAY, "school_day": 3}, False),
]


def _load_record(tmp_path: Path, role: str, record: dict):
    """A register whose `role` file is the one JSON Lines record (the others valid around it)."""
    folder = tmp_path / "r"
    folder.mkdir()
    files = {"marks": [_MARK], "pupils": [_PUPIL], "calendar": [_DAY]}
    files[role] = [record]
    if role == "calendar":
        files["marks"] = [{**_MARK, "code": "#"}]  # a mark the closed days of the agreement cases allow
    for name, records in files.items():
        _write_jsonl(folder / f"{name}.jsonl", records)
    return load_register(folder)


@pytest.mark.parametrize("role, record, accepted", AGREEMENT, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(AGREEMENT)])
def test_schema_and_loader_agree(tmp_path, role, record, accepted):
    validator = jsonschema.Draft202012Validator(_schema(role), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = [e.message for e in validator.iter_errors(record)]
    assert (not errors) is accepted, errors
    load = _load_record(tmp_path, role, record)
    assert load.ok is accepted, load.report()


# ------------------------------------------------------------------- ids as ENUMs: messages unchanged

ENUM_PUPILS = "pupil_id,school_id,joined_on\nP1,S1,2025-09-01\nP2,S2,2025-09-01\n"
H = "pupil_id,school_id,date,session,code\n"
ID_CASES = {
    "unknown school": H + "P1,S1,2025-09-03,AM,/\nP1,S9,2025-09-03,AM,/\n",
    "padded school": H + "P1, S1 ,2025-09-03,AM,/\nP2,S2,2025-09-03,AM,/\n",
    "empty school": H + "P1,,2025-09-03,AM,/\nP1, ,2025-09-04,AM,/\n",
    "padded pupil at a school": H + " P1 ,S1,2025-09-03,AM,/\nP2 ,S2,2025-09-03,AM,/\n",
    "empty and unknown pupils": H + ",S1,2025-09-03,AM,/\n  ,S1,2025-09-03,PM,/\nP7,S1,2025-09-03,AM,/\nP7,S1,2025-09-03,AM,L\n",
    "unknown pupils on one day": H + "P7,S1,2025-09-03,AM,/\nP8,S1,2025-09-03,AM,/\nP9,S9,2025-09-03,AM,/\nP9,S9,2025-09-03,AM,/\n",
    "padded duplicates": H + "P1,S1,2025-09-03,AM,/\n P1,S1 ,2025-09-03,AM,/\n",
    "marks without school, unknown pupil": "pupil_id,date,session,code\nP1,2025-09-03,AM,/\nP9,2025-09-03,AM,/\n P2,2025-09-03,AM,/\n",
}

ENUM_CAL = "school_id,date,term,half_term\nS1,2025-09-03,autumn,1\nS1,2025-09-04,autumn,1\nS2,2025-09-03,autumn,1\nS2,2025-09-04,autumn,1\n"
ID_CALENDARS = {"none": None, "by school": ENUM_CAL, "shared": "date,term,half_term\n2025-09-03,autumn,1\n2025-09-04,autumn,1\n"}
# Recorded with pupil_id and school_id as text (before they were ENUMs), hints included.
ID_EXPECTED = {'empty and unknown pupils / by school': [('marks.csv', 2, 'pupil_id', 'pupil_id is empty', None),
                                          ('marks.csv', 3, 'pupil_id', 'pupil_id is empty', None),
                                          ('marks.csv',
                                           4,
                                           'pupil_id',
                                           "no pupil 'P7' at school 'S1' in pupils.csv",
                                           'every pupil with marks needs a row in pupils.csv'),
                                          ('marks.csv',
                                           5,
                                           'pupil_id',
                                           "no pupil 'P7' at school 'S1' in pupils.csv",
                                           'every pupil with marks needs a row in pupils.csv')],
 'empty and unknown pupils / none': [('marks.csv', 2, 'pupil_id', 'pupil_id is empty', None),
                                     ('marks.csv', 3, 'pupil_id', 'pupil_id is empty', None),
                                     ('marks.csv',
                                      4,
                                      'pupil_id',
                                      "no pupil 'P7' at school 'S1' in pupils.csv",
                                      'every pupil with marks needs a row in pupils.csv'),
                                     ('marks.csv',
                                      5,
                                      'pupil_id',
                                      "no pupil 'P7' at school 'S1' in pupils.csv",
                                      'every pupil with marks needs a row in pupils.csv')],
 'empty and unknown pupils / shared': [('marks.csv', 2, 'pupil_id', 'pupil_id is empty', None),
                                       ('marks.csv', 3, 'pupil_id', 'pupil_id is empty', None),
                                       ('marks.csv',
                                        4,
                                        'pupil_id',
                                        "no pupil 'P7' at school 'S1' in pupils.csv",
                                        'every pupil with marks needs a row in pupils.csv'),
                                       ('marks.csv',
                                        5,
                                        'pupil_id',
                                        "no pupil 'P7' at school 'S1' in pupils.csv",
                                        'every pupil with marks needs a row in pupils.csv')],
 'empty school / by school': [('calendar.csv',
                               None,
                               'school_id',
                               "no calendar rows for school ' '",
                               'give every school its days, or leave out school_id for one calendar shared by every school')],
 'empty school / none': [('marks.csv', 2, 'school_id', 'school_id is empty', 'every row needs its school, or leave out the school_id column'),
                         ('marks.csv', 3, 'school_id', 'school_id is empty', 'every row needs its school, or leave out the school_id column')],
 'empty school / shared': [('marks.csv',
                            2,
                            'date',
                            "mark '/' on 2025-09-03 AM: the date is not in calendar.csv",
                            "a closed session may carry only codes that are not possible sessions (such as #); fix the calendar's open_am/open_pm or "
                            'the mark'),
                           ('marks.csv', 2, 'school_id', 'school_id is empty', 'every row needs its school, or leave out the school_id column'),
                           ('marks.csv',
                            3,
                            'date',
                            "mark '/' on 2025-09-04 AM: the date is not in calendar.csv",
                            "a closed session may carry only codes that are not possible sessions (such as #); fix the calendar's open_am/open_pm or "
                            'the mark'),
                           ('marks.csv', 3, 'school_id', 'school_id is empty', 'every row needs its school, or leave out the school_id column')],
 'marks without school, unknown pupil / by school': [('marks.csv',
                                                      3,
                                                      'date',
                                                      "mark '/' on 2025-09-03 AM: the date is not in calendar.csv",
                                                      'a closed session may carry only codes that are not possible sessions (such as #); fix the '
                                                      "calendar's open_am/open_pm or the mark"),
                                                     ('marks.csv',
                                                      3,
                                                      'pupil_id',
                                                      "no pupil 'P9' in pupils.csv",
                                                      'every pupil with marks needs a row in pupils.csv'),
                                                     ('marks.csv',
                                                      4,
                                                      'date',
                                                      "mark '/' on 2025-09-03 AM: the date is not in calendar.csv",
                                                      'a closed session may carry only codes that are not possible sessions (such as #); fix the '
                                                      "calendar's open_am/open_pm or the mark"),
                                                     ('marks.csv',
                                                      4,
                                                      'pupil_id',
                                                      "no pupil 'P2' in pupils.csv",
                                                      'every pupil with marks needs a row in pupils.csv')],
 'marks without school, unknown pupil / none': [('marks.csv',
                                                 3,
                                                 'pupil_id',
                                                 "no pupil 'P9' in pupils.csv",
                                                 'every pupil with marks needs a row in pupils.csv'),
                                                ('marks.csv',
                                                 4,
                                                 'pupil_id',
                                                 "no pupil 'P2' in pupils.csv",
                                                 'every pupil with marks needs a row in pupils.csv')],
 'marks without school, unknown pupil / shared': [('marks.csv',
                                                   3,
                                                   'date',
                                                   "mark '/' on 2025-09-03 AM: the date is not in calendar.csv",
                                                   'a closed session may carry only codes that are not possible sessions (such as #); fix the '
                                                   "calendar's open_am/open_pm or the mark"),
                                                  ('marks.csv',
                                                   3,
                                                   'pupil_id',
                                                   "no pupil 'P9' in pupils.csv",
                                                   'every pupil with marks needs a row in pupils.csv'),
                                                  ('marks.csv',
                                                   4,
                                                   'date',
                                                   "mark '/' on 2025-09-03 AM: the date is not in calendar.csv",
                                                   'a closed session may carry only codes that are not possible sessions (such as #); fix the '
                                                   "calendar's open_am/open_pm or the mark"),
                                                  ('marks.csv',
                                                   4,
                                                   'pupil_id',
                                                   "no pupil 'P2' in pupils.csv",
                                                   'every pupil with marks needs a row in pupils.csv')],
 'padded duplicates / by school': [('calendar.csv',
                                    None,
                                    'school_id',
                                    "no calendar rows for school 'S1 '",
                                    'give every school its days, or leave out school_id for one calendar shared by every school')],
 'padded duplicates / none': [('marks.csv',
                               3,
                               'session',
                               "duplicate mark for pupil 'P1' at school 'S1' on 2025-09-03 AM (first at line 2)",
                               'one mark per pupil per session')],
 'padded duplicates / shared': [('marks.csv',
                                 3,
                                 'session',
                                 "duplicate mark for pupil 'P1' at school 'S1' on 2025-09-03 AM (first at line 2)",
                                 'one mark per pupil per session')],
 'padded pupil at a school / by school': [],
 'padded pupil at a school / none': [],
 'padded pupil at a school / shared': [],
 'padded school / by school': [('calendar.csv',
                                None,
                                'school_id',
                                "no calendar rows for school ' S1 '",
                                'give every school its days, or leave out school_id for one calendar shared by every school')],
 'padded school / none': [],
 'padded school / shared': [],
 'unknown pupils on one day / by school': [('calendar.csv',
                                            None,
                                            'school_id',
                                            "no calendar rows for school 'S9'",
                                            'give every school its days, or leave out school_id for one calendar shared by every school')],
 'unknown pupils on one day / none': [('marks.csv',
                                       2,
                                       'pupil_id',
                                       "no pupil 'P7' at school 'S1' in pupils.csv",
                                       'every pupil with marks needs a row in pupils.csv'),
                                      ('marks.csv',
                                       3,
                                       'pupil_id',
                                       "no pupil 'P8' at school 'S1' in pupils.csv",
                                       'every pupil with marks needs a row in pupils.csv'),
                                      ('marks.csv',
                                       4,
                                       'pupil_id',
                                       "no pupil 'P9' at school 'S9' in pupils.csv",
                                       'every pupil with marks needs a row in pupils.csv'),
                                      ('marks.csv',
                                       5,
                                       'pupil_id',
                                       "no pupil 'P9' at school 'S9' in pupils.csv",
                                       'every pupil with marks needs a row in pupils.csv')],
 'unknown pupils on one day / shared': [('marks.csv',
                                         2,
                                         'pupil_id',
                                         "no pupil 'P7' at school 'S1' in pupils.csv",
                                         'every pupil with marks needs a row in pupils.csv'),
                                        ('marks.csv',
                                         3,
                                         'pupil_id',
                                         "no pupil 'P8' at school 'S1' in pupils.csv",
                                         'every pupil with marks needs a row in pupils.csv'),
                                        ('marks.csv',
                                         4,
                                         'pupil_id',
                                         "no pupil 'P9' at school 'S9' in pupils.csv",
                                         'every pupil with marks needs a row in pupils.csv'),
                                        ('marks.csv',
                                         5,
                                         'pupil_id',
                                         "no pupil 'P9' at school 'S9' in pupils.csv",
                                         'every pupil with marks needs a row in pupils.csv')],
 'unknown school / by school': [('calendar.csv',
                                 None,
                                 'school_id',
                                 "no calendar rows for school 'S9'",
                                 'give every school its days, or leave out school_id for one calendar shared by every school')],
 'unknown school / none': [('marks.csv',
                            3,
                            'pupil_id',
                            "no pupil 'P1' at school 'S9' in pupils.csv",
                            'every pupil with marks needs a row in pupils.csv')],
 'unknown school / shared': [('marks.csv',
                              3,
                              'pupil_id',
                              "no pupil 'P1' at school 'S9' in pupils.csv",
                              'every pupil with marks needs a row in pupils.csv')]}


@pytest.mark.parametrize("case", ID_CASES)
@pytest.mark.parametrize("calendar", ID_CALENDARS)
def test_ids_that_are_not_a_pupils_are_reported_as_when_they_were_text(tmp_path, case, calendar):
    load = register(tmp_path, marks=ID_CASES[case], pupils=ENUM_PUPILS, calendar=ID_CALENDARS[calendar])
    assert [(p.file, p.row, p.column, p.message, p.hint) for p in load.problems] == ID_EXPECTED[f"{case} / {calendar}"]


def test_pupil_and_school_ids_are_enums_shared_by_marks_pupils_and_calendar(tmp_path):
    load = register(tmp_path, marks=ID_CASES["unknown school"].replace("S9", "S2").replace("P1,S2", "P2,S2"),
                    pupils=ENUM_PUPILS, calendar=ENUM_CAL)
    assert load.ok, load.report()
    con = load.register.connection
    types = {t: con.execute(f"SELECT typeof(pupil_id), typeof(school_id) FROM {t} LIMIT 1").fetchone()
             for t in ("marks", "pupils")}
    assert types["marks"] == types["pupils"] == ("ENUM('P1', 'P2')", "ENUM('S1', 'S2')")
    assert con.execute("SELECT typeof(school_id) FROM calendar LIMIT 1").fetchone() == ("ENUM('S1', 'S2')",)
    # Without a school_id column in the pupils the school stays text ('' is relabelled later).
    plain = register(tmp_path / "plain")
    assert plain.register.connection.execute("SELECT typeof(pupil_id), typeof(school_id) FROM marks LIMIT 1").fetchone() == (
        "ENUM('P1', 'P2')", "VARCHAR")


def test_two_registers_with_other_pupils_load_into_one_connection(tmp_path):
    con = duckdb.connect()
    first = register(tmp_path / "a", pupils=ENUM_PUPILS, marks=H + "P1,S1,2025-09-03,AM,/\n", connection=con)
    assert first.ok, first.report()
    second = register(tmp_path / "b", pupils=ENUM_PUPILS.replace("P2", "P3"), marks=H + "P3,S2,2025-09-03,AM,L\n", connection=con)
    assert second.ok, second.report()
    assert con.execute("SELECT pupil_id, school_id, code FROM marks").fetchall() == [("P3", "S2", "L")]
    assert con.execute("SELECT count(*) FROM duckdb_types() WHERE type_name LIKE 'rb_pupil_%'").fetchone() == (2,)
    again = register(tmp_path / "c", pupils=ENUM_PUPILS.replace("P2", "P3"), marks=H + "P3,S2,2025-09-03,AM,/\n", connection=con)
    assert again.ok and con.execute("SELECT count(*) FROM duckdb_types() WHERE type_name LIKE 'rb_pupil_%'").fetchone() == (2,)


def test_an_enum_of_more_than_65536_pupils():
    from engine.register import enum_type, enum_type_of
    con = duckdb.connect()
    con.execute("CREATE TABLE p AS SELECT 'P' || i AS pupil_id FROM range(70000) t(i)")
    name = enum_type_of(con, "rb_pupil", "pupil_id", "p")
    assert con.execute(f"SELECT len(enum_range(NULL::{name})), CAST('P69999' AS {name}) FROM p LIMIT 1").fetchone() == (70000, "P69999")
    # The same name as enum_type gives for the same members.
    assert enum_type(con, "rb_pupil", [f"P{i}" for i in range(70000)]) == name
