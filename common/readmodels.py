"""Read models: the facts a service needs from another service, kept in its own database and fed by
that service's change events, so that no request waits on a chain of RPC calls to decide a read or a
permission (docs/decisions.md 75 to 78).

Each kind of fact (common.readmodel_kinds: memberships owned by members, agents' access owned by orgs,
budget group members owned by credits, organizations owned by orgs) travels in an event's `state` (beside the audit's
`before`/`after`), as the whole current state of the thing and a version that only grows, per thing. A
consumer applies a state only if its version is newer than the one it holds (`apply_state`, one rule
for every kind), so redelivery and reordering are harmless; a removal is a tombstone (a newer version),
kept so that an older state arriving late cannot bring the thing back. An organization's deletion
(orgs' organization.deleted) retires every membership of it here too.

Reading the facts (with refusals confirmed by the owner) is common.membership_facts. Each owner serves
a paged snapshot (readmodel_kinds.KINDS: members.snapshot_memberships, orgs.snapshot_agents,
credits.snapshot_budget_group_members, orgs.snapshot_organizations) for rebuilds and for the first
fill of an empty read model: `ReadModelFill` does that when a service starts, and
`python -m common.readmodels rebuild <service>` does it on demand.
"""
import argparse
import importlib
import logging
import sys

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import delete

from common.auth import SYSTEM_ACTOR, USER_ID_KEY
from common.config import READ_MODEL_SERVICES, settings
from common.db import Store, service_store
from common.errors import ServiceUnavailable
from common.event_types import ORGANIZATION_DELETED
from common.readmodel_kinds import (  # noqa: F401  (the names every service imports from here)
    AGENTS,
    BUDGET_GROUP_MEMBERS,
    KIND,
    KINDS,
    MEMBERSHIPS,
    ORGANIZATIONS,
    AgentAccessMixin,
    BudgetGroupMemberFactMixin,
    MembershipFactMixin,
    OrganizationFactMixin,
    ReadModelFilledMixin,
    ReadModels,
    RetiredOrganizationMixin,
    agent_state,
    budget_group_member_state,
    membership_state,
    organization_state,
)
from common.sql import conflict_insert
from common.timeutil import utcnow

log = logging.getLogger(__name__)

SNAPSHOT_PAGE = 500


# ---- applying states ---------------------------------------------------------------------------------
# ---- the owners' side: a version per thing that only grows ----------------------------------------------
def raise_version(session, model, **key):
    """Raise the thing's version in the owner's `model` (its key columns and `version`; rows never deleted,
    so a thing removed and added again counts on) and return it: 1 for its first change."""
    row = session.get(model, tuple(key.values()), with_for_update=True)
    if row is None:
        row = model(**key, version=0)
        session.add(row)
    row.version += 1
    session.flush()     # a second change in the same transaction finds the row
    return row.version


def _insert_if_absent(session, model, values):
    """INSERT .. ON CONFLICT DO NOTHING: two writers that both found no row (an event and a confirmed
    refusal, or two replicas) must not fail on the primary key; the second one then locks the first's."""
    session.execute(conflict_insert(session)(model).values(**values).on_conflict_do_nothing())


def apply_state(session, models, name, state):
    """Write `state` (of the kind `name`) into its row unless the row is as new; True if it was newer."""
    kind = KIND[name]
    model, key, values = models.table(name), tuple(state[field] for field in kind.key), kind.values(state)
    row = session.get(model, key, with_for_update=True)
    if row is None:
        # Version -1: any state, even one of version 0 (memberships from before versions), is newer.
        _insert_if_absent(session, model, dict(zip(kind.key, key, strict=True), version=-1, **values))
        row = session.get(model, key, with_for_update=True, populate_existing=True)
    if row.version >= state["version"]:
        return False                    # what we hold is as new or newer: a redelivery or a late event
    for column, value in values.items():
        setattr(row, column, value)
    row.version = state["version"]
    return True


def apply_membership(session, models, state):
    return apply_state(session, models, MEMBERSHIPS, state)


def apply_agent(session, models, state):
    return apply_state(session, models, AGENTS, state)


def retire_organization(session, models, organization_id):
    if models.retired is not None:
        _insert_if_absent(session, models.retired, {"organization_id": organization_id, "retired_at": utcnow()})


def apply_event_state(session, models, event):
    """Apply every state an event carries that this service keeps; returns how many were newer."""
    state = event.get("state") or {}
    applied = 0
    for kind in models.kept():
        applied += sum(apply_state(session, models, kind.name, s) for s in state.get(kind.name) or [])
    if models.memberships is not None and event["type"] == ORGANIZATION_DELETED:
        retire_organization(session, models, event["target"]["id"])
    return applied


# ---- filling and rebuilding from the owner's snapshot -------------------------------------------------
SOURCES = {kind.name: (kind.owner, kind.snapshot) for kind in KINDS}


def kept(models):
    return [kind.name for kind in models.kept()]


def is_filled(store, models, name):
    with store.read() as session:
        return session.get(models.filled, name) is not None


def fill(store, models, name, rpc, replace=False):
    """Page through the owner's snapshot and apply it (newer versions win); with `replace`, the read model
    is emptied first (a rebuild from scratch). Marks it filled; returns how many states were applied."""
    kind = KIND[name]
    if replace:
        with store.write() as session:
            session.execute(delete(models.table(name)))
    applied, after = 0, None
    while True:
        page = getattr(getattr(rpc, kind.owner), kind.snapshot)(after=after, limit=SNAPSHOT_PAGE)
        with store.write() as session:
            applied += sum(apply_state(session, models, name, state) for state in page["items"])
        after = page["next_after"]
        if after is None:
            break
    with store.write() as session:
        if session.get(models.filled, name) is None:
            session.add(models.filled(name=name, filled_at=utcnow()))
    return applied


SYSTEM_CONTEXT = {USER_ID_KEY: SYSTEM_ACTOR["id"]}


def system_rpc(amqp_uri):
    """A standalone RPC proxy calling as the system (snapshot RPCs answer only the system)."""
    from nameko.standalone.rpc import ClusterRpcProxy
    return ClusterRpcProxy({"AMQP_URI": amqp_uri}, context_data=dict(SYSTEM_CONTEXT), timeout=30)


class ReadModelFill(DependencyProvider):
    """At start, fills each read model this service keeps that was never filled (a new service, or one
    upgraded from before read models existed), retrying until the owner answers. Until then `check()`
    raises ServiceUnavailable, which `ping` (and so /health) reports."""

    RETRY_SECONDS = 2

    def __init__(self, models):
        self.models = models

    def setup(self):
        self.store = service_store(self.container)
        self.pending = set(kept(self.models))
        self._thread = None

    def start(self):
        self.pending = {name for name in kept(self.models) if not is_filled(self.store, self.models, name)}
        if self.pending:
            self._thread = self.container.spawn_managed_thread(self._fill_all)

    def stop(self):
        if self._thread is not None:
            self._thread.kill()

    def _fill_all(self):
        logged = False
        while self.pending:
            name = next(iter(self.pending))
            try:
                with system_rpc(self.container.config["AMQP_URI"]) as rpc:
                    applied = fill(self.store, self.models, name, rpc)
                log.info("%s: read model %s filled from its owner (%d states)",
                         self.container.service_name, name, applied)
                self.pending.discard(name)
            except Exception:
                if not logged:
                    log.warning("%s: read model %s not filled yet (its owner does not answer); retrying",
                                self.container.service_name, name, exc_info=True)
                    logged = True
                eventlet.sleep(self.RETRY_SECONDS)

    def check(self):
        if self.pending:
            raise ServiceUnavailable(f"The {self.container.service_name} service is filling its read models "
                                     f"({', '.join(sorted(self.pending))}).", code="service_unavailable")

    def get_dependency(self, worker_ctx):
        return self


# ---- python -m common.readmodels rebuild <service> -----------------------------------------------------
def rebuild(service_name, amqp_uri=None, database_url=None):
    """Rebuild every read model of `service_name` from scratch from the owners' snapshots."""
    config = settings()
    models = importlib.import_module(f"services.{service_name}.models").READ_MODELS
    store = Store(database_url or config.database_url(service_name))
    counts = {}
    with system_rpc(amqp_uri or config.amqp_uri) as rpc:
        for name in kept(models):
            counts[name] = fill(store, models, name, rpc, replace=True)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description="Rebuild a service's read models from their owners' snapshots "
                                                 "(the owners must be running).")
    parser.add_argument("command", choices=["rebuild"])
    parser.add_argument("service", choices=READ_MODEL_SERVICES)
    args = parser.parse_args(argv)
    try:
        counts = rebuild(args.service)
    except Exception as exc:      # the owner not running, the database unreachable: say so, no traceback
        sys.exit(f"readmodels: rebuild of {args.service} failed: {exc}")
    for name, count in counts.items():
        print(f"{args.service}: {name} rebuilt ({count} states)")


if __name__ == "__main__":
    main()
