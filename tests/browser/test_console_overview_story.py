"""The Overview page's story, end to end in the console only (issue 28), with two browsers open at once as two
people would have: Dina's, and the one Budi and then Sari use.

Dina creates Sehat Clinic and invites Budi as Builder and Sari from finance; Budi opens the link of his
invitation email, joins, and builds an agent whose instructions he then changes; Sari joins from her list of
invitations; Dina caps the support team with a budget group (a mistyped limit is refused in the screen's
words) and offers Sari Billing, which Sari accepts in her browser; months later Dina reads the audit trail:
the agent by its name, "Instructions changed", people by their names. Every step is a click or a keystroke in
a page; the API is only read, to check what the pages did and to find the invitation's id for the email."""
import pytest
from selenium.webdriver.common.by import By

from tests.browser.helpers import active_organization, link_in_the_email
from tests.e2e.helpers import ok, path, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def sign_in_with_token(console, person):
    """The sign-in page's token field, as a person pastes what their identity provider gave them."""
    console.text_appears("paste the token", css="main")
    console.fill("token", person.session.headers["Authorization"].removeprefix("Bearer "))
    console.click("Sign in with this token")


def invite(console, email, role_label):
    form = console.find("form:has(input[name='email'])")
    console.fill("email", email, form)
    for box in form.find_elements(By.CSS_SELECTOR, "input[name='roles']"):
        label = box.find_element(By.XPATH, "./..").text.strip()
        if box.is_selected() != (label == role_label):
            box.click()
    console.click("Send invitation", within=form)
    console.text_appears(f"Invitation sent to {email}.", css="#status")


def test_the_overview_story_dina_budi_and_sari_in_two_browsers(system, console, second_console):
    dina, budi, sari = system.user("dina"), system.user("budi"), system.user("sari")
    other = second_console

    # Dina founds Sehat Clinic and makes it her active organization.
    console.sign_in(dina)
    console.click("Create Organization")
    dialog = console.dialog()
    console.fill("name", "Sehat Clinic", dialog)
    console.click("Create", within=dialog)
    console.no_dialog()
    console.click("Switch", within=console.row_of("Sehat Clinic"))
    console.text_appears("Sehat Clinic is now your active organization.", css="#status")
    org = ok(dina.get("/v1/me"))["active_organization_id"]

    # She invites Budi as Builder and Sari (finance) as Member: Billing is handed over, not invited.
    console.go("Members")
    invite(console, budi.email, "Builder")
    invite(console, sari.email, "Member")

    # Budi opens the link in his invitation email, signs in, joins and switches to the clinic.
    [invitation] = ok(budi.get("/v1/invitations", params={"status": "pending"}))["items"]
    other.driver.get(link_in_the_email(system, invitation["id"]))
    sign_in_with_token(other, budi)
    other.heading_is("Invitation")
    other.click("Accept")
    other.click("Switch to Sehat Clinic")
    other.heading_is("Organizations")
    assert active_organization(other).startswith("Sehat Clinic · Collective · Builder")

    # Budi builds the triage agent, then changes its instructions.
    other.go("Agents")
    other.click("Create Agent")
    dialog = other.dialog()
    other.fill("name", "Triage nurse", dialog)
    other.fill("instructions", "Greet the patient.", dialog)
    other.click("Create Agent", within=dialog)
    other.heading_is("Triage nurse")
    other.click("Edit")
    dialog = other.dialog()
    other.fill("instructions", "Ask about symptoms first.", dialog)
    other.click("Save", within=dialog)
    other.text_appears("Agent saved.", css="#status")
    assert "Ask about symptoms first." in other.find(".agent-configuration").text
    other.click("Sign out")

    # Sari signs in in the same browser and accepts from her list of invitations.
    sign_in_with_token(other, sari)
    other.heading_is("Organizations")
    pending = other.row_of("Sehat Clinic", within=other.find("section[aria-labelledby='invitations-for-me']"))
    other.click("Accept", within=pending)
    other.text_appears("You joined Sehat Clinic.", css="#status")
    other.click("Switch", within=other.row_of("Sehat Clinic"))
    other.text_appears("Sehat Clinic is now your active organization.", css="#status")

    # Dina caps the support team: a mistyped limit is refused beside its field in the screen's words.
    console.go("Budget Groups")
    create = console.find("form:has(input[name='monthly_limit'])")
    console.fill("name", "Support team", create)
    console.fill("monthly_limit", "ten", create)
    console.click("Create Budget Group", within=create)
    refusal = console.error_beside("monthly_limit", create)
    assert refusal == "Monthly limit per member must be a number, such as 12.5."
    assert ok(dina.get(path(org, "/budget-groups")))["items"] == []           # refused: nothing made
    console.fill("monthly_limit", "20", create)
    console.click("Create Budget Group", within=create)
    assert "20 credits" in console.row_of("Support team").text
    console.click("Support team", css="a", tag="a")
    console.heading_is("Support team")
    console.choose("user_id", f"Budi ({budi.email})")
    console.click("Add to group")
    console.text_appears("Budi is now in Support team.", css="#status")

    # Dina offers Billing to Sari; Sari, in her own browser, sees the offer and accepts it.
    console.go("Members")
    section = console.find("section[aria-labelledby='billing-heading']")
    console.choose("to_user_id", "Sari", within=section)
    console.click("Offer Billing", within=section)
    console.text_appears("Billing offered to Sari. It moves when they accept.", css="#status")
    other.go("Members")
    offer = other.text_appears("Dina offered Billing to Sari", css=".pending-transfer")
    assert "Accept Billing" in offer
    other.click("Accept Billing", within=other.find(".pending-transfer"))
    other.text_appears("You now hold Billing.", css="#status")
    other.go("Billing")                                             # hers to open now
    other.shot("overview-sari-holds-billing", docs=True)
    console.go("Organizations")
    console.go("Members")
    console.text_appears("Sari holds Billing", css="section[aria-labelledby='billing-heading']")
    assert active_organization(console).startswith("Sehat Clinic · Collective · Owner · since ")
    assert active_organization(other).startswith("Sehat Clinic · Collective · Member, Billing · since ")

    # Months later, Dina reads what happened, in words.
    wait_for(lambda: any(e["type"] == "billing_transfer.accepted"
                         for e in ok(dina.get(path(org, "/audit"), params={"limit": 200}))["items"]),
             message="the hand-over in the audit trail")
    console.go("Audit Trail")
    changed = console.row_of("Instructions changed")
    assert "Triage nurse" in changed.text and "Budi" in changed.text
    assert "Greet the patient." in changed.text and "Ask about symptoms first." in changed.text
    trail = console.find("main table").text
    for phrase in ("Agent created", "Invitation accepted", "Billing transfer accepted", "Budget group created"):
        assert phrase in trail, phrase
    console.shot("overview-audit-trail", docs=True)

    # What the pages did, as the API holds it.
    roles = {m["user_id"]: m["roles"] for m in ok(dina.get(path(org, "/members")))["items"]}
    assert roles[budi.id] == ["builder"] and "billing" in roles[sari.id] and "billing" not in roles[dina.id]
    [agent] = ok(dina.get(path(org, "/agents")))["items"]
    assert (agent["name"], agent["instructions"]) == ("Triage nurse", "Ask about symptoms first.")
    [group] = ok(dina.get(path(org, "/budget-groups")))["items"]
    assert (group["name"], group["monthly_limit"], group["member_count"]) == ("Support team", "20.0000", 1)
