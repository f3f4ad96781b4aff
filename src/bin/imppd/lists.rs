//! `imppd list add|del|show|import`: the resource lists in imppd's SQLite store, and the
//! running server's reload of them on SIGHUP.
//!
//! A list has a URI, entries in order (`--entry`: a resource, as `URI` or `NAME <URI>`;
//! `--ref`: another list, by URI), the packages it serves (`--package presence|dialog`,
//! repeatable; presence by default) and a display name (`--name`). The commands check a
//! change against every stored list with the library's own rules (`impp::model::list`:
//! bounds, no resource twice, no cycle through references) before writing it, so bad input
//! changes nothing. `--domain` (or the config file's `domain`), when given, also makes them
//! refuse a list of another domain; the server itself serves only lists of its domains.

use std::io::Write as _;
use std::path::Path;

use impp::engine::Engine;
use impp::model::list::{ListEntry, ListTable, ResourceList};
use impp::model::package::Package;
use impp::store::{SqliteStore, Store, Write};
use impp::uri::Uri;

use crate::list_import;

/// A display name as a SIP quoted string.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"NAME" <URI>`, or `<URI>` without a name: how entries are shown, and taken by `--entry`.
fn name_addr(uri: &Uri, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{} <{uri}>", quoted(name)),
        None => format!("<{uri}>"),
    }
}

/// `--entry`: `URI`, `<URI>`, `NAME <URI>` or `"NAME" <URI>` (a quoted name may escape `"`
/// and `\` with `\`).
fn parse_entry(text: &str) -> Result<(Uri, Option<String>), String> {
    let bad = |why: &str| format!("entry '{text}': {why}");
    let text = text.trim();
    let Some(before) = text.strip_suffix('>') else {
        return Uri::parse(text)
            .map(|uri| (uri, None))
            .map_err(|e| bad(&e.to_string()));
    };
    let open = before
        .rfind('<')
        .ok_or_else(|| bad("a '>' without its '<'"))?;
    let uri = Uri::parse(&before[open + 1..]).map_err(|e| bad(&e.to_string()))?;
    let name = before[..open].trim();
    let name = if let Some(inner) = name.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| bad("a display name's quote is not closed"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().ok_or_else(|| bad("a '\\' ends the name"))?),
                '"' => return Err(bad("a '\"' inside the display name is not escaped")),
                c => out.push(c),
            }
        }
        out
    } else {
        name.to_owned()
    };
    Ok((uri, (!name.is_empty()).then_some(name)))
}

fn parse_list_uri(text: &str) -> Result<Uri, String> {
    Uri::parse(text).map_err(|e| format!("list '{text}': {e}"))
}

/// The stored lists, as the library's table.
fn stored_table(store: &dyn Store) -> Result<ListTable, String> {
    Ok(ListTable::new(
        store.load().map_err(|e| e.to_string())?.lists,
    ))
}

/// Refuses a list of a domain outside `domains` (none given: every domain).
fn check_domain(uri: &Uri, domains: &[String]) -> Result<(), String> {
    if domains.is_empty() || domains.iter().any(|d| d.eq_ignore_ascii_case(uri.host())) {
        Ok(())
    } else {
        Err(format!(
            "list {uri} is not of a domain imppd serves ({})",
            domains.join(", ")
        ))
    }
}

/// `URI "NAME" (packages)`: a list's first line.
fn heading(list: &ResourceList) -> String {
    let packages: Vec<&str> = list.served_packages().iter().map(|p| p.as_str()).collect();
    let name = list
        .display_name
        .as_deref()
        .map(|n| format!(" {}", quoted(n)))
        .unwrap_or_default();
    format!("{}{name} ({})", list.uri, packages.join(", "))
}

/// A list as `list show` prints it: the heading, one line per entry, the count of
/// resources it expands to; with `resources`, one line per resource too.
fn show(table: &ListTable, list: &ResourceList, resources: bool) -> String {
    let mut out = heading(list);
    out.push('\n');
    for entry in &list.entries {
        match entry {
            ListEntry::Resource(r) => {
                out.push_str(&format!(
                    "  entry {}\n",
                    name_addr(&r.uri, r.display_name.as_deref())
                ));
            }
            ListEntry::Reference(uri) => {
                let missing = if table.get(uri).is_none() {
                    " (no such list yet)"
                } else {
                    ""
                };
                out.push_str(&format!("  ref <{uri}>{missing}\n"));
            }
        }
    }
    let expanded = table.expand(&list.uri).unwrap_or_default();
    out.push_str(&format!("  expands to {} resources\n", expanded.len()));
    if resources {
        for r in &expanded {
            out.push_str(&format!(
                "  resource {}\n",
                name_addr(&r.uri, r.display_name.as_deref())
            ));
        }
    }
    out
}

/// What `list add` took from its flags (each `--NAME=VALUE`, in the order given).
fn list_from_flags(uri: Uri, flags: &[String]) -> Result<ResourceList, String> {
    let mut list = ResourceList::new(uri);
    for flag in flags {
        let (name, value) = flag
            .strip_prefix("--")
            .and_then(|f| f.split_once('='))
            .ok_or_else(|| format!("list add: unexpected argument '{flag}'"))?;
        match name {
            "entry" => {
                let (uri, name) = parse_entry(value)?;
                list.push_resource(uri, name);
            }
            "ref" => {
                list.push_reference(Uri::parse(value).map_err(|e| format!("ref '{value}': {e}"))?)
            }
            "package" => {
                let package = value.parse().map_err(|e: impp::Error| e.to_string())?;
                list.packages.push(package);
            }
            "name" => {
                if list.display_name.is_some() {
                    return Err("list add: --name given twice".into());
                }
                list.display_name = Some(value.to_owned());
            }
            _ => return Err(format!("list add: unexpected argument '{flag}'")),
        }
    }
    if list.entries.is_empty() {
        return Err("list add needs at least one --entry or --ref".into());
    }
    Ok(list)
}

/// `imppd list add|del|show|import ...` on the store `db`; `domains` are imppd's
/// (`--domain`), if given.
pub fn command(db: &Path, domains: &[String], args: &[String]) -> Result<(), String> {
    let (flags, plain): (Vec<String>, Vec<String>) =
        args.iter().cloned().partition(|a| a.starts_with("--"));
    let arg = |i: usize, what: &str| -> Result<&str, String> {
        plain
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("list {} needs {what}", plain[0]))
    };
    let extra = |n: usize| -> Result<(), String> {
        if let Some(more) = plain.get(n) {
            return Err(format!("list {}: unexpected argument '{more}'", plain[0]));
        }
        Ok(())
    };
    let no_flags = || -> Result<(), String> {
        match flags.first() {
            Some(flag) => Err(format!(
                "list {}: unexpected argument '{}'",
                plain[0],
                flag.split('=').next().unwrap_or(flag)
            )),
            None => Ok(()),
        }
    };
    match plain.first().map(String::as_str) {
        Some("add") => {
            let uri = parse_list_uri(arg(1, "a list URI")?)?;
            extra(2)?;
            check_domain(&uri, domains)?;
            let list = list_from_flags(uri, &flags)?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let mut table = stored_table(&store)?;
            let replaced = table.get(&list.uri).is_some();
            let list = table.check(list).map_err(|e| e.to_string())?;
            store
                .write(Write::SaveList(list.clone()))
                .map_err(|e| e.to_string())?;
            table.insert(list.clone()).map_err(|e| e.to_string())?;
            let resources = table.expand(&list.uri).unwrap_or_default().len();
            println!(
                "{} {}: {} entries, {resources} resources",
                if replaced { "replaced" } else { "added" },
                heading(&list),
                list.entries.len()
            );
            Ok(())
        }
        Some("del") => {
            let uri = parse_list_uri(arg(1, "a list URI")?)?;
            extra(2)?;
            no_flags()?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let table = stored_table(&store)?;
            let Some(list) = table.get(&uri) else {
                return Err(format!("there is no list {uri}: nothing deleted"));
            };
            store
                .write(Write::DeleteList(list.uri.clone()))
                .map_err(|e| e.to_string())?;
            println!("deleted {}", list.uri);
            let referrers: Vec<String> = table
                .referrers(&uri)
                .iter()
                .map(|l| l.uri.to_string())
                .collect();
            if !referrers.is_empty() {
                println!(
                    "still referenced by {} (the reference expands to nothing until the list is added again)",
                    referrers.join(", ")
                );
            }
            Ok(())
        }
        Some("show") => {
            let uri = plain.get(1).map(|u| parse_list_uri(u)).transpose()?;
            extra(2)?;
            no_flags()?;
            let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
            let table = stored_table(&store)?;
            match &uri {
                Some(uri) => {
                    let list = table
                        .get(uri)
                        .ok_or_else(|| format!("there is no list {uri}"))?;
                    print!("{}", show(&table, list, true));
                }
                None => {
                    for list in table.lists() {
                        print!("{}", show(&table, list, false));
                    }
                }
            }
            Ok(())
        }
        Some("import") => {
            let file = arg(
                1,
                "a file (an RFC 4826 resource-lists or rls-services document)",
            )?;
            extra(2)?;
            let mut packages = Vec::new();
            for flag in &flags {
                match flag.strip_prefix("--package=") {
                    Some(p) => packages.push(p.parse().map_err(|e: impp::Error| e.to_string())?),
                    None => {
                        return Err(format!(
                            "list import: unexpected argument '{}'",
                            flag.split('=').next().unwrap_or(flag)
                        ))
                    }
                }
            }
            import(db, domains, file, &packages)
        }
        _ => Err("list: add, del, show or import".into()),
    }
}

/// `list import FILE`: every list of the document added or replaced, all checked together
/// with the stored ones before anything is written.
fn import(db: &Path, domains: &[String], file: &str, packages: &[Package]) -> Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let text = String::from_utf8(text).map_err(|e| {
        format!(
            "{file} is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let (kind, imported) =
        list_import::lists_of(&text, domains, packages).map_err(|e| format!("{file}: {e}"))?;
    if imported.is_empty() {
        return Err(format!(
            "{file}: the {} document holds no list",
            kind.as_str()
        ));
    }
    for list in &imported {
        check_domain(&list.uri, domains).map_err(|e| format!("{file}: {e}"))?;
    }
    let store = SqliteStore::open(db).map_err(|e| e.to_string())?;
    let stored = stored_table(&store)?;
    let keys: std::collections::HashSet<String> = imported.iter().map(|l| l.key()).collect();
    let table = ListTable::checked(
        stored
            .lists()
            .filter(|l| !keys.contains(&l.key()))
            .cloned()
            .chain(imported.iter().cloned()),
    )
    .map_err(|e| format!("{file}: {e}"))?;
    // Every write queued at once (one transaction, as a rule), then every outcome awaited.
    let (done, outcomes) = crossbeam_channel::unbounded();
    for list in &imported {
        let checked = table.get(&list.uri).expect("checked above").clone();
        let done = done.clone();
        store.submit(
            Write::SaveList(checked),
            Some(Box::new(move |result| {
                let _ = done.send(result);
            })),
        );
    }
    drop(done);
    for outcome in outcomes {
        outcome.map_err(|e| e.to_string())?;
    }
    println!(
        "imported {} lists from {file} ({})",
        imported.len(),
        kind.as_str()
    );
    for list in &imported {
        let list = table.get(&list.uri).expect("checked above");
        let resources = table.expand(&list.uri).unwrap_or_default().len();
        println!(
            "{} {}: {} entries, {resources} resources",
            if stored.get(&list.uri).is_some() {
                "replaced"
            } else {
                "added"
            },
            heading(list),
            list.entries.len()
        );
    }
    Ok(())
}

/// Makes the engine's lists what the store `db` holds now (after `imppd list` ran beside
/// the server), read through a second connection as the users and rules are, all at once
/// (so that changes which are only valid together, such as a reference turned around, are
/// taken); logs each change. Lists of a domain the engine does not own are skipped, with a
/// line each. Returns how many lists were added or changed, and how many removed.
pub fn reload(db: &Path, engine: &Engine) -> Result<(usize, usize), String> {
    let log = |what: &str| {
        let _ = writeln!(std::io::stderr(), "imppd: list {what}");
    };
    let stored = SqliteStore::open(db)
        .and_then(|s| s.load())
        .map_err(|e| e.to_string())?
        .lists;
    let mut wanted = Vec::new();
    for list in stored {
        if engine.config().owns(&list.uri) {
            wanted.push(list);
        } else {
            log(&format!(
                "ignored: {} is not of a domain imppd serves",
                list.uri
            ));
        }
    }
    let current = ListTable::new(engine.lists());
    let wanted_table = ListTable::new(wanted.clone());
    let mut lines = Vec::new();
    let (mut added, mut removed) = (0, 0);
    for list in &wanted {
        match current.get(&list.uri) {
            None => {
                added += 1;
                lines.push(format!("added: {list}"));
            }
            Some(was) if was != list => {
                added += 1;
                lines.push(format!("changed: {list}"));
            }
            Some(_) => {}
        }
    }
    for list in current.lists() {
        if wanted_table.get(&list.uri).is_none() {
            removed += 1;
            lines.push(format!("removed: {}", list.uri));
        }
    }
    if added + removed > 0 {
        engine.replace_lists(wanted).map_err(|e| e.to_string())?;
        for line in lines {
            log(&line);
        }
    }
    Ok((added, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_uris_or_name_addrs() {
        let uri = |s: &str| Uri::parse(s).unwrap();
        let ok = |text: &str, u: &str, name: Option<&str>| {
            assert_eq!(
                parse_entry(text).unwrap(),
                (uri(u), name.map(str::to_owned)),
                "{text}"
            );
        };
        ok("sip:bob@x", "sip:bob@x", None);
        ok("<sip:bob@x;transport=tcp>", "sip:bob@x;transport=tcp", None);
        ok("Bob Smith <sip:bob@x>", "sip:bob@x", Some("Bob Smith"));
        ok(
            r#""Bob \"B\" \\ Smith" <sip:bob@x>"#,
            "sip:bob@x",
            Some(r#"Bob "B" \ Smith"#),
        );
        ok(r#""" <sip:bob@x>"#, "sip:bob@x", None);
        for bad in [
            "",
            "bob",
            "Bob sip:bob@x>",
            r#""Bob <sip:bob@x>"#,
            r#""B"o"b" <sip:bob@x>"#,
            "Bob <not a uri>",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?}");
        }
        // What `show` prints, `--entry` takes back.
        for name in [None, Some("Bob"), Some(r#"a "quoted" \ name"#)] {
            let text = name_addr(&uri("sip:bob@x"), name);
            assert_eq!(
                parse_entry(&text).unwrap(),
                (uri("sip:bob@x"), name.map(str::to_owned))
            );
        }
    }
}
