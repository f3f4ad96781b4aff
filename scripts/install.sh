#!/usr/bin/env bash
# Builds libimpp with cargo and installs it under PREFIX:
#
#   PREFIX/lib/libimpp.so  PREFIX/lib/libimpp.a  PREFIX/lib/pkgconfig/impp.pc
#   PREFIX/include/impp.h  PREFIX/include/impp.hpp
#
# Usage: scripts/install.sh PREFIX [--release|--debug]   (--release is the default)
#
# Running it again overwrites the same files, so it is safe to repeat. Programs then build
# with `cc app.c $(pkg-config --cflags --libs impp)` once PREFIX/lib/pkgconfig is on
# PKG_CONFIG_PATH (and find the shared library at run time through the linker's search path,
# an rpath, or LD_LIBRARY_PATH).
set -euo pipefail

usage() {
    echo "usage: $0 PREFIX [--release|--debug]" >&2
    exit 2
}

prefix=""
profile=release
for arg in "$@"; do
    case "$arg" in
        --release) profile=release ;;
        --debug) profile=debug ;;
        -h | --help) usage ;;
        -*) echo "install.sh: unknown option: $arg" >&2; usage ;;
        *)
            [[ -z "$prefix" ]] || { echo "install.sh: more than one PREFIX given" >&2; usage; }
            prefix="$arg"
            ;;
    esac
done
[[ -n "$prefix" ]] || usage

root="$(cd "$(dirname "$0")/.." && pwd)"
cargo="${CARGO:-cargo}"

# An absolute prefix: the .pc file records it.
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"

# The version is the [package] version in Cargo.toml.
version="$(awk -F'"' '
    /^\[/ { in_package = ($0 == "[package]") }
    in_package && /^version *=/ { print $2; exit }
' "$root/Cargo.toml")"
[[ -n "$version" ]] || { echo "install.sh: no package version in $root/Cargo.toml" >&2; exit 1; }

echo "install.sh: building libimpp $version ($profile)"
build_args=(build --lib --manifest-path "$root/Cargo.toml")
[[ "$profile" == release ]] && build_args+=(--release)
"$cargo" "${build_args[@]}"

# Where cargo put the libraries: CARGO_TARGET_DIR, a cargo config, or ./target.
target_dir="$("$cargo" metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$target_dir" ]] || target_dir="${CARGO_TARGET_DIR:-$root/target}"
built="$target_dir/$profile"
for lib in libimpp.so libimpp.a; do
    [[ -f "$built/$lib" ]] || { echo "install.sh: $built/$lib was not built" >&2; exit 1; }
done

echo "install.sh: installing into $prefix"
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$built/libimpp.so" "$prefix/lib/libimpp.so"
install -m 0644 "$built/libimpp.a" "$prefix/lib/libimpp.a"
install -m 0644 "$root/include/impp.h" "$prefix/include/impp.h"
install -m 0644 "$root/bindings/c/impp.hpp" "$prefix/include/impp.hpp"

# Fill the pkg-config template. The prefix is escaped for sed (\, & and the | delimiter).
sed_escape() { printf '%s' "$1" | sed 's/[\\&|]/\\&/g'; }
pc="$(mktemp)"
trap 'rm -f "$pc"' EXIT
sed -e "s|@PREFIX@|$(sed_escape "$prefix")|g" \
    -e 's|@LIBDIR@|${prefix}/lib|g' \
    -e 's|@INCLUDEDIR@|${prefix}/include|g' \
    -e "s|@VERSION@|$(sed_escape "$version")|g" \
    "$root/bindings/c/impp.pc.in" >"$pc"
install -m 0644 "$pc" "$prefix/lib/pkgconfig/impp.pc"

cat <<EOF
install.sh: installed libimpp $version:
  $prefix/lib/libimpp.so
  $prefix/lib/libimpp.a
  $prefix/include/impp.h
  $prefix/include/impp.hpp
  $prefix/lib/pkgconfig/impp.pc
Build against it with:
  PKG_CONFIG_PATH=$prefix/lib/pkgconfig cc app.c \$(pkg-config --cflags --libs impp)
EOF
