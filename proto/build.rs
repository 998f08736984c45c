//! Compiles the protos with the pure-Rust `protox`, so no system `protoc` is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // (files, include directory): Tyk's protos import each other by bare file name.
    let sets: [(&[&str], &str); 2] = [
        (&["helloworld.proto"], "."),
        (&["coprocess_object.proto"], "tyk"),
    ];
    for (files, include) in sets {
        for f in files {
            println!("cargo:rerun-if-changed={include}/{f}");
        }
        let fds = protox::compile(files, [include])?;
        tonic_prost_build::configure().compile_fds(fds)?;
    }
    println!("cargo:rerun-if-changed=tyk");
    Ok(())
}
