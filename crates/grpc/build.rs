//! Generates the server side of the KurrentDB/EventStoreDB client protocol from the vendored
//! `.proto` files with `protox` (a protobuf compiler in Rust), so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/streams.proto",
        "protos/serverfeatures.proto",
        "protos/gossip.proto",
    ];
    for f in std::fs::read_dir("protos")? {
        println!("cargo:rerun-if-changed={}", f?.path().display());
    }
    let descriptors = protox::compile(files, ["protos"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
