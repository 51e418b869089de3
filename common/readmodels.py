"""Read models: the facts a service needs from another service, kept in its own database and fed by
that service's change events, so that no request waits on a chain of RPC calls to decide a read or a
permission (docs/decisions.md "Read models").

Two kinds of facts travel, each in an event's `state` (beside the audit's `before`/`after`):
- memberships, owned by members: {"organization_id", "user_id", "roles", "joined_at", "active", "version"}
- agents' access, owned by orgs: {"agent_id", "organization_id", "contributors", "assignees", "active",
  "version"}
Each carries the whole current state of the thing and a version that only grows, per thing. A consumer
applies a state only if its version is newer than the one it holds, so redelivery and reordering are
harmless; a removal is a tombstone (active false, a newer version), kept so that an older state
arriving late cannot bring the thing back. An organization's deletion (orgs' organization.deleted)
retires every membership of it here too.

Reading the facts (with refusals confirmed by the owner) is common.membership_facts. The owner serves
a paged snapshot (members.snapshot_memberships, orgs.snapshot_agents) for rebuilds and
for the first fill of an empty read model: `ReadModelFill` does that when a service starts, and
`python -m common.readmodels rebuild <service>` does it on demand.
"""
import argparse
import importlib
import logging
import sys
from dataclasses import dataclass

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from common.auth import SYSTEM_ACTOR, USER_ID_KEY
from common.config import READ_MODEL_SERVICES, settings
from common.db import Store, service_store
from common.errors import ServiceUnavailable
from common.event_types import ORGANIZATION_DELETED
from common.sql import conflict_insert
from common.timeutil import iso, utcnow

log = logging.getLogger(__name__)

MEMBERSHIPS = "memberships"
AGENTS = "agents"
SNAPSHOT_PAGE = 500


# ---- the states events carry -------------------------------------------------------------------------
def membership_state(organization_id, user_id, roles, version, joined_at=None, active=True):
    return {"organization_id": organization_id, "user_id": user_id, "roles": list(roles),
            "joined_at": iso(joined_at) if joined_at is not None and not isinstance(joined_at, str) else joined_at,
            "active": bool(active), "version": int(version)}


def agent_state(agent_id, organization_id, contributors, assignees, version, active=True):
    return {"agent_id": agent_id, "organization_id": organization_id, "contributors": sorted(contributors),
            "assignees": sorted(assignees), "active": bool(active), "version": int(version)}


# ---- tables (each consuming service declares `class X(XMixin, Base)` for those it keeps) --------------
class MembershipFactMixin:
    __tablename__ = "membership_facts"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    roles: Mapped[list] = mapped_column(JSON)
    joined_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, index=True)
    version: Mapped[int] = mapped_column(Integer)


class AgentAccessMixin:
    __tablename__ = "agent_access"

    agent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(36), index=True)
    contributors: Mapped[list] = mapped_column(JSON)
    assignees: Mapped[list] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)


class RetiredOrganizationMixin:
    """Organizations deleted in orgs: their memberships count for nothing, whatever arrives later."""
    __tablename__ = "retired_organizations"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    retired_at = mapped_column(DateTime(timezone=True), nullable=False)


class ReadModelFilledMixin:
    """Which read models were filled from their owner's snapshot (an empty one is filled at start)."""
    __tablename__ = "read_models_filled"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    filled_at = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True)
class ReadModels:
    """The read-model tables of one service (None for what it does not keep)."""
    filled: type
    memberships: type | None = None
    retired: type | None = None
    agents: type | None = None
    # A select of the ids of organizations whose memberships count for nothing, for a service that knows
    # its deleted organizations itself (orgs); by default those retired here (`retired`).
    retired_ids: object = None

    def retired_organizations(self):
        if self.retired_ids is not None:
            return self.retired_ids
        return select(self.retired.organization_id) if self.retired is not None else None


# ---- applying states ---------------------------------------------------------------------------------
def _insert_if_absent(session, model, values):
    """INSERT .. ON CONFLICT DO NOTHING: two writers that both found no row (an event and a confirmed
    refusal, or two replicas) must not fail on the primary key; the second one then locks the first's."""
    session.execute(conflict_insert(session)(model).values(**values).on_conflict_do_nothing())


def _apply(session, model, key, state, columns):
    """Write `state` into the row of `key` (a tuple of primary-key values) unless the row is as new."""
    row = session.get(model, key, with_for_update=True)
    if row is None:
        names = model.__table__.primary_key.columns.keys()
        # Version -1: any state, even one of version 0 (memberships from before versions), is newer.
        _insert_if_absent(session, model, dict(zip(names, key, strict=True), version=-1,
                                               **{column: state[column] for column in columns}))
        row = session.get(model, key, with_for_update=True, populate_existing=True)
    if row.version >= state["version"]:
        return False                    # what we hold is as new or newer: a redelivery or a late event
    for column in columns:
        setattr(row, column, state[column])
    row.version = state["version"]
    return True


def apply_membership(session, models, state):
    return _apply(session, models.memberships, (state["organization_id"], state["user_id"]), state,
                  ("roles", "joined_at", "active"))


def apply_agent(session, models, state):
    return _apply(session, models.agents, (state["agent_id"],), state,
                  ("organization_id", "contributors", "assignees", "active"))


def retire_organization(session, models, organization_id):
    if models.retired is not None:
        _insert_if_absent(session, models.retired, {"organization_id": organization_id, "retired_at": utcnow()})


def apply_event_state(session, models, event):
    """Apply every state an event carries that this service keeps; returns how many were newer."""
    state = event.get("state") or {}
    applied = 0
    if models.memberships is not None:
        applied += sum(apply_membership(session, models, s) for s in state.get(MEMBERSHIPS) or [])
        if event["type"] == ORGANIZATION_DELETED:
            retire_organization(session, models, event["target"]["id"])
    if models.agents is not None:
        applied += sum(apply_agent(session, models, s) for s in state.get(AGENTS) or [])
    return applied


# ---- filling and rebuilding from the owner's snapshot -------------------------------------------------
SOURCES = {MEMBERSHIPS: ("members", "snapshot_memberships", apply_membership),
           AGENTS: ("orgs", "snapshot_agents", apply_agent)}


def kept(models):
    return [name for name, model in ((MEMBERSHIPS, models.memberships), (AGENTS, models.agents)) if model is not None]


def is_filled(store, models, name):
    with store.read() as session:
        return session.get(models.filled, name) is not None


def fill(store, models, name, rpc, replace=False):
    """Page through the owner's snapshot and apply it (newer versions win); with `replace`, the read model
    is emptied first (a rebuild from scratch). Marks it filled; returns how many states were applied."""
    service, method, apply = SOURCES[name]
    model = models.memberships if name == MEMBERSHIPS else models.agents
    if replace:
        with store.write() as session:
            session.execute(delete(model))
    applied, after = 0, None
    while True:
        page = getattr(getattr(rpc, service), method)(after=after, limit=SNAPSHOT_PAGE)
        with store.write() as session:
            applied += sum(apply(session, models, state) for state in page["items"])
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
