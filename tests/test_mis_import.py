"""`rollbook import`: MIS exports (long and grid) into the register contract.

Header aliases, dates, codes and encodings are table-driven; the unmapped-row report is golden;
the three example exports must give the same register; a random register rendered as a grid (in
every supported header style and encoding) must import back to the same marks; and an import
must evaluate through the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.codes import national_codes
from engine.mis_import import (
    ALIAS_INDEX, FIELD_ALIASES, DateReader, alias_key, import_export, parse_column_map, read_code, read_date,
    read_session, split_day_cell,
)
from engine.text_encoding import EncodingProblem, decode_export

REPO = Path(__file__).resolve().parent.parent
MIS = REPO / "examples" / "mis"
GOLDEN = Path(__file__).resolve().parent / "golden" / "mis-import"
EXAMPLES = [("attendance-long.csv", "long"), ("attendance-grid.csv", "grid"), ("attendance-grid-two-row.csv", "grid")]


def _write(tmp: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp / name
    path.write_bytes(text.encode(encoding))
    return path


def _marks(result) -> set[tuple]:
    return {(m.pupil_id, m.date.isoformat(), m.session, m.code) for m in result.marks}


# ---------------------------------------------------------------------------------- headers


@pytest.mark.parametrize("header, field", [
    ("UPN", "pupil_id"), ("Adno", "pupil_id"), ("Admission Number", "pupil_id"), ("Adm. No.", "pupil_id"),
    ("Pupil ID", "pupil_id"), ("PUPIL_ID", "pupil_id"), ("pupil-id", "pupil_id"), ("\ufeffUPN", "pupil_id"),
    ("Reg Group", "reg_group"), ("Reg. Group", "reg_group"), ("Registration Group", "reg_group"), ("Form", "reg_group"),
    ("Tutor Group", "reg_group"), ("Mark", "code"), ("Code", "code"), ("Attendance Mark", "code"), ("MARK", "code"),
    ("Date", "date"), ("Session Date", "date"), ("Session", "session"), ("AM/PM", "session"),
    ("AM Mark", "am_code"), ("PM", "pm_code"), ("Minutes Late", "minutes_late"), ("Mins late", "minutes_late"),
    ("Late (mins)", "minutes_late"), ("Year", "year_group"), ("NC Year", "year_group"), ("D.O.B.", "date_of_birth"),
    ("Date of Birth", "date_of_birth"), ("Admission Date", "joined_on"), ("Date of Leaving", "left_on"),
    ("Legal Surname", "surname"), ("Forename", "forename"), ("FSM Eligible", "fsm"), ("SEN Status", "sen"),
    ("CLA", "lac"), ("URN", "school_id"),
])
def test_header_aliases(header, field):
    assert ALIAS_INDEX[alias_key(header)] == field


@pytest.mark.parametrize("header", ["Attendance %", "Notes", "House", "Mon 01/09/2025 AM", ""])
def test_headers_that_are_no_field(header):
    assert alias_key(header) not in ALIAS_INDEX


def test_no_alias_reads_as_two_fields():
    owner = {}
    for f, aliases in FIELD_ALIASES.items():
        for a in (f, *aliases):
            assert owner.setdefault(alias_key(a), f) == f, f"{a!r} is listed for {owner[alias_key(a)]} and {f}"


@pytest.mark.parametrize("items, mapping, problem", [
    (["Pupil Ref=pupil_id"], {"pupilref": "pupil_id"}, None),
    (["House=pupil.house"], {"house": "pupil.house"}, None),
    (["Adno=ignore"], {"adno": "ignore"}, None),
    (["Pupil Ref=pupil_di"], {}, "unknown field 'pupil_di' (did you mean `pupil_id`?)"),
    (["Pupil Ref"], {}, "write COLUMN=FIELD"),
    (["House=pupil.House"], {}, "unknown field"),
])
def test_map_option(items, mapping, problem):
    got, problems = parse_column_map(items)
    assert got == mapping
    assert (problem is None and not problems) or (problems and problem in problems[0])


def test_two_pupil_id_columns_need_a_choice(tmp_path):
    text = "UPN,Adno,Date,Session,Mark\nK1,1001,08/09/2025,AM,/\n"
    export = _write(tmp_path, "e.csv", text)
    result = import_export(export, "long")
    assert result.errors == ["e.csv: columns 'UPN' and 'Adno' both read as pupil_id (hint: choose one with "
                             "--map 'UPN=pupil_id'; the other is then ignored)"]
    result = import_export(export, "long", column_map=parse_column_map(["Adno=pupil_id"])[0])
    assert not result.errors and _marks(result) == {("1001", "2025-09-08", "AM", "/")}
    assert "column A 'UPN' ignored: --map chose 'Adno' as pupil_id" in result.notes


def test_map_names_an_unrecognised_column_and_a_custom_attribute(tmp_path):
    text = "Ref,Day,Half,Attendance,House\nP1,08/09/2025,am,N,Red\n"
    export = _write(tmp_path, "e.csv", text)
    column_map, _ = parse_column_map(["Ref=pupil_id", "Day=date", "Half=session", "Attendance=code", "House=pupil.house"])
    result = import_export(export, "long", column_map=column_map)
    assert not result.errors and not result.unmapped
    assert _marks(result) == {("P1", "2025-09-08", "AM", "N")}
    assert result.pupils_rows() == [{"pupil_id": "P1", "house": "Red"}]


# ---------------------------------------------------------------------------------- dates


@pytest.mark.parametrize("text, expected", [
    ("01/09/2025", "2025-09-01"), ("1/9/2025", "2025-09-01"), ("01.09.2025", "2025-09-01"),
    ("01-09-2025", "2025-09-01"), ("2025-09-01", "2025-09-01"), ("01-Sep-2025", "2025-09-01"),
    ("1 September 2025", "2025-09-01"), ("01-Sept-2025", "2025-09-01"), ("01/09/2025 00:00:00", "2025-09-01"),
    ("01/09/2025 00:00", "2025-09-01"), ("Mon 01/09/2025", "2025-09-01"), ("Monday, 01-Sep-2025", "2025-09-01"),
    ("29/02/2024", "2024-02-29"), (" 03/09/2025 ", "2025-09-03"),
    ("31/09/2025", "'31/09/2025' is not a real date"),
    ("29/02/2025", "'29/02/2025' is not a real date"),
    ("09/13/2025", "'09/13/2025' has no month 13: it reads only as month/day (US order), which is not assumed"),
    ("01/09/25", "'01/09/25' has a two-digit year"),
    ("01-Sep-25", "'01-Sep-25' has a two-digit year"),
    ("01/09/2025 09:30", "'01/09/2025 09:30' has a time of day"),
    ("Tue 01/09/2025", "'Tue 01/09/2025': 2025-09-01 is a Monday, not a Tuesday"),
    ("01-Sop-2025", "'01-Sop-2025': unknown month 'Sop'"),
    ("", "the date is empty"),
    ("next Monday", "'next Monday' is not a date in a format Rollbook reads"),
])
def test_read_date_uk(text, expected):
    r = read_date(text)
    assert (r.value.isoformat() if r.value else r.reason) == expected


@pytest.mark.parametrize("text, expected", [
    ("09/13/2025", "2025-09-13"), ("09/01/2025", "2025-09-01"),
    ("13/09/2025", "'13/09/2025' has no month 13: it reads only as day/month (UK order), which is not assumed"),
    ("2025-09-13", "2025-09-13"),
])
def test_read_date_month_first_only_when_asked(text, expected):
    r = read_date(text, "mdy")
    assert (r.value.isoformat() if r.value else r.reason) == expected


@pytest.mark.parametrize("text, expected", [
    ("03/09/2025", "'03/09/2025' is ambiguous: this file also has '09/13/2025', which reads only with the month "
                   "first, so it could be 3/9 either way"),
    ("05/05/2025", "2025-05-05"),   # the same either way
    ("25/09/2025", "2025-09-25"),   # reads only one way
    ("2025-09-03", "2025-09-03"),
])
def test_a_file_with_a_month_first_date_makes_day_month_dates_ambiguous(text, expected):
    reader = DateReader("dmy", ["01/09/2025", "09/13/2025", "25/09/2025"])
    r = reader.read(text)
    assert (r.value.isoformat() if r.value else r.reason) == expected


def test_ambiguous_dates_in_an_export_are_reported_not_guessed(tmp_path):
    text = "UPN,Date,Session,Mark\nP1,03/09/2025,AM,/\nP1,09/13/2025,AM,/\nP1,25/09/2025,AM,/\n"
    result = import_export(_write(tmp_path, "e.csv", text), "long")
    assert _marks(result) == {("P1", "2025-09-25", "AM", "/")}
    assert [(u.line, u.reason.split(":")[0]) for u in result.unmapped] == [
        (2, "'03/09/2025' is ambiguous"), (3, "'09/13/2025' has no month 13")]


@pytest.mark.parametrize("text, session", [
    ("AM", "AM"), ("pm", "PM"), ("Morning", "AM"), ("AFTERNOON", "PM"), ("a.m.", "AM"), ("P.M.", "PM"),
    ("Evening", None), ("", None), ("1", None),
])
def test_sessions(text, session):
    assert read_session(text) == session


# ---------------------------------------------------------------------------------- marks


@pytest.mark.parametrize("text, code, reason", [
    ("/", "/", None), ("\\", "\\", None), (" L ", "L", None), ("C1", "C1", None), ("Y7", "Y7", None), ("#", "#", None),
    ("", None, "no mark recorded (empty)"), ("-", None, "no mark recorded ('-')"),
    ("H", None, "code 'H' was retired in 2024"), ("J", None, "code 'J' was retired in 2024"),
    ("l", None, "'l' is not a national attendance code"), ("I01", None, "'I01' is not a national attendance code"),
    ("A", None, "'A' is not a national attendance code"), ("//", None, "'//' is not a national attendance code"),
])
def test_read_code(text, code, reason):
    r = read_code(text)
    assert (r.code, r.reason) == (code, reason)


def test_every_national_code_reads_as_itself_and_nothing_else_does():
    codes = national_codes().codes
    assert all(read_code(c).code == c for c in codes)
    assert all(read_code(c).code is None for c in national_codes().retired)


@pytest.mark.parametrize("text, parts", [
    ("/\\", ["/", "\\"]), ("NN", ["N", "N"]), ("C1/", ["C1", "/"]), ("/C1", ["/", "C1"]), ("Y1Y1", ["Y1", "Y1"]),
    ("/ -", ["/", "-"]), ("/", None), ("/\\\\", None), ("CC1", ["C", "C1"]),
])
def test_split_day_cell(text, parts):
    assert split_day_cell(text) == parts


# ---------------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("raw, forced, text, encoding", [
    ("Zoë".encode("utf-8"), None, "Zoë", "utf-8"),
    (b"\xef\xbb\xbf" + "Zoë".encode("utf-8"), None, "Zoë", "utf-8-sig"),
    ("Zoë,Seán".encode("cp1252"), None, "Zoë,Seán", "cp1252"),
    ("Zoë".encode("latin-1"), "latin-1", "Zoë", "iso8859-1"),
    (b"\xef\xbb\xbf" + "Zoë".encode("utf-8"), "utf-8", "Zoë", "utf-8-sig"),
    ("Zoë".encode("utf-8"), "cp1252", "ZoÃ«", "cp1252"),  # forced means forced
])
def test_decode(raw, forced, text, encoding):
    decoded = decode_export(raw, forced)
    assert (decoded.text, decoded.encoding) == (text, encoding)


def test_cp1252_fallback_is_reported():
    decoded = decode_export(b"UPN\nA1,Zo\xeb\n")
    assert decoded.note == ("not valid UTF-8 (first at line 2), so read as Windows-1252 (Excel's \"CSV\"); "
                            "pass --encoding to choose another")


@pytest.mark.parametrize("raw, forced, message, line", [
    (b"UPN\nA1,\x81\n", None, "the file is neither UTF-8 nor Windows-1252 text (byte 0x81)", 2),
    ("a\nZoë".encode("cp1252"), "utf-8", "the file is not valid utf-8 text (byte 0xeb)", 2),
    (b"\xef\xbb\xbfUPN\n\xeb\n", None, "the file starts with a UTF-8 byte order mark but is not valid UTF-8 (byte 0xeb)", 2),
])
def test_undecodable(raw, forced, message, line):
    with pytest.raises(EncodingProblem) as exc:
        decode_export(raw, forced)
    assert message in str(exc.value) and exc.value.line == line


def test_the_windows_1252_example_keeps_its_names():
    result = import_export(MIS / "attendance-long.csv", "long")
    assert result.encoding == "cp1252"
    names = {row["forename"] for row in result.pupils_rows()}
    assert {"Zoë", "Seán", "Siobhán", "Noël", "Renée"} <= names


# ---------------------------------------------------------------------------------- the report (golden)


@pytest.mark.parametrize("shape", ["long", "grid"])
def test_unmapped_report_golden(shape, rollbook, tmp_path, update_golden):
    out = tmp_path / "register"
    run = rollbook("import", "--from", shape, f"tests/golden/mis-import/problems-{shape}.csv", "--out", out)
    got = (f"exit {run.returncode}\n--- stdout\n{run.stdout}--- stderr\n{run.stderr}"
           .replace(str(out), "OUT"))
    report = (out / "import-report.csv").read_text(encoding="utf-8")
    expected, expected_report = GOLDEN / f"problems-{shape}.expected", GOLDEN / f"problems-{shape}.report.csv"
    if update_golden:
        expected.write_text(got, encoding="utf-8")
        expected_report.write_text(report, encoding="utf-8")
    assert got == expected.read_text(encoding="utf-8")
    assert report == expected_report.read_text(encoding="utf-8")
    assert run.returncode == 1
    assert sorted(p.name for p in out.iterdir()) == ["import-report.csv", "import-report.json"]  # no register
    doc = json.loads((out / "import-report.json").read_text(encoding="utf-8"))
    assert doc["register_written"] is False and doc["unmapped_count"] == len(report.splitlines()) - 1


def test_allow_unmapped_writes_the_rest_and_says_so(rollbook, tmp_path):
    out = tmp_path / "register"
    run = rollbook("import", "--from", "long", "tests/golden/mis-import/problems-long.csv", "--out", out, "--allow-unmapped")
    assert run.returncode == 0
    assert "warning: the register in" in run.stderr and "is incomplete: 14 row(s) or cell(s)" in run.stderr
    doc = json.loads((out / "import-report.json").read_text(encoding="utf-8"))
    assert (doc["register_written"], doc["complete"], doc["marks"], doc["unmapped_count"]) == (True, False, 3, 14)
    with open(out / "marks.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 3


# ---------------------------------------------------------------------------------- shapes agree


def test_the_three_example_exports_give_the_same_register():
    results = [import_export(MIS / name, shape) for name, shape in EXAMPLES]
    for r in results:
        assert not r.errors and not r.unmapped, (r.source, r.errors, r.unmapped[:3])
    assert len(results[0].marks) == 290
    assert _marks(results[0]) == _marks(results[1]) == _marks(results[2])
    assert results[0].pupils_rows() == results[1].pupils_rows() == results[2].pupils_rows()
    # Minutes late is in the long export only (a grid has no room for it).
    assert {(m.pupil_id, m.date.isoformat(), m.minutes_late) for m in results[0].marks if m.minutes_late} == {
        ("A1003", "2025-09-09", "12"), ("A1003", "2025-09-16", "12"), ("A1003", "2025-09-23", "12"),
        ("A1008", "2025-09-08", "41"), ("A1008", "2025-09-15", "41")}


def test_long_export_with_am_and_pm_columns(tmp_path):
    text = "Adno\tDate\tAM\tPM\n1001\t08/09/2025\t/\t\\\n1001\t09/09/2025\tL\t\n"
    result = import_export(_write(tmp_path, "e.tsv", text), "long")
    assert _marks(result) == {("1001", "2025-09-08", "AM", "/"), ("1001", "2025-09-08", "PM", "\\"),
                              ("1001", "2025-09-09", "AM", "L")}
    assert [str(u) for u in result.unmapped] == [
        "e.tsv line 3, column D 'PM': no mark recorded (empty) (hint: a session with no mark cannot be counted; "
        "complete the register in the MIS and export again)"]


def test_grid_with_day_columns_holding_both_marks(tmp_path):
    text = "UPN,Name,01/09/2025,02/09/2025,03/09/2025\nP1,A B,/\\,NN,C1/\nP2,C D,/\\,-,/ \\\n"
    result = import_export(_write(tmp_path, "e.csv", text), "grid")
    assert _marks(result) == {
        ("P1", "2025-09-01", "AM", "/"), ("P1", "2025-09-01", "PM", "\\"), ("P1", "2025-09-02", "AM", "N"),
        ("P1", "2025-09-02", "PM", "N"), ("P1", "2025-09-03", "AM", "C1"), ("P1", "2025-09-03", "PM", "/"),
        ("P2", "2025-09-01", "AM", "/"), ("P2", "2025-09-01", "PM", "\\"), ("P2", "2025-09-03", "AM", "/"),
        ("P2", "2025-09-03", "PM", "\\")}
    assert [(u.line, u.column, u.reason) for u in result.unmapped] == [
        (3, "02/09/2025", "no mark recorded ('-')")]


def test_grid_column_nobody_has_a_mark_in_is_noted_not_reported(tmp_path):
    text = "UPN,01/09/2025 AM,01/09/2025 PM\nP1,/,\nP2,N,-\n"
    result = import_export(_write(tmp_path, "e.csv", text), "grid")
    assert not result.unmapped and len(result.marks) == 2
    assert "e.csv: no pupil has a mark in column C '01/09/2025 PM': no session written for it" in result.notes


def test_grid_blank_cells_outside_the_pupils_time_on_roll_are_not_missing_marks(tmp_path):
    text = "UPN,Admission Date,01/09/2025 AM,02/09/2025 AM\nP1,02/09/2025,,/\nP2,01/09/2025,/,\n"
    result = import_export(_write(tmp_path, "e.csv", text), "grid")
    assert [(u.line, u.column) for u in result.unmapped] == [(3, "02/09/2025 AM")]


def test_pupil_list_supplies_the_pupils(tmp_path):
    pupils = _write(tmp_path, "pupils.csv", "Adno,Year Group,FSM,SEN Status\n1001,Year 7,Yes,SEN Support\n1002,R,n,\n")
    export = _write(tmp_path, "e.csv", "Adno,Date,Session,Mark\n1001,08/09/2025,AM,/\n1003,08/09/2025,AM,/\n")
    result = import_export(export, "long", pupils=pupils)
    assert result.pupils_rows() == [{"pupil_id": "1001", "year_group": "7", "sen": "K", "fsm": "true"},
                                    {"pupil_id": "1002", "year_group": "R", "sen": "", "fsm": "false"}]
    assert [str(u) for u in result.unmapped] == [
        "e.csv line 3, column A 'Adno': no pupil '1003' in the pupil list; row not read "
        "(hint: every pupil with marks needs a row in the --pupils file)"]


# ---------------------------------------------------------------------------------- property


CODES = sorted(national_codes().codes)
NAMES = ["Zoë", "Seán", "Chloë", "José", "Renée", "O'Neill", "Smith, Jr", "Ana \"Nan\""]
FIRST_DAY = date(2025, 9, 1)
WEEKDAYS = [FIRST_DAY + timedelta(d) for d in range(21) if (FIRST_DAY + timedelta(d)).weekday() < 5]
STYLES = ["weekday", "slash", "iso", "named", "two-row", "day-cell"]


def _render_grid(marks: dict, pupils: list[str], days: list[date], style: str) -> str:
    head = ["UPN", "Forename"]
    sessions = [(d, s) for d in days for s in ("AM", "PM")]
    second = None
    if style == "weekday":
        head += [f"{d.strftime('%a %d/%m/%Y')} {s}" for d, s in sessions]
    elif style == "slash":
        head += [f"{d.day}/{d.month}/{d.year} {s.lower()}" for d, s in sessions]
    elif style == "iso":
        head += [f"{d.isoformat()} {s}" for d, s in sessions]
    elif style == "named":
        head += [f"{d.strftime('%d-%b-%Y')} ({'Morning' if s == 'AM' else 'Afternoon'})" for d, s in sessions]
    elif style == "two-row":
        second = ["", ""]
        for d in days:
            head += [d.strftime("%d/%m/%Y"), ""]
            second += ["AM", "PM"]
    else:
        head += [d.strftime("%d/%m/%Y") for d in days]
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(head)
    if second:
        w.writerow(second)
    for i, p in enumerate(pupils):
        if style == "day-cell":
            cells = [marks[(p, d, "AM")] + marks[(p, d, "PM")] for d in days]
        else:
            cells = [marks[(p, d, s)] for d, s in sessions]
        w.writerow([p, NAMES[i % len(NAMES)]] + cells)
    return buf.getvalue()


@st.composite
def registers(draw):
    pupils = draw(st.lists(st.from_regex(r"[A-Z][0-9]{3,6}", fullmatch=True), min_size=1, max_size=6, unique=True))
    days = sorted(draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=8, unique=True)))
    marks = {(p, d, s): draw(st.sampled_from(CODES)) for p in pupils for d in days for s in ("AM", "PM")}
    return pupils, days, marks


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registers(), st.sampled_from(STYLES), st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
def test_a_register_rendered_as_a_grid_imports_back_to_the_same_marks(register, style, encoding):
    pupils, days, marks = register
    text = _render_grid(marks, pupils, days, style)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.csv"
        path.write_bytes(text.encode(encoding))
        result = import_export(path, "grid")
    assert not result.errors and not result.unmapped, (result.errors, result.unmapped[:3])
    assert _marks(result) == {(p, d.isoformat(), s, c) for (p, d, s), c in marks.items()}
    assert [r["forename"] for r in result.pupils_rows()] == [
        NAMES[pupils.index(p) % len(NAMES)] for p in sorted(pupils)]


# ---------------------------------------------------------------------------------- the command line


def _actions(text: str) -> list[tuple]:
    return sorted((a["subject"]["id"], a["rule"]) for a in map(json.loads, text.splitlines()))


def test_import_then_evaluate(rollbook, tmp_path):
    registers_ = {}
    for name, shape in EXAMPLES[:2]:
        out = tmp_path / name
        run = rollbook("import", "--from", shape, f"examples/mis/{name}", "--out", out)
        assert run.returncode == 0, run.stderr
        assert f"wrote marks.csv, pupils.csv and import-report.csv/.json to {out}" in run.stdout
        ev = rollbook("eval", "--policy", "policies/national.yaml", "--register", out, "--as-of", "2025-09-26",
                      "--rules-engine", "builtin")
        assert ev.returncode == 0, ev.stderr
        registers_[name] = _actions(ev.stdout)
    long_actions, grid_actions = registers_.values()
    assert long_actions == grid_actions
    # A1004 has ten G marks in week 3: the national penalty-notice threshold.
    assert ("A1004", "penalty-notice-threshold") in long_actions
    assert {p for p, r in long_actions if r == "persistent-absence"} == {"A1002", "A1004", "A1006"}


def test_import_with_a_calendar_that_disagrees_writes_nothing(rollbook, tmp_path):
    calendar = _write(tmp_path, "calendar.csv", "date,term,half_term,open_am,open_pm\n"
                      + "".join(f"{d.isoformat()},autumn,1,true,{'false' if d == date(2025, 9, 8) else 'true'}\n"
                                for d in (date(2025, 9, 8) + timedelta(n) for n in range(19)) if d.weekday() < 5))
    out = tmp_path / "register"
    run = rollbook("import", "--from", "grid", "examples/mis/attendance-grid.csv", "--out", out, "--calendar", calendar)
    assert run.returncode == 1
    assert "error: marks.csv line 3, column date: mark " in run.stderr
    assert "on 2025-09-08 PM: calendar.csv says the school is closed for that session" in run.stderr
    assert "[from attendance-grid.csv line 4, column I 'Mon 08/09/2025 PM']" in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["import-report.csv", "import-report.json"]


@pytest.mark.parametrize("args, code, message", [
    (["--map", "Adno"], 2, "error: --map 'Adno': write COLUMN=FIELD"),
    (["--encoding", "klingon"], 2, "error: --encoding 'klingon' is not an encoding Python knows"),
    (["--calendar", "nowhere.csv"], 2, "error: --calendar nowhere.csv: no such file"),
])
def test_command_line_mistakes(rollbook, tmp_path, args, code, message):
    run = rollbook("import", "--from", "long", "examples/mis/attendance-long.csv", "--out", tmp_path / "o", *args)
    assert run.returncode == code and message in run.stderr


def test_missing_export_and_spreadsheets(rollbook, tmp_path):
    run = rollbook("import", "--from", "long", tmp_path / "nope.csv", "--out", tmp_path / "o")
    assert run.returncode == 1 and f"error: {tmp_path / 'nope.csv'}: file not found" in run.stderr
    xlsx = _write(tmp_path, "marks.xlsx", "PK")
    run = rollbook("import", "--from", "grid", xlsx, "--out", tmp_path / "o")
    assert run.returncode == 1 and "a spreadsheet file, not text (hint: save it as CSV" in run.stderr


def test_an_existing_register_is_replaced_only_with_force(rollbook, tmp_path):
    out = tmp_path / "o"
    assert rollbook("import", "--from", "long", "examples/mis/attendance-long.csv", "--out", out).returncode == 0
    run = rollbook("import", "--from", "long", "tests/golden/mis-import/problems-long.csv", "--out", out)
    assert run.returncode == 1 and "already holds import-report.csv, import-report.json, marks.csv, pupils.csv" in run.stderr
    run = rollbook("import", "--from", "long", "tests/golden/mis-import/problems-long.csv", "--out", out, "--force")
    assert run.returncode == 1
    # The failed import leaves its report and no stale register from the earlier one.
    assert sorted(p.name for p in out.iterdir()) == ["import-report.csv", "import-report.json"]


def test_the_docs_alias_table_is_the_code():
    text = (REPO / "docs" / "mis-import.md").read_text(encoding="utf-8")
    block = text.split("<!-- aliases-table -->", 1)[1].split("<!-- /aliases-table -->", 1)[0]
    table = {}
    for line in block.strip().splitlines()[2:]:
        field_cell, aliases_cell = [c.strip() for c in line.strip().strip("|").split("|")]
        table[field_cell.strip("`")] = [a.strip().strip("`") for a in aliases_cell.split(",") if a.strip()]
    assert table == {f: [a for a in aliases if a != f] for f, aliases in FIELD_ALIASES.items()}
