"""Helpers of the fault tests: what clients saw, what the broker holds, and which change each audit
entry records."""
import time
from collections import Counter

from kombu import Connection

from tests.e2e.helpers import audit_entries, wait_for


class Seen:
    """Every request a fault test sent: its status (or "connection" when the gateway could not be
    reached) and how long the client waited for it."""

    def __init__(self):
        self.rows = []

    def send(self, request):
        """`request()` sends one HTTP request; its answer is returned and recorded."""
        started = time.monotonic()
        try:
            response = request()
        except OSError:
            self.rows.append(("connection", time.monotonic() - started))
            raise
        self.rows.append((response.status_code, time.monotonic() - started))
        return response

    @property
    def statuses(self):
        return sorted({str(status) for status, _ in self.rows})

    @property
    def longest(self):
        return max((seconds for _, seconds in self.rows), default=0.0)

    def summary(self):
        counts = Counter(str(status) for status, _ in self.rows)
        return (f"{len(self.rows)} requests, statuses {dict(sorted(counts.items()))}, "
                f"longest wait {self.longest:.2f} s")


def unavailable(response):
    """A failure a client must accept during a fault: a JSON 503 `service_unavailable` (not applied),
    `request_interrupted` for a request whose process died after saving it, or `outcome_unknown` for one
    sent before its service or the broker went away (never a 500)."""
    assert response.status_code == 503, f"{response.request.method} {response.url}: {response.status_code} " \
                                         f"{response.text[:500]}"
    assert response.json()["error"]["code"] in ("service_unavailable", "request_interrupted", "outcome_unknown"), \
        response.text


def until_answered(send, request, answers, within=60):
    """Send `request` through `send` (which records it: Seen.send) again after each failure a client must
    accept (a JSON 503, `unavailable`) until it answers one of `answers`: a retry under the same
    Idempotency-Key."""
    deadline, response = time.monotonic() + within, None
    while time.monotonic() < deadline:
        response = send(request)
        if response.status_code in answers:
            return response
        unavailable(response)
        time.sleep(0.2)
    last = f"{response.request.method} {response.url}: {response.text[:300]}" if response is not None else "none"
    raise AssertionError(f"no answer in {answers} within {within} s; the last: {last}")


def queue_state(amqp_uri, queue):
    """(messages ready, consumers) of a queue, as the broker reports them."""
    with Connection(amqp_uri) as connection:
        _, ready, consumers = connection.default_channel.queue_declare(queue, passive=True)
    return ready, consumers


def wait_for_consumers(amqp_uri, queues, count, timeout=60):
    """Wait until every one of `queues` has exactly `count` consumers (processes that started or
    stopped consuming)."""
    wait_for(lambda: all(queue_state(amqp_uri, queue)[1] == count for queue in queues), timeout=timeout,
             interval=0.3, message=f"{count} consumers on each of {queues}")


def new_value(entry, field):
    return next(change["new_value"] for change in entry["changes"] if change["field"] == field)


def change_key(entry):
    """The change an audit entry records, named as the tests name what they did: a rename by the name
    it gave, a role edit by the member and the roles it gave, anything else by its type and entity."""
    if entry["type"] == "organization.renamed":
        return entry["type"], new_value(entry, "name")
    if entry["type"] == "member.roles_changed":
        return entry["type"], entry["entity_id"], tuple(sorted(new_value(entry, "roles")))
    return entry["type"], entry["entity_id"]


def trail_holds(api, org_id, keys):
    """The organization's trail once it holds an entry for every one of `keys` (else None)."""
    entries = audit_entries(api, org_id)
    return entries if set(keys) <= {change_key(e) for e in entries} else None


def lost_and_duplicated(entries, expected, types):
    """Of the `expected` change keys, those with no entry (lost); of every key of the given event
    `types`, those with more than one entry (duplicated). Event ids must be unique anyway."""
    counts = Counter(change_key(e) for e in entries if e["type"] in types)
    assert len({e["event_id"] for e in entries}) == len(entries), "an event stored twice"
    lost = [key for key in expected if counts[key] == 0]
    duplicated = {key: count for key, count in counts.items() if count > 1}
    return lost, duplicated
