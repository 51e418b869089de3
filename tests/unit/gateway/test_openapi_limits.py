"""The OpenAPI document states the limits of every input (one schema per shape at the boundary): each string a
request body or a query parameter takes has a maxLength, an enum, or a format that bounds it by itself, and
each integer its minimum and maximum; the exceptions are listed below with the reason. The limits come from
the contracts the services apply (common.contracts), so they are the ones a client meets."""
import pytest

from common.contracts.agents import FIELD_LIMITS
from common.contracts.alerts import MAX_MEMBER_BUDGET_PERCENTS
from common.contracts.api_keys import SCOPES
from common.contracts.budgets import BUILDER_LIMIT_MAX
from common.contracts.invitations import MAX_AGENTS_PER_INVITATION
from common.paging import MAX_CURSOR_LENGTH, MAX_LIMIT
from gateway.openapi import document
from gateway.service import GatewayService  # noqa: F401  (imports every route module, filling ROUTES)

DOC = document()
SCHEMAS = DOC["components"]["schemas"]
BOUNDED_FORMATS = {"date-time", "uuid"}     # a value of these formats has a length of its own

AMOUNT = "an amount is bounded by its value (at most 1,000,000,000, 4 decimal places: common.money), not by " \
         "its length: leading zeros are taken, as they always were"
TRAIL_FILTER = "a trail filter is compared with stored values and never had a length limit (a longer one " \
               "matches nothing); the gateway's 8 KB URL limit bounds it"
# Deliberately unbounded: where -> why. A body property is "Schema.property", a query parameter
# "METHOD path ?name".
EXCEPTIONS = {
    "GrantBody.amount": AMOUNT, "SpendBody.amount": AMOUNT, "BudgetGroupBody.monthly_limit": AMOUNT,
    "AlertSettingsBody.balance_floor": AMOUNT, "AutoTopupBody.threshold": AMOUNT, "AutoTopupBody.target": AMOUNT,
    **{f"GET {path} ?{name}": TRAIL_FILTER
       for path, names in [("/v1/organizations/{org_id}/audit", ("entity_type", "actor", "field", "target")),
                           ("/v1/organizations/{org_id}/agents/{agent_id}/audit",
                            ("entity_type", "actor", "field", "old_value", "new_value"))]
       for name in names},
}


def request_inputs():
    """(where, schema) of every property of a request body and every query parameter."""
    bodies = set()
    for path, operations in DOC["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                bodies.add(body["$ref"].rsplit("/", 1)[1])
            for param in op["parameters"]:
                if param["in"] == "query":
                    yield f"{method.upper()} {path} ?{param['name']}", param["schema"]
    assert len(bodies) >= 14
    for name in sorted(bodies):
        for prop, schema in SCHEMAS[name]["properties"].items():
            yield f"{name}.{prop}", schema


INPUTS = dict(request_inputs())


def unbounded(schema):
    """Why `schema` (or its items) is not bounded, or None."""
    if schema.get("type") == "string" and not ("maxLength" in schema or "enum" in schema
                                               or schema.get("format") in BOUNDED_FORMATS):
        return "a string without maxLength, enum or a bounded format"
    if schema.get("type") == "integer" and not ("minimum" in schema and "maximum" in schema):
        return "an integer without minimum and maximum"
    if schema.get("type") == "array":
        return unbounded(schema["items"])
    return None


@pytest.mark.parametrize("where", sorted(INPUTS))
def test_every_input_states_its_bounds(where):
    problem = unbounded(INPUTS[where])
    if where in EXCEPTIONS:
        assert problem is not None, f"{where} is bounded now: take it off EXCEPTIONS"
    else:
        assert problem is None, f"{where}: {problem} ({INPUTS[where]})"


def test_every_exception_is_an_input_of_the_document():
    assert set(EXCEPTIONS) <= set(INPUTS)


def test_the_limits_are_the_contracts():
    props = {name: schema["properties"] for name, schema in SCHEMAS.items()}
    for field, limit in FIELD_LIMITS.items():
        assert props["AgentBody"][field]["maxLength"] == limit, field
    assert props["OrganizationNameBody"]["name"] | {"nullable": True} == {
        "type": "string", "minLength": 1, "maxLength": 200, "nullable": True,
        "description": "trimmed; 1 to 200 characters"}
    assert (props["BudgetGroupBody"]["builder_limit"]["minimum"],
            props["BudgetGroupBody"]["builder_limit"]["maximum"]) == (0, BUILDER_LIMIT_MAX)
    percents = props["AlertSettingsBody"]["member_budget_percents"]
    assert (percents["maxItems"], percents["uniqueItems"], percents["items"]) == (
        MAX_MEMBER_BUDGET_PERCENTS, True, {"type": "integer", "minimum": 1, "maximum": 100})
    assert props["ApiKeyBody"]["scopes"]["items"]["enum"] == list(SCOPES)
    assert props["ApiKeyBody"]["scopes"]["minItems"] == 1
    assert props["InvitationBody"]["agent_ids"]["maxItems"] == MAX_AGENTS_PER_INVITATION
    assert props["InvitationBody"]["email"]["format"] == "email"
    assert props["GrantBody"]["type"]["enum"] == ["free", "paid"]
    assert props["GrantBody"]["expires_at"]["format"] == "date-time"
    assert INPUTS["GET /v1/organizations ?cursor"]["maxLength"] == MAX_CURSOR_LENGTH
    assert INPUTS["GET /v1/organizations ?limit"]["maximum"] == MAX_LIMIT
    assert INPUTS["GET /v1/organizations/{org_id}/audit ?since"]["format"] == "date-time"


def test_every_route_documents_the_url_limit():
    """Query values within their maxLength can still add up to a URL over 8 KB, which is refused 414 before
    any route is found (gateway.http EVENTLET_REFUSALS)."""
    for path, operations in DOC["paths"].items():
        for method, op in operations.items():
            assert "url_too_long" in op["responses"]["414"]["description"], (method, path)
