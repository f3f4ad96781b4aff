//! The naming and parameter conventions of the C API, checked on `include/impp.h` itself, so
//! that a function added by a later change cannot drift from them unnoticed. The conventions
//! are written in the header's opening comment (from `cbindgen.toml`) and in the README's "C
//! API conventions"; this test enforces the ones a machine can check:
//!
//! - every function is `impp_<object>_<verb>`, and getters have no `get_`;
//! - output parameters (`out`, `<what>_out`) come last;
//! - every `impp_<object>_new` / `_parse` / `_start` returns an `impp_status` and has an
//!   `impp_<object>_free`;
//! - an argument the library has an enum for is typed with that enum, never a plain `int`;
//! - no function is named like a type of the header (C has one namespace for both);
//! - an expiry argument (`expires`, `<what>_expires`) is a `uint32_t`, where 0 is the
//!   configured default (a signed type would let -1 or 0 mean something else again);
//! - options handles (`impp_<what>_options`, `impp_account`) are borrowed by the calls that
//!   take them: any function but their own takes them `const`;
//! - every handle handed out through a `struct impp_<object> **` output has an
//!   `impp_<object>_free` (snapshots such as `impp_engine_rules`' `impp_rule_list` too).
//!
//! The header is parsed as text: cbindgen writes one declaration per function, ending in `;`,
//! with its parameters inside one pair of parentheses, which is all this needs.

use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug)]
struct Param {
    ty: String,
    name: String,
}

#[derive(Debug)]
struct Function {
    ret: String,
    name: String,
    params: Vec<Param>,
}

#[derive(Debug, Default)]
struct Header {
    functions: Vec<Function>,
    /// The function pointer typedefs (callbacks), as functions named after the typedef.
    callbacks: Vec<Function>,
    /// Every type name the header declares (typedefs, enum and struct tags).
    types: BTreeSet<String>,
    /// The enums among them.
    enums: BTreeSet<String>,
}

/// Parameter names that always denote a value of one of the library's enums, with the
/// enum(s) meant; an `int` parameter so named is a violation. A parameter counts when its
/// name is the word or ends in `_<word>` (`max_level`).
const ENUM_MEANINGS: &[(&str, &[&str])] = &[
    ("action", &["impp_auth_action"]),
    ("kind", &["impp_event_type"]),
    ("which", &["impp_stat", "impp_sip_counter"]),
    (
        "state",
        &[
            "impp_composing_state",
            "impp_dialog_state",
            "impp_user_input",
            "impp_subscription_state",
        ],
    ),
    ("level", &["impp_log_level"]),
    ("basic", &["impp_basic"]),
    ("reason", &["impp_reason", "impp_failure_reason"]),
    ("direction", &["impp_dialog_direction"]),
    ("event", &["impp_dialog_event"]),
    ("cap", &["impp_capability"]),
    ("outcome", &["impp_delivery_outcome"]),
    ("status", &["impp_status"]),
    ("federation", &["impp_federation"]),
];

/// Verbs that cannot be the object of `impp_<object>_<verb>`.
const LEADING_VERBS: &[&str] = &[
    "set", "get", "add", "remove", "new", "free", "parse", "start", "stop", "is", "has", "create",
    "destroy", "make",
];

/// Integer types that must not stand in for an enum.
const PLAIN_INTEGERS: &[&str] = &["int", "int32_t", "unsigned int", "uint32_t"];

/// Handles of optional arguments that are not named `impp_<what>_options`; like those, they
/// are only read by the calls they are given to.
const OPTIONS_HANDLES: &[&str] = &["impp_account"];

/// Whether `ty` (a parameter type) is a pointer to an options handle, and which.
fn options_handle(ty: &str) -> Option<&str> {
    let name = ty
        .trim_start_matches("const ")
        .strip_prefix("struct ")?
        .strip_suffix('*')?
        .trim();
    (name.ends_with("_options") || OPTIONS_HANDLES.contains(&name)).then_some(name)
}

/// The handle type written by a `struct impp_x **` output: `impp_x`.
fn handed_out_handle(ty: &str) -> Option<&str> {
    ty.strip_prefix("struct ")?
        .strip_suffix("**")
        .map(str::trim)
}

/// Removes `/* */` and `//` comments and preprocessor lines.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
            out.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `const char *name` into (`const char *`, `name`).
fn split_last_ident(decl: &str) -> (String, String) {
    let decl = decl.trim();
    let start = decl
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident_char(c))
        .last()
        .map_or(decl.len(), |(i, _)| i);
    (squash(&decl[..start]), decl[start..].to_owned())
}

fn parse(text: &str) -> Header {
    let mut header = Header::default();
    let text = strip(text).replace("extern \"C\" {", " ");
    for statement in text.split(';') {
        // What is left of a closing `}` of the `extern "C"` block, or of nothing.
        let statement = statement.trim().trim_start_matches('}').trim();
        if statement.is_empty() {
            continue;
        }
        if let Some(def) = statement.strip_prefix("typedef") {
            let def = def.trim();
            if let Some(body) = def.find('{') {
                // typedef enum|struct TAG { ... } NAME
                let head = squash(&def[..body]);
                let tag = head.split(' ').nth(1).map(str::to_owned);
                let name = def[def.rfind('}').expect("closing brace") + 1..]
                    .trim()
                    .to_owned();
                let is_enum = head.starts_with("enum");
                for n in tag.into_iter().chain([name]) {
                    if is_enum {
                        header.enums.insert(n.clone());
                    }
                    header.types.insert(n);
                }
            } else if let Some(open) = def.find("(*") {
                // typedef RET (*NAME)(PARAMS)
                let after = &def[open + 2..];
                let end = after.find(')').unwrap_or(after.len());
                let name = after[..end].trim().to_owned();
                let params = after[end..]
                    .find('(')
                    .zip(after.rfind(')'))
                    .map_or(String::new(), |(o, c)| after[end + o + 1..c].to_owned());
                header.callbacks.push(Function {
                    ret: squash(&def[..open]),
                    name: name.clone(),
                    params: parse_params(&params),
                });
                header.types.insert(name);
            } else {
                // typedef struct TAG NAME
                for word in def.split_whitespace().skip(1) {
                    header.types.insert(word.to_owned());
                }
            }
            continue;
        }
        let (Some(open), Some(close)) = (statement.find('('), statement.rfind(')')) else {
            continue;
        };
        let (ret, name) = split_last_ident(&statement[..open]);
        let params = parse_params(&statement[open + 1..close]);
        header.functions.push(Function { ret, name, params });
    }
    header
}

/// `const char *a, size_t b` → its parameters; `void` or nothing → none.
fn parse_params(inside: &str) -> Vec<Param> {
    let inside = inside.trim();
    if inside.is_empty() || inside == "void" {
        return Vec::new();
    }
    inside
        .split(',')
        .map(|p| {
            let (ty, name) = split_last_ident(p);
            Param { ty, name }
        })
        .collect()
}

/// A parameter that takes one of the library's enums as a plain integer.
fn int_for_enum(f: &Function, what: &str, found: &mut Vec<String>) {
    let name = &f.name;
    for p in &f.params {
        let ty = p.ty.trim_start_matches("const ").trim();
        if !PLAIN_INTEGERS.contains(&ty) {
            continue;
        }
        let meaning = ENUM_MEANINGS
            .iter()
            .find(|(word, _)| p.name == *word || p.name.ends_with(&format!("_{word}")));
        if let Some((_, enums)) = meaning {
            found.push(format!(
                "{what}{name}: parameter `{}` is a plain `{ty}`; type it with its enum ({})",
                p.name,
                enums.join(" or ")
            ));
        }
    }
}

fn is_out(param: &Param) -> bool {
    param.name == "out" || param.name.ends_with("_out")
}

/// Whether a parameter's type makes it an output: a pointer to a pointer (`char **`,
/// `struct impp_presence **`), or a writable pointer to a value (`size_t *`,
/// `enum impp_basic *`). A `struct ... *` is a handle, `void *` user data and `char *` an
/// owned string handed back (`impp_string_free`).
fn is_output_type(ty: &str) -> bool {
    if ty.contains("**") {
        return true;
    }
    let Some(base) = ty.strip_suffix('*') else {
        return false;
    };
    let base = base.trim();
    !(base.starts_with("const ")
        || base.starts_with("struct ")
        || base == "void"
        || base == "char"
        || base.ends_with("callback"))
}

/// The object of a constructor: `impp_presence_parse_limited` → `presence`.
fn constructed_object(name: &str) -> Option<String> {
    let rest = name.strip_prefix("impp_")?;
    let words: Vec<&str> = rest.split('_').collect();
    let at = words
        .iter()
        .position(|w| matches!(*w, "new" | "parse" | "start"))?;
    (at > 0).then(|| words[..at].join("_"))
}

fn violations(text: &str) -> Vec<String> {
    let header = parse(text);
    let names: BTreeSet<&str> = header.functions.iter().map(|f| f.name.as_str()).collect();
    let mut found = Vec::new();
    for f in &header.functions {
        let name = &f.name;
        if !name.starts_with("impp_") {
            found.push(format!(
                "{name}: does not start with `impp_` (functions are impp_<object>_<verb>)"
            ));
        }
        let object = name.strip_prefix("impp_").unwrap_or(name);
        let first = object.split('_').next().unwrap_or_default();
        if LEADING_VERBS.contains(&first) {
            found.push(format!(
                "{name}: starts with the verb `{first}`; name the object first (impp_<object>_<verb>, e.g. impp_log_set_level)"
            ));
        }
        if name.contains("_get_") || name.ends_with("_get") {
            found.push(format!(
                "{name}: getters are named without `get_` (impp_<object>_<field>)"
            ));
        }
        if header.types.contains(name) {
            found.push(format!(
                "{name}: a function named like a type of the header (C has one namespace for both)"
            ));
        }
        for p in &f.params {
            if is_output_type(&p.ty) && !is_out(p) {
                found.push(format!(
                    "{name}: output parameter `{}` ({}) is not named `out` or `<what>_out`",
                    p.name, p.ty
                ));
            }
        }
        if let Some(first_out) = f.params.iter().position(is_out) {
            for p in &f.params[first_out..] {
                if !is_out(p) {
                    found.push(format!(
                        "{name}: input parameter `{}` comes after output parameter `{}` (output parameters come last)",
                        p.name, f.params[first_out].name
                    ));
                }
            }
        }
        if let Some(object) = constructed_object(name) {
            let free = format!("impp_{object}_free");
            if !names.contains(free.as_str()) {
                found.push(format!("{name}: no matching `{free}`"));
            }
            if f.ret != "enum impp_status" {
                found.push(format!(
                    "{name}: returns `{}`; constructors return `enum impp_status` and write the handle last",
                    f.ret
                ));
            }
        }
        int_for_enum(f, "", &mut found);
        for p in &f.params {
            let is_expiry = p.name == "expires" || p.name.ends_with("_expires");
            if is_expiry && !is_out(p) && p.ty != "uint32_t" {
                found.push(format!(
                    "{name}: expiry `{}` is `{}`; expiries are `uint32_t` seconds, 0 for the configured default",
                    p.name, p.ty
                ));
            }
            if let Some(options) = options_handle(&p.ty) {
                let own = name.starts_with(&format!("{options}_"));
                if !own && !p.ty.starts_with("const ") {
                    found.push(format!(
                        "{name}: options `{}` ({}) are not `const`; calls borrow options, they do not consume or change them",
                        p.name, p.ty
                    ));
                }
            }
            if let Some(handle) = handed_out_handle(&p.ty) {
                let free = format!("{handle}_free");
                // A constructor without its free is reported once, above.
                let constructor =
                    constructed_object(name).is_some_and(|o| handle == format!("impp_{o}"));
                if is_out(p) && !constructor && !names.contains(free.as_str()) {
                    found.push(format!(
                        "{name}: hands out a `{handle}` (`{}`) that has no `{free}`",
                        p.name
                    ));
                }
            }
        }
    }
    // The library calls callbacks with enum values too: typed the same way.
    for f in &header.callbacks {
        int_for_enum(f, "callback ", &mut found);
    }
    found
}

fn header_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/impp.h")
}

#[test]
fn the_header_follows_the_conventions() {
    let text = std::fs::read_to_string(header_path()).expect("include/impp.h");
    let header = parse(&text);
    // The parser must see the whole API, or a pass would mean nothing.
    assert!(
        header.functions.len() > 150,
        "only {} functions parsed",
        header.functions.len()
    );
    let new = header
        .functions
        .iter()
        .find(|f| f.name == "impp_engine_new")
        .expect("impp_engine_new parsed");
    assert_eq!(new.ret, "enum impp_status");
    assert_eq!(new.params.len(), 2);
    assert_eq!(new.params[1].ty, "struct impp_engine **");
    assert_eq!(new.params[1].name, "out");
    assert!(
        header.enums.contains("impp_auth_action"),
        "{:?}",
        header.enums
    );
    for (word, enums) in ENUM_MEANINGS {
        for e in *enums {
            assert!(
                header.enums.contains(*e),
                "ENUM_MEANINGS gives `{e}` for `{word}`, which is not an enum of the header: update the table"
            );
        }
    }
    for handle in OPTIONS_HANDLES {
        assert!(
            header.types.contains(*handle),
            "OPTIONS_HANDLES names `{handle}`, which is not a type of the header: update the table"
        );
    }
    // The options and snapshot rules must have something to check, or a pass means nothing.
    let borrowed: BTreeSet<&str> = header
        .functions
        .iter()
        .flat_map(|f| &f.params)
        .filter_map(|p| options_handle(&p.ty).filter(|_| p.ty.starts_with("const ")))
        .collect();
    assert!(
        [
            "impp_subscribe_options",
            "impp_message_options",
            "impp_account"
        ]
        .iter()
        .all(|o| borrowed.contains(o)),
        "options handles taken by calls: {borrowed:?}"
    );
    let rules = header
        .functions
        .iter()
        .find(|f| f.name == "impp_engine_rules")
        .expect("impp_engine_rules parsed");
    assert_eq!(
        handed_out_handle(&rules.params[2].ty),
        Some("impp_rule_list")
    );
    let found = violations(&text);
    assert!(
        found.is_empty(),
        "include/impp.h breaks the C API conventions:\n  {}",
        found.join("\n  ")
    );
}

/// A small header in cbindgen's layout, following every convention.
const GOOD: &str = r#"
/* Conventions... */
#ifndef X_H
#define X_H
#define IMPP_ABI_VERSION 3
typedef enum impp_status {
  IMPP_OK = 0,
  IMPP_ERR_INVALID_ARGUMENT = -1,
} impp_status;
typedef enum impp_auth_action {
  IMPP_AUTH_ALLOW = 1,
} impp_auth_action;
typedef struct impp_foo impp_foo;
typedef void (*impp_foo_callback)(enum impp_auth_action action, void *user_data);
#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Makes a foo (a comment with a ; and impp_bar_get_baz(int action) in it).
 */
enum impp_status impp_foo_new(const char *name, struct impp_foo **out);

void impp_foo_free(struct impp_foo *foo);

enum impp_status impp_foo_bar(const struct impp_foo *foo,
                              size_t index,
                              const char **out,
                              size_t *len_out);

enum impp_status impp_foo_set_action(struct impp_foo *foo, enum impp_auth_action action);

uint32_t impp_abi_version(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus
#endif  /* X_H */
"#;

fn good_with(declaration: &str) -> String {
    GOOD.replace(
        "uint32_t impp_abi_version(void);",
        &format!("uint32_t impp_abi_version(void);\n\n{declaration}\n"),
    )
}

fn assert_one_violation(declaration: &str, needle: &str) {
    let found = violations(&good_with(declaration));
    assert_eq!(found.len(), 1, "{declaration}: {found:?}");
    assert!(found[0].contains(needle), "{declaration}: {found:?}");
}

#[test]
fn a_small_conforming_header_passes() {
    let header = parse(GOOD);
    let names: Vec<&str> = header.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "impp_foo_new",
            "impp_foo_free",
            "impp_foo_bar",
            "impp_foo_set_action",
            "impp_abi_version"
        ]
    );
    assert!(header.types.contains("impp_foo_callback"));
    assert_eq!(header.callbacks.len(), 1);
    assert_eq!(header.callbacks[0].name, "impp_foo_callback");
    assert_eq!(header.callbacks[0].params[0].ty, "enum impp_auth_action");
    assert_eq!(header.callbacks[0].params[1].name, "user_data");
    assert!(header.enums.contains("impp_auth_action"));
    let found = violations(GOOD);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_getter_spelled_get_fails_and_names_the_function() {
    assert_one_violation(
        "enum impp_status impp_foo_get_bar(const struct impp_foo *foo, const char **out);",
        "impp_foo_get_bar: getters are named without `get_`",
    );
}

#[test]
fn a_function_named_verb_first_fails() {
    assert_one_violation(
        "enum impp_status impp_set_log_level(enum impp_auth_action action);",
        "impp_set_log_level: starts with the verb `set`",
    );
}

#[test]
fn a_function_outside_the_prefix_fails() {
    assert_one_violation(
        "enum impp_status foo_bar(const struct impp_foo *foo);",
        "foo_bar: does not start with `impp_`",
    );
}

#[test]
fn an_input_after_an_output_fails() {
    assert_one_violation(
        "enum impp_status impp_foo_baz(const struct impp_foo *foo,\n    char **text_out,\n    size_t max);",
        "impp_foo_baz: input parameter `max` comes after output parameter `text_out`",
    );
}

#[test]
fn an_output_not_named_out_fails() {
    assert_one_violation(
        "enum impp_status impp_foo_count(const struct impp_foo *foo, size_t *count);",
        "impp_foo_count: output parameter `count` (size_t *) is not named",
    );
    assert_one_violation(
        "enum impp_status impp_foo_text(const struct impp_foo *foo, const char **text);",
        "impp_foo_text: output parameter `text` (const char **) is not named",
    );
    // Handles, user data and owned strings handed back are not outputs.
    let found = violations(&good_with(
        "enum impp_status impp_foo_use(struct impp_foo *foo, void *user_data, char *s);",
    ));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_constructor_without_its_free_fails() {
    assert_one_violation(
        "enum impp_status impp_bar_parse(const char *xml, size_t len, struct impp_bar **out);",
        "impp_bar_parse: no matching `impp_bar_free`",
    );
    assert_one_violation(
        "enum impp_status impp_baz_start(const struct impp_foo *foo, struct impp_baz **out);",
        "impp_baz_start: no matching `impp_baz_free`",
    );
    // With its free, a constructor with a suffix is fine.
    let found = violations(&good_with(
        "enum impp_status impp_foo_parse_limited(const char *xml, size_t len, struct impp_foo **out);",
    ));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_constructor_not_returning_a_status_fails() {
    assert_one_violation(
        "struct impp_foo *impp_foo_parse(const char *xml, size_t len);",
        "impp_foo_parse: returns `struct impp_foo *`",
    );
}

#[test]
fn an_int_where_the_library_has_an_enum_fails() {
    for (declaration, needle) in [
        (
            "enum impp_status impp_foo_authorize(const struct impp_foo *foo, uint64_t id, int action);",
            "impp_foo_authorize: parameter `action` is a plain `int`",
        ),
        (
            "uint64_t impp_foo_stat(const struct impp_foo *foo, int which);",
            "impp_foo_stat: parameter `which` is a plain `int`",
        ),
        (
            "enum impp_status impp_foo_set_state(struct impp_foo *foo, int state);",
            "impp_foo_set_state: parameter `state` is a plain `int`",
        ),
        (
            "enum impp_status impp_log_set_level(int max_level);",
            "impp_log_set_level: parameter `max_level` is a plain `int`",
        ),
        (
            "bool impp_foo_is(const struct impp_foo *foo, const int kind);",
            "impp_foo_is: parameter `kind` is a plain `int`",
        ),
        (
            "const char *impp_foo_status_name(int32_t status);",
            "impp_foo_status_name: parameter `status` is a plain `int32_t`",
        ),
    ] {
        assert_one_violation(declaration, needle);
    }
    // Other integers are fine, and so is an enum-typed parameter.
    let found = violations(&good_with(
        "enum impp_status impp_foo_set_code(struct impp_foo *foo, int code, enum impp_auth_action action);",
    ));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_callback_taking_an_int_for_an_enum_fails() {
    assert_one_violation(
        "typedef void (*impp_bar_callback)(int level, const char *message, void *user_data);",
        "callback impp_bar_callback: parameter `level` is a plain `int`",
    );
}

#[test]
fn a_function_named_like_a_type_fails() {
    assert_one_violation(
        "enum impp_auth_action impp_auth_action(const struct impp_foo *foo);",
        "impp_auth_action: a function named like a type",
    );
}

#[test]
fn an_expiry_that_is_not_uint32_fails() {
    assert_one_violation(
        "enum impp_status impp_foo_refresh(const struct impp_foo *foo, int64_t expires);",
        "impp_foo_refresh: expiry `expires` is `int64_t`",
    );
    assert_one_violation(
        "enum impp_status impp_foo_set_login_expires(struct impp_foo *foo, int32_t login_expires);",
        "impp_foo_set_login_expires: expiry `login_expires` is `int32_t`",
    );
    // Outputs named after an expiry, and the bounds of a configuration, are not expiries.
    let found = violations(&good_with(
        "enum impp_status impp_foo_state(const struct impp_foo *foo, uint32_t *expires_in_out);\n\
         enum impp_status impp_foo_set_expiry(struct impp_foo *foo, uint32_t min, uint32_t default_expiry);\n\
         enum impp_status impp_foo_renew(const struct impp_foo *foo, uint32_t expires);",
    ));
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn options_taken_without_const_fail() {
    let options = "typedef struct impp_bar_options impp_bar_options;\n\
        enum impp_status impp_bar_options_new(struct impp_bar_options **out);\n\
        void impp_bar_options_free(struct impp_bar_options *options);\n\
        enum impp_status impp_bar_options_set_size(struct impp_bar_options *options, size_t size);";
    let found = violations(&good_with(&format!(
        "{options}\nenum impp_status impp_foo_bar(const struct impp_foo *foo, const struct impp_bar_options *options);"
    )));
    assert!(found.is_empty(), "{found:?}");
    let found = violations(&good_with(&format!(
        "{options}\nenum impp_status impp_foo_bar(const struct impp_foo *foo, struct impp_bar_options *options);"
    )));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(
            "impp_foo_bar: options `options` (struct impp_bar_options *) are not `const`"
        ),
        "{found:?}"
    );
    // An account is an options handle too.
    assert_one_violation(
        "enum impp_status impp_foo_add_account(struct impp_foo *foo, struct impp_account *account);",
        "impp_foo_add_account: options `account`",
    );
}

#[test]
fn a_handle_handed_out_without_its_free_fails() {
    assert_one_violation(
        "enum impp_status impp_foo_rules(const struct impp_foo *foo, struct impp_rule_list **out);",
        "impp_foo_rules: hands out a `impp_rule_list` (`out`) that has no `impp_rule_list_free`",
    );
    let found = violations(&good_with(
        "enum impp_status impp_foo_rules(const struct impp_foo *foo, struct impp_rule_list **out);\n\
         void impp_rule_list_free(struct impp_rule_list *list);",
    ));
    assert!(found.is_empty(), "{found:?}");
}
