//! Generates the otrd.v1 code with the pure-Rust `protox` compiler, so the build never needs a
//! system `protoc`. The encoded descriptor set is written beside the code for tonic-reflection.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "otrd/v1/otrd.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("otrd_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
