//! Generated gRPC code for grpc-auth's examples, tests and benches.
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The helloworld Greeter.
pub mod helloworld {
    tonic::include_proto!("helloworld");
}

/// Tyk Gateway's coprocess protocol (`coprocess.Dispatcher`), for the Tyk plugin example.
pub mod coprocess {
    tonic::include_proto!("coprocess");
}
