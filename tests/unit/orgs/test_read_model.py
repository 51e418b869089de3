"""orgs as a consumer of members' facts (its read model, common.readmodels): every consumed event's
state is applied with the reaction, newer versions win, redelivery and reordering change nothing,
tombstones hold, and a rebuild from members' snapshot gives the same rows as the events did. And the
other way round: a read model of agents' access fed by orgs' events equals one filled from
snapshot_agents."""
import pytest
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase

from common import readmodels
from common.db import Store
from common.errors import NotFound
from common.events import change_event
from common.membership_facts import Memberships
from common.migrate import upgrade
from common.readmodels import AgentAccessMixin, ReadModelFilledMixin, ReadModels, membership_state
from services.orgs import agent_people, agent_states, agent_transfer, agents, organizations, reactions
from services.orgs.models import READ_MODELS, MembershipFact, ProcessedEvent
from tests.unit.orgs.helpers import BUILDER, MEMBER, OWNER, committed, events, new_agent

ACTOR = {"id": "alice", "email": "alice@example.com"}


def members_event(kind, org, user_id, *states, after=None):
    action = {"member.added": "create", "member.removed": "delete", "member.left": "delete"}.get(kind, "update")
    target = ("invitation", "inv-1") if kind == "invitation.accepted" else ("member", user_id)
    return change_event(kind, action, org, ACTOR, *target, after=after,
                        state={"memberships": list(states)} if states else None)


def facts(store):
    with store.read() as session:
        return [(f.organization_id, f.user_id, tuple(f.roles), f.active, f.version)
                for f in session.scalars(select(MembershipFact).order_by(MembershipFact.organization_id,
                                                                          MembershipFact.user_id))]


def memberships(store):
    return Memberships(store, READ_MODELS)


def processed(store):
    with store.read() as session:
        return session.scalars(select(ProcessedEvent.type)).all()


def test_every_carrier_feeds_the_read_model(store, org):
    added = members_event("member.added", org, "bob", membership_state(org, "bob", ["member"], 1))
    moved = members_event("billing_transfer.accepted", org, "bob", membership_state(org, "alice", ["owner"], 2),
                          membership_state(org, "bob", ["member", "billing"], 2))
    assert reactions.handle_change_event(store, added) is True
    assert reactions.handle_change_event(store, moved) is True
    assert memberships(store).roles_of(org, ["alice", "bob"]) == {"alice": ["owner"], "bob": ["member", "billing"]}
    # These two only update the read model: no effects, no events of orgs; recorded all the same.
    assert sorted(processed(store)) == ["billing_transfer.accepted", "member.added"]
    assert [e["type"] for e in events(store, prefix="")] == ["organization.created"]


def test_a_newer_version_wins_and_a_redelivered_or_older_event_changes_nothing(store, org):
    v1 = members_event("member.added", org, "bob", membership_state(org, "bob", ["member"], 1))
    v2 = members_event("member.roles_changed", org, "bob", membership_state(org, "bob", ["admin"], 2),
                       after={"roles": ["admin"]})
    reactions.handle_change_event(store, v1)
    reactions.handle_change_event(store, v2)
    held = facts(store)
    assert held == [(org, "bob", ("admin",), True, 2)]
    assert reactions.handle_change_event(store, v2) is False          # redelivered
    assert reactions.handle_change_event(store, v1) is False          # late, out of order
    assert facts(store) == held


def test_out_of_order_events_end_in_the_newest_state(store, org):
    v2 = members_event("member.roles_changed", org, "bob", membership_state(org, "bob", ["builder"], 2),
                       after={"roles": ["builder"]})
    v1 = members_event("member.added", org, "bob", membership_state(org, "bob", ["member"], 1))
    reactions.handle_change_event(store, v2)
    reactions.handle_change_event(store, v1)
    assert facts(store) == [(org, "bob", ("builder",), True, 2)]


def test_a_tombstone_is_not_undone_by_an_older_state(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    committed(store, agent_people.assign, alice, OWNER, org, agent, "bob", MEMBER)
    added = members_event("member.added", org, "bob", membership_state(org, "bob", ["member"], 1))
    removed = members_event("member.removed", org, "bob", membership_state(org, "bob", [], 2, active=False))
    reactions.handle_change_event(store, added)
    assert reactions.handle_change_event(store, removed) is True
    reactions.handle_change_event(store, members_event(
        "member.roles_changed", org, "bob", membership_state(org, "bob", ["admin"], 1), after={"roles": ["admin"]}))
    assert facts(store) == [(org, "bob", (), False, 2)]
    with pytest.raises(NotFound):
        memberships(store).membership(org, "bob")
    # the removal's effects came with its state, in one transaction
    assert events(store)[-1]["type"] == "agent.access_revoked"
    rejoined = members_event("invitation.accepted", org, "bob", membership_state(org, "bob", ["member"], 3),
                             after={"user_id": "bob", "roles": ["member"], "agent_ids": [agent]})
    reactions.handle_change_event(store, rejoined)
    assert memberships(store).membership(org, "bob")["roles"] == ["member"]
    assert events(store)[-1]["type"] == "agent.assignee_added"


def test_a_redelivered_event_with_effects_applies_neither_twice(store, org, alice):
    agent = new_agent(store, org, alice)["id"]
    accepted = members_event("invitation.accepted", org, "bob", membership_state(org, "bob", ["member"], 1),
                             after={"user_id": "bob", "roles": ["member"], "agent_ids": [agent]})
    assert reactions.handle_change_event(store, accepted) is True
    committed(store, agent_people.unassign, alice, OWNER, org, agent, "bob")
    assert reactions.handle_change_event(store, accepted) is False
    assert [e["type"] for e in events(store)].count("agent.assignee_added") == 1
    assert facts(store) == [(org, "bob", ("member",), True, 1)]


# ---- rebuilds: a fill from the owner's snapshot equals the incremental path ---------------------------
class Snapshot:
    """An owner answering a paged snapshot, as members.snapshot_memberships / orgs.snapshot_agents do."""

    def __init__(self, memberships=(), agents_page=None, page=2):
        self.members = self.orgs = self
        self.memberships, self.agents_page, self.page, self.calls = list(memberships), agents_page, page, 0

    def snapshot_memberships(self, after=None, limit=500):
        self.calls += 1
        key = lambda s: [s["organization_id"], s["user_id"]]  # noqa: E731
        rest = [s for s in sorted(self.memberships, key=key) if after is None or key(s) > list(after)]
        items = rest[:self.page]
        return {"items": items, "next_after": key(items[-1]) if len(rest) > self.page else None}

    def snapshot_agents(self, after=None, limit=500):
        self.calls += 1
        return self.agents_page(after=after, limit=self.page)


HISTORY = [("member.added", "o1", "alice", ["owner"], 1), ("member.added", "o1", "bob", ["member"], 1),
           ("member.roles_changed", "o1", "bob", ["builder"], 2), ("member.added", "o2", "carol", ["owner"], 1),
           ("member.added", "o1", "dan", ["member"], 1), ("member.left", "o1", "dan", [], 2),
           ("billing_transfer.accepted", "o2", "carol", ["owner", "billing"], 3),
           ("member.added", "o3", "erin", ["admin"], 4)]


def test_a_rebuild_from_members_snapshot_gives_the_same_rows(store, tmp_path):
    for kind, org, user_id, roles, version in HISTORY:
        state = membership_state(org, user_id, roles, version, active=kind != "member.left")
        reactions.handle_change_event(store, members_event(kind, org, user_id, state, after={"roles": roles}))
    incremental = facts(store)

    current = {}
    for _, org, user_id, roles, version in HISTORY:
        current[(org, user_id)] = membership_state(org, user_id, roles, version)
    current.pop(("o1", "dan"))                 # members' snapshot has current memberships only
    url = f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"
    upgrade("orgs", url)
    rebuilt = Store(url)
    with rebuilt.write() as session:           # a stale fact the owner no longer has
        readmodels.apply_membership(session, READ_MODELS, membership_state("o9", "ghost", ["member"], 1))
    source = Snapshot(current.values())
    assert readmodels.fill(rebuilt, READ_MODELS, readmodels.MEMBERSHIPS, source, replace=True) == 4
    assert source.calls == 2
    assert facts(rebuilt) == [row for row in incremental if row[3]]     # the same live rows, no tombstone
    assert readmodels.is_filled(rebuilt, READ_MODELS, readmodels.MEMBERSHIPS)


class AccessBase(DeclarativeBase):
    pass


class AgentAccess(AgentAccessMixin, AccessBase):
    pass


class AccessFilled(ReadModelFilledMixin, AccessBase):
    pass


ACCESS = ReadModels(filled=AccessFilled, agents=AgentAccess)


def access_rows(store):
    with store.read() as session:
        return [(a.agent_id, a.organization_id, tuple(a.contributors), tuple(a.assignees), a.active, a.version)
                for a in session.scalars(select(AgentAccess).order_by(AgentAccess.agent_id))]


def test_orgs_events_and_snapshot_agents_build_the_same_agent_access(store, org, alice, bob, tmp_path):
    """What credits keeps: fed by orgs' events one by one (shuffled, some twice) or filled from
    snapshot_agents, the rows are the same."""
    dest = committed(store, organizations.create_collective, alice, "Destination")["id"]
    scribe = new_agent(store, org, bob, BUILDER, name="Scribe")["id"]
    desk = new_agent(store, org, alice, name="Desk")["id"]
    gone = new_agent(store, org, alice, name="Gone")["id"]
    committed(store, agent_people.assign, alice, OWNER, org, desk, "mira", MEMBER)
    committed(store, agent_people.add_contributor, alice, OWNER, org, scribe, "carl", BUILDER)
    committed(store, agent_people.remove_contributor, alice, OWNER, org, scribe, bob.id)
    committed(store, agent_transfer.transfer_agent, alice, OWNER, OWNER, org, desk, dest, False, {"mira": MEMBER})
    committed(store, agents.delete_agent, alice, OWNER, org, gone)

    def read_model(name):
        target = Store(f"sqlite:///{tmp_path / name}.sqlite")
        AccessBase.metadata.create_all(target.engine)
        return target
    incremental = read_model("incremental")
    delivered = events(store)
    delivered = delivered[::-1] + delivered           # every event late once, then again in order
    with incremental.write() as session:
        for event in delivered:
            readmodels.apply_event_state(session, ACCESS, event)
    rebuilt = read_model("rebuilt")
    assert readmodels.fill(rebuilt, ACCESS, readmodels.AGENTS,
                           Snapshot(agents_page=lambda **page: agent_states.snapshot(store, **page)), replace=True) == 3
    assert access_rows(rebuilt) == access_rows(incremental)
    assert {row[0]: row[4] for row in access_rows(rebuilt)} == {scribe: True, desk: True, gone: False}
