"""The invitation email's link, opened in the console (issue 28): the link read from the email members wrote
to its log (no SMTP in tests), opened by the invitee: signed out, the sign-in comes first and returns to
the invitation; the page shows the organization, the roles and who invited; Accept, then "Switch to <name>"
makes it the active organization. Opened by someone else, the page says it is not theirs."""
import pytest

from tests.browser.helpers import active_organization, link_in_the_email
from tests.e2e.helpers import create_organization, invite, ok

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def test_the_invitation_link_from_the_email_opens_its_page_accept_then_switch(system, console):
    dina, budi, sari = system.user("dina"), system.user("budi"), system.user("sari")
    org = create_organization(dina, "Sehat Clinic")["id"]
    invitation = invite(dina, org, budi.email, ["builder"])
    link = link_in_the_email(system, invitation["id"])

    # Someone else opening it is told it is not theirs.
    console.sign_in(sari)
    console.driver.get(link)
    console.heading_is("Invitation")
    console.text_appears("It may be addressed to another email", css="main")

    # Budi, signed out, opens the link: the sign-in first, then the invitation.
    console.click("Sign out")
    console.driver.get(link)
    console.text_appears("paste the token", css="main")
    console.fill("token", budi.session.headers["Authorization"].removeprefix("Bearer "))
    console.click("Sign in with this token")
    console.heading_is("Invitation")
    page = console.find("main").text
    assert "You are invited to join Sehat Clinic." in page and "Builder" in page and dina.email in page
    console.shot("invitation-link", docs=True)
    console.click("Accept")
    console.text_appears("You joined Sehat Clinic.", css="main")
    console.click("Switch to Sehat Clinic")
    console.heading_is("Organizations")
    console.text_appears("Sehat Clinic is your active organization.", css="#status")
    assert ok(budi.get("/v1/me"))["active_organization_id"] == org
    assert active_organization(console).startswith("Sehat Clinic · Collective · Builder · since ")
