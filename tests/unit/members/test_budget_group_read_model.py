"""The members service's read model of which budget group each member is in (owned by credits,
common.readmodels kind budget_group_members): applied by version from credits' events through the one
reaction rule, filled from credits' snapshot, and the member list and a role edit answer it locally."""
import pytest

from common import readmodels
from common.errors import ServiceUnavailable
from common.event_types import BUDGET_GROUP_DELETED, MEMBER_BUDGET_GROUP_CHANGED
from common.events import change_event
from common.readmodels import BUDGET_GROUP_MEMBERS, budget_group_member_state
from services.credits import group_member_states
from services.members import memberships, reactions, users
from services.members.models import READ_MODELS, BudgetGroupMemberFact
from tests.unit.credits import domain
from tests.unit.members.helpers import ORG, join, person, written

GROUP, OTHER = "group-a", "group-b"


@pytest.fixture
def team(make_store):
    """dina founds ORG; mira joins as Member."""
    store = make_store("members")
    dina = person("dina")
    written(store, users.register_user, dina)
    written(store, memberships.add_founder, dina, ORG["id"])
    return store, dina, join(store, dina, "mira", ["member"])


def placed(user_id, group, version, type_=MEMBER_BUDGET_GROUP_CHANGED):
    return change_event(type_, "update", ORG["id"], {"id": "dina"}, "member", user_id,
                        state={BUDGET_GROUP_MEMBERS: [budget_group_member_state(ORG["id"], user_id, group, version)]})


def groups_listed(store, who):
    page = memberships.list_members(store, who, ORG["id"])
    return {m["user_id"]: m["budget_group_id"] for m in page["items"]}


def test_the_member_list_and_a_role_edit_answer_each_members_group_from_the_read_model(team):
    store, dina, mira = team
    assert groups_listed(store, dina) == {"dina": None, "mira": None}
    assert reactions.handle_change_event(store, placed("mira", GROUP, 1)) is True
    assert groups_listed(store, dina) == {"dina": None, "mira": GROUP}
    assert written(store, memberships.edit_roles, dina, ORG["id"], "mira", ["builder"])["budget_group_id"] == GROUP
    assert written(store, memberships.edit_roles, dina, ORG["id"], "dina", ["owner"])["budget_group_id"] is None


def test_newer_versions_win_and_redelivery_or_a_late_state_changes_nothing(team):
    store, dina, mira = team
    moved, taken_out = placed("mira", OTHER, 2), placed("mira", None, 3)
    assert reactions.handle_change_event(store, placed("mira", GROUP, 1)) is True
    assert reactions.handle_change_event(store, taken_out) is True
    assert reactions.handle_change_event(store, moved) is True        # late: recorded, but older
    assert reactions.handle_change_event(store, taken_out) is False   # redelivered: nothing runs
    assert groups_listed(store, dina)["mira"] is None
    with store.read() as session:
        assert session.get(BudgetGroupMemberFact, (ORG["id"], "mira")).version == 3


def test_a_deleted_group_takes_its_members_out_in_one_event(team):
    store, dina, mira = team
    reactions.handle_change_event(store, placed("mira", GROUP, 1))
    reactions.handle_change_event(store, placed("dina", GROUP, 4))
    deleted = change_event(BUDGET_GROUP_DELETED, "delete", ORG["id"], {"id": "dina"}, "budget_group", GROUP,
                           state={BUDGET_GROUP_MEMBERS: [budget_group_member_state(ORG["id"], "dina", None, 5),
                                                         budget_group_member_state(ORG["id"], "mira", None, 2)]})
    reactions.handle_change_event(store, deleted)
    assert groups_listed(store, dina) == {"dina": None, "mira": None}


def test_credits_states_fill_the_read_model_through_its_snapshot_and_equal_the_events(make_store, alice, team):
    """credits' own functions produce the states; the fill pages through its snapshot."""
    store, dina, mira = team
    credits = make_store("credits")
    a = domain.create_group(credits, alice, ORG["id"], {"name": "A"})["id"]
    b = domain.create_group(credits, alice, ORG["id"], {"name": "B"})["id"]
    for user_id, group in (("mira", a), ("dina", a), ("mira", b), ("zoe", b)):
        domain.assign_member(credits, alice, ORG["id"], group, user_id)

    class Credits:
        pages = []

        def snapshot_budget_group_members(self, after, limit):
            page = group_member_states.snapshot_group_members(credits, after, 2)   # pages of 2
            self.pages.append(page)
            return page

    rpc = type("Rpc", (), {"credits": Credits()})()
    assert not readmodels.is_filled(store, READ_MODELS, BUDGET_GROUP_MEMBERS)
    assert readmodels.fill(store, READ_MODELS, BUDGET_GROUP_MEMBERS, rpc) == 3
    assert len(Credits.pages) == 2 and readmodels.is_filled(store, READ_MODELS, BUDGET_GROUP_MEMBERS)
    assert groups_listed(store, dina) == {"dina": a, "mira": b}
    # The events that made them are older (or as old): applying them again changes nothing.
    with store.write() as session:
        assert readmodels.apply_event_state(session, READ_MODELS, placed("mira", a, 1)) == 0
    # A snapshot page's `after` is checked.
    with pytest.raises(Exception) as err:
        group_member_states.snapshot_group_members(credits, after=["only-one"])
    assert err.value.code == "invalid_type"


def test_ping_is_unavailable_until_the_read_model_was_filled(make_store, alice):
    from nameko.testing.services import worker_factory

    from services.members.service import MembersService
    service = worker_factory(MembersService, db=make_store("members"))
    service.fill.check.side_effect = ServiceUnavailable("filling", code="service_unavailable")
    with pytest.raises(ServiceUnavailable):
        service.ping()
    service.fill.check.side_effect = None
    assert service.ping() == "pong"
