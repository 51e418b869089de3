"""Every setting the README lists, read from the environment in this one place, typed, with defaults
that work for a local run.

`settings()` is this process's settings: read from os.environ once, on first use (a change needs a
restart), then the same object every time. Tooling that starts processes asks for theirs with the
environment it gives them (`settings(env)`, read anew on every call). Tests that change the environment
go through the `environment` fixture (tests/conftest.py), which calls `reload_settings()`.

Nameko's own configuration (a container's `config`) is made from them too, by `nameko_config`, when a
process starts (devtools.serve): no configuration file, no lookups of the environment of its own.

A value that cannot be read (GATEWAY_PORT=abc) is a `ConfigError` naming the variable, at start-up.
"""
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "dev-only-secret-change-me-in-production"   # documented; set JWT_SECRET anywhere else
DEV_API_KEY_HASH_SECRET = "dev-only-api-key-hash-secret"       # documented; set API_KEY_HASH_SECRET elsewhere
# localstripe, the fake payment provider (no STRIPE_API_KEY): any key is accepted, and its webhooks are signed
# with the secret it is configured with at start (devtools/system.py).
LOCALSTRIPE_API_KEY = "sk_test_localstripe"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_dev_localstripe_only"
# Every service, the one list (migrations, make run, the gateway's /health, the tests), in the order they
# are started. Those that keep read models (common.readmodels) are named beside it: each fills an empty
# read model from its owner's snapshot in the background, retrying until the owner answers, so services
# that own facts of each other (members and credits) start in any order.
SERVICES = ("members", "orgs", "credits", "billing", "audit", "webhooks")
READ_MODEL_SERVICES = ("members", "orgs", "credits", "billing", "audit", "webhooks")
# A CORS origin as browsers send it: scheme://host[:port], nothing after (no path, no trailing slash). No
# `*` inside one: origins are compared exactly, so https://*.example.com would be a pattern that never matches.
_ORIGIN = re.compile(r"https?://[^/?#*\s]+")


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
class PaymentSettings:
    """The payment provider (services/billing): Stripe with STRIPE_API_KEY, else localstripe on a local port."""
    api_key: str
    webhook_secret: str
    fake: bool                # True: localstripe, which `make run` and the tests start (devtools/system.py)
    localstripe_port: int
    localstripe_host: str
    credits_per_usd: int      # the price: credits one USD buys
    reconcile_seconds: float  # how often pending payments are looked up at the provider

    @property
    def api_base(self):
        """Where the SDK sends its requests: localstripe's port, or Stripe's own (None: the SDK's default)."""
        return f"http://{self.localstripe_host}:{self.localstripe_port}" if self.fake else None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    gateway_port: int
    web_server_address: str   # host:port the gateway process listens on (Nameko's WEB_SERVER_ADDRESS)
    rabbitmq_port: int
    amqp_uri: str
    amqp_uri_given: bool      # False: `make run` starts its own broker on rabbitmq_port
    broker: "BrokerSettings"
    operator_token: str | None     # guards the operations routes (/v1/operations/...); None: they refuse
    jwt_secret: str
    jwt_secret_given: bool    # False: the development default (not accepted beside a JWKS, gateway.tokens)
    api_key_hash_secret: str  # the key of API keys' HMAC (services/members/api_keys.py); members and gateway
    jwt_jwks: str | None      # a JWKS of RS256/ES256 keys: an http(s) URL or a file path; None: HS256 only
    jwt_issuer: str | None    # the `iss` and `aud` JWKS-verified tokens must carry (both set with jwt_jwks)
    jwt_audience: str | None
    jwks_cache_seconds: float
    jwt_max_token_age: float  # seconds: a token whose exp is further away than this is refused
    cors_allowed_origins: tuple   # exact origins (or "*") browsers may call from; empty: no CORS headers
    log_level: str
    log_format: str           # "plain" (one line per record) or "json" (one JSON object per line)
    max_workers: int
    gateway_max_workers: int  # the gateway's workers: green threads, most of them waiting on a service
    gateway_processes: int    # gateway processes `make run` starts on the one port (SO_REUSEPORT)
    rpc_bulkhead: int         # RPC calls in flight per target service and process (common.rpc.Bulkheads)
    app_url: str
    replicas: int             # processes of each service `make run` starts (the gateway: one)
    invitation_sweep_seconds: float
    email_send_seconds: float       # how often members sends the emails due (services/members/emails.py)
    console_request_timeout_seconds: float   # the console gives a request up after this, offering Retry
    credit_expiry_sweep_seconds: float
    smtp: SmtpSettings
    database_urls: dict       # service name -> URL given in <SERVICE>_DATABASE_URL (others: SQLite)
    sqlite_synchronous: str   # NORMAL or FULL (common.db says what each keeps safe)
    payments: PaymentSettings
    audit_signing_key_file: Path   # Ed25519 private key (PEM) of the audit checkpoints; made if absent
    audit_signing_key_given: bool  # False: the development key under DATA_DIR, generated at first start
    audit_checkpoint_seconds: float
    rate_limits: "RateLimitSettings"
    webhooks: "WebhookSettings"
    metrics: "MetricsSettings"

    def database_url(self, service_name):
        """The service's database: <SERVICE>_DATABASE_URL, or a SQLite file under DATA_DIR."""
        url = self.database_urls.get(service_name)
        if url:
            return url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / (service_name + '.sqlite')}"


def settings(environ=None):
    """This process's settings (os.environ, read once), or those of `environ` (read on every call)."""
    return _process_settings() if environ is None else read_settings(environ)


@functools.cache
def _process_settings():
    return read_settings(os.environ)


def reload_settings():
    """Forget this process's settings: the next `settings()` reads os.environ again. For tests that change
    the environment (tests/conftest.py `environment`); a running service never does."""
    _process_settings.cache_clear()


def read_settings(env):
    """The settings that the environment mapping `env` gives, or ConfigError naming the variable at fault."""

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

    def origins(name):
        listed = tuple(origin.strip() for origin in text(name, "").split(",") if origin.strip())
        for origin in listed:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ConfigError(f"{name} must list origins such as https://app.example.com (scheme, host and "
                                  f"port only, no path or trailing slash) or *, not {origin!r}")
        return listed

    jwks = text("JWT_JWKS")
    if jwks is not None:
        if "://" in jwks and not jwks.startswith(("http://", "https://")):
            raise ConfigError(f"JWT_JWKS must be an http(s) URL or a file path, not {jwks!r}")
        # Without both, a token any tenant of the identity provider got for any application would do.
        for name in ("JWT_ISSUER", "JWT_AUDIENCE"):
            if text(name) is None:
                raise ConfigError(f"{name} must be set when JWT_JWKS is")
    gateway_port = number("GATEWAY_PORT", 8000, minimum=1)
    rabbitmq_port = number("RABBITMQ_PORT", 5672, minimum=1)
    amqp_uri = text("AMQP_URI")
    broker_nodes = number("BROKER_NODES", 1, minimum=1)
    if broker_nodes > 7:
        raise ConfigError(f"BROKER_NODES must be from 1 to 7, not {broker_nodes}")
    if amqp_uri is None:
        # `make run` starts BROKER_NODES nodes on RABBITMQ_PORT, +1, ... (devtools.system.Broker): every
        # process is given all of them, kombu's failover moves a connection to the next when its node dies.
        amqp_uri = ";".join(f"amqp://guest:guest@127.0.0.1:{rabbitmq_port + n}/" for n in range(broker_nodes))
        amqp_uri_given = False
    else:
        amqp_uri_given = True
    data_dir = Path(text("DATA_DIR", PROJECT_ROOT / "data")).resolve()
    return Settings(
        data_dir=data_dir,
        gateway_port=gateway_port,
        web_server_address=text("WEB_SERVER_ADDRESS", f"0.0.0.0:{gateway_port}"),
        rabbitmq_port=rabbitmq_port,
        amqp_uri=amqp_uri,
        amqp_uri_given=amqp_uri_given,
        broker=read_broker_settings(text, number, amqp_uri, broker_nodes),
        operator_token=text("OPERATOR_TOKEN"),
        jwt_secret=text("JWT_SECRET", DEV_JWT_SECRET),
        jwt_secret_given=text("JWT_SECRET") is not None,
        api_key_hash_secret=text("API_KEY_HASH_SECRET", DEV_API_KEY_HASH_SECRET),
        jwt_jwks=jwks,
        jwt_issuer=text("JWT_ISSUER"),
        jwt_audience=text("JWT_AUDIENCE"),
        jwks_cache_seconds=number("JWKS_CACHE_SECONDS", 300.0, float, minimum=1),
        jwt_max_token_age=number("JWT_MAX_TOKEN_AGE", 86400.0, float, minimum=60),
        cors_allowed_origins=origins("CORS_ALLOWED_ORIGINS"),
        log_level=text("LOG_LEVEL", "INFO"),
        log_format=choice("LOG_FORMAT", ("PLAIN", "JSON")).lower(),
        max_workers=number("MAX_WORKERS", 10, minimum=1),
        gateway_max_workers=number("GATEWAY_MAX_WORKERS", 100, minimum=1),
        gateway_processes=number("GATEWAY_PROCESSES", os.cpu_count() or 1, minimum=1),
        rpc_bulkhead=number("RPC_BULKHEAD", 10, minimum=1),
        app_url=text("APP_URL", f"http://127.0.0.1:{gateway_port}"),
        replicas=number("REPLICAS", 1, minimum=1),
        invitation_sweep_seconds=number("INVITATION_SWEEP_SECONDS", 60.0, float, minimum=0.1),
        email_send_seconds=number("EMAIL_SEND_SECONDS", 2.0, float, minimum=0.1),
        console_request_timeout_seconds=number("CONSOLE_REQUEST_TIMEOUT_SECONDS", 15.0, float, minimum=1),
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
        payments=read_payment_settings(text, number),
        audit_signing_key_file=Path(text("AUDIT_SIGNING_KEY_FILE", data_dir / "audit-signing-key.pem")),
        audit_signing_key_given=text("AUDIT_SIGNING_KEY_FILE") is not None,
        audit_checkpoint_seconds=number("AUDIT_CHECKPOINT_SECONDS", 60.0, float, minimum=0.1),
        rate_limits=read_rate_limits(text),
        webhooks=WebhookSettings(
            allow_private_networks=text("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "false").lower() in ("1", "true", "yes"),
            poll_seconds=number("WEBHOOK_POLL_SECONDS", 1.0, float, minimum=0.05),
            timeout_seconds=number("WEBHOOK_TIMEOUT_SECONDS", 15.0, float, minimum=0.1),
            concurrency=number("WEBHOOK_CONCURRENCY", 20, minimum=1),
            disable_after_seconds=number("WEBHOOK_DISABLE_AFTER_SECONDS", 5 * 24 * 3600.0, float, minimum=1),
            retry_scale=number("WEBHOOK_RETRY_SCALE", 1.0, float, minimum=0.0001),
        ),
        metrics=MetricsSettings(
            enabled=text("METRICS_ENABLED", "true").lower() not in ("0", "false", "no"),
            port=number("METRICS_PORT", 0, minimum=0) or None,
            token=text("METRICS_TOKEN"),
        ),
    )


@dataclass(frozen=True)
class BrokerSettings:
    """RabbitMQ: how many nodes `make run` starts, and how the durable queues are declared (common/queues.py,
    docs/operations.md "A RabbitMQ cluster")."""
    nodes: int                # nodes `make run` starts and clusters (BROKER_NODES); 1: one node, as before
    hosts: int                # nodes AMQP_URI names (several, ";"-separated: a cluster, kombu's failover)
    queue_type: str           # "classic" or "quorum": the durable queues (RPC, events, dead letters)
    delivery_limit: int       # quorum: deliveries of a message before it is dead-lettered


def read_broker_settings(text, number, amqp_uri, nodes):
    hosts = len([part for part in amqp_uri.split(";") if part.strip()])
    # On a cluster the queues are replicated (quorum) unless told otherwise: a classic queue lives on one node.
    queue_type = text("BROKER_QUEUE_TYPE", "quorum" if hosts > 1 else "classic").lower()
    if queue_type not in ("classic", "quorum"):
        raise ConfigError(f"BROKER_QUEUE_TYPE must be classic or quorum, not {text('BROKER_QUEUE_TYPE')!r}")
    return BrokerSettings(nodes=nodes, hosts=hosts, queue_type=queue_type,
                          delivery_limit=number("BROKER_DELIVERY_LIMIT", 20, minimum=1))


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics (common/metrics.py, docs/metrics.md)."""
    enabled: bool             # False: nothing is counted, no metrics are served (the bench's baseline)
    port: int | None          # the port a process serves its metrics on (services); None: none (the gateway
                              # serves them at /metrics on its own port)
    token: str | None         # set: scrapes must send `Authorization: Bearer <token>`; None: open (the default)


@dataclass(frozen=True)
class WebhookSettings:
    """The webhooks service (services/webhooks, SPEC §12)."""
    allow_private_networks: bool   # http and loopback/private addresses allowed: development and tests only
    poll_seconds: float            # how often due deliveries are looked for
    timeout_seconds: float         # a receiver's whole answer must come within this
    concurrency: int               # deliveries in flight at once per process (at most 2 per endpoint)
    disable_after_seconds: float   # an endpoint failing every attempt this long is disabled (5 days)
    retry_scale: float             # the retry schedule multiplied by this (tests shorten it; 1 in production)


@dataclass(frozen=True)
class RateLimitSettings:
    """The gateway's limits (gateway/rate_limits.py), in the `limits` package's notation ("20/minute"),
    counted per gateway process."""
    auth_failures_per_address: str     # refused credentials from one client address
    auth_failures_per_key: str         # wrong secrets for one API key id
    exports_per_organization: str      # downloads of one organization's members or audit trail
    trusted_proxies: tuple             # addresses (or networks) whose X-Forwarded-For names the client


def read_rate_limits(text):
    from ipaddress import ip_network

    from limits import parse

    def limit(name, default):
        value = text(name, default)
        try:
            parse(value)
        except ValueError:
            raise ConfigError(f"{name} must be a rate such as 20/minute or 100 per hour, not {value!r}") from None
        return value

    proxies = []
    for entry in (part.strip() for part in text("TRUSTED_PROXIES", "").split(",")):
        if entry:
            try:
                proxies.append(ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(f"TRUSTED_PROXIES must list IP addresses or networks, not {entry!r}") from None
    return RateLimitSettings(
        auth_failures_per_address=limit("RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS", "60/minute"),
        auth_failures_per_key=limit("RATE_LIMIT_AUTH_FAILURES_PER_KEY", "20/minute"),
        exports_per_organization=limit("RATE_LIMIT_EXPORTS_PER_ORGANIZATION", "10/minute"),
        trusted_proxies=tuple(proxies))


def read_payment_settings(text, number):
    api_key = text("STRIPE_API_KEY")
    if api_key is not None and not api_key.startswith(("sk_", "rk_")):
        raise ConfigError("STRIPE_API_KEY must be a Stripe secret or restricted key (sk_... or rk_...)")
    if api_key is not None and text("STRIPE_WEBHOOK_SECRET") is None:
        # Without it the provider's webhook cannot be verified, and pending payments would wait for the
        # reconciliation job alone.
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be set when STRIPE_API_KEY is")
    return PaymentSettings(
        api_key=api_key or LOCALSTRIPE_API_KEY,
        webhook_secret=text("STRIPE_WEBHOOK_SECRET", DEV_STRIPE_WEBHOOK_SECRET),
        fake=api_key is None,
        localstripe_port=number("LOCALSTRIPE_PORT", 8420, minimum=1),
        localstripe_host=text("LOCALSTRIPE_HOST", "127.0.0.1"),
        credits_per_usd=number("CREDITS_PER_USD", 100, minimum=1),
        reconcile_seconds=number("BILLING_RECONCILE_SECONDS", 30.0, float, minimum=0.1),
    )


def database_url(service_name, environ=None):
    """The service's database; `environ` lets tooling ask on behalf of processes it starts."""
    return settings(environ).database_url(service_name)


def nameko_config(config, gateway=False):
    """Nameko's configuration of every service and of the gateway (their `container.config`), from `config`.
    The gateway has more workers: its requests wait on services, each service's share bounded by its
    bulkhead (common.rpc), so one hung service cannot take every worker."""
    return {
        "AMQP_URI": config.amqp_uri,
        "WEB_SERVER_ADDRESS": config.web_server_address,
        "max_workers": config.gateway_max_workers if gateway else config.max_workers,
        "parent_calls_tracked": 10,
        "LOGGING": logging_config(config.log_level, config.log_format),
    }


def logging_config(level, log_format="plain"):
    """One line per record on stderr, that a client cannot forge; "[request id trace id]" after the
    logger's name: the request the logging worker serves (common.request_ids) and the trace of the span it
    serves (common.tracing), "-" outside one. `log_format` "json": one JSON object per line instead, with
    the same ids and the span id (common/framework/log_format.py). Nameko's, kombu's, amqp's and the
    OpenTelemetry SDK's own loggers at WARNING."""
    broker_outage_once = {"level": "WARNING", "filters": ["broker_outage_once"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # One line per record, client text escaped and emails masked (common/framework/log_format.py).
        "formatters": {"plain": {"class": "common.framework.log_format.SafeFormatter",
                                 "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s]: "
                                           "%(message)s"},
                       "json": {"class": "common.framework.log_format.JsonFormatter"}},
        "filters": {"broker_outage_once": {"()": "common.framework.log_filters.BrokerOutageOnce"},
                    "request_id": {"()": "common.request_ids.RequestIdFilter"},
                    "trace_id": {"()": "common.tracing.TraceIdFilter"},
                    "export_failures_quiet": {"()": "common.tracing.ExportFailuresQuiet"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format,
                                 "filters": ["request_id", "trace_id", "export_failures_quiet"]}},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "nameko": {"level": "WARNING"},
            # One line per broker outage instead of one per retry and a traceback (common/framework/log_filters.py).
            "nameko.messaging": broker_outage_once,
            "kombu.mixins": broker_outage_once,
            # Expected errors (404, 422, ...) are logged by Nameko at WARNING with a traceback: noise.
            "nameko.containers": {"level": "ERROR"},
            "kombu": {"level": "WARNING"},
            "amqp": {"level": "WARNING"},
            # The tracing SDK's own: its export failures said once a minute (common.tracing.ExportFailuresQuiet).
            "opentelemetry": {"level": "WARNING"},
        },
    }
