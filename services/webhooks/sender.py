"""One try of one delivery: the body signed per Standard Webhooks (the `standardwebhooks` library, which
receivers use to verify), POSTed through egress.py within the timeout; the outcome, never an exception.

Headers: `webhook-id` (the event's id, the same on every try), `webhook-timestamp` (seconds, this try's),
`webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per signing secret, separated by a
space: during a rotation's overlap a receiver holding either secret verifies).
"""
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import eventlet
from standardwebhooks.webhooks import Webhook

from services.webhooks import egress

USER_AGENT = "orgplatform-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None      # None: no answer
    duration_ms: int
    error: str = ""
    retry_after: object = None   # a timedelta the receiver asked for (Retry-After), or None

    @property
    def delivered(self):
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(message_id, body, secrets, at):
    signatures = " ".join(Webhook(secret).sign(message_id, at, body) for secret in secrets)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json", "user-agent": USER_AGENT}


def retry_after_of(headers):
    """Retry-After in seconds (the only form worth honouring here; an HTTP date is rare), or None."""
    value = (headers.get("retry-after") or "").strip()
    return timedelta(seconds=int(value)) if value.isdigit() else None


def send(url, message_id, body, secrets, timeout, allow_private):
    """POST the delivery once; its Outcome."""
    started = time.monotonic()
    at = datetime.now(UTC)
    headers = signed_headers(message_id, body, secrets, at)

    def took():
        return int((time.monotonic() - started) * 1000)
    try:
        with eventlet.Timeout(timeout):     # the whole exchange, however slowly the receiver drips
            answer = egress.post(url, body.encode(), headers, timeout, allow_private)
    except egress.EgressRefused as refused:
        return Outcome(None, took(), f"{refused.code}: {refused}")
    except eventlet.Timeout:
        return Outcome(None, took(), f"no answer within {timeout:g} s")
    except Exception as error:          # a connection refused or reset, TLS, a malformed answer
        return Outcome(None, took(), f"{type(error).__name__}: {error}"[:500])
    error = "" if 200 <= answer.status < 300 else f"HTTP {answer.status}: {answer.body[:200].decode(errors='replace')}"
    return Outcome(answer.status, took(), error, retry_after_of(answer.headers))
