"""A webhook receiver for the tests and the benchmarks: a real HTTP server on loopback that records every request
what the test scripts (statuses in order, then 200), and can be taken down and brought back."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


class Receiver:
    def __init__(self, port=0):
        self.received = []              # (headers as a dict, body text)
        self.paths = []                 # the path (and query) of each
        self.times = []                 # when each arrived (time.perf_counter())
        self.script = []                # statuses (or (status, headers)) answered in order, then 200
        self.lock = threading.Lock()
        self.port = port
        self.server = None
        self.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.paths.append(self.path)
                    receiver.times.append(time.perf_counter())
                    answer = receiver.script.pop(0) if receiver.script else 200
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        # Polled often, so that stop (shutdown waits for the loop's next poll) is quick.
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def messages(self):
        """The bodies received, parsed."""
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def verified(self, secret):
        """Every request verified with the standardwebhooks library and `secret` (raises if one fails)."""
        with self.lock:
            return [Webhook(secret).verify(body, headers) for headers, body in self.received]
