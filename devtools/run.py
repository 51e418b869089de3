"""`make run`: RabbitMQ (unless AMQP_URI points elsewhere), every service and the gateway, in the
foreground. Ctrl-C stops all of it, RabbitMQ included."""
import signal
import subprocess
import sys
import time

from common.config import ConfigError, settings
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
            broker = Broker(data_dir / "rabbitmq", config.rabbitmq_port).start()
        except BrokerStartFailed as exc:
            sys.exit(f"run: {exc}")
    system = System(data_dir, amqp_uri, gateway_port)
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
    except Exception as exc:
        print(f"run: {exc}", file=sys.stderr)
        stop()
    token = tokens.mint("alice", "alice@example.com", "Alice")
    print(f"""
The platform is up.
  gateway:  http://localhost:{gateway_port}   (health: /health, API document: /openapi.json)
  broker:   {amqp_uri}
  data:     {data_dir}   (SQLite files; logs in {data_dir}/logs)

Mint a token (JWT_SECRET must match the gateway's):
  .venv/bin/python -m gateway.tokens --sub alice --email alice@example.com --name Alice
A token for alice, valid 24 h:
  export TOKEN={token}
  curl -s -H "Authorization: Bearer $TOKEN" http://localhost:{gateway_port}/v1/organizations

Logs follow; Ctrl-C stops everything.
""", flush=True)
    tail = subprocess.Popen(["tail", "-n", "0", "-F", *[str(system.log_dir / f"{n}.log") for n in system.processes]])
    try:
        while True:
            for name, process in list(system.processes.items()):
                if process.poll() is not None:
                    print(f"run: {name} exited with {process.returncode}; stopping", file=sys.stderr)
                    tail.terminate()
                    stop()
            time.sleep(1)
    finally:
        tail.terminate()


if __name__ == "__main__":
    main()
