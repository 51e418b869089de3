"""A gateway that stops answering (SIGSTOP) leaves no screen "Loading…" for ever (issue 28): the console gives
the request up after its time-out (CONSOLE_REQUEST_TIMEOUT_SECONDS, 6 s in the tests) and offers Retry,
which loads the screen once the gateway answers again (SIGCONT)."""
import signal
import time

import pytest

from tests.browser.helpers import owner_of

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def test_a_frozen_gateway_gives_retry_within_the_time_out(system, console, figure):
    dina, _ = owner_of(system, "dina", "Sehat Clinic")
    console.sign_in(dina)
    gateway = system.processes["gateway"]
    gateway.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        console.click("Members", css="nav a", tag="a")
        console.text_appears("did not answer within 6 seconds", css="main .notice")
        waited = time.monotonic() - started
        retry = console.element_with_text("Retry", within=console.find("main"))
        console.shot("frozen-gateway-retry", docs=True)
    finally:
        gateway.send_signal(signal.SIGCONT)
    assert 5 < waited < 14, waited
    retry.click()
    console.heading_is("Members")
    assert "Dina" in console.find("main table").text
    figure(f"a frozen gateway: the console offered Retry after {waited:.1f} s (time-out 6 s)")
