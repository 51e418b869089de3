"""Audit trails: an agent's (a row per changed field) and the organization's (JSON pages, or a CSV/JSON
download of every matching entry); the trail's hash chain verified, its signed checkpoints, and the key
they are signed with (SPEC §13)."""
from common.permissions import Scope
from common.rpc import call
from gateway import export
from gateway.http import json_response, route
from gateway.request_input import load
from gateway.schemas.audit import (
    AgentTrailPage,
    AgentTrailQuery,
    AuditEntry,
    AuditExport,
    AuditPage,
    AuditQuery,
    ChainVerdict,
    Checkpoint,
    CheckpointPage,
    PublicKey,
)
from gateway.schemas.common import ListQuery


class AuditRoutes:
    @route("GET", "/v1/organizations/<org_id>/agents/<agent_id>/audit",
           "The agent's trail in this organization, a row per changed field (Owner/Admin; API keys: audit:read)",
           response=AgentTrailPage(), errors=(403,), key_scope=Scope.AUDIT_READ, query_schema=AgentTrailQuery(), query={
               "entity_type": "agent", "action": "create | update | delete", "actor": "user id or email",
               "field": "e.g. instructions", "old_value": "contained in the old value",
               "new_value": "contained in the new value", "since": "ISO 8601, inclusive",
               "until": "ISO 8601, exclusive", "cursor": "from next_cursor", "limit": "1-200, default 20"})
    def agent_audit(self, request, org_id, agent_id):
        query = load(AgentTrailQuery(), request.args.to_dict())
        cursor, limit = query.pop("cursor"), query.pop("limit")
        page = call(self.audit.list_agent_entries, org_id, agent_id, query, cursor, limit)
        return json_response(AgentTrailPage().dump(page))

    @route("GET", "/v1/organizations/<org_id>/audit",
           "The organization's audit trail (Owner/Admin; API keys: audit:read)",
           response=AuditPage(), errors=(403,), key_scope=Scope.AUDIT_READ, query_schema=AuditQuery(),
           downloads={"application/json": AuditExport(), "text/csv": export.AUDIT_CSV_COLUMNS}, query={
               "entity_type": "e.g. organization", "action": "create | update | delete",
               "actor": "user id or email", "field": "a changed field", "target": "entity id",
               "since": "ISO 8601, inclusive", "until": "ISO 8601, exclusive", "cursor": "from next_cursor",
               "limit": "1-200, default 50", "format": "json | csv: download every matching entry"})
    def list_audit(self, request, org_id):
        query = load(AuditQuery(), request.args.to_dict())
        export_format, cursor, limit = query.pop("format"), query.pop("cursor"), query.pop("limit")
        if export_format is None:
            page = call(self.audit.list_entries, org_id, query, cursor, limit)
            return json_response(AuditPage().dump(page))
        # One method, page after page; the first page also brings the organization's signed checkpoints.
        first_page = {}

        def export_page(cursor):
            page = call(self.audit.export_entries, org_id, query, cursor, 200)
            first_page.setdefault("checkpoints", page.get("checkpoints") or [])
            return page
        entries = export.every_page(org_id, export_page)
        unfiltered = all(value is None for value in query.values())
        return export.audit_download(org_id, export_format, AuditEntry(many=True).dump(entries),
                                     Checkpoint(many=True).dump(first_page["checkpoints"]),
                                     complete=unfiltered and len(entries) < export.EXPORT_MAX_ROWS)

    @route("GET", "/v1/organizations/<org_id>/audit/verify",
           "Check the organization's hash chain and its latest signed checkpoints: intact, or the first bad seq "
           "and why (Owner/Admin; API keys: audit:read)",
           response=ChainVerdict(), errors=(403,), key_scope=Scope.AUDIT_READ)
    def verify_audit(self, request, org_id):
        return json_response(ChainVerdict().dump(call(self.audit.verify_chain, org_id)))

    @route("GET", "/v1/organizations/<org_id>/audit/checkpoints",
           "The signed heads of the organization's hash chain, newest first (Owner/Admin; API keys: audit:read)",
           response=CheckpointPage(), errors=(403,), key_scope=Scope.AUDIT_READ, query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_audit_checkpoints(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.audit.list_checkpoints, org_id, query["cursor"], query["limit"])
        return json_response(CheckpointPage().dump(page))

    @route("GET", "/v1/audit/public-key",
           "The Ed25519 public key the audit checkpoints are signed with (public: what an auditor verifies an "
           "export with)", public=True, response=PublicKey())
    def audit_public_key(self, request):
        return json_response(PublicKey().dump(call(self.audit.public_key)))
