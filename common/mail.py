"""Outgoing email: through SMTP when `SMTP_HOST` is set, otherwise written to the service log (local
runs print invitation links there). Sending is best effort after the change committed: a failure is
logged and the change stands (an invitation can be resent)."""
import logging
import smtplib
from email.message import EmailMessage

from nameko.extensions import DependencyProvider

from common.config import settings

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, smtp):
        self.settings = smtp   # common.config.SmtpSettings

    def send(self, to, subject, body):
        """Send (or log) one plain-text email; returns "sent", "logged" or "failed"."""
        s = self.settings
        if s.host is None:
            log.info("email (SMTP_HOST not set, so logged instead of sent) to %s: %s\n%s", to, subject, body)
            return "logged"
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.sender, to, subject
        message.set_content(body)
        try:
            with smtplib.SMTP(s.host, s.port, timeout=10) as smtp:
                if s.starttls:
                    smtp.starttls()
                if s.user:
                    smtp.login(s.user, s.password or "")
                smtp.send_message(message)
            log.info("email sent to %s: %s", to, subject)
            return "sent"
        except (OSError, smtplib.SMTPException):
            log.error("could not send email to %s: %s", to, subject, exc_info=True)
            return "failed"


class MailerProvider(DependencyProvider):
    def setup(self):
        self.mailer = Mailer(settings().smtp)

    def get_dependency(self, worker_ctx):
        return self.mailer
