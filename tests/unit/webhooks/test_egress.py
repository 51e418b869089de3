"""Where the webhooks service may send (services/webhooks/egress.py): the SSRF rules, on the address a URL
resolves to, when saving and when sending; the development setting lifts them."""
import socket

import pytest

from services.webhooks import egress


@pytest.mark.parametrize("url, code", [
    ("https://127.0.0.1/hook", "private_address"),
    ("https://169.254.169.254/latest/meta-data", "private_address"),
    ("https://10.0.0.1/hook", "private_address"),
    ("https://192.168.1.5/hook", "private_address"),
    ("https://100.64.0.1/hook", "private_address"),            # shared address space (carrier-grade NAT)
    ("https://[::1]/hook", "private_address"),
    ("https://[fd00:ec2::254]/hook", "private_address"),       # a cloud's IPv6 metadata address
    ("https://[::ffff:127.0.0.1]/hook", "private_address"),    # IPv4-mapped loopback
    ("https://0.0.0.0/hook", "private_address"),
    ("https://localhost/hook", "private_address"),             # a name resolving to loopback
    ("http://93.184.216.34/hook", "https_required"),
    ("ftp://example.com/x", "invalid_url"),
    ("https://user:pw@example.com/x", "invalid_url"),
    ("/relative", "invalid_url"),
    ("https://exa mple.com/", "invalid_url"),
    ("https://no-such-host.invalid/hook", "unresolvable_host"),
])
def test_what_is_refused_without_the_development_setting(url, code):
    with pytest.raises(egress.EgressRefused) as refused:
        egress.check_url(url, allow_private=False)
    assert refused.value.code == code


def test_a_public_address_is_allowed_and_the_setting_allows_loopback_and_http():
    assert egress.allowed_address("93.184.216.34") and egress.allowed_address("2606:2800:220:1::248")
    assert egress.check_url("http://127.0.0.1:9/hook", allow_private=True)
    assert egress.check_url("https://localhost/hook", allow_private=True)


def test_the_address_is_checked_again_when_sending_dns_rebinding(monkeypatch):
    """A name that pointed at a public address when the endpoint was saved, and at 127.0.0.1 when the
    delivery is sent, is refused at sending: nothing connects."""
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]])
    monkeypatch.setattr(egress.socket, "getaddrinfo", lambda *args, **kwargs: next(answers))
    assert egress.check_url("https://rebind.example/hook", allow_private=False)
    connected = []
    monkeypatch.setattr(egress.urllib3, "HTTPSConnectionPool", lambda *a, **k: connected.append(a))
    with pytest.raises(egress.EgressRefused) as refused:
        egress.post("https://rebind.example/hook", b"{}", {}, 1, allow_private=False)
    assert refused.value.code == "private_address" and connected == []


def test_the_connection_goes_to_the_checked_address_with_the_urls_host_name(monkeypatch):
    monkeypatch.setattr(egress.socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 8443))])
    made = {}

    class Pool:
        def __init__(self, host, port, **kwargs):
            made.update(host=host, port=port, **kwargs)

        def urlopen(self, method, path, **kwargs):
            made.update(method=method, path=path, headers=kwargs["headers"], redirect=kwargs["redirect"])
            raise OSError("stop here")

        def close(self):
            pass
    monkeypatch.setattr(egress.urllib3, "HTTPSConnectionPool", Pool)
    with pytest.raises(OSError):
        egress.post("https://hooks.example.com:8443/in?x=1", b"{}", {"a": "b"}, 5, allow_private=False)
    assert (made["host"], made["port"], made["server_hostname"], made["assert_hostname"]) == \
        ("93.184.216.34", 8443, "hooks.example.com", "hooks.example.com")
    assert made["path"] == "/in?x=1" and made["headers"]["Host"] == "hooks.example.com:8443"
    assert made["redirect"] is False
