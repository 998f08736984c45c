"""proto/helloworld.proto compiled at run time with grpc_tools.protoc, for the Python
interop scripts beside this file (they import it: `import helloworld_proto`)."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def compile_proto(out_dir):
    """Writes helloworld_pb2 and helloworld_pb2_grpc into out_dir and makes them importable."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            "proto",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            "proto/helloworld.proto",
        ],
        cwd=REPO,
        check=True,
        timeout=60,
    )
    sys.path.insert(0, out_dir)
