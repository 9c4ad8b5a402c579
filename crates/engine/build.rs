//! Compiles `crates/berth-init` (no dependencies) into a static executable that the engine
//! embeds and bind-mounts into `--init` containers: statically linked so that it runs in images
//! without a libc. rustc is called directly (not cargo) so that the flags apply to it alone.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let src = manifest.join("../berth-init/src");
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").unwrap_or_default();
    let status = Command::new(rustc)
        .arg(src.join("main.rs"))
        .args([
            "--edition",
            "2024",
            "--crate-name",
            "berth_init",
            "--crate-type",
            "bin",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static",
        ])
        .arg("-o")
        .arg(out.join("berth-init"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("compiling berth-init failed: {s}"),
        Err(e) => panic!("running rustc for berth-init: {e}"),
    }
}
