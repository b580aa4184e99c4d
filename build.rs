//! Puts the git commit the binary was built from into `repro --version` (REPRO_GIT), so a
//! provenance question ("which code produced this number") has an answer from the binary too.

use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=REPRO_GIT={commit}");
    println!("cargo:rustc-env=REPRO_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=REPRO_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
