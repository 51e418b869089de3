"""Where the webhooks service may send (SPEC §12): https only, and never to an address inside the platform's
network: loopback, private, link-local (cloud metadata at 169.254.169.254 included), shared, multicast,
reserved or unspecified addresses; any address that is not globally routable. WEBHOOKS_ALLOW_PRIVATE_NETWORKS
lifts both rules, for development and tests.

The address is checked on what the name resolves to when the request is sent, not only when the endpoint
is saved, and the connection goes to that very address (the Host header and TLS name stay the URL's): a
name that resolved to a public address at saving and to 127.0.0.1 now (DNS rebinding) is refused, and a
second resolution cannot slip another address in between the check and the connection. No redirect is
followed; the answer's body is read up to READ_LIMIT bytes; the whole exchange is bounded by the timeout.
"""
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

from common.contracts.webhooks import URL_MAX_LENGTH

READ_LIMIT = 4096


class EgressRefused(ValueError):
    """The URL or the address it resolves to may not be sent to; `code` says why."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str          # path and query, as sent


def parse_url(url, allow_private):
    """The URL's parts, or EgressRefused (invalid_url, https_required)."""
    if not isinstance(url, str) or len(url) > URL_MAX_LENGTH or not url.isprintable() or " " in url:
        raise EgressRefused(f"url must be an absolute https URL of at most {URL_MAX_LENGTH} characters.",
                            "invalid_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EgressRefused("url is not a valid URL.", "invalid_url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise EgressRefused("url must be an absolute https URL.", "invalid_url")
    if parts.scheme != "https" and not allow_private:
        raise EgressRefused("url must use https.", "https_required")
    if parts.username or parts.password:
        raise EgressRefused("url must not carry a user name or password.", "invalid_url")
    default_port = 443 if parts.scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or default_port, path)


def allowed_address(address):
    """True for a globally routable unicast address (an IPv4-mapped IPv6 address is judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(target, allow_private):
    """The addresses to connect to for `target` (the first one is used), each checked; EgressRefused
    (unresolvable_host, private_address) otherwise."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EgressRefused(f"url's host {target.host!r} does not resolve.", "unresolvable_host") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise EgressRefused(f"url's host {target.host!r} does not resolve.", "unresolvable_host")
    if not allow_private:
        refused = [a for a in addresses if not allowed_address(a)]
        if refused:
            raise EgressRefused(f"url's host resolves to {refused[0]}, an address inside a private network "
                                "(loopback, private, link-local or metadata); webhooks go to public addresses.",
                                "private_address")
    return addresses


def check_url(url, allow_private):
    """What saving an endpoint checks: the URL's shape and, now, where it points."""
    target = parse_url(url, allow_private)
    resolve(target, allow_private)
    return url


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: bytes


def post(url, body, headers, timeout, allow_private):
    """POST `body` to `url` on the checked address: the receiver's Answer, or EgressRefused, or an
    urllib3 / OSError for a connection that failed or timed out."""
    target = parse_url(url, allow_private)
    address = resolve(target, allow_private)[0]
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    timeout = urllib3.Timeout(total=timeout)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(address, target.port, server_hostname=target.host,
                                           assert_hostname=target.host, timeout=timeout, retries=False,
                                           maxsize=1)
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers=dict(headers, Host=host_header),
                                redirect=False, preload_content=False, retries=False)
        try:
            data = response.read(READ_LIMIT)
        finally:
            response.release_conn()
        return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, data)
    finally:
        pool.close()
