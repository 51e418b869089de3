"""The console's routes through a running gateway (RPC proxies replaced, no broker): its static files with
their content types, served from its folder only and not shadowed by the catch-all 404, left out of the
OpenAPI document; and the development sign-in, which mints a token only while the development secret is in use."""
import json
import re
import socket

import pytest
import requests
from nameko.testing.services import replace_dependencies

from gateway import tokens
from gateway.http import ROUTES
from gateway.openapi import document
from gateway.routes import console
from gateway.service import GatewayService

# A console folder of the test's own, with one file of each type, beside a file that must never be served.
FILES = {"index.html": b"<!doctype html><title>console</title>", "app.js": b"export const x = 1;",
         "style.css": b"body { margin: 0; }", "screens/agents.js": b"export {};", "logo.png": b"\x89PNG\r\n\x1a\n"}
SECRET = b"outside the console folder"


@pytest.fixture
def gateway(container_factory, web_config, monkeypatch, tmp_path):
    """The base URL of a running gateway whose console folder is tmp_path/console."""
    folder = tmp_path / "console"
    for name, content in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    monkeypatch.setattr(console, "CONSOLE_DIR", folder)
    container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
    replace_dependencies(container, "orgs", "members", "credits", "audit")
    container.start()
    return f"http://{web_config['WEB_SERVER_ADDRESS']}"


def raw_get(base_url, target):
    """GET `target` exactly as written (no client normalising `..` or escapes): status and body."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode("latin-1"))
        answer = b""
        while data := conn.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


# Each test starts a gateway (a second to stop it): the cases of one rule are checked in one test.
SERVED = [("/console/", "index.html", "text/html; charset=utf-8"),
          ("/console/index.html", "index.html", "text/html; charset=utf-8"),
          ("/console/app.js", "app.js", "text/javascript; charset=utf-8"),
          ("/console/screens/agents.js", "screens/agents.js", "text/javascript; charset=utf-8"),
          ("/console/style.css", "style.css", "text/css; charset=utf-8"),
          ("/console/logo.png", "logo.png", "image/png")]


def test_the_console_files_are_served_without_a_token_with_their_content_type(gateway):
    for path, name, content_type in SERVED:
        response = requests.get(gateway + path, timeout=5)
        assert response.status_code == 200, path
        assert response.content == FILES[name], path
        assert response.headers["Content-Type"] == content_type, path
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_console_without_its_slash_is_redirected_to_it(gateway):
    response = requests.get(gateway + "/console", allow_redirects=False, timeout=5)
    assert (response.status_code, response.headers["Location"]) == (308, "/console/")


def test_an_unknown_console_file_is_a_json_404(gateway):
    for path in ("/console/nothing.js", "/console/screens/", "/console/screens", "/console/a/b.css"):
        response = requests.get(gateway + path, timeout=5)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "route_not_found"


# Sent as written: a browser or requests would resolve the dots and escapes before sending.
TRAVERSALS = [
    "/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/..%2fsecret.txt", "/console/%2E%2E%2Fsecret.txt",
    "/console/screens/../../secret.txt", "/console/./../secret.txt", "/console//etc/passwd", "/console/%2fetc/passwd",
    "/console/%2F%2Fetc%2Fpasswd", "/console/C:%5Cwindows%5Cwin.ini", "/console/..%5csecret.txt",
    "/console/app.js%00.png", "/console/%00", "/console/index.html/..",
]


def test_nothing_outside_the_console_folder_is_ever_served(gateway):
    for target in TRAVERSALS:
        status, body = raw_get(gateway, target)
        assert status in (400, 404), target
        assert SECRET not in body and b"root:" not in body, target
        assert json.loads(body)["error"]["code"] in ("route_not_found", "nul_character"), target


def test_the_catch_all_does_not_shadow_the_console_and_still_answers_the_rest(gateway):
    assert requests.get(gateway + "/console/app.js", timeout=5).status_code == 200
    for path in ("/consolex", "/console.js", "/v1/console/app.js"):
        response = requests.get(gateway + path, timeout=5)
        assert (response.status_code, response.json()["error"]["code"]) == (404, "route_not_found"), path
    # A method the console does not have: the catch-all's JSON 404, never a file.
    response = requests.post(gateway + "/console/app.js", timeout=5)
    assert response.status_code in (404, 405) and response.headers["Content-Type"] == "application/json"


def test_the_console_is_not_in_the_openapi_document_but_the_dev_token_is():
    paths = document()["paths"]
    assert not [path for path in paths if path.startswith("/console")]
    assert not [r for r in ROUTES if r.path.startswith("/console")]
    operation = paths["/v1/dev/token"]["post"]
    assert "security" not in operation and {"200", "404", "422"} <= set(operation["responses"])


def test_the_console_folder_holds_the_page_and_every_module_it_imports():
    files = console.console_files()
    assert {"index.html", "app.js", "style.css"} <= set(files)
    for name, path in files.items():
        if name.endswith(".js"):
            for imported in re.findall(r'\bfrom "(\.{1,2}/[^"]+)";', path.read_text()):
                target = (path.parent / imported).resolve().relative_to(console.CONSOLE_DIR).as_posix()
                assert target in files, (name, imported)


# ---- the development sign-in ------------------------------------------------------------------------------
@pytest.fixture
def development_secret(environment):
    """The settings of a developer's machine: no JWT_SECRET of one's own, no identity provider."""
    environment.unset("JWT_SECRET", "JWT_JWKS", "JWT_ISSUER", "JWT_AUDIENCE")


def ask_token(gateway, body):
    return requests.post(gateway + "/v1/dev/token", json=body, timeout=5)


def test_with_the_development_secret_the_form_gets_a_token_the_gateway_accepts(gateway, development_secret):
    response = ask_token(gateway, {"sub": "dina", "email": " Dina@Example.com ", "name": " Dina "})
    assert response.status_code == 200, response.text
    identity = tokens.identity_from_header("Bearer " + response.json()["token"])
    assert (identity.id, identity.email, identity.name) == ("dina", "dina@example.com", "Dina")


FORM_MISTAKES = [
    ({"sub": "system", "email": "a@example.com"}, "sub"),
    ({"sub": "key:abc", "email": "a@example.com"}, "sub"),
    ({"sub": "", "email": "a@example.com"}, "sub"),
    ({"sub": "a\tb", "email": "a@example.com"}, "sub"),
    ({"sub": "x" * 129, "email": "a@example.com"}, "sub"),
    ({"email": "a@example.com"}, "sub"),
    ({"sub": "a", "email": "not an email"}, "email"),
    ({"sub": "a", "email": "\u212aim@example.com"}, "email"),   # the Kelvin sign for a K
    ({"sub": "a"}, "email"),
    ({"sub": "a", "email": "a@example.com", "name": "x" * 201}, "name"),
    ({"sub": "a", "email": "a@example.com", "name": "line\nbreak"}, "name"),
    ({"sub": "a", "email": "a@example.com", "admin": True}, "admin"),
]


def test_the_form_is_held_to_the_rules_of_tokens(gateway, development_secret):
    for body, field in FORM_MISTAKES:
        response = ask_token(gateway, body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("validation_error", field), body


def test_hostile_bodies_are_a_400_when_the_form_is_on(gateway, development_secret):
    # (tests/e2e/test_bad_input.py sends them to every JSON route, but its system has a JWT_SECRET of its own,
    # so there this route is off: 404 dev_token_disabled.)
    for body, code in (("[" * 10000 + "]" * 10000, "json_too_deep"), ('{"sub": NaN}', "invalid_json"),
                       ('{"sub": "\\ud800", "email": "a@example.com"}', "invalid_text")):
        response = requests.post(gateway + "/v1/dev/token", data=body, headers={"Content-Type": "application/json"},
                                 timeout=5)
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), body


def test_without_the_development_secret_no_token_is_handed_out(gateway, development_secret, environment):
    for values in [
        {"JWT_SECRET": "a-secret-of-our-own"},
        {"JWT_SECRET": tokens.secret()},   # set explicitly, even to the default's value: a deployment's choice
        {"JWT_JWKS": "/nonexistent/jwks.json", "JWT_ISSUER": "https://id.example.com", "JWT_AUDIENCE": "console"},
    ]:
        environment.set(**values)
        response = ask_token(gateway, {"sub": "mallory", "email": "mallory@example.com"})
        environment.unset(*values)
        assert response.status_code == 404, values
        assert response.json()["error"]["code"] == "dev_token_disabled"
        assert "token" not in response.json()
