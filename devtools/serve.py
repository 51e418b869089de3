"""Runs the service classes of one module in this process, as `nameko run MODULE` would, with Nameko's
configuration made from the settings (common.config.nameko_config) rather than read from a file:

    python -m devtools.serve services.orgs.service
    python -m devtools.serve gateway.service

make run, the tests (devtools.system) and the containers (docker-compose.yml) start every process so.
Nameko's own runner runs them: SIGTERM stops the services gracefully, Ctrl-C (SIGINT) too, a second
Ctrl-C kills them. A setting that cannot be used ends the process at once with a message naming it.
SIGUSR2 writes the stack of every green thread to the log (`kill -USR2 PID`): what a process that seems
stuck is waiting for, without stopping it.
"""
import eventlet

eventlet.monkey_patch()  # before anything else is imported, as `nameko run` does

import gc
import logging.config
import signal
import sys
import traceback

import greenlet
from nameko.cli.run import import_service, run
from nameko.exceptions import CommandError

from common import metrics
from common.config import ConfigError, nameko_config, settings

USAGE = "usage: python -m devtools.serve MODULE   (e.g. services.orgs.service, gateway.service)"


def log_green_threads(signum=None, frame=None):
    """Every green thread's stack, one log record (the handler of SIGUSR2)."""
    stacks = [f"green thread {index}:\n" + "".join(traceback.format_stack(thread.gr_frame))
              for index, thread in enumerate(green_threads())]
    logging.getLogger("devtools.serve").warning("%d green threads (SIGUSR2):\n%s", len(stacks), "\n".join(stacks))


def green_threads():
    """The suspended green threads of this process. Those made at start-up are frozen out of the garbage
    collector's sight (common.heap): unfrozen for the look, then frozen again with the rest."""
    frozen = gc.get_freeze_count() > 0
    if frozen:
        gc.unfreeze()
    try:
        # type(), not isinstance(): a dead weak proxy among the objects raises on any attribute asked.
        return [obj for obj in gc.get_objects()
                if issubclass(type(obj), greenlet.greenlet) and obj.gr_frame is not None]
    finally:
        if frozen:
            gc.freeze()


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit(USAGE)
    try:
        config = nameko_config(settings(), gateway=args[0].split(".")[0] == "gateway")
    except ConfigError as exc:
        sys.exit(f"serve: {exc}")
    logging.config.dictConfig(config["LOGGING"])
    signal.signal(signal.SIGUSR2, log_green_threads)
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
