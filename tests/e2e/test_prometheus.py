"""A real Prometheus (Debian's `prometheus` package) with the project's own scrape configuration
(deploy/prometheus/prometheus.yml, rendered with the test system's ports by devtools.prometheus, scraping every
second): it scrapes every process, a PromQL query through its HTTP API finds the spends this test made and
their rate, and it accepts the query of every panel of the dashboard (deploy/grafana/dashboards/platform.json;
an empty answer is fine, a refused query is not). One backend: Prometheus does not see the database.

`scripts/setup.sh --with-postgres` (what `make test` runs first) installs the package, so under CI its absence is
a failure; on a developer's machine without it the test is skipped."""
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from common.config import SERVICES
from devtools import prometheus
from devtools.system import free_port
from tests.e2e.helpers import create_agent, create_organization, metric, metrics_page, ok, path, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "platform.json"
USAGE = "/v1/organizations/<org_id>/usage"
SPENT = f'orgplatform_http_requests_total{{method="POST", route="{USAGE}", status="201"}}'
SPENDS = 30


def require_prometheus():
    if prometheus.available():
        return
    reason = "prometheus missing: `bash scripts/setup.sh --with-postgres` installs Debian's prometheus package"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def server(system, tmp_path):
    require_prometheus()
    config = prometheus.render(system.metrics_targets(), scrape_interval="1s")
    running = prometheus.Prometheus(tmp_path / "prometheus", config, free_port()).start()
    yield running
    running.stop()


def test_prometheus_scrapes_every_process_and_answers_the_spend_rate(system, server, figure):
    # Every process is a target, and up.
    def all_up():
        targets = server.targets()
        return targets if len(targets) == len(SERVICES) + 1 and all(h == "up" for _, h, _ in targets.values()) \
            else None
    targets = wait_for(all_up, timeout=20, message="every process scraped")
    assert {job for job, _, _ in targets.values()} == {*SERVICES, "gateway"}

    owner = system.user("owner")
    org = create_organization(owner, "Watched")["id"]
    ok(owner.post(path(org, "/credits/grants"), json={"amount": "1000", "type": "paid"}), 201)
    agent = create_agent(owner, org)["id"]

    def spend(amount="0.5"):
        return owner.post(path(org, "/usage"), json={"agent_id": agent, "amount": amount},
                          headers={"Idempotency-Key": uuid.uuid4().hex})

    # A refusal, and a first spend seen by Prometheus before the measured ones: their series exist before them.
    assert spend(amount="100000").status_code == 402
    baseline = metric(metrics_page(system.url + "/metrics"), "orgplatform_http_requests_total", method="POST",
                      route=USAGE, status="201") + 1
    ok(spend(), 201)
    wait_for(lambda: server.value(f"sum({SPENT})") == baseline, message="Prometheus seeing the first spend")
    started = time.time()
    for _ in range(SPENDS):                         # about 10 a second: over a few scrapes
        ok(spend(), 201)
        time.sleep(0.1)
    wait_for(lambda: server.value(f"sum({SPENT})") == baseline + SPENDS, message="Prometheus seeing the spends")

    # The count, exactly: now against the moment before the spends (PromQL's @ modifier).
    counted = server.value(f"sum({SPENT}) - sum({SPENT} @ {started:.3f})")
    assert counted == SPENDS
    # The spend rate and increase over the window from the last scrape before the spends to the first after
    # them: a window whose edges are scrapes is not extrapolated, so it holds the spends exactly (1 ms more at
    # its start, as Prometheus 3 leaves a range's start out).
    [series] = server.query(f"{SPENT}[60s]")
    scraped = [(float(at), float(value)) for at, value in series["values"]]
    first = max(at for at, value in scraped if value == baseline)
    last = min(at for at, value in scraped if value == baseline + SPENDS)
    window_ms, at = round((last - first) * 1000) + 1, f"{last:.3f}"
    increase = server.value(f"sum(increase({SPENT}[{window_ms}ms]))", time=at)
    rate = server.value(f"sum(rate({SPENT}[{window_ms}ms]))", time=at)
    assert increase == pytest.approx(SPENDS, rel=1e-3)
    assert rate == pytest.approx(SPENDS / (window_ms / 1000), rel=1e-3)
    assert server.value('sum(orgplatform_http_refusals_total{reason="insufficient_credits"})') >= 1
    figure(f"Prometheus (1 s scrapes): {counted:.0f} of {SPENDS} spends counted; {rate:.1f} spends/s over the "
           f"{window_ms / 1000:.1f} s between the scrapes around them (increase {increase:.2f})")

    # Every panel's query is accepted (the spend rate's is not empty now).
    panels = json.loads(DASHBOARD.read_text())["panels"]
    answered = {}
    for panel in panels:
        for target in panel["targets"]:
            answered[(panel["title"], target["refId"])] = server.query(target["expr"])
    assert answered[("Spend rate", "A")], "the spend rate panel shows nothing after the spends"
    assert answered[("Refusals by reason", "A")]
