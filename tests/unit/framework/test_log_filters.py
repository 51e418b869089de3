"""common.framework.log_filters: a broker outage is logged once, not once per retry, and without a traceback."""
import logging
import sys

from common.framework import log_filters


def record(name, message, exc_info=None):
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, exc_info)


def test_one_retry_line_per_outage_and_the_next_outage_again(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(log_filters.time, "monotonic", lambda: clock[0])
    once = log_filters.BrokerOutageOnce()
    retry = ("Error connecting to broker at amqp://guest:********@127.0.0.1:5672/ (ECONNREFUSED).\n"
             "Retrying in 2 seconds.")
    shown = []
    for _ in range(8):                              # a minute of retries, every few seconds
        shown.append(once.filter(record("nameko.messaging", retry)))
        clock[0] += 7
    assert shown == [True] + [False] * 7
    clock[0] += 3600                                # the next outage, an hour later
    assert once.filter(record("nameko.messaging", retry))
    assert once.filter(record("nameko.messaging", "something else entirely"))


def test_the_lost_connection_is_one_line_without_its_traceback():
    try:
        raise ConnectionResetError("Connection reset by peer")
    except ConnectionResetError:
        lost = record("kombu.mixins", "Connection to broker lost, trying to re-establish connection...",
                      sys.exc_info())
    assert log_filters.BrokerOutageOnce().filter(lost)
    assert lost.exc_info is None
    assert "Traceback" not in logging.Formatter().format(lost)
