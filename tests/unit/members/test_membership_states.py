"""Membership versions and states (services/members/membership_states.py): every change's event carries
the membership's full state with a version that only grows; the snapshot and the confirm lookup serve
the same states to other services' read models."""
from types import SimpleNamespace

import pytest
from nameko.testing.services import worker_factory

from common.auth import SYSTEM_ACTOR, AuthContext, Identity, context_data
from common.errors import Forbidden, ValidationFailed
from common.readmodels import membership_state
from services.members import billing_transfers, invitations, membership_states, memberships, reactions, users
from services.members.models import Membership, MembershipVersion
from services.members.service import MembersService
from tests.unit.members.helpers import ORG, events, join, organization_deleted, person, written


def last_event(store, type):
    return [e for e in events(store) if e["type"] == type][-1]


def carried(event):
    """{user_id: (roles, active, version)} of the membership states an event carries."""
    assert set(event["state"]) == {"memberships"}
    return {s["user_id"]: (s["roles"], s["active"], s["version"]) for s in event["state"]["memberships"]}


@pytest.fixture
def team(make_store):
    """dina founds the organization (Owner, Billing); mira joins as Member."""
    store = make_store("members")
    dina = person("dina")
    written(store, users.register_user, dina)
    written(store, memberships.add_founder, dina, ORG["id"])
    return store, dina, join(store, dina, "mira", ["member"])


def version(store, user_id, organization_id=ORG["id"]):
    with store.read() as session:
        return membership_states.version_of(session, organization_id, user_id)


# ---- versions and the states events carry ------------------------------------------------------------
def test_the_founder_event_and_answer_carry_the_founder_state(make_store, alice):
    store = make_store("members")
    answer = written(store, memberships.add_founder, alice, "org-9")
    assert answer["roles"] == ["owner", "billing"] and answer["member_count"] == 1     # the keys stay
    state = answer["state"]
    assert state == membership_state("org-9", "alice", ["owner", "billing"], 1, joined_at=answer["joined_at"])
    event = last_event(store, "member.added")
    assert event["state"] == {"memberships": [state]} and event["after"]["roles"] == ["owner", "billing"]
    assert written(store, memberships.add_founder, alice, "org-9") == answer    # a retry: the same state
    # ... and no new version
    assert version(store, "alice", "org-9") == 1


def test_an_accepted_invitation_carries_the_new_membership(team):
    store, dina, mira = team
    event = last_event(store, "invitation.accepted")
    assert carried(event) == {"mira": (["member"], True, 1)}
    assert event["state"]["memberships"][0]["joined_at"] is not None
    assert event["after"]["roles"] == ["member"]          # before/after as they were


def test_a_role_edit_carries_the_new_roles_and_an_unchanged_edit_no_version(team):
    store, dina, mira = team
    written(store, memberships.edit_roles, dina, ORG["id"], "mira", ["builder", "member"])
    event = last_event(store, "member.roles_changed")
    assert carried(event) == {"mira": (["builder", "member"], True, 2)}
    assert event["before"] == {"roles": ["member"]} and event["after"] == {"roles": ["builder", "member"]}
    written(store, memberships.edit_roles, dina, ORG["id"], "mira", ["member", "builder"])     # no change, no event
    assert version(store, "mira") == 2


@pytest.mark.parametrize("who, event_type", [("dina", "member.removed"), ("mira", "member.left")])
def test_removal_and_leaving_carry_a_tombstone(team, who, event_type):
    store, dina, mira = team
    written(store, memberships.remove_member, dina if who == "dina" else mira, ORG["id"], "mira")
    event = last_event(store, event_type)
    assert carried(event) == {"mira": ([], False, 2)}
    assert event["state"]["memberships"][0]["joined_at"] is None
    assert event["before"]["roles"] == ["member"]


def test_versions_grow_across_removal_and_adding_again_and_outlive_the_organization(team):
    store, dina, mira = team
    written(store, memberships.remove_member, mira, ORG["id"], "mira")
    join(store, dina, "mira", ["builder"])
    assert carried(last_event(store, "invitation.accepted")) == {"mira": (["builder"], True, 3)}
    written(store, memberships.edit_roles, dina, ORG["id"], "mira", ["member"])
    assert carried(last_event(store, "member.roles_changed")) == {"mira": (["member"], True, 4)}
    reactions.handle_change_event(store, organization_deleted(ORG["id"]))
    assert version(store, "mira") == 4 and version(store, "dina") == 1     # version rows are never deleted


def test_an_accepted_billing_transfer_carries_both_members(team):
    store, dina, mira = team
    transfer = written(store, billing_transfers.start_billing_transfer, dina, ORG["id"], "mira")
    written(store, billing_transfers.accept_billing_transfer, mira, ORG["id"], transfer["id"])
    event = last_event(store, "billing_transfer.accepted")
    assert carried(event) == {"dina": (["owner"], True, 2), "mira": (["member", "billing"], True, 2)}
    assert event["before"]["billing_holder"] == "dina" and event["after"]["billing_holder"] == "mira"


def test_only_membership_changes_carry_state(team):
    store, dina, mira = team
    transfer = written(store, billing_transfers.start_billing_transfer, dina, ORG["id"], "mira")
    written(store, billing_transfers.cancel_billing_transfer, dina, ORG["id"], transfer["id"])
    written(store, invitations.invite, dina, ORG, "new@example.com", ["member"])
    carriers = {"member.added", "invitation.accepted", "member.roles_changed", "member.removed", "member.left",
                "billing_transfer.accepted"}
    for event in events(store):
        assert ("state" in event and event["state"] is not None) == (event["type"] in carriers), event["type"]


# ---- the snapshot ----------------------------------------------------------------------------------
@pytest.fixture
def spread(team):
    """Five memberships over three organizations; mira's in org-1 is from before versions (version 0)."""
    store, dina, mira = team
    written(store, memberships.add_founder, dina, "org-0")
    written(store, memberships.add_founder, person("zoe"), "org-2")
    written(store, memberships.add_founder, mira, "org-2x")
    with store.write() as session:
        session.delete(session.get(MembershipVersion, (ORG["id"], "mira")))
    return store


def all_pages(store, limit):
    pages, after = [], None
    while True:
        page = membership_states.snapshot_memberships(store, after, limit)
        pages.append(page)
        after = page["next_after"]
        if after is None:
            return pages


def test_the_snapshot_pages_through_every_membership_in_order(spread):
    keys = [("org-0", "dina"), ("org-1", "dina"), ("org-1", "mira"), ("org-2", "zoe"), ("org-2x", "mira")]
    whole = membership_states.snapshot_memberships(spread)
    assert [(s["organization_id"], s["user_id"]) for s in whole["items"]] == keys and whole["next_after"] is None
    assert {(s["user_id"], s["organization_id"]): s["version"] for s in whole["items"]}[("mira", "org-1")] == 0
    assert all(s["active"] for s in whole["items"])
    pages = all_pages(spread, 2)
    assert [p["next_after"] for p in pages] == [["org-1", "dina"], ["org-2", "zoe"], None]
    assert [s for p in pages for s in p["items"]] == whole["items"]
    exact = all_pages(spread, 5)                 # a full last page says there is no more
    assert len(exact) == 1 and exact[0]["next_after"] is None
    assert membership_states.snapshot_memberships(spread, ["org-9", ""]) == {"items": [], "next_after": None}


def test_the_snapshot_leaves_out_removed_memberships(team):
    store, dina, mira = team
    written(store, memberships.remove_member, mira, ORG["id"], "mira")
    items = membership_states.snapshot_memberships(store)["items"]
    assert [(s["user_id"], s["version"]) for s in items] == [("dina", 1)]


@pytest.mark.parametrize("limit", [0, 1001, -1, "5", True, 2.5])
def test_the_snapshot_limit_is_1_to_1000(team, limit):
    with pytest.raises(ValidationFailed) as err:
        membership_states.snapshot_memberships(team[0], None, limit)
    assert err.value.field == "limit"


@pytest.mark.parametrize("after", ["org-1", ["org-1"], ["org-1", 5], {"org-1": "dina"}, ["a", "b", "c"]])
def test_the_snapshot_after_is_the_pair_it_handed_out(team, after):
    with pytest.raises(ValidationFailed) as err:
        membership_states.snapshot_memberships(team[0], after)
    assert (err.value.code, err.value.field) == ("invalid_type", "after")


# ---- the confirm lookup ------------------------------------------------------------------------------
def test_membership_states_answers_current_members_with_their_versions(spread):
    written(spread, memberships.remove_member, person("dina"), ORG["id"], "mira")
    join(spread, person("dina"), "mira", ["builder"])      # back, continuing from version 0 + removal
    join(spread, person("dina"), "budi", ["member"])
    written(spread, memberships.remove_member, person("budi"), ORG["id"], "budi")
    found = membership_states.membership_states(spread, ORG["id"], ["mira", "zoe", "budi", "nobody", "dina", "dina"])
    assert [(s["user_id"], s["roles"], s["version"], s["active"]) for s in found] == [
        ("dina", ["owner", "billing"], 1, True), ("mira", ["builder"], 2, True)]
    assert membership_states.membership_states(spread, ORG["id"], []) == []
    assert membership_states.membership_states(spread, "org-unknown", ["dina"]) == []


def test_membership_states_of_a_membership_from_before_versions_is_version_0(spread):
    [state] = membership_states.membership_states(spread, ORG["id"], ["mira"])
    assert state["version"] == 0 and state["roles"] == ["member"]


@pytest.mark.parametrize("organization_id, user_ids, field", [
    (None, ["dina"], "organization_id"), (5, ["dina"], "organization_id"), ("org-1", None, "user_ids"),
    ("org-1", "dina", "user_ids"), ("org-1", ("dina",), "user_ids"), ("org-1", ["dina", 5], "user_ids"),
    ("org-1", [""], "user_ids"), ("org-1", ["x" * 129], "user_ids"),
    ("org-1", ["u"] * (membership_states.MAX_STATES_LOOKUP + 1), "user_ids")])
def test_membership_states_validates_its_arguments(team, organization_id, user_ids, field):
    with pytest.raises(ValidationFailed) as err:
        membership_states.membership_states(team[0], organization_id, user_ids)
    assert (err.value.code, err.value.field) == ("invalid_type", field)


# ---- the entrypoints: who may call them --------------------------------------------------------------
def worker(store, identity):
    """A worker whose Auth reads real context data (the other dependencies are mocks)."""
    return worker_factory(MembersService, db=store, auth=AuthContext(SimpleNamespace(data=context_data(identity))))


SYSTEM = Identity(SYSTEM_ACTOR["id"], "", "")


def test_only_the_system_may_take_a_snapshot(team):
    store, dina, mira = team
    with pytest.raises(Forbidden) as err:
        worker(store, dina).snapshot_memberships()
    assert err.value.code == "system_only"
    page = worker(store, SYSTEM).snapshot_memberships(after=None, limit=1)
    assert [s["user_id"] for s in page["items"]] == ["dina"] and page["next_after"] == ["org-1", "dina"]


def test_states_are_told_to_members_and_the_system_only(team):
    store, dina, mira = team
    outsider = person("eve")
    with store.read() as session:
        assert session.get(Membership, (ORG["id"], "eve")) is None
    for caller in (mira, SYSTEM):
        found = worker(store, caller).membership_states(ORG["id"], ["mira", "eve"])
        assert [(s["user_id"], s["version"]) for s in found] == [("mira", 1)]
    assert worker(store, outsider).membership_states(ORG["id"], ["mira", "eve"]) == []
    with pytest.raises(ValidationFailed):
        worker(store, outsider).membership_states(ORG["id"], "mira")


def test_the_add_founder_entrypoint_answers_the_state(make_store, alice):
    answer = worker(make_store("members"), alice).add_founder("org-5")
    assert answer["state"]["version"] == 1 and answer["state"]["roles"] == ["owner", "billing"]
    assert {"organization_id", "user_id", "roles", "member_count", "joined_at"} <= set(answer)
