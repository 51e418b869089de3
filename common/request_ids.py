"""A request id for every HTTP request: given by the gateway (the client's `X-Request-Id` when it is a
short token, else a new one), answered in the `X-Request-Id` header, written on the gateway's access
line, carried in Nameko's context data into every RPC call the request makes, and written on every log
line of the workers that serve it (`[request id]` after the logger's name), so that one request can be
followed through every service's log."""
import logging
import re
import threading
import uuid

HEADER = "X-Request-Id"
CONTEXT_KEY = "request_id"          # Nameko context data, copied into the headers of every RPC call
ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")     # a client's own id: nothing that could forge a log line

# The request the current worker serves. Thread-local is green-thread-local under eventlet, and Nameko
# runs a worker, its setup and its teardown in one green thread.
_current = threading.local()


def new_request_id(offered=None):
    """The client's id when it is a short token of safe characters, else a new one."""
    return offered if isinstance(offered, str) and ACCEPTED.match(offered) else uuid.uuid4().hex


def serve(request_id):
    """The current worker serves `request_id` (None: none, e.g. a timer or an event consumer)."""
    _current.request_id = request_id if isinstance(request_id, str) and ACCEPTED.match(request_id) else None


def current():
    return getattr(_current, "request_id", None)


class RequestIdFilter(logging.Filter):
    """Gives every log record `request_id`: the request the logging worker serves, or "-". Installed on
    the console handler by common.config.logging_config."""

    def filter(self, record):
        record.request_id = current() or "-"
        return True
