"""Runs the service classes of one module in this process, as `nameko run MODULE` would, with Nameko's
configuration made from the settings (common.config.nameko_config) rather than read from a file:

    python -m devtools.serve services.orgs.service
    python -m devtools.serve gateway.service

make run, the tests (devtools.system) and the containers (docker-compose.yml) start every process so.
Nameko's own runner runs them: SIGTERM stops the services gracefully, Ctrl-C (SIGINT) too, a second
Ctrl-C kills them. A setting that cannot be used ends the process at once with a message naming it.
"""
import eventlet

eventlet.monkey_patch()  # before anything else is imported, as `nameko run` does

import logging.config
import sys

from nameko.cli.run import import_service, run
from nameko.exceptions import CommandError

from common import metrics
from common.config import ConfigError, nameko_config, settings

USAGE = "usage: python -m devtools.serve MODULE   (e.g. services.orgs.service, gateway.service)"


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit(USAGE)
    try:
        config = nameko_config(settings(), gateway=args[0].split(".")[0] == "gateway")
    except ConfigError as exc:
        sys.exit(f"serve: {exc}")
    logging.config.dictConfig(config["LOGGING"])
    try:
        metrics.start_process(settings())     # on METRICS_PORT when set (common.metrics)
    except (OSError, OverflowError) as exc:    # taken, not allowed, or beyond 65535
        sys.exit(f"serve: METRICS_PORT {settings().metrics.port}: {exc}")
    try:
        services = import_service(args[0])
    except CommandError as exc:
        sys.exit(f"serve: {exc}")
    run(services, config)


if __name__ == "__main__":
    main()
