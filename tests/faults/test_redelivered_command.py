"""A process dies after its command committed and before the broker had the request's acknowledgement
(Nameko acknowledges after the reply): RabbitMQ hands the request to the next process of the service.
Made deterministic here: the first process (in this test's own process) hangs right after the commit, a
twin starts, the first is killed. The twin must not run the command again (common.handled_requests):
a grant sent without an Idempotency-Key is in the ledger once, and a rename is not repeated after
another client's rename (which would undo it). The client waiting on the first request hears 503
`request_interrupted`. Both backends."""
import time

import eventlet
import pytest
from nameko.containers import ServiceContainer

from common.framework import rpc
from services.credits.service import CreditsService
from services.orgs.service import OrgsService
from tests.e2e.helpers import audit_entries, create_organization, ok, wait_for
from tests.faults.helpers import wait_for_consumers

SERVICES = {"credits": (CreditsService, "add_grant"), "orgs": (OrgsService, "rename_organization")}


def hung_after_commit(system, monkeypatch, environment, service):
    """Replace `service`'s process by one in this test's process whose first call of the method hangs
    once its command committed (before the reply and the acknowledgement). Returns (container, hung)."""
    cls, method = SERVICES[service]
    hung, original = eventlet.event.Event(), rpc.Rpc.handle_result

    def handle_result(self, message, worker_ctx, result, exc_info):
        if self.method_name == method and not hung.ready():
            hung.send(True)
            eventlet.sleep(3600)        # killed before this ends: no reply, no acknowledgement
        return original(self, message, worker_ctx, result, exc_info)
    monkeypatch.setattr(rpc.Rpc, "handle_result", handle_result)
    environment.set(**{f"{service.upper()}_DATABASE_URL": system.database_url(service)})
    system.stop(service)
    container = ServiceContainer(cls, {"AMQP_URI": system.env["AMQP_URI"], "max_workers": 10})
    container.start()
    wait_for_consumers(system.env["AMQP_URI"], [f"rpc-{service}"], 1)
    return container, hung


def die_and_let_a_twin_take_over(system, service, container, hung):
    with eventlet.Timeout(20):
        hung.wait()
    system.start(service)                                   # the twin
    wait_for_consumers(system.env["AMQP_URI"], [f"rpc-{service}"], 2)
    container.kill()                                        # the request goes back to the queue: to the twin
    system.wait_healthy(60)


@pytest.fixture
def owner_and_org(system):
    owner = system.user("owner")
    return owner, create_organization(owner, "Redelivered")["id"]


def test_a_grant_redelivered_after_its_commit_is_in_the_ledger_once(system, monkeypatch, environment, owner_and_org,
                                                                      figure):
    owner, org = owner_and_org
    container, hung = hung_after_commit(system, monkeypatch, environment, "credits")
    started = time.monotonic()
    first = eventlet.spawn(owner.post, f"/v1/organizations/{org}/credits/grants", json={"amount": "7", "type": "paid"})
    die_and_let_a_twin_take_over(system, "credits", container, hung)
    answer = first.wait()
    figure(f"grant redelivered: the client saw {answer.status_code} after {time.monotonic() - started:.1f} s")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "request_interrupted", answer.text
    grants = ok(owner.get(f"/v1/organizations/{org}/credits/ledger", params={"kind": "grant"}))["items"]
    assert [g["amount"] for g in grants] == ["7.0000"]
    assert ok(owner.get(f"/v1/organizations/{org}/credits"))["balance"] == "7.0000"
    wait_for(lambda: len(audit_entries(owner, org, entity_type="grant")) == 1, timeout=30, message="its entry")
    time.sleep(1)
    assert len(audit_entries(owner, org, entity_type="grant")) == 1


def test_a_rename_redelivered_after_its_commit_does_not_undo_a_later_rename(system, monkeypatch, environment,
                                                                             owner_and_org, figure):
    owner, org = owner_and_org
    container, hung = hung_after_commit(system, monkeypatch, environment, "orgs")
    first = eventlet.spawn(owner.patch, f"/v1/organizations/{org}", json={"name": "X"})
    with eventlet.Timeout(20):
        hung.wait()
    # Another client renames while the first request hangs, and is answered (the hung process serves it).
    ok(owner.patch(f"/v1/organizations/{org}", json={"name": "Y"}))
    die_and_let_a_twin_take_over(system, "orgs", container, hung)
    answer = first.wait()
    figure(f"rename redelivered: the client saw {answer.status_code}")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "request_interrupted", answer.text
    assert ok(owner.get(f"/v1/organizations/{org}"))["name"] == "Y"
    renames = lambda: [(e["changes"][0]["old_value"], e["changes"][0]["new_value"])  # noqa: E731
                       for e in reversed(audit_entries(owner, org, entity_type="organization"))
                       if e["type"] == "organization.renamed"]
    wait_for(lambda: len(renames()) >= 2, timeout=30, message="both renames in the trail")
    time.sleep(1)
    assert renames() == [("Redelivered", "X"), ("X", "Y")]
