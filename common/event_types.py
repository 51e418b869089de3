"""Every change event type, by the service that emits it: the names producers emit and consumers bind
to. Each service's `events.py` re-exports the ones it emits; a consumer imports what it reacts to from
here (services never import each other)."""

# ---- members ------------------------------------------------------------------------------------------
USER_REGISTERED = "user.registered"
USER_UPDATED = "user.updated"
MEMBER_ADDED = "member.added"
MEMBER_ROLES_CHANGED = "member.roles_changed"
MEMBER_REMOVED = "member.removed"
MEMBER_LEFT = "member.left"
INVITATION_CREATED = "invitation.created"
INVITATION_RESENT = "invitation.resent"
INVITATION_ACCEPTED = "invitation.accepted"
INVITATION_REJECTED = "invitation.rejected"
INVITATION_REVOKED = "invitation.revoked"
INVITATION_EXPIRED = "invitation.expired"
BILLING_TRANSFER_STARTED = "billing_transfer.started"
BILLING_TRANSFER_ACCEPTED = "billing_transfer.accepted"
BILLING_TRANSFER_DECLINED = "billing_transfer.declined"
BILLING_TRANSFER_CANCELLED = "billing_transfer.cancelled"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"

# ---- orgs ---------------------------------------------------------------------------------------------
ORGANIZATION_CREATED = "organization.created"
ORGANIZATION_RENAMED = "organization.renamed"
ORGANIZATION_DELETED = "organization.deleted"
ACTIVE_ORGANIZATION_CHANGED = "user.active_organization_changed"
AGENT_CREATED = "agent.created"
AGENT_UPDATED = "agent.updated"
AGENT_DELETED = "agent.deleted"
AGENT_TRANSFERRED = "agent.transferred"
AGENT_ACCESS_REVOKED = "agent.access_revoked"
AGENT_CONTRIBUTOR_ADDED = "agent.contributor_added"
AGENT_CONTRIBUTOR_REMOVED = "agent.contributor_removed"
AGENT_ASSIGNEE_ADDED = "agent.assignee_added"
AGENT_ASSIGNEE_REMOVED = "agent.assignee_removed"

# ---- credits ------------------------------------------------------------------------------------------
CREDITS_GRANTED = "credits.granted"
CREDITS_SPENT = "credits.spent"
CREDITS_EXPIRED = "credits.expired"
BUDGET_GROUP_CREATED = "budget_group.created"
BUDGET_GROUP_UPDATED = "budget_group.updated"
BUDGET_GROUP_DELETED = "budget_group.deleted"
MEMBER_BUDGET_GROUP_CHANGED = "member.budget_group_changed"
ALERT_SETTINGS_UPDATED = "alert_settings.updated"
CREDITS_ALERT_RAISED = "credits.alert_raised"
CREDITS_BALANCE_LOW = "credits.balance_low"     # a spend left the balance at or below the auto top-up threshold

# ---- billing ------------------------------------------------------------------------------------------
PAYMENT_METHOD_ADDED = "payment_method.added"
PAYMENT_METHOD_REMOVED = "payment_method.removed"
PAYMENT_METHOD_DEFAULT_CHANGED = "payment_method.default_changed"
TRANSACTION_CREATED = "transaction.created"
TRANSACTION_SUCCEEDED = "transaction.succeeded"
TRANSACTION_FAILED = "transaction.failed"
TRANSACTION_CANCELLED = "transaction.cancelled"
AUTO_TOPUP_UPDATED = "auto_topup.updated"
AUTO_TOPUP_FAILED = "auto_topup.failed"
AUTO_TOPUP_CAP_REACHED = "auto_topup.cap_reached"
AUTO_TOPUP_DISABLED = "auto_topup.disabled"

# ---- webhooks -----------------------------------------------------------------------------------------
WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated"
WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
WEBHOOK_ENDPOINT_SECRET_ROTATED = "webhook_endpoint.secret_rotated"
WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"       # by the system: 410 Gone, or 5 days of failures

# The key in the `state` of credits.balance_low of the account's balance after the spend: [{"organization_id",
# "balance"}] (an exact decimal as text). Billing starts auto top-ups from it.
BALANCE_STATE = "balance"
# The key in the `state` of billing's auto top-up events (auto_topup.updated, auto_topup.disabled) of the settings
# credits needs: [{"organization_id", "enabled", "threshold"}] (the threshold as text). Credits keeps the threshold
# beside its alert settings and says when a spend leaves the balance at or below it (credits.balance_low).
AUTO_TOPUP_STATE = "auto_topup"

# Membership ended, however it happened: consumers that keep per-member state drop it on these.
MEMBERSHIP_ENDED = (MEMBER_REMOVED, MEMBER_LEFT)

# The events that carry memberships' full state (common.readmodels): every change of who is a member
# with which roles. (A billing transfer accepted moves Billing between two members.)
MEMBERSHIP_STATE_CARRIERS = (MEMBER_ADDED, MEMBER_ROLES_CHANGED, MEMBER_REMOVED, MEMBER_LEFT, INVITATION_ACCEPTED,
                             BILLING_TRANSFER_ACCEPTED)
# The events that carry members' budget group (which group each is in; credits' read model in members).
BUDGET_GROUP_MEMBER_STATE_CARRIERS = (MEMBER_BUDGET_GROUP_CHANGED, BUDGET_GROUP_DELETED)
# The events that carry an organization's state (name, type, creation time, liveness).
ORGANIZATION_STATE_CARRIERS = (ORGANIZATION_CREATED, ORGANIZATION_RENAMED, ORGANIZATION_DELETED)
# The events that carry an agent's access state: its organization, contributors and assignees.
AGENT_STATE_CARRIERS = (AGENT_CREATED, AGENT_DELETED, AGENT_TRANSFERRED, AGENT_ACCESS_REVOKED, AGENT_CONTRIBUTOR_ADDED,
                        AGENT_CONTRIBUTOR_REMOVED, AGENT_ASSIGNEE_ADDED, AGENT_ASSIGNEE_REMOVED)

# Every change event type, sorted: what a webhook endpoint may subscribe to by name (SPEC §12).
ALL_TYPES = tuple(sorted(value for name, value in dict(globals()).items()
                         if name.isupper() and isinstance(value, str)
                         and name not in ("BALANCE_STATE", "AUTO_TOPUP_STATE")))
