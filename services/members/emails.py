"""Outgoing email (an invitation's, sent again on a resend): decided by a reaction, sent by a job, retried.

The request that invites does not send the email. Its event (invitation.created, invitation.resent) comes
back to members (common.events.MEMBERS_QUEUE), and its reaction (reactions.py, the one rule of
common.inbox) stores one `outgoing_emails` row, in the transaction that records the event as handled.
The `send_due_emails` job sends due rows outside any transaction and tries a failed one again later
(RETRY_DELAYS), then gives up with an ERROR line. So mail never fails or slows a request, a crash
between the commit and the send loses nothing (the event or the row waits), and a replayed request sends
nothing (a replay emits no event).
"""
import logging
from datetime import timedelta

from sqlalchemy import select

from common import request_ids
from common.timeutil import utcnow
from services.members.invitations import invitation_dict, invitation_email
from services.members.models import PENDING, Invitation, OutgoingEmail

log = logging.getLogger(__name__)

# After the first try: the waits before each next one (about 7 hours in all), then it is given up.
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
                timedelta(hours=6))
# A row being sent is not due for this long, so another replica's job does not send it too.
SENDING_CLAIM = timedelta(minutes=2)
BATCH = 20


def queue_invitation_email(session, event, app_url, now=None):
    """The reaction to invitation.created / invitation.resent: the email to send, unless the invitation
    was answered, revoked or deleted before its email left (then there is nothing to invite to)."""
    now = now or utcnow()
    invitation = session.get(Invitation, event["target"]["id"])
    if invitation is None or invitation.status != PENDING:
        return None
    subject, body = invitation_email(invitation_dict(invitation, now), app_url)
    email = OutgoingEmail(id=event["event_id"], kind=event["type"], recipient=invitation.email, subject=subject,
                          body=body, request_id=event.get("request_id"), attempts=0, created_at=now,
                          next_attempt_at=now)
    session.add(email)
    return email


def claim_due_emails(store, now, limit=BATCH):
    """Up to `limit` emails due now, claimed for SENDING_CLAIM (on PostgreSQL, rows another replica is
    claiming are skipped)."""
    due = (select(OutgoingEmail).where(OutgoingEmail.sent_at.is_(None), OutgoingEmail.gave_up_at.is_(None),
                                       OutgoingEmail.next_attempt_at <= now)
           .order_by(OutgoingEmail.next_attempt_at).limit(limit).with_for_update(skip_locked=True))
    with store.write() as session:
        rows = session.scalars(due).all()
        for row in rows:
            row.next_attempt_at = now + SENDING_CLAIM
        return [(row.id, row.recipient, row.subject, row.body, row.request_id) for row in rows]


def send_due_emails(store, mailer, now=None):
    """Send every email due now; returns {"sent": n, "retrying": n, "given_up": n}."""
    counts, now = {"sent": 0, "retrying": 0, "given_up": 0}, now or utcnow()
    for email_id, recipient, subject, body, request_id in claim_due_emails(store, now):
        request_ids.serve(request_id)       # the log lines of this email carry the inviting request's id
        try:
            outcome = mailer.send(recipient, subject, body)
        finally:
            request_ids.serve(None)
        counts[record_outcome(store, email_id, outcome, now)] += 1
    return counts


def record_outcome(store, email_id, outcome, now=None):
    """Mark an email sent, or due again after its next delay, or given up after the last."""
    now = now or utcnow()
    with store.write() as session:
        row = session.get(OutgoingEmail, email_id)
        if outcome.ok:
            row.sent_at, row.last_error = now, None
            return "sent"
        row.attempts += 1
        row.last_error = outcome.error[:400]
        if outcome.permanent or row.attempts > len(RETRY_DELAYS):
            row.gave_up_at = now
            log.error("gave up sending the %s email %s to %s after %d attempt(s): %s", row.kind, row.id,
                      row.recipient, row.attempts, row.last_error)
            return "given_up"
        row.next_attempt_at = now + RETRY_DELAYS[row.attempts - 1]
        log.warning("the %s email %s to %s will be tried again at %s (attempt %d failed)", row.kind, row.id,
                    row.recipient, row.next_attempt_at.isoformat(), row.attempts)
        return "retrying"
