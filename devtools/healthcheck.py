"""Container health check (docker-compose.yml): exit 0 when the named piece answers, 1 otherwise.

    python -m devtools.healthcheck orgs        # the service answers `ping` over RPC (read models filled)
    python -m devtools.healthcheck gateway     # the gateway answers HTTP on its port
"""
import sys
import urllib.request

from common.config import SERVICES, settings

TIMEOUT_SECONDS = 5


def healthy(name, config):
    if name == "gateway":
        with urllib.request.urlopen(f"http://127.0.0.1:{config.gateway_port}/openapi.json",
                                    timeout=TIMEOUT_SECONDS) as response:
            return response.status == 200
    from nameko.standalone.rpc import ClusterRpcProxy
    with ClusterRpcProxy({"AMQP_URI": config.amqp_uri}, timeout=TIMEOUT_SECONDS) as rpc:
        return getattr(rpc, name).ping() == "pong"


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in (*SERVICES, "gateway"):
        sys.exit(f"usage: python -m devtools.healthcheck {{{'|'.join((*SERVICES, 'gateway'))}}}")
    try:
        ok = healthy(args[0], settings())
    except Exception as exc:      # not answering, the broker unreachable, a 503 while filling: unhealthy
        print(f"{args[0]}: unhealthy ({exc})", file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
