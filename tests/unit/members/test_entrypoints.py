"""The members service's entrypoints with Nameko's worker_factory (orgs and the mailer are mocks, the
database is real: organizations' names and types come from its read model), and the mailer against a
tiny local SMTP server."""
import socket
import threading

import pytest
from nameko.testing.services import worker_factory

from common.config import settings
from common.errors import Conflict, Forbidden
from common.mail import Mailer
from common.readmodels import organization_state
from services.members import invitations, memberships, organization_facts, users
from services.members.own_memberships import Memberships
from services.members.service import MembersService

ORG = {"id": "org-1", "name": "Sehat Clinic", "type": "collective"}


def known(store, type="collective", version=1):
    """ORG as orgs hands it over with its founder (the members service's read model of organizations)."""
    organization_facts.remember_organization(store, ORG["id"], organization_state(
        ORG["id"], ORG["name"], type, "2026-01-05T09:00:00Z", version))


def members_worker(store, identity):
    service = worker_factory(MembersService, db=store)
    service.auth.identity = identity
    service.memberships = Memberships(store)
    known(store)
    return service


def test_invite_sends_one_email_with_the_accept_link_and_a_replay_sends_none(make_store, alice):
    store = make_store("members")
    memberships.add_founder(store, alice, ORG["id"])
    service = members_worker(store, alice)
    first = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    again = service.invite(ORG["id"], "budi@example.com", ["builder"], None, "key-1")
    assert again == dict(first, idempotent_replayed=True)
    service.mailer.send.assert_called_once()
    to, subject, body = service.mailer.send.call_args.args
    assert to == "budi@example.com" and "Sehat Clinic" in subject
    assert f"/v1/invitations/{first['id']}/accept" in body


def test_invite_refused_by_the_matrix_sends_nothing(make_store, alice, bob):
    store = make_store("members")
    memberships.add_founder(store, alice, ORG["id"])
    invitation, _ = invitations.invite(store, alice, ORG, bob.email, ["member"])
    invitations.accept_invitation(store, bob, invitation["id"])
    service = members_worker(store, bob)
    with pytest.raises(Forbidden):
        service.invite(ORG["id"], "someone@example.com", ["member"])
    assert service.orgs.mock_calls == []
    service.mailer.send.assert_not_called()


@pytest.mark.parametrize("organization_type, code", [("individual", "individual_organization"),
                                                      ("collective", "billing_holder_cannot_leave")])
def test_the_billing_holder_leaving_is_told_why_they_cannot(make_store, alice, organization_type, code):
    """In an Individual organization there is nobody to hand Billing to: the answer says so."""
    store = make_store("members")
    memberships.add_founder(store, alice, ORG["id"])
    service = members_worker(store, alice)
    known(store, organization_type, version=2)
    with pytest.raises(Conflict) as err:
        service.remove_member(ORG["id"], alice.id)
    assert err.value.code == code
    assert memberships.membership_of(store, ORG["id"], alice.id)["roles"] == ["owner", "billing"]
    assert service.orgs.mock_calls == []                                # decided from the read model


def test_leaving_asks_orgs_nothing_when_it_is_allowed(make_store, alice, bob):
    store = make_store("members")
    users.register_user(store, bob)
    memberships.add_founder(store, alice, ORG["id"])
    invitation, _ = invitations.invite(store, alice, ORG, bob.email, ["member"])
    invitations.accept_invitation(store, bob, invitation["id"])
    service = members_worker(store, bob)
    assert service.remove_member(ORG["id"], bob.id)["left"] is True
    assert service.orgs.mock_calls == []


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
