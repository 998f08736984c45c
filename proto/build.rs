//! Compiles the protos with the pure-Rust `protox`, so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["helloworld.proto"];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["."])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
