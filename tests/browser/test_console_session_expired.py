"""A token that expires while the console is open (issue 28): the sign-in page says so in a person's words
and names who was signed in; signing in again returns to the screen one was on."""
import time

import pytest

from gateway import tokens
from tests.browser.helpers import owner_of

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def test_an_expired_session_names_the_user_and_returns_to_the_same_screen(system, console):
    dina, _ = owner_of(system, "dina", "Sehat Clinic")
    short = tokens.mint(dina.id, dina.email, "Dina", ttl_seconds=3)
    dina.session.headers["Authorization"] = f"Bearer {short}"
    console.sign_in(dina)
    console.go("Members")
    time.sleep(3.5)
    console.click("Budget Groups", css="nav a", tag="a")
    notice = console.text_appears("Your session has expired.", css="main .notice")
    assert notice == f"Your session has expired. Sign in again as Dina ({dina.email}) to go on where you were."
    assert "token_expired" not in notice and "refused" not in notice
    assert console.driver.current_url.endswith("#/budget-groups")
    console.fill("token", tokens.mint(dina.id, dina.email, "Dina"))
    console.click("Sign in with this token")
    console.heading_is("Budget Groups")
