"""Telling someone about an alert: a webhook the deployment declares by name, or Airflow notifiers.

A pipeline names a webhook (`alert webhook="ops"`); the URL behind the name is the deployment's
(``storage.declared_webhooks``), so a pipeline or a trigger param can never make a worker post to a host of
its choosing (SSRF). The alert row is committed before the first attempt, and its ``notify_status`` says
what happened: ``pending`` until an attempt succeeds (``sent``) or every attempt failed (``failed``, with the
reason in ``notify_error``). Attempts are bounded (:data:`ATTEMPTS`, each with :data:`TIMEOUT_SECONDS`) and
redirects are not followed (a declared URL answering with a redirect is a failure, not a new destination).

Airflow notifiers (``BaseNotifier`` subclasses: Slack, SMTP, …) are called by the Airflow side with
:func:`notify_recorded`, after the pipeline ran, with the alerts its run recorded; this module never
imports Airflow.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT_SECONDS = 5.0
BACKOFF_SECONDS = 0.5  # before attempt k (k ≥ 2): BACKOFF_SECONDS * (k - 1)
MAX_ERROR_CHARS = 500


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass
class Delivery:
    """How a notification went: ``sent`` or not, after how many attempts, and why it failed."""

    sent: bool
    attempts: int
    error: str | None = None


class Webhook:
    """POST each alert as JSON to one declared URL, a bounded number of times.

    After an alert used up every attempt, the endpoint is taken to be down: later alerts get one attempt
    each (until one succeeds), so a dead endpoint slows a stream by at most one timeout per alert."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self._url = url  # never logged or stored: a webhook URL often carries its secret
        self.down = False

    def post(self, payload: Mapping[str, Any]) -> Delivery:
        body = json.dumps(payload, default=str).encode()
        attempts = 1 if self.down else ATTEMPTS
        error = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                time.sleep(BACKOFF_SECONDS * (attempt - 1))
            request = urllib.request.Request(
                self._url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                    response.read(1024)
                self.down = False
                return Delivery(True, attempt)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
            except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timed out, bad URL
                reason = getattr(exc, "reason", exc)
                error = "timed out" if isinstance(reason, TimeoutError) else str(reason)
            log.warning("webhook `%s`: attempt %d of %d failed: %s", self.name, attempt, attempts, error)
        self.down = True
        return Delivery(False, attempts, (error or "failed")[:MAX_ERROR_CHARS])


def notify_recorded(
    alerts: Iterable[Mapping[str, Any]], notifiers: Iterable[Callable[[dict], Any]], context: Mapping[str, Any]
) -> list[str]:
    """Call every notifier once per alert, as Airflow calls a ``BaseNotifier``: with the task's context, here
    plus ``alert`` (so templates can say ``{{ alert.message }}``). A notifier renders its templated fields in
    place, so each call gets a fresh copy. Returns the errors (a failing notifier does not stop the others)."""
    errors = []
    notifiers = list(notifiers)
    for alert in alerts:
        for notifier in notifiers:
            try:
                copy.copy(notifier)({**context, "alert": dict(alert)})
            except Exception as exc:  # a notifier's own failure: reported, the alert is recorded anyway
                errors.append(f"{type(notifier).__name__} on alert {alert.get('id')}: {exc}")
                log.warning("notifier %s failed on alert %s: %s", type(notifier).__name__, alert.get("id"), exc)
    return errors
