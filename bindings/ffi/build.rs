//! Generates the C# P/Invoke declarations from the `extern "C"` functions and
//! `#[repr(C)]` types with csbindgen, into `$OUT_DIR/NativeMethods.g.cs`.
//!
//! The .NET package compiles the checked-in copy, `dotnet/src/NativeMethods.g.cs`. It is
//! written here when missing or when `KAHUNA_REGENERATE_BINDINGS=1`; the test
//! `generated_csharp_is_fresh` fails when it differs from what this build generated.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=src/types.rs");
    println!("cargo:rerun-if-env-changed=KAHUNA_REGENERATE_BINDINGS");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let generated = out_dir.join("NativeMethods.g.cs");
    csbindgen::Builder::default()
        .input_extern_file("src/lib.rs")
        .input_extern_file("src/types.rs")
        .csharp_dll_name("kahuna_ffi")
        .csharp_namespace("Kahuna.Client.Native")
        .csharp_class_name("NativeMethods")
        .csharp_class_accessibility("internal")
        // Mono's mcs has no C# 9 function pointers: callbacks are delegates.
        .csharp_use_function_pointer(false)
        // ... nor nint/nuint: sizes are UIntPtr.
        .csharp_use_nint_types(false)
        .csharp_generate_const_filter(|name| name.starts_with("KAHUNA_STATUS_"))
        .generate_csharp_file(&generated)
        .expect("csbindgen failed to generate NativeMethods.g.cs");
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let checked_in = manifest.join("../../dotnet/src/NativeMethods.g.cs");
    if !checked_in.exists() || env::var("KAHUNA_REGENERATE_BINDINGS").as_deref() == Ok("1") {
        std::fs::copy(&generated, &checked_in).expect("cannot write dotnet/src/NativeMethods.g.cs");
    }
}
