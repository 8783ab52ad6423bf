fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "kahuna/v1/common.proto",
        "kahuna/v1/kv.proto",
        "kahuna/v1/cluster.proto",
        "kahuna/v1/lock.proto",
        "kahuna/v1/sequence.proto",
        "kahuna/v1/ratelimit.proto",
        "kahuna/v1/peer.proto",
        "kahuna/v1/maintenance.proto",
    ];
    tonic_prost_build::configure().compile_protos(&protos, &["."])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
