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


def _rules_engine(choice: str) -> str:
    """`--rules-engine auto` means durable-rules where it can be imported, else the built-in one."""
    from .rules import durable_available

    if choice == "auto":
        return "durable" if durable_available()[0] else "builtin"
    return choice


def _print_error(exc: Exception) -> None:
    """An input error on stderr: its message, then each problem it carries (file:line:col)."""
    print(f"error: {exc}", file=sys.stderr)
    if getattr(exc, "problems", None):
        print(_render_problems(exc.problems), file=sys.stderr)


def _print_notes(calendar_note: str | None, warnings: list[str]) -> None:
    """What an evaluation noted, on stderr: the calendar note (when the output does not show it)
    and each warning."""
    if calendar_note:
        print(f"note: {calendar_note}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


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
    from .rules import RulesEngineUnavailable
    from .sinks import to_csv, to_jsonl, to_table

    engine = _rules_engine(args.rules_engine)
    progress = _Progress(sys.stderr.isatty())
    try:
        evaluation = run_evaluation(args.policy, args.register, args.as_of, args.prior, engine, progress=progress)
    except (RollbookError, RulesEngineUnavailable) as exc:
        progress.done()
        _print_error(exc)
        return EXIT_PROBLEMS
    progress.done()
    actions = evaluation.actions
    text = {"jsonl": to_jsonl, "csv": to_csv}.get(args.format, lambda a: to_table(a, evaluation))(actions)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(actions)} action{'s' if len(actions) != 1 else ''} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    # The table already shows the calendar note.
    _print_notes(evaluation.calendar_note if args.format != "table" else None, evaluation.warnings)
    return EXIT_OK


# ---- rollbook diff ---------------------------------------------------------------------------

def cmd_diff(args) -> int:
    from .api import RollbookError
    from .policy_diff import DEFAULT_LIST_LIMIT, diff_policy_files, render_text, to_json
    from .rules import RulesEngineUnavailable

    if (args.register is None) != (args.as_of is None):
        print("error: --register and --as-of go together: give both to compare actions, or neither for the "
              "structural diff only", file=sys.stderr)
        return EXIT_USAGE
    if args.prior and args.register is None:
        print("error: --prior needs --register and --as-of", file=sys.stderr)
        return EXIT_USAGE
    engine = _rules_engine(args.rules_engine)
    try:
        outcome = diff_policy_files(args.old, args.new, args.register, args.as_of, args.prior, engine)
    except (RollbookError, RulesEngineUnavailable) as exc:
        _print_error(exc)
        return EXIT_PROBLEMS
    if outcome.diff is None:
        shown = set()
        for check in (outcome.old_check, outcome.new_check):
            if not check.ok and check.path not in shown:
                shown.add(check.path)
                problems = [d for d in check.diagnostics if d.severity == ERROR] or check.diagnostics
                print(render(problems, check.sources), file=sys.stderr)
                print(f"error: {check.path} does not pass `rollbook check`; nothing was compared", file=sys.stderr)
        return EXIT_PROBLEMS
    diff = outcome.diff
    if args.format == "json":
        print(json.dumps(to_json(diff), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(diff, None if args.all else DEFAULT_LIST_LIMIT))
    return EXIT_PROBLEMS if (args.exit_code and diff.differences) else EXIT_OK


# ---- rollbook explain ------------------------------------------------------------------------

def cmd_explain(args) -> int:
    from .api import RollbookError
    from .explain import ExplainError, explain_pupil, render_text

    def show(explanation: dict) -> None:
        sys.stdout.write(json.dumps(explanation, indent=2, ensure_ascii=False) + "\n" if args.format == "json"
                         else render_text(explanation))

    try:
        explanation = explain_pupil(args.policy, args.register, args.as_of, args.pupil, args.school, args.prior,
                                    args.rule)
    except ExplainError as exc:
        if exc.partial is not None:
            show(exc.partial)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.usage else EXIT_PROBLEMS
    except RollbookError as exc:
        _print_error(exc)
        return EXIT_PROBLEMS
    show(explanation)
    for warning in explanation.get("warnings", []):
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


# ---- rollbook import -------------------------------------------------------------------------

def cmd_import(args) -> int:
    from .mis_import import (
        existing_outputs, import_export, parse_column_map, write_register, write_report,
    )
    from .text_encoding import known_encoding

    column_map, problems = parse_column_map(args.map or [])
    if args.encoding and not known_encoding(args.encoding):
        problems.append(f"--encoding {args.encoding!r} is not an encoding Python knows (e.g. utf-8, cp1252, latin-1)")
    if args.calendar and not Path(args.calendar).is_file():
        problems.append(f"--calendar {args.calendar}: no such file")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    out = Path(args.out)
    existing = existing_outputs(out)
    if existing and not args.force:
        print(f"error: {out} already holds {', '.join(p.name for p in existing)}; choose another folder or pass "
              f"--force to replace them", file=sys.stderr)
        return EXIT_PROBLEMS
    result = import_export(args.file, args.shape, pupils=args.pupils, column_map=column_map,
                           encoding=args.encoding, date_order=args.date_order)
    for note in result.notes:
        print(f"note: {note}")
    if result.errors:
        for e in result.errors:
            print(f"error: {e}", file=sys.stderr)
        print(f"error: nothing was imported from {args.file}", file=sys.stderr)
        return EXIT_PROBLEMS
    for u in result.unmapped:
        print(u)
    for p in existing:  # --force: no stale register may survive next to this import's report
        p.unlink()
    dropped = len(result.unmapped)
    summary = (f"read {result.rows_read} {'row' if result.shape == 'grid' else 'mark row'}"
               f"{'' if result.rows_read == 1 else 's'} ({result.shape} export, {result.encoding}): "
               f"{_plural(len(result.marks), 'mark')} for {_plural(len(result.pupils), 'pupil')}, "
               f"{dropped} row{'' if dropped == 1 else 's'} or cell{'' if dropped == 1 else 's'} not mapped")
    print(summary)
    if dropped and not args.allow_unmapped:
        write_report(result, out, written=False)
        print(f"error: {dropped} row(s) or cell(s) could not be mapped (listed above and in {out / 'import-report.csv'}); "
              f"no register was written (hint: correct the export and import it again, or pass --allow-unmapped to "
              f"write the {_plural(len(result.marks), 'mark')} that could be read)", file=sys.stderr)
        return EXIT_PROBLEMS
    register_problems = write_register(result, out, Path(args.calendar) if args.calendar else None)
    write_report(result, out, written=not register_problems, register_problems=register_problems)
    if register_problems:
        for p in register_problems:
            print(f"error: {p}", file=sys.stderr)
        print(f"error: the imported register does not load, so none was written to {out}", file=sys.stderr)
        return EXIT_PROBLEMS
    files = "marks.csv, pupils.csv" + (", calendar" + Path(args.calendar).suffix.lower() if args.calendar else "")
    print(f"wrote {files} and import-report.csv/.json to {out}")
    if dropped:
        print(f"warning: the register in {out} is incomplete: {dropped} row(s) or cell(s) of the export were left "
              f"out (--allow-unmapped); import-report.csv lists them", file=sys.stderr)
    return EXIT_OK


# ---- rollbook render -------------------------------------------------------------------------

def cmd_render(args) -> int:
    from .api import check_policy_file
    from .render import render_policy

    if not Path(args.policy).is_file():
        print(f"error: no such policy file: {args.policy}", file=sys.stderr)
        return EXIT_PROBLEMS
    result = check_policy_file(args.policy)
    if not result.ok:
        print(render(result.diagnostics, result.sources), file=sys.stderr)
        print(f"error: {args.policy} does not pass `rollbook check`; nothing was rendered", file=sys.stderr)
        return EXIT_PROBLEMS
    text = render_policy(result.policy, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(result.policy.rules)} rules)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


# ---- rollbook backtest -----------------------------------------------------------------------

def cmd_backtest(args) -> int:
    from .api import RollbookError
    from .backtest import ReportWriter, run_backtest
    from .rules import RulesEngineUnavailable

    engine = _rules_engine(args.rules_engine)
    progress = _Progress(sys.stderr.isatty())
    # The action records stream into the writer a chunk of days at a time (memory bounded by the
    # register, not the actions); the report is written once the replay has finished.
    writer = ReportWriter(args.format, args.register)
    try:
        result = run_backtest(args.policy, args.register, getattr(args, "from"), args.to, args.prior, engine,
                              progress=progress, keep_actions=False, on_actions=writer.add)
    except (RollbookError, RulesEngineUnavailable) as exc:
        writer.close()
        progress.done()
        _print_error(exc)
        return EXIT_PROBLEMS
    except BaseException:
        writer.close()
        raise
    progress.done()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            writer.finish(result, out)
        print(f"wrote the backtest ({len(result.days)} school days, {_plural(result.action_count, 'action')}) "
              f"to {args.out}", file=sys.stderr)
    else:
        writer.finish(result, sys.stdout)
    # The text report already shows the calendar note.
    _print_notes(result.calendar_note if args.format != "text" else None, result.warnings)
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
    engine = _rules_engine(args.rules_engine)
    if engine == "durable" and not durable_available()[0]:
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


# ---- rollbook run and rollbook ledger ---------------------------------------------------------

def _ledger_url(args) -> str | None:
    url = args.ledger or os.environ.get("ROLLBOOK_LEDGER")
    if not url:
        print("error: say which ledger: --ledger sqlite:///path/to/ledger.db (or postgresql://...), "
              "or set ROLLBOOK_LEDGER", file=sys.stderr)
    return url


def cmd_run(args) -> int:
    from .api import RollbookError
    from .ledger import LedgerError, open_ledger, redact
    from .rules import RulesEngineUnavailable
    from .run import run_policies
    from .sinks import to_csv, to_jsonl, to_table

    url = _ledger_url(args)
    if not url:
        return EXIT_USAGE
    if args.webhook and not args.webhook.startswith(("http://", "https://")):
        print(f"error: --webhook must be an http:// or https:// URL, not {args.webhook!r}", file=sys.stderr)
        return EXIT_USAGE
    engine = _rules_engine(args.rules_engine)
    progress = _Progress(sys.stderr.isatty())
    try:
        ledger = open_ledger(url)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        try:
            result = run_policies(args.policies, args.register, args.as_of, ledger, engine, webhook=args.webhook,
                                  progress=progress)
        except (RollbookError, RulesEngineUnavailable, LedgerError) as exc:
            progress.done()
            _print_error(exc)
            return EXIT_PROBLEMS
        progress.done()
        new = result.new_actions
        text = {"jsonl": to_jsonl, "csv": to_csv}.get(args.format, lambda a: to_table(a))(new)
        summary = (f"run {result.run_id} on {result.run['as_of']}: {_plural(len(result.run['policies']), 'policy')}, "
                   f"{result.evaluated} action{'s' if result.evaluated != 1 else ''} evaluated, {len(new)} new "
                   f"(recorded in {redact(url)})").replace("policys", "policies")
        if args.out:
            # Written whole, then renamed: a reader never sees half a file.
            tmp = Path(args.out).with_name(Path(args.out).name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, args.out)
            print(f"{summary}; wrote {_plural(len(new), 'new action')} to {args.out}", file=sys.stderr)
        else:
            if args.format == "table":
                sys.stdout.write(summary + "\n\n")
            sys.stdout.write(text)
            sys.stdout.flush()
            if args.format != "table":
                print(summary, file=sys.stderr)
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if args.webhook:
            from .webhook import deliver

            report = deliver(ledger, args.webhook, attempts=args.webhook_attempts, backoff=args.webhook_backoff)
            print(f"webhook {redact(args.webhook)}: {report.delivered} delivered, {report.pending} still queued",
                  file=sys.stderr)
            for e in report.errors:
                print(f"error: webhook: {e}", file=sys.stderr)
            if report.pending:
                return EXIT_PROBLEMS
        return EXIT_OK
    finally:
        ledger.close()


def _ledger_table(actions: list[dict]) -> str:
    from .sinks import fit_column

    if not actions:
        return "No actions.\n"
    lines = [f"{'seq':>6}  {'id':<36}  {'status':<9}  {'as_of':<10}  {'school':<8}  {'subject':<12}  {'rule':<28}  verb"]
    for a in actions:
        s = a["subject"]
        lines.append(f"{a['ledger']['seq']:>6}  {a['id']:<36}  {a['status']:<9}  {a['as_of']:<10}  "
                     f"{fit_column(s.get('school_id') or '-', 8)}  {fit_column(s['id'] or '-', 12)}  {fit_column(a['rule'], 28)}  {a['verb']}")
    return "\n".join(lines) + "\n"


def cmd_ledger(args) -> int:
    from .ledger import LedgerError, open_ledger
    from .sinks import to_csv

    url = _ledger_url(args)
    if not url:
        return EXIT_USAGE
    try:
        ledger = open_ledger(url)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        if args.ledger_command == "actions":
            schools = set(args.school) if args.school else None
            if args.since is not None:
                actions, cursor = ledger.actions_since(args.since, schools, args.limit or 1000)
                actions = [a for a in actions if (not args.status or a["status"] == args.status)
                           and (not args.rule or a["rule"] == args.rule)]
                print(f"next cursor: {cursor}", file=sys.stderr)
            else:
                actions = ledger.list_actions(args.status, schools, args.rule, args.policy, args.limit)
            if args.format == "jsonl":
                sys.stdout.write("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in actions))
            elif args.format == "csv":
                sys.stdout.write(to_csv(actions))
            else:
                sys.stdout.write(_ledger_table(actions))
        elif args.ledger_command == "set-status":
            action = ledger.set_status(args.action_id, args.status, args.by, args.note)
            print(f"{action['id']}: {action['status']} (by {action['ledger']['status_changed_by']} at "
                  f"{action['ledger']['status_changed_at']})")
        elif args.ledger_command == "history":
            action = ledger.get_action(args.action_id)
            if action is None:
                raise LedgerError(f"no action {args.action_id!r} in the ledger")
            if args.format == "json":
                print(json.dumps(action, indent=2, ensure_ascii=False))
            else:
                s = action["subject"]
                print(f"{action['id']}  {action['policy']}/{action['rule']} → {action['verb']}  "
                      f"{s['kind']} {s['id'] or s.get('school_id', '')} on {action['as_of']}")
                print(f"  {action['reason']}")
                for h in action["history"]:
                    print(f"  {h['changed_at']}  {h['status']:<9}  by {h['changed_by']}" + (f": {h['note']}" if h["note"] else ""))
        elif args.ledger_command == "runs":
            runs = ledger.runs(args.limit or 20)
            if args.format == "json":
                sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in runs))
            else:
                if not runs:
                    print("No runs.")
                for r in runs:
                    policies = ", ".join(f"{p['id']}" + (f"@{p['school_id']}" if p.get("school_id") else "")
                                         for p in r.get("policies", []))
                    print(f"run {r['id']}  {r['recorded_at']}  as of {r.get('as_of')}  {r['new_actions']} new of "
                          f"{r['evaluated_actions']}  rollbook {r.get('rollbook_version')}  register "
                          f"{r.get('register', {}).get('sha256', '')[:12]}  policies: {policies}")
        else:  # outbox
            counts = ledger.delivery_counts()
            if not counts:
                print("The outbox is empty (no run used --webhook).")
            from .ledger import redact
            for sink, states in sorted(counts.items()):
                print(f"{redact(sink)}: {states.get('pending', 0)} pending, {states.get('delivered', 0)} delivered")
        return EXIT_OK
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        ledger.close()


# ---- rollbook serve --------------------------------------------------------------------------

def cmd_serve(args) -> int:
    from .service_auth import KeysFileError, hash_key, key_entry, load_keys, new_key

    if args.print_openapi:
        from .service import openapi_document

        print(json.dumps(openapi_document(), indent=2))
        return EXIT_OK
    if args.new_key:
        if (args.school is None) == (args.trust is None):
            print("error: --new-key needs exactly one of --school ID or --trust NAME", file=sys.stderr)
            return EXIT_USAGE
        if args.key_from_stdin:
            key = sys.stdin.readline().strip()
            if not key:
                print("error: --key-from-stdin: no key on standard input", file=sys.stderr)
                return EXIT_USAGE
        else:
            key = new_key()
            print(f"# the key for {args.new_key} (shown once: give it to the integrator, keep only the hash)", file=sys.stderr)
            print(key, file=sys.stderr)
        print(key_entry(args.new_key, hash_key(key), args.school, args.trust), end="")
        return EXIT_OK
    missing = [flag for flag, value in (("--policies", args.policies), ("--ledger", args.ledger), ("--keys", args.keys))
               if not value]
    if missing:
        print(f"error: rollbook serve needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    if args.max_body_mb <= 0 or args.workers < 1 or args.reload_interval < 0:
        print("error: --max-body-mb and --workers must be positive and --reload-interval not negative", file=sys.stderr)
        return EXIT_USAGE
    import logging

    import uvicorn

    from .ledger import LedgerError, open_ledger
    from .service import Service, ServiceConfig, asgi_app

    policies = Path(args.policies)
    if not policies.is_dir():
        print(f"error: --policies {policies} is not a folder", file=sys.stderr)
        return EXIT_PROBLEMS
    try:
        keys = load_keys(args.keys)
    except KeysFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        ledger = open_ledger(args.ledger)
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    config = ServiceConfig(policies, args.ledger, int(args.max_body_mb * 1024 * 1024), args.reload_interval,
                           args.workers, args.rules_engine)
    service = Service(config, keys, ledger)
    snapshot = service.store.current
    print(f"rollbook serve: {snapshot.serving} policies serving ({', '.join(sorted(snapshot.by_school)) or 'no school'}), "
          f"{len(keys)} keys, on http://{args.host}:{args.port}", file=sys.stderr)
    try:
        uvicorn.run(asgi_app(service), host=args.host, port=args.port, access_log=False, log_level="info",
                    timeout_graceful_shutdown=30)
    finally:
        service.close()
        ledger.close()
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
    p.add_argument("--policy", required=True, metavar="FILE",
                   help="the policy file (it may extend others); once checked, it is kept in ~/.cache/rollbook and "
                        "reused while it and its bases are unchanged (ROLLBOOK_NO_CACHE=1 turns that off)")
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

    p = sub.add_parser("diff", help="compare two versions of a policy: rule changes and their impact on actions",
                       description="Compare two versions of a policy after `extends` is applied: header fields, "
                                   "attributes, parameters and rules (matched by id) added, removed or changed, each "
                                   "with file:line of both sides. With --register and --as-of, evaluate both versions "
                                   "on the same register (and --prior actions) and report, per rule, the actions "
                                   "gained and lost with the subjects, and the actions whose params or evidence "
                                   "changed. Both files must pass `rollbook check`. Exit 0 (also when there are "
                                   "differences, unless --exit-code), 1 for a policy or register problem, 2 for a "
                                   "bad command line. See docs/diff.md.",
                       epilog="Example: rollbook diff policies/burton-hathow.yaml policies/burton-hathow-90.yaml "
                              "--register examples/sample-register --as-of 2026-03-13")
    p.add_argument("old", metavar="OLD", help="the old version of the policy file")
    p.add_argument("new", metavar="NEW", help="the new version of the policy file")
    p.add_argument("--register", metavar="PATH", help="a register folder to evaluate both versions on (needs --as-of)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="the date to evaluate both versions on")
    p.add_argument("--prior", metavar="FILE", help="prior actions (JSON Lines) both versions read")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people; json: complete, stable (format 1, docs/diff.md)")
    p.add_argument("--all", action="store_true",
                   help="list every subject (text lists 10 per line, then \"and N more\")")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when the versions differ (structurally or in actions), like `git diff --exit-code`")
    p.add_argument("--rules-engine", choices=("auto", "durable", "builtin"), default="auto",
                   help="as for `rollbook eval` (both versions use the same engine)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("explain", help="explain why each rule did or did not act for one pupil",
                       description="Explain, for one pupil on an as-of date, every rule of a policy (inherited ones "
                                   "included): whether its condition held and the rule acted (as `rollbook eval` "
                                   "decides it), each measure's value, the thresholds, the window bounds and the "
                                   "sessions that counted; for a rule that did not act, the nearest miss (how many "
                                   "more sessions, or how many points, would meet each failing part), and when a "
                                   "condition held but repetition, escalation or a limit stopped the rule, which "
                                   "one and why. The whole register is evaluated (ranks compare the whole cohort), "
                                   "then the pupil is read. See docs/explain.md.",
                       epilog="Example: rollbook explain --policy policies/burton-hathow.yaml "
                              "--register examples/sample-register --as-of 2026-03-13 --pupil P000003")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (it may extend others)")
    p.add_argument("--register", required=True, metavar="PATH", help="a register folder (see docs/register-format.md)")
    p.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="the date to explain (windows end on it, inclusive)")
    p.add_argument("--pupil", required=True, metavar="ID", help="the pupil's id (pupil_id in the pupils table)")
    p.add_argument("--school", metavar="ID", help="the pupil's school, when the register holds several schools "
                                                  "(pupil ids are unique per school)")
    p.add_argument("--prior", metavar="FILE", help="prior actions (JSON Lines), as for `rollbook eval`")
    p.add_argument("--rule", metavar="ID", help="explain only this rule")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default): for people; json: the structure documented in docs/explain.md")
    p.set_defaults(func=cmd_explain)

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

    ledger_help = ("the ledger's URL: sqlite:///path/to/ledger.db (four slashes for an absolute path) or "
                   "postgresql://user@host:port/database; default: $ROLLBOOK_LEDGER")
    p = sub.add_parser("run", help="evaluate every school's policy for a day and record the new actions in the ledger",
                       description="An incremental daily run: evaluate each school's policy (the policies in DIR with "
                                   "a `school:` block, matched to the register's school_id by `school.id`) for the "
                                   "as-of date, reading the ledger's prior actions for escalations and limits; record "
                                   "the actions the ledger has not seen, with a decision-log entry, in one "
                                   "transaction; print only those new actions. Re-running a day prints nothing. "
                                   "See docs/ledger.md.",
                       epilog="Example: rollbook run --policies examples/integration/policies --register "
                              "examples/sample-register --as-of 2025-11-03 --ledger sqlite:///rollbook-ledger.db "
                              "--format table")
    p.add_argument("--policies", required=True, metavar="DIR", help="the folder of policy files (bases included)")
    p.add_argument("--register", required=True, metavar="PATH", help="the register folder (docs/register-format.md)")
    p.add_argument("--as-of", required=True, metavar="YYYY-MM-DD", help="the day to evaluate")
    p.add_argument("--ledger", metavar="URL", help=ledger_help)
    p.add_argument("--format", choices=("jsonl", "csv", "table"), default="jsonl", help="how to print the new actions")
    p.add_argument("--out", metavar="FILE", help="write the new actions to FILE instead of standard output")
    p.add_argument("--webhook", metavar="URL", help="also POST each new action to URL (JSON, Idempotency-Key header "
                                                    "= the action id), through the ledger's outbox: undelivered "
                                                    "actions are retried by the next run")
    p.add_argument("--webhook-attempts", type=int, default=5, metavar="N", help="tries per action in this run (default 5)")
    p.add_argument("--webhook-backoff", type=float, default=0.5, metavar="SECONDS",
                   help="first wait between tries, doubled each time up to 8 s (default 0.5)")
    p.add_argument("--rules-engine", choices=("auto", "durable", "builtin"), default="auto",
                   help="as for `rollbook eval` (same answers)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ledger", help="list, follow up and audit the actions in the ledger",
                       description="Read and update the action ledger that `rollbook run` records in: list actions "
                                   "(by status, school, rule; or page by sequence number with --since), set an "
                                   "action's status (open, done, dismissed) with who and why, show an action's "
                                   "history, list the decision log of runs, show the webhook outbox.",
                       epilog="Example: rollbook ledger set-status act_0123... done --by j.smith --note "
                              "'letter posted' --ledger sqlite:///rollbook-ledger.db")
    ledger_sub = p.add_subparsers(dest="ledger_command", metavar="SUBCOMMAND", required=True)
    q = ledger_sub.add_parser("actions", help="list actions", description="List the ledger's actions, oldest first.")
    q.add_argument("--status", choices=("open", "done", "dismissed"), help="only actions with this status")
    q.add_argument("--school", action="append", metavar="ID", help="only this school's actions (repeatable)")
    q.add_argument("--rule", metavar="RULE", help="only this rule's actions")
    q.add_argument("--policy", metavar="ID", help="only this policy's actions")
    q.add_argument("--since", type=int, metavar="SEQ", help="only actions after this sequence number (a cursor; the "
                                                            "next cursor is printed on stderr)")
    q.add_argument("--limit", type=int, metavar="N", help="at most N actions")
    q.add_argument("--format", choices=("table", "jsonl", "csv"), default="table", help="output format")
    q.add_argument("--ledger", metavar="URL", help=ledger_help)
    q = ledger_sub.add_parser("set-status", help="change an action's status",
                              description="Set an action's status; the change (who, when, note) is kept in its history.")
    q.add_argument("action_id", metavar="ACTION_ID")
    q.add_argument("status", choices=("open", "done", "dismissed"))
    q.add_argument("--by", required=True, metavar="WHO", help="who made the change")
    q.add_argument("--note", metavar="TEXT", help="why")
    q.add_argument("--ledger", metavar="URL", help=ledger_help)
    q = ledger_sub.add_parser("history", help="show an action and every status it has had",
                              description="Show an action, its reason and its status history, oldest first.")
    q.add_argument("action_id", metavar="ACTION_ID")
    q.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    q.add_argument("--ledger", metavar="URL", help=ledger_help)
    q = ledger_sub.add_parser("runs", help="list the decision log", description="The decision log, newest run first: "
                              "as-of date, policies and their hashes, the register digest, counts, Rollbook version.")
    q.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default 20)")
    q.add_argument("--format", choices=("table", "json"), default="table", help="table, or json (one run per line)")
    q.add_argument("--ledger", metavar="URL", help=ledger_help)
    q = ledger_sub.add_parser("outbox", help="show the webhook outbox", description="Pending and delivered counts per webhook.")
    q.add_argument("--ledger", metavar="URL", help=ledger_help)
    p.set_defaults(func=cmd_ledger)


    p = sub.add_parser("serve", help="run the HTTP service (register batches in, actions out)",
                       description="Serve the policies of a folder over HTTP: integrators submit a school's register "
                                   "batch and get its new actions, recorded once in the ledger; list actions since a "
                                   "cursor, update their status, list and check policies. Every request needs an API "
                                   "key from the keys file, scoped to a school or a trust. Policy files are reloaded "
                                   "when they change; a file that fails `check` is refused and the version before it "
                                   "keeps serving. The OpenAPI description is at /openapi.json. See docs/service.md.",
                       epilog="Example: rollbook serve --policies policies --ledger sqlite:///ledger.db --keys keys.yaml"
                              "  |  rollbook serve --new-key mason-moor-mis --school mason-moor >> keys.yaml")
    p.add_argument("--policies", metavar="DIR", help="the policy folder (school policies and the bases they extend)")
    p.add_argument("--ledger", metavar="URL", help="the action ledger: sqlite:///path/to/ledger.db or postgresql://...")
    p.add_argument("--keys", metavar="FILE", help="the API keys file (YAML: name, sha256, school or trust per key)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument("--max-body-mb", type=float, default=64, metavar="MB",
                   help="largest request body accepted, in MiB (default 64; larger gets 413)")
    p.add_argument("--reload-interval", type=float, default=2.0, metavar="SECONDS",
                   help="how often the policy folder is checked for changes (default 2; 0: never reload)")
    p.add_argument("--workers", type=int, default=2, help="evaluation threads (default 2)")
    p.add_argument("--rules-engine", choices=("builtin", "durable"), default="builtin",
                   help="builtin (default: runs concurrently) or durable (durable-rules; runs one at a time)")
    p.add_argument("--print-openapi", action="store_true", help="print the OpenAPI description (JSON) and exit")
    p.add_argument("--new-key", metavar="NAME",
                   help="make a random API key (printed on stderr) and print its keys-file entry; with --school or --trust")
    p.add_argument("--school", metavar="ID", help="with --new-key: the school the key reaches (a school policy's id)")
    p.add_argument("--trust", metavar="NAME", help="with --new-key: the trust the key reaches (its policies' school.trust)")
    p.add_argument("--key-from-stdin", action="store_true", help="with --new-key: hash the key read from stdin instead")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("import", help="turn an MIS attendance export into a register",
                       description="Read a school MIS attendance export (SIMS, Arbor, Bromcom...) and write a register "
                                   "(marks.csv, pupils.csv) that `rollbook eval` reads. Two shapes: `long`, a row per "
                                   "pupil per session (or per day with AM and PM mark columns), and `grid`, a row per "
                                   "pupil and a column per session. Headers are matched through a table of MIS "
                                   "spellings (UPN, Adno, Reg Group, Mark...); dates are read day first (dd/mm/yyyy), "
                                   "never guessed; marks must be national codes. Every row or cell that cannot be "
                                   "mapped is listed with file, line, column and reason, on stdout and in "
                                   "DIR/import-report.csv and .json; then nothing is written (exit 1) unless "
                                   "--allow-unmapped. See docs/mis-import.md.",
                       epilog="Example: rollbook import --from long examples/mis/attendance-long.csv --out /tmp/reg && "
                              "rollbook eval --policy policies/national.yaml --register /tmp/reg --as-of 2025-09-26")
    p.add_argument("--from", dest="shape", required=True, choices=("long", "grid"), help="the shape of the export")
    p.add_argument("file", metavar="FILE", help="the export (CSV, comma- or tab-separated)")
    p.add_argument("--out", required=True, metavar="DIR", help="the register folder to write")
    p.add_argument("--pupils", metavar="FILE", help="a separate pupil list export (same header aliases) to take the "
                                                     "pupils from, instead of the export's pupil columns")
    p.add_argument("--calendar", metavar="FILE", help="a calendar file in the register format (docs/register-format.md), "
                                                      "copied in; without it the engine infers the calendar from the marks")
    p.add_argument("--map", action="append", metavar="COLUMN=FIELD",
                   help="read COLUMN as FIELD (pupil_id, date, session, code, am_code, pm_code, year_group, reg_group, "
                        "..., ignore, or pupil.NAME for another pupil attribute); repeatable")
    p.add_argument("--encoding", metavar="NAME", help="read the files in this encoding (default: UTF-8, with or "
                                                      "without BOM, else Windows-1252, as the report says)")
    p.add_argument("--date-order", choices=("dmy", "mdy"), default="dmy",
                   help="dmy (default): 03/09/2025 is 3 September; mdy only for an export known to be month first")
    p.add_argument("--allow-unmapped", action="store_true",
                   help="write the rows that could be read even when others could not (the report lists what was left out)")
    p.add_argument("--force", action="store_true", help="replace register and report files already in DIR")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("fmt", help="rewrite policy files in the canonical layout",
                       description="Rewrite policy files in one canonical layout: keys in the documented order, "
                                   "two-space indentation, comments kept. Conditions are left as written.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if any file is not formatted")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("render", help="write a policy as plain English a school can publish",
                       description="Write a policy as plain English for parents and staff: every rule (inherited "
                                   "ones included), grouped by the step it leads to, with what triggers it, what "
                                   "happens, how often, escalations, limits and its source quote; then how the "
                                   "policy counts (codes, rates, periods) and the policy's version and SHA-256. "
                                   "Generated from the checked policy, so the words match the rules that run. A "
                                   "policy with errors is not rendered: the errors are printed and the exit code is 1.",
                       epilog="Example: rollbook render --policy policies/burton-hathow.yaml --format html "
                              "--out burton-hathow.html")
    p.add_argument("--policy", required=True, metavar="FILE", help="the policy file (it may extend others)")
    p.add_argument("--format", choices=("md", "html"), default="md",
                   help="md: Markdown (default); html: one self-contained page (inline CSS, no scripts)")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_render)

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
