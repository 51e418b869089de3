"""localstripe, the stateful fake Stripe server from PyPI, as `make run` and the tests start it: the payment
provider the billing service talks to through Stripe's own SDK when no STRIPE_API_KEY is set.

    python -m devtools.localstripe PORT STATE_FILE WEBHOOK_URL WEBHOOK_SECRET [HOST]

Three things differ from its own `localstripe` command, each an override of localstripe 1.15.10 internals
(tests/unit/framework/test_upstream.py fingerprints them, so an upgrade that changes them fails):
- it listens on 127.0.0.1 only (the command binds every interface), like the project's RabbitMQ node
  (HOST, in a container of docker-compose.yml: 0.0.0.0);
- it keeps its state in STATE_FILE, under the system's DATA_DIR (the command pickles it to
  /tmp/localstripe.pickle, one file shared by every instance on the machine: two test runs, or a test run
  and `make run`, would read each other's customers);
- it sends its webhooks to the gateway's `POST /v1/billing/stripe/webhook`, signed with WEBHOOK_SECRET,
  registered at every start (the command keeps registrations in memory only, so a restart forgot them).
"""
import logging
import pickle
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources, server, webhooks

WEBHOOK_NAME = "platform"


def keep_state_in(path):
    """Make localstripe's store load from and save to `path` instead of /tmp/localstripe.pickle."""
    path = Path(path)

    def try_load_from_disk(store):
        try:
            with open(path, "rb") as state:
                saved = pickle.load(state)
        except (FileNotFoundError, EOFError):
            return
        store.clear()
        dict.update(store, saved)          # not the store's own update: it would save on every item

    def dump_to_disk(store):
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as state:
            pickle.dump(dict(store), state, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(path)               # a crash mid-write leaves the last whole state

    resources.Store.try_load_from_disk = try_load_from_disk
    resources.Store.dump_to_disk = dump_to_disk


def main(port, state_file, webhook_url, webhook_secret, host="127.0.0.1"):
    keep_state_in(state_file)
    resources.store.try_load_from_disk()
    webhooks.register_webhook(WEBHOOK_NAME, webhook_url, webhook_secret, None)
    logging.basicConfig(level=logging.WARNING)
    print(f"localstripe (a fake Stripe) on {host}:{port}, state in {state_file}", flush=True)
    web.run_app(server.app, host=host, port=int(port), access_log=None, print=None)


if __name__ == "__main__":
    main(*sys.argv[1:6])
