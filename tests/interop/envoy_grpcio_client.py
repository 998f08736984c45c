"""Python grpcio client for tests/envoy_e2e.rs: calls a Greeter through a real Envoy
whose ext_authz filter asks grpc-auth's ExtAuthzServer (or, for comparison, the same
configuration as an in-process tonic layer), and prints one line per case:

    case=<name> code=<grpc.StatusCode name> message=<reply or status details>

The Rust test runs it against both targets and asserts each line exactly.

Arguments: --target host:port (plaintext HTTP/2), optionally --proto-out <dir>.
Credentials come from the environment (not argv, so they do not show up in `ps`):
ENVOY_E2E_API_KEY, ENVOY_E2E_JWT (scope greeter.read), ENVOY_E2E_JWT_ADMIN (scopes
greeter.read greeter.admin), ENVOY_E2E_BASIC (user:password), ENVOY_E2E_BASIC_WRONG.

Call credentials need a secure channel in grpcio; the local channel credentials
(LOCAL_TCP: plaintext to a loopback peer) allow them, as grpc-auth's `allow_plaintext`
does on the Rust side. Extra metadata (a forged `x-auth-subject`, a second `x-api-key`)
goes through `metadata=`.

The proto is compiled at run time with grpc_tools.protoc into --proto-out, or a
temporary directory.
"""

import argparse
import base64
import os
import shutil
import tempfile

import grpc

RPC_TIMEOUT = 10.0


from cases import run_case  # noqa: E402 (beside this script)
from helloworld_proto import compile_proto  # noqa: E402


class StaticMetadataPlugin(grpc.AuthMetadataPlugin):
    """Sends fixed metadata on every call."""

    def __init__(self, metadata):
        self._metadata = tuple(metadata)

    def __call__(self, context, callback):
        callback(self._metadata, None)


def basic_credentials(user_password):
    encoded = base64.b64encode(user_password.encode()).decode()
    return grpc.metadata_call_credentials(
        StaticMetadataPlugin([("authorization", f"Basic {encoded}")])
    )


def api_key_credentials(key):
    return grpc.metadata_call_credentials(StaticMetadataPlugin([("x-api-key", key)]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument(
        "--proto-out",
        help="an empty directory for the generated modules, left in place"
        " (default: a temporary directory, removed on exit)",
    )
    args = parser.parse_args()

    api_key = os.environ["ENVOY_E2E_API_KEY"]
    jwt = os.environ["ENVOY_E2E_JWT"]
    jwt_admin = os.environ["ENVOY_E2E_JWT_ADMIN"]
    basic = os.environ["ENVOY_E2E_BASIC"]
    basic_wrong = os.environ["ENVOY_E2E_BASIC_WRONG"]

    out_dir = args.proto_out or tempfile.mkdtemp(prefix="grpc-auth-envoy-client-")
    try:
        compile_proto(out_dir)
        import helloworld_pb2
        import helloworld_pb2_grpc

        local = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        # Loopback only: never through an http_proxy from the environment.
        options = [("grpc.enable_http_proxy", 0)]
        with grpc.secure_channel(args.target, local, options=options) as channel:
            stub = helloworld_pb2_grpc.GreeterStub(channel)

            def hello(creds=None, admin=False, metadata=None):
                method = stub.SayHelloAdmin if admin else stub.SayHello
                kwargs = {"timeout": RPC_TIMEOUT}
                if creds is not None:
                    kwargs["credentials"] = creds
                if metadata is not None:
                    kwargs["metadata"] = metadata
                return lambda: method(helloworld_pb2.HelloRequest(name="py"), **kwargs)

            run_case("api_key", hello(api_key_credentials(api_key)))
            run_case("api_key_wrong", hello(api_key_credentials("not-a-key")))
            # Two entries: Envoy joins them into one `k,k` value.
            run_case(
                "api_key_twice",
                hello(metadata=[("x-api-key", api_key), ("x-api-key", api_key)]),
            )
            run_case("jwt", hello(grpc.access_token_call_credentials(jwt)))
            run_case(
                "jwt_admin",
                hello(grpc.access_token_call_credentials(jwt_admin), admin=True),
            )
            run_case(
                "missing_scope",
                hello(grpc.access_token_call_credentials(jwt), admin=True),
            )
            run_case("basic", hello(basic_credentials(basic)))
            run_case("basic_wrong", hello(basic_credentials(basic_wrong)))
            run_case("no_credentials", hello())
            # A forged principal never reaches the upstream: the one the credentials
            # name does.
            run_case(
                "forged_header",
                hello(
                    api_key_credentials(api_key),
                    metadata=[
                        ("x-auth-subject", "evil"),
                        ("x-auth-scheme", "evil"),
                        ("x-auth-scopes", "greeter.admin"),
                    ],
                ),
            )
            # ... nor does a forged scope open a scoped method.
            run_case(
                "forged_scope",
                hello(
                    grpc.access_token_call_credentials(jwt),
                    admin=True,
                    metadata=[("x-auth-scopes", "greeter.admin")],
                ),
            )
    finally:
        if not args.proto_out:
            shutil.rmtree(out_dir, ignore_errors=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
