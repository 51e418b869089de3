"""Every process serves its metrics (SPEC §14, docs/metrics.md): after a known number of spends, the gateway's
/metrics and the services' metrics ports show exactly those spends: the route's requests by status, the RPC
calls on both sides, the events published by credits and stored by audit with their lag. One backend: what is
counted does not depend on the database."""
import time
import uuid

import pytest

from common.config import SERVICES
from tests.e2e.helpers import create_agent, create_organization, metric, metrics_page, ok, path, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)

USAGE = "/v1/organizations/<org_id>/usage"
SPENDS = 12


def service_url(system, name):
    return f"http://127.0.0.1:{system.metrics_ports[name]}/metrics"


def spend(api, org_id, agent_id, amount="0.5"):
    return api.post(path(org_id, "/usage"), json={"agent_id": agent_id, "amount": amount},
                    headers={"Idempotency-Key": uuid.uuid4().hex})


def settled(system):
    """Once credits' outbox is empty and audit has stored what it was sent (its count stays put), the counts
    of earlier tests' events have stopped moving: what moves next is this test's."""
    wait_for(lambda: metric(metrics_page(service_url(system, "credits")), "orgplatform_outbox_backlog_events") == 0,
             message="credits' outbox empty")
    def stored():
        return metric(metrics_page(service_url(system, "audit")), "orgplatform_events_consumed_total",
                      type="credits.spent", outcome="new")

    last = stored()
    while True:
        time.sleep(0.3)
        now = stored()
        if now == last:
            return
        last = now


def page_once(system, before, process, sample, grown_by, **labels):
    """The service's metrics page once `sample` has grown by `grown_by` since `before` (events are relayed
    and stored after the spends' answers)."""
    def page():
        scraped = metrics_page(service_url(system, process))
        grown = metric(scraped, sample, **labels) - metric(before[process], sample, **labels)
        return scraped if grown >= grown_by else None
    return wait_for(page, message=f"{sample} of {process} grown by {grown_by}")


def test_the_metrics_count_the_spends_made(system, figure):
    owner = system.user("owner")
    org = create_organization(owner, "Metered")["id"]
    ok(owner.post(path(org, "/credits/grants"), json={"amount": "100", "type": "paid"}), 201)
    agent = create_agent(owner, org)["id"]
    settled(system)
    gateway_url = system.url + "/metrics"
    before = {"gateway": metrics_page(gateway_url), "credits": metrics_page(service_url(system, "credits")),
              "audit": metrics_page(service_url(system, "audit"))}

    for _ in range(SPENDS):
        ok(spend(owner, org, agent), 201)
    refused = spend(owner, org, agent, amount="1000")
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"

    def grew(process, name, **labels):
        return metric(after[process], name, **labels) - metric(before[process], name, **labels)

    # The gateway: the route by status, its refusal by reason, its latency histogram, its calls to credits.
    after = {"gateway": metrics_page(gateway_url)}
    assert grew("gateway", "orgplatform_http_requests_total", method="POST", route=USAGE, status="201") == SPENDS
    assert grew("gateway", "orgplatform_http_requests_total", method="POST", route=USAGE, status="402") == 1
    assert grew("gateway", "orgplatform_http_refusals_total", method="POST", route=USAGE,
                reason="insufficient_credits") == 1
    assert grew("gateway", "orgplatform_http_request_duration_seconds_count", method="POST", route=USAGE) == SPENDS + 1
    assert grew("gateway", "orgplatform_rpc_client_calls_total", service="credits", method="spend",
                outcome="ok") == SPENDS
    assert grew("gateway", "orgplatform_rpc_client_calls_total", service="credits", method="spend",
                outcome="refused") == 1
    # Credits: the same requests on the server's side, and the events its outbox relay published.
    after["credits"] = page_once(system, before, "credits", "orgplatform_events_published_total", SPENDS,
                                 type="credits.spent")
    assert grew("credits", "orgplatform_rpc_server_requests_total", service="credits", method="spend",
                outcome="ok") == SPENDS
    assert grew("credits", "orgplatform_rpc_server_requests_total", service="credits", method="spend",
                outcome="refused") == 1
    assert grew("credits", "orgplatform_rpc_server_request_duration_seconds_count", service="credits",
                method="spend") == SPENDS + 1
    assert grew("credits", "orgplatform_events_published_total", type="credits.spent") == SPENDS
    # Audit: each spend's event stored once, with its lag.
    after["audit"] = page_once(system, before, "audit", "orgplatform_audit_lag_seconds_count", SPENDS)
    assert grew("audit", "orgplatform_events_consumed_total", type="credits.spent", outcome="new") == SPENDS
    assert grew("audit", "orgplatform_audit_lag_seconds_count") == SPENDS
    mean_lag = grew("audit", "orgplatform_audit_lag_seconds_sum") / SPENDS
    assert 0 < mean_lag < 5
    figure(f"audit lag of {SPENDS} spends from the audit service's metrics: mean {mean_lag * 1000:.0f} ms")


def test_every_process_serves_its_metrics_and_its_broker_connection(system):
    pages = {"gateway": metrics_page(system.url + "/metrics"),
             **{name: metrics_page(service_url(system, name)) for name in SERVICES}}
    for name, page in pages.items():
        assert metric(page, "orgplatform_broker_up") == 1, name
        assert metric(page, "process_cpu_seconds_total") > 0, name
    # The outbox's backlog where there is an outbox (audit keeps none), the read-model lag where events feed one.
    for name in ("orgs", "members", "credits", "billing", "webhooks"):
        assert ("orgplatform_outbox_backlog_events", ()) in pages[name], name
        assert metric(pages[name], "orgplatform_read_model_lag_seconds_count") > 0, name
    assert ("orgplatform_outbox_backlog_events", ()) not in pages["audit"]
