"""Change events the members service emits, and its one `emit()`, bound to its outbox table: each event
is recorded in the transaction of the change it describes and relayed afterwards (common.outbox)."""
from common.event_types import (
    API_KEY_CREATED,
    API_KEY_REVOKED,
    BILLING_TRANSFER_ACCEPTED,
    BILLING_TRANSFER_CANCELLED,
    BILLING_TRANSFER_DECLINED,
    BILLING_TRANSFER_STARTED,
    INVITATION_ACCEPTED,
    INVITATION_CREATED,
    INVITATION_EXPIRED,
    INVITATION_REJECTED,
    INVITATION_RESENT,
    INVITATION_REVOKED,
    MEMBER_ADDED,
    MEMBER_LEFT,
    MEMBER_REMOVED,
    MEMBER_ROLES_CHANGED,
    USER_REGISTERED,
    USER_UPDATED,
)
from common.outbox import emitter
from services.members.models import OutboxEvent

# The event that records an invitation or a billing transfer reaching each final status.
INVITATION_ENDED = {"accepted": INVITATION_ACCEPTED, "rejected": INVITATION_REJECTED,
                    "revoked": INVITATION_REVOKED, "expired": INVITATION_EXPIRED}
BILLING_TRANSFER_ENDED = {"accepted": BILLING_TRANSFER_ACCEPTED, "declined": BILLING_TRANSFER_DECLINED,
                          "cancelled": BILLING_TRANSFER_CANCELLED}

EMITS = (USER_REGISTERED, USER_UPDATED, MEMBER_ADDED, MEMBER_ROLES_CHANGED, MEMBER_REMOVED, MEMBER_LEFT,
         INVITATION_CREATED, INVITATION_RESENT, *INVITATION_ENDED.values(),
         BILLING_TRANSFER_STARTED, *BILLING_TRANSFER_ENDED.values(), API_KEY_CREATED, API_KEY_REVOKED)

emit = emitter(OutboxEvent)
