//! Runs the Python package's pytest suite (`bindings/python/tests`) against the freshly
//! built `libimpp.so`, so `cargo test` covers the Python binding too. Needs `pytest`
//! (`python3 -m pip install pytest`; CI installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn python_package_tests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .to_path_buf();
    // `cargo test` builds only the rlib for integration tests: bring the shared library up to
    // date (a no-op when it is current).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--lib", "--quiet"]).current_dir(&root);
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    assert!(
        build.status().expect("run cargo build").success(),
        "cargo build --lib failed"
    );
    let library = profile.join("libimpp.so");
    assert!(library.exists(), "{} is missing", library.display());

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_pytest = Command::new(&python)
        .args(["-c", "import pytest"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_pytest,
        "pytest is required for the Python binding tests: {python} -m pip install pytest"
    );
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "bindings/python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(&root)
        .env("IMPP_LIBRARY", &library)
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pytest failed:\n{text}");
    assert!(text.contains(" passed"), "pytest ran no test:\n{text}");
    println!("{}", text.lines().last().unwrap_or_default());
}
