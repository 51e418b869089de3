"""The console's flows in headless Chromium against the whole running system (SQLite): each test sets up what
it needs through the API as fresh users (tests/conftest.py's `system`), then does what a person would in the
page and checks what the page shows, and what the API then holds."""
import csv
import io
import json

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser.helpers import PHONE, UNLABELLED_CONTROLS, activate, active_organization
from tests.e2e.helpers import create_organization, invite, join, ok, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)

TOO_LONG = "x" * 201


def test_create_an_organization_with_both_exact_messages(system, console):
    alice = system.user("alice")
    console.sign_in(alice)
    console.click("Create Organization")
    dialog = console.dialog()
    assert dialog.find_element("css selector", "h2").text == "Create Organization"
    name = console.find("input[name='name']", dialog)
    assert console.driver.switch_to.active_element == name   # the dialog opens on its field
    assert console.find(".counter", dialog).text == "0/200 characters"

    console.click("Create", within=dialog)
    assert console.error_beside("name", dialog) == "Organization name is required."
    console.fill("name", TOO_LONG, dialog)
    assert console.find(".counter", dialog).text == "201/200 characters"
    console.click("Create", within=dialog)
    console.text_appears("Name must be 200 characters or fewer.", css="[data-field='name'] .field-error", within=dialog)

    console.fill("name", "Sehat Clinic", dialog)
    assert console.find(".counter", dialog).text == "12/200 characters"
    console.shot("create-organization-dialog", docs=True)
    console.click("Create", within=dialog)
    console.no_dialog()
    card = console.row_of("Sehat Clinic")
    assert "Owner" in card.text and "Billing" in card.text and "1 member" in card.text
    assert [c["name"] for c in ok(alice.get("/v1/organizations"))["items"]].count("Sehat Clinic") == 1
    console.shot("organizations", docs=True)

    # At phone width the button sits in the main area, as wide as it.
    console.viewport(*PHONE)
    button = console.element_with_text("Create Organization")
    main = console.find("main")
    assert button.rect["width"] > main.rect["width"] * 0.8
    console.shot("organizations-phone", docs=True)


def test_switch_the_active_organization(system, console):
    alice = system.user("alice")
    lab = create_organization(alice, "Sehat Lab")
    console.sign_in(alice)
    card = console.row_of("Sehat Lab")
    assert "ACTIVE" not in card.text
    console.click("Switch", within=card)
    console.text_appears("Sehat Lab is now your active organization.", css="#status")
    assert "ACTIVE" in console.row_of("Sehat Lab").text
    assert active_organization(console).startswith("Sehat Lab · Collective · Owner, Billing · since ")
    assert ok(alice.get("/v1/me"))["active_organization_id"] == lab["id"]


def test_two_namesakes_are_told_apart_in_the_header_and_the_right_one_is_switched_to(system, console):
    """Two organizations named "Sehat Clinic": one Dina founded, one where she is a Builder. The header's
    switcher says which is which (type, roles, when made, the start of the id) and switches to the one
    chosen, whatever screen is open."""
    dina, budi = system.user("dina"), system.user("budi")
    own = create_organization(dina, "Sehat Clinic")
    other = create_organization(budi, "Sehat Clinic")
    join_as = invite(budi, other["id"], dina.email, ["builder"])
    ok(dina.post(f"/v1/invitations/{join_as['id']}/accept"))
    activate(dina, own["id"])
    console.sign_in(dina)
    console.go("Members")
    options = {o.get_attribute("value"): o.text
               for o in console.driver.find_elements(By.CSS_SELECTOR, "#organization-switcher option")}
    assert options[own["id"]].startswith("Sehat Clinic · Collective · Owner, Billing · since ")
    assert options[other["id"]].startswith("Sehat Clinic · Collective · Builder · since ")
    assert options[own["id"]].endswith(f"#{own['id'][:6]}") and options[other["id"]].endswith(f"#{other['id'][:6]}")
    assert len(set(options.values())) == len(options)
    console.shot("organization-switcher", docs=True)
    Select(console.find("#organization-switcher")).select_by_value(other["id"])
    console.text_appears("Sehat Clinic is now your active organization.", css="#status")
    console.heading_is("Members")
    wait_for(lambda: ok(dina.get("/v1/me"))["active_organization_id"] == other["id"], message="the switch")
    assert budi.name in console.find("main table").text          # the other clinic's members now
    assert active_organization(console).startswith("Sehat Clinic · Collective · Builder")


def test_invite_and_accept_as_the_invitee(system, console):
    dina, budi = system.user("dina"), system.user("budi")
    org = create_organization(dina, "Sehat Clinic")
    activate(dina, org["id"])
    later = invite(dina, org["id"], f"later-{budi.email}", ["member"])
    console.sign_in(dina)
    console.go("Members")

    invite_form = console.find("form:has(input[name='email'])")
    console.click("Send invitation", within=invite_form)
    assert console.error_beside("email", invite_form)           # the API's refusal, beside the field it names
    console.fill("email", "not-an-email", invite_form)
    console.click("Send invitation", within=invite_form)
    # In the screen's words (ui.js describeError), not the API's rule about compatibility characters.
    assert console.error_beside("email", invite_form) == "Email must be an email address, such as name@example.com."
    console.fill("email", budi.email, invite_form)
    console.find("input[name='roles'][value='builder']", invite_form).click()
    console.find("input[name='roles'][value='member']", invite_form).click()
    console.click("Send invitation", within=invite_form)
    console.text_appears(f"Invitation sent to {budi.email}.", css="#status")
    row = console.row_of(budi.email)
    assert "Pending" in row.text and "Builder" in row.text

    # Too early to send again: the button says from when (10 minutes after the last send), and is disabled.
    resend = console.find("button[aria-label^='Resend the invitation']", row)
    assert resend.text.startswith("Resend from ") and not resend.is_enabled()
    console.click("Revoke", within=console.row_of(later["email"]))
    console.text_appears(f"Invitation to {later['email']} revoked.", css="#status")
    console.shot("members", docs=True)

    # Budi signs in by pasting a token (the gateway runs with an explicit secret: no development sign-in).
    console.click("Sign out")
    console.text_appears("paste the token", css="main")
    console.fill("token", budi.session.headers["Authorization"].removeprefix("Bearer "))
    console.click("Sign in with this token")
    console.heading_is("Organizations")
    row = console.row_of("Sehat Clinic", within=console.find("section[aria-labelledby='invitations-for-me']"))
    console.click("Accept", within=row)
    console.text_appears("You joined Sehat Clinic.", css="#status")
    assert "Builder" in console.row_of("Sehat Clinic").text
    assert {m["user_id"] for m in ok(dina.get(f"/v1/organizations/{org['id']}/members"))["items"]} == {dina.id, budi.id}


def test_edit_roles(system, console):
    dina = system.user("dina")
    org = create_organization(dina, "Sehat Clinic")
    activate(dina, org["id"])
    budi = join(system, dina, org["id"], ["member"], label="budi")
    console.sign_in(dina)
    console.go("Members")

    console.click("Edit roles", within=console.row_of(budi.email))
    dialog = console.dialog()
    console.find("input[value='member']", dialog).click()         # none left: refused beside the roles
    console.click("Save roles", within=dialog)
    assert console.error_beside("roles", dialog) == "At least one role is required."
    console.find("input[value='builder']", dialog).click()
    console.click("Save roles", within=dialog)
    console.no_dialog()
    console.text_appears("Budi now holds Builder.", css="#status")
    assert "Builder" in console.row_of(budi.email).text
    members = ok(dina.get(f"/v1/organizations/{org['id']}/members"))["items"]
    assert next(m["roles"] for m in members if m["user_id"] == budi.id) == ["builder"]

    # The role filter, then the CSV of the filtered list.
    console.choose("role", "Builder")
    wait_for(lambda: dina.email not in console.find(".member-results").text, message="the filtered list")
    console.click("Download CSV")
    rows = list(csv.DictReader(io.StringIO(console.downloaded("members.csv").read_text())))
    assert [row["email"] for row in rows] == [budi.email]


def test_budget_group_with_a_limit_and_a_refused_spend_shown_in_my_credit(system, console):
    dina = system.user("dina")
    org = create_organization(dina, "Sehat Clinic")
    activate(dina, org["id"])
    budi = join(system, dina, org["id"], ["builder"], label="budi")
    ok(dina.post(f"/v1/organizations/{org['id']}/credits/grants", json={"amount": "50", "type": "paid"}), 201)
    ok(budi.post(f"/v1/organizations/{org['id']}/agents", json={"name": "Intake desk"}), 201)
    console.sign_in(dina)
    console.go("Budget Groups")

    for name, limit in [("Interns", "5"), ("Doctors", "")]:
        create = console.find("form:has(input[name='monthly_limit'])")
        console.fill("name", name, create)
        console.fill("monthly_limit", limit, create)
        console.click("Create Budget Group", within=create)
        console.row_of(name)
    assert "5 credits" in console.row_of("Interns").text
    assert "No limit" in console.row_of("Doctors").text
    console.shot("budget-groups", docs=True)

    console.click("Interns", css="a", tag="a")
    console.heading_is("Interns")
    console.choose("user_id", f"Budi ({budi.email})")
    console.click("Add to group")
    console.text_appears("Budi is now in Interns.", css="#status")
    assert "5 credits" in console.row_of("Budi").text

    activate(budi, org["id"])
    console.sign_in(budi)
    console.go("My Credit")
    spend = console.find("form:has(input[name='amount'])")
    console.fill("amount", "1.25", spend)
    console.click("Use agent", within=spend)
    console.text_appears("Spent 1.25 credits in Sehat Clinic. 3.75 credits left of your monthly budget.",
                         css=".spend-result")
    console.fill("amount", "4", spend)
    console.click("Use agent", within=spend)
    refusal = console.error_beside("amount", spend)
    assert refusal.startswith("Refused: budget exceeded.") and "Interns" in refusal
    assert "1.25 credits" in console.row_of("Sehat Clinic").text
    console.shot("my-credit", docs=True)

    # Back as Dina: the group's page shows what Budi used of his limit.
    console.sign_in(dina)
    console.go("Budget Groups")
    console.click("Interns", css="a", tag="a")
    console.heading_is("Interns")
    assert "1.25 credits" in console.row_of("Budi").text and "3.75 credits" in console.row_of("Budi").text
    console.shot("budget-group-usage", docs=True)


def test_agent_transfer_dry_run(system, console):
    dina = system.user("dina")
    clinic, lab = create_organization(dina, "Sehat Clinic"), create_organization(dina, "Sehat Lab")
    activate(dina, clinic["id"])
    budi = join(system, dina, clinic["id"], ["builder"], label="budi")     # not in the lab: loses access
    citra = join(system, dina, clinic["id"], ["builder"], label="citra")
    ok(dina.post(f"/v1/organizations/{lab['id']}/invitations", json={"email": citra.email, "roles": ["builder"]}), 201)
    lab_invitation = ok(citra.get("/v1/invitations", params={"status": "pending"}))["items"][0]
    ok(citra.post(f"/v1/invitations/{lab_invitation['id']}/accept"))    # a Builder there too: keeps access
    agent = ok(dina.post(f"/v1/organizations/{clinic['id']}/agents", json={"name": "Triage nurse"}), 201)
    for person in (budi, citra):
        ok(dina.post(f"/v1/organizations/{clinic['id']}/agents/{agent['id']}/contributors",
                     json={"user_id": person.id}), 201)
    console.sign_in(dina)
    console.go("Agents")
    console.click("Triage nurse", css="a", tag="a")
    console.heading_is("Triage nurse")

    console.choose("destination_organization_id", "Sehat Lab")
    console.click("Preview transfer")
    report = console.find(".transfer-report table")
    assert "will be removed" in console.row_of("Budi", report).text
    assert "will retain access" in console.row_of("Citra", report).text
    console.shot("agent-transfer-dry-run", docs=True)
    assert ok(dina.get(f"/v1/organizations/{clinic['id']}/agents/{agent['id']}"))["organization_id"] == clinic["id"]

    console.click("Transfer agent", css=".transfer-report button")
    dialog = console.dialog()
    assert "Move Triage nurse to Sehat Lab?" in dialog.text
    console.click("Transfer agent", within=dialog)
    console.text_appears("Triage nurse moved to Sehat Lab.", css="#status")
    moved = ok(dina.get(f"/v1/organizations/{lab['id']}/agents/{agent['id']}"))
    assert moved["contributors"] == [citra.id]


def test_an_agents_history_reads_as_phrases_with_its_name(system, console):
    """The audit trail for people (issue 28): an agent's page shows its configuration and links to its
    History, where each change is a phrase ("Instructions changed"), the agent is named, not only its id,
    and a list of people reads as their names."""
    dina = system.user("dina")
    org = create_organization(dina, "Sehat Clinic")["id"]
    activate(dina, org)
    budi = join(system, dina, org, ["builder"], label="budi")
    agent = ok(dina.post(f"/v1/organizations/{org}/agents", json={"name": "Triage nurse",
                                                                     "instructions": "Greet the patient."}), 201)
    ok(dina.patch(f"/v1/organizations/{org}/agents/{agent['id']}", json={"instructions": "Ask about symptoms."}))
    ok(dina.post(f"/v1/organizations/{org}/agents/{agent['id']}/contributors", json={"user_id": budi.id}), 201)
    wait_for(lambda: len(ok(dina.get(f"/v1/organizations/{org}/audit", params={"target": agent["id"]}))["items"]) >= 3,
             message="the agent's three entries")
    console.sign_in(dina)
    console.go("Agents")
    console.click("Triage nurse", css="a", tag="a")
    console.heading_is("Triage nurse")
    assert "Ask about symptoms." in console.find(".agent-configuration").text
    console.click("History", css="main a", tag="a")
    console.heading_is("Audit Trail")
    console.text_appears("the history of Triage nurse", css="main .subtitle")
    changed = console.row_of("Instructions changed")
    assert "Triage nurse" in changed.text
    assert "Greet the patient." in changed.text and "Ask about symptoms." in changed.text
    assert "agent.updated" in changed.text                              # the event's code, below the phrase
    added = console.row_of("Agent contributor added")
    assert "Budi" in added.text
    console.shot("audit-agent-history", docs=True)


def test_audit_filter_and_csv_download(system, console):
    dina = system.user("dina")
    org = create_organization(dina, "Sehat Clinic")
    activate(dina, org["id"])
    for name in ("Sehat Clinic Jakarta", "Sehat Clinic Bandung"):
        ok(dina.patch(f"/v1/organizations/{org['id']}", json={"name": name}))
    ok(dina.post(f"/v1/organizations/{org['id']}/budget-groups", json={"name": "Interns"}), 201)
    trail = f"/v1/organizations/{org['id']}/audit"
    named = {"entity_type": "organization", "field": "name"}

    def entries_naming_a_name():
        entries = ok(dina.get(trail, params=named))["items"]
        return entries if sum(entry["type"] == "organization.renamed" for entry in entries) == 2 else None
    expected = wait_for(entries_naming_a_name, message="both renames in the trail")
    console.sign_in(dina)
    console.go("Audit Trail")
    filters = console.find("form[role='search']")
    console.choose("entity_type", "organization", filters)
    console.choose("field", "Name", filters)
    console.click("Apply filters", within=filters)
    console.text_appears(f"{len(expected)} entries shown.", css="main .hint")
    shown = console.find("main table").text
    assert "Sehat Clinic Bandung" in shown and "budget_group" not in shown
    console.shot("audit", docs=True)

    console.click("Download CSV", within=filters)
    rows = list(csv.DictReader(io.StringIO(console.downloaded("audit.csv").read_text())))
    assert {row["event_id"] for row in rows} == {entry["event_id"] for entry in expected}
    assert {row["field"] for row in rows} >= {"name"}
    console.text_appears("Downloaded audit.csv", css="#status")
    console.click("Download JSON", within=filters)                 # the verifiable export (SPEC §13)
    exported = json.loads(console.downloaded("audit.json").read_text())
    assert {entry["event_id"] for entry in exported["entries"]} == {entry["event_id"] for entry in expected}
    assert all(entry["hash"] for entry in exported["entries"])
    console.text_appears(f"Downloaded audit.json ({len(expected)} entries)", css="#status")

    # More than a page: the first 20, then "Load more" for the rest.
    for number in range(20):
        ok(dina.patch(f"/v1/organizations/{org['id']}", json={"name": f"Sehat Clinic {number}"}))
    total = len(expected) + 20
    wait_for(lambda: len(ok(dina.get(trail, params=dict(named, limit=200)))["items"]) == total,
             message="every rename in the trail")
    console.click("Apply filters", within=filters)
    console.text_appears("20 entries shown; more below.", css="main .hint")
    console.click("Load more", css="button.more")
    console.text_appears(f"{total} entries shown.", css="main .hint")


def test_every_control_has_a_label_and_the_dialogs_work_by_keyboard(system, console):
    dina = system.user("dina")
    org = create_organization(dina, "Sehat Clinic")
    activate(dina, org["id"])
    ok(dina.post(f"/v1/organizations/{org['id']}/agents", json={"name": "Intake desk"}), 201)
    console.sign_in(dina)
    for screen in ("Members", "Budget Groups", "Agents", "Credits", "My Credit", "Audit Trail", "Organizations"):
        console.go(screen)
        assert console.driver.execute_script(UNLABELLED_CONTROLS) == [], screen
    console.go("Agents")
    console.click("Intake desk", css="a", tag="a")
    console.heading_is("Intake desk")
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == [], "the agent's page"
    console.go("Organizations")

    create = console.element_with_text("Create Organization")
    create.send_keys(Keys.ENTER)
    dialog = console.dialog()
    assert console.driver.switch_to.active_element == console.find("input[name='name']", dialog)
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []
    ActionChains(console.driver).send_keys(Keys.ESCAPE).perform()
    console.no_dialog()
    assert console.driver.switch_to.active_element == create     # focus back where it was
