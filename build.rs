//! Generates the C header from `src/ffi` with cbindgen.
//!
//! The header is written to `$OUT_DIR/impp.h` on every build; a unit test compares it with the
//! committed `include/impp.h`. `IMPP_UPDATE_HEADER=1 cargo build` also rewrites the committed
//! copy.

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ffi = root.join("src/ffi");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=IMPP_UPDATE_HEADER");

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&ffi)
        .expect("src/ffi")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    sources.sort();

    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut builder = cbindgen::Builder::new().with_config(config);
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        // mod.rs only declares the modules; given it too, cbindgen would follow its `mod`
        // lines and emit every item twice.
        if !src.ends_with("mod.rs") {
            builder = builder.with_src(src);
        }
    }
    let bindings = builder
        .generate()
        .expect("cbindgen could not generate the header");

    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("impp.h");
    bindings.write_to_file(&out);
    if std::env::var_os("IMPP_UPDATE_HEADER").is_some_and(|v| v != "0") {
        let committed = root.join("include/impp.h");
        std::fs::create_dir_all(committed.parent().unwrap_or(Path::new("."))).expect("include/");
        std::fs::copy(&out, &committed).expect("write include/impp.h");
    }
}
