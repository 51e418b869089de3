"""Bad input never gets a 500: every route of the OpenAPI document, hostile ids, bodies and queries.
Each answer is a 4xx with the JSON error shape (or a success where the input happens to be valid)."""
import base64
import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import gateway.service  # noqa: F401  (defining the handlers fills the route registry)
from gateway.http import ROUTES
from tests.e2e.helpers import error_code, ok, wait_for

NASTY_IDS = ["x" * 5000, "%00", "..%2F..%2Fetc", "ünïcødé-☃", "1 OR 1=1", "null", "-1"]
NASTY_BODIES = ['', 'null', '[]', '"text"', '{"name": {"nested": true}}', '{"name": ["a"]}',
                '{"name": "' + "x" * 70000 + '"}', '{"organization_id": 12}', '{"organization_id": null}',
                '{"name": 1e400}', '\xff\xfe', '{"name": "nul\\u0000inside"}',
                '{"organization_id": "nul\\u0000inside"}', '{"a": ' * 200 + '1' + '}' * 200,
                '{"email": 12, "roles": "owner"}', '{"email": "a@example.com", "roles": [null]}',
                '{"email": "a@example.com", "roles": ["member"], "agent_ids": [1, {}]}',
                '{"roles": ["owner", "owner", "x"]}', '{"to_user_id": 5}', '{"to_user_id": ""}',
                '{"name": "a", "instructions": ["x"]}', '{"name": "a", "avatar_url": "javascript:alert(1)"}',
                '{"name": "a", "unknown": 1}', '{"name": "a", "mission": "' + "m" * 2001 + '"}', '{"user_id": 7}',
                '{"destination_organization_id": 5, "dry_run": "yes"}', '{"destination_organization_id": "x"}',
                '{"amount": 1e400, "type": "paid"}', '{"amount": "1e999999999", "type": "free"}',
                '{"amount": "-0", "type": "paid"}', '{"amount": "0.1", "type": "free", "expires_at": "yesterday"}',
                '{"amount": "0.1", "type": "free", "expires_at": "9999-12-31T23:59:59+14:00"}',
                '{"amount": [1], "type": "credit"}', '{"agent_id": "x", "amount": "1", "dry_run": 1}',
                '{"agent_id": 5, "amount": {"value": 1}}',
                '{"name": "g", "monthly_limit": 1e308, "builder_limit": 1e20}',
                '{"name": "g", "monthly_limit": "1.00001", "builder_limit": true}', '{"monthly_limit": "abc"}']
NASTY_QUERIES = [{"limit": "-1"}, {"limit": "abc"}, {"limit": "100000"}, {"cursor": "!!!"},
                 {"cursor": "eyJvZmZzZXQiOiAiYSJ9"}, {"since": "2026-13-45"}, {"action": "explode"},
                 {"format": "xml"}, {"field": "x" * 3000}]


def check(response, context):
    assert response.status_code < 500, f"{context}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) >= {"code", "message", "field"}, context


def test_no_route_answers_500_to_hostile_input(system):
    alice = system.user("alice")
    own_org = alice.post("/v1/organizations", json={"name": "Target"}).json()["id"]
    # Real ids of the organization's things, so hostile bodies reach the services' own checks.
    real_ids = {"{agent_id}": alice.post(f"/v1/organizations/{own_org}/agents", json={"name": "Agent"}).json()["id"],
                "{user_id}": alice.id,
                "{group_id}": alice.post(f"/v1/organizations/{own_org}/budget-groups", json={"name": "G"}).json()["id"]}
    document = requests.get(system.url + "/openapi.json").json()
    sends = []              # (method, path, request's keywords, what it was), sent below
    for template, operations in document["paths"].items():
        for method in operations:
            for org_id in [own_org, *NASTY_IDS]:
                path = template.replace("{org_id}", requests.utils.quote(org_id, safe=""))
                for placeholder, real_id in real_ids.items():
                    path = path.replace(placeholder, real_id)
                if method in ("post", "put", "patch"):
                    for body in NASTY_BODIES:
                        sends.append((method.upper(), path, {
                            "data": body.encode("utf-8", "surrogateescape"),
                            "headers": {"Content-Type": "application/json", "Idempotency-Key": f"hostile-{len(body)}"}},
                            f"{method} {path[:80]} body={body[:40]!r}"))
                for query in NASTY_QUERIES:
                    if method == "get":
                        sends.append(("GET", path, {"params": query}, f"get {path[:80]} {query}"))
    # Eight at a time: the answers are what is checked, not their order (a few thousand requests; sent one by
    # one they took a minute and a half of the suite).
    with ThreadPoolExecutor(8) as pool:
        for response, context in pool.map(lambda s: (alice.request(s[0], s[1], **s[2]), s[3]), sends):
            check(response, context)
    # Nothing of the above changed the organization.
    assert alice.get(f"/v1/organizations/{own_org}").json()["name"] == "Target"
    agent = alice.get(f"/v1/organizations/{own_org}/agents/{real_ids['{agent_id}']}").json()
    assert (agent["name"], agent["organization_id"], agent["instructions"]) == ("Agent", own_org, "")


def test_oversized_and_odd_headers(system):
    alice = system.user("alice")
    for key in ["k" * 500, "tab\tinside"]:
        response = alice.post("/v1/organizations", json={"name": "H"}, headers={"Idempotency-Key": key})
        check(response, f"Idempotency-Key {key[:20]!r}")
        assert response.status_code == 400
    big = alice.post("/v1/organizations", data=json.dumps({"name": "y" * 100000}),
                     headers={"Content-Type": "application/json"})
    assert big.status_code == 400 and big.json()["error"]["code"] == "body_too_large"


# ---- issue 14: the reproductions, each a 500 (or a wrong answer) before ------------------------------------
def crafted(text):
    """A cursor made by hand: base64 of any JSON text."""
    return base64.urlsafe_b64encode(text.encode()).decode()


CRAFTED_CURSORS = [crafted('{"offset":1e30}'), crafted('{"before":1e30}'), crafted('{"offset":' + "9" * 40 + "}"),
                   crafted('{"before":' + "9" * 40 + "}"), crafted('{"at":"2026-01-01T00:00:00Z","seq":1e999}'),
                   crafted('{"at":"2026-01-01T00:00:00Z","seq":1e999,"change":1}'), crafted("[" * 3000 + "]" * 3000),
                   crafted('{"name":"\\ud800","id":"x"}'), crafted('{"user_id":"\\ud800"}'),
                   crafted('{"user_id":"\\u0000"}'), "A" * 6000]   # longer than any issued, within eventlet's URL limit


def organization_with_things(user):
    """An organization of `user` with an agent, a budget group and a webhook endpoint: {placeholder: id} for
    route paths."""
    org = user.post("/v1/organizations", json={"name": "Hostile"}).json()["id"]
    endpoint = user.post(f"/v1/organizations/{org}/webhooks",
                         json={"url": "http://127.0.0.1:9/hostile", "event_types": ["budget_group.deleted"]}).json()
    return {"org_id": org, "user_id": user.id,
            "agent_id": user.post(f"/v1/organizations/{org}/agents", json={"name": "Agent"}).json()["id"],
            "group_id": user.post(f"/v1/organizations/{org}/budget-groups", json={"name": "G"}).json()["id"],
            "endpoint_id": endpoint["id"]}


def paths_of(routes, ids):
    for route in routes:
        path = route.path
        for name, value in ids.items():
            path = path.replace(f"<{name}>", value)
        assert "<" not in path, path
        yield route, path


def test_any_crafted_cursor_on_every_list_route_is_a_400_invalid_cursor(system):
    alice = system.user("alice")
    ids = organization_with_things(alice)
    list_routes = [route for route in ROUTES if route.method == "GET" and "cursor" in route.query]
    assert len(list_routes) >= 10
    for _, path in paths_of(list_routes, ids):
        assert alice.get(path).status_code == 200, path
        for cursor in CRAFTED_CURSORS:
            response = alice.get(path, params={"cursor": cursor})
            assert response.status_code == 400, f"{path} {cursor[:40]}: {response.status_code} {response.text[:200]}"
            assert response.json()["error"]["code"] == "invalid_cursor", path


def test_a_body_of_10000_nested_brackets_on_every_json_route_is_a_400(system):
    alice = system.user("alice")
    ids = organization_with_things(alice)
    deep = "[" * 10000 + "]" * 10000
    for route, path in paths_of([route for route in ROUTES if route.body is not None], ids):
        response = alice.request(route.method, path, data=deep, headers={"Content-Type": "application/json"})
        if route.handler == "dev_token":
            # Off in this system (it has a JWT_SECRET of its own): absent whatever the body; with the
            # development secret, tests/unit/gateway/test_console.py sends it the same body.
            assert error_code(response, 404) == "dev_token_disabled"
            continue
        assert response.status_code == 400, f"{route.method} {path}: {response.status_code} {response.text[:200]}"
        assert response.json()["error"]["code"] == "json_too_deep"
    assert alice.get(f"/v1/organizations/{ids['org_id']}").json()["name"] == "Hostile"


def test_text_that_cannot_be_stored_is_refused_and_nothing_is_stored(system):
    alice = system.user("alice")
    ids = organization_with_things(alice)
    org = ids["org_id"]
    before = alice.get("/v1/organizations").json()
    for method, path, raw, field in [
        ("POST", "/v1/organizations", '{"name": "a\\ud800"}', "name"),
        ("PATCH", f"/v1/organizations/{org}", '{"name": "\\udfffb"}', "name"),
        ("POST", f"/v1/organizations/{org}/agents", '{"name": "A", "mission": "m\\ud800"}', "mission"),
        ("PATCH", f"/v1/organizations/{org}/agents/{ids['agent_id']}", '{"name": "\\ud83d"}', "name"),
        ("POST", f"/v1/organizations/{org}/invitations", '{"email": "x\\ud800@example.com", "roles": ["member"]}',
         "email"),
        ("POST", f"/v1/organizations/{org}/budget-groups", '{"name": "g\\u0000"}', "name"),
    ]:
        response = alice.request(method, path, data=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, f"{method} {path}: {response.status_code} {response.text[:200]}"
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("nul_character" if "u0000" in raw else "invalid_text", field)
    assert alice.get("/v1/organizations").json() == before
    assert [a["name"] for a in alice.get(f"/v1/organizations/{org}/agents").json()["items"]] == ["Agent"]
    assert alice.get(f"/v1/organizations/{org}/invitations").json()["items"] == []
    assert [g["name"] for g in alice.get(f"/v1/organizations/{org}/budget-groups").json()["items"]] == ["G"]


def test_a_chunked_body_is_read(system):
    alice = system.user("alice")
    response = alice.post("/v1/organizations", data=iter([b'{"name": ', b'"Sent in ', b'chunks"}']),
                          headers={"Content-Type": "application/json"})
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert (response.status_code, response.json()["name"]) == (201, "Sent in chunks"), response.text


def test_requests_no_route_takes_are_answered_in_json(system):
    for method, path, status, code in [("GET", "/", 404, "route_not_found"),
                                       ("OPTIONS", "/v1/organizations", 405, "method_not_allowed"),
                                       ("TRACE", "/v1/me", 405, "method_not_allowed")]:
        response = requests.request(method, system.url + path, timeout=10)
        assert (response.status_code, response.headers["Content-Type"]) == (status, "application/json"), path
        assert response.json()["error"]["code"] == code


def raw_answer(system, request_bytes):
    """(status line, headers and body) of the answer to raw request bytes."""
    with socket.create_connection(("127.0.0.1", system.gateway_port), timeout=10) as conn:
        conn.sendall(request_bytes)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], head, body


@pytest.mark.parametrize("request_bytes, status, code", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b" 414 ", "url_too_long"),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", b" 400 ", "header_too_long"),
    (b"POST /v1/organizations HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b" 400 ",
     "invalid_content_length"),
    (b"POST /v1/organizations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
     b" 400 ", "conflicting_body_length"),
    # More than 100 header lines: Python's http.server answers 431 with an HTML page (issue 25).
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(101)) + b"\r\n",
     b" 431 ", "too_many_headers"),
])
def test_what_eventlet_refuses_itself_is_a_json_error_too(system, request_bytes, status, code):
    """eventlet's wsgi server answers these before any application code runs (with an empty body): the
    gateway's protocol turns them into JSON errors like every other."""
    status_line, head, body = raw_answer(system, request_bytes)
    assert status in status_line and b"Content-Type: application/json" in head, head
    assert json.loads(body)["error"]["code"] == code


def test_the_gateway_writes_one_access_line_per_request(system):
    alice = system.user("alice")
    marker = uuid.uuid4().hex
    assert alice.get(f"/v1/organizations?cursor={marker}").status_code == 400
    assert requests.get(f"{system.url}/v1/organizations/{marker}", timeout=10).status_code == 401
    log_file = system.log_dir / "gateway.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if "gateway.access" in line]
        if any(marker in line for line in lines):
            break
        time.sleep(0.1)
    assert any(" gateway.access [" in line and "]: GET /v1/organizations 400 " in line
               and f"ms caller={alice.id} request=" in line for line in lines)
    assert any(f"GET /v1/organizations/{marker} 401 " in line and "caller=- request=" in line for line in lines)
    token = alice.session.headers["Authorization"].split()[1]
    assert not any(f"cursor={marker}" in line or token in line for line in lines)


def test_a_request_id_follows_the_request_into_the_services_logs(system):
    """The client's X-Request-Id (or a new one) is answered back, written on the gateway's access line,
    and on the log lines of the services the request reached (the invitation email members writes)."""
    owner = system.user("owner")
    org = ok(owner.post("/v1/organizations", json={"name": "Traced"}), 201)["id"]
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    answer = owner.post(f"/v1/organizations/{org}/invitations", headers={"X-Request-Id": request_id},
                        json={"email": f"traced-{uuid.uuid4().hex[:8]}@example.com", "roles": ["member"]})
    assert answer.status_code == 201 and answer.headers["X-Request-Id"] == request_id

    def logged(name, text):
        return text in (system.log_dir / f"{name}.log").read_text(errors="replace")
    wait_for(lambda: logged("gateway", f"request={request_id}") and logged("members", f"[{request_id} "),
             timeout=10, message="the request id in the gateway's and the members service's logs")
