"""Starts and stops the whole system as local processes: a private RabbitMQ node, every service and
the gateway, and, unless STRIPE_API_KEY names a real Stripe account, localstripe, the fake payment provider
(devtools/localstripe.py). `make run` (devtools/run.py) and the test fixtures (tests/conftest.py) both use
it, so the tests exercise exactly what a developer runs."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common.config import SERVICES, database_url, settings

ROOT = Path(__file__).resolve().parent.parent
MODULES = {name: f"services.{name}.service" for name in SERVICES}
MODULES["gateway"] = "gateway.service"
VENV_BIN = Path(sys.executable).parent
PAYMENT_PROVIDER = "localstripe"        # the process of the fake payment provider, beside the services
WEBHOOK_PATH = "/v1/billing/stripe/webhook"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_broker_port(nodes=1):
    """A free AMQP port, the first of `nodes` consecutive ones, whose Erlang distribution ports (+20000, see
    rabbitmq.sh) are free too."""
    import random
    for _ in range(200):
        port = random.randrange(20000, 45000 - nodes)
        if all(is_port_free(p) for n in range(nodes) for p in (port + n, port + n + 20000)):
            return port
    raise RuntimeError("no free ports for RabbitMQ")


def is_port_free(port):
    """Whether a server could listen on `port` now, asked as the servers ask: with SO_REUSEADDR, as eventlet
    (the gateway) and RabbitMQ set it, on every address. Without it, the connections of a run just stopped
    (TIME_WAIT, up to a minute) made the port look taken although the server would bind at once."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def _wait_or_kill(process, timeout=20):
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class BrokerStartFailed(RuntimeError):
    """scripts/rabbitmq.sh could not start the node (it printed why: a port taken or out of range, ...)."""


class BrokerNode:
    """One private RabbitMQ node (scripts/rabbitmq.sh) with its files under `directory`; its name derives
    from its port (orgplatform-PORT@localhost), so nodes on different ports never collide."""

    def __init__(self, directory, port, cookie=None):
        self.directory, self.port, self.cookie = Path(directory), port, cookie
        self.name = f"orgplatform-{port}@localhost"
        self.amqp_uri = f"amqp://guest:guest@127.0.0.1:{port}/"

    def _script(self, *args, check=False):
        env = dict(os.environ, **({"RABBITMQ_CLUSTER_COOKIE": self.cookie} if self.cookie else {}))
        return subprocess.run(["bash", str(ROOT / "scripts/rabbitmq.sh"), args[0], str(self.directory), *args[1:]],
                              env=env, check=check)

    def start(self):
        if self._script("start", str(self.port)).returncode != 0:
            raise BrokerStartFailed(f"RabbitMQ did not start on port {self.port} (see the message above)")
        return self

    def join(self, seed):
        if self._script("join", seed.name).returncode != 0:
            raise BrokerStartFailed(f"RabbitMQ node {self.name} could not join {seed.name}'s cluster")

    def stop(self):
        self._script("stop")

    def kill(self):
        """SIGKILL, as a machine that died: no goodbye to its peers or clients."""
        self._script("kill")

    def ctl(self, *args):
        """rabbitmqctl's standard output for this node (e.g. "list_queues", "name", "leader")."""
        env = dict(os.environ, HOME=str(self.directory / "home"))
        env.pop("LD_PRELOAD", None)
        return subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "-n", self.name, *args], env=env,
                              check=True, capture_output=True, text=True).stdout


class Broker:
    """RabbitMQ for a system: one private node (`nodes=1`, files under `directory`) or a cluster of `nodes`
    on consecutive ports (files under `directory`/node-1, node-2, ...), joined at first start, sharing one
    Erlang cookie; `amqp_uri` names every node, `;`-separated (kombu's failover: a connection whose node dies
    moves to the next). Started again, a cluster's nodes start together: each waits for the others it was
    clustered with."""

    def __init__(self, directory, port, nodes=1):
        self.directory, self.port = Path(directory), port
        if nodes == 1:
            self.nodes = [BrokerNode(self.directory, port)]
        else:
            cookie = self._cookie(self.directory)
            self.nodes = [BrokerNode(self.directory / f"node-{n + 1}", port + n, cookie) for n in range(nodes)]
        self.amqp_uri = ";".join(node.amqp_uri for node in self.nodes)

    @staticmethod
    def _cookie(directory):
        import secrets
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "cluster-cookie"
        if not path.exists():
            path.write_text(secrets.token_hex(20))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self):
        if len(self.nodes) == 1:
            self.nodes[0].start()
            return self
        # Together: a node that was clustered waits (not listening) for its peers before it serves.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            failures = [error for error in pool.map(_started, self.nodes) if error]
        if failures:
            raise failures[0]
        for node in self.nodes[1:]:
            node.join(self.nodes[0])
        return self

    def stop(self):
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(len(self.nodes)) as pool:      # a node's stop takes seconds: together
            list(pool.map(BrokerNode.stop, self.nodes))


def _started(node):
    try:
        node.start()
    except BrokerStartFailed as error:
        return error
    return None


class System:
    """Every service and the gateway as processes (devtools.serve) sharing one environment."""

    def __init__(self, data_dir, amqp_uri, gateway_port, env=None):
        self.data_dir = Path(data_dir)
        self.log_dir = self.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.gateway_port = gateway_port
        self.url = f"http://127.0.0.1:{gateway_port}"
        # GATEWAY_PORT too: the links the services write (an invitation email's) name this gateway.
        self.env = dict(os.environ, DATA_DIR=str(self.data_dir), AMQP_URI=amqp_uri, GATEWAY_PORT=str(gateway_port),
                        WEB_SERVER_ADDRESS=f"0.0.0.0:{gateway_port}", PYTHONWARNINGS="ignore",
                        **(env or {}))
        self.processes = {}
        # Each service process serves its metrics on a port of its own (METRICS_PORT, common.metrics), kept
        # across its restarts; the gateway serves them at /metrics on its own port.
        self.metrics_ports = {}

    def database_url(self, service_name):
        """The database the system's `service_name` processes use."""
        return database_url(service_name, self.env)

    def migrate(self):
        subprocess.run([str(VENV_BIN / "python"), "-m", "common.migrate", *SERVICES], env=self.env, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)

    @property
    def payments(self):
        return settings(self.env).payments

    @property
    def gateway_processes(self):
        return settings(self.env).gateway_processes

    def start(self, name, replica=None):
        """Start a service (or, with `replica`, one more process of it: replicas share its queues)."""
        key = name if replica is None else f"{name}-{replica}"
        if name == PAYMENT_PROVIDER:
            command = [str(VENV_BIN / "python"), "-m", "devtools.localstripe", str(self.payments.localstripe_port),
                       str(self.data_dir / "localstripe.pickle"), self.url + WEBHOOK_PATH,
                       self.payments.webhook_secret]
        else:
            command = [str(VENV_BIN / "python"), "-m", "devtools.serve", MODULES[name]]
        env = self.env
        # Several gateway processes share one port (SO_REUSEPORT: eventlet sets it), so a scrape of its
        # /metrics reaches any one of them: then each serves its metrics on a port of its own too.
        if name in SERVICES or (name == "gateway" and self.gateway_processes > 1):
            env = dict(env, METRICS_PORT=str(self.metrics_ports.setdefault(key, free_port())))
        log = open(self.log_dir / f"{key}.log", "ab")
        self.processes[key] = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if name == PAYMENT_PROVIDER:
            self._wait_for_port(self.payments.localstripe_port, key)

    def restart(self, key):
        """Start again the process named `key` ("orgs", or a replica: "orgs-2")."""
        name, _, replica = key.partition("-")
        self.start(name, replica or None)

    def stop(self, name, kill=False):
        """Stop one process (a service, or a replica: "orgs-2"): gracefully (SIGTERM) or like a crash (SIGKILL)."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        _wait_or_kill(process)

    def start_all(self, timeout=90):
        self.migrate()
        if self.payments.fake:
            self.start(PAYMENT_PROVIDER)
        for name in (*SERVICES, "gateway"):
            self.start(name)
        for replica in range(2, self.gateway_processes + 1):       # GATEWAY_PROCESSES on the one port
            self.start("gateway", replica)
        self.wait_healthy(timeout)
        return self

    def stop_all(self):
        # Signal everyone first, then wait: graceful stops take a few seconds each. Once only: a second
        # SIGTERM makes Nameko's runner (devtools.serve) stop its container again, and its timers fail with a
        # traceback.
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            _wait_or_kill(process)
        self.processes.clear()

    def _wait_for_port(self, port, key, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[key].poll() is not None:
                raise RuntimeError(f"{key} exited with {self.processes[key].returncode}; see {self.log_dir / key}.log")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{key} does not listen on port {port} after {timeout} s; see {self.log_dir / key}.log")

    def metrics_targets(self):
        """Where Prometheus scrapes each process started and not stopped: {job (the service, or "gateway"):
        ["127.0.0.1:port", ...]} (a service's replicas are targets of its job), one gateway process at
        /metrics on its own port, several each on its metrics port."""
        targets = {}
        for key, port in self.metrics_ports.items():
            if key in self.processes:
                targets.setdefault(key.partition("-")[0], []).append(f"127.0.0.1:{port}")
        targets.setdefault("gateway", [f"127.0.0.1:{self.gateway_port}"])
        return targets

    def health(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            return json.load(exc)
        except OSError:
            return None

    def wait_healthy(self, timeout=90):
        deadline = time.monotonic() + timeout
        report = None
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")
            report = self.health()
            if report and report.get("status") == "ok":
                return report
            time.sleep(0.3)
        raise RuntimeError(f"the system is not healthy after {timeout} s: {report}; logs in {self.log_dir}")
