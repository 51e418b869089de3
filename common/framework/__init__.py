"""Every place the project subclasses, copies or patches an internal of Nameko, kombu or eventlet.

Nameko 2.14.1 is unmaintained (ARCHITECTURE "Known traps"): its versions and those of kombu, amqp,
eventlet and werkzeug are pinned exactly in requirements.txt, and what the project changes inside them
lives here, nowhere else. Each module's docstring names what it overrides, in which upstream version,
and why:

- `rpc`: the RPC entrypoint (nameko.rpc.Rpc: replies that cannot be sent are dropped, the request's
  correlation id and the call's span in the worker's context, deny by default) and its consumer (nameko.rpc.RpcConsumer:
  replies without publisher confirms);
- `signature`: an entrypoint's signature checked against one built once (nameko.extensions.Entrypoint);
- `batch_consume`: `@consume_batch`, a consumer whose worker gets what arrived together
  (nameko.messaging.Consumer);
- `consume`: `@consume`, Nameko's with a span per message consumed (nameko.messaging.Consumer);
- `web`: the HTTP server, WSGI app, protocol and entrypoint (nameko.web.server, nameko.web.handlers,
  eventlet.wsgi), with hooks the gateway (gateway/http.py) fills in, and each request's span;
- `log_filters`: the broker outage logged once (it matches Nameko's and kombu's log messages);
- `broker_state`: whether the broker connection is up, for the metrics (wraps two methods of
  nameko.messaging.QueueConsumer on the class, once per process).

tests/unit/framework/test_upstream.py holds a fingerprint of the installed source of every upstream
method copied, overridden or relied on here, and the pinned versions: an upgrade that changes one fails
that test, naming the override to check again.
"""
