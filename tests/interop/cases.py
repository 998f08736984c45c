"""The report the Python gRPC clients print, one line per case, which the Rust tests
assert exactly:

    case=<name> code=<grpc.StatusCode name> message=<reply or status details>
"""

import grpc


def one_line(text):
    return str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def report(name, code, message):
    print(f"case={name} code={code} message={one_line(message)}", flush=True)


def run_case(name, call):
    """Runs `call()` (returns a HelloReply) and reports its outcome."""
    try:
        reply = call()
    except grpc.RpcError as e:
        report(name, e.code().name, e.details())
    except Exception as e:  # anything else is a bug in the test: make it visible
        report(name, "EXCEPTION", repr(e))
    else:
        report(name, grpc.StatusCode.OK.name, reply.message)
