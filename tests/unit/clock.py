"""A clock the unit tests move by hand (the gateway's key cache, the JWKS refresh, make run's supervisor)."""


class Clock:
    """A time.monotonic() the test moves by hand (`clock.now += seconds`)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now
