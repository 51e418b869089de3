"""CORS through a running gateway (RPC proxies replaced, no broker): the origins of CORS_ALLOWED_ORIGINS get
the headers on every answer and their preflights a 204 without a token; other origins get no CORS headers
(their preflight is the JSON 405 any OPTIONS gets); `*` never allows credentials; none configured, none."""
from collections import OrderedDict

import pytest
import requests
from nameko.testing.services import replace_dependencies

from gateway import authentication
from gateway.service import GatewayService

APP = "https://app.example.com"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture
def start_gateway(container_factory, web_config, monkeypatch, environment):
    """start_gateway(CORS_ALLOWED_ORIGINS) -> (base URL, the orgs proxy's mock)."""
    monkeypatch.setattr(authentication, "_signed_in", OrderedDict())

    def start(origins):
        environment.set(CORS_ALLOWED_ORIGINS=origins)
        container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
        orgs, *_ = replace_dependencies(container, "orgs", "members", "credits", "billing", "audit", "webhooks")
        container.start()
        return f"http://{web_config['WEB_SERVER_ADDRESS']}", orgs
    return start


def cors_headers(response):
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


def test_a_listed_origin_may_read_every_answer(start_gateway):
    url, _ = start_gateway(f"{APP}, https://admin.example.com")
    for path, status in [("/health", 200), ("/v1/me", 401), ("/nowhere", 404)]:
        response = requests.get(url + path, headers={"Origin": APP}, timeout=5)
        assert response.status_code == status
        assert cors_headers(response) == {"Access-Control-Allow-Origin": APP,
                                          "Access-Control-Allow-Credentials": "true",
                                          "Access-Control-Expose-Headers": "Idempotent-Replayed, X-Request-Id"}
        assert "Origin" in response.headers["Vary"]


def test_a_listed_origins_preflight_is_a_204_without_a_token(start_gateway):
    url, orgs = start_gateway(APP)
    response = requests.options(f"{url}/v1/organizations", headers=dict(PREFLIGHT, Origin=APP), timeout=5)
    assert response.status_code == 204 and response.content == b""
    headers = cors_headers(response)
    assert headers["Access-Control-Allow-Origin"] == APP and headers["Access-Control-Allow-Credentials"] == "true"
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, Idempotency-Key, X-Request-Id"
    assert headers["Access-Control-Max-Age"] == "600"
    assert response.headers["X-Request-Id"]
    assert not orgs.sign_in.call_async.called


def test_an_origin_not_listed_gets_no_cors_headers_and_its_preflight_a_405(start_gateway):
    url, _ = start_gateway(APP)
    for origin in ("https://evil.example.com", "https://app.example.com.evil.example", "http://app.example.com",
                   "null"):
        response = requests.get(f"{url}/health", headers={"Origin": origin}, timeout=5)
        assert response.status_code == 200 and cors_headers(response) == {}
        preflight = requests.options(f"{url}/v1/organizations", headers=dict(PREFLIGHT, Origin=origin), timeout=5)
        assert (preflight.status_code, preflight.json()["error"]["code"]) == (405, "method_not_allowed")
        assert cors_headers(preflight) == {}


def test_an_options_request_that_is_no_preflight_is_routed_as_before(start_gateway):
    url, _ = start_gateway(APP)
    response = requests.options(f"{url}/v1/organizations", headers={"Origin": APP}, timeout=5)
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")
    assert response.headers["Access-Control-Allow-Origin"] == APP


def test_any_origin_never_allows_credentials(start_gateway):
    url, _ = start_gateway(f"*, {APP}")
    response = requests.get(f"{url}/health", headers={"Origin": "https://anyone.example.org"}, timeout=5)
    assert cors_headers(response) == {"Access-Control-Allow-Origin": "*",
                                      "Access-Control-Expose-Headers": "Idempotent-Replayed, X-Request-Id"}
    preflight = requests.options(f"{url}/v1/organizations", timeout=5,
                                 headers=dict(PREFLIGHT, Origin="https://anyone.example.org"))
    assert preflight.status_code == 204 and "Access-Control-Allow-Credentials" not in preflight.headers
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    listed = requests.get(f"{url}/health", headers={"Origin": APP}, timeout=5)   # by name: its own entry
    assert listed.headers["Access-Control-Allow-Origin"] == APP
    without_origin = requests.get(f"{url}/health", timeout=5)
    assert cors_headers(without_origin) == {}


def test_no_origins_configured_means_no_cors_at_all(start_gateway):
    url, _ = start_gateway("")
    response = requests.get(f"{url}/health", headers={"Origin": APP}, timeout=5)
    assert cors_headers(response) == {} and "Vary" not in response.headers
    preflight = requests.options(f"{url}/v1/organizations", headers=dict(PREFLIGHT, Origin=APP), timeout=5)
    assert preflight.status_code == 405 and cors_headers(preflight) == {}
