"""Routes that need no sign-in: the health check, the OpenAPI document, and the JSON 404 of any other path."""
import eventlet
from kombu import Connection

from common.config import SERVICES
from common.errors import AppError, NotFound
from common.rpc import bulkheads, call
from gateway.http import http, json_response, route
from gateway.openapi import document
from gateway.schemas.operations import Health


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
