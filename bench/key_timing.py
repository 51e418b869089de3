"""Does the time of a refused API key tell whether its id exists? (issue 25: "key checks in constant
time"). Through the running gateway, interleaved, median of each:
- kept ids: wrong secrets for the id of a key the gateway verified a moment ago, against wrong secrets
  for an id no key has (after its first refusal, which the gateway keeps for the minute as it keeps a key);
- first sight: a wrong secret for a key nobody has used (the gateway asks members) against an id no key
  has, a new one each time (the gateway asks members too).
Before the change the first figure was 1.0 ms against 5.5 ms. The failure limits are raised for the
run (gateway/rate_limits.py would answer 429 after 20). Prints figures; asserts nothing.

    .venv/bin/python bench/key_timing.py [--requests 200] [--postgres]
"""
import secrets
import statistics
import time

import requests
from harness import arguments, backend_name, client, running_system  # noqa: E402

UNLIMITED = {"RATE_LIMIT_AUTH_FAILURES_PER_KEY": "1000000/minute",
             "RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS": "1000000/minute"}


def refused_ms(session, url, key):
    started = time.perf_counter()
    status = session.get(url, headers={"Authorization": f"Bearer {key}"}).status_code
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 401, status
    return elapsed


def compare(label, known, unknown):
    a, b = statistics.median(known), statistics.median(unknown)
    print(f"  {label:58s} known id {a:6.2f} ms   unknown id {b:6.2f} ms   ratio {max(a, b) / min(a, b):.2f}")


def main():
    args = arguments("requests", 200, 1)
    with running_system(args.postgres, UNLIMITED) as system:
        owner = client("bench-owner")
        org = owner.post(system.url + "/v1/organizations", json={"name": "Key timing"}).json()["id"]
        url = f"{system.url}/v1/organizations/{org}/credits"

        def new_key():
            answer = owner.post(f"{system.url}/v1/organizations/{org}/api-keys",
                                json={"name": "Runtime", "scopes": ["usage:read"]})
            answer.raise_for_status()
            return answer.json()["key"]

        n = args.requests
        print(f"median of {n} refused requests each, interleaved, sequential, {backend_name(args)}")
        attacker = requests.Session()
        key = new_key()
        requests.get(url, headers={"Authorization": f"Bearer {key}"}).raise_for_status()   # kept now
        known_id, unknown_id = key.split("_")[1], secrets.token_hex(6)
        for _ in range(20):     # warm up both paths
            refused_ms(attacker, url, f"opk_{known_id}_{secrets.token_urlsafe(32)}")
            refused_ms(attacker, url, f"opk_{unknown_id}_{secrets.token_urlsafe(32)}")
        known, unknown = [], []
        for _ in range(n):
            known.append(refused_ms(attacker, url, f"opk_{known_id}_{secrets.token_urlsafe(32)}"))
            unknown.append(refused_ms(attacker, url, f"opk_{unknown_id}_{secrets.token_urlsafe(32)}"))
        compare("kept ids (verified a moment ago / refused a moment ago)", known, unknown)

        unused = [new_key() for _ in range(n)]
        known, unknown = [], []
        for key in unused:
            known.append(refused_ms(attacker, url, f"opk_{key.split('_')[1]}_{secrets.token_urlsafe(32)}"))
            unknown.append(refused_ms(attacker, url, f"opk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"))
        compare("first sight (the gateway asks members about each id)", known, unknown)


if __name__ == "__main__":
    main()
