"""The kinds of facts read models keep (common.readmodels): the state each kind's events carry, the table
a consuming service declares for it, and who owns it (which service, which snapshot RPC fills it).

Every kind is applied by the same rule (common.readmodels.apply_state): a state is written into the row
of its key only if its version is newer than the one held; a removal is a tombstone (a newer version
saying the thing is gone), so an older state arriving late cannot bring it back.

- memberships, owned by members: {"organization_id", "user_id", "roles", "joined_at", "active", "version"}
- agents' access, owned by orgs: {"agent_id", "organization_id", "contributors", "assignees", "active",
  "version"}
- budget group members, owned by credits: {"organization_id", "user_id", "budget_group_id", "version"}
  (which group a member of an organization is in; `budget_group_id` None: in none)
- organizations, owned by orgs: {"organization_id", "name", "type", "created_at", "active", "version"}
  (what the organization list shows and sorts by; a deleted one is a tombstone, active false)
"""
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from common.timeutil import iso, parse_iso

MEMBERSHIPS = "memberships"
AGENTS = "agents"
BUDGET_GROUP_MEMBERS = "budget_group_members"
ORGANIZATIONS = "organizations"


# ---- the states events carry -------------------------------------------------------------------------
def membership_state(organization_id, user_id, roles, version, joined_at=None, active=True):
    return {"organization_id": organization_id, "user_id": user_id, "roles": list(roles),
            "joined_at": iso(joined_at) if joined_at is not None and not isinstance(joined_at, str) else joined_at,
            "active": bool(active), "version": int(version)}


def agent_state(agent_id, organization_id, contributors, assignees, version, active=True):
    return {"agent_id": agent_id, "organization_id": organization_id, "contributors": sorted(contributors),
            "assignees": sorted(assignees), "active": bool(active), "version": int(version)}


def budget_group_member_state(organization_id, user_id, budget_group_id, version):
    """Which budget group a member is in (None: in none, also the tombstone of one taken out)."""
    return {"organization_id": organization_id, "user_id": user_id, "budget_group_id": budget_group_id,
            "version": int(version)}


def organization_state(organization_id, name, type, created_at, version, active=True):
    return {"organization_id": organization_id, "name": name, "type": type,
            "created_at": created_at if isinstance(created_at, str) else iso(created_at),
            "active": bool(active), "version": int(version)}


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


class BudgetGroupMemberFactMixin:
    """Which budget group each member of an organization is in (owned by credits)."""
    __tablename__ = "budget_group_member_facts"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    budget_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version: Mapped[int] = mapped_column(Integer)


class OrganizationFactMixin:
    """Each organization's name, type and creation time, and whether it is alive (owned by orgs)."""
    __tablename__ = "organization_facts"

    organization_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    created_at = mapped_column(DateTime(timezone=True), nullable=False)
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
class Kind:
    """One kind of fact: `name` is the key of its states in an event's `state` and its row in
    read_models_filled; `table` the ReadModels attribute of its table; `key` the state's fields that are
    the row's primary key, `columns` the others kept; `owner`.`snapshot` the RPC that serves them all;
    `load`, if given, turns a state into the row's column values (e.g. ISO text into a datetime)."""
    name: str
    table: str
    key: tuple
    columns: tuple
    owner: str
    snapshot: str
    load: Callable | None = None

    def values(self, state):
        values = {column: state[column] for column in self.columns}
        return self.load(values) if self.load is not None else values


def _organization_values(values):
    return dict(values, created_at=parse_iso(values["created_at"]))


KINDS = (
    Kind(MEMBERSHIPS, "memberships", ("organization_id", "user_id"), ("roles", "joined_at", "active"),
         "members", "snapshot_memberships"),
    Kind(AGENTS, "agents", ("agent_id",), ("organization_id", "contributors", "assignees", "active"),
         "orgs", "snapshot_agents"),
    Kind(BUDGET_GROUP_MEMBERS, "budget_group_members", ("organization_id", "user_id"), ("budget_group_id",),
         "credits", "snapshot_budget_group_members"),
    Kind(ORGANIZATIONS, "organizations", ("organization_id",), ("name", "type", "created_at", "active"),
         "orgs", "snapshot_organizations", load=_organization_values),
)
KIND = {kind.name: kind for kind in KINDS}


@dataclass(frozen=True)
class ReadModels:
    """The read-model tables of one service (None for what it does not keep)."""
    filled: type
    memberships: type | None = None
    retired: type | None = None
    agents: type | None = None
    budget_group_members: type | None = None
    organizations: type | None = None
    # A select of the ids of organizations whose memberships count for nothing, for a service that knows
    # its deleted organizations itself (orgs); by default those retired here (`retired`).
    retired_ids: object = None

    def retired_organizations(self):
        if self.retired_ids is not None:
            return self.retired_ids
        return select(self.retired.organization_id) if self.retired is not None else None

    def table(self, name):
        """The table of the kind `name`, or None if this service does not keep it."""
        return getattr(self, KIND[name].table)

    def kept(self):
        """The kinds this service keeps."""
        return [kind for kind in KINDS if getattr(self, kind.table) is not None]
