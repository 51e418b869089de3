"""RPC helpers shared by services and the gateway."""
from functools import partial

import eventlet
from nameko.exceptions import UnknownService
from nameko.rpc import rpc as nameko_rpc

from common.errors import EXPECTED_ERRORS, ServiceUnavailable

# Our errors are answers, not crashes: declared expected, Nameko neither logs them as errors nor
# wraps them; the caller gets the same exception class back (see common.errors).
rpc = partial(nameko_rpc, expected_exceptions=EXPECTED_ERRORS)

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
