"""Hostile input at the gateway, without a broker: JSON bodies nested too deep, text that cannot be stored,
chunked bodies, requests no route takes (JSON errors, not werkzeug's HTML), and the access log line.

The request parsing is tested on werkzeug requests; the rest through a running gateway whose RPC proxies
are replaced (no broker), with requests sent over a socket as any client would."""
import json
import logging
import socket
from collections import OrderedDict

import pytest
import requests
from nameko.testing.services import replace_dependencies
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from common.errors import BadRequest, ValidationFailed
from gateway import authentication, tokens
from gateway.request_input import MAX_BODY_BYTES, load, read_json
from gateway.schemas.common import ListQuery
from gateway.schemas.organizations import ActiveOrganizationBody, OrganizationNameBody
from gateway.service import GatewayService


def body_request(raw):
    return Request(EnvironBuilder(method="POST", data=raw, content_type="application/json").get_environ())


def refusal(schema, raw):
    """The error read_json raises for a body `raw` (bytes or text)."""
    with pytest.raises((BadRequest, ValidationFailed)) as err:
        read_json(body_request(raw), schema)
    return err.value.status, err.value.code, err.value.field


def nested(depth, inner="1"):
    return '{"name": ' + "[" * (depth - 1) + inner + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("raw", ["[" * 10000 + "]" * 10000, '{"a": ' * 9000 + "1" + "}" * 9000,
                                 nested(33), "[" * 60000])
def test_a_body_nested_too_deep_is_a_400_not_a_recursion_error(raw):
    assert refusal(OrganizationNameBody(), raw) == (400, "json_too_deep", None)


def test_a_body_nested_32_deep_is_read():
    # Deep enough for any body of the API; the schema then refuses the list where it wants a name.
    assert read_json(body_request(nested(32)), OrganizationNameBody())["name"] is not None


@pytest.mark.parametrize("raw, field", [
    ('{"name": "a\\ud800b"}', "name"), ('{"name": "\\udfff"}', "name"),
    ('{"organization_id": "x\\ud83d"}', "organization_id"), ('{"name": {"k": ["ok", "\\ud800"]}}', "name.k"),
    ('{"\\ud800": 1}', None),
])
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400_naming_the_field(raw, field):
    schema = ActiveOrganizationBody() if "organization_id" in raw else OrganizationNameBody()
    assert refusal(schema, raw) == (400, "invalid_text", field)


def test_a_nul_in_a_body_is_still_a_400_nul_character():
    assert refusal(OrganizationNameBody(), '{"name": "a\\u0000"}') == (400, "nul_character", "name")


def test_a_surrogate_pair_is_text_like_any_other():
    assert read_json(body_request('{"name": "\\ud83d\\ude00 ok"}'), OrganizationNameBody()) == {"name": "😀 ok"}


@pytest.mark.parametrize("raw", ['{"name": NaN}', '{"name": Infinity}', '{"name": -Infinity}', b'{"name": "\xff"}',
                                 '{"name": 1' + "0" * 5000 + "}"])
def test_what_is_not_json_is_a_400_invalid_json(raw):
    assert refusal(OrganizationNameBody(), raw) == (400, "invalid_json", None)


def test_query_parameters_with_text_that_cannot_be_stored_are_a_400():
    for value, code in [("a\x00", "nul_character"), ("\ud800", "invalid_text")]:
        with pytest.raises(BadRequest) as err:
            load(ListQuery(), {"cursor": value})
        assert (err.value.code, err.value.field) == (code, "cursor")


# ---- through a running gateway ----------------------------------------------------------------------------
@pytest.fixture
def gateway(container_factory, web_config, monkeypatch):
    """(base URL, the orgs proxy's mock) of a running gateway with its RPC proxies replaced."""
    monkeypatch.setattr(authentication, "_signed_in", OrderedDict())
    container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
    orgs, *_ = replace_dependencies(container, "orgs", "members", "credits", "audit")
    card = {"id": "o1", "name": "Chunked", "type": "collective", "roles": ["owner"], "member_count": 1}
    orgs.create_organization.call_async.return_value.result.return_value = card
    container.start()
    return f"http://{web_config['WEB_SERVER_ADDRESS']}", orgs


def bearer():
    """A fresh token's header (made when the test runs: a token carries an expiry)."""
    return {"Authorization": "Bearer " + tokens.mint("u1", "u1@example.com")}


def chunks(*parts):
    yield from parts


def raw_exchange(base_url, request_bytes):
    """Send bytes as they are over one connection; the status line and the body of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(request_bytes)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            data = conn.recv(65536)
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def _length(answer):
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_a_chunked_body_is_read_like_any_other(gateway):
    url, orgs = gateway
    response = requests.post(f"{url}/v1/organizations", data=chunks(b'{"na', b'me": "Chun', b'ked"}'),
                             headers=dict(bearer(), **{"Content-Type": "application/json"}), timeout=5)
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 201, response.text
    assert orgs.create_organization.call_async.call_args.args[0] == "Chunked"


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(gateway):
    url, orgs = gateway
    piece = b"x" * 8192
    response = requests.post(f"{url}/v1/organizations",
                             data=chunks(b'{"name": "', *[piece] * (MAX_BODY_BYTES // len(piece) + 2), b'"}'),
                             headers=bearer(), timeout=5)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "body_too_large")
    assert not orgs.create_organization.call_async.called


def test_malformed_chunks_and_other_transfer_codings_are_a_400(gateway):
    url, orgs = gateway
    token = bearer()["Authorization"].encode()
    start = b"POST /v1/organizations HTTP/1.1\r\nHost: x\r\nAuthorization: " + token + b"\r\nConnection: close\r\n"
    status, body = raw_exchange(url, start + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
    assert (status.split()[1], json.loads(body)["error"]["code"]) == ("400", "invalid_body")
    status, body = raw_exchange(url, start + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert (status.split()[1], json.loads(body)["error"]["code"]) == ("400", "unsupported_transfer_encoding")
    assert not orgs.create_organization.call_async.called


def test_requests_no_route_takes_are_answered_in_json(gateway):
    url, _ = gateway
    for method, path, status, code in [
        ("GET", "/", 404, "route_not_found"), ("POST", "/", 404, "route_not_found"),
        ("OPTIONS", "/v1/me", 405, "method_not_allowed"), ("OPTIONS", "/", 404, "route_not_found"),
        ("TRACE", "/v1/organizations", 405, "method_not_allowed"), ("GET", "/v1/nowhere", 404, "route_not_found"),
    ]:
        response = requests.request(method, url + path, timeout=5)
        assert response.status_code == status, (method, path)
        assert response.headers["Content-Type"] == "application/json"
        assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (code, None), (method, path)
        if status == 405:
            assert "GET" in response.headers["Allow"]


def test_one_access_log_line_per_request_without_the_token_or_the_query(gateway, caplog):
    url, orgs = gateway
    for name in ("sign_in", "get_me"):                     # the proxy's mock names the calls as Nameko's would
        getattr(orgs, name).service_name, getattr(orgs, name).method_name = "orgs", name
    caplog.set_level(logging.INFO, logger="gateway.access")
    answered = requests.get(f"{url}/v1/me?cursor=secret-in-query", headers=bearer(), timeout=5)
    requests.get(f"{url}/v1/me", headers={"X-Request-Id": "client-id.1"}, timeout=5)
    requests.get(f"{url}/v1/me%0Aforged%20line", headers={"X-Request-Id": "no good\tid"}, timeout=5)
    lines = [record.getMessage() for record in caplog.records if record.name == "gateway.access"]
    assert len(lines) == 3
    signed_in, anonymous, odd = lines
    request_id = answered.headers["X-Request-Id"]
    assert len(request_id) == 32                                    # a new id when the client gives none
    assert signed_in.startswith("GET /v1/me 200 ")
    assert signed_in.endswith(f"ms caller=u1 request={request_id} route=/v1/me rpc=orgs.sign_in,orgs.get_me")
    assert anonymous.startswith("GET /v1/me 401 ")
    assert anonymous.endswith("caller=- request=client-id.1 route=/v1/me rpc=-")
    assert odd.startswith("GET /v1/me%0Aforged%20line 404 ") and "\n" not in odd and "no good" not in odd
    token = bearer()["Authorization"].split()[1]
    assert not any("secret-in-query" in line or token in line for line in lines)
