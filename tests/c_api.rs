//! Builds and runs the C programs in `tests/c/` against the freshly built `libimpp.so`, under
//! AddressSanitizer and UndefinedBehaviorSanitizer, and checks that the generated header
//! compiles cleanly as C11 and C++17 with strict warnings.

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
        .args(["-limpp", "-lm", "-o"])
        .arg(&exe));
    let out = run(Command::new(&exe)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:halt_on_error=1",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"));
    out
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

/// The same C test without sanitizers under valgrind: leaks and invalid accesses across the
/// boundary that ASan's allocator might hide.
#[test]
fn presence_api_under_valgrind() {
    let valgrind = Command::new("valgrind").arg("--version").output();
    assert!(
        valgrind.is_ok_and(|o| o.status.success()),
        "valgrind is required for this test (Debian: apt-get install valgrind)"
    );
    let lib = lib_dir();
    let exe = out_dir().join("presence_test_plain");
    run(Command::new("cc")
        .args(["-std=c11", "-g", "-O0"])
        .args(STRICT)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(root().join("tests/c/presence_test.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-limpp", "-lm", "-o"])
        .arg(&exe));
    let out = run(Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
        ])
        .args(["--show-leak-kinds=definite,indirect", "--quiet"])
        .arg(&exe));
    assert!(out.contains("all checks passed"), "{out}");
}
