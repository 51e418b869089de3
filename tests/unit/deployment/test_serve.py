"""devtools.serve, what starts every process of the system: it runs a module's service with Nameko's
configuration made from the settings (the log format and LOG_LEVEL here), writes its green threads' stacks
to the log on SIGUSR2 and carries on, stops gracefully on SIGTERM, and refuses a setting that cannot be
used with a message naming it."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def serve(module, log, **environment):
    return subprocess.Popen([sys.executable, "-m", "devtools.serve", module], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONWARNINGS="ignore", **environment))


def test_a_service_runs_configured_from_the_settings_tells_its_stacks_and_stops_on_sigterm(tmp_path):
    log_file = tmp_path / "probe.log"
    with log_file.open("wb") as log:
        process = serve("tests.unit.deployment.serve_probe", log, LOG_LEVEL="INFO", AMQP_URI="memory://")
    try:
        deadline = time.monotonic() + 30
        while "tick" not in log_file.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while "(SIGUSR2)" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        ticks = log_file.read_text().count("tick")
        while log_file.read_text().count("tick") == ticks and time.monotonic() < deadline:
            time.sleep(0.1)                                     # still ticking afterwards
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    said = log_file.read_text()
    assert re.search(r"^\S+ \S+ INFO serve_probe \[- -\]: tick$", said, re.MULTILINE), said      # no request, no trace
    assert "debug line" not in said
    # SIGUSR2: every green thread's stack in one record, the timer's among them (nameko/timer.py).
    stacks = said[said.index("green threads (SIGUSR2)"):]
    assert re.search(r"WARNING devtools.serve \[- -\]: \d+ green threads \(SIGUSR2\):", said), said
    assert 'nameko/timer.py", line' in stacks and "in _run" in stacks, stacks


def test_a_setting_that_cannot_be_used_stops_it_at_once(tmp_path):
    with (tmp_path / "serve.log").open("wb") as log:
        process = serve("gateway.service", log, GATEWAY_PORT="abc")
    assert process.wait(timeout=30) == 1
    assert (tmp_path / "serve.log").read_text().strip() == "serve: GATEWAY_PORT must be a whole number, not 'abc'"


def test_the_stacks_include_green_threads_frozen_out_of_the_collectors_sight():
    # Every service freezes what it made at start-up (common.heap), its queue consumers' threads among them.
    import gc

    import eventlet

    from devtools.serve import green_threads
    waiting = eventlet.spawn(eventlet.sleep, 30)
    eventlet.sleep(0)
    gc.freeze()
    try:
        assert any(thread is waiting for thread in green_threads())
        assert gc.get_freeze_count() > 0                    # frozen again afterwards
    finally:
        gc.unfreeze()
        waiting.kill()
