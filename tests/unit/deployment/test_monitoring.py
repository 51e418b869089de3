"""What monitors the deployment, checked without running it: Prometheus's scrape configuration
(deploy/prometheus/prometheus.yml) scrapes every process where docker-compose.yml has it serve its metrics,
and `promtool check config` accepts it (and its local rendering, devtools.prometheus); Grafana is provisioned
with the dashboard file, whose every query names metrics the code defines; docs/metrics.md lists every
metric; a process serves its metrics on METRICS_PORT (devtools.serve), or stops at once when it cannot. A real
Prometheus runs every panel's query against the running system in tests/e2e/test_prometheus.py.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase

from common import metrics
from common.config import SERVICES
from devtools import prometheus
from devtools.system import free_port

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SHIPPED = yaml.safe_load(prometheus.SHIPPED_CONFIG.read_text())
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "platform.json"
# The figures the dashboard must show (issue 30): spend rate, p99, refusals by reason, outbox backlog, audit lag.
REQUIRED_PANELS = {"Spend rate", "p99 latency", "Refusals by reason", "Outbox backlog", "Audit lag"}


def defined_metrics():
    """The names every metric of common.metrics is exposed under (a counter's with _total)."""
    names = set()
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            name = obj.describe()[0].name
            names.add(name + "_total" if isinstance(obj, Counter) else name)
    names |= {family.name for family in metrics._OutboxBacklog().collect()}
    return names


def jobs():
    return {job["job_name"]: job for job in SHIPPED["scrape_configs"]}


def require_promtool():
    """promtool from Debian's prometheus package: `scripts/setup.sh --with-postgres` installs it, so under CI
    its absence is a failure; on a developer's machine without it the check is skipped."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool missing: `bash scripts/setup.sh --with-postgres` installs Debian's prometheus package"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def test_prometheus_scrapes_every_process_where_compose_serves_its_metrics():
    services = COMPOSE["services"]
    assert set(jobs()) == {*SERVICES, "gateway"}
    for name in SERVICES:
        [discovery] = jobs()[name]["dns_sd_configs"]
        assert discovery["names"] == [name] and discovery["type"] == "A"    # every replica of it, by DNS
        assert str(discovery["port"]) == services[name]["environment"]["METRICS_PORT"], name
        assert jobs()[name].get("metrics_path", "/metrics") == "/metrics"
    gateway, [discovery] = jobs()["gateway"], jobs()["gateway"]["dns_sd_configs"]
    assert gateway["metrics_path"] == metrics.PATH
    assert "METRICS_PORT" not in services["gateway"]["environment"]
    assert services["gateway"]["environment"]["WEB_SERVER_ADDRESS"].endswith(f":{discovery['port']}")


def test_compose_runs_prometheus_with_the_shipped_configuration_and_grafana_with_the_dashboard():
    services = COMPOSE["services"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    grafana_volumes = dict(volume.rsplit(":", 1)[0].split(":", 1) for volume in services["grafana"]["volumes"]
                           if volume.startswith("./"))
    assert grafana_volumes == {"./deploy/grafana/provisioning": "/etc/grafana/provisioning",
                               "./deploy/grafana/dashboards": "/etc/grafana/dashboards"}
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "platform.yml").read_text())["providers"]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    for panel in json.loads(DASHBOARD_FILE.read_text())["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]


def test_promtool_accepts_the_shipped_configuration_and_its_local_rendering(tmp_path):
    promtool = require_promtool()
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(prometheus.render({job: ["127.0.0.1:1"] for job in jobs()}, scrape_interval="1s",
                                          token="t"))
    for config in (prometheus.SHIPPED_CONFIG, rendered):
        checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_local_rendering_is_the_shipped_file_with_local_targets():
    targets = {job: [f"127.0.0.1:{9000 + i}"] for i, job in enumerate(sorted(jobs()))}
    rendered = yaml.safe_load(prometheus.render(targets, scrape_interval="1s", token="s3cret"))
    assert rendered["global"]["scrape_interval"] == "1s"
    for job in rendered["scrape_configs"]:
        shipped = jobs()[job["job_name"]]
        assert "dns_sd_configs" not in job and job["static_configs"] == [{"targets": targets[job["job_name"]]}]
        assert job.get("metrics_path") == shipped.get("metrics_path")
        assert job["authorization"] == {"type": "Bearer", "credentials": "s3cret"}
    with pytest.raises(ValueError):
        prometheus.render({"gateway": ["127.0.0.1:1"]})      # a job without targets


def test_the_dashboard_shows_the_main_figures_from_metrics_the_code_defines():
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert REQUIRED_PANELS <= set(titles) and len(titles) == len(set(titles))
    known = defined_metrics()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\borgplatform_\w+", target["expr"]):
                assert re.sub(r"_(bucket|count|sum)$", "", name) in known, f"{panel['title']}: {name} is no metric"


def test_docs_list_every_metric_and_setting():
    text = (ROOT / "docs" / "metrics.md").read_text()
    missing = sorted(name for name in defined_metrics() if f"`{name}`" not in text)
    assert not missing, f"docs/metrics.md does not list {missing}"
    for setting in ("METRICS_PORT", "METRICS_TOKEN", "METRICS_ENABLED"):
        assert setting in text


def serve_probe(log, **environment):
    return subprocess.Popen([sys.executable, "-m", "devtools.serve", "tests.unit.deployment.serve_probe"], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONWARNINGS="ignore", AMQP_URI="memory://", LOG_LEVEL="INFO",
                                     **environment))


def test_a_process_serves_its_metrics_on_its_metrics_port_while_its_workers_run(tmp_path):
    port = free_port()
    log_file = tmp_path / "probe.log"
    with log_file.open("wb") as log:
        process = serve_probe(log, METRICS_PORT=str(port))
    try:
        deadline = time.monotonic() + 30
        while "tick" not in log_file.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        ticks = log_file.read_text().count("tick")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert answer.status == 200 and "orgplatform_broker_up" in text and "process_cpu_seconds_total" in text
        time.sleep(0.5)
        assert log_file.read_text().count("tick") > ticks          # its timer (a worker every 0.1 s) runs on
        assert f"metrics served on port {port}" in log_file.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("port, says", [("70000", "port must be 0-65535"), ("taken", "Address already in use")])
def test_a_metrics_port_that_cannot_be_served_stops_the_process_at_once(tmp_path, port, says):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = str(taken.getsockname()[1]) if port == "taken" else port
        with (tmp_path / "serve.log").open("wb") as log:
            process = serve_probe(log, METRICS_PORT=port)
        assert process.wait(timeout=30) == 1
    said = (tmp_path / "serve.log").read_text().strip()
    assert said.startswith(f"serve: METRICS_PORT {port}: ") and says in said, said
