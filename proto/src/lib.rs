//! Generated gRPC code for grpc-auth's examples, tests and benches.
//!
//! The workspace's lints hold for this crate; only the generated modules are exempt.

/// The helloworld Greeter.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
pub mod helloworld {
    tonic::include_proto!("helloworld");
}

/// Tyk Gateway's coprocess protocol (`coprocess.Dispatcher`), for the Tyk plugin example.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]
pub mod coprocess {
    tonic::include_proto!("coprocess");
}
