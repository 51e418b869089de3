"""Organizations' states (services/orgs/organization_states.py): every change of an organization carries
its whole state with a version that only grows, a deletion a tombstone; the snapshot serves the same
states, and a read model filled from it (credits') equals the one the events built."""
from sqlalchemy import select

from common import readmodels
from common.readmodels import ORGANIZATIONS
from services.credits.models import READ_MODELS as CREDITS_MODELS
from services.credits.models import OrganizationFact
from services.orgs import organization_states, organizations
from services.orgs.models import OutboxEvent
from tests.unit.orgs.helpers import committed


def carried(store):
    with store.read() as session:
        return [(e.type, s["organization_id"], s["name"], s["type"], s["active"], s["version"])
                for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
                for s in (e.envelope.get("state") or {}).get(ORGANIZATIONS, [])]


def test_created_renamed_deleted_carry_the_state_with_a_growing_version(store, alice):
    individual = committed(store, organizations.ensure_individual, alice)["id"]
    org = committed(store, organizations.create_collective, alice, "Clinic")["id"]
    committed(store, organizations.rename, alice, org, "Clinic 2")
    committed(store, organizations.rename, alice, org, "Clinic 2")          # nothing changed: no event, no version
    committed(store, organizations.delete, alice, org)
    assert carried(store) == [
        ("organization.created", individual, "Alice", "individual", True, 1),
        ("organization.created", org, "Clinic", "collective", True, 1),
        ("organization.renamed", org, "Clinic 2", "collective", True, 2),
        ("organization.deleted", org, "Clinic 2", "collective", False, 3)]


def test_a_read_model_filled_from_the_snapshot_equals_the_one_the_events_built(store, alice, make_store):
    committed(store, organizations.ensure_individual, alice)
    kept = committed(store, organizations.create_collective, alice, "Kept")["id"]
    gone = committed(store, organizations.create_collective, alice, "Gone")["id"]
    committed(store, organizations.rename, alice, kept, "Kept!")
    committed(store, organizations.delete, alice, gone)

    def rows(credits):
        with credits.read() as session:
            return [(f.organization_id, f.name, f.type, f.active, f.version)
                    for f in session.scalars(select(OrganizationFact).order_by(OrganizationFact.organization_id))]

    by_events = make_store("credits")
    with store.read() as session:
        envelopes = [e.envelope for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]
    with by_events.write() as session:
        for envelope in envelopes + envelopes:                          # the second time: redelivered
            readmodels.apply_event_state(session, CREDITS_MODELS, envelope)

    class Orgs:
        def snapshot_organizations(self, after, limit):
            return organization_states.snapshot(store, after, 1)        # pages of one

    built = rows(by_events)
    rpc = type("Rpc", (), {"orgs": Orgs()})()
    # A rebuild from scratch (emptied first) gives the same rows the events gave.
    assert readmodels.fill(by_events, CREDITS_MODELS, ORGANIZATIONS, rpc, replace=True) == 3
    assert rows(by_events) == built
    assert [(r[1], r[3]) for r in built if r[0] in (kept, gone)] in ([("Kept!", True), ("Gone", False)],
                                                                      [("Gone", False), ("Kept!", True)])
