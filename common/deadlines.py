"""Deadlines of RPC requests (issue 24, ARCHITECTURE "Scale-out"): a request whose caller has given up is
never run late, and a command never commits after its caller stopped waiting for the answer.

Without them a request waits in its durable queue (or in a frozen service's prefetch) for as long as it
takes: a client told 503 after the gateway's time-out could find its rename applied seconds later, when
the service came back. Now each call carries its caller's deadline, an absolute time (seconds since the
epoch, so it means the same in every process; the machines' clocks are assumed NTP-synchronised to well
within DEADLINE_MARGIN_SECONDS):
- the caller (common.rpc.call) sets it to the call's time-out from now, or to its own request's deadline
  when that comes first (a service calling another on a request's behalf passes the request's on), as the
  worker context data DEADLINE (the `nameko.deadline` header) and as the message's AMQP expiration, so the
  broker drops a request that waited out its caller in the queue;
- the RPC entrypoint (common.framework.rpc.Rpc) drops, unexecuted and unanswered, a request that arrives
  past its deadline (one a frozen service had taken before it froze);
- a write transaction of a command (common.db.Store.write) commits only while DEADLINE_MARGIN_SECONDS are
  left before the deadline (the reply's trip back), else it rolls back and the command answers 503: the
  caller that times out was told the truth, nothing was applied.

Where a request was taken and its answer lost (the broker gone while the caller waited), the caller cannot
know whether it was applied: common.rpc.call says so with its own code, `outcome_unknown` (errors.py)."""
import time

DEADLINE = "deadline"            # the worker context data key (the header nameko.deadline)
# Seconds a command must have left to commit in: its reply still has to travel back to the caller.
DEADLINE_MARGIN_SECONDS = 1.0


def now():
    return time.time()


def of_context(context_data):
    """The deadline a worker's context data carries (seconds since the epoch), or None."""
    value = context_data.get(DEADLINE) if isinstance(context_data, dict) else None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return float(value)
    except ValueError:
        return None             # not a number: a caller of another version, treated as no deadline


def for_call(context_data, timeout):
    """The deadline of a call made now with `timeout`, within the deadline of the request it serves."""
    own = now() + timeout
    inherited = of_context(context_data)
    return own if inherited is None else min(own, inherited)


def header_value(deadline):
    return f"{deadline:.3f}"


def passed(deadline, margin=0.0):
    """Whether less than `margin` seconds are left before `deadline` (None: no deadline, never passed)."""
    return deadline is not None and now() > deadline - margin


def seconds_past(deadline):
    return max(0.0, now() - deadline)
