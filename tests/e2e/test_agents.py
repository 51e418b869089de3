"""Agents in an organization (product rules §6), end to end through the gateway against the running system:
who sees what, contributor rules, assignments from invitations, transfer, the agent's audit trail."""
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.helpers import (
    agent_names,
    audit_entries,
    create_agent,
    create_organization,
    error_code,
    invite,
    join,
    ok,
    wait_for,
)


def agents_path(org_id, agent_id=None, rest=""):
    return f"/v1/organizations/{org_id}/agents" + (f"/{agent_id}" if agent_id else "") + rest


def trail(api, org_id, agent_id, **params):
    return ok(api.get(agents_path(org_id, agent_id, "/audit"), params=params))


def test_visibility_follows_roles_and_agents_outlive_their_builder(system):
    owner = system.user("owner")
    org = create_organization(owner, "Sehat Clinic")["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    builder = join(system, owner, org, ["builder"], "builder")
    other_builder = join(system, owner, org, ["builder"], "other-builder")
    member = join(system, owner, org, ["member"], "member")
    billing_only = join(system, owner, org, ["member"], "billing")
    transfer = ok(owner.post(f"/v1/organizations/{org}/billing-transfers", json={"to_user_id": billing_only.id}), 201)
    ok(billing_only.post(f"/v1/organizations/{org}/billing-transfers/{transfer['id']}/accept"))
    ok(owner.patch(f"/v1/organizations/{org}/members/{billing_only.id}", json={"roles": ["billing"]}))

    triage = create_agent(builder, org, "Triage nurse", instructions="Ask about symptoms first.")
    assert triage["contributors"] == [builder.id] and triage["organization_id"] == org
    intake = create_agent(owner, org, "Intake desk")
    assert intake["contributors"] == []            # an Owner without Builder is not a contributor
    create_agent(admin, org, "Billing helper")
    ok(owner.put(agents_path(org, intake["id"], f"/assignees/{member.id}")), 201)

    everything = ["Billing helper", "Intake desk", "Triage nurse"]
    assert agent_names(owner, org) == everything
    assert agent_names(admin, org) == everything
    assert agent_names(builder, org) == ["Triage nurse"]
    assert agent_names(other_builder, org) == []
    assert agent_names(member, org) == ["Intake desk"]
    assert agent_names(billing_only, org) == []
    assert agent_names(owner, org, q="NURSE") == ["Triage nurse"]
    assert agent_names(owner, org, q="%") == []     # a literal percent sign, not a wildcard

    # An agent one cannot see is "not found", like an unknown id.
    assert error_code(member.get(agents_path(org, triage["id"])), 404) == "agent_not_found"
    # Seeing is not editing: an assigned Builder who does not contribute may look but not change.
    ok(owner.put(agents_path(org, intake["id"], f"/assignees/{other_builder.id}")), 201)
    assert agent_names(other_builder, org) == ["Intake desk"]
    assert error_code(other_builder.patch(agents_path(org, intake["id"]), json={"mission": "x"}), 403) == "forbidden"
    assert error_code(member.patch(agents_path(org, intake["id"]), json={"mission": "x"}), 403) == "forbidden"
    assert ok(builder.patch(agents_path(org, triage["id"]), json={"mission": "Sort patients"}))["mission"] == \
        "Sort patients"
    assert error_code(builder.delete(agents_path(org, triage["id"])), 403) == "forbidden"
    for outsider_of_creation in (member, billing_only):
        assert error_code(outsider_of_creation.post(agents_path(org), json={"name": "Mine"}), 403) == "forbidden"
    assert ok(member.get(agents_path(org, intake["id"])))["permissions"] == ["use"]
    assert set(ok(owner.get(agents_path(org, intake["id"])))["permissions"]) == \
        {"edit", "delete", "manage_access", "transfer", "view_audit", "use"}

    # The builder leaves: the agent stays with the organization; their access goes, audited.
    assert builder.delete(f"/v1/organizations/{org}/members/{builder.id}").status_code == 204
    wait_for(lambda: ok(owner.get(agents_path(org, triage["id"])))["contributors"] == [],
             message="the departed builder's contribution to be withdrawn")
    assert ok(owner.get(agents_path(org, triage["id"])))["name"] == "Triage nurse"
    rows = wait_for(lambda: trail(owner, org, triage["id"], field="contributors")["items"],
                    message="the access change in the agent's trail")
    assert rows[0]["type"] == "agent.access_revoked" and rows[0]["old_value"] == [builder.id]
    assert rows[0]["new_value"] == [] and rows[0]["actor"]["id"] == builder.id

    # Deleting (Owner/Admin) removes the agent for everyone.
    assert owner.delete(agents_path(org, intake["id"])).status_code == 204
    assert agent_names(member, org) == [] and "Intake desk" not in agent_names(owner, org)
    assert error_code(owner.get(agents_path(org, intake["id"])), 404) == "agent_not_found"


def test_contributors_are_builders_managed_by_owners_and_admins_and_never_zero(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    first = join(system, owner, org, ["builder"], "first")
    second = join(system, owner, org, ["builder", "member"], "second")
    member = join(system, owner, org, ["member"], "member")
    agent = create_agent(first, org)
    contributors = agents_path(org, agent["id"], "/contributors")

    assert ok(admin.post(contributors, json={"user_id": second.id}), 201)["user_id"] == second.id
    assert ok(admin.post(contributors, json={"user_id": second.id}), 200)["added_by"] == admin.id  # no double
    assert error_code(owner.post(contributors, json={"user_id": member.id}), 422) == "contributor_must_be_builder"
    assert error_code(owner.post(contributors, json={"user_id": "nobody"}), 404) == "member_not_found"
    assert error_code(first.post(contributors, json={"user_id": second.id}), 403) == "forbidden"
    assert error_code(first.delete(f"{contributors}/{second.id}"), 403) == "forbidden"
    assert [c["user_id"] for c in ok(first.get(contributors))["items"]] == [first.id, second.id]
    page = ok(first.get(contributors, params={"limit": 1}))
    assert [c["user_id"] for c in page["items"]] == [first.id] and page["next_cursor"]
    assert [c["user_id"] for c in ok(first.get(contributors, params={"cursor": page["next_cursor"]}))["items"]] \
        == [second.id]

    assert owner.delete(f"{contributors}/{first.id}").status_code == 204
    assert error_code(owner.delete(f"{contributors}/{second.id}"), 409) == "last_contributor"
    assert error_code(owner.delete(f"{contributors}/{member.id}"), 404) == "contributor_not_found"
    assert ok(owner.get(agents_path(org, agent["id"])))["contributors"] == [second.id]

    # Losing Builder ends contributing (only Builders can be contributors), even for the last one.
    ok(owner.patch(f"/v1/organizations/{org}/members/{second.id}", json={"roles": ["member"]}))
    wait_for(lambda: ok(owner.get(agents_path(org, agent["id"])))["contributors"] == [],
             message="the contributor who lost Builder to be dropped")
    # The trail is written when the audit service has the events: wait for the fourth, then check the order.
    types = wait_for(lambda: (lambda found: found if len(found) == 4 else None)(
        [r["type"] for r in trail(owner, org, agent["id"], field="contributors")["items"]]),
        message="four contributor changes in the agent's trail")
    assert types == ["agent.access_revoked", "agent.contributor_removed", "agent.contributor_added",
                     "agent.created"]


def test_two_admins_removing_the_last_two_contributors_at_once_leave_one(system):
    """The last-contributor rule holds under races: removals of one agent's contributors queue on the
    agent's row (PostgreSQL) or the write lock (SQLite), so one of two concurrent removals sees the
    other's result. Several agents at once, so a race would show."""
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    one, two = (join(system, owner, org, ["builder"], label) for label in ("one", "two"))
    cases = []
    for n in range(4):
        agent = create_agent(one, org, f"Raced {n}")
        ok(owner.post(agents_path(org, agent["id"], "/contributors"), json={"user_id": two.id}), 201)
        cases += [(owner, agent["id"], one.id), (admin, agent["id"], two.id)]

    def remove(case):
        api, agent_id, user_id = case
        return api.delete(agents_path(org, agent_id, f"/contributors/{user_id}"))
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(remove, cases))
    for i in range(0, len(cases), 2):
        pair = responses[i:i + 2]
        assert sorted(r.status_code for r in pair) == [204, 409], [r.text for r in pair]
        assert len(ok(owner.get(agents_path(org, cases[i][1])))["contributors"]) == 1


def test_an_invitation_assigns_its_agents_on_acceptance(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    agent = create_agent(owner, org, "Front desk")
    newcomer = system.user("newcomer")

    response = owner.post(f"/v1/organizations/{org}/invitations",
                          json={"email": newcomer.email, "roles": ["member"], "agent_ids": ["no-such-agent"]})
    assert error_code(response, 422) == "unknown_agent"
    assert response.json()["error"]["field"] == "agent_ids"
    assert ok(owner.get(f"/v1/organizations/{org}/invitations"))["items"] == []   # nothing was created

    invitation = invite(owner, org, newcomer.email, ["member"], agent_ids=[agent["id"]])
    ok(newcomer.post(f"/v1/invitations/{invitation['id']}/accept"))
    wait_for(lambda: agent_names(newcomer, org) == ["Front desk"], message="the invited agent to be assigned")
    assert ok(owner.get(agents_path(org, agent["id"])))["assignees"] == [newcomer.id]
    [row] = wait_for(lambda: trail(owner, org, agent["id"], field="assignees")["items"], message="trail row")
    assert row["actor"]["id"] == newcomer.id and row["new_value"] == [newcomer.id]
    accepted = [e for e in audit_entries(owner, org) if e["type"] == "invitation.accepted"][0]
    assert row["correlation_id"] == accepted["event_id"]


def test_transfer_requirements_each_fail_alone_with_their_own_error(system):
    owner = system.user("owner")
    source = create_organization(owner, "Source")["id"]
    builder = join(system, owner, source, ["builder"], "builder")
    agent = create_agent(builder, source)
    transfer = agents_path(source, agent["id"], "/transfer")
    elsewhere = system.user("elsewhere")
    foreign = create_organization(elsewhere, "Not mine")["id"]
    as_member = create_organization(elsewhere, "Member there")["id"]
    join_existing(system, elsewhere, as_member, owner, ["member"])
    destination = create_organization(owner, "Destination")["id"]

    def refused(api, body, status):
        response = api.post(transfer, json=body)
        return error_code(response, status), response.json()["error"]["field"]

    good = {"destination_organization_id": destination, "dry_run": True}
    assert refused(builder, good, 403) == ("source_role_required", None)
    assert refused(owner, dict(good, destination_organization_id=foreign), 404) == \
        ("destination_not_found", "destination_organization_id")
    assert refused(owner, dict(good, destination_organization_id="no-such-org"), 404)[0] == "destination_not_found"
    assert refused(owner, dict(good, destination_organization_id=as_member), 403) == ("destination_role_required", None)
    assert refused(owner, dict(good, destination_organization_id=source), 422) == \
        ("same_organization", "destination_organization_id")
    assert refused(owner, {"destination_organization_id": destination}, 422) == ("validation_error", "dry_run")
    assert refused(owner, dict(good, dry_run="yes"), 422) == ("validation_error", "dry_run")
    response = owner.post(agents_path(source, "no-such-agent", "/transfer"), json=good)
    assert error_code(response, 404) == "agent_not_found"
    # None of it moved anything.
    assert ok(owner.get(agents_path(source, agent["id"])))["organization_id"] == source
    assert agent_names(owner, destination) == []


def join_existing(system, inviter, org_id, existing_user, roles):
    invitation = invite(inviter, org_id, existing_user.email, roles)
    ok(existing_user.post(f"/v1/invitations/{invitation['id']}/accept"))


def test_transfer_moves_the_agent_and_drops_contributors_without_access_there(system):
    owner = system.user("owner")
    source = create_organization(owner, "Source")["id"]
    destination = create_organization(owner, "Destination")["id"]
    staying = join(system, owner, source, ["builder"], "staying")
    leaving = join(system, owner, source, ["builder"], "leaving")
    user = join(system, owner, source, ["member"], "user")
    join_existing(system, owner, destination, staying, ["builder"])
    join_existing(system, owner, destination, leaving, ["member"])     # not enough to keep contributing
    agent = create_agent(staying, source, "Roaming agent", instructions="Be kind.")
    ok(owner.post(agents_path(source, agent["id"], "/contributors"), json={"user_id": leaving.id}), 201)
    ok(owner.put(agents_path(source, agent["id"], f"/assignees/{user.id}")), 201)
    transfer = agents_path(source, agent["id"], "/transfer")

    report = ok(owner.post(transfer, json={"destination_organization_id": destination, "dry_run": True}))
    assert {c["user_id"]: c["outcome"] for c in report["contributors"]} == \
        {staying.id: "will retain access", leaving.id: "will be removed"}
    assert {a["user_id"]: a["outcome"] for a in report["assignees"]} == {user.id: "will be removed"}
    assert report["dry_run"] is True and report["correlation_id"] is None
    assert ok(owner.get(agents_path(source, agent["id"])))["contributors"] == [staying.id, leaving.id]  # unchanged

    done = ok(owner.post(transfer, json={"destination_organization_id": destination, "dry_run": False}))
    assert {c["user_id"]: c["outcome"] for c in done["contributors"]} == \
        {staying.id: "retained access", leaving.id: "removed"}
    # A move, not a copy: gone from the source, present in the destination with the same id and config.
    assert error_code(owner.get(agents_path(source, agent["id"])), 404) == "agent_not_found"
    assert agent_names(owner, source) == []
    moved = ok(owner.get(agents_path(destination, agent["id"])))
    assert (moved["name"], moved["instructions"], moved["organization_id"]) == \
        ("Roaming agent", "Be kind.", destination)
    assert moved["contributors"] == [staying.id] and moved["assignees"] == []
    assert agent_names(staying, destination) == ["Roaming agent"]
    assert agent_names(leaving, destination) == [] and agent_names(user, source) == []
    # Both trails record it, tied by one correlation id.
    in_source = wait_for(lambda: audit_entries(owner, source, target=agent["id"], entity_type="agent"),
                         message="source trail")
    in_destination = wait_for(lambda: audit_entries(owner, destination, target=agent["id"]), message="dest trail")
    [out_entry] = [e for e in in_source if e["type"] == "agent.transferred"]
    [in_entry] = [e for e in in_destination if e["type"] == "agent.transferred"]
    assert out_entry["correlation_id"] == in_entry["correlation_id"] == done["correlation_id"]
    assert out_entry["event_id"] != in_entry["event_id"]
    changes = {c["field"]: (c["old_value"], c["new_value"]) for c in in_entry["changes"]}
    assert changes["organization_id"] == (source, destination)
    assert changes["contributors"] == ([staying.id, leaving.id], [staying.id])
    # Each side's agent trail keeps its own part: the destination's starts with the arrival, the
    # source's still holds the agent's life there.
    arrival = trail(owner, destination, agent["id"])["items"]
    assert {r["field"] for r in arrival} == {"organization_id", "contributors", "assignees"}
    assert {r["type"] for r in arrival} == {"agent.transferred"}
    assert {r["type"] for r in trail(owner, source, agent["id"], limit=200)["items"]} == \
        {"agent.created", "agent.contributor_added", "agent.assignee_added", "agent.transferred"}
    # Sent again after it happened: the agent is no longer in the source, nothing moves twice.
    again = owner.post(transfer, json={"destination_organization_id": destination, "dry_run": False})
    assert error_code(again, 404) == "agent_not_found"


def test_who_changed_the_instructions_and_when(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    builder = join(system, owner, org, ["builder"], "builder")
    agent = create_agent(builder, org, "Scribe", instructions="v1")
    ok(admin.patch(agents_path(org, agent["id"]), json={"instructions": "v2"}))
    ok(builder.patch(agents_path(org, agent["id"]), json={"instructions": "v3", "mission": "Write notes"}))

    rows = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(
        trail(owner, org, agent["id"], field="instructions", action="update")["items"]),
        message="both instruction edits in the agent's trail")
    assert [(r["old_value"], r["new_value"]) for r in rows] == [("v2", "v3"), ("v1", "v2")]   # newest first
    assert [r["actor"]["email"] for r in rows] == [builder.email, admin.email]
    assert all(r["entity_type"] == "agent" and r["field"] == "instructions" for r in rows)
    assert rows[0]["occurred_at"] >= rows[1]["occurred_at"]
    by_admin = trail(owner, org, agent["id"], field="instructions", actor=admin.email.upper())["items"]
    assert [(r["old_value"], r["new_value"]) for r in by_admin] == [("v1", "v2")]
    assert [r["field"] for r in trail(owner, org, agent["id"], new_value="NOTES")["items"]] == ["mission"]
    created = trail(owner, org, agent["id"], action="create")["items"]
    assert {r["field"] for r in created} >= {"name", "instructions", "contributors"}
    assert trail(owner, org, agent["id"], since="2999-01-01T00:00:00Z")["items"] == []
    # The trail is Owner/Admin only, and unknown agents are 404.
    assert error_code(builder.get(agents_path(org, agent["id"], "/audit")), 403) == "forbidden"
    assert error_code(owner.get(agents_path(org, "no-such-agent", "/audit")), 404) == "agent_not_found"


def test_the_agent_trail_pages_by_20_unless_told_otherwise(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    agent = create_agent(owner, org, "Busy")
    for n in range(22):
        ok(owner.patch(agents_path(org, agent["id"]), json={"mission": f"m{n}"}))
    wait_for(lambda: len(trail(owner, org, agent["id"], field="mission", limit=200)["items"]) == 22,
             message="22 mission edits in the trail")
    first = trail(owner, org, agent["id"], field="mission")
    assert len(first["items"]) == 20 and first["next_cursor"]
    rest = trail(owner, org, agent["id"], field="mission", cursor=first["next_cursor"])
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    assert [r["new_value"] for r in first["items"] + rest["items"]] == [f"m{n}" for n in reversed(range(22))]
    assert len(trail(owner, org, agent["id"], limit=5)["items"]) == 5
    assert error_code(owner.get(agents_path(org, agent["id"], "/audit"), params={"limit": 500}), 422) == \
        "validation_error"


def test_bad_agent_input_is_refused_and_changes_nothing(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    agent = create_agent(owner, org, "Steady", instructions="Original")
    bad_bodies = [
        ({"name": "x" * 201}, "too_long", "name"),
        ({"instructions": "i" * 20001}, "too_long", "instructions"),
        ({"name": 5}, "invalid_type", "name"),
        ({"instructions": ["a"]}, "invalid_type", "instructions"),
        ({"name": "   "}, "name_required", "name"),
        ({"avatar_url": "javascript:alert(1)"}, "invalid_url", "avatar_url"),
        ({"colour": "red"}, "validation_error", "colour"),
    ]
    for body, code, field in bad_bodies:
        for response in (owner.patch(agents_path(org, agent["id"]), json=body),
                         owner.post(agents_path(org), json=dict({"name": "New"}, **body))):
            assert error_code(response, 422) == code, (body, response.text)
            assert response.json()["error"]["field"] == field
    assert error_code(owner.post(agents_path(org), json={}), 422) == "name_required"
    for method in ("get", "patch", "delete"):
        response = owner.request(method.upper(), agents_path(org, "no-such-agent"), json={"name": "x"})
        assert error_code(response, 404) == "agent_not_found"
    assert error_code(owner.put(agents_path(org, agent["id"], "/assignees/nobody")), 404) == "member_not_found"
    assert error_code(owner.delete(agents_path(org, agent["id"], "/assignees/nobody")), 404) == "assignee_not_found"
    # Nothing changed: one agent, as it was, with only its creation in the trail.
    [only] = ok(owner.get(agents_path(org)))["items"]
    assert (only["name"], only["instructions"], only["avatar_url"]) == ("Steady", "Original", None)
    entries = wait_for(lambda: audit_entries(owner, org, entity_type="agent"), message="the creation entry")
    assert [e["type"] for e in entries] == ["agent.created"]


def test_creating_with_an_idempotency_key_creates_once(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    headers = {"Idempotency-Key": "agent-create-1"}
    first = ok(owner.post(agents_path(org), json={"name": "Once"}, headers=headers), 201)
    again = ok(owner.post(agents_path(org), json={"name": "Once"}, headers=headers), 201)
    assert first["id"] == again["id"] and agent_names(owner, org) == ["Once"]
