"""`make run`: RabbitMQ (unless AMQP_URI points elsewhere), every service and the gateway, in the
foreground, each process restarted with back-off if it exits. Ctrl-C stops all of it, RabbitMQ
included."""
import secrets
import signal
import subprocess
import sys
import time

from common.config import SERVICES, ConfigError, settings
from devtools import prometheus
from devtools.system import Broker, BrokerStartFailed, System, is_port_free
from gateway import tokens


def main():
    try:
        config = settings()
    except ConfigError as exc:
        sys.exit(f"run: {exc}")
    data_dir, gateway_port, amqp_uri = config.data_dir, config.gateway_port, config.amqp_uri
    if not 1 <= gateway_port <= 65535:
        sys.exit(f"run: GATEWAY_PORT must be a port from 1 to 65535, not {gateway_port}")
    if not is_port_free(gateway_port):
        sys.exit(f"run: GATEWAY_PORT {gateway_port} is already in use by another program; choose another")
    broker = None
    if not config.amqp_uri_given:
        try:
            broker = Broker(data_dir / "rabbitmq", config.rabbitmq_port, config.broker.nodes).start()
        except BrokerStartFailed as exc:
            sys.exit(f"run: {exc}")
    # The operations routes (dead letters, ...) answer only to OPERATOR_TOKEN: one for this run unless given.
    operator_token = config.operator_token or secrets.token_urlsafe(24)
    system = System(data_dir, amqp_uri, gateway_port, env={"OPERATOR_TOKEN": operator_token})
    stopping = []

    def stop(*_):
        if stopping:
            return
        stopping.append(True)
        print("\nstopping services ...", flush=True)
        system.stop_all()
        if broker:
            broker.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        system.start_all()
        # More processes of every service share its queues (replicas); GATEWAY_PROCESSES gateway processes
        # share its one port (System.start_all).
        for replica in range(2, config.replicas + 1):
            for name in SERVICES:
                system.start(name, replica)
        if config.replicas > 1:
            system.wait_healthy()
    except Exception as exc:
        print(f"run: {exc}", file=sys.stderr)
        stop()
    # Prometheus's configuration with this run's ports (devtools.prometheus: the shipped one, rendered).
    (data_dir / "prometheus.yml").write_text(prometheus.render(system.metrics_targets(), token=config.metrics.token))
    token = tokens.mint("alice", "alice@example.com", "Alice")
    print(f"""
The platform is up.
  gateway:  http://localhost:{gateway_port}   (health: /health, API document: /openapi.json; \
{config.gateway_processes} process{"es" if config.gateway_processes > 1 else ""}, GATEWAY_PROCESSES)
  broker:   {broker_line(config)}
  operator: export OPERATOR_TOKEN={operator_token}   (the operations routes: docs/operations.md)
  payments: {payments_line(config.payments)}
  data:     {data_dir}   (SQLite files; logs in {data_dir}/logs)
  metrics:  {metrics_line(system, config)}

Mint a token (JWT_SECRET must match the gateway's):
  .venv/bin/python -m gateway.tokens --sub alice --email alice@example.com --name Alice
A token for alice, valid 24 h:
  export TOKEN={token}
  curl -s -H "Authorization: Bearer $TOKEN" http://localhost:{gateway_port}/v1/organizations

Logs follow; Ctrl-C stops everything.
""", flush=True)
    tail = subprocess.Popen(["tail", "-n", "0", "-F", *[str(system.log_dir / f"{n}.log") for n in system.processes]])
    supervisor = Supervisor(system)
    try:
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
    finally:
        tail.terminate()


def broker_line(config):
    nodes = config.broker.hosts
    return (f"{config.amqp_uri}" if nodes == 1 else
            f"{nodes} nodes, {config.broker.queue_type} queues: {config.amqp_uri}")


def metrics_line(system, config):
    if not config.metrics.enabled:
        return "off (METRICS_ENABLED=false)"
    ports = ", ".join(f"{key} {port}" for key, port in system.metrics_ports.items())
    gateway = (f"http://localhost:{config.gateway_port}/metrics" if config.gateway_processes == 1
               else "each gateway process on its port below")
    return (f"{gateway}; processes on ports {ports}\n"
            f"            prometheus --config.file={config.data_dir}/prometheus.yml "
            f"--storage.tsdb.path={config.data_dir}/prometheus   (docs/metrics.md)")


def payments_line(payments):
    if payments.fake:
        return (f"localstripe on {payments.api_base} - a FAKE Stripe: no card is charged "
                "(set STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET for real payments)")
    return "Stripe (STRIPE_API_KEY): real cards are charged"


class Supervisor:
    """Restarts a process of the system that exited, after a back-off that doubles with each quick
    failure (1 s up to 30 s) and starts again from 1 s once the process has run a minute."""

    FIRST_DELAY, MAX_DELAY, STABLE_AFTER = 1.0, 30.0, 60.0

    def __init__(self, system, clock=time.monotonic):
        self.system, self.clock = system, clock
        self.delays = {}            # name -> the next back-off
        self.started = {name: clock() for name in system.processes}
        self.due = {}               # name -> when to start it again

    def check(self):
        now = self.clock()
        for name, process in list(self.system.processes.items()):
            if process.poll() is None or name in self.due:
                continue
            ran = now - self.started.get(name, now)
            delay = self.FIRST_DELAY if ran >= self.STABLE_AFTER else self.delays.get(name, self.FIRST_DELAY)
            self.delays[name] = min(delay * 2, self.MAX_DELAY)
            self.due[name] = now + delay
            print(f"run: {name} exited with {process.returncode}; restarting it in {delay:g} s "
                  f"(log: {self.system.log_dir / name}.log)", file=sys.stderr, flush=True)
        for name, when in list(self.due.items()):
            if now >= when:
                del self.due[name]
                self.system.restart(name)
                self.started[name] = self.clock()
                print(f"run: {name} restarted", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
