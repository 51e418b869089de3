"""A service with nothing but a timer (no broker needed), run by test_serve.py through devtools.serve."""
import logging

from nameko.timer import timer

log = logging.getLogger("serve_probe")


class ServeProbe:
    name = "serve_probe"

    @timer(interval=0.1)
    def tick(self):
        log.info("tick")
        log.debug("a debug line, below LOG_LEVEL")
