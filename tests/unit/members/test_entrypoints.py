"""The members service's entrypoints with Nameko's worker_factory (the mailer is a mock, the database is
real: organizations' names and types come from its read model), and the mailer against a
tiny local SMTP server."""
import socket
import threading
from datetime import timedelta

import pytest

from common.config import settings
from common.errors import Conflict, Forbidden, ValidationFailed
from common.mail import Mailer
from common.readmodels import agent_state, apply_agent
from common.timeutil import utcnow
from services.members import invitations, memberships, organization_facts, users
from services.members.models import READ_MODELS, Invitation
from tests.unit.members.helpers import ORG, known, members_worker, read, written


def test_invite_sends_one_email_with_the_accept_link_and_a_replay_sends_none(make_store, alice):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    service = members_worker(store, alice)
    first = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    again = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    assert again == dict(first, idempotent_replayed=True)
    service.mailer.send.assert_called_once()
    to, subject, body = service.mailer.send.call_args.args
    assert to == "budi@example.com" and "Sehat Clinic" in subject
    assert f"/v1/invitations/{first['id']}/accept" in body


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
    service.mailer.send.assert_called_once()


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
    service.mailer.send.assert_not_called()


def test_a_resent_invitation_is_emailed_after_its_commit_and_a_refused_resend_sends_nothing(make_store, alice):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    sent_at = utcnow() - timedelta(minutes=11)
    invitation = written(store, invitations.invite, alice, ORG, "budi@example.com", ["member"], now=sent_at)
    service = members_worker(store, alice)
    committed = []
    service.mailer.send.side_effect = lambda *message: committed.append(
        read(store, lambda session: session.get(Invitation, invitation["id"]).send_count))
    assert service.resend_invitation(ORG["id"], invitation["id"])["id"] == invitation["id"]
    assert committed == [2]                                     # sent once the new send count was saved
    with pytest.raises(Conflict) as err:
        service.resend_invitation(ORG["id"], invitation["id"])
    assert err.value.code == "resend_too_early" and committed == [2]


def test_invite_refused_by_the_matrix_sends_nothing(make_store, alice, bob):
    store = make_store("members")
    written(store, memberships.add_founder, alice, ORG["id"])
    invitation = written(store, invitations.invite, alice, ORG, bob.email, ["member"])
    written(store, invitations.accept_invitation, bob, invitation["id"])
    service = members_worker(store, bob)
    with pytest.raises(Forbidden):
        service.invite(ORG["id"], "someone@example.com", ["member"])
    service.mailer.send.assert_not_called()


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
    assert mailer.send("budi@example.com", "Hello", "Accept: POST http://x/v1/invitations/1/accept") == "sent"
    server.thread.join(5)
    [message] = server.received
    assert "To: budi@example.com" in message and "/v1/invitations/1/accept" in message


def test_mailer_logs_when_smtp_is_not_configured_and_survives_a_dead_server(caplog):
    caplog.set_level("INFO")
    assert Mailer(settings({}).smtp).send("a@example.com", "Hi", "link") == "logged"
    assert "link" in caplog.text
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    mailer = Mailer(settings({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(dead_port)}).smtp)
    assert mailer.send("a@example.com", "Hi", "link") == "failed"


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
