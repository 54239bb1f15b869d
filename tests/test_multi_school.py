"""A trust register: the same pupil id may be on roll at two schools (the register contract keys a
pupil by school_id and pupil_id). Each school's pupil is counted from that school's marks only."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from engine.api import evaluate

from .evaluation import ENGINES
from .registers import RegisterBuilder, open_days

NATIONAL = Path(__file__).resolve().parent.parent / "policies" / "national.yaml"
FIRST, AS_OF = date(2025, 9, 3), date(2025, 9, 16)  # 10 open days: 20 possible sessions


def _merge(folders: dict[str, Path], out: Path) -> Path:
    """One register for several schools: each folder's rows with a school_id column."""
    out.mkdir()
    for name in ("marks", "pupils", "calendar"):
        with open(out / f"{name}.csv", "w", newline="") as target:
            writer = None
            for school_id, folder in folders.items():
                with open(folder / f"{name}.csv", newline="") as source:
                    for row in csv.DictReader(source):
                        if writer is None:
                            writer = csv.DictWriter(target, ["school_id", *row])
                            writer.writeheader()
                        writer.writerow({"school_id": school_id, **row})
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_pupil_id_at_two_schools_is_two_pupils(tmp_path, engine):
    assert len(open_days(FIRST, AS_OF)) == 10
    at_a = RegisterBuilder().pupil("P1").present("P1", FIRST, AS_OF)
    at_a.sessions("P1", FIRST, 10, "O")  # 10 of 20: exactly 50%, severe absence at school A
    at_b = RegisterBuilder().pupil("P1").present("P1", FIRST, AS_OF)  # never absent at school B
    register = _merge({"A": at_a.write(tmp_path / "a"), "B": at_b.write(tmp_path / "b")}, tmp_path / "trust")
    actions = evaluate(NATIONAL, register, AS_OF, rules_engine=engine)
    severe = [a for a in actions if a["rule"] == "severe-absence"]
    assert {(a["subject"]["school_id"], a["subject"]["id"]) for a in severe} == {("A", "P1")}
    measure = severe[0]["evidence"]["measures"][0]
    assert (measure["numerator"], measure["denominator"]) == (10, 20)
    assert {a["subject"]["school_id"] for a in actions} == {"A"}
