"""RPC helpers shared by services and the gateway."""
import eventlet
from nameko.exceptions import UnknownService
from nameko.rpc import rpc as nameko_rpc

from common.errors import EXPECTED_ERRORS, ServiceUnavailable


def rpc(fn):
    """@rpc with our errors declared expected: they are answers, not crashes, so Nameko does not log
    them as errors; the caller gets the same exception class back (see common.errors).

    (Not `partial(nameko_rpc, expected_exceptions=...)`: used bare, Nameko's decorator takes the
    "no arguments" path and silently drops keyword arguments.)"""
    return nameko_rpc(expected_exceptions=EXPECTED_ERRORS)(fn)

RPC_TIMEOUT_SECONDS = 10


def call(method, *args, timeout=RPC_TIMEOUT_SECONDS, **kwargs):
    """Call an RPC method proxy with a time limit.

    Nameko's in-service RpcProxy waits forever for a reply; a lost reply would hang the caller.
    """
    try:
        reply = method.call_async(*args, **kwargs)
        with eventlet.Timeout(timeout):
            return reply.result()
    except UnknownService:
        raise ServiceUnavailable(f"The {method.service_name} service is not running.")
    except eventlet.Timeout:
        raise ServiceUnavailable(
            f"The {method.service_name} service did not answer within {timeout} s.", code="service_unavailable"
        )
