"""Outgoing email: through SMTP when `SMTP_HOST` is set, otherwise written to the service log (local
runs print invitation links there). Who sends and retries is the caller's business (the members service
sends from a job, after the change event: services/members/emails.py); `Mailer.send` only tries once and
says how it went, never raising: a refused header, a closed port or a timeout is an outcome.

Addresses in these log lines are masked by the log formatter (common/framework/log_format.py)."""
import logging
import smtplib
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage

from nameko.extensions import DependencyProvider

from common.config import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    permanent: bool = False     # trying again cannot help (the message itself is refused)


SENT = Outcome(True)


def one_line(text):
    """A header value on one line: control characters (a line break would end the header) become spaces."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


class Mailer:
    def __init__(self, smtp):
        self.settings = smtp   # common.config.SmtpSettings

    def send(self, to, subject, body):
        """Send (or log) one plain-text email, once."""
        s = self.settings
        if s.host is None:
            log.info("email (SMTP_HOST not set, so logged instead of sent) to %s: %s\n%s", to, subject, body)
            return SENT
        try:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = s.sender, to, one_line(subject)
            message.set_content(body)
        except (ValueError, TypeError) as error:
            log.error("could not build the email to %s (%s): %s", to, subject, error)
            return Outcome(False, f"refused message: {error}", permanent=True)
        try:
            with smtplib.SMTP(s.host, s.port, timeout=10) as smtp:
                if s.starttls:
                    smtp.starttls()
                if s.user:
                    smtp.login(s.user, s.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            log.error("the SMTP server refused the recipient %s: %s", to, error)
            return Outcome(False, f"recipient refused: {error}", permanent=True)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("could not send the email to %s: %s: %s", to, type(error).__name__, error)
            return Outcome(False, f"{type(error).__name__}: {error}")
        log.info("email sent to %s: %s", to, subject)
        return SENT


class MailerProvider(DependencyProvider):
    def setup(self):
        self.mailer = Mailer(settings().smtp)

    def get_dependency(self, worker_ctx):
        return self.mailer
