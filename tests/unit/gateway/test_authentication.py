"""Authentication by the HTTP entrypoint, without a broker: the route table, the 401s of every route that
is not public, the identity handed to the worker, and the first sign-in before a handler."""
import inspect
import json
import re
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.testing.services import replace_dependencies
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from common.auth import USER_EMAIL_KEY, USER_ID_KEY, Auth, AuthContext, Identity
from common.errors import NotFound, ServiceUnavailable
from gateway import authentication, tokens
from gateway.http import JsonHttpEntrypoint
from gateway.service import GatewayService

# (methods, url, handler) of every entrypoint, as GatewayService had them in one class before the routes
# moved to gateway/routes/.
ENTRYPOINTS = {
    ("GET", "/health", "health"),
    ("GET", "/openapi.json", "openapi"),
    ("GET", "/v1/operations/dead-letters", "dead_letters"),
    ("GET,POST,PUT,PATCH,DELETE", "/<path:path>", "unknown_route"),
    ("GET", "/console", "console_without_slash"),
    ("GET", "/console/", "console_page"),
    ("GET", "/console/<path:file>", "console_file"),
    ("GET", "/console/settings.json", "console_settings"),
    ("POST", "/v1/dev/token", "dev_token"),
    ("GET", "/v1/me", "get_me"),
    ("PUT", "/v1/me/active-organization", "set_active_organization"),
    ("GET", "/v1/me/usage", "my_usage"),
    ("GET", "/v1/organizations", "list_organizations"),
    ("POST", "/v1/organizations", "create_organization"),
    ("GET", "/v1/organizations/<org_id>", "get_organization"),
    ("PATCH", "/v1/organizations/<org_id>", "rename_organization"),
    ("DELETE", "/v1/organizations/<org_id>", "delete_organization"),
    ("GET", "/v1/organizations/<org_id>/members", "list_members"),
    ("PATCH", "/v1/organizations/<org_id>/members/<user_id>", "edit_member_roles"),
    ("DELETE", "/v1/organizations/<org_id>/members/<user_id>", "remove_member"),
    ("POST", "/v1/organizations/<org_id>/api-keys", "create_api_key"),
    ("GET", "/v1/organizations/<org_id>/api-keys", "list_api_keys"),
    ("DELETE", "/v1/organizations/<org_id>/api-keys/<key_id>", "revoke_api_key"),
    ("POST", "/v1/organizations/<org_id>/invitations", "invite"),
    ("GET", "/v1/organizations/<org_id>/invitations", "list_invitations"),
    ("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/resend", "resend_invitation"),
    ("POST", "/v1/organizations/<org_id>/invitations/<invitation_id>/revoke", "revoke_invitation"),
    ("GET", "/v1/invitations", "my_invitations"),
    ("POST", "/v1/invitations/<invitation_id>/accept", "accept_invitation"),
    ("POST", "/v1/invitations/<invitation_id>/reject", "reject_invitation"),
    ("GET", "/v1/organizations/<org_id>/billing-transfers", "list_billing_transfers"),
    ("POST", "/v1/organizations/<org_id>/billing-transfers", "start_billing_transfer"),
    ("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/accept", "accept_billing_transfer"),
    ("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/decline", "decline_billing_transfer"),
    ("POST", "/v1/organizations/<org_id>/billing-transfers/<transfer_id>/cancel", "cancel_billing_transfer"),
    ("GET", "/v1/organizations/<org_id>/credits", "get_credits"),
    ("GET", "/v1/organizations/<org_id>/credits/ledger", "list_ledger"),
    ("POST", "/v1/organizations/<org_id>/credits/grants", "add_grant"),
    ("POST", "/v1/organizations/<org_id>/usage", "spend"),
    ("GET", "/v1/organizations/<org_id>/budget-groups", "list_budget_groups"),
    ("POST", "/v1/organizations/<org_id>/budget-groups", "create_budget_group"),
    ("GET", "/v1/organizations/<org_id>/budget-groups/<group_id>", "get_budget_group"),
    ("PATCH", "/v1/organizations/<org_id>/budget-groups/<group_id>", "update_budget_group"),
    ("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>", "delete_budget_group"),
    ("PUT", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>", "add_budget_group_member"),
    ("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>",
     "remove_budget_group_member"),
    ("GET", "/v1/organizations/<org_id>/alert-settings", "get_alert_settings"),
    ("PUT", "/v1/organizations/<org_id>/alert-settings", "set_alert_settings"),
    ("GET", "/v1/organizations/<org_id>/alerts", "list_alerts"),
    ("GET", "/v1/organizations/<org_id>/agents", "list_agents"),
    ("POST", "/v1/organizations/<org_id>/agents", "create_agent"),
    ("GET", "/v1/organizations/<org_id>/agents/<agent_id>", "get_agent"),
    ("PATCH", "/v1/organizations/<org_id>/agents/<agent_id>", "update_agent"),
    ("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>", "delete_agent"),
    ("GET", "/v1/organizations/<org_id>/agents/<agent_id>/contributors", "list_contributors"),
    ("POST", "/v1/organizations/<org_id>/agents/<agent_id>/contributors", "add_contributor"),
    ("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/contributors/<user_id>", "remove_contributor"),
    ("PUT", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>", "assign_agent"),
    ("DELETE", "/v1/organizations/<org_id>/agents/<agent_id>/assignees/<user_id>", "unassign_agent"),
    ("POST", "/v1/organizations/<org_id>/agents/<agent_id>/transfer", "transfer_agent"),
    ("GET", "/v1/organizations/<org_id>/agents/<agent_id>/audit", "agent_audit"),
    ("GET", "/v1/organizations/<org_id>/audit", "list_audit"),
    ("GET", "/v1/organizations/<org_id>/audit/verify", "verify_audit"),
    ("GET", "/v1/organizations/<org_id>/audit/checkpoints", "list_audit_checkpoints"),
    ("GET", "/v1/audit/public-key", "audit_public_key"),
    ("GET", "/v1/organizations/<org_id>/payment-methods", "list_payment_methods"),
    ("POST", "/v1/organizations/<org_id>/payment-methods", "add_payment_method"),
    ("PUT", "/v1/organizations/<org_id>/payment-methods/<payment_method_id>/default", "set_default_payment_method"),
    ("DELETE", "/v1/organizations/<org_id>/payment-methods/<payment_method_id>", "remove_payment_method"),
    ("POST", "/v1/organizations/<org_id>/purchases", "purchase"),
    ("GET", "/v1/organizations/<org_id>/transactions", "list_transactions"),
    ("POST", "/v1/billing/stripe/webhook", "stripe_webhook"),
    ("GET", "/v1/organizations/<org_id>/auto-topup", "get_auto_topup"),
    ("PUT", "/v1/organizations/<org_id>/auto-topup", "set_auto_topup"),
    ("GET", "/v1/webhooks/event-types", "webhook_event_types"),
    ("POST", "/v1/organizations/<org_id>/webhooks", "create_webhook_endpoint"),
    ("GET", "/v1/organizations/<org_id>/webhooks", "list_webhook_endpoints"),
    ("GET", "/v1/organizations/<org_id>/webhooks/<endpoint_id>", "get_webhook_endpoint"),
    ("PATCH", "/v1/organizations/<org_id>/webhooks/<endpoint_id>", "update_webhook_endpoint"),
    ("DELETE", "/v1/organizations/<org_id>/webhooks/<endpoint_id>", "delete_webhook_endpoint"),
    ("POST", "/v1/organizations/<org_id>/webhooks/<endpoint_id>/rotate-secret", "rotate_webhook_secret"),
    ("GET", "/v1/organizations/<org_id>/webhooks/<endpoint_id>/deliveries", "list_webhook_deliveries"),
    ("POST", "/v1/organizations/<org_id>/webhooks/<endpoint_id>/deliveries/<delivery_id>/retry",
     "retry_webhook_delivery"),
    ("POST", "/v1/organizations/<org_id>/webhooks/<endpoint_id>/test", "send_webhook_test"),
}
PUBLIC = {"health", "openapi", "dead_letters", "unknown_route", "console_without_slash", "console_page", "console_file",
          "console_settings", "dev_token", "stripe_webhook", "audit_public_key"}
PATH_VARIABLE = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@pytest.fixture(scope="module")
def entrypoints():
    """The HTTP entrypoints a Nameko container finds on GatewayService (inherited from the route mixins),
    bound to it; nothing is started, so no broker is needed. (Its one other entrypoint consumes API key
    revocations.)"""
    container = ServiceContainer(GatewayService, config={"AMQP_URI": "memory://"})
    yield sorted((entrypoint for entrypoint in container.entrypoints if isinstance(entrypoint, JsonHttpEntrypoint)),
                 key=lambda entrypoint: entrypoint.method_name)
    del container   # entrypoints hold only a weak reference to their container


def request_to(entrypoint, authorization=None, value="x1"):
    """A request as werkzeug's routing hands it to the entrypoint: its path variables all set to `value`."""
    path_values = {name: value for name in PATH_VARIABLE.findall(entrypoint.url)}
    path = PATH_VARIABLE.sub(lambda m: path_values[m.group(1)], entrypoint.url)
    headers = {"Authorization": authorization} if authorization else {}
    request = Request(EnvironBuilder(path=path, method=entrypoint.method.split(",")[0], headers=headers,
                                     json={} if entrypoint.method in ("POST", "PUT", "PATCH") else None).get_environ())
    request.path_values = path_values
    return request


def error_of(response):
    """(status, error body) of an entrypoint's werkzeug response or of a requests response."""
    text = response.text if isinstance(response, requests.Response) else response.get_data(as_text=True)
    return response.status_code, json.loads(text)["error"]


def test_the_container_finds_every_route_once_on_the_mixins(entrypoints):
    found = [(entrypoint.method, entrypoint.url, entrypoint.method_name) for entrypoint in entrypoints]
    assert len(found) == len(ENTRYPOINTS) == 84
    assert set(found) == ENTRYPOINTS
    assert {entrypoint.method_name for entrypoint in entrypoints if entrypoint.public} == PUBLIC


def test_every_route_but_the_public_ones_refuses_a_request_without_a_token(entrypoints):
    refused = set()
    for entrypoint in entrypoints:
        if entrypoint.public:
            continue
        status, error = error_of(entrypoint.handle_request(request_to(entrypoint)))
        assert (status, error["code"], error["message"], error["field"]) == (
            401, "missing_token", "Sign in: send Authorization: Bearer <token>.", None), entrypoint.method_name
        refused.add(entrypoint.method_name)
    assert len(refused) == 73


@pytest.mark.parametrize("authorization, code", [
    (lambda: "Token abc", "invalid_token"),
    (lambda: "Bearer abc", "invalid_token"),
    (lambda: "Bearer " + tokens.mint("u1", "u1@example.com", ttl_seconds=-5), "token_expired"),
])
def test_a_bad_token_is_refused_with_its_code(entrypoints, authorization, code):
    for entrypoint in entrypoints:
        if not entrypoint.public:
            status, error = error_of(entrypoint.handle_request(request_to(entrypoint, authorization())))
            assert (status, error["code"]) == (401, code), entrypoint.method_name


def test_a_nul_in_the_path_is_a_400_before_the_token_is_looked_at(entrypoints):
    get_organization = next(e for e in entrypoints if e.method_name == "get_organization")
    status, error = error_of(get_organization.handle_request(request_to(get_organization, value="o\x001")))
    assert (status, error["code"], error["field"]) == (400, "nul_character", "org_id")


def test_the_catch_all_answers_a_json_404_without_a_token():
    request = Request(EnvironBuilder(path="/v1/nowhere", method="DELETE").get_environ())
    with pytest.raises(NotFound) as err:
        GatewayService.unknown_route(None, request, path="v1/nowhere")
    assert (err.value.code, err.value.message) == ("route_not_found", "There is no route DELETE /v1/nowhere.")


def test_handlers_take_exactly_their_path_variables(entrypoints):
    # The sign-in wrapper takes any keyword, so Nameko's own signature check no longer sees a mismatch.
    for entrypoint in entrypoints:
        parameters = list(inspect.signature(getattr(GatewayService, entrypoint.method_name)).parameters)
        assert parameters[:2] == ["self", "request"]
        assert set(parameters[2:]) == set(PATH_VARIABLE.findall(entrypoint.url)), entrypoint.method_name


def test_the_worker_gets_the_identity_of_a_valid_token_in_its_context_data():
    header = "Bearer " + tokens.mint("u1", "U1@Example.com", "U One")
    data = authentication.context_data(Request(EnvironBuilder(headers={"Authorization": header}).get_environ()))
    assert AuthContext(SimpleNamespace(data=data)).identity == Identity("u1", "u1@example.com", "U One")


class FakeSignIn:
    """orgs.sign_in as common.rpc.call uses it: call_async(), then result()."""
    service_name = "orgs"

    def __init__(self, error=None):
        self.calls, self.error = 0, error

    def call_async(self):
        self.calls += 1
        return self

    def result(self):
        if self.error:
            raise self.error


@pytest.fixture
def fresh_process(monkeypatch):
    monkeypatch.setattr(authentication, "_signed_in", OrderedDict())
    monkeypatch.setattr(authentication, "_sign_in_failed_at", None)


def handler_with(sign_in, identity):
    ran = []
    service = SimpleNamespace(auth=SimpleNamespace(identity=identity), orgs=SimpleNamespace(sign_in=sign_in))
    handler = authentication.caller_settled_first(lambda service, request, **path: ran.append(path) or "answer")
    return lambda **path: handler(service, SimpleNamespace(environ={}), **path), ran


def test_a_user_is_signed_in_once_per_process_before_the_handler(fresh_process, alice, bob):
    sign_in = FakeSignIn()
    as_alice, ran = handler_with(sign_in, alice)
    assert as_alice(org_id="o1") == "answer" and as_alice() == "answer"
    assert sign_in.calls == 1 and ran == [{"org_id": "o1"}, {}]
    as_bob, _ = handler_with(sign_in, bob)
    as_bob()
    assert sign_in.calls == 2


def test_with_orgs_away_the_request_goes_on_and_the_sign_in_is_tried_again_later(fresh_process, monkeypatch, alice):
    """Issue 24: sign-in must not make every route depend on orgs (a spend is credits' alone). A failed
    sign-in is not remembered as done; for SIGN_IN_RETRY_SECONDS orgs is not asked again (a hung orgs
    would cost every request its time-out), then it is."""
    sign_in = FakeSignIn(ServiceUnavailable("The orgs service is not running."))
    as_alice, ran = handler_with(sign_in, alice)
    assert as_alice(org_id="o1") == "answer" and as_alice(org_id="o1") == "answer"
    assert sign_in.calls == 1 and ran == [{"org_id": "o1"}] * 2
    monkeypatch.setattr(authentication, "SIGN_IN_RETRY_SECONDS", 0)
    sign_in.error = None                                        # orgs is back
    as_alice()
    as_alice()
    assert sign_in.calls == 2 and alice in authentication._signed_in


def test_through_a_running_gateway_the_worker_carries_the_identity(container_factory, web_config, monkeypatch,
                                                                   fresh_process):
    """The whole path in process, with the RPC proxies replaced (no broker): a web server, the entrypoint,
    a worker whose context data holds the caller, one sign-in per user."""
    worker_data = []
    monkeypatch.setattr(Auth, "get_dependency", lambda self, worker_ctx: worker_data.append(worker_ctx.data)
                        or AuthContext(worker_ctx))
    container = container_factory(GatewayService, dict(web_config, AMQP_URI="memory://"))
    orgs, *_ = replace_dependencies(container, "orgs", "members", "credits", "audit")
    me = {"id": "u1", "email": "u1@example.com", "name": "", "active_organization_id": "o1", "memberships": []}
    orgs.get_me.call_async.return_value.result.return_value = me
    container.start()
    url = f"http://{web_config['WEB_SERVER_ADDRESS']}"
    bearer = {"Authorization": "Bearer " + tokens.mint("u1", "U1@example.com")}

    assert error_of(requests.get(f"{url}/v1/me", timeout=5))[1]["code"] == "missing_token"
    assert error_of(requests.put(f"{url}/v1/me/active-organization", data="{", timeout=5))[1]["code"] == \
        "missing_token"
    assert error_of(requests.delete(f"{url}/v1/me", timeout=5)) == (404, {
        "code": "route_not_found", "message": "There is no route DELETE /v1/me.", "field": None})
    assert orgs.sign_in.call_async.call_count == 0
    for _ in range(2):
        assert requests.get(f"{url}/v1/me", headers=bearer, timeout=5).json() == me
    assert orgs.sign_in.call_async.call_count == 1
    signed_in = [data for data in worker_data if data.get(USER_ID_KEY)]
    assert len(signed_in) == 2 and signed_in[0][USER_EMAIL_KEY] == "u1@example.com"
