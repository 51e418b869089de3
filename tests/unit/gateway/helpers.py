"""What the gateway's unit tests share."""


class Clock:
    """A time.monotonic() the test moves by hand (`clock.now += seconds`)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now
