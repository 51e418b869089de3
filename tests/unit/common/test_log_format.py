"""The log formatter (common/framework/log_format.py): one record is one line a client cannot forge, and
no full email address is written."""
import logging
import logging.config

from common.config import logging_config
from common.framework.log_format import SafeFormatter, safe_line

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
