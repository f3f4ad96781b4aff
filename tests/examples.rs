//! The Rust example (`examples/engine.rs`) keeps building and running: `cargo test` builds
//! examples, and this runs the engine one and checks what it prints. (The C examples in
//! `examples/c/` are run by `tests/c_api.rs`, the Python ones in `examples/python/` by
//! `bindings/python/tests/test_examples.py`.)

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn rust_engine_example_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "--example", "engine"])
        .current_dir(&root);
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let output = cmd.output().expect("run cargo run --example engine");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the engine example failed ({}):\n{out}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "authorization requested  sub=",
        "sip:bob@example.test sees phone=open",
        "publication expired      sip:alice@example.test",
        "active subscriptions: 1, publications: 0",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}
