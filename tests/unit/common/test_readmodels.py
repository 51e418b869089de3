"""common.readmodels: newer versions win, tombstones hold, retired organizations count for nothing,
refusals are confirmed with the owner, and a fill from a paged snapshot equals the incremental path."""
import importlib

import pytest
from sqlalchemy.orm import DeclarativeBase

from common import readmodels
from common.auth import Identity
from common.config import READ_MODEL_SERVICES, SERVICES
from common.db import Store
from common.errors import Forbidden, NotFound, ServiceUnavailable
from common.membership_facts import Memberships
from common.permissions import Action
from common.readmodels import (
    AgentAccessMixin,
    MembershipFactMixin,
    ReadModelFilledMixin,
    ReadModels,
    RetiredOrganizationMixin,
    agent_state,
    membership_state,
)


class Base(DeclarativeBase):
    pass


class Fact(MembershipFactMixin, Base):
    pass


class Retired(RetiredOrganizationMixin, Base):
    pass


class Access(AgentAccessMixin, Base):
    pass


class Filled(ReadModelFilledMixin, Base):
    pass


MODELS = ReadModels(filled=Filled, memberships=Fact, retired=Retired, agents=Access)
ALICE = Identity("alice", "alice@example.com", "Alice")


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'facts.sqlite'}")
    Base.metadata.create_all(store.engine)
    return store


def event(*memberships, agents=(), type="member.roles_changed", target="x"):
    return {"type": type, "target": {"type": "member", "id": target},
            "state": {"memberships": list(memberships), "agents": list(agents)}}


def apply(store, *events):
    with store.write() as session:
        return [readmodels.apply_event_state(session, MODELS, e) for e in events]


def rows(store):
    with store.read() as session:
        facts = [(f.organization_id, f.user_id, tuple(f.roles), f.active, f.version)
                 for f in session.query(Fact).order_by(Fact.organization_id, Fact.user_id)]
        access = [(a.agent_id, a.organization_id, tuple(a.contributors), tuple(a.assignees), a.active, a.version)
                  for a in session.query(Access).order_by(Access.agent_id)]
        return facts, access


def test_newer_versions_win_and_redelivery_or_reordering_changes_nothing(store):
    v1 = membership_state("o1", "alice", ["member"], 1)
    v2 = membership_state("o1", "alice", ["admin"], 2)
    assert apply(store, event(v1), event(v2)) == [1, 1]
    assert apply(store, event(v2), event(v1)) == [0, 0]          # redelivered, then late
    assert Memberships(store, MODELS).membership("o1", "alice")["roles"] == ["admin"]


def test_a_tombstone_is_not_undone_by_an_older_state(store):
    apply(store, event(membership_state("o1", "alice", ["member"], 1)),
          event(membership_state("o1", "alice", [], 2, active=False)),
          event(membership_state("o1", "alice", ["member"], 1)))
    with pytest.raises(NotFound):
        Memberships(store, MODELS).membership("o1", "alice")
    apply(store, event(membership_state("o1", "alice", ["builder"], 3)))     # joined again
    assert Memberships(store, MODELS).membership("o1", "alice")["roles"] == ["builder"]


def test_a_retired_organization_counts_for_nothing_whatever_arrives_later(store):
    apply(store, event(membership_state("o1", "alice", ["owner"], 1)),
          event(type="organization.deleted", target="o1"),
          event(membership_state("o1", "alice", ["owner", "admin"], 5)))
    facts = Memberships(store, MODELS)
    assert facts.memberships_of("alice") == []
    with pytest.raises(NotFound):
        facts.membership("o1", "alice")


def test_lookups_have_the_shapes_of_members_answers(store):
    apply(store, event(membership_state("o1", "alice", ["billing", "owner"], 1, joined_at="2026-11-01T00:00:00Z"),
                       membership_state("o1", "bob", ["member"], 1), membership_state("o2", "alice", ["member"], 4)))
    facts = Memberships(store, MODELS)
    assert facts.membership("o1", "alice") == {"organization_id": "o1", "user_id": "alice",
                                               "roles": ["owner", "billing"], "joined_at": "2026-11-01T00:00:00Z",
                                               "member_count": 2}
    assert sorted(m["organization_id"] for m in facts.memberships_of("alice")) == ["o1", "o2"]
    assert facts.roles_of("o1", ["alice", "bob", "carol"]) == {"alice": ["owner", "billing"], "bob": ["member"]}
    assert facts.authorize(ALICE, "o1", Action.VIEW_AUDIT)["roles"] == ["owner", "billing"]


class Owner:
    """A members service answering membership_states from a dict, counting its calls."""

    def __init__(self, states=(), error=None):
        self.states, self.error, self.calls = list(states), error, []
        self.membership_states = self
        self.service_name = "members"

    def call_async(self, organization_id, user_ids):
        self.calls.append((organization_id, user_ids))
        owner = self

        class Reply:
            def result(self):
                if owner.error:
                    raise owner.error
                return [s for s in owner.states if s["organization_id"] == organization_id
                        and s["user_id"] in user_ids]
        return Reply()


def test_grants_come_from_local_facts_without_asking_the_owner(store):
    apply(store, event(membership_state("o1", "alice", ["admin"], 1)))
    owner = Owner()
    Memberships(store, MODELS, lambda: owner).authorize(ALICE, "o1", Action.VIEW_AUDIT)
    assert owner.calls == []


def test_a_refusal_is_confirmed_with_the_owner_first(store):
    owner = Owner([membership_state("o1", "alice", ["admin"], 3)])   # joined a moment ago
    facts = Memberships(store, MODELS, lambda: owner)
    assert facts.authorize(ALICE, "o1", Action.VIEW_AUDIT)["roles"] == ["admin"]
    assert owner.calls == [("o1", ["alice"])]
    apply(store, event(membership_state("o1", "alice", ["member"], 2)))  # the late event: older, ignored
    assert facts.membership("o1", "alice")["roles"] == ["admin"]


def test_roles_that_do_not_allow_are_confirmed_then_refused(store):
    apply(store, event(membership_state("o1", "alice", ["member"], 1)))
    owner = Owner([membership_state("o1", "alice", ["member"], 1)])
    with pytest.raises(Forbidden):
        Memberships(store, MODELS, lambda: owner).authorize(ALICE, "o1", Action.VIEW_AUDIT)
    assert len(owner.calls) == 1


def test_with_the_owner_down_the_local_answer_stands(store):
    owner = Owner(error=ServiceUnavailable("The members service is not running."))
    with pytest.raises(NotFound):
        Memberships(store, MODELS, lambda: owner).membership("o1", "alice")


class Snapshot:
    """An owner's paged snapshot, as members.snapshot_memberships / orgs.snapshot_agents answer."""

    def __init__(self, memberships=(), agents=(), page=2):
        self.members = self.orgs = self
        self.memberships, self.agents, self.page = list(memberships), list(agents), page

    def _page(self, items, key, after):
        after = tuple(after) if isinstance(after, list) else after
        rest = [s for s in sorted(items, key=key) if after is None or key(s) > after]
        chunk = rest[:self.page]
        last = key(chunk[-1]) if chunk else None
        return {"items": chunk, "next_after": (list(last) if isinstance(last, tuple) else last)
                if len(rest) > self.page else None}

    def snapshot_memberships(self, after=None, limit=500):
        return self._page(self.memberships, lambda s: (s["organization_id"], s["user_id"]), after)

    def snapshot_agents(self, after=None, limit=500):
        return self._page(self.agents, lambda s: s["agent_id"], after)


def test_a_rebuild_from_the_snapshot_equals_the_incremental_path(store, tmp_path):
    history = [membership_state("o1", "alice", ["member"], 1), membership_state("o1", "bob", ["member"], 1),
               membership_state("o1", "alice", ["admin"], 2), membership_state("o2", "carol", ["owner"], 1),
               membership_state("o1", "bob", [], 2, active=False), membership_state("o3", "dan", ["member"], 7)]
    agents = [agent_state("a1", "o1", ["alice"], [], 1), agent_state("a1", "o1", ["alice"], ["bob"], 2),
              agent_state("a2", "o2", [], ["carol"], 1)]
    apply(store, *[event(s) for s in history], *[event(agents=[a]) for a in agents])
    incremental = rows(store)

    current = {(s["organization_id"], s["user_id"]): s for s in history}
    live = {a["agent_id"]: a for a in agents}
    rebuilt = Store(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}")
    Base.metadata.create_all(rebuilt.engine)
    apply(rebuilt, event(membership_state("o9", "ghost", ["member"], 1)))   # stale, gone from the owner
    source = Snapshot([s for s in current.values() if s["active"]], live.values())
    assert readmodels.fill(rebuilt, MODELS, readmodels.MEMBERSHIPS, source, replace=True) == 3
    assert readmodels.fill(rebuilt, MODELS, readmodels.AGENTS, source, replace=True) == 2
    assert rows(rebuilt)[0] == [r for r in incremental[0] if r[3]]          # the same live rows, no tombstones
    assert rows(rebuilt)[1] == incremental[1]
    assert readmodels.is_filled(rebuilt, MODELS, readmodels.MEMBERSHIPS)


def test_every_read_model_fills_from_a_system_only_snapshot_of_another_service():
    """common.config names the services that keep read models; each kind they keep is owned by another
    service, whose snapshot RPC answers only the system. Owners keep read models of each other (members
    and credits), so no start order can put every owner first: the fill runs in the background and
    retries until the owner answers (ReadModelFill), and services start in any order."""
    from common.commands import SYSTEM, declaration_of
    modules = {name: importlib.import_module(f"services.{name}.models") for name in SERVICES}
    with_models = {name: module.READ_MODELS for name, module in modules.items() if hasattr(module, "READ_MODELS")}
    assert tuple(with_models) == READ_MODEL_SERVICES
    for name, models in with_models.items():
        assert readmodels.kept(models), name
        for kept in readmodels.kept(models):
            owner, method = readmodels.SOURCES[kept]
            assert owner in SERVICES and owner != name, (name, kept, owner)
            service = importlib.import_module(f"services.{owner}.service")
            [service_class] = [c for c in vars(service).values() if getattr(c, "name", None) == owner]
            assert declaration_of(getattr(service_class, method)).access is SYSTEM, (owner, method)
