"""Every setting the README lists, read from the environment in this one place, typed, with defaults
that work for a local run. `settings()` reads the current environment; tooling that starts processes
passes the environment it gives them (`settings(env)`).

A value that cannot be read (GATEWAY_PORT=abc) is a `ConfigError` naming the variable, at start-up.
"""
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "dev-only-secret-change-me-in-production"   # documented; set JWT_SECRET anywhere else
SERVICES = ("members", "orgs", "credits", "audit")


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None          # None: emails are written to the service log instead of sent
    port: int
    user: str | None
    password: str | None
    sender: str
    starttls: bool


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    gateway_port: int
    rabbitmq_port: int
    amqp_uri: str
    amqp_uri_given: bool      # False: `make run` starts its own broker on rabbitmq_port
    jwt_secret: str
    log_level: str
    max_workers: int
    app_url: str
    replicas: int             # processes of each service `make run` starts (the gateway: one)
    invitation_sweep_seconds: float
    credit_expiry_sweep_seconds: float
    smtp: SmtpSettings
    database_urls: dict       # service name -> URL given in <SERVICE>_DATABASE_URL (others: SQLite)
    sqlite_synchronous: str   # NORMAL or FULL (common.db says what each keeps safe)

    def database_url(self, service_name):
        """The service's database: <SERVICE>_DATABASE_URL, or a SQLite file under DATA_DIR."""
        url = self.database_urls.get(service_name)
        if url:
            return url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / (service_name + '.sqlite')}"


def settings(environ=None):
    env = os.environ if environ is None else environ

    def text(name, default=None):
        value = env.get(name)
        return value if value not in (None, "") else default

    def number(name, default, kind=int, minimum=None):
        raw = text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, not {raw!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, not {raw!r}")
        return value

    def choice(name, allowed):
        value = text(name, allowed[0]).upper()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {text(name)!r}")
        return value

    gateway_port = number("GATEWAY_PORT", 8000, minimum=1)
    rabbitmq_port = number("RABBITMQ_PORT", 5672, minimum=1)
    amqp_uri = text("AMQP_URI")
    return Settings(
        data_dir=Path(text("DATA_DIR", PROJECT_ROOT / "data")).resolve(),
        gateway_port=gateway_port,
        rabbitmq_port=rabbitmq_port,
        amqp_uri=amqp_uri or f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/",
        amqp_uri_given=amqp_uri is not None,
        jwt_secret=text("JWT_SECRET", DEV_JWT_SECRET),
        log_level=text("LOG_LEVEL", "INFO"),
        max_workers=number("MAX_WORKERS", 10, minimum=1),
        app_url=text("APP_URL", f"http://127.0.0.1:{gateway_port}"),
        replicas=number("REPLICAS", 1, minimum=1),
        invitation_sweep_seconds=number("INVITATION_SWEEP_SECONDS", 60.0, float, minimum=0.1),
        credit_expiry_sweep_seconds=number("CREDIT_EXPIRY_SWEEP_SECONDS", 60.0, float, minimum=0.1),
        smtp=SmtpSettings(
            host=text("SMTP_HOST"),
            port=number("SMTP_PORT", 587, minimum=1),
            user=text("SMTP_USER"),
            password=text("SMTP_PASSWORD"),
            sender=text("SMTP_FROM", "no-reply@localhost"),
            starttls=text("SMTP_STARTTLS", "true").lower() not in ("0", "false", "no"),
        ),
        database_urls={name: text(f"{name.upper()}_DATABASE_URL") for name in SERVICES},
        sqlite_synchronous=choice("SQLITE_SYNCHRONOUS", ("NORMAL", "FULL")),
    )


def database_url(service_name, environ=None):
    """The service's database; `environ` lets tooling ask on behalf of processes it starts."""
    return settings(environ).database_url(service_name)
