"""pyarrow Flight client for the interop test tests/interop_flight.rs.

Logs in to the Rust Flight server (grpc-auth's TokenExchange in front of it) with
pyarrow's own FlightClient.authenticate_basic_token (Basic on Handshake, the bearer read
from the response headers), then calls DoAction with the returned header, and prints one
line per case:

    case=<name> code=<OK or the pyarrow exception class> message=<result or error text>

The Rust test asserts each line exactly. Arguments: --port, --ca <CA PEM path>. The
password comes from the environment (INTEROP_PASSWORD), not argv.
"""

import argparse
import base64
import os
import sys

import pyarrow.flight as flight

RPC_TIMEOUT = 10.0


def report(name, fn):
    try:
        message = fn()
        code = "OK"
    except flight.FlightError as e:
        code = type(e).__name__
        # pyarrow appends client context after the server's message; keep the first line.
        message = str(e).splitlines()[0]
    print(f"case={name} code={code} message={message}", flush=True)


def whoami(client, options):
    results = list(client.do_action(flight.Action("whoami", b""), options))
    return " | ".join(r.body.to_pybytes().decode() for r in results)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True)
    parser.add_argument("--ca", required=True)
    args = parser.parse_args()
    with open(args.ca, "rb") as f:
        ca = f.read()
    client = flight.FlightClient(f"grpc+tls://localhost:{args.port}", tls_root_certs=ca)
    timeout = flight.FlightCallOptions(timeout=RPC_TIMEOUT)
    password = os.environ["INTEROP_PASSWORD"]

    pair = {}

    def login():
        name, value = client.authenticate_basic_token("grace", password, timeout)
        pair["header"] = (name, value)
        scheme, _, token = value.decode().partition(" ")
        return f"{name.decode()}: {scheme} <{len(token.split('.'))}-part token>"

    report("login", login)

    def with_token():
        options = flight.FlightCallOptions(headers=[pair["header"]], timeout=RPC_TIMEOUT)
        return whoami(client, options)

    report("call_with_token", with_token)
    report("call_without_token", lambda: whoami(client, timeout))

    def basic_on_do_action():
        basic = base64.b64encode(f"grace:{password}".encode())
        options = flight.FlightCallOptions(
            headers=[(b"authorization", b"Basic " + basic)], timeout=RPC_TIMEOUT
        )
        return whoami(client, options)

    report("basic_on_do_action", basic_on_do_action)

    other = flight.FlightClient(f"grpc+tls://localhost:{args.port}", tls_root_certs=ca)
    report(
        "wrong_password",
        lambda: other.authenticate_basic_token("grace", "wrong", timeout),
    )
    print("done", flush=True)


if __name__ == "__main__":
    sys.exit(main())
