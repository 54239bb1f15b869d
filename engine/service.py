"""`rollbook serve`: the HTTP service integrators call (an ASGI app, FastAPI, with OpenAPI).

    POST /v1/schools/{school_id}/batches   a register batch + as-of date -> the new actions
    GET  /v1/actions?cursor=N              actions recorded after a cursor, paged
    GET  /v1/actions/{id}                  one action with its status history
    POST /v1/actions/{id}/status           open / done / dismissed, with who and a note
    GET  /v1/policies                      the policies served (and any refused version)
    POST /v1/policies/check                `rollbook check` on a posted policy text
    GET  /healthz, /readyz                 process up; policies loaded and ledger reachable

A batch goes through the same stages as `rollbook eval` (engine.register.load_register, then
engine.api.run_evaluation with the ledger's prior actions) and is recorded in the ledger
(engine.ledger.Ledger.record_run), which inserts only actions whose deterministic id is new: the
same batch submitted twice records its actions once, and the second response lists none as new.

Every error is JSON: {"error": {"code": "...", "message": "...", "details": [...]}}. The log has one
line per request (method, path, status, duration, key name) and never a register value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal, Union

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .service_auth import ApiKey, authenticate
from .service_policies import PolicySnapshot, PolicyStore, relative_diagnostics

log = logging.getLogger("rollbook.service")

DEFAULT_MAX_BODY = 64 * 1024 * 1024  # a 1,000-pupil year of marks is about 9 MB of CSV
PAGE_LIMIT_MAX = 1000


# ---- configuration and state -------------------------------------------------------------------

@dataclass
class ServiceConfig:
    policies: Path
    ledger_url: str
    max_body_bytes: int = DEFAULT_MAX_BODY
    reload_interval: float = 2.0  # seconds between polls of the policies folder; 0: never reload
    workers: int = 2  # evaluation threads
    rules_engine: str = "builtin"


class Service:
    """What the app serves from: the policy store, the keys, the ledger and the worker threads."""

    def __init__(self, config: ServiceConfig, keys: dict[str, ApiKey], ledger, store: PolicyStore | None = None):
        self.config = config
        self.keys = keys
        self.ledger = ledger
        self.store = store or PolicyStore(config.policies)
        self.evaluators = ThreadPoolExecutor(max_workers=max(1, config.workers), thread_name_prefix="rollbook-eval")
        # Ledger calls are short; their own pool keeps them from queueing behind evaluations.
        self.ledger_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rollbook-ledger")
        self._school_locks: dict[str, asyncio.Lock] = {}
        # durable-rules keeps process-wide state: its runs are serialised.
        self._durable_lock = threading.Lock()

    def school_lock(self, school_id: str) -> asyncio.Lock:
        """Batches of one school run one at a time, so each reads the prior actions the one before
        it recorded (escalation and limits), whatever order they arrive in."""
        return self._school_locks.setdefault(school_id, asyncio.Lock())

    async def in_ledger(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.ledger_threads, fn, *args)

    async def in_evaluator(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.evaluators, fn, *args)

    def schools_in_scope(self, key: ApiKey, snapshot: PolicySnapshot) -> set[str]:
        if key.school is not None:
            return {key.school}
        return {school for school, entry in snapshot.by_school.items() if entry.trust == key.trust}

    async def poll_policies(self) -> None:
        """Reload the policies whenever a file changes; runs until cancelled."""
        interval = self.config.reload_interval
        while True:
            await asyncio.sleep(interval)
            try:
                changed = await asyncio.get_running_loop().run_in_executor(None, self.store.changed)
                if changed:
                    snapshot = await asyncio.get_running_loop().run_in_executor(None, self.store.reload)
                    log.info("policies: generation %d, %d serving, %d refused", snapshot.generation, snapshot.serving,
                             sum(1 for e in snapshot.entries if e.refused is not None))
            except Exception as exc:  # keep polling: the old snapshot keeps serving
                log.error("policies: reload failed (%s); the previous policies keep serving", type(exc).__name__)

    def close(self) -> None:
        self.evaluators.shutdown(wait=True)
        self.ledger_threads.shutdown(wait=True)


# ---- errors -------------------------------------------------------------------------------------

class ApiError(Exception):
    """An error response: HTTP status, a stable code, a message and optional details."""

    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


class BodyTooLarge(StarletteHTTPException):
    """Raised while the body streams in, once it passes the limit (FastAPI re-raises HTTPExceptions
    from body parsing as they are)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


def error_body(code: str, message: str, details: list | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _error_response(status: int, code: str, message: str, details: list | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "body_too_large", 415: "unsupported_media_type"}


class ErrorShape(BaseModel):
    code: str = Field(description="stable, machine-readable: not_found, unauthorized, invalid_request, "
                                  "register_invalid, body_too_large, internal, ...")
    message: str
    details: list[Any] = Field(default_factory=list, description="row-level problems, diagnostics or field errors")


class ErrorEnvelope(BaseModel):
    error: ErrorShape


ERRORS = {status: {"model": ErrorEnvelope} for status in (401, 404, 413, 422, 500)}


# ---- request and response bodies -----------------------------------------------------------------

Part = Union[list[dict[str, Any]], str]


class Batch(BaseModel):
    """One school's register and the day to evaluate on. Each part is either a JSON array of row
    objects (read as JSON Lines: row N is line N) or a string of CSV text with a header line
    (read as a CSV file: the header is line 1). docs/register-format.md is the contract."""

    model_config = ConfigDict(extra="forbid")
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD; windows end on it, inclusive",
                       examples=["2026-03-13"])
    marks: Part
    pupils: Part
    calendar: Part | None = None


class BatchResult(BaseModel):
    school_id: str
    as_of: str
    policy: dict
    run: int | None = Field(description="the decision-log entry (ledger run id) recording this batch")
    evaluated_actions: int = Field(description="actions the evaluation produced, new or already recorded")
    new_actions: list[dict] = Field(description="actions recorded by this batch (schemas/action.schema.json); "
                                                "actions recorded by an earlier batch are not repeated")
    already_recorded: int
    warnings: list[str]
    calendar_note: str | None


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "done", "dismissed"]
    changed_by: str = Field(min_length=1, max_length=200, description="who made the change (a person or system)")
    note: str | None = Field(default=None, max_length=2000)


class ActionPage(BaseModel):
    actions: list[dict]
    next_cursor: int = Field(description="pass back as `cursor` for the next page; unchanged when nothing is new")


class CheckResult(BaseModel):
    path: str
    ok: bool
    policy: str | None
    rules: int | None
    diagnostics: list[dict]


# ---- the body limit, the access log and the last-resort error handler ---------------------------

class Envelope:
    """The outermost ASGI layer: refuses oversized bodies, logs one line per request and turns
    any exception that escapes the app into a JSON 500 (the log gets its type and frames only:
    an exception's message may quote register values)."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        holder = {"key": None}
        scope["rollbook"] = holder
        status = {"code": 500, "sent": False}

        async def send_wrapped(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
            await send(message)

        async def reply(code: int, body: dict):
            data = json.dumps(body).encode()
            await send_wrapped({"type": "http.response.start", "status": code,
                                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
            await send_wrapped({"type": "http.response.body", "body": data})

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await reply(413, error_body("body_too_large", f"the request body is larger than the limit of "
                                                              f"{self.max_body} bytes"))
                return
            received = 0

            async def receive_limited():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_body:
                        raise BodyTooLarge(self.max_body)
                return message

            await self.app(scope, receive_limited, send_wrapped)
        except Exception as exc:
            frames = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}"
                               for f in traceback.extract_tb(exc.__traceback__)[-6:])
            log.error("internal error %s at %s", type(exc).__name__, frames)
            if not status["sent"]:
                await reply(500, error_body("internal", "an internal error occurred; it has been logged"))
        finally:
            duration = (time.perf_counter() - started) * 1000
            query = scope.get("query_string", b"").decode("latin-1")
            names = "&".join(sorted({p.split("=", 1)[0] for p in query.split("&") if p}))
            log.info("request method=%s path=%s%s status=%d duration_ms=%.1f key=%s", scope.get("method"),
                     scope.get("path"), f"?{names}" if names else "", status["code"], duration, holder["key"] or "-")


# ---- the app --------------------------------------------------------------------------------------

bearer = HTTPBearer(auto_error=False, description="an API key from the keys file: `Authorization: Bearer <key>`")


def create_app(service: "Service | None") -> FastAPI:
    """The FastAPI app over `service` (wrap it in Envelope to serve: see `asgi_app`)."""

    async def lifespan(app):
        poller = None
        if service.config.reload_interval > 0:
            poller = asyncio.create_task(service.poll_policies())
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()

    app = FastAPI(title="Rollbook", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Evaluate school attendance policies on register batches and follow up the actions "
                              "they call for. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`. "
                              "See docs/service.md.")

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return _error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        if exc.status_code == 404 and exc.detail == "Not Found":
            return _error_response(404, "not_found", f"no such endpoint: {request.method} {request.url.path}")
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return _error_response(exc.status_code, code, str(exc.detail), [])

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        # Field errors without the offending input: the caller has it, and it may be a pupil's row.
        details = [{"location": [str(p) for p in e.get("loc", ())], "message": e.get("msg"), "type": e.get("type")}
                   for e in exc.errors()[:100]]
        return _error_response(422, "invalid_request", "the request does not match the API's schema", details)

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):
        return _error_response(500, "internal", "an internal error occurred; it has been logged")

    def current_key(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiKey:
        header = f"Bearer {credentials.credentials}" if credentials else request.headers.get("authorization")
        key = authenticate(header, service.keys)
        if key is None:
            raise ApiError(401, "unauthorized", "a valid API key is required: send `Authorization: Bearer <key>`")
        request.scope.get("rollbook", {})["key"] = key.name
        return key

    # -- health ---------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"], summary="the process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="policies loaded and the ledger reachable",
             responses={503: {"model": ErrorEnvelope}})
    async def readyz():
        snapshot = service.store.current
        problems = []
        if not any(e.school_id for e in snapshot.entries):
            problems.append({"check": "policies", "message": "no school policy is being served"})
        try:
            await asyncio.wait_for(service.in_ledger(service.ledger.schema_version), timeout=5)
        except Exception as exc:
            problems.append({"check": "ledger", "message": f"the ledger is not reachable ({type(exc).__name__})"})
        if problems:
            return _error_response(503, "not_ready", "the service is not ready", problems)
        return {"status": "ready", "policies": {"generation": snapshot.generation, "serving": snapshot.serving,
                                                 "schools": sorted(snapshot.by_school)}, "ledger": "reachable"}

    # -- policies -------------------------------------------------------------------------------

    @app.get("/v1/policies", tags=["policies"], summary="the policies served to this key, and refused versions",
             responses=ERRORS)
    async def list_policies(key: ApiKey = Depends(current_key)):
        snapshot = service.store.current
        schools = service.schools_in_scope(key, snapshot)
        shown = []
        for entry in snapshot.entries:
            info = entry.describe()
            if entry.school_id is not None and entry.school_id not in schools:
                continue
            if entry.policy is None and not _refused_in_scope(entry, key):
                continue
            shown.append(info)
        return {"generation": snapshot.generation, "loaded_at": snapshot.built_at, "policies": shown}

    @app.post("/v1/policies/check", tags=["policies"], response_model=CheckResult, responses=ERRORS,
              summary="check a policy text as `rollbook check` does",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/yaml": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}}}})
    async def check_policy(request: Request, name: str = Query("policy.yaml", pattern=r"^[A-Za-z0-9._-]+\.ya?ml$",
                                                                description="the file name the text is checked as; "
                                                                            "`extends` resolves among the served policies"),
                           key: ApiKey = Depends(current_key)):
        body = await request.body()
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(422, "invalid_request", "the policy text is not UTF-8")
        snapshot = service.store.current
        return await service.in_evaluator(_check_text, snapshot, name, text)

    # -- batches --------------------------------------------------------------------------------

    @app.post("/v1/schools/{school_id}/batches", tags=["batches"], response_model=BatchResult,
              responses=ERRORS, summary="evaluate a register batch and record its new actions")
    async def submit_batch(school_id: str, batch: Batch, key: ApiKey = Depends(current_key)):
        snapshot = service.store.current  # this request's policies, whatever reloads meanwhile
        entry = snapshot.school(school_id)
        if entry is None or not key.covers(school_id, entry.trust):
            raise ApiError(404, "not_found", f"no school {school_id!r} is served to this key")
        try:
            as_of = date.fromisoformat(batch.as_of)
        except ValueError:
            raise ApiError(422, "invalid_request", f"as_of is not a date: {batch.as_of!r} (write YYYY-MM-DD)")
        started = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        t0 = time.perf_counter()
        # Batches of one school evaluate in parallel, but each records only if the school's prior
        # actions are still those it was evaluated with (escalation and limits read them); if
        # another batch recorded meanwhile, it is evaluated again while holding the school's lock.
        prior = await service.in_ledger(service.ledger.prior_actions, {school_id})
        evaluation, digest = await service.in_evaluator(_evaluate_batch, service, entry, school_id, batch, as_of, prior)
        t1 = time.perf_counter()
        async with service.school_lock(school_id):
            now_prior = await service.in_ledger(service.ledger.prior_actions, {school_id})
            if now_prior != prior:
                prior = now_prior
                evaluation, digest = await service.in_evaluator(_evaluate_batch, service, entry, school_id, batch,
                                                                as_of, prior)
            run = _run_entry(entry, school_id, as_of, evaluation, digest, key, len(prior), started)
            new, run_id = await service.in_ledger(_record, service.ledger, run, evaluation.actions)
        t2 = time.perf_counter()
        log.info("batch school=%s as_of=%s policy=%s version=%s actions=%d new=%d run=%s evaluate_ms=%.0f "
                 "record_ms=%.0f", school_id, as_of.isoformat(), entry.policy.id, entry.policy.version,
                 len(evaluation.actions), len(new), run_id, (t1 - t0) * 1000, (t2 - t1) * 1000)
        result = {
            "school_id": school_id, "as_of": as_of.isoformat(),
            "policy": {"id": entry.policy.id, "version": entry.policy.version, "sha256": entry.policy.sha256},
            "run": run_id, "evaluated_actions": len(evaluation.actions), "new_actions": new,
            "already_recorded": len({a["id"] for a in evaluation.actions}) - len(new),
            "warnings": evaluation.warnings, "calendar_note": evaluation.calendar_note,
        }
        return JSONResponse(result)

    # -- actions --------------------------------------------------------------------------------

    @app.get("/v1/actions", tags=["actions"], response_model=ActionPage, responses=ERRORS,
             summary="actions recorded after a cursor, oldest first (paged)")
    async def list_actions(cursor: int = Query(0, ge=0, description="0 for the first page, then `next_cursor`"),
                           limit: int = Query(100, ge=1, le=PAGE_LIMIT_MAX),
                           school_id: str | None = Query(None, description="only this school (default: every school "
                                                                            "the key reaches)"),
                           key: ApiKey = Depends(current_key)):
        snapshot = service.store.current
        schools = service.schools_in_scope(key, snapshot)
        if school_id is not None:
            if school_id not in schools:
                raise ApiError(404, "not_found", f"no school {school_id!r} is served to this key")
            schools = {school_id}
        actions, next_cursor = await service.in_ledger(service.ledger.actions_since, cursor, schools, limit)
        return JSONResponse({"actions": actions, "next_cursor": next_cursor})

    async def action_in_scope(action_id: str, key: ApiKey) -> dict:
        action = await service.in_ledger(service.ledger.get_action, action_id)
        snapshot = service.store.current
        school = (action or {}).get("subject", {}).get("school_id")
        if action is None or not key.covers(school, snapshot.trust_of(school)):
            raise ApiError(404, "not_found", f"no action {action_id!r} for this key")
        return action

    @app.get("/v1/actions/{action_id}", tags=["actions"], responses=ERRORS,
             summary="one action, with its status and status history")
    async def get_action(action_id: str, key: ApiKey = Depends(current_key)):
        return JSONResponse(await action_in_scope(action_id, key))

    @app.post("/v1/actions/{action_id}/status", tags=["actions"], responses=ERRORS,
              summary="set an action's status (open, done, dismissed), with who and a note")
    async def set_status(action_id: str, change: StatusChange, key: ApiKey = Depends(current_key)):
        await action_in_scope(action_id, key)
        updated = await service.in_ledger(service.ledger.set_status, action_id, change.status,
                                          change.changed_by.strip(), change.note)
        log.info("status action=%s status=%s", action_id, change.status)
        return JSONResponse(updated)

    return app


def _refused_in_scope(entry, key: ApiKey) -> bool:
    """A file refused with nothing serving has no checked school id: only its path is known. It
    is shown to trust keys (the trust's people fix policy files), never to a single school's key."""
    return key.trust is not None


def asgi_app(service: Service) -> Envelope:
    """The app as uvicorn serves it: FastAPI inside the body-limit / access-log / 500 layer."""
    return Envelope(create_app(service), service.config.max_body_bytes)


def openapi_document(service: "Service | None" = None) -> dict:
    """The OpenAPI description (no running service needed)."""
    return create_app(service).openapi()  # the routes need the service only when called


# ---- work done in threads -------------------------------------------------------------------------

def _check_text(snapshot: PolicySnapshot, name: str, text: str) -> dict:
    """`rollbook check` on a posted text, next to copies of the served policy files so `extends`
    resolves as it would in the folder."""
    from .api import check_policy_file

    folder = Path(snapshot.folder)
    with tempfile.TemporaryDirectory(prefix="rollbook-check-") as tmp:
        root = Path(tmp)
        for entry in snapshot.entries:
            source = folder / entry.path
            target = root / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source, target)
            except OSError:
                continue
        target = root / name
        target.write_text(text, encoding="utf-8")
        result = check_policy_file(target)
        return {"path": name, "ok": result.ok, "policy": result.policy.id if result.policy else None,
                "rules": len(result.policy.rules) if result.policy else None,
                "diagnostics": list(relative_diagnostics(result.diagnostics, root))}


def _write_part(folder: Path, role: str, part) -> None:
    if isinstance(part, str):
        (folder / f"{role}.csv").write_text(part, encoding="utf-8")
    else:
        with open(folder / f"{role}.jsonl", "w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False))
                f.write("\n")


def _evaluate_batch(service: Service, entry, school_id: str, batch: Batch, as_of: date, prior):
    """Load the batch through the register loader and evaluate the school's policy on it."""
    from .api import RollbookError, run_evaluation
    from .register import load_register
    from .run import register_digest

    with tempfile.TemporaryDirectory(prefix="rollbook-batch-") as tmp:
        folder = Path(tmp)
        _write_part(folder, "marks", batch.marks)
        _write_part(folder, "pupils", batch.pupils)
        if batch.calendar is not None:
            _write_part(folder, "calendar", batch.calendar)
        loaded = load_register(folder)
        if loaded.register is not None:
            digest = register_digest(loaded.register.sources)
            for f in digest["files"].values():
                f["path"] = Path(f["path"]).name  # the temporary folder means nothing later
        if loaded.register is None:
            details = [p.as_dict() for p in loaded.problems]
            for d in details:  # file-level problems name the temporary folder: show the part only
                if isinstance(d.get("file"), str) and d["file"].startswith(tmp):
                    d["file"] = d["file"][len(tmp):].lstrip("/") or "register"
            more = f"; {loaded.more_problems} more not listed" if loaded.more_problems else ""
            raise ApiError(422, "register_invalid", f"the register has {len(details)} problem(s){more}; "
                                                    "nothing was evaluated or recorded", details)
    register = loaded.register
    try:
        _assign_school(register, school_id)
        try:
            if service.config.rules_engine == "durable":
                with service._durable_lock:
                    evaluation = run_evaluation(entry.policy, register, as_of, prior, "durable")
            else:
                evaluation = run_evaluation(entry.policy, register, as_of, prior, service.config.rules_engine)
            return evaluation, {"source": "request body", **digest}
        except RollbookError as exc:
            details = [_problem_dict(p) for p in exc.problems]
            raise ApiError(422, "register_invalid", str(exc), details) from None
    finally:
        register.connection.close()


def _assign_school(register, school_id: str) -> None:
    """A batch is one school's. Rows without a school_id column take the batch's school (so the
    actions and the ledger carry it); rows naming another school are refused."""
    others = [s for s in register.schools if s not in ("", school_id)]
    if others:
        raise ApiError(422, "register_invalid", f"the batch is for school {school_id!r} but its rows name other "
                                                f"school(s); nothing was evaluated or recorded",
                       [{"file": "register", "row": None, "column": "school_id",
                         "message": f"school_id must be {school_id!r} (or the column left out) in a batch for "
                                    f"school {school_id!r}", "hint": None}])
    register.label_school(school_id)


def _record(ledger, run: dict, actions: list[dict]) -> tuple[list[dict], int | None]:
    """record_run, and the id of the run it recorded. The ledger's re-entrant lock is held across
    both so another thread's run cannot come between them."""
    import contextlib

    with getattr(ledger, "_lock", contextlib.nullcontext()):
        new = ledger.record_run(run, actions)
        return new, getattr(ledger, "last_run_id", None)


def _problem_dict(problem) -> dict:
    if hasattr(problem, "as_dict"):
        return problem.as_dict()
    return {"message": str(problem)}


def _run_entry(entry, school_id: str, as_of: date, evaluation, digest: dict, key: ApiKey, prior: int,
               started: str) -> dict:
    """The decision-log entry of a batch: the fields `rollbook run` records (engine/run.py), with
    the key that submitted it."""
    policy = entry.policy
    counts: dict[str, int] = {}
    for a in evaluation.actions:
        counts[f"{a['policy']}/{a['rule']}"] = counts.get(f"{a['policy']}/{a['rule']}", 0) + 1
    return {
        "command": "rollbook serve",
        "started_at": started,
        "as_of": as_of.isoformat(),
        "rollbook_version": __version__,
        "recorded_by": f"rollbook serve (key {key.name})",
        "key": key.name,
        "rules_engine": evaluation.rules_engine,
        "policies": [{"id": policy.id, "version": policy.version, "file": entry.path, "sha256": policy.sha256,
                      "school_id": school_id, "prior_actions": prior, "actions": len(evaluation.actions)}],
        "register": digest,
        "counts_per_rule": counts,
        "evaluation_seconds": round(evaluation.timings.get("total", 0.0), 3),
    }
