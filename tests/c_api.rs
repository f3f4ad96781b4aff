//! Builds and runs the C programs in `tests/c/` and the C++ wrapper test in `tests/cpp/`
//! against the freshly built `libimpp.so`, under AddressSanitizer and
//! UndefinedBehaviorSanitizer (and every C test once more under valgrind), checks that
//! the generated header compiles cleanly as C11 and C++17 with strict warnings, and that the
//! C++ wrapper reaches every function the header declares.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::certs::TestCa;

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

/// The TLS files the C and C++ tests read, as the environment variables that name them: C
/// cannot make certificates, so a test CA and a certificate it issued for `example.test`
/// (and 127.0.0.1) are written here, in PEM, once per run.
fn tls_env() -> &'static [(&'static str, PathBuf)] {
    static FILES: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = out_dir().join("tls");
        std::fs::create_dir_all(&dir).expect("create the TLS dir");
        let ca = TestCa::new("libimpp C test CA");
        let (cert, key) = ca.issue(&["example.test"]).write(&dir, "server");
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, &ca.pem).expect("write ca.pem");
        vec![
            ("IMPP_TEST_TLS_CERT", cert),
            ("IMPP_TEST_TLS_KEY", key),
            ("IMPP_TEST_TLS_CA", ca_path),
        ]
    })
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
        .envs(tls_env().iter().map(|(k, v)| (*k, v)))
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
    let out = sanitized_c_program(&root().join("examples/c/presence.c"), "example_presence");
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

/// Endpoints and instant messages: online delivery with a binary body, offline storage and
/// delivery on login in order, failure reasons, logout, endpoint expiry, bad input.
#[test]
fn messaging_api_under_sanitizers() {
    let out = sanitized_c_test("messaging_test");
    assert!(out.contains("messaging_test: all checks passed"), "{out}");
}

/// The ABI 3 conventions: options handles (defaults, setters, getters, refused values, NULL
/// options as the defaults), one expiry rule (0 is the configured default, never an end),
/// rule lists as snapshots unaffected by later changes, and `_free(NULL)` as a no-op.
#[test]
fn options_and_snapshots_under_sanitizers() {
    let out = sanitized_c_test("options_test");
    assert!(out.contains("options_test: all checks passed"), "{out}");
}

/// Resource lists: built with setters (refused values change nothing), set on an engine,
/// read back one at a time and as a snapshot, expanded through references, refused when they
/// would break a rule between lists, removed.
#[test]
fn lists_api_under_sanitizers() {
    let out = sanitized_c_test("lists_test");
    assert!(out.contains("lists_test: all checks passed"), "{out}");
}

/// The SIP stack started over an engine: configuration errors, OPTIONS and a digest
/// challenge on loopback, and a MESSAGE over SIP reaching the application's polling.
#[test]
fn subscriptions_api_under_sanitizers() {
    let out = sanitized_c_test("subscriptions_test");
    assert!(
        out.contains("subscriptions_test: all checks passed"),
        "{out}"
    );
}

#[test]
fn sip_api_under_sanitizers() {
    let out = sanitized_c_test("sip_test");
    assert!(out.contains("sip_test: all checks passed"), "{out}");
}

/// The SIP stack's TLS, connection, rate and digest settings from C: a TLS listener on
/// certificate files the harness made (`tls_env`), a bad file refused with its name and
/// nothing changed, every setter's bad values refused, and the counters of
/// `impp_sip_stat` moving (a rate-limited `503`, a connection over the per-address bound,
/// a TLS handshake that never came); trust between domains (a MESSAGE "from" another
/// domain's user refused `403` and counted unless its address is a listed peer or
/// federation is open; a peer for an owned domain or a publisher for another refused at
/// start).
#[test]
fn sip_settings_and_counters_under_sanitizers() {
    let out = sanitized_c_test("sip_settings_test");
    assert!(
        out.contains("sip_settings_test: all checks passed"),
        "{out}"
    );
}

/// The list client from C: a stack subscribes to a list an account declares as it starts
/// (served by a second engine and stack in the same program), the application's watcher of
/// one resource is told its state, the list is ended and made again at run time, and bad
/// arguments (NULL, not UTF-8, malformed URIs, unknown or document-less packages, an unknown
/// account, a list of an owned domain) are refused and change nothing.
#[test]
fn list_client_under_sanitizers() {
    let out = sanitized_c_test("list_client_test");
    assert!(out.contains("list_client_test: all checks passed"), "{out}");
}

/// Presence at the edge (issue 19): the account options of a serving device (serve,
/// keep-alive, XCAP root) with their defaults and bad input, and the REGISTER of a stack with
/// such an account, read by the C program on its own loopback socket: the feature tag
/// `events="presence"`, the RFC 5626 instance and reg-id, `Supported: outbound`.
#[test]
fn edge_account_under_sanitizers() {
    let out = sanitized_c_test("edge_test");
    assert!(out.contains("edge_test: all checks passed"), "{out}");
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
        .arg(&exe)
        .envs(tls_env().iter().map(|(k, v)| (*k, v))))
}

/// The C buddy-list example (`examples/c/watch_buddies.c`) keeps building and running,
/// under the sanitizers like the tests.
#[test]
fn watch_buddies_example_runs() {
    let out = sanitized_c_program(
        &root().join("examples/c/watch_buddies.c"),
        "example_watch_buddies",
    );
    for expected in [
        "sip:bob@example.test asks sip:dave@example.test for consent: allowed",
        "sip:alice@example.test: open (at my desk)",
        "sip:dave@example.test: closed (on holiday)",
        "sip:alice@example.test: closed (in a meeting)",
        "A minute later:\n  sip:carol@example.test: offline (nothing published)\n",
        "Bob watches 3 buddies; active subscriptions: 3",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// The C publishing example (`examples/c/publish_status.c`) keeps building and running,
/// under the sanitizers like the tests.
#[test]
fn publish_status_example_runs() {
    let out = sanitized_c_program(
        &root().join("examples/c/publish_status.c"),
        "example_publish_status",
    );
    for expected in [
        "Bob sees: open \"available\"",
        "Bob sees: open, on-the-phone \"on a call\"",
        "Bob sees: closed, away \"back soon\"",
        "still published: 1 publication(s)",
        "Alice signs off\n    Bob sees: nothing published\n",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// `scripts/install.sh` into a prefix under the target directory, then a C program built the
/// way a user of the installed library builds it: `cc $(pkg-config --cflags --libs impp)`.
#[test]
fn installed_library_builds_with_pkg_config() {
    let pkg_config = Command::new("pkg-config").arg("--version").output();
    assert!(
        pkg_config.is_ok_and(|o| o.status.success()),
        "pkg-config is required for this test (Debian: apt-get install pkg-config)"
    );
    let lib = lib_dir();
    let release = lib.file_name().is_some_and(|n| n == "release");
    let prefix = out_dir().join("install-prefix");
    // Start from nothing, so a file the script stopped installing cannot linger.
    let _ = std::fs::remove_dir_all(&prefix);
    let target_dir = lib.parent().expect("target dir");
    run(Command::new("bash")
        .arg(root().join("scripts/install.sh"))
        .arg(&prefix)
        .arg(if release { "--release" } else { "--debug" })
        .env("CARGO_TARGET_DIR", target_dir));
    for file in [
        "lib/libimpp.so",
        "lib/libimpp.a",
        "lib/pkgconfig/impp.pc",
        "include/impp.h",
        "include/impp.hpp",
    ] {
        assert!(prefix.join(file).is_file(), "{file} was not installed");
    }

    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |args: &[&str]| {
        run(Command::new("pkg-config")
            .args(args)
            .arg("impp")
            .env("PKG_CONFIG_PATH", &pc_path))
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(pkg(&["--modversion"]).trim(), version);
    let flags = pkg(&["--cflags", "--libs"]);
    let exe = out_dir().join("pkgconfig_smoke");
    run(Command::new("cc")
        .arg("-std=c11")
        .args(STRICT)
        .arg(root().join("tests/c/pkgconfig_smoke.c"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe));
    let out = run(Command::new(&exe).env("LD_LIBRARY_PATH", prefix.join("lib")));
    assert!(
        out.contains(&format!("pkgconfig_smoke: libimpp {version}, ")) && out.contains(", ok"),
        "{out}"
    );
}

/// The log callback: lines from several library threads, levels, `free_user_data` exactly
/// once (also when replaced from inside the callback), bad input.
#[test]
fn log_callback_under_sanitizers() {
    let out = sanitized_c_test("log_test");
    assert!(out.contains("log_test: all checks passed"), "{out}");
}

/// Watcherinfo, dialog-info, message summary and filter handles: parse, read every field,
/// round-trip, build, filter a presence document, take them from events, and bad input.
#[test]
fn documents_api_under_sanitizers() {
    let out = sanitized_c_test("documents_test");
    assert!(out.contains("documents_test: all checks passed"), "{out}");
}

/// The README's C quick start compiles as written (strict warnings, sanitizers) and does what
/// it says: the watcher is asked about, approved, and sees the published document.
#[test]
fn readme_c_quick_start_runs() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme.find("```c\n").expect("a ```c block in README.md") + 5;
    let end = start + readme[start..].find("```").expect("end of the ```c block");
    let source = out_dir().join("readme_quick_start.c");
    std::fs::write(&source, &readme[start..end]).expect("write the quick start");
    let out = sanitized_c_program(&source, "readme_quick_start");
    assert!(
        out.contains("sip:bob@example.test asks to watch sip:alice@example.test"),
        "{out}"
    );
    assert!(
        out.contains("sip:bob@example.test is told: active"),
        "{out}"
    );
    assert!(out.contains("<basic>open</basic>"), "{out}");
}

/// Every function of `include/impp.h` is reachable from the C++ wrapper: its name is used in
/// the code of `bindings/c/impp.hpp` (a mention in a comment or a string does not count). A
/// function added to the C API without its C++ wrapper fails here, by name.
#[test]
fn cpp_wrapper_reaches_every_c_function() {
    let header = std::fs::read_to_string(root().join("include/impp.h")).expect("include/impp.h");
    let wrapper =
        std::fs::read_to_string(root().join("bindings/c/impp.hpp")).expect("bindings/c/impp.hpp");
    let functions = declared_functions(&header);
    // A parser that found nothing would pass vacuously.
    assert!(
        functions.len() >= 200
            && functions.contains("impp_engine_new")
            && functions.contains("impp_abi_version"),
        "found only {} functions in include/impp.h: {functions:?}",
        functions.len()
    );
    let used: BTreeSet<String> = code_tokens(&wrapper)
        .into_iter()
        .map(|(ident, _)| ident)
        .collect();
    let missing: Vec<&String> = functions.iter().filter(|f| !used.contains(*f)).collect();
    assert!(
        missing.is_empty(),
        "{} of the {} functions of include/impp.h are not reachable from bindings/c/impp.hpp \
         (wrap them, then tests/cpp/wrapper_test.cpp exercises the wrapper):\n{missing:#?}",
        missing.len(),
        functions.len()
    );
}

/// The checker itself: declarations are found, and names in comments, strings, character
/// literals, preprocessor lines and function pointer typedefs are not taken for functions.
#[test]
fn coverage_checker_reads_code_not_comments() {
    let header = "/* impp_in_comment(void); */\n#define IMPP_X(a) impp_macro(a)\n\
                  typedef void (*impp_cb)(void *user_data);\n\
                  enum impp_status impp_thing_new(struct impp_thing **out);\n\
                  const char *impp_thing_name (int x); // impp_trailing(void);\n";
    let functions = declared_functions(header);
    assert_eq!(
        functions.into_iter().collect::<Vec<_>>(),
        ["impp_thing_name", "impp_thing_new"]
    );
    let wrapper = "// impp_a\n/* impp_b */ f(\"impp_c\", '\\'', impp_d); g(impp_e(1));";
    let used: Vec<String> = code_tokens(wrapper)
        .into_iter()
        .map(|(ident, _)| ident)
        .filter(|ident| ident.starts_with("impp_"))
        .collect();
    assert_eq!(used, ["impp_d", "impp_e"]);
}

/// The functions a C header declares: identifiers `impp_...` followed by `(`.
fn declared_functions(header: &str) -> BTreeSet<String> {
    code_tokens(header)
        .into_iter()
        .filter(|(ident, next)| ident.starts_with("impp_") && *next == Some('('))
        .map(|(ident, _)| ident)
        .collect()
}

/// The identifiers of C or C++ source, each with the character that follows it (after
/// blanks), skipping comments, string and character literals, and preprocessor lines.
fn code_tokens(source: &str) -> Vec<(String, Option<char>)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line_start = true;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if line_start && c == '#' {
            // A preprocessor line, with its continuations.
            while i < chars.len() && !(chars[i] == '\n' && chars[i - 1] != '\\') {
                i += 1;
            }
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
            line_start = false;
        } else if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            line_start = false;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let after = chars[i..].iter().copied().find(|c| !c.is_whitespace());
            tokens.push((ident, after));
            line_start = false;
        } else {
            i += 1;
            line_start = false;
        }
    }
    tokens
}
