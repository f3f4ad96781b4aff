//! Runs the Python package's pytest suite (`bindings/python/tests`) against the freshly
//! built `libimpp.so`, so `cargo test` covers the Python binding too, including
//! `mypy --strict` over the package (`test_typing.py`, required here through
//! `IMPP_REQUIRE_MYPY`, so a type error fails `cargo test`). Needs `pytest` and `mypy`
//! (`python3 -m pip install pytest mypy`; CI installs them).

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
    for module in ["pytest", "mypy"] {
        let found = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{module} is required for the Python binding tests: {python} -m pip install pytest mypy"
        );
    }
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
        .env("IMPP_REQUIRE_MYPY", "1")
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
