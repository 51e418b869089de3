"""Credits: the balance and ledger, adding credit, spending it, the caller's usage, and budget groups."""
from werkzeug.wrappers import Response

from common import idempotency
from common.permissions import Scope
from common.rpc import call
from gateway.http import OPTIONAL_IDEMPOTENCY_KEY, json_response, route
from gateway.request_input import idempotency_key, load, read_json
from gateway.schemas.common import ListQuery
from gateway.schemas.credits import (
    AlertPage,
    AlertSettings,
    AlertSettingsBody,
    BudgetGroup,
    BudgetGroupBody,
    BudgetGroupDetail,
    BudgetGroupMembership,
    BudgetGroupPage,
    Credits,
    Grant,
    GrantBody,
    LedgerPage,
    LedgerQuery,
    OrganizationUsagePage,
    Spend,
    SpendBody,
    SpendEvaluation,
)


class CreditRoutes:
    # ---- credits ----------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/credits", "Balance, this month's spend and the grants holding credit "
           "(Owner/Billing; API keys: usage:read)", response=Credits(), errors=(403,), key_scope=Scope.USAGE_READ)
    def get_credits(self, request, org_id):
        return json_response(Credits().dump(call(self.credits.get_credits, org_id)))

    @route("GET", "/v1/organizations/<org_id>/credits/ledger",
           "Every grant, spend and expiry with who, when and the balance after, newest first (Owner/Billing; "
           "API keys: usage:read)", response=LedgerPage(), errors=(403,), key_scope=Scope.USAGE_READ,
           query_schema=LedgerQuery(), query={
               "kind": "grant | spend | expiry", "cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_ledger(self, request, org_id):
        query = load(LedgerQuery(), request.args.to_dict())
        page = call(self.credits.list_ledger, org_id, query["kind"], query["cursor"], query["limit"])
        return json_response(LedgerPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/credits/grants",
           "Add credit: free (may expire) or paid (Owner/Billing)", body=GrantBody(),
           response=Grant(), status=201, errors=(403,), headers=OPTIONAL_IDEMPOTENCY_KEY)
    def add_grant(self, request, org_id):
        body = read_json(request, GrantBody())
        grant = call(self.credits.add_grant, org_id, body["amount"], body["type"], body["expires_at"],
                     idempotency_key(request))
        return json_response(Grant().dump(grant), 201, headers=idempotency.replay_headers(grant))

    @route("POST", "/v1/organizations/<org_id>/usage",
           "Spend credit on the use of an agent (a member who may use it); dry_run true only evaluates",
           body=SpendBody(), response=Spend(), status=201, responses={200: SpendEvaluation()}, errors=(402, 403, 404),
           key_scope=Scope.USAGE_WRITE,
           headers={"Idempotency-Key": "required unless dry_run: a retry with the same key and body returns "
                                       "the first answer (header Idempotent-Replayed: true) and charges nothing; "
                                       "the same key with another body is 409 idempotency_key_reused"})
    def spend(self, request, org_id):
        body = read_json(request, SpendBody())
        if body["dry_run"]:
            evaluation = call(self.credits.evaluate_spend, org_id, body["agent_id"], body["amount"], body["user_id"])
            return json_response(SpendEvaluation().dump(evaluation))
        answer = call(self.credits.spend, org_id, body["agent_id"], body["amount"], idempotency_key(request),
                      body["user_id"])
        return json_response(Spend().dump(answer["spend"]), 201, headers=idempotency.replay_headers(answer["spend"]))

    @route("GET", "/v1/me/usage", "My spend this month, what I can still spend and what binds, per organization",
           response=OrganizationUsagePage(), query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def my_usage(self, request):
        # A page of my organizations (in the order of the organization list), and my usage in each: credits
        # keeps the organizations' names and memberships (its read models).
        query = load(ListQuery(), request.args.to_dict())
        return json_response(OrganizationUsagePage().dump(call(self.credits.my_usage, query["cursor"],
                                                               query["limit"])))

    # ---- budget groups -----------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/budget-groups",
           "Budget groups with member counts (Owner/Admin; API keys: usage:read)",
           response=BudgetGroupPage(), errors=(403,), key_scope=Scope.USAGE_READ, query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_budget_groups(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        page = call(self.credits.list_budget_groups, org_id, query["cursor"], query["limit"])
        return json_response(BudgetGroupPage().dump(page))

    @route("POST", "/v1/organizations/<org_id>/budget-groups", "Create a budget group (Owner/Admin)",
           body=BudgetGroupBody(), response=BudgetGroup(), status=201, errors=(403,))
    def create_budget_group(self, request, org_id):
        body = read_json(request, BudgetGroupBody())
        return json_response(BudgetGroup().dump(call(self.credits.create_budget_group, org_id, body)), 201)

    @route("GET", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "A budget group with each member's usage this month against the limit (Owner/Admin; API keys: "
           "usage:read)", response=BudgetGroupDetail(), errors=(403,), key_scope=Scope.USAGE_READ,
           query_schema=ListQuery(),
           query={"cursor": "from members.next_cursor", "limit": "members per page, 1-200, default 50"})
    def get_budget_group(self, request, org_id, group_id):
        query = load(ListQuery(), request.args.to_dict())
        group = call(self.credits.get_budget_group, org_id, group_id, query["cursor"], query["limit"])
        return json_response(BudgetGroupDetail().dump(group))

    @route("PATCH", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "Rename or change limits (Owner/Admin); applies from the next spend on",
           body=BudgetGroupBody(), response=BudgetGroup(), errors=(403,))
    def update_budget_group(self, request, org_id, group_id):
        body = read_json(request, BudgetGroupBody())
        return json_response(BudgetGroup().dump(call(self.credits.update_budget_group, org_id, group_id, body)))

    @route("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>",
           "Delete a budget group; its members are no longer capped by it (Owner/Admin)", status=204, errors=(403,))
    def delete_budget_group(self, request, org_id, group_id):
        call(self.credits.delete_budget_group, org_id, group_id)
        return Response(status=204)

    @route("PUT", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>",
           "Put a member in the group, out of any other (Owner/Admin); 201 when placed, 200 if already there",
           response=BudgetGroupMembership(), status=201, responses={200: BudgetGroupMembership()},
           errors=(403, 409))
    def add_budget_group_member(self, request, org_id, group_id, user_id):
        answer = call(self.credits.add_budget_group_member, org_id, group_id, user_id)
        return json_response(BudgetGroupMembership().dump(answer["membership"]), 201 if answer["created"] else 200)

    @route("DELETE", "/v1/organizations/<org_id>/budget-groups/<group_id>/members/<user_id>",
           "Take a member out of the group (Owner/Admin)", status=204, errors=(403,))
    def remove_budget_group_member(self, request, org_id, group_id, user_id):
        call(self.credits.remove_budget_group_member, org_id, group_id, user_id)
        return Response(status=204)

    # ---- alerts ------------------------------------------------------------------------------------
    @route("GET", "/v1/organizations/<org_id>/alert-settings",
           "Budget alert settings: percents of members' monthly limits and a balance floor (Owner/Admin/Billing; "
           "API keys: usage:read)", response=AlertSettings(), errors=(403,), key_scope=Scope.USAGE_READ)
    def get_alert_settings(self, request, org_id):
        return json_response(AlertSettings().dump(call(self.credits.get_alert_settings, org_id)))

    @route("PUT", "/v1/organizations/<org_id>/alert-settings",
           "Replace the budget alert settings (Owner/Admin/Billing); audited as alert_settings.updated",
           body=AlertSettingsBody(), response=AlertSettings(), errors=(403,))
    def set_alert_settings(self, request, org_id):
        body = read_json(request, AlertSettingsBody())
        settings = call(self.credits.set_alert_settings, org_id, body["member_budget_percents"],
                        body["balance_floor"])
        return json_response(AlertSettings().dump(settings))

    @route("GET", "/v1/organizations/<org_id>/alerts",
           "Alerts raised by spends that crossed a threshold, once per threshold, member and month, newest first "
           "(Owner/Admin/Billing; API keys: usage:read)", response=AlertPage(), errors=(403,),
           key_scope=Scope.USAGE_READ, query_schema=ListQuery(),
           query={"cursor": "from next_cursor", "limit": "1-200, default 50"})
    def list_alerts(self, request, org_id):
        query = load(ListQuery(), request.args.to_dict())
        return json_response(AlertPage().dump(call(self.credits.list_alerts, org_id, query["cursor"],
                                                   query["limit"])))
