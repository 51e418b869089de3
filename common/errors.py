"""Application errors: one class per HTTP status, each carrying a stable `code`, a message and the field.

They cross RPC boundaries intact: every class is registered with Nameko's exception registry, so a
`NotFound` raised in the members service is raised again as `NotFound` in the caller (Nameko would
otherwise turn it into a generic RemoteError), and the gateway renders it as
`{"error": {"code", "message", "field"}}` with the class's status.
"""
import json

from nameko.exceptions import deserialize_to_instance


class AppError(Exception):
    status = 500
    default_code = "internal_error"

    def __init__(self, message, code=None, field=None, details=None):
        # All four go into `args`, which is what Nameko serializes and rebuilds on the other side.
        # Nameko stringifies every non-string on the way (None -> "None", 200 -> "200"), hence ""
        # for "no field" and the details carried as a JSON string.
        # (Rebuilt on the caller's side from those args, `details` arrives already encoded.)
        encoded = details if isinstance(details, str) else json.dumps(details or {})
        super().__init__(message, code or self.default_code, field or "", encoded)

    message = property(lambda self: self.args[0])
    code = property(lambda self: self.args[1])
    field = property(lambda self: self.args[2] or None)
    details = property(lambda self: json.loads(self.args[3]) or None)

    def to_dict(self):
        body = {"code": self.code, "message": self.message, "field": self.field}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def _registered(cls):
    return deserialize_to_instance(cls)


@_registered
class BadRequest(AppError):            # malformed request: not JSON, wrong shape
    status = 400
    default_code = "bad_request"


@_registered
class Unauthenticated(AppError):
    status = 401
    default_code = "unauthenticated"


@_registered
class PaymentRequired(AppError):       # not enough credit or budget
    status = 402
    default_code = "payment_required"


@_registered
class Forbidden(AppError):             # a member, but their roles do not allow the action
    status = 403
    default_code = "forbidden"


@_registered
class NotFound(AppError):              # also what a non-member gets for an organization's ids
    status = 404
    default_code = "not_found"


@_registered
class Conflict(AppError):
    status = 409
    default_code = "conflict"


@_registered
class ValidationFailed(AppError):      # well-formed request whose values break a rule
    status = 422
    default_code = "validation_error"


@_registered
class TooManyRequests(AppError):       # a rate limit (gateway/rate_limits.py); details.retry_after in seconds
    status = 429
    default_code = "rate_limited"


@_registered
class ServiceUnavailable(AppError):    # a service did not answer in time
    status = 503
    default_code = "service_unavailable"


_registered(AppError)

# Every RPC entrypoint declares these as expected, so Nameko does not log them as crashes.
EXPECTED_ERRORS = (AppError,)


# ---- not-found answers that several services give (one code, one message each) ----------------------
def organization_not_found():
    """Also what a non-member gets for any of an organization's ids: ids cannot be probed."""
    return NotFound("Organization not found.", code="organization_not_found", field="organization_id")


def member_not_found(field="user_id"):
    return NotFound("There is no such member in this organization.", code="member_not_found", field=field)


def agent_not_found():
    return NotFound("Agent not found.", code="agent_not_found", field="agent_id")
