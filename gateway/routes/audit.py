"""Audit trails: an agent's (a row per changed field) and the organization's (JSON pages, or a CSV/JSON
download of every matching entry)."""
from common.permissions import Scope
from common.rpc import call
from gateway import export
from gateway.http import json_response, route
from gateway.request_input import load
from gateway.schemas.audit import AgentTrailPage, AgentTrailQuery, AuditEntry, AuditPage, AuditQuery


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
           downloads={"application/json": AuditEntry(many=True), "text/csv": export.AUDIT_CSV_COLUMNS}, query={
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
        entries = export.every_page(lambda cursor: call(self.audit.list_entries, org_id, query, cursor, 200))
        return export.audit_download(org_id, export_format, AuditEntry(many=True).dump(entries))
