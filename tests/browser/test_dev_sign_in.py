"""The console's sign-in page in Chromium, against a gateway run in this process with its services replaced
(no broker): with the development secret in use, the form gets a token from POST /v1/dev/token and the page
is signed in as that user; with a secret of one's own, only the field for a token from the identity
provider is offered. (The flows against the whole system sign in by a redirect's #token= and by pasting.)"""
import time
from collections import OrderedDict

import jwt
import pytest
from nameko.testing.services import replace_dependencies

from common.config import DEV_JWT_SECRET
from gateway import authentication, tokens
from gateway.service import GatewayService
from tests.browser.helpers import DESKTOP

ME = {"id": "dina", "email": "dina@example.com", "name": "Dina", "active_organization_id": "o1", "memberships": []}
CARD = {"id": "o1", "name": "Dina", "type": "individual", "roles": ["owner", "billing"], "member_count": 1,
        "active": True, "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z",
        "created_by": "dina"}


def answers(proxy_method, value):
    proxy_method.call_async.return_value.result.return_value = value


@pytest.fixture
def gateway(container_factory, web_config, monkeypatch, environment):
    """The base URL of a gateway whose services answer as for Dina, with no secret or identity provider set."""
    environment.unset("JWT_SECRET", "JWT_JWKS", "JWT_ISSUER", "JWT_AUDIENCE")
    monkeypatch.setattr(authentication, "_signed_in", OrderedDict())
    container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
    orgs, members, *_ = replace_dependencies(container, "orgs", "members", "credits", "audit")
    answers(orgs.get_me, ME)
    answers(orgs.list_organizations, {"items": [CARD], "next_cursor": None})
    answers(members.my_invitations, {"items": [], "next_cursor": None})
    container.start()
    return f"http://{web_config['WEB_SERVER_ADDRESS']}"


def open_sign_in(console, gateway):
    console.driver.get("about:blank")
    console.viewport(*DESKTOP)
    console.driver.get(f"{gateway}/console/")
    console.heading_is("Sign in")


@pytest.mark.parametrize("own_secret", [False, True])
def test_loading_the_sign_in_page_logs_no_error_in_the_browser(gateway, console, environment, own_secret):
    """Not even a refused request (the page once probed POST /v1/dev/token for its 422 or 404, a red line in
    the browser's console on every load): it asks /console/settings.json what to offer."""
    if own_secret:
        environment.set(JWT_SECRET="a-secret-of-our-own")
    console.driver.get_log("browser")                       # whatever came before
    open_sign_in(console, gateway)
    assert bool(console.driver.find_elements("css selector", "input[name='sub']")) is not own_secret
    assert console.driver.get_log("browser") == []


def test_in_development_the_form_gets_a_token_for_the_user(gateway, console):
    open_sign_in(console, gateway)
    form = console.find("form:has(input[name='sub'])")
    assert console.driver.switch_to.active_element == console.find("input[name='sub']", form)
    console.fill("sub", "system", form)
    console.fill("email", "dina@example.com", form)
    console.click("Sign in", within=form)
    assert "never a user" in console.error_beside("sub", form)      # the rules of tokens, beside the field
    console.shot("sign-in-development")

    console.fill("sub", "dina", form)
    console.fill("name", "Dina", form)
    console.click("Sign in", within=form)
    console.heading_is("Organizations")
    assert "ACTIVE" in console.row_of("Dina").text
    token = console.driver.execute_script("return sessionStorage.getItem('console.token')")
    identity = tokens.identity_from_header(f"Bearer {token}")
    assert (identity.id, identity.email, identity.name) == ("dina", "dina@example.com", "Dina")


def test_with_a_secret_of_ones_own_only_a_token_is_asked_for(gateway, console, environment):
    environment.set(JWT_SECRET="a-secret-of-our-own")
    open_sign_in(console, gateway)
    console.find("textarea[name='token']")
    assert not console.driver.find_elements("css selector", "input[name='sub']")
    console.click("Sign in with this token")
    assert console.error_beside("token") == "Paste the token your identity provider gave you."
    development_token = jwt.encode({"sub": "dina", "email": "dina@example.com", "exp": int(time.time()) + 600},
                                   DEV_JWT_SECRET, algorithm="HS256")
    console.fill("token", development_token)
    console.click("Sign in with this token")
    console.text_appears("The token was refused: The token is not valid.", css="main .notice")
    assert console.driver.execute_script("return sessionStorage.getItem('console.token')") is None
