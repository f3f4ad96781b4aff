//! Runs the Python package's pytest suite (`bindings/python/tests`) against the freshly
//! built `libimpp.so`, so `cargo test` covers the Python binding too, including
//! `mypy --strict` over the package (`test_typing.py`, required here through
//! `IMPP_REQUIRE_MYPY`, so a type error fails `cargo test`). Needs `pytest` and `mypy`
//! (`python3 -m pip install pytest mypy`; CI installs them). The SIP tests' TLS certificate
//! is made here (rcgen) and passed in `IMPP_TEST_TLS_CERT`, `_KEY` and `_CA`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::certs::TestCa;

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

    // TLS files for the SIP tests (`test_sip.py`): Python's standard library cannot make
    // certificates, so a test CA and a certificate it issued for example.test (and
    // 127.0.0.1) are written here, in PEM, and named in the environment.
    let tls = profile.join("python-tests").join("tls");
    std::fs::create_dir_all(&tls).expect("create the TLS dir");
    let ca = TestCa::new("libimpp Python test CA");
    let (cert, key) = ca.issue(&["example.test"]).write(&tls, "server");
    let ca_path = tls.join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).expect("write ca.pem");

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
        .env("IMPP_TEST_TLS_CERT", &cert)
        .env("IMPP_TEST_TLS_KEY", &key)
        .env("IMPP_TEST_TLS_CA", &ca_path)
        .env("IMPP_REQUIRE_TLS_FILES", "1")
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
