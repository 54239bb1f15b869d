"""Errors and warnings as values: every message a user can cause, with where and why.

A Diagnostic carries a Span into a source text. `render` prints the file:line:col, the
offending line with a caret under the span, what was expected and a hint. Nothing in the
pipeline raises to the user: stages return diagnostics, and the CLI renders them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Span:
    """A region of one source file. Lines and columns are 1-based; offsets are 0-based."""

    path: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def shifted(self, line: int, column: int, end_line: int | None = None, end_column: int | None = None) -> "Span":
        return Span(self.path, line, column, end_line, end_column)


@dataclass(frozen=True)
class Diagnostic:
    """One problem: its severity, a stable code, the message, where, and how to fix it."""

    severity: str
    code: str
    message: str
    span: Span | None
    hint: str | None = None
    expected: str | None = None

    def as_dict(self) -> dict:
        out = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.span is not None:
            out.update(file=self.span.path, line=self.span.line, column=self.span.column)
            if self.span.end_line is not None:
                out.update(end_line=self.span.end_line, end_column=self.span.end_column)
        if self.expected:
            out["expected"] = self.expected
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass
class Sources:
    """The texts diagnostics point into, by path, so a renderer can quote the line."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, text: str) -> None:
        self.texts[path] = text

    def line(self, path: str, line: int) -> str | None:
        text = self.texts.get(path)
        if text is None:
            return None
        lines = text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else None


def error(code: str, message: str, span: Span | None, hint: str | None = None, expected: str | None = None) -> Diagnostic:
    return Diagnostic(ERROR, code, message, span, hint, expected)


def warning(code: str, message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
    return Diagnostic(WARNING, code, message, span, hint)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == ERROR for d in diagnostics)


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt name, for 'did you mean' hints."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    match = nearest(word, candidates)
    return f"did you mean `{match}`?" if match else None


def sort_key(d: Diagnostic):
    s = d.span
    return (s.path if s else "", s.line if s else 0, s.column if s else 0, d.severity != ERROR, d.code)


def render(diagnostics: Iterable[Diagnostic], sources: Sources) -> str:
    """Human output: one block per diagnostic, with the source line and a caret."""
    blocks = []
    for d in sorted(diagnostics, key=sort_key):
        s = d.span
        where = f"{s.path}:{s.line}:{s.column}: " if s else ""
        lines = [f"{where}{d.severity}[{d.code}]: {d.message}"]
        text = sources.line(s.path, s.line) if s else None
        if text is not None:
            gutter = f"{s.line:>4} | "
            lines.append(gutter + text.expandtabs(1))
            width = 1
            if s.end_line == s.line and s.end_column and s.end_column > s.column:
                width = s.end_column - s.column
            lines.append(" " * (len(gutter) - 2) + "| " + " " * (s.column - 1) + "^" * width)
        if d.expected:
            lines.append(f"     = expected: {d.expected}")
        if d.hint:
            lines.append(f"     = hint: {d.hint}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
