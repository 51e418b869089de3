"""The HTTP gateway: authenticates each request, calls the services over RPC, shapes the answers.

It owns no data. Each handler: authenticate, validate input with a schema, one or more RPC calls
(bounded by common.rpc.call), dump the answer with a schema. Permission checks happen again in the
services; the gateway's are not the only line.
"""
import csv
import io
import json
from collections import OrderedDict

import eventlet
from kombu import Connection
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy

from common.auth import Auth
from common.errors import AppError, BadRequest, NotFound
from common.rpc import call
from gateway import schemas, tokens
from gateway.http import http, json_response, load, read_json, route
from gateway.openapi import document
from werkzeug.wrappers import Response

SERVICES = ("orgs", "members", "credits", "audit")
EXPORT_MAX_ROWS = 10000

# Users this process has already signed in (their Individual organization exists). Only an
# optimisation: sign-in is idempotent, and another replica simply does it once more.
_signed_in = OrderedDict()
_SIGNED_IN_MAX = 10000


class GatewayService:
    name = "gateway"

    auth = Auth()
    config = Config()
    orgs = RpcProxy("orgs")
    members = RpcProxy("members")
    credits = RpcProxy("credits")
    audit = RpcProxy("audit")

    def _authenticate(self, request):
        identity = tokens.identity_from_header(request.headers.get("Authorization"))
        self.auth.sign_in(identity)
        if identity not in _signed_in:
            call(self.orgs.sign_in)
            _signed_in[identity] = True
            if len(_signed_in) > _SIGNED_IN_MAX:
                _signed_in.popitem(last=False)
        return identity

    # ---- operations --------------------------------------------------------------------------------
    @route("GET", "/health", "Whether RabbitMQ and every service answer", public=True,
           response=schemas.Health(), errors=(503,))
    def health(self, request):
        # Asked in parallel: a hung service costs its time-out once, not once per service after it.
        pile = eventlet.GreenPile()
        pile.spawn(_broker_status, self.config["AMQP_URI"])
        for name in SERVICES:
            pile.spawn(_ping, getattr(self, name))
        broker, *services = list(pile)
        report = {"rabbitmq": broker, "services": dict(zip(SERVICES, services))}
        healthy = report["rabbitmq"] == "ok" and all(v == "ok" for v in report["services"].values())
        report["status"] = "ok" if healthy else "degraded"
        return json_response(schemas.Health().dump(report), 200 if healthy else 503)

    @route("GET", "/openapi.json", "This document", public=True)
    def openapi(self, request):
        return json_response(document())

    # ---- me ----------------------------------------------------------------------------------------
    @route("GET", "/v1/me", "The signed-in user, their active organization and memberships",
           response=schemas.Me())
    def get_me(self, request):
        self._authenticate(request)
        return json_response(schemas.Me().dump(call(self.orgs.get_me)))

    @route("PUT", "/v1/me/active-organization", "Switch the active organization",
           body=schemas.ActiveOrganizationBody(), response=schemas.Me())
    def set_active_organization(self, request):
        self._authenticate(request)
        body = read_json(request, schemas.ActiveOrganizationBody())
        return json_response(schemas.Me().dump(call(self.orgs.set_active_organization, body["organization_id"])))

    # ---- organizations -----------------------------------------------------------------------------
    @route("GET", "/v1/organizations", "Organization cards of the signed-in user",
           response=schemas.OrganizationPage(), query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_organizations(self, request):
        self._authenticate(request)
        query = load(schemas.ListQuery(), request.args.to_dict())
        page = call(self.orgs.list_organizations, query["cursor"], query["limit"])
        return json_response(schemas.OrganizationPage().dump(page))

    @route("POST", "/v1/organizations", "Create a Collective organization (Idempotency-Key optional)",
           body=schemas.OrganizationNameBody(), response=schemas.OrganizationCard(), status=201,
           headers={"Idempotency-Key": "optional; a retry with the same key returns the first answer"})
    def create_organization(self, request):
        self._authenticate(request)
        body = read_json(request, schemas.OrganizationNameBody())
        card = call(self.orgs.create_organization, body["name"], _idempotency_key(request))
        return json_response(schemas.OrganizationCard().dump(card), 201)

    @route("GET", "/v1/organizations/<org_id>", "One organization card", response=schemas.OrganizationCard())
    def get_organization(self, request, org_id):
        self._authenticate(request)
        return json_response(schemas.OrganizationCard().dump(call(self.orgs.get_organization, org_id)))

    @route("PATCH", "/v1/organizations/<org_id>", "Rename (Owner/Admin)", body=schemas.OrganizationNameBody(),
           response=schemas.OrganizationCard(), errors=(403,))
    def rename_organization(self, request, org_id):
        self._authenticate(request)
        body = read_json(request, schemas.OrganizationNameBody())
        card = call(self.orgs.rename_organization, org_id, body["name"])
        return json_response(schemas.OrganizationCard().dump(card))

    @route("DELETE", "/v1/organizations/<org_id>", "Delete a Collective organization (Owner/Admin)",
           status=204, errors=(403, 409))
    def delete_organization(self, request, org_id):
        self._authenticate(request)
        call(self.orgs.delete_organization, org_id)
        return Response(status=204)

    # ---- audit -------------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/audit", "The organization's audit trail (Owner/Admin)",
           response=schemas.AuditPage(), errors=(403,), query={
               "entity_type": "e.g. organization", "action": "create | update | delete",
               "actor": "user id or email", "field": "a changed field", "target": "entity id",
               "since": "ISO 8601, inclusive", "until": "ISO 8601, exclusive", "cursor": "from next_cursor",
               "limit": "1-200, default 50", "format": "json | csv: download every matching entry"})
    def list_audit(self, request, org_id):
        self._authenticate(request)
        query = load(schemas.AuditQuery(), request.args.to_dict())
        export, cursor, limit = query.pop("format"), query.pop("cursor"), query.pop("limit")
        if export is None:
            page = call(self.audit.list_entries, org_id, query, cursor, limit)
            return json_response(schemas.AuditPage().dump(page))
        entries = []
        while len(entries) < EXPORT_MAX_ROWS:
            page = call(self.audit.list_entries, org_id, query, cursor, 200)
            entries += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        entries = schemas.AuditEntry(many=True).dump(entries[:EXPORT_MAX_ROWS])
        filename = f"audit-{org_id}.{export}"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if export == "json":
            return json_response(entries, headers=headers)
        return Response(_audit_csv(entries), headers=headers, mimetype="text/csv")

    # ---- anything else: JSON 404 instead of werkzeug's HTML page ------------------------------------
    @http("GET,POST,PUT,PATCH,DELETE", "/<path:path>")
    def unknown_route(self, request, path):
        raise NotFound(f"There is no route {request.method} /{path}.", code="route_not_found")


def _idempotency_key(request):
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and (len(key) > 200 or not key.isprintable()):
        raise BadRequest("Idempotency-Key must be at most 200 printable characters.",
                         code="invalid_idempotency_key", field="Idempotency-Key")
    return key


def _ping(service):
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


def _audit_csv(entries):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["occurred_at", "event_id", "type", "entity_type", "entity_id", "action",
                     "actor_id", "actor_email", "field", "old_value", "new_value"])
    for e in entries:
        for change in e["changes"] or [{"field": "", "old_value": None, "new_value": None}]:
            writer.writerow([e["occurred_at"], e["event_id"], e["type"], e["entity_type"], e["entity_id"],
                             e["action"], e["actor"].get("id"), e["actor"].get("email", ""), change["field"],
                             json.dumps(change["old_value"]), json.dumps(change["new_value"])])
    return out.getvalue()
