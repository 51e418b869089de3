"""The log formatter (common/framework/log_format.py): one record is one line a client cannot forge, and
no full email address is written."""
import logging
import logging.config

from common.config import logging_config
from common.framework.log_format import UNSAFE, JsonFormatter, SafeFormatter, safe_line

FORGED = "Acme\n2026-12-02 10:00:00,000 ERROR common.mail [forged]: card declined"


def formatted(message, *args, exc_info=None):
    record = logging.LogRecord("common.mail", logging.INFO, __file__, 1, message, args, exc_info)
    record.request_id = "-"
    return SafeFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s").format(record)


def test_a_name_with_a_line_break_stays_on_its_line():
    line = formatted("invited to %s", FORGED)
    assert "\n" not in line and "Acme\\n2026-12-02 10:00:00,000 ERROR" in line


def test_control_and_direction_characters_are_escaped():
    line = formatted("%s", "a\rb\x1bc\x85d\u2028e\u202egnp.exe\u2066f\x00")
    assert line.endswith("a\\rb\\x1bc\\x85d\\u2028e\\u202egnp.exe\\u2066f\\x00")
    assert "Zoë 日本 ✓" in formatted("%s", "Zoë 日本 ✓")       # readable text is left alone


def test_email_addresses_are_masked():
    assert safe_line("email sent to dina.sehat@example.com: You are invited") == \
        "email sent to d***@example.com: You are invited"
    assert safe_line("from a+b@mail.example.co.id and c@x.org") == "from a***@mail.example.co.id and c***@x.org"
    assert safe_line("no address @ here, user@localhost") == "no address @ here, user@localhost"


def test_a_traceback_keeps_its_lines_but_none_starts_like_a_record():
    try:
        raise ValueError(FORGED)
    except ValueError as error:
        line = formatted("failed", exc_info=(type(error), error, error.__traceback__))
    first, *rest = line.split("\n")
    assert first.endswith("failed") and rest
    assert all(part.startswith(" ") for part in rest)
    assert not any(part.startswith("2026-12-02") for part in line.split("\n"))


def test_every_process_logs_through_it(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("INFO"))
    try:
        logging.getLogger("common.mail").info("email to %s: %s", "dina@example.com", FORGED)
    finally:
        root.handlers[:], root.level = handlers, level
    [line] = capsys.readouterr().err.splitlines()
    assert "d***@example.com" in line and "dina@" not in line and "Acme\\n2026" in line


# ---- LOG_FORMAT=json ----------------------------------------------------------------------------------------
def json_line(message, *args, exc_info=None, **ids):
    record = logging.LogRecord("common.mail", logging.WARNING, __file__, 1, message, args, exc_info)
    record.created = 1767225600.25                                    # 2026-01-01T00:00:00.250Z
    for name in ("request_id", "trace_id", "span_id"):
        setattr(record, name, ids.get(name, "-"))
    return JsonFormatter().format(record)


def test_json_lines_are_one_object_per_record_with_the_ids():
    import json
    line = json_line("invited %s", "dina@example.com", request_id="r1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                     span_id="00f067aa0ba902b7")
    assert json.loads(line) == {"time": "2026-01-01T00:00:00.250Z", "level": "WARNING", "logger": "common.mail",
                                "message": "invited d***@example.com", "request_id": "r1",
                                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}
    assert json.loads(json_line("outside a request"))["trace_id"] is None


def test_no_value_breaks_a_json_line_and_readable_text_stays_readable():
    import json
    text = "Acme\n2026\r\x1b[31m\x85\u2028\u2029\u202egnp.exe\u2066 \" \\ Zoë 日本"
    try:
        raise ValueError(f"{FORGED} for dina@example.com")
    except ValueError as error:
        line = json_line("%s", text, exc_info=(type(error), error, error.__traceback__))
    assert "\n" not in line and "\r" not in line and not UNSAFE.search(line)
    assert "Zoë 日本" in line                                  # readable text is not escaped
    entry = json.loads(line)
    assert entry["message"] == text
    assert entry["exception"].startswith("Traceback") and "ValueError: Acme\n2026-12-02" in entry["exception"]
    assert "dina@" not in line and "d***@example.com" in entry["exception"]


def test_every_process_can_log_json_lines(capsys):
    import json

    from common import request_ids, tracing
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("INFO", "json"))
    request_ids.serve("r1")
    tracing.serve(tracing.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    try:
        logging.getLogger("common.mail").info("email to %s: %s", "dina@example.com", FORGED)
    finally:
        request_ids.serve(None)
        tracing.serve(None)
        root.handlers[:], root.level = handlers, level
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["message"] == f"email to d***@example.com: {FORGED}"
    assert (entry["request_id"], entry["trace_id"], entry["span_id"]) == \
        ("r1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_a_plain_line_names_the_request_and_the_trace(capsys):
    from common import tracing
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("INFO"))
    tracing.serve(tracing.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
    try:
        logging.getLogger("common.mail").info("sent")
    finally:
        tracing.serve(None)
        root.handlers[:], root.level = handlers, level
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO common.mail [- 4bf92f3577b34da6a3ce929d0e0e4736]: sent")


def test_log_format_is_a_setting():
    import pytest

    from common.config import ConfigError, nameko_config, read_settings
    assert read_settings({}).log_format == "plain"
    assert nameko_config(read_settings({"LOG_FORMAT": "json"}))["LOGGING"]["handlers"]["console"]["formatter"] == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        read_settings({"LOG_FORMAT": "xml"})
