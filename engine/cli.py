"""The `rollbook` command line. Each subcommand is a thin shell over engine.api.

Exit codes: 0 success (warnings allowed), 1 the input has errors (or a check failed),
2 the command line itself is wrong, 3 an internal error (a bug in Rollbook: please report it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from . import __version__
from .diagnostics import ERROR, WARNING, Sources, render

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 3


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---- rollbook check -------------------------------------------------------------------------

def cmd_check(args) -> int:
    from .api import check_policy_files, policy_files

    files, missing = policy_files(args.paths)
    results = check_policy_files(files)
    errors = sum(1 for r in results for d in r.diagnostics if d.severity == ERROR) + len(missing)
    warnings = sum(1 for r in results for d in r.diagnostics if d.severity == WARNING)
    if args.format == "json":
        out = {
            "files": [{
                "path": r.path, "ok": r.ok,
                "policy": r.policy_id,
                "rules": r.rules,
                "diagnostics": [d.as_dict() for d in r.diagnostics],
            } for r in results] + [{"path": m, "ok": False, "diagnostics": [
                {"severity": "error", "code": "file.missing", "message": f"no such file or folder: {m}"}]} for m in missing],
            "errors": errors, "warnings": warnings,
        }
        print(json.dumps(out, indent=2))
    else:
        sources = Sources()
        for r in results:
            sources.texts.update(r.sources.texts)
        # A base policy's problems would repeat under every file that extends it: show each once.
        seen, shown = set(), []
        for r in results:
            for d in r.diagnostics:
                key = (d.span, d.code, d.message)
                if key not in seen:
                    seen.add(key)
                    shown.append(d)
        for m in missing:
            print(f"error: no such file or folder: {m}", file=sys.stderr)
        if shown:
            print(render(shown, sources))
            print()
        if not files and not missing:
            print("no policy files found", file=sys.stderr)
        ok = sum(1 for r in results if r.ok)
        print(f"checked {_plural(len(files), 'policy')}: {ok} ok, {_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
              .replace("policys", "policies"))
    if not files and not missing:
        return EXIT_PROBLEMS
    if args.strict and warnings:
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if errors else EXIT_OK


# ---- rollbook fmt ---------------------------------------------------------------------------

def cmd_fmt(args) -> int:
    from ruamel.yaml.error import YAMLError

    from .fmt import format_policy_text

    from .api import policy_files

    files, missing = policy_files(args.paths)
    for m in missing:
        print(f"error: no such file or folder: {m}", file=sys.stderr)
    changed, failed = [], []
    for f in files:
        text = f.read_text(encoding="utf-8-sig")
        try:
            formatted = format_policy_text(text)
        except YAMLError as exc:
            failed.append(f)
            print(f"error: {f}: cannot format: not valid YAML ({str(exc).splitlines()[0]}); run `rollbook check {f}`",
                  file=sys.stderr)
            continue
        if formatted != text:
            changed.append(f)
            if not args.check:
                f.write_text(formatted, encoding="utf-8")
    verb = "would reformat" if args.check else "reformatted"
    for f in changed:
        print(f"{verb} {f}")
    print(f"{_plural(len(files), 'file')} checked, {len(changed)} {verb}" if args.check else
          f"{_plural(len(files), 'file')}, {len(changed)} {verb}")
    if missing or failed:
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if (args.check and changed) else EXIT_OK


# ---- rollbook schema ------------------------------------------------------------------------

def cmd_schema(args) -> int:
    from .validate import SCHEMA_PATH

    schema_dir = SCHEMA_PATH.parent
    name = {"policy": "policy.schema.json", "action": "action.schema.json", "marks": "register/marks.schema.json",
            "pupils": "register/pupils.schema.json", "calendar": "register/calendar.schema.json"}[args.which]
    path = schema_dir / name
    if not path.exists():
        print(f"error: the {args.which} schema is not part of this version of Rollbook", file=sys.stderr)
        return EXIT_PROBLEMS
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return EXIT_OK


# ---- rollbook eval ---------------------------------------------------------------------------

def _render_problems(problems) -> str:
    """Policy diagnostics, register problems and plain messages, one per line or block."""
    from .diagnostics import Diagnostic

    lines = []
    for p in problems:
        if isinstance(p, Diagnostic):
            s = p.span
            where = f"{s.path}:{s.line}:{s.column}: " if s else ""
            text = f"{where}{p.severity}: {p.message}"
            if p.hint:
                text += f" (hint: {p.hint})"
            lines.append(text)
        elif hasattr(p, "render"):
            lines.append(p.render())
        else:
            lines.append(f"error: {p}")
    return "\n".join(lines)


class _Progress:
    """Stage messages on stderr when it is a terminal (never in pipes or CI logs)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\033[K{message}…")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def cmd_eval(args) -> int:
    from .api import RollbookError, run_evaluation
    from .rules import RulesEngineUnavailable, durable_available
    from .sinks import to_csv, to_jsonl, to_table

    engine = args.rules_engine
    if engine == "auto":
        engine = "durable" if durable_available()[0] else "builtin"
    progress = _Progress(sys.stderr.isatty())
    try:
        evaluation = run_evaluation(args.policy, args.register, args.as_of, args.prior, engine, progress=progress)
    except RollbookError as exc:
        progress.done()
        print(f"error: {exc}", file=sys.stderr)
        if exc.problems:
            print(_render_problems(exc.problems), file=sys.stderr)
        return EXIT_PROBLEMS
    except RulesEngineUnavailable as exc:
        progress.done()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    progress.done()
    actions = evaluation.actions
    text = {"jsonl": to_jsonl, "csv": to_csv}.get(args.format, lambda a: to_table(a, evaluation))(actions)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(actions)} action{'s' if len(actions) != 1 else ''} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if evaluation.calendar_note and args.format != "table":
        print(f"note: {evaluation.calendar_note}", file=sys.stderr)
    for warning in evaluation.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


# ---- rollbook backtest -----------------------------------------------------------------------

def cmd_backtest(args) -> int:
    from .api import RollbookError
    from .backtest import run_backtest, to_csv, to_json, to_text
    from .rules import RulesEngineUnavailable, durable_available

    engine = args.rules_engine
    if engine == "auto":
        engine = "durable" if durable_available()[0] else "builtin"
    progress = _Progress(sys.stderr.isatty())
    try:
        result = run_backtest(args.policy, args.register, getattr(args, "from"), args.to, args.prior, engine,
                              progress=progress)
    except (RollbookError, RulesEngineUnavailable) as exc:
        progress.done()
        print(f"error: {exc}", file=sys.stderr)
        if getattr(exc, "problems", None):
            print(_render_problems(exc.problems), file=sys.stderr)
        return EXIT_PROBLEMS
    progress.done()
    if args.format == "json":
        text = to_json(result, args.register)
    elif args.format == "csv":
        text = to_csv(result)
    else:
        text = to_text(result, args.register)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote the backtest ({len(result.days)} school days, {_plural(len(result.actions), 'action')}) "
              f"to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if result.calendar_note and args.format != "text":
        print(f"note: {result.calendar_note}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


# ---- rollbook sample -------------------------------------------------------------------------

def cmd_sample(args) -> int:
    from .sample import generate_sample

    if args.pupils < 1 or args.schools < 1 or args.pupils < args.schools:
        print("error: --pupils must be at least 1 and at least --schools", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"error: {out} is not empty; choose another folder or pass --force to overwrite its register files",
              file=sys.stderr)
        return EXIT_PROBLEMS
    result = generate_sample(args.pupils, args.schools, args.seed, out, academic_year=args.academic_year, format=args.format)
    print(f"wrote {result.marks:,} marks for {result.pupils:,} pupils in {_plural(result.schools, 'school')} to {out} "
          f"({', '.join(p.name for p in result.files.values())}) in {result.seconds:.1f} s")
    return EXIT_OK


# ---- the parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollbook",
        description="Rollbook: school attendance policies as code. Check policy files, evaluate them "
                    "against register data and emit actions with their evidence.",
        epilog="Run `rollbook COMMAND --help` for a command's options. Docs: README.md, docs/language.md.",
    )
    parser.add_argument("--version", action="version", version=f"rollbook {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="check policy files for errors",
                       description="Check policy files (and the policies they extend): YAML, the schema, every "
                                   "condition's syntax, names, types and units. Prints each problem with file:line:col "
                                   "and a caret. Exit 0 when there are no errors (warnings allowed), 1 otherwise.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders (searched for *.yaml, test files skipped)")
    p.add_argument("--format", choices=("human", "json"), default="human", help="output format (json for editors and CI)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("eval", help="evaluate a policy on a register and print the actions",
                       description="Evaluate a policy against a school's register for an as-of date and emit the "
                                   "actions it calls for, each with its evidence (metric values, thresholds, window "
                                   "bounds, the sessions that counted) and a sentence a parent could read. Nothing is "
                                   "emitted unless every register row is valid.",
                       epilog="Example: rollbook eval --policy policies/burton-hathow.yaml "
                              "--register examples/sample-register --as-of 2026-03-13 --format table")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (it may extend others)")
    p.add_argument("--register", required=True, metavar="PATH",
                   help="a register folder with marks, pupils and optionally calendar (.csv, .parquet or .jsonl); "
                        "see docs/register-format.md")
    p.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="the date to evaluate on (windows end on it, inclusive)")
    p.add_argument("--prior", metavar="FILE", help="prior actions (JSON Lines of action records, with an optional status) "
                                                   "that repetition, escalation and limits read")
    p.add_argument("--format", choices=("jsonl", "csv", "table"), default="jsonl",
                   help="jsonl: one action record per line (schemas/action.schema.json); csv; table: a summary for people")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--rules-engine", choices=("auto", "durable", "builtin"), default="auto",
                   help="durable: durable-rules (Python 3.11/3.12); builtin: the built-in evaluator (same answers); "
                        "auto (default): durable where it can be imported, else builtin")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("backtest", help="replay a policy over a past date range and report what it would have done",
                       description="Replay a policy over every school day from --from to --to (inclusive), as if "
                                   "`rollbook eval` had run each day with the actions of the earlier days as its prior "
                                   "actions: once-per and cooldown repetition, escalation (`after`) and limits see "
                                   "the simulated ledger, which --prior can seed. A school day is a date on which at "
                                   "least one school of the register is open. Reports the actions by day, the count "
                                   "per rule per school week, and the first date each pupil (class, school) met each "
                                   "rule's condition. The actions of the last day equal `rollbook eval` on that day "
                                   "with --prior set to the seed plus the backtest's earlier actions. See "
                                   "docs/backtest.md.",
                       epilog="Example: rollbook backtest --policy policies/burton-hathow.yaml "
                              "--register examples/sample-register --from 2025-09-01 --to 2025-12-19 --format text")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (it may extend others)")
    p.add_argument("--register", required=True, metavar="PATH",
                   help="a register folder with marks, pupils and optionally calendar; see docs/register-format.md")
    p.add_argument("--from", required=True, metavar="YYYY-MM-DD", help="the first date of the replay (inclusive)")
    p.add_argument("--to", required=True, metavar="YYYY-MM-DD", help="the last date of the replay (inclusive)")
    p.add_argument("--prior", metavar="FILE", help="actions taken before the replay (JSON Lines of action records, "
                                                   "as `rollbook eval` writes them), seeding the simulated ledger")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text",
                   help="text: a report for people (default); json: one document with the full action records; "
                        "csv: one long table whose `report` column is action, weekly or first_met")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--rules-engine", choices=("auto", "durable", "builtin"), default="builtin",
                   help="builtin (default): rule conditions over every day at once; durable: durable-rules decides "
                        "each day over that day's candidates (same answers, slower on a trust); auto: durable where it "
                        "can be imported")
    p.set_defaults(func=cmd_backtest)
    p = sub.add_parser("sample", help="write a realistic synthetic register",
                       description="Write a synthetic register (marks, pupils, calendar) for one English academic "
                                   "year: half terms, INSET days and bank holidays, skewed absence (about a fifth of "
                                   "pupils persistently absent), illness spells, term-time holidays, lateness with "
                                   "weekday habits, mid-year joiners and leavers, unresolved N marks, Y and # days. "
                                   "The same seed always gives the same register.")
    p.add_argument("--pupils", type=int, default=1000, help="number of pupils (default 1000)")
    p.add_argument("--schools", type=int, default=1, help="number of schools (default 1)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--academic-year", type=int, default=2025, metavar="YEAR",
                   help="the academic year starting in September of YEAR (default 2025, i.e. 2025/26)")
    p.add_argument("--format", choices=("csv", "parquet"), default="csv", help="file format (default csv)")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    p.add_argument("--force", action="store_true", help="overwrite register files in a non-empty folder")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("fmt", help="rewrite policy files in the canonical layout",
                       description="Rewrite policy files in one canonical layout: keys in the documented order, "
                                   "two-space indentation, comments kept. Conditions are left as written.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any file is not formatted")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("schema", help="print a JSON Schema",
                       description="Print one of Rollbook's JSON Schemas (public, versioned contracts).")
    p.add_argument("which", nargs="?", default="policy", choices=("policy", "action", "marks", "pupils", "calendar"),
                   help="which schema (default: policy)")
    p.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug: say so plainly, keep the traceback for whoever fixes it
        if os.environ.get("ROLLBOOK_DEBUG"):
            traceback.print_exc()
        print(f"rollbook: internal error: {type(exc).__name__}: {exc}\n"
              "This is a bug in Rollbook, not in your input. Please report it with the command you ran "
              "(set ROLLBOOK_DEBUG=1 to see the traceback).", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
