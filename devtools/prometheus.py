"""The project's Prometheus scrape configuration (deploy/prometheus/prometheus.yml, written for
docker-compose.yml) rendered for processes on this machine, and a Prometheus process to run with it.

`render(targets)` is the shipped file with each job's DNS discovery replaced by the local ports the system
gave its processes (devtools.system.System.metrics_targets); everything else (jobs, paths, intervals) stays
the shipped file's, so what the tests scrape with is what a deployment scrapes with. `make run` writes it to
DATA_DIR/prometheus.yml:

    prometheus --config.file=data/prometheus.yml --storage.tsdb.path=data/prometheus

`Prometheus` runs Debian's `prometheus` binary on a free loopback port with its data in a folder, and
answers PromQL through its HTTP API (tests/e2e/test_prometheus.py).
"""
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
BINARY = "prometheus"


def render(targets, scrape_interval=None, token=None, shipped=SHIPPED_CONFIG):
    """The shipped configuration, as YAML text, with `targets` ({job: ["host:port", ...]}) for every job's
    discovery; `scrape_interval` (e.g. "1s") for the global one; `token` (METRICS_TOKEN) sent by every job."""
    config = yaml.safe_load(Path(shipped).read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    if set(targets) != jobs:
        raise ValueError(f"the targets name the jobs {sorted(targets)}, the configuration {sorted(jobs)}")
    if scrape_interval is not None:
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = scrape_interval
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": list(targets[job["job_name"]])}]
        if token:
            job["authorization"] = {"type": "Bearer", "credentials": token}
    return yaml.safe_dump(config, sort_keys=False)


def available():
    """The path of the prometheus binary, or None."""
    return shutil.which(BINARY)


class Prometheus:
    """A Prometheus server with `config_text`, its files under `directory`, on 127.0.0.1:`port`."""

    def __init__(self, directory, config_text, port):
        self.directory, self.port = Path(directory), port
        self.url = f"http://127.0.0.1:{port}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_file = self.directory / "prometheus.yml"
        self.config_file.write_text(config_text)
        self.log_file = self.directory / "prometheus.log"
        self.process = None

    def start(self, timeout=30):
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [available() or BINARY, f"--config.file={self.config_file}",
                 f"--storage.tsdb.path={self.directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout} s: {self.log()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self):
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""

    def api(self, path, **params):
        """GET /api/v1/<path>: (HTTP status, the JSON answer)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def query(self, expression, **params):
        """An instant PromQL query: its result (a list of {"metric", "value"}); AssertionError if refused."""
        status, answer = self.api("query", query=expression, **params)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expression!r}: {status} {answer}")
        return answer["data"]["result"]

    def value(self, expression, **params):
        """The single number an instant query answers (0 for an empty result)."""
        result = self.query(expression, **params)
        if not result:
            return 0.0
        if len(result) > 1:
            raise AssertionError(f"{expression!r} answered {len(result)} series: {result}")
        return float(result[0]["value"][1])

    def targets(self):
        """{scrape URL: (job, health, last error)} of the active targets."""
        _, answer = self.api("targets", state="active")
        return {t["scrapeUrl"]: (t["labels"]["job"], t["health"], t["lastError"])
                for t in answer["data"]["activeTargets"]}
