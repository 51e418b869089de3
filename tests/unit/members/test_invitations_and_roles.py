"""Members, invitations and billing transfers as plain domain functions on a real (SQLite) database,
with time passed in rather than slept through."""
from datetime import timedelta

import pytest

from common.auth import Identity
from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from common.timeutil import iso, utcnow
from services.members import billing_transfers, invitations, memberships, users
from tests.unit.members.helpers import ORG, events, join, members_worker, person, written


@pytest.fixture
def team(make_store):
    """dina founds the organization; each other person joins through an invitation with one role."""
    store = make_store("members")
    dina = person("dina")
    for who in (dina,):
        written(store, users.register_user, who)
    written(store, memberships.add_founder, dina, ORG["id"])
    people = {"dina": dina}
    for name, role in [("olga", "owner"), ("adam", "admin"), ("budi", "builder"), ("mira", "member")]:
        people[name] = join(store, dina, name, [role])
    return store, people


def roles_of(store, name, org=ORG["id"]):
    return memberships.membership_of(store, org, name)["roles"]


def test_accepting_joins_with_the_preset_roles_and_one_event_per_change(team):
    store, p = team
    assert roles_of(store, "budi") == ["builder"]
    types = [e["type"] for e in events(store) if e["type"].startswith("invitation")]
    assert types == ["invitation.created", "invitation.accepted"] * 4


@pytest.mark.parametrize("roles", [["billing"], ["owner", "billing"]])
def test_billing_is_never_granted_by_invitation(team, roles):
    store, p = team
    with pytest.raises(ValidationFailed) as err:
        written(store, invitations.invite, p["dina"], ORG, "new@example.com", roles)
    assert err.value.code == "billing_by_transfer_only"


@pytest.mark.parametrize("roles", [["owner"], ["admin"]])
def test_an_admin_grants_only_builder_or_member(team, roles):
    store, p = team
    with pytest.raises(Forbidden) as err:
        written(store, invitations.invite, p["adam"], ORG, "new@example.com", roles)
    assert err.value.code == "role_not_grantable"
    written(store, invitations.invite, p["adam"], ORG, "new@example.com", ["builder", "member"])


def test_an_admin_cannot_touch_owners_or_other_admins(team):
    store, p = team
    other_admin = join(store, p["dina"], "anna", ["admin"])
    for target in ("olga", other_admin.id):
        with pytest.raises(Forbidden):
            written(store, memberships.edit_roles, p["adam"], ORG["id"], target, ["member"])
        with pytest.raises(Forbidden):
            written(store, memberships.remove_member, p["adam"], ORG["id"], target)
    with pytest.raises(Forbidden):   # nor make someone an Admin
        written(store, memberships.edit_roles, p["adam"], ORG["id"], "mira", ["admin"])
    assert written(store, memberships.edit_roles, p["adam"], ORG["id"], "mira", ["builder"])["roles"] == ["builder"]


def test_the_last_owner_cannot_be_demoted_or_leave(make_store):
    store = make_store("members")
    dina = person("dina")
    written(store, users.register_user, dina)
    written(store, memberships.add_founder, dina, ORG["id"])
    with pytest.raises(Conflict) as err:
        written(store, memberships.edit_roles, dina, ORG["id"], "dina", ["admin"])
    assert err.value.code == "last_owner"
    assert roles_of(store, "dina") == ["owner", "billing"]


def test_role_edits_keep_billing_and_need_one_role(team):
    store, p = team
    with pytest.raises(ValidationFailed) as err:
        written(store, memberships.edit_roles, p["dina"], ORG["id"], "mira", [])
    assert err.value.code == "roles_required"
    # Dina holds Billing: an edit without it keeps it; she is not the only Owner (Olga is one too).
    edited = written(store, memberships.edit_roles, p["dina"], ORG["id"], "dina", ["member"])
    assert edited["roles"] == ["member", "billing"]
    assert written(store, memberships.edit_roles, p["olga"], ORG["id"], "dina", ["billing"])["roles"] == ["billing"]
    with pytest.raises(Forbidden):                 # Billing alone grants no member management (the pipeline)
        members_worker(store, p["dina"]).edit_roles(ORG["id"], "mira", ["builder"])
    with pytest.raises(ValidationFailed):
        written(store, memberships.edit_roles, p["olga"], ORG["id"], "mira", ["member", "billing"])


def test_leave_is_refused_for_the_billing_holder_and_removal_too(team):
    store, p = team
    with pytest.raises(Conflict) as err:
        written(store, memberships.remove_member, p["dina"], ORG["id"], "dina")
    assert err.value.code == "billing_holder_cannot_leave"
    with pytest.raises(Conflict) as err:
        written(store, memberships.remove_member, p["olga"], ORG["id"], "dina")
    assert err.value.code == "billing_holder"
    written(store, memberships.remove_member, p["mira"], ORG["id"], "mira")
    with pytest.raises(NotFound):
        roles_of(store, "mira")
    assert events(store)[-1]["type"] == "member.left"


def test_invitation_life_cycle_rules(team):
    store, p = team
    now = utcnow()
    invitation = written(store, invitations.invite, p["dina"], ORG, "new@example.com", ["member"], now=now)
    assert invitation["email"] == "new@example.com" and invitation["status"] == "pending"
    with pytest.raises(Conflict) as err:                       # one pending per organization and email
        written(store, invitations.invite, p["adam"], ORG, "new@example.com", ["builder"], now=now)
    assert err.value.code == "invitation_pending" and err.value.details == {"invitation_id": invitation["id"]}
    with pytest.raises(Conflict) as err:                       # members are not invited
        written(store, invitations.invite, p["dina"], ORG, "budi@example.com", ["member"], now=now)
    assert err.value.code == "already_member"
    with pytest.raises(Conflict) as err:                       # resend too early says when
        written(store, invitations.resend_invitation, p["dina"], ORG["id"], invitation["id"],
                now=now + timedelta(minutes=9))
    assert err.value.code == "resend_too_early"
    assert err.value.details["retry_at"] == iso(now + timedelta(minutes=10))
    later = now + timedelta(minutes=10)
    resent = written(store, invitations.resend_invitation, p["dina"], ORG["id"], invitation["id"], now=later)
    assert resent["last_sent_at"] == iso(later) and resent["expires_at"] == iso(later + timedelta(days=7))
    with pytest.raises(Forbidden) as err:                      # only the invited email answers
        written(store, invitations.accept_invitation, person("eve"), invitation["id"], now=later)
    assert err.value.code == "invitation_not_for_you"
    written(store, invitations.revoke_invitation, p["dina"], ORG["id"], invitation["id"], now=later)
    newcomer = Identity("new", "NEW@example.com", "New")
    with pytest.raises(Conflict) as err:
        written(store, invitations.accept_invitation, newcomer, invitation["id"], now=later)
    assert err.value.code == "invitation_not_pending"
    again = written(store, invitations.invite, p["dina"], ORG, "new@example.com", ["member"], now=later)   # re-invite
    written(store, invitations.accept_invitation, newcomer, again["id"], now=later)
    with pytest.raises(Conflict):
        written(store, invitations.accept_invitation, newcomer, again["id"], now=later)
    assert roles_of(store, "new") == ["member"]


def test_the_expiry_job_records_each_expiry_once_as_the_system(team):
    store, p = team
    now = utcnow()
    invitation = written(store, invitations.invite, p["dina"], ORG, "late@example.com", ["member"], now=now)
    assert invitations.expire_due_invitations(store, now + timedelta(days=6)) == 0
    assert invitations.expire_due_invitations(store, now + timedelta(days=7)) == 1
    assert invitations.expire_due_invitations(store, now + timedelta(days=8)) == 0
    expired = [e for e in events(store) if e["type"] == "invitation.expired"]
    assert len(expired) == 1 and expired[0]["actor"] == {"id": "system"}
    with pytest.raises(Conflict) as err:
        written(store, invitations.accept_invitation, person("late"), invitation["id"], now=now + timedelta(days=8))
    assert err.value.code == "invitation_expired"


def test_an_invitation_past_its_date_is_expired_before_the_job_runs(team):
    store, p = team
    now = utcnow()
    invitation = written(store, invitations.invite, p["dina"], ORG, "late@example.com", ["member"], now=now)
    with pytest.raises(Conflict) as err:
        written(store, invitations.accept_invitation, person("late"), invitation["id"],
                now=now + timedelta(days=7, seconds=1))
    assert err.value.code == "invitation_expired"
    page = invitations.list_invitations(store, p["dina"], ORG["id"], status="expired", now=now + timedelta(days=8))
    assert [i["id"] for i in page["items"]] == [invitation["id"]]
    # Inviting the address again records the expiry first, then invites.
    written(store, invitations.invite, p["dina"], ORG, "late@example.com", ["member"], now=now + timedelta(days=8))
    assert [e["type"] for e in events(store)][-2:] == ["invitation.expired", "invitation.created"]


def test_individual_organizations_receive_no_invitations(team):
    store, p = team
    with pytest.raises(Conflict) as err:
        written(store, invitations.invite, p["dina"], dict(ORG, type="individual"), "x@example.com", ["member"])
    assert err.value.code == "individual_organization"


def test_billing_transfer_moves_the_role(team):
    store, p = team
    with pytest.raises(Forbidden) as err:          # an Owner without Billing cannot start one
        written(store, billing_transfers.start_billing_transfer, p["olga"], ORG["id"], "mira")
    assert err.value.code == "not_billing_owner"
    transfer = written(store, billing_transfers.start_billing_transfer, p["dina"], ORG["id"], "mira")
    with pytest.raises(Conflict):                   # at most one pending
        written(store, billing_transfers.start_billing_transfer, p["dina"], ORG["id"], "budi")
    with pytest.raises(Forbidden):                  # only the recipient answers
        written(store, billing_transfers.accept_billing_transfer, p["budi"], ORG["id"], transfer["id"])
    with pytest.raises(Forbidden):                  # only the initiator cancels
        written(store, billing_transfers.cancel_billing_transfer, p["mira"], ORG["id"], transfer["id"])
    accepted = written(store, billing_transfers.accept_billing_transfer, p["mira"], ORG["id"], transfer["id"])
    assert accepted["status"] == "accepted"
    assert roles_of(store, "dina") == ["owner"] and roles_of(store, "mira") == ["member", "billing"]
    with pytest.raises(Conflict):
        written(store, billing_transfers.decline_billing_transfer, p["mira"], ORG["id"], transfer["id"])
    event = events(store)[-1]
    assert event["type"] == "billing_transfer.accepted"
    assert event["before"]["billing_holder"] == "dina" and event["after"]["billing_holder"] == "mira"


def test_a_recipient_who_leaves_ends_the_pending_transfer(team):
    store, p = team
    transfer = written(store, billing_transfers.start_billing_transfer, p["dina"], ORG["id"], "mira")
    written(store, memberships.remove_member, p["mira"], ORG["id"], "mira")
    page = billing_transfers.list_billing_transfers(store, p["dina"], ORG["id"])
    assert [(t["id"], t["status"]) for t in page["items"]] == [(transfer["id"], "cancelled")]
    written(store, billing_transfers.start_billing_transfer, p["dina"], ORG["id"], "budi")   # the slot is free again


def test_member_list_search_filter_sort(team):
    store, p = team

    def listed(field="user_id", **options):
        return [m[field] for m in memberships.list_members(store, p["mira"], ORG["id"], **options)["items"]]
    assert listed(sort="role") == ["dina", "olga", "adam", "budi", "mira"]
    assert listed(q="BU") == ["budi"]
    assert listed(role="billing") == ["dina"]
    names = listed("name", sort="-name")
    assert names == sorted(names, key=str.casefold, reverse=True)
    assert listed(q="%") == []
    with pytest.raises(ValidationFailed):
        memberships.list_members(store, p["mira"], ORG["id"], sort="email")
    with pytest.raises(NotFound):
        members_worker(store, person("eve")).list_members(ORG["id"])
