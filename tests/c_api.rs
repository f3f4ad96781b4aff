//! Builds and runs the C programs in `tests/c/` and the C++ wrapper test in `tests/cpp/`
//! against the freshly built `libimpp.so`, under AddressSanitizer and
//! UndefinedBehaviorSanitizer (and every C test once more under valgrind), and checks that
//! the generated header compiles cleanly as C11 and C++17 with strict warnings.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding an up-to-date `libimpp.so`: the profile directory this test binary
/// was built in. `cargo test` builds only the rlib for integration tests, so the shared
/// library is brought up to date here with `cargo build --lib` (a no-op when it is current).
fn lib_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            let dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target profile dir")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--lib", "--quiet"])
                .current_dir(root());
            if dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            run(&mut build);
            assert!(
                dir.join("libimpp.so").exists(),
                "libimpp.so not found in {}",
                dir.display()
            );
            dir
        })
        .clone()
}

fn out_dir() -> PathBuf {
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).expect("create c-tests dir");
    dir
}

fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        output.status
    );
    text
}

const STRICT: &[&str] = &["-Wall", "-Wextra", "-Wpedantic", "-Werror"];

#[test]
fn header_compiles_as_c11_included_twice() {
    let obj = out_dir().join("header_twice_c.o");
    run(Command::new("cc")
        .args(["-std=c11", "-c"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/header_twice.c"))
        .arg("-o")
        .arg(obj));
}

#[test]
fn header_compiles_as_cpp17_included_twice() {
    let obj = out_dir().join("header_twice_cpp.o");
    run(Command::new("c++")
        .args(["-std=c++17", "-x", "c++", "-c"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg(root().join("tests/c/header_twice.c"))
        .arg("-o")
        .arg(obj));
}

/// Compiles `tests/c/<name>.c` with the sanitizers, links it to libimpp.so, runs it, and
/// returns what it printed.
fn sanitized_c_test(name: &str) -> String {
    sanitized_c_program(&root().join(format!("tests/c/{name}.c")), name)
}

fn sanitized_c_program(source: &Path, name: &str) -> String {
    let lib = lib_dir();
    let exe = out_dir().join(name);
    run(Command::new("cc")
        .args(["-std=c11", "-g", "-O1", "-fno-omit-frame-pointer"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(source)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-limpp", "-lm", "-pthread", "-o"])
        .arg(&exe));
    run_sanitized(&exe)
}

fn run_sanitized(exe: &Path) -> String {
    run(Command::new(exe)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:halt_on_error=1",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"))
}

#[test]
fn presence_api_under_sanitizers() {
    let out = sanitized_c_test("presence_test");
    assert!(out.contains("all checks passed"), "{out}");
}

/// The example a newcomer copies from must keep working.
#[test]
fn presence_example_runs() {
    let out = sanitized_c_program(&root().join("examples/presence.c"), "example_presence");
    assert!(
        out.contains("Parsed back: pres:alice@example.test has 2 tuples"),
        "{out}"
    );
    assert!(out.contains("on-the-phone"), "{out}");
}

/// The engine API: a whole flow by polling, the readiness descriptor, callback mode and its
/// threading contract, shutdown with work in flight, bad input.
#[test]
fn engine_api_under_sanitizers() {
    let out = sanitized_c_test("engine_test");
    assert!(out.contains("engine_test: all checks passed"), "{out}");
}

/// The header-only C++ wrapper (`bindings/c/impp.hpp`), built with strict warnings.
#[test]
fn cpp_wrapper_under_sanitizers() {
    let lib = lib_dir();
    let exe = out_dir().join("wrapper_test");
    run(Command::new("c++")
        .args(["-std=c++17", "-g", "-O1", "-fno-omit-frame-pointer"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("bindings/c"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(root().join("tests/cpp/wrapper_test.cpp"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-limpp", "-pthread", "-o"])
        .arg(&exe));
    let out = run_sanitized(&exe);
    assert!(out.contains("wrapper_test: all checks passed"), "{out}");
}

/// Every C test (`tests/c/*_test.c`) once more, without sanitizers, under valgrind: leaks and
/// invalid accesses across the boundary that ASan's allocator might hide.
#[test]
fn c_tests_under_valgrind() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.is_ok_and(|o| o.status.success()),
        "valgrind is required for this test (Debian: apt-get install valgrind)"
    );
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/c"))
        .expect("read tests/c")
        .map(|entry| entry.expect("tests/c entry").file_name())
        .filter_map(|name| {
            name.to_str()?
                .strip_suffix(".c")
                .filter(|n| n.ends_with("_test"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 2,
        "expected at least the presence and engine tests, found {names:?}"
    );
    // One thread per test: valgrind runs a program's threads one at a time anyway.
    let outputs: Vec<(String, String)> = std::thread::scope(|scope| {
        let runs: Vec<_> = names
            .iter()
            .map(|name| scope.spawn(move || (name.clone(), valgrind_c_test(name))))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("valgrind run panicked"))
            .collect()
    });
    for (name, out) in outputs {
        assert!(out.contains(&format!("{name}: all checks passed")), "{out}");
    }
}

fn valgrind_c_test(name: &str) -> String {
    let lib = lib_dir();
    let exe = out_dir().join(format!("{name}_plain"));
    run(Command::new("cc")
        .args(["-std=c11", "-g", "-O0"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(root().join(format!("tests/c/{name}.c")))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-limpp", "-lm", "-pthread", "-o"])
        .arg(&exe));
    run(Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
        ])
        .args(["--show-leak-kinds=definite,indirect", "--quiet"])
        .arg(&exe))
}

/// Watcherinfo, dialog-info, message summary and filter handles: parse, read every field,
/// round-trip, build, filter a presence document, take them from events, and bad input.
#[test]
fn documents_api_under_sanitizers() {
    let out = sanitized_c_test("documents_test");
    assert!(out.contains("documents_test: all checks passed"), "{out}");
}
