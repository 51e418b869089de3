"""A request is the gateway and ONE service (ARCHITECTURE "Read models"): every request the e2e tests
sent before this one is in the gateway's log with its route and the RPC calls its handler made
(gateway.http: `route=… rpc=…`); no route may make more than one call, except the ones docs/decisions.md
lists (decision 80, "Routes that still make two calls") with the calls they make. Named to run after the other e2e
tests of its backend, so that it reads what they did."""
import re
from collections import defaultdict

import gateway.service  # noqa: F401  (importing the gateway registers every route in ROUTES)
from gateway.http import ROUTES

# Made once per user per gateway process (the first sight of a person, the first use of an API key),
# before the route's own call: the answer is cached, so later requests make the route's call alone.
SETTLING_CALLS = {"orgs.sign_in", "members.authenticate_api_key"}

# docs/decisions.md 80, "Routes that still make two calls": each with the calls it makes, until the read
# models that remove the second call exist. A route listed here that makes one call fails the test too, so
# the list shrinks when a route is fixed.
TWO_CALL_ROUTES = {}

ACCESS_LINE = re.compile(r" gateway\.access \[[^]]*\]: (?P<method>[A-Z]+) \S+ (?P<status>\d{3}) .* "
                         r"route=(?P<route>\S+) rpc=(?P<rpc>\S+)$")


def calls_per_route(log_text):
    """({(method, rule): {calls the route made}}, the same for its 2xx answers only), settling calls left out."""
    seen, succeeded = defaultdict(set), defaultdict(set)
    for line in log_text.splitlines():
        match = ACCESS_LINE.search(line)
        if match is None or match["route"] == "-":
            continue
        calls = tuple(c for c in match["rpc"].split(",") if c not in SETTLING_CALLS and c != "-")
        seen[(match["method"], match["route"])].add(calls)
        if match["status"].startswith("2"):
            succeeded[(match["method"], match["route"])].add(calls)
    return seen, succeeded


def test_every_route_makes_at_most_one_rpc_call_except_those_listed(system, figure):
    seen, succeeded = calls_per_route((system.log_dir / "gateway.log").read_text(errors="replace"))
    routes = {(r.method, r.path) for r in ROUTES}
    assert seen, "no access line with route= and rpc= was found: the trace itself is broken"
    offenders = {}
    for route, call_sets in seen.items():
        most = max(call_sets, key=len)
        allowed = TWO_CALL_ROUTES.get(route)
        if len(most) > 1 and (allowed is None or set(most) - set(allowed)):
            offenders[route] = sorted(call_sets)
    assert offenders == {}, f"routes making more than one RPC call, not in docs/decisions.md 80: {offenders}"
    for route, expected in TWO_CALL_ROUTES.items():
        if route in succeeded:
            assert max(len(calls) for calls in succeeded[route]) == len(expected), \
                f"{route} makes fewer calls now: take it off TWO_CALL_ROUTES and docs/decisions.md 80"
    unseen = sorted(routes - set(seen))
    figure(f"{len(routes) - len(unseen)} of {len(routes)} routes seen in the e2e traffic ({system.backend}); "
           f"not exercised: {unseen}")
    assert len(unseen) <= len(routes) // 2, f"too few routes exercised to say anything (run it after all e2e): {unseen}"
