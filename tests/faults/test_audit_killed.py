"""The audit service killed (SIGKILL), on each backend:

- while 100 changes happen (renames, role edits, invitations, active-organization switches, grants,
  spends, from 5 clients at once), then started again: no request fails or waits on its account (every
  one answers 2xx, the gateway's /health says "degraded" meanwhile), and once it is back every change
  has exactly one entry in the trail;
- while it drains a backlog of 100 events that piled up while it was down, then started again: the
  events it had taken but not acknowledged come back, and every one is stored exactly once.

Each prints what clients saw and how long after the restart the trail was complete."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from common.db import Store
from common.events import AUDIT_QUEUE
from services.audit.models import AuditEntry
from tests.e2e.helpers import audit_entries, create_agent, create_organization, join, ok, wait_for
from tests.e2e.test_credits import spend
from tests.faults.helpers import Seen, change_key, lost_and_duplicated, queue_state, trail_holds

CLIENTS = 5
# Each client's changes, in its order: 20 each, 100 in all. A client edits the roles of its own
# member (so its edits never undo another client's) and that member switches into the organization.
ROLE_STEPS = (["builder"], ["admin"], ["builder", "member"], ["admin", "member"])
PLAN = ("switch", "rename", "invite", "roles", "spend", "rename", "grant", "invite", "roles", "rename",
        "spend", "invite", "roles", "rename", "spend", "grant", "rename", "invite", "roles", "rename")
KILL_AFTER = 10          # changes answered before the audit service is killed
TRAFFIC_TYPES = {"organization.renamed", "member.roles_changed", "invitation.created", "credits.granted",
                 "credits.spent", "user.active_organization_changed"}


def test_changes_made_while_the_audit_service_is_dead_are_each_audited_once_it_is_back(system, figure):
    owner = system.user("owner")
    org = create_organization(owner, "Audit down")["id"]
    base = f"/v1/organizations/{org}"
    ok(owner.post(f"{base}/credits/grants", json={"amount": "100", "type": "paid"}), 201)
    agent = create_agent(owner, org, "Scribe")["id"]
    spender = join(system, owner, org, ["member"], "spender")
    ok(owner.put(f"{base}/agents/{agent}/assignees/{spender.id}"), 201)
    ok(spend(spender, org, agent, "0.5"), 201)                      # the read models hold the facts
    editors = [join(system, owner, org, ["member"], f"edited{t}") for t in range(CLIENTS)]
    seen, expected, answered, kill_now = Seen(), [], [], threading.Event()

    def change(t, n, kind):
        """Make one change; return the key of the audit entry it must have (common to the helpers)."""
        person = editors[t]
        if kind == "rename":
            name = f"Down {t}-{n}"
            ok(seen.send(lambda: owner.patch(base, json={"name": name})))
            return "organization.renamed", name
        if kind == "roles":
            roles = ROLE_STEPS[PLAN[:n].count("roles")]
            ok(seen.send(lambda: owner.patch(f"{base}/members/{person.id}", json={"roles": roles})))
            return "member.roles_changed", person.id, tuple(sorted(roles))
        if kind == "switch":
            ok(seen.send(lambda: person.put("/v1/me/active-organization", json={"organization_id": org})))
            return "user.active_organization_changed", person.id
        if kind == "invite":
            body = {"email": f"down-{t}-{n}-{person.id}@example.com", "roles": ["member"]}
            return "invitation.created", ok(seen.send(lambda: owner.post(f"{base}/invitations", json=body)), 201)["id"]
        if kind == "grant":
            body = {"amount": "5", "type": "paid"}
            return "credits.granted", ok(seen.send(lambda: owner.post(f"{base}/credits/grants", json=body)), 201)["id"]
        return "credits.spent", ok(seen.send(lambda: spend(spender, org, agent, "0.25")), 201)["id"]

    def client(t):
        for n, kind in enumerate(PLAN):
            expected.append(change(t, n, kind))
            answered.append(1)
            if len(answered) >= KILL_AFTER:
                kill_now.set()

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, t) for t in range(CLIENTS)]
        try:
            assert kill_now.wait(timeout=60)
            system.stop("audit", kill=True)                            # dead in the middle of the traffic
            [job.result() for job in clients]
            health = owner.get("/health").json()
            assert health["status"] == "degraded" and health["services"]["audit"] != "ok", health
        finally:
            if "audit" not in system.processes:
                system.start("audit")
    back = time.monotonic()
    system.wait_healthy(timeout=30)

    assert len(expected) == len(set(expected)) == CLIENTS * len(PLAN)
    wait_for(lambda: trail_holds(owner, org, expected), timeout=30, message="an entry for every change")
    complete_after = time.monotonic() - back
    time.sleep(1.5)                                                    # a late duplicate would show up by now
    entries = audit_entries(owner, org)
    lost, duplicated = lost_and_duplicated(entries, expected, TRAFFIC_TYPES)
    figure(f"audit killed while {len(expected)} changes happen: {seen.summary()}; {len(lost)} lost, "
          f"{len(duplicated)} duplicated; the trail complete {complete_after:.1f} s after the restart")
    assert not lost and not duplicated, (lost, duplicated)
    assert set(seen.statuses) <= {"200", "201"} and len(seen.rows) == len(expected)
    # Each client's renames are in the trail in the order it made them (newest first).
    for t in range(CLIENTS):
        mine = [change_key(e)[1] for e in entries if e["type"] == "organization.renamed"
                and change_key(e)[1].startswith(f"Down {t}-")]
        assert mine == [f"Down {t}-{n}" for n, kind in reversed(list(enumerate(PLAN))) if kind == "rename"]


BACKLOG = 100


def test_audit_killed_while_draining_a_backlog_stores_every_event_once(system, figure):
    alice = system.user("alice")
    org = create_organization(alice, "Backlog")["id"]
    audit_db = Store(system.database_url("audit"))
    amqp_uri = system.env["AMQP_URI"]

    def stored():
        with audit_db.read() as session:
            return session.scalar(select(func.count()).select_from(AuditEntry)
                                  .where(AuditEntry.organization_id == org))

    wait_for(lambda: stored() == 2, message="the organization's first two entries")   # created, founder added
    seen = Seen()
    names = [f"Backlog {n}" for n in range(BACKLOG)]
    system.stop("audit", kill=True)
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda name: ok(seen.send(lambda: alice.patch(f"/v1/organizations/{org}",
                                                                         json={"name": name}))), names))
        wait_for(lambda: queue_state(amqp_uri, AUDIT_QUEUE.name)[0] >= BACKLOG, timeout=30,
                 message="the backlog relayed into the audit queue")
        backlog = queue_state(amqp_uri, AUDIT_QUEUE.name)[0]
        system.start("audit")
        wait_for(lambda: stored() > 2, timeout=60, interval=0.02, message="the audit service draining")
        system.stop("audit", kill=True)                                 # mid-stream
        stored_when_killed = stored()
    finally:
        if "audit" not in system.processes:
            system.start("audit")
    back = time.monotonic()
    assert 2 < stored_when_killed < 2 + BACKLOG, "the audit service had drained the backlog before the kill"
    expected = [("organization.renamed", name) for name in names]
    system.wait_healthy(timeout=30)
    wait_for(lambda: trail_holds(alice, org, expected), timeout=30, message="an entry for every rename")
    complete_after = time.monotonic() - back
    time.sleep(1.5)                                                    # a late duplicate would show up by now
    entries = audit_entries(alice, org)
    lost, duplicated = lost_and_duplicated(entries, expected, {"organization.renamed"})
    figure(f"audit killed mid-stream: {BACKLOG} renames ({seen.summary()}) queued ({backlog} events "
          f"waiting), {stored_when_killed - 2} stored when killed; {len(lost)} lost, {len(duplicated)} "
          f"duplicated; the trail complete {complete_after:.1f} s after the restart")
    assert not lost and not duplicated, (lost, duplicated)
    assert len(entries) == 2 + BACKLOG
    assert seen.statuses == ["200"]
