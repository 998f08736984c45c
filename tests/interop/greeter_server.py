"""Python grpcio greeter server for the interop test tests/interop_python_client.rs.

A `grpc.ServerInterceptor` authenticates every call from its `authorization` metadata:
`Bearer <JWT>` (HS256, verified with PyJWT against --jwt-secret, --issuer, --audience)
or `Basic base64(user:password)` (--basic user:password); anything else is aborted with
UNAUTHENTICATED. SayHelloAdmin also needs the scope `greeter.admin` (PERMISSION_DENIED).
Replies "Hello <name>, authenticated as <subject> via <jwt|basic>".

Serves TLS (--cert, --key) on 127.0.0.1:0 and prints `PORT=<n>` on stdout once it
listens. Stops when its stdin reaches EOF (the test closed it, or went away) or after
--max-seconds, whichever comes first.

The proto is compiled at run time with grpc_tools.protoc into --proto-out, or a
temporary directory.
"""

import argparse
import base64
import binascii
import os
import pathlib
import shutil
import sys
import tempfile
import threading
from concurrent import futures

import grpc
import jwt

ADMIN_METHOD = "/helloworld.Greeter/SayHelloAdmin"
ADMIN_SCOPE = "greeter.admin"


from helloworld_proto import compile_proto  # noqa: E402 (beside this script)


class AuthFailure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class Principal:
    def __init__(self, subject, scheme, scopes=()):
        self.subject = subject
        self.scheme = scheme
        self.scopes = frozenset(scopes)


# The principal of the call the current worker thread is serving (set by the
# interceptor's wrapper around the handler, which runs on that thread).
_current = threading.local()


class AuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, secret, issuer, audience, users):
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._users = users

    def authenticate(self, metadata):
        values = [v for k, v in metadata if k == "authorization"]
        if not values:
            raise AuthFailure(
                grpc.StatusCode.UNAUTHENTICATED, "missing authorization metadata"
            )
        if len(values) > 1:
            raise AuthFailure(
                grpc.StatusCode.UNAUTHENTICATED,
                "multiple authorization metadata entries",
            )
        scheme, _, credentials = values[0].partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and credentials:
            try:
                claims = jwt.decode(
                    credentials,
                    self._secret,
                    algorithms=["HS256"],
                    issuer=self._issuer,
                    audience=self._audience,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidTokenError as e:
                raise AuthFailure(
                    grpc.StatusCode.UNAUTHENTICATED, f"invalid bearer token: {e}"
                ) from None
            scope = claims.get("scope", "")
            scopes = scope.split() if isinstance(scope, str) else []
            return Principal(claims["sub"], "jwt", scopes)
        if scheme == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, sep, password = decoded.partition(":")
            if sep and self._users.get(user) == password:
                return Principal(user, "basic")
            raise AuthFailure(
                grpc.StatusCode.UNAUTHENTICATED, "invalid username or password"
            )
        raise AuthFailure(
            grpc.StatusCode.UNAUTHENTICATED, "unsupported authorization scheme"
        )

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        try:
            principal = self.authenticate(handler_call_details.invocation_metadata)
            if (
                handler_call_details.method == ADMIN_METHOD
                and ADMIN_SCOPE not in principal.scopes
            ):
                raise AuthFailure(
                    grpc.StatusCode.PERMISSION_DENIED, f"missing scope: {ADMIN_SCOPE}"
                )
        except AuthFailure as failure:
            # `failure` is unbound when the except block ends: keep its fields.
            code, message = failure.code, failure.message

            def deny(request, context):
                context.abort(code, message)

            return grpc.unary_unary_rpc_method_handler(
                deny,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        behaviour = handler.unary_unary

        def authenticated(request, context):
            _current.principal = principal
            try:
                return behaviour(request, context)
            finally:
                _current.principal = None

        return grpc.unary_unary_rpc_method_handler(
            authenticated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--basic", action="append", default=[], help="user:password")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument(
        "--proto-out",
        help="an empty directory for the generated modules, left in place"
        " (default: a temporary directory, removed on exit)",
    )
    args = parser.parse_args()
    users = dict(u.split(":", 1) for u in args.basic)

    out_dir = args.proto_out or tempfile.mkdtemp(prefix="grpc-auth-interop-server-")
    try:
        compile_proto(out_dir)
        import helloworld_pb2
        import helloworld_pb2_grpc

        def greeting(request):
            p = _current.principal
            return f"Hello {request.name}, authenticated as {p.subject} via {p.scheme}"

        class Greeter(helloworld_pb2_grpc.GreeterServicer):
            def SayHello(self, request, context):
                return helloworld_pb2.HelloReply(message=greeting(request))

            def SayHelloAdmin(self, request, context):
                return helloworld_pb2.HelloReply(message=f"[admin] {greeting(request)}")

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            interceptors=[
                AuthInterceptor(args.jwt_secret, args.issuer, args.audience, users)
            ],
        )
        helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
        creds = grpc.ssl_server_credentials(
            [
                (
                    pathlib.Path(args.key).read_bytes(),
                    pathlib.Path(args.cert).read_bytes(),
                )
            ]
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
        if port == 0:
            sys.exit("could not bind 127.0.0.1:0")
        server.start()

        def stop_on_stdin_eof():
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read
            # would abort the interpreter's shutdown.
            while os.read(0, 4096):
                pass
            server.stop(grace=0)

        threading.Thread(target=stop_on_stdin_eof, daemon=True).start()
        print(f"PORT={port}", flush=True)
        if server.wait_for_termination(timeout=args.max_seconds):
            print(f"stopping after {args.max_seconds}s", file=sys.stderr, flush=True)
            server.stop(grace=0).wait()
    finally:
        if not args.proto_out:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
