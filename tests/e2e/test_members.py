"""Members, invitations and the billing hand-over end to end: through the gateway, every service
running, a real RabbitMQ, on SQLite and on PostgreSQL."""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import jwt
import requests
from sqlalchemy import update

from common.db import Store
from common.timeutil import utcnow
from gateway import tokens
from services.members.models import Invitation
from services.orgs.models import ActiveOrganization
from tests.conftest import Api
from tests.e2e.helpers import (
    audit_entries,
    card_becomes,
    card_of,
    create_organization,
    error_code,
    hand_billing_to,
    invite,
    join,
    ok,
    types_of,
    wait_for,
)


def test_the_dina_story(system):
    """The product rules' walk-through: Dina founds Sehat Clinic, invites Budi as Builder and Sari, hands Billing
    to Sari; Sari sees the credits page, Budi cannot manage members, everyone sees the right roles."""
    dina, budi, sari = system.user("dina"), system.user("budi"), system.user("sari")
    clinic = create_organization(dina, "Sehat Clinic")
    org = clinic["id"]
    invite(dina, org, budi.email, ["builder"])
    invite(dina, org, sari.email.upper(), ["member"])          # emails match case-insensitively
    for person in (budi, sari):
        [pending] = ok(person.get("/v1/invitations", params={"status": "pending"}))["items"]
        assert pending["organization_name"] == "Sehat Clinic" and pending["invited_by"] == dina.id
        ok(person.post(f"/v1/invitations/{pending['id']}/accept"))

    transfer = ok(dina.post(f"/v1/organizations/{org}/billing-transfers", json={"to_user_id": sari.id}), 201)
    assert transfer["status"] == "pending"
    assert ok(sari.post(f"/v1/organizations/{org}/billing-transfers/{transfer['id']}/accept"))["status"] == "accepted"

    credits = ok(sari.get(f"/v1/organizations/{org}/credits"))
    assert credits["organization_id"] == org and credits["balance"] == "0.0000"
    assert error_code(budi.get(f"/v1/organizations/{org}/credits"), 403) == "forbidden"

    assert error_code(budi.post(f"/v1/organizations/{org}/invitations",
                                json={"email": "x@example.com", "roles": ["member"]}), 403) == "forbidden"
    assert error_code(budi.patch(f"/v1/organizations/{org}/members/{sari.id}", json={"roles": ["admin"]}), 403)
    assert error_code(budi.delete(f"/v1/organizations/{org}/members/{sari.id}"), 403)

    expected = {dina.id: ["owner"], budi.id: ["builder"], sari.id: ["member", "billing"]}
    for person in (dina, budi, sari):
        card = card_becomes(person, org, member_count=3, roles=expected[person.id])
        assert card["name"] == "Sehat Clinic"
    assert "view_billing" in card_of(sari, org)["permissions"]
    assert "manage_invitations" not in card_of(budi, org)["permissions"]
    assert "edit_contributed_agents" in card_of(budi, org)["permissions"]
    members = ok(budi.get(f"/v1/organizations/{org}/members"))["items"]
    assert {m["user_id"]: m["roles"] for m in members} == expected

    trail = wait_for(lambda: (lambda e: e if len(e) >= 8 else None)(audit_entries(dina, org)),
                     message="the story's audit entries")
    assert types_of(trail) == sorted([
        "organization.created", "member.added", "invitation.created", "invitation.created",
        "invitation.accepted", "invitation.accepted", "billing_transfer.started", "billing_transfer.accepted"])


def test_invitation_edge_cases(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    guest, stranger = system.user("guest"), system.user("stranger")
    invitations = f"/v1/organizations/{org}/invitations"

    first = invite(owner, org, guest.email, ["member"])
    # Double invite (by anyone) of a pending address.
    response = admin.post(invitations, json={"email": guest.email, "roles": ["builder"]})
    assert error_code(response, 409) == "invitation_pending"
    assert response.json()["error"]["details"] == {"invitation_id": first["id"]}
    # Resend too early: says when it becomes possible.
    response = owner.post(f"{invitations}/{first['id']}/resend")
    assert error_code(response, 409) == "resend_too_early"
    assert "resent from" in response.json()["error"]["message"] and response.json()["error"]["details"]["retry_at"]
    # Wrong email accepting.
    assert error_code(stranger.post(f"/v1/invitations/{first['id']}/accept"), 403) == "invitation_not_for_you"
    # Revoked, then re-invited.
    assert ok(owner.post(f"{invitations}/{first['id']}/revoke"))["status"] == "revoked"
    assert error_code(guest.post(f"/v1/invitations/{first['id']}/accept"), 409) == "invitation_not_pending"
    second = invite(admin, org, guest.email, ["builder"])
    # Accepting twice.
    assert ok(guest.post(f"/v1/invitations/{second['id']}/accept"))["status"] == "accepted"
    assert error_code(guest.post(f"/v1/invitations/{second['id']}/accept"), 409) == "invitation_not_pending"
    card_becomes(guest, org, roles=["builder"])
    # Already a member.
    again = owner.post(invitations, json={"email": guest.email, "roles": ["member"]})
    assert error_code(again, 409) == "already_member"
    # Bad input changes nothing.
    for body, field in [({"email": "not-an-email", "roles": ["member"]}, "email"),
                        ({"email": "a@example.com", "roles": []}, "roles"),
                        ({"email": "a@example.com", "roles": ["billing"]}, "roles"),
                        ({"email": "a@example.com", "roles": ["boss"]}, "roles"),
                        ({"email": "a@example.com"}, "roles")]:
        response = owner.post(invitations, json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    listed = ok(owner.get(invitations, params={"q": guest.email}))["items"]
    assert [(i["email"], i["status"]) for i in listed] == [(guest.email, "accepted"), (guest.email, "revoked")]


def test_resend_after_ten_minutes_renews_and_the_expiry_job_records_expiry(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    invitations = f"/v1/organizations/{org}/invitations"
    never = system.user("never")
    resendable = invite(owner, org, "later@example.com", ["member"])
    expiring = invite(owner, org, never.email, ["member"])
    members_db = Store(system.database_url("members"))
    past = utcnow() - timedelta(minutes=11)
    with members_db.write() as session:   # time moves on: no sleeping for 10 minutes or 7 days
        session.execute(update(Invitation).where(Invitation.id == resendable["id"]).values(last_sent_at=past))
        session.execute(update(Invitation).where(Invitation.id == expiring["id"]).values(expires_at=past))
    resent = ok(owner.post(f"{invitations}/{resendable['id']}/resend"))
    assert resent["send_count"] == 2 and resent["expires_at"] > resendable["expires_at"]

    # The job (every second in tests) records the expiry as the system.
    def expiry_entry():
        entries = audit_entries(owner, org, target=expiring["id"], action="update")
        return [e for e in entries if e["type"] == "invitation.expired"]
    [entry] = wait_for(expiry_entry, message="the expiry job's audit entry")
    assert entry["actor"] == {"id": "system"}
    assert entry["changes"] == [{"field": "status", "old_value": "pending", "new_value": "expired"}]
    assert ok(owner.get(invitations, params={"status": "expired"}))["items"][0]["id"] == expiring["id"]
    assert error_code(never.post(f"/v1/invitations/{expiring['id']}/accept"), 409) == "invitation_expired"
    # The accept link was written to the members service's log (no SMTP configured).
    log = system.log_dir / "members.log"
    wait_for(lambda: f"/v1/invitations/{resendable['id']}/accept" in log.read_text(), message="the logged email")


def test_two_admins_inviting_one_email_at_once_make_one_invitation(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    body = {"email": "popular@example.com", "roles": ["member"]}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda api: api.post(f"/v1/organizations/{org}/invitations", json=body),
                                  [owner, admin] * 4))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7, [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "invitation_pending" for r in responses if r.status_code == 409)
    pending = ok(owner.get(f"/v1/organizations/{org}/invitations", params={"status": "pending"}))["items"]
    assert len(pending) == 1


def test_an_idempotency_key_makes_a_retried_invitation_one(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    body = {"email": "retry@example.com", "roles": ["member"]}
    headers = {"Idempotency-Key": "invite-retry-1"}
    first = ok(owner.post(f"/v1/organizations/{org}/invitations", json=body, headers=headers), 201)
    again = ok(owner.post(f"/v1/organizations/{org}/invitations", json=body, headers=headers), 201)
    assert again == first
    assert len(ok(owner.get(f"/v1/organizations/{org}/invitations"))["items"]) == 1


def test_member_list_search_filter_sort_and_csv(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    builder = join(system, owner, org, ["builder"], "zed")
    member = join(system, owner, org, ["member"], "amy")
    members = f"/v1/organizations/{org}/members"
    by_name = [m["name"] for m in ok(member.get(members, params={"sort": "name"}))["items"]]
    assert by_name == sorted(by_name, key=str.casefold)
    by_role = [m["user_id"] for m in ok(member.get(members, params={"sort": "role"}))["items"]]
    assert by_role == [owner.id, builder.id, member.id]
    assert [m["user_id"] for m in ok(member.get(members, params={"role": "builder"}))["items"]] == [builder.id]
    assert [m["user_id"] for m in ok(member.get(members, params={"q": member.email[:8]}))["items"]] == [member.id]
    page = ok(member.get(members, params={"limit": 2}))
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = ok(member.get(members, params={"limit": 2, "cursor": page["next_cursor"]}))
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    csv_response = member.get(members, params={"format": "csv", "role": "builder"})
    assert csv_response.status_code == 200 and csv_response.headers["Content-Type"].startswith("text/csv")
    lines = csv_response.text.strip().splitlines()
    assert lines[0] == "user_id,name,email,roles,budget_group_id,joined_at" and len(lines) == 2
    assert lines[1].startswith(f"{builder.id},Zed,{builder.email},builder,,")
    assert error_code(member.get(members, params={"sort": "salary"}), 422) == "invalid_sort"


def test_leaving_and_removal_move_the_active_organization_back_and_are_audited(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    leaver, removed = join(system, owner, org, ["member"], "leaver"), join(system, owner, org, ["builder"], "removed")
    individual = ok(leaver.get("/v1/me"))["active_organization_id"]
    ok(leaver.put("/v1/me/active-organization", json={"organization_id": org}))
    assert ok(leaver.delete(f"/v1/organizations/{org}/members/{leaver.id}"), 204) is None
    # Orgs learns of the leave from members' event (its read model): within the event lag.
    wait_for(lambda: ok(leaver.get("/v1/me"))["active_organization_id"] == individual,
             message="the active organization falling back")
    assert error_code(leaver.get(f"/v1/organizations/{org}"), 404) == "organization_not_found"
    # The stored choice is reset too (by the orgs service, from the member.left event), so joining
    # again does not silently make the organization active again.
    orgs_db = Store(system.database_url("orgs"))

    def stored_active():
        with orgs_db.read() as session:
            return session.get(ActiveOrganization, leaver.id).organization_id
    wait_for(lambda: stored_active() == individual, message="the orgs service resetting the active organization")

    assert ok(owner.delete(f"/v1/organizations/{org}/members/{removed.id}"), 204) is None
    assert error_code(owner.delete(f"/v1/organizations/{org}/members/{removed.id}"), 404) == "member_not_found"
    wait_for(lambda: card_of(removed, org) is None, message="the card gone from the removed member's list")
    # The only Owner, who also holds Billing, can neither leave nor be left without an Owner.
    assert error_code(owner.delete(f"/v1/organizations/{org}/members/{owner.id}"), 409) == "billing_holder_cannot_leave"
    assert error_code(owner.patch(f"/v1/organizations/{org}/members/{owner.id}", json={"roles": ["admin"]}),
                      409) == "last_owner"
    entries = wait_for(lambda: [e for e in audit_entries(owner, org, entity_type="member") if e["action"] == "delete"]
                       if len([e for e in audit_entries(owner, org, entity_type="member")
                               if e["action"] == "delete"]) == 2 else None, message="two member deletions")
    assert sorted((e["type"], e["entity_id"], e["actor"]["id"]) for e in entries) == sorted([
        ("member.left", leaver.id, leaver.id), ("member.removed", removed.id, owner.id)])


def test_billing_transfer_decline_cancel_and_rules(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    second_owner = join(system, owner, org, ["owner"], "second")
    member = join(system, owner, org, ["member"], "member")
    transfers = f"/v1/organizations/{org}/billing-transfers"
    # Only an Owner holding Billing starts one; not to oneself; only to a member.
    assert error_code(second_owner.post(transfers, json={"to_user_id": member.id}), 403) == "not_billing_owner"
    assert error_code(owner.post(transfers, json={"to_user_id": owner.id}), 422) == "already_billing_holder"
    assert error_code(owner.post(transfers, json={"to_user_id": "nobody"}), 404) == "member_not_found"
    first = ok(owner.post(transfers, json={"to_user_id": member.id}), 201)
    assert error_code(owner.post(transfers, json={"to_user_id": second_owner.id}), 409) == "billing_transfer_pending"
    assert error_code(owner.post(f"{transfers}/{first['id']}/accept"), 403) == "not_transfer_recipient"
    assert error_code(member.post(f"{transfers}/{first['id']}/cancel"), 403) == "not_transfer_initiator"
    assert ok(member.post(f"{transfers}/{first['id']}/decline"))["status"] == "declined"
    card_becomes(owner, org, roles=["owner", "billing"])
    second = ok(owner.post(transfers, json={"to_user_id": second_owner.id}), 201)
    assert ok(owner.post(f"{transfers}/{second['id']}/cancel"))["status"] == "cancelled"
    assert error_code(second_owner.post(f"{transfers}/{second['id']}/accept"), 409) == "billing_transfer_not_pending"
    card_becomes(second_owner, org, roles=["owner"])
    listed = ok(owner.get(transfers))["items"]
    assert [(t["id"], t["status"]) for t in listed] == [(second["id"], "cancelled"), (first["id"], "declined")]
    assert [t["id"] for t in ok(member.get(transfers))["items"]] == [first["id"]]   # only their own
    hand_billing_to(owner, org, second_owner)
    card_becomes(second_owner, org, roles=["owner", "billing"])


def test_two_owners_stepping_down_at_once_leave_one_owner(system):
    """Each sees two Owners and steps down; without the per-organization lock both would succeed on
    PostgreSQL and the organization would have none."""
    rounds = []
    for _ in range(4):
        founder = system.user("founder")
        org = create_organization(founder)["id"]
        rounds.append((org, founder, join(system, founder, org, ["owner"], "co-owner")))

    def step_down(case):
        org, api = case
        return api.patch(f"/v1/organizations/{org}/members/{api.id}", json={"roles": ["member"]})
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(step_down, [(org, api) for org, a, b in rounds for api in (a, b)]))
    for i, (org, founder, _co_owner) in enumerate(rounds):
        pair = responses[2 * i: 2 * i + 2]
        assert sorted(r.status_code for r in pair) == [200, 409], [r.text for r in pair]
        members = ok(founder.get(f"/v1/organizations/{org}/members", params={"role": "owner"}))["items"]
        assert len(members) == 1


KELVIN_SIGN = "\u212a"


def test_an_email_written_with_the_kelvin_sign_cannot_take_kims_invitation(system):
    """Issue 14: a token whose email lower-cased onto Kim's (the K written as U+212A) saw Kim's invitation,
    accepted it and listed the members; an invitation to such an address was stored as Kim's."""
    owner, kim, mallory = system.user("owner"), system.user("kim"), system.user("mallory")
    org = create_organization(owner)["id"]
    invitations, members = f"/v1/organizations/{org}/invitations", f"/v1/organizations/{org}/members"
    kelvin_kim = KELVIN_SIGN + kim.email[1:]
    assert kelvin_kim.lower() == kim.email
    response = owner.post(invitations, json={"email": kelvin_kim, "roles": ["admin"]})
    assert error_code(response, 422) == "invalid_email" and response.json()["error"]["field"] == "email"
    assert ok(owner.get(invitations))["items"] == []
    invitation = invite(owner, org, kim.email.upper(), ["member"])
    assert invitation["email"] == kim.email

    mallory.session.headers["Authorization"] = f"Bearer {tokens.mint(mallory.id, kelvin_kim, 'Mallory')}"
    for response in (mallory.get("/v1/invitations"), mallory.post(f"/v1/invitations/{invitation['id']}/accept"),
                     mallory.post(f"/v1/invitations/{invitation['id']}/reject"), mallory.get(members)):
        assert error_code(response, 401) == "invalid_token" and response.json()["error"]["field"] == "email"

    [pending] = ok(kim.get("/v1/invitations"))["items"]
    assert pending["id"] == invitation["id"] and pending["status"] == "pending"
    ok(kim.post(f"/v1/invitations/{invitation['id']}/accept"))
    assert {m["user_id"] for m in ok(owner.get(members))["items"]} == {owner.id, kim.id}


def test_tokens_breaking_the_claim_rules_are_refused(system):
    """Issue 14: tokens without exp, with exp as a string, naming the system, or with a lone surrogate
    (a 500 before) were accepted."""
    now = int(time.time())
    claims = {"sub": f"forger-{uuid.uuid4().hex[:8]}", "email": "forger@example.com", "name": "F", "exp": now + 600}
    for changed, field in [({"exp": None}, "exp"), ({"exp": str(now + 600)}, "exp"), ({"sub": "system"}, "sub"),
                           ({"sub": "key:k1"}, "sub"), ({"sub": "\ud800"}, "sub"), ({"name": "\ud800"}, "name"),
                           ({"email": "forger\ud800@example.com"}, "email")]:
        forged = {k: v for k, v in dict(claims, **changed).items() if v is not None}
        bearer = jwt.encode(forged, tokens.secret(), algorithm=tokens.ALGORITHM)
        response = requests.get(f"{system.url}/v1/me", headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
        assert error_code(response, 401) == "invalid_token" and response.json()["error"]["field"] == field, changed


def test_leaving_ones_individual_organization_says_so(system):
    """Issue 14: it answered billing_holder_cannot_leave ("hand it over with a billing transfer"), impossible
    in an organization nobody else can join."""
    loner = system.user("loner")
    individual = ok(loner.get("/v1/me"))["active_organization_id"]
    assert error_code(loner.delete(f"/v1/organizations/{individual}/members/{loner.id}"), 409) == \
        "individual_organization"
    assert ok(loner.get("/v1/me"))["active_organization_id"] == individual


def test_a_changed_name_in_a_token_reaches_the_member_lists(system):
    """Issue 24: the gateway's memory of who signed in keys on the whole identity, so a token bringing a new
    name (or email) signs the person in again and members refreshes their record: the list shows it."""
    alice = system.user("alice")
    org = create_organization(alice, "Names")["id"]
    budi = join(system, alice, org, ["member"], "budi")
    ok(Api(system.url, budi.id, budi.email, "").get("/v1/me"))               # once signed in with no name
    ok(Api(system.url, budi.id, budi.email, "Budi Santoso").get("/v1/me"))   # then with one
    names = lambda: [m["name"] for m in ok(alice.get(f"/v1/organizations/{org}/members"))["items"]]  # noqa: E731
    wait_for(lambda: "Budi Santoso" in names(), timeout=10, message="the new name in the member list")
