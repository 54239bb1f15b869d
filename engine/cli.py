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
            "pupils": "register/pupils.schema.json", "calendar": "register/calendar.schema.json",
            "test": "policy-test.schema.json"}[args.which]
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


# ---- rollbook test ---------------------------------------------------------------------------

def cmd_test(args) -> int:
    import time

    from .diagnostics import render as render_diagnostics
    from .policy_tests import failure_blocks, file_line, junit_xml, run_test_file, summary_line, test_files
    from .rules import durable_available

    if args.fail_under is not None and not 0 <= args.fail_under <= 100:
        print("error: --fail-under is a percentage from 0 to 100", file=sys.stderr)
        return EXIT_USAGE
    if args.out and args.format != "junit":
        print("error: --out writes JUnit XML: add --format junit", file=sys.stderr)
        return EXIT_USAGE
    if args.fail_under is not None:
        args.coverage = True
    engine = args.rules_engine
    if engine == "auto":
        engine = "durable" if durable_available()[0] else "builtin"
    elif engine == "durable" and not durable_available()[0]:
        print(f"error: {durable_available()[1]}; use --rules-engine builtin", file=sys.stderr)
        return EXIT_PROBLEMS
    files, missing = test_files(args.paths or ["."])
    for m in missing:
        print(f"error: no such file or folder: {m}", file=sys.stderr)
    if not files:
        if not missing:
            print("error: no test files (*.test.yaml) found", file=sys.stderr)
        return EXIT_PROBLEMS
    started = time.perf_counter()
    results = []
    for f in files:
        result = run_test_file(f, engine, coverage=args.coverage)
        results.append(result)
        if args.format == "human":
            print(file_line(result), flush=True)
    seconds = time.perf_counter() - started
    problems = [r for r in results if r.loaded.diagnostics]
    failed = any(c.status != "pass" for r in results for c in r.cases) or any(r.errored for r in results) or missing
    if args.format == "junit":
        text = junit_xml(results)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    out = sys.stdout if args.format == "human" else sys.stderr
    for r in problems:
        print(file=out)
        print(render_diagnostics(r.loaded.diagnostics, r.loaded.sources), file=out)
    blocks = failure_blocks(results)
    if blocks and args.format == "human":
        print(file=out)
        print("\n\n".join(blocks), file=out)
    below = False
    if args.coverage:
        from .coverage import policy_coverage, render_coverage

        by_policy: dict[str, list] = {}
        policies = {}
        for r in results:
            if r.loaded.test_file is None:
                continue
            policy = r.loaded.test_file.policy
            policies[policy.path] = policy
            by_policy.setdefault(policy.path, []).extend(c.observation for c in r.cases if c.observation is not None)
        for path, observations in by_policy.items():
            report = policy_coverage(policies[path], observations)
            print(file=out)
            print(render_coverage(report), file=out)
            if args.fail_under is not None and report.percent < args.fail_under:
                below = True
                print(f"rule coverage {report.percent:.1f}% of {report.policy_id} is below --fail-under {args.fail_under:g}%",
                      file=out)
    print(file=out)
    print(summary_line(results, seconds), file=out)
    if args.format == "junit" and args.out:
        print(f"wrote JUnit XML to {args.out}", file=sys.stderr)
    return EXIT_PROBLEMS if (failed or below) else EXIT_OK


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

    p = sub.add_parser("test", help="run policy tests (*.test.yaml)",
                       description="Run policy test files: each case is a small register written in the register "
                                   "notation (one line per school week), an as-of date and the actions expected to "
                                   "fire or not; the policy is evaluated as `rollbook eval` does and the actions "
                                   "compared. Prints a line of dots per file (. pass, F fail, E error), each failure "
                                   "as expected against actual with the evidence, and a summary. Exit 0 when every "
                                   "case passes, 1 otherwise. Format: docs/policy-tests.md.",
                       epilog="Example: rollbook test --coverage --fail-under 100 policies/national.test.yaml")
    p.add_argument("paths", nargs="*", metavar="PATH", help="test files or folders searched for *.test.yaml (default: .)")
    p.add_argument("--format", choices=("human", "junit"), default="human",
                   help="human (default), or junit: JUnit XML for CI (to --out or standard output; the human report "
                        "then goes to standard error)")
    p.add_argument("--out", metavar="FILE", help="write the JUnit XML to FILE")
    p.add_argument("--coverage", action="store_true",
                   help="report which rules acted in some case and which operands of each and/or were ever decisive")
    p.add_argument("--fail-under", type=float, metavar="PCT",
                   help="exit 1 when a policy's rule coverage is below PCT percent (implies --coverage)")
    p.add_argument("--rules-engine", choices=("auto", "durable", "builtin"), default="builtin",
                   help="builtin (default): the built-in evaluator; durable: durable-rules; auto: durable where it "
                        "can be imported")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("schema", help="print a JSON Schema",
                       description="Print one of Rollbook's JSON Schemas (public, versioned contracts).")
    p.add_argument("which", nargs="?", default="policy", choices=("policy", "action", "marks", "pupils", "calendar", "test"),
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
