"""The members service's entrypoints with Nameko's worker_factory (the mailer is a mock, the database is
real: organizations' names and types come from its read model); an invitation's email, called for by its
event's reaction and sent (and retried) by the job; the mailer against a tiny local SMTP server."""
import socket
import threading
from datetime import timedelta

import pytest

from common.config import settings
from common.errors import Conflict, Forbidden, ValidationFailed
from common.mail import SENT, Mailer, Outcome
from common.readmodels import agent_state, apply_agent
from common.timeutil import utcnow
from services.members import emails, invitations, memberships, organization_facts, reactions, users
from services.members.models import READ_MODELS, OutgoingEmail
from tests.unit.members.helpers import ORG, events, known, members_worker, written


class Mailbox:
    """A mailer that records what it is given and answers the outcomes it is told to, then SENT."""

    def __init__(self, *outcomes):
        self.outcomes, self.sent = list(outcomes), []

    def send(self, to, subject, body):
        self.sent.append((to, subject, body))
        return self.outcomes.pop(0) if self.outcomes else SENT


def invitation_events(store, type="invitation.created"):
    return [event for event in events(store) if event["type"] == type]


def test_invite_calls_for_one_email_with_the_accept_link_and_a_replay_for_none(make_store, alice):
    """The request sends nothing: its event, handled by the reaction (twice: a redelivery), stores one
    email, which the job sends."""
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    service = members_worker(store, alice)
    first = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    again = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    assert again == dict(first, idempotent_replayed=True)
    service.mailer.send.assert_not_called()
    [event] = invitation_events(store)
    assert reactions.handle_change_event(store, event) is True
    assert reactions.handle_change_event(store, event) is False
    mailbox = Mailbox()
    assert emails.send_due_emails(store, mailbox) == {"sent": 1, "retrying": 0, "given_up": 0}
    [(to, subject, body)] = mailbox.sent
    assert to == "budi@example.com" and "Sehat Clinic" in subject
    assert f"/console/#/invitations/{first['id']}\n" in body           # a link a person opens
    assert f"POST http://127.0.0.1:8000/v1/invitations/{first['id']}/accept" in body
    assert emails.send_due_emails(store, mailbox) == {"sent": 0, "retrying": 0, "given_up": 0}


def test_a_failed_send_is_tried_again_after_each_delay_then_given_up(make_store, alice, caplog):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    members_worker(store, alice).invite(ORG["id"], "budi@example.com", ["builder"])
    [event] = invitation_events(store)
    reactions.handle_change_event(store, event)
    down = Outcome(False, "ConnectionRefusedError: [Errno 111] Connection refused")
    mailbox, now = Mailbox(down, down), utcnow()
    assert emails.send_due_emails(store, mailbox, now) == {"sent": 0, "retrying": 1, "given_up": 0}
    assert emails.send_due_emails(store, mailbox, now + timedelta(seconds=29)) == {"sent": 0, "retrying": 0,
                                                                                     "given_up": 0}
    assert emails.send_due_emails(store, mailbox, utcnow() + timedelta(seconds=31))["retrying"] == 1
    assert emails.send_due_emails(store, mailbox, utcnow() + timedelta(minutes=3))["sent"] == 1
    assert len(mailbox.sent) == 3 and len({message for message in mailbox.sent}) == 1
    with store.read() as session:
        [row] = session.query(OutgoingEmail).all()
        assert row.attempts == 2 and row.sent_at is not None and row.last_error is None
    # One that never goes through is given up after the last delay, with an ERROR line (address masked
    # by the log formatter, not here).
    members_worker(store, alice).invite(ORG["id"], "sari@example.com", ["member"])
    reactions.handle_change_event(store, invitation_events(store)[-1])
    mailbox, at = Mailbox(*[down] * 10), utcnow()
    outcomes = []
    for delay in (timedelta(0), *emails.RETRY_DELAYS):
        at += delay + timedelta(seconds=1)
        outcomes.append(emails.send_due_emails(store, mailbox, at))
    assert [o["retrying"] for o in outcomes] == [1] * 5 + [0] and outcomes[-1]["given_up"] == 1
    assert "gave up sending the invitation.created email" in caplog.text
    assert emails.send_due_emails(store, mailbox, at + timedelta(days=1)) == {"sent": 0, "retrying": 0,
                                                                              "given_up": 0}


def test_no_email_for_an_invitation_revoked_before_its_event_was_handled(make_store, alice):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    service = members_worker(store, alice)
    invitation = service.invite(ORG["id"], "budi@example.com", ["builder"])
    service.revoke_invitation(ORG["id"], invitation["id"])
    reactions.handle_change_event(store, invitation_events(store)[0])
    assert emails.send_due_emails(store, Mailbox())["sent"] == 0


AGENT = "00000000-0000-0000-0000-00000000000a"


def test_the_same_key_with_another_address_is_a_409(make_store, alice):
    """The pipeline stores invite's answer under the key, fingerprinted with its validated values."""
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    written(store, lambda session: apply_agent(session, READ_MODELS, agent_state(AGENT, ORG["id"], [], [], 1)))
    service = members_worker(store, alice)
    first = service.invite(ORG["id"], "budi@example.com", ["builder"], [AGENT], "key-1")
    # The address as the contract made it canonical: the same request, replayed.
    assert service.invite(ORG["id"], " Budi@Example.com", ["builder"], [AGENT], "key-1")["id"] == first["id"]
    with pytest.raises(Conflict) as err:
        service.invite(ORG["id"], "someone-else@example.com", ["builder"], None, "key-1")
    assert err.value.code == "idempotency_key_reused"
    assert len(invitation_events(store)) == 1


def test_invite_waits_for_an_unknown_agent_outside_the_write_transaction(make_store, alice, monkeypatch):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    service = members_worker(store, alice)
    write_lock_held, look_up = [], organization_facts._unknown_agents

    def unknown_agents(*args):
        write_lock_held.append(store._write_lock.locked())     # SQLite's writers queue on it
        return look_up(*args)
    monkeypatch.setattr(organization_facts, "_unknown_agents", unknown_agents)
    monkeypatch.setattr(organization_facts, "NEW_AGENT_WAIT_SECONDS", 0.1)
    with pytest.raises(ValidationFailed) as err:
        service.invite(ORG["id"], "budi@example.com", ["builder"], [AGENT])
    assert err.value.code == "unknown_agent"
    assert len(write_lock_held) > 1 and not any(write_lock_held)        # looked again while waiting
    assert invitation_events(store) == []


def test_a_resent_invitation_calls_for_an_email_and_a_refused_resend_for_none(make_store, alice):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    sent_at = utcnow() - timedelta(minutes=11)
    invitation = written(store, invitations.invite, alice, ORG, "budi@example.com", ["member"], now=sent_at)
    service = members_worker(store, alice)
    assert service.resend_invitation(ORG["id"], invitation["id"])["id"] == invitation["id"]
    with pytest.raises(Conflict) as err:
        service.resend_invitation(ORG["id"], invitation["id"])
    assert err.value.code == "resend_too_early"
    [resent] = invitation_events(store, "invitation.resent")
    reactions.handle_change_event(store, resent)
    mailbox = Mailbox()
    assert emails.send_due_emails(store, mailbox)["sent"] == 1
    assert f"/v1/invitations/{invitation['id']}/accept" in mailbox.sent[0][2]


def test_invite_refused_by_the_matrix_sends_nothing(make_store, alice, bob):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    invitation = written(store, invitations.invite, alice, ORG, bob.email, ["member"])
    written(store, invitations.accept_invitation, bob, invitation["id"])
    service = members_worker(store, bob)
    with pytest.raises(Forbidden):
        service.invite(ORG["id"], "someone@example.com", ["member"])
    assert [e["after"].get("email") for e in invitation_events(store)] == [bob.email]


@pytest.mark.parametrize("organization_type, code", [("individual", "individual_organization"),
                                                      ("collective", "billing_holder_cannot_leave")])
def test_the_billing_holder_leaving_is_told_why_they_cannot(make_store, alice, organization_type, code):
    """In an Individual organization there is nobody to hand Billing to: the answer says so."""
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    service = members_worker(store, alice)
    known(store, organization_type, version=2)
    with pytest.raises(Conflict) as err:
        service.remove_member(ORG["id"], alice.id)
    assert err.value.code == code
    assert memberships.membership_of(store, ORG["id"], alice.id)["roles"] == ["owner", "billing"]


def test_leaving_is_allowed_to_a_member_without_billing(make_store, alice, bob):
    store = make_store("members")
    written(store, users.register_user, bob)
    written(store, memberships.add_founder, alice, ORG["id"])
    invitation = written(store, invitations.invite, alice, ORG, bob.email, ["member"])
    written(store, invitations.accept_invitation, bob, invitation["id"])
    service = members_worker(store, bob)
    assert service.remove_member(ORG["id"], bob.id)["left"] is True


class FakeSmtpServer:
    """Just enough SMTP to receive one message (no TLS)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        stream = conn.makefile("rwb")

        def say(line):
            stream.write(line.encode() + b"\r\n")
            stream.flush()
        say("220 fake")
        data = None
        for raw in stream:
            line = raw.decode().rstrip("\r\n")
            if data is not None:
                if line == ".":
                    self.received.append("\n".join(data))
                    data = None
                    say("250 queued")
                else:
                    data.append(line)
            elif line.upper().startswith(("EHLO", "HELO")):
                say("250 fake")
            elif line.upper() == "DATA":
                data = []
                say("354 go on")
            elif line.upper() == "QUIT":
                say("221 bye")
                break
            else:
                say("250 ok")
        conn.close()


def test_mailer_sends_through_smtp_when_configured():
    server = FakeSmtpServer()
    mailer = Mailer(settings({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port),
                                  "SMTP_STARTTLS": "false", "SMTP_FROM": "team@example.com"}).smtp)
    subject = "You are invited to Acme\nBcc: everyone@example.com"     # a name stored before the name rule
    assert mailer.send("budi@example.com", subject, "Accept: POST http://x/v1/invitations/1/accept") == SENT
    server.thread.join(5)
    [message] = server.received
    assert "To: budi@example.com" in message and "/v1/invitations/1/accept" in message
    assert "Subject: You are invited to Acme Bcc: everyone@example.com" in message
    assert "\nBcc:" not in message


def test_mailer_logs_when_smtp_is_not_configured_and_never_raises(caplog):
    """A dead server is worth another try; a message that cannot be built is not (an outcome, not the
    ValueError that failed the invitation's request when the email was sent inline)."""
    caplog.set_level("INFO")
    assert Mailer(settings({}).smtp).send("a@example.com", "Hi", "link") == SENT
    assert "link" in caplog.text
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    mailer = Mailer(settings({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(dead_port)}).smtp)
    down = mailer.send("a@example.com", "Hi", "link")
    assert not down.ok and not down.permanent and "ConnectionRefusedError" in down.error
    refused = mailer.send("a@example.com\nBcc: b@example.com", "Hi", "link")
    assert not refused.ok and refused.permanent


def test_a_message_that_is_not_a_change_event_is_dropped_not_requeued(caplog):
    """members consumes organization.deleted; a malformed message must be acknowledged and logged,
    or RabbitMQ would hand it back forever."""
    from nameko.testing.services import worker_factory

    from services.members.service import MembersService
    service = worker_factory(MembersService)
    for message in ({"type": "organization.deleted"}, {"junk": True}, "text"):
        service.on_change_event(message)        # no exception: nothing to requeue
    assert service.db.write.call_count == 0
    assert "dropping a message that is not a change event" in caplog.text
