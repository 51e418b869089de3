"""Routes that need no sign-in: the health check, the OpenAPI document, the JSON 404 of any other path, and
the operator's routes under /v1/operations/, which take the operator's token (OPERATOR_TOKEN) instead of a
person's: the dead letters (docs/operations.md, "Quorum queues and dead letters")."""
import hmac

import eventlet
from kombu import Connection

from common import queues
from common.config import SERVICES, settings
from common.errors import AppError, Forbidden, NotFound, ServiceUnavailable, Unauthenticated
from common.rpc import bulkheads, call
from gateway.http import http, json_response, route
from gateway.openapi import document
from gateway.rate_limits import rate_limits
from gateway.request_input import load
from gateway.schemas.operations import DeadLetterPage, DeadLetterQuery, Health

OPERATOR_ERRORS = {
    401: "operator_token_required or invalid_operator_token: no `Authorization: Bearer <OPERATOR_TOKEN>`, or "
         "another token",
    403: "operations_disabled: OPERATOR_TOKEN is not set, so the operations routes refuse everything",
    429: "too_many_failures: too many refused credentials from this address (wrong operator tokens count)",
    503: "broker_unavailable: RabbitMQ did not answer"}


class OperationRoutes:
    @route("GET", "/health", "Whether RabbitMQ and every service answer", public=True,
           response=Health(), responses={503: Health()})
    def health(self, request):
        # Asked in parallel: a hung service costs its time-out once, not once per service after it.
        pile = eventlet.GreenPile()
        pile.spawn(_broker_status, self.config["AMQP_URI"])
        for name in SERVICES:
            pile.spawn(_ping, getattr(self, name))
        broker, *services = list(pile)
        report = {"rabbitmq": broker, "services": dict(zip(SERVICES, services, strict=True))}
        healthy = report["rabbitmq"] == "ok" and all(v == "ok" for v in report["services"].values())
        report["status"] = "ok" if healthy else "degraded"
        return json_response(Health().dump(report), 200 if healthy else 503)

    @route("GET", "/v1/operations/dead-letters",
           "The messages in the dead-letter queue, left there (operators: Authorization: Bearer OPERATOR_TOKEN)",
           public=True, response=DeadLetterPage(), query_schema=DeadLetterQuery(),
           query={"limit": "1-200, default 50"}, errors=OPERATOR_ERRORS)
    def dead_letters(self, request):
        operator_only(request)
        limit = load(DeadLetterQuery(), request.args.to_dict())["limit"]
        try:
            with eventlet.Timeout(10):
                total, letters = queues.peek_dead_letters(self.config["AMQP_URI"], limit)
        except (Exception, eventlet.Timeout):      # eventlet.Timeout is not an Exception
            raise ServiceUnavailable("The message broker is not reachable.", code="broker_unavailable") from None
        return json_response(DeadLetterPage().dump({"total": total, "dead_letters": letters}))

    @route("GET", "/openapi.json", "This document", public=True)
    def openapi(self, request):
        return json_response(document())

    # Anything else: a JSON 404 instead of werkzeug's HTML page, with or without a token. Werkzeug tries a
    # <path:path> rule after every rule made of fixed parts and plain variables, so this one only takes
    # what no route above matched (and a known path with a method it does not have).
    @http("GET,POST,PUT,PATCH,DELETE", "/<path:path>", public=True)
    def unknown_route(self, request, path):
        raise NotFound(f"There is no route {request.method} /{path}.", code="route_not_found")


def _ping(service):
    # A service whose every place in the bulkhead is taken is not answering in time: said at once, so
    # /health answers at its usual speed while a hung service holds its share of the workers.
    if bulkheads.full(service.service_name):
        return "service_unavailable"
    try:
        call(service.ping, timeout=3)
        return "ok"
    except AppError as exc:
        return exc.code


def _broker_status(amqp_uri):
    try:
        with eventlet.Timeout(3):
            with Connection(amqp_uri, connect_timeout=2) as connection:
                connection.ensure_connection(max_retries=1)
        return "ok"
    except BaseException:   # eventlet.Timeout is not an Exception
        return "unreachable"


def operator_only(request):
    """The operator's token, compared in constant time; none configured refuses everyone."""
    expected = settings().operator_token
    if expected is None:
        raise Forbidden("The operations routes are disabled: set OPERATOR_TOKEN to enable them.",
                        code="operations_disabled")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthenticated("Send the operator's token: Authorization: Bearer <OPERATOR_TOKEN>.",
                              code="operator_token_required")
    # Wrong tokens count against the client address as every refused credential does (429 past the limit).
    address = rate_limits.client_address(request.environ)
    rate_limits.check_not_blocked(address)
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise rate_limits.failed(Unauthenticated("That is not the operator's token.", code="invalid_operator_token"),
                                 address)
