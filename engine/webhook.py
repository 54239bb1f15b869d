"""The webhook sink: POST each new action to a URL, from the ledger's outbox.

`rollbook run --webhook URL` queues every new action for URL in the same transaction that
records it (engine/ledger.py, table `deliveries`). After the commit, `deliver` POSTs the queued
actions oldest first, one JSON action record per request, with the action id in the
`Idempotency-Key` header, and marks each delivered when the server answers 2xx. A run killed
before that mark leaves the action queued: the next run sends it again with the same key, so
the receiver sees every action at least once and can drop repeats by key (exactly once in effect).

Retries: connection errors, timeouts, 408, 425, 429 and 5xx are retried with exponential
backoff (base, 2 x base, 4 x base, ... capped at `max_backoff`), at most `attempts` tries per
action per run; after that the server is treated as down and the rest wait for the next run.
Other 4xx answers are not retried in this run (the action stays queued and is reported).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from . import __version__
from .ledger import Ledger, checkpoint, redact

RETRYABLE_STATUS = {408, 425, 429}


@dataclass
class DeliveryReport:
    delivered: int = 0
    pending: int = 0  # still queued after this run
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def _post(url: str, action: dict, timeout: float) -> tuple[bool, bool, str]:
    """(delivered, retry, message) of one POST."""
    body = json.dumps(action, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": action["id"],
        "User-Agent": f"rollbook/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return True, False, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        retry = exc.code in RETRYABLE_STATUS or exc.code >= 500
        return False, retry, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:  # refused, reset, timeout, DNS
        reason = getattr(exc, "reason", exc)
        return False, True, f"cannot reach the webhook: {reason}"


def deliver(ledger: Ledger, url: str, *, attempts: int = 5, backoff: float = 0.5, max_backoff: float = 8.0,
            timeout: float = 10.0, sleep=time.sleep) -> DeliveryReport:
    """Deliver every action queued for `url` (this run's and earlier runs' undelivered ones)."""
    report = DeliveryReport()
    pending = ledger.pending_deliveries(url)
    for index, record in enumerate(pending):
        action = {k: v for k, v in record.items() if k not in ("ledger", "status")}
        for attempt in range(1, max(1, attempts) + 1):
            ok, retry, message = _post(url, action, timeout)
            report.attempts += 1
            if ok:
                checkpoint("webhook:after_post")
                ledger.mark_delivered(url, action["id"])
                report.delivered += 1
                break
            ledger.record_delivery_failure(url, action["id"], message)
            if not retry:
                report.errors.append(f"{action['id']}: {message} (not retried; it stays queued for the next run)")
                break
            if attempt < attempts:
                sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
        else:
            # Every attempt failed with a retryable error: the server is down. The remaining
            # actions wait for the next run rather than each spending its own retries now.
            report.errors.append(f"{redact(url)}: {message} after {attempts} attempts; "
                                 f"{len(pending) - index} action(s) stay queued for the next run")
            break
    report.pending = len(pending) - report.delivered
    return report
