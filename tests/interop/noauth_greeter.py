"""Python grpcio greeter server with no authentication of its own, for the tests that put
a real Envoy in front of it (tests/support/envoy.rs): Envoy's filters (ext_authz asking
grpc-auth, jwt_authn) decide, and this upstream only reports what reached it.

SayHello and SayHelloAdmin both reply

    Hello <name>; x-auth-subject=<..>; x-auth-scheme=<..>; x-auth-scopes=<..>; authorization=<present|absent>

with the values of those request metadata keys as received: `-` when absent, the values
joined with `,` when a key arrives several times. The `authorization` value itself is
never echoed, only whether it arrived.

Serves plaintext HTTP/2 (h2c) on 127.0.0.1:--port (0: a free port) and prints `PORT <n>`
on stdout once it listens. Stops when its stdin reaches EOF (the test closed it, or went
away), on SIGTERM or SIGINT, or after --max-seconds, whichever comes first.

The proto is compiled at run time with grpc_tools.protoc into --proto-out, or a
temporary directory.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from concurrent import futures

import grpc

ECHOED = ("x-auth-subject", "x-auth-scheme", "x-auth-scopes")


from helloworld_proto import compile_proto  # noqa: E402 (beside this script)


def describe(name, metadata):
    """The reply for `name`, listing the echoed metadata as received."""

    def values(key):
        found = [v for k, v in metadata if k == key]
        return ",".join(found) if found else "-"

    parts = [f"Hello {name}"]
    parts += [f"{key}={values(key)}" for key in ECHOED]
    present = any(k == "authorization" for k, _ in metadata)
    parts.append(f"authorization={'present' if present else 'absent'}")
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument(
        "--proto-out",
        help="an empty directory for the generated modules, left in place"
        " (default: a temporary directory, removed on exit)",
    )
    args = parser.parse_args()

    out_dir = args.proto_out or tempfile.mkdtemp(prefix="grpc-auth-noauth-greeter-")
    try:
        compile_proto(out_dir)
        import helloworld_pb2
        import helloworld_pb2_grpc

        class Greeter(helloworld_pb2_grpc.GreeterServicer):
            def SayHello(self, request, context):
                return helloworld_pb2.HelloReply(
                    message=describe(request.name, context.invocation_metadata())
                )

            def SayHelloAdmin(self, request, context):
                return helloworld_pb2.HelloReply(
                    message=describe(request.name, context.invocation_metadata())
                )

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
        port = server.add_insecure_port(f"127.0.0.1:{args.port}")
        if port == 0:
            sys.exit(f"could not bind 127.0.0.1:{args.port}")
        server.start()

        done = threading.Event()

        def stop_on_stdin_eof():
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read
            # would abort the interpreter's shutdown.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            done.set()

        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        threading.Thread(target=stop_on_stdin_eof, daemon=True).start()
        print(f"PORT {port}", flush=True)
        if not done.wait(timeout=args.max_seconds):
            print(f"stopping after {args.max_seconds}s", file=sys.stderr, flush=True)
        server.stop(grace=0).wait()
    finally:
        if not args.proto_out:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
