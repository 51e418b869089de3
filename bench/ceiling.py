"""The framework ceiling: a bare Nameko pipeline of the same shape as a spend (an HTTP entrypoint, one
RPC, one event, one consumer) as three `nameko run` processes, one per service like the real system,
and measured with the same client. Nothing in it does any work of its own, so no path through Nameko of
that shape can be faster on this machine and broker. Prints figures; asserts nothing. Alone it starts
its own RabbitMQ; bench/spends.py runs it on the system's broker in the same run (run_ceiling) so a
spend's figures become ratios of it.

    .venv/bin/python bench/ceiling.py [--requests 1000] [--concurrency 20]
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import kombu
from harness import arguments, report, timed
from nameko.events import EventDispatcher, event_handler
from nameko.rpc import RpcProxy, rpc
from nameko.web.handlers import http
from requests import RequestException, Session
from werkzeug.wrappers import Response

from devtools.system import VENV_BIN, Broker, free_broker_port, free_port

HERE = Path(__file__).resolve().parent
SERVICES = ("CeilingConsumer", "CeilingBackend", "CeilingGateway")   # started in this order
CONSUMER_QUEUE = "evt-ceiling_backend-spent--ceiling_consumer.on_spent"   # Nameko's name for it
BODY = {"agent_id": "agent", "amount": "0.0125"}


# ---- the pipeline ---------------------------------------------------------------------------------
class CeilingGateway:
    """POST /spend: read a small JSON body, make one RPC, answer JSON (like the gateway's spend route)."""
    name = "ceiling_gateway"
    backend = RpcProxy("ceiling_backend")

    @http("POST", "/spend")
    def spend(self, request):
        body = json.loads(request.get_data(as_text=True))
        answer = self.backend.spend(body["agent_id"], body["amount"])
        return Response(json.dumps(answer), status=201, mimetype="application/json")


class CeilingBackend:
    """One RPC that dispatches one event and returns (like credits.spend and its change event)."""
    name = "ceiling_backend"
    dispatch = EventDispatcher()

    @rpc
    def spend(self, agent_id, amount):
        spend = {"id": uuid.uuid4().hex, "agent_id": agent_id, "amount": amount}
        self.dispatch("spent", spend)
        return spend


class CeilingConsumer:
    """Consumes the event and does nothing with it (like audit, minus the insert)."""
    name = "ceiling_consumer"

    @event_handler("ceiling_backend", "spent")
    def on_spent(self, payload):
        pass


# ---- running and measuring it ---------------------------------------------------------------------
def start_pipeline(amqp_uri, workdir, port):
    """The three services as `nameko run` processes (cwd bench/, so `ceiling` imports); their logs in workdir."""
    config = Path(workdir) / "ceiling.yaml"
    # max_workers as the system's default (common.config, and Nameko's); loggers at WARNING like the system's.
    config.write_text(f"AMQP_URI: '{amqp_uri}'\nWEB_SERVER_ADDRESS: '127.0.0.1:{port}'\nmax_workers: 10\n"
                      "LOGGING:\n  version: 1\n  root: {level: WARNING}\n")
    processes = {}
    for service in SERVICES:
        with open(Path(workdir) / f"{service}.log", "ab") as log:
            processes[service] = subprocess.Popen(
                [str(VENV_BIN / "nameko"), "run", "--config", str(config), f"ceiling:{service}"],
                cwd=HERE, env=dict(os.environ, PYTHONWARNINGS="ignore"), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
    return processes


def stop_pipeline(processes):
    running = [process for process in processes.values() if process.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def consumers_of(amqp_uri, queue):
    """How many consumers `queue` has (0 when it does not exist yet)."""
    try:
        with kombu.Connection(amqp_uri) as connection:
            return connection.channel().queue_declare(queue=queue, passive=True).consumer_count
    except Exception:   # a missing queue closes the channel with a 404: not yet
        return 0


def wait_ready(url, amqp_uri, processes, workdir, timeout=60):
    """Until POST /spend answers 201 and the consumer is consuming its queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited with {process.returncode}; see {workdir}/{service}.log")
        try:
            answered = Session().post(url, json=BODY, timeout=5).status_code == 201
        except RequestException:
            answered = False
        if answered and consumers_of(amqp_uri, CONSUMER_QUEUE) > 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the ceiling pipeline did not answer within {timeout} s; logs in {workdir}")


def run_ceiling(amqp_uri, requests=1000, concurrency=20):
    """Start the pipeline on the broker at `amqp_uri`, measure POST /spend sequentially (requests // 2) and
    `concurrency` at a time (`requests` in all), stop it. Returns {"sequential": (rate, latencies),
    "concurrent": (rate, latencies)}, latencies in ms, as harness.timed gives them."""
    workdir = tempfile.mkdtemp(prefix="orgplatform-ceiling-")
    port = free_port()
    url = f"http://127.0.0.1:{port}/spend"
    processes = start_pipeline(amqp_uri, workdir, port)
    try:
        wait_ready(url, amqp_uri, processes, workdir)
        session = Session()              # one session shared by the green threads, as bench/spends.py does
        spend = lambda: session.post(url, json=BODY).raise_for_status()   # noqa: E731
        timed(spend, 50, 1)              # warm up connections and code paths
        return {"sequential": timed(spend, requests // 2, 1), "concurrent": timed(spend, requests, concurrency)}
    finally:
        stop_pipeline(processes)


def report_ceiling(figures, concurrency):
    report("ceiling HTTP -> RPC -> event, sequential", *figures["sequential"])
    report(f"ceiling HTTP -> RPC -> event, {concurrency} concurrent", *figures["concurrent"])


def main():
    args = arguments("requests", 1000, 20, description=__doc__.split("\n\n")[0])
    broker = Broker(tempfile.mkdtemp(prefix="orgplatform-ceiling-rabbitmq-"), free_broker_port()).start()
    try:
        print(f"{args.requests} requests ({args.requests // 2} sequential), {args.concurrency} concurrent, "
              "one process per service")
        report_ceiling(run_ceiling(broker.amqp_uri, args.requests, args.concurrency), args.concurrency)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
