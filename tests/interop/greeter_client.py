"""Python grpcio client for the interop test tests/interop_python.rs.

Calls the Rust greeter (grpc-auth's layer in front of it) over TLS with every way
grpcio attaches credentials, and prints one line per case:

    case=<name> code=<grpc.StatusCode name> message=<reply or status details>

The Rust test asserts each line exactly. Arguments: --target host:port, --ca <CA PEM
path>, optionally --proto-out <dir>. Credentials come from the environment (not argv,
so they do not show up in `ps`): INTEROP_JWT (scope greeter.read), INTEROP_JWT_ADMIN
(scope greeter.admin), INTEROP_JWT_FORGED (signed with another secret), INTEROP_BASIC
(user:password), INTEROP_API_KEY.

The proto is compiled at run time with grpc_tools.protoc into --proto-out, or a
temporary directory.
"""

import argparse
import base64
import os
import pathlib
import shutil
import tempfile

import grpc

RPC_TIMEOUT = 10.0


from cases import report, run_case  # noqa: E402 (beside this script)
from helloworld_proto import compile_proto  # noqa: E402


class StaticMetadataPlugin(grpc.AuthMetadataPlugin):
    """Sends fixed metadata; records the AuthMetadataContext it was given."""

    def __init__(self, metadata):
        self._metadata = tuple(metadata)
        self.contexts = []

    def __call__(self, context, callback):
        self.contexts.append((context.service_url, context.method_name))
        callback(self._metadata, None)


class BearerPlugin(StaticMetadataPlugin):
    def __init__(self, token):
        super().__init__([("authorization", f"Bearer {token}")])


class BasicPlugin(StaticMetadataPlugin):
    def __init__(self, user_password):
        encoded = base64.b64encode(user_password.encode()).decode()
        super().__init__([("authorization", f"Basic {encoded}")])


class ApiKeyPlugin(StaticMetadataPlugin):
    def __init__(self, key):
        super().__init__([("x-api-key", key)])


class FailingPlugin(grpc.AuthMetadataPlugin):
    """Reports an error through the callback, as a token fetch that failed would."""

    def __call__(self, context, callback):
        callback(None, RuntimeError("token endpoint down"))


class RaisingPlugin(grpc.AuthMetadataPlugin):
    """Raises instead of calling the callback."""

    def __call__(self, context, callback):
        raise RuntimeError("plugin blew up")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument(
        "--proto-out",
        help="an empty directory for the generated modules, left in place"
        " (default: a temporary directory, removed on exit)",
    )
    args = parser.parse_args()

    jwt = os.environ["INTEROP_JWT"]
    jwt_admin = os.environ["INTEROP_JWT_ADMIN"]
    jwt_forged = os.environ["INTEROP_JWT_FORGED"]
    basic = os.environ["INTEROP_BASIC"]
    api_key = os.environ["INTEROP_API_KEY"]

    out_dir = args.proto_out or tempfile.mkdtemp(prefix="grpc-auth-interop-client-")
    try:
        compile_proto(out_dir)
        import helloworld_pb2
        import helloworld_pb2_grpc

        ca = pathlib.Path(args.ca).read_bytes()
        ssl_creds = grpc.ssl_channel_credentials(root_certificates=ca)

        def req(name="py"):
            return helloworld_pb2.HelloRequest(name=name)

        with grpc.secure_channel(args.target, ssl_creds) as channel:
            stub = helloworld_pb2_grpc.GreeterStub(channel)

            def hello(creds=None, admin=False):
                method = stub.SayHelloAdmin if admin else stub.SayHello
                if creds is None:
                    return lambda: method(req(), timeout=RPC_TIMEOUT)
                return lambda: method(req(), timeout=RPC_TIMEOUT, credentials=creds)

            # (a) an AuthMetadataPlugin subclass.
            bearer = BearerPlugin(jwt)
            run_case("plugin_bearer", hello(grpc.metadata_call_credentials(bearer)))
            # What the plugin was told (service_url, method_name).
            if bearer.contexts:
                url, method = bearer.contexts[0]
                report("plugin_context", "OK", f"{url} {method}")
            else:
                report("plugin_context", "EXCEPTION", "plugin never called")
            # (b) access token credentials.
            run_case("access_token", hello(grpc.access_token_call_credentials(jwt)))
            # (c) composite call credentials: x-api-key and authorization both sent;
            # the server's first scheme with a credential present (JWT) wins.
            run_case(
                "composite_call",
                hello(
                    grpc.composite_call_credentials(
                        grpc.metadata_call_credentials(ApiKeyPlugin(api_key)),
                        grpc.metadata_call_credentials(BearerPlugin(jwt)),
                    )
                ),
            )
            # ... and with a plugin adding nothing, the API key alone.
            run_case(
                "composite_call_api_key",
                hello(
                    grpc.composite_call_credentials(
                        grpc.metadata_call_credentials(ApiKeyPlugin(api_key)),
                        grpc.metadata_call_credentials(StaticMetadataPlugin([])),
                    )
                ),
            )
            # (e) per-call Basic.
            run_case(
                "per_call_basic",
                hello(grpc.metadata_call_credentials(BasicPlugin(basic))),
            )
            # (f) no credentials.
            run_case("no_credentials", hello())
            # (g) a token signed with another secret.
            run_case(
                "wrong_token", hello(grpc.access_token_call_credentials(jwt_forged))
            )
            # (h) authenticated, but without the method's scope.
            run_case(
                "missing_scope",
                hello(grpc.access_token_call_credentials(jwt), admin=True),
            )
            run_case(
                "admin_scope",
                hello(grpc.access_token_call_credentials(jwt_admin), admin=True),
            )
            # (i) a plugin that fails: the RPC is never sent.
            run_case(
                "plugin_error",
                hello(grpc.metadata_call_credentials(FailingPlugin())),
            )
            run_case(
                "plugin_raises",
                hello(grpc.metadata_call_credentials(RaisingPlugin())),
            )

        # (d) call credentials bound to the channel.
        channel_creds = grpc.composite_channel_credentials(
            ssl_creds, grpc.metadata_call_credentials(BearerPlugin(jwt_admin))
        )
        with grpc.secure_channel(args.target, channel_creds) as channel:
            stub = helloworld_pb2_grpc.GreeterStub(channel)
            run_case(
                "composite_channel",
                lambda: stub.SayHello(req(), timeout=RPC_TIMEOUT),
            )
            run_case(
                "composite_channel_admin",
                lambda: stub.SayHelloAdmin(req(), timeout=RPC_TIMEOUT),
            )
            # Per-call credentials are added to the channel's: two `authorization`
            # entries reach the server.
            run_case(
                "composite_channel_plus_per_call",
                lambda: stub.SayHello(
                    req(),
                    timeout=RPC_TIMEOUT,
                    credentials=grpc.access_token_call_credentials(jwt),
                ),
            )
    finally:
        if not args.proto_out:
            shutil.rmtree(out_dir, ignore_errors=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
