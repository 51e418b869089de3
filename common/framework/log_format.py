"""The one formatter of every process's log (installed by common.config.logging_config): a record is one
line a client cannot forge, and no full email address reaches the log.

Names, emails, paths and other values that came from a client end up in messages (an organization's name
in an invitation email, a path in the access line). Escaping them at each call site would miss one, so
the formatter does it on the formatted line:
- control characters (C0, C1, DEL), line and paragraph separators and bidirectional controls are written
  as Python escapes (`\\n`, `\\x1b`, `\\u202e`): "Acme\\n2026-12-02 10:00:00,000 ERROR …" stays on its line;
- an email address keeps its first character and its domain (`d***@example.com`): enough to tell whose
  it was with the database at hand, not a list of addresses for whoever reads the logs;
- a traceback's lines (the one multi-line part a record may have) are indented, so no line of it starts
  like a record even when an exception's message carries client text.

With LOG_FORMAT=json (common.config) the same records are JSON lines (JsonFormatter): one object per record,
{"time", "level", "logger", "message", "request_id", "trace_id", "span_id"} and "exception" (the traceback
as one string) when there is one; email addresses masked the same way, and every character that could
end or turn a line (controls, separators, bidirectional controls) written as a JSON escape.
"""
import json
import logging
import re
from datetime import UTC, datetime

# C0, DEL and C1 controls; LINE/PARAGRAPH SEPARATOR; Arabic letter mark, LRM/RLM; embeddings and overrides
# (U+202A–U+202E); isolates (U+2066–U+2069).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@([\w-]+(?:\.[\w-]+)+)")


def _escaped(match):
    return match.group().encode("unicode_escape").decode("ascii")


def masked_email(match):
    local, domain = match.group()[0], match.group(1)
    return f"{local}***@{domain}"


def safe_line(text):
    """`text` as one log line: unsafe characters escaped, email addresses masked."""
    if "@" in text:
        text = EMAIL.sub(masked_email, text)
    return UNSAFE.sub(_escaped, text)


class SafeFormatter(logging.Formatter):
    def formatMessage(self, record):
        return safe_line(super().formatMessage(record))

    def formatException(self, exc_info):
        return _indented(safe_line_keeping_breaks(super().formatException(exc_info)))

    def formatStack(self, stack_info):
        return _indented(safe_line_keeping_breaks(super().formatStack(stack_info)))


def safe_line_keeping_breaks(text):
    return "\n".join(safe_line(line) for line in text.split("\n"))


def _indented(text):
    return "\n".join(line if not line or line[0].isspace() else f"  {line}" for line in text.split("\n"))


# What json.dumps leaves as it is (ensure_ascii=False keeps readable text readable) but must not reach a
# line: DEL, C1 controls, line and paragraph separators, bidirectional controls. C0 controls json escapes.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _json_escaped(match):
    return f"\\u{ord(match.group()):04x}"


def _masked(text):
    return EMAIL.sub(masked_email, text) if "@" in text else text


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (LOG_FORMAT=json). The record's `request_id`, `trace_id` and
    `span_id` come from the filters common.config.logging_config installs ("-" there: null here)."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _masked(record.getMessage()),
            "request_id": _present(getattr(record, "request_id", None)),
            "trace_id": _present(getattr(record, "trace_id", None)),
            "span_id": _present(getattr(record, "span_id", None)),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = _masked(record.exc_text)
        if record.stack_info:
            entry["stack"] = _masked(self.formatStack(record.stack_info))
        return _JSON_UNSAFE.sub(_json_escaped, json.dumps(entry, ensure_ascii=False, default=str))


def _present(value):
    return None if value in (None, "-") else value
