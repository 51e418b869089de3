"""A gateway stopped (SIGTERM) under 10 keep-alive clients spending (issue 24, common.framework.web.Draining):
it stops accepting, answers every request it was answering, closes each connection after its answer, then
exits. Counted by Idempotency-Key: every spend a client got no answer for is sent again, with its key, to
the gateway started again; a replayed answer would be a spend charged but never answered. None is.
Before, 10 of the 10 in-flight spends were charged and their clients got "Remote end closed connection
without response" (4 rounds out of 4)."""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.helpers import create_agent, create_organization, path, wait_for
from tests.e2e.test_credits import grant

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)

CLIENTS = 10


def test_a_gateway_stopped_under_keep_alive_clients_answers_every_spend_it_charged(system, figure):
    alice = system.user("alice")
    org = create_organization(alice, "Stopping gateway")["id"]
    grant(alice, org, "100000")
    agent = create_agent(alice, org, "Triage nurse")["id"]
    url = system.url + path(org, "/usage")
    answered, unanswered = [], []
    give_up_at = time.monotonic() + 60

    def client(_):
        session = requests.Session()                    # one keep-alive connection per client
        session.headers.update(alice.session.headers)
        while True:
            key = uuid.uuid4().hex
            try:
                response = session.post(url, json={"agent_id": agent, "amount": "0.01"},
                                        headers={"Idempotency-Key": key}, timeout=30)
            except requests.ConnectionError:
                unanswered.append(key)          # its connection closed under it, or no gateway to connect to
                return
            answered.append(response.status_code)
            if time.monotonic() > give_up_at:
                return                          # the gateway never stopped: the assertions below say so

    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, n) for n in range(CLIENTS)]
        time.sleep(1.5)
        started = time.monotonic()
        system.stop("gateway")                          # SIGTERM, and waits for the process to exit
        stopped_in = time.monotonic() - started
        [job.result() for job in clients]

    system.start("gateway")
    system.wait_healthy(timeout=30)
    replayed = 0
    for key in unanswered:
        again = alice.post(path(org, "/usage"), json={"agent_id": agent, "amount": "0.01"},
                           headers={"Idempotency-Key": key})
        assert again.status_code == 201, again.text
        replayed += again.headers.get("Idempotent-Replayed") == "true"
    figure(f"gateway stopped in {stopped_in:.1f} s under {CLIENTS} keep-alive clients: {len(answered)} spends "
           f"answered, {len(unanswered)} requests without an answer, of which charged: {replayed}")
    assert set(answered) == {201}, answered
    assert len(unanswered) == CLIENTS                   # every client's last request met the stop
    assert replayed == 0, f"{replayed} spends were charged and never answered"


def test_a_gateway_restarted_while_orgs_and_members_are_down_still_takes_a_members_spend(system, figure):
    """Its memory of who signed in is gone with the restart; sign-in (orgs) is away: the spend goes on, decided
    by credits from its own read models, and the member is signed in once orgs is back."""
    alice = system.user("alice")
    org = create_organization(alice, "Restarted gateway")["id"]
    grant(alice, org, "100")
    agent = create_agent(alice, org, "Triage nurse")["id"]
    assert alice.post(path(org, "/usage"), json={"agent_id": agent, "amount": "1"},
                     headers={"Idempotency-Key": uuid.uuid4().hex}).status_code == 201
    try:
        for name in ("orgs", "members", "gateway"):
            system.stop(name)
        system.start("gateway")
        wait_for(lambda: system.health() is not None, message="the restarted gateway answering")
        answer = alice.post(path(org, "/usage"), json={"agent_id": agent, "amount": "1"},
                           headers={"Idempotency-Key": uuid.uuid4().hex})
        assert answer.status_code == 201, answer.text
        figure(f"gateway restarted with orgs and members stopped: a member's spend answered {answer.status_code}")
    finally:
        for name in ("orgs", "members"):
            system.start(name)
        system.wait_healthy(timeout=60)


def test_two_gateway_processes_share_one_port_and_one_stops_while_the_other_serves(system, figure):
    """GATEWAY_PROCESSES (issue 24): a second gateway process binds the same port (SO_REUSEPORT), the
    kernel spreads new connections over both, and one stopped leaves the other serving every request."""
    alice = system.user("alice")
    logs = {key: system.log_dir / f"{key}.log" for key in ("gateway", "gateway-2")}

    def served(key):
        return logs[key].read_text(errors="replace").count(f"caller={alice.id}")

    def fresh_connection_get():
        return requests.get(system.url + "/v1/me", headers=dict(alice.session.headers), timeout=30)

    ok_first = fresh_connection_get().status_code         # alice signed in (the first process or the other)
    system.start("gateway", 2)
    try:
        # Each try is a new connection, which the kernel gives to either process once both listen.
        wait_for(lambda: fresh_connection_get().status_code == 200 and served("gateway-2") > 0,
                 timeout=30, message="the second gateway process serving")
        answers = [fresh_connection_get().status_code for _ in range(40)]
        assert set(answers) == {200} and served("gateway") > 0 and served("gateway-2") > 0
        system.stop("gateway")                                # gracefully: its twin serves on
        after = [fresh_connection_get().status_code for _ in range(20)]
        assert set(after) == {200}, after
        figure(f"two gateway processes on one port: {served('gateway')} and {served('gateway-2')} of alice's "
               f"requests; with the first stopped, 20 of 20 answered by the second")
    finally:
        system.start("gateway")
        wait_for(lambda: system.health() is not None, message="the first gateway process back")
        system.stop("gateway-2")
    assert ok_first == 200
