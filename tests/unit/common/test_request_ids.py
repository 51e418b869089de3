"""common.request_ids: a client's id is taken only when it cannot forge a log line; every log record
carries the id of the request its worker serves."""
import logging

from common import request_ids


def test_a_clients_id_is_kept_only_when_it_is_a_short_safe_token():
    assert request_ids.new_request_id("abc-123_x.Y") == "abc-123_x.Y"
    for offered in (None, "", "a" * 65, "new\nline", "space inside", "ü", 12):
        generated = request_ids.new_request_id(offered)
        assert generated != offered and len(generated) == 32


def test_log_records_carry_the_request_their_worker_serves():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    request_ids.serve("req-1")
    try:
        assert request_ids.RequestIdFilter().filter(record) and record.request_id == "req-1"
    finally:
        request_ids.serve(None)
    assert request_ids.RequestIdFilter().filter(record) and record.request_id == "-"
    request_ids.serve("forged\nline")                       # an id from another service's headers
    assert request_ids.current() is None
    request_ids.serve(None)
