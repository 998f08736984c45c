"""A plain HTTP/1.1 upstream for the tests that put a real Envoy in front of it
(tests/support/envoy.rs): it answers every request with 200 and a JSON body describing
what reached it, so a test can assert what Envoy forwarded:

    {"path": "/x?y=1", "method": "GET", "headers": {"host": "...", "x-auth-subject": "ada"}}

Header names are lower-cased; a header that arrives several times has its values joined
with `,`. A request body is read and discarded.

Serves on 127.0.0.1:--port (0: a free port) and prints `PORT <n>` on stdout once it
listens. Stops when its stdin reaches EOF (the test closed it, or went away), on SIGTERM
or SIGINT, or after --max-seconds, whichever comes first.
"""

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    # Keep-alive with Content-Length: Envoy pools its upstream connections.
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length > 0:
            self.rfile.read(length)
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        body = json.dumps(
            {"path": self.path, "method": self.command, "headers": headers}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer
    do_PUT = _answer
    do_DELETE = _answer
    do_PATCH = _answer
    do_HEAD = _answer

    def log_message(self, format, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    done = threading.Event()

    def stop_on_stdin_eof():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        done.set()

    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    threading.Thread(target=stop_on_stdin_eof, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    if not done.wait(timeout=args.max_seconds):
        print(f"stopping after {args.max_seconds}s", file=sys.stderr, flush=True)
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
