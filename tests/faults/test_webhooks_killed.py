"""The webhooks service killed (SIGKILL) with deliveries pending, and the receiver down meanwhile (SPEC §12:
nothing is lost when the receiver, the delivering service or the broker is down): 200 changes of an
organization whose endpoint subscribes to them; the receiver is down from the start; the webhooks service
is killed after half of them (its stored deliveries wait in its database, the rest of the events in its
queue); then the receiver and the service come back. Every event arrives at least once: the distinct
webhook-ids received are exactly the events' ids. Prints how long after the restart the last one came."""
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from common.db import Store
from devtools.system import free_port
from devtools.webhook_receiver import Receiver
from services.webhooks.models import Delivery
from tests.e2e.helpers import audit_entries, create_organization, ok, path, wait_for
from tests.faults.helpers import Seen

CHANGES = 200
KILL_AFTER = 100
CLIENTS = 5


def test_every_event_is_delivered_after_the_service_and_the_receiver_come_back(system, figure):
    owner = system.user("owner")
    org = create_organization(owner, "Hooked 0")["id"]
    port = free_port()
    receiver = Receiver(port)
    endpoint = ok(owner.post(path(org, "/webhooks"), json={"url": receiver.url,
                                                           "event_types": ["organization.renamed"]}), 201)
    receiver.stop()                                     # down from the start
    webhooks_db = Store(system.database_url("webhooks"))

    def stored():
        with webhooks_db.read() as session:
            return session.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.endpoint_id == endpoint["id"]))

    seen, answered = Seen(), []

    def rename(n):
        ok(seen.send(lambda: owner.patch(path(org), json={"name": f"Hooked {n + 1}"})))
        answered.append(n)

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(rename, range(KILL_AFTER)))
            wait_for(lambda: stored() >= KILL_AFTER // 2, timeout=30, message="deliveries stored")
            system.stop("webhooks", kill=True)          # some stored and tried, others still in its queue
            list(pool.map(rename, range(KILL_AFTER, CHANGES)))
        stored_when_killed = stored()
    finally:
        receiver = Receiver(port)                       # back, on the same address
        if "webhooks" not in system.processes:
            system.start("webhooks")
    back = time.monotonic()
    try:
        system.wait_healthy(timeout=30)
        renamed = wait_for(lambda: (lambda ids: ids if len(ids) == CHANGES else None)(
            {e["event_id"] for e in audit_entries(owner, org) if e["type"] == "organization.renamed"}),
            timeout=60, message="every rename in the audit trail")
        wait_for(lambda: {h["webhook-id"] for h, _ in receiver.received} >= renamed, timeout=90, interval=0.5,
                 message="every rename delivered")
        complete_after = time.monotonic() - back
        time.sleep(1)
        ids = [h["webhook-id"] for h, _ in receiver.received]
        assert set(ids) == renamed                                        # none lost, nothing else sent
        assert all(message["type"] == "organization.renamed" for message in receiver.verified(endpoint["secret"]))
        figure(f"webhooks killed with {stored_when_killed} of {CHANGES} deliveries stored, the receiver down: "
               f"all {len(set(ids))} delivered {complete_after:.1f} s after the restart ({len(ids)} requests: "
               f"{len(ids) - len(set(ids))} sent twice)")
        assert len(answered) == CHANGES and set(seen.statuses) == {"200"}
    finally:
        receiver.stop()
