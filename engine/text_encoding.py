"""Decode a text export from a school MIS: UTF-8 (with or without a byte order mark), or
Windows-1252, which is what Excel on a school office PC writes when it saves "CSV" rather than
"CSV UTF-8". The choice is always reported, never silent, because a wrong guess turns "Zoë" into
"ZoÃ«" and a pupil's name into a different string.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

UTF8_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class DecodedText:
    """The text of a file and how it was read. `note` says how the encoding was chosen."""

    text: str
    encoding: str  # 'utf-8', 'utf-8-sig' (UTF-8 with BOM), 'cp1252', or the forced codec
    note: str


class EncodingProblem(ValueError):
    """The bytes are not text in any encoding tried; `line` is the 1-based line of the bad byte."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def known_encoding(name: str) -> str | None:
    """The canonical codec name for `name`, or None when Python has no such text codec."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    return info.name


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def decode_export(raw: bytes, encoding: str | None = None) -> DecodedText:
    """Decode `raw`. With `encoding`, use exactly that codec (a BOM is still stripped for UTF-8).
    Without it: a UTF-8 BOM means UTF-8; else strict UTF-8; else Windows-1252, with a note.
    Raises EncodingProblem when the bytes do not decode."""
    if encoding:
        codec = known_encoding(encoding) or encoding
        if codec == "utf-8" and raw.startswith(UTF8_BOM):
            codec = "utf-8-sig"
        try:
            return DecodedText(raw.decode(codec), codec, f"read as {codec} (--encoding {encoding})")
        except UnicodeDecodeError as exc:
            raise EncodingProblem(f"the file is not valid {codec} text (byte 0x{raw[exc.start]:02x})",
                                  _line_of(raw, exc.start)) from None
    if raw.startswith(UTF8_BOM):
        try:
            return DecodedText(raw[len(UTF8_BOM):].decode("utf-8"), "utf-8-sig", "read as UTF-8 (the file starts with a byte order mark)")
        except UnicodeDecodeError as exc:
            raise EncodingProblem(f"the file starts with a UTF-8 byte order mark but is not valid UTF-8 "
                                  f"(byte 0x{raw[exc.start + 3]:02x})", _line_of(raw, exc.start + 3)) from None
    try:
        return DecodedText(raw.decode("utf-8"), "utf-8", "read as UTF-8")
    except UnicodeDecodeError as exc:
        first_bad = _line_of(raw, exc.start)
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        # Five byte values (0x81 0x8D 0x8F 0x90 0x9D) are undefined in Windows-1252.
        raise EncodingProblem(f"the file is neither UTF-8 nor Windows-1252 text (byte 0x{raw[exc.start]:02x}); "
                              f"pass --encoding with the encoding it was saved in", _line_of(raw, exc.start)) from None
    return DecodedText(text, "cp1252", f"not valid UTF-8 (first at line {first_bad}), so read as Windows-1252 "
                                       f"(Excel's \"CSV\"); pass --encoding to choose another")
