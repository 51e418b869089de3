"""`make run`: RabbitMQ (unless AMQP_URI points elsewhere), every service and the gateway, in the
foreground. Ctrl-C stops all of it, RabbitMQ included."""
import os
import signal
import subprocess
import sys
import time

from devtools.system import ROOT, Broker, System
from gateway import tokens


def main():
    data_dir = os.path.abspath(os.environ.get("DATA_DIR") or ROOT / "data")
    gateway_port = int(os.environ.get("GATEWAY_PORT") or 8000)
    broker = None
    amqp_uri = os.environ.get("AMQP_URI")
    if not amqp_uri:
        broker = Broker(os.path.join(data_dir, "rabbitmq"), int(os.environ.get("RABBITMQ_PORT") or 5672),
                        "orgplatform-run").start()
        amqp_uri = broker.amqp_uri
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
