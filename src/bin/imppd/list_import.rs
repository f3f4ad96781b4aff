//! `imppd list import FILE.xml`: the lists of an RFC 4826 document, as imppd keeps them.
//!
//! - An `rls-services` document (§4): each `<service uri>` becomes the list of that URI,
//!   serving the `<packages>` it names (each must be `presence` or `dialog`; without
//!   `<packages>`, which means "any package", both). Its inline `<list>` gives the entries
//!   (and the list's display name); a `<resource-list>` that is a SIP URI becomes a
//!   reference to that list.
//! - A `resource-lists` document (§3): lists are named, not addressed, so each top-level
//!   `<list name="N">` becomes `sip:N@DOMAIN`, DOMAIN being the one `--domain` given;
//!   they serve `presence`, or the `--package`s given.
//!
//! Within a list, `<entry>`s are resources (display names trimmed) and `<external
//! anchor>`s that are SIP URIs are references to other lists; nested `<list>`s are
//! flattened into their parent, in document order, each resource kept once (the first).
//!
//! XCAP URIs (RFC 4825), which is how Kamailio's and most clients' documents point at each
//! other, are read by their node selector, without fetching anything: an `<entry-ref>`
//! selecting `.../entry[@uri="U"]` is the resource U (with the entry-ref's display name),
//! and a `<resource-list>` or `<external anchor>` selecting `.../list[@name="N"]` is a
//! reference to the list `sip:N@DOMAIN` (the one `--domain` given), which is where importing
//! that resource-lists document with the same `--domain` puts it. Anything else that points
//! elsewhere is refused, naming the item: nothing is imported rather than a list silently
//! short of some resources.

use std::collections::HashSet;

use impp::doc::resource_lists::{DisplayName, List, ListItem, ResourceLists};
use impp::doc::rls_services::{RlsServices, ServiceList};
use impp::doc::Limits;
use impp::model::key::presentity_key;
use impp::model::list::{ListEntry, ResourceList, LIST_PACKAGES};
use impp::model::package::Package;
use impp::uri::Uri;

/// Import files may be larger than documents on the wire (hundreds of lists).
const LIMITS: Limits = Limits {
    max_bytes: 16 * 1024 * 1024,
    max_depth: 32,
};

/// Which kind of document a file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ResourceLists,
    RlsServices,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ResourceLists => "resource-lists",
            Kind::RlsServices => "rls-services",
        }
    }
}

/// The lists of the document `text`; `domains` and `packages` as the module documentation
/// says.
pub fn lists_of(
    text: &str,
    domains: &[String],
    packages: &[Package],
) -> Result<(Kind, Vec<ResourceList>), String> {
    let rls_error = match RlsServices::parse(text, &LIMITS) {
        Ok(doc) => {
            if !packages.is_empty() {
                return Err(
                    "an rls-services document names the packages of each service: \
                     --package is for resource-lists documents"
                        .into(),
                );
            }
            let domain = match domains {
                [one] => Some(one.as_str()),
                _ => None,
            };
            return from_rls_services(&doc, domain).map(|l| (Kind::RlsServices, l));
        }
        Err(e) => e,
    };
    match ResourceLists::parse(text, &LIMITS) {
        Ok(doc) => from_resource_lists(&doc, domains, packages).map(|l| (Kind::ResourceLists, l)),
        // A document whose root is rls-services is reported with that codec's error.
        Err(_) if !rls_error.to_string().contains("expected <rls-services>") => {
            Err(rls_error.to_string())
        }
        Err(e) if e.to_string().contains("expected <resource-lists>") => Err(format!(
            "neither a resource-lists nor an rls-services document ({e})"
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn from_rls_services(doc: &RlsServices, domain: Option<&str>) -> Result<Vec<ResourceList>, String> {
    let mut lists = Vec::new();
    for service in &doc.services {
        let what = format!("service '{}'", service.uri.trim());
        let uri = Uri::parse(service.uri.trim()).map_err(|e| format!("{what}: {e}"))?;
        let mut list = ResourceList::new(uri);
        list.packages = match &service.packages {
            None => LIST_PACKAGES.to_vec(),
            Some(names) => names
                .iter()
                .map(|n| {
                    let package: Package = n
                        .trim()
                        .parse()
                        .map_err(|e: impp::Error| format!("{what}: {e}"))?;
                    if LIST_PACKAGES.contains(&package) {
                        Ok(package)
                    } else {
                        Err(format!(
                            "{what}: package {package} is not one a list serves (presence, dialog)"
                        ))
                    }
                })
                .collect::<Result<_, String>>()?,
        };
        match &service.list {
            ServiceList::Inline(inline) => {
                list.display_name = display_name(inline.display_name.as_ref());
                flatten(inline, &mut list, &mut Seen::default(), &what, domain)?;
            }
            ServiceList::Reference(reference) => {
                let other = list_reference(reference, domain)
                    .map_err(|why| format!("{what}: <resource-list> {why}"))?;
                list.push_reference(other);
            }
        }
        lists.push(list);
    }
    Ok(lists)
}

fn from_resource_lists(
    doc: &ResourceLists,
    domains: &[String],
    packages: &[Package],
) -> Result<Vec<ResourceList>, String> {
    let domain = match domains {
        [one] => one,
        _ => {
            return Err(format!(
                "a resource-lists document names its lists, not their URIs: give one \
                 --domain DOMAIN, and each <list name=\"N\"> becomes sip:N@DOMAIN{}",
                if domains.is_empty() {
                    String::new()
                } else {
                    format!(" (not {})", domains.len())
                }
            ))
        }
    };
    let mut lists = Vec::new();
    for (i, source) in doc.lists.iter().enumerate() {
        let name = source
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("list {} of the document has no name", i + 1))?;
        let what = format!("list '{name}'");
        let uri = Uri::parse(&format!("sip:{name}@{domain}"))
            .map_err(|e| format!("{what} does not make a URI sip:{name}@{domain}: {e}"))?;
        let mut list = ResourceList::new(uri);
        list.packages = packages.to_vec();
        list.display_name = display_name(source.display_name.as_ref());
        flatten(source, &mut list, &mut Seen::default(), &what, Some(domain))?;
        lists.push(list);
    }
    Ok(lists)
}

/// The keys already in a list being flattened.
#[derive(Default)]
struct Seen {
    resources: HashSet<String>,
    references: HashSet<String>,
}

/// Appends the items of `source` (and of the lists nested in it) to `list`.
fn flatten(
    source: &List,
    list: &mut ResourceList,
    seen: &mut Seen,
    what: &str,
    domain: Option<&str>,
) -> Result<(), String> {
    for item in &source.items {
        match item {
            ListItem::Entry(entry) => {
                let uri = Uri::parse(entry.uri.trim())
                    .map_err(|e| format!("{what}: entry '{}': {e}", entry.uri.trim()))?;
                if seen.resources.insert(presentity_key(&uri)) {
                    list.entries
                        .push(ListEntry::Resource(impp::model::list::Resource {
                            uri,
                            display_name: display_name(entry.display_name.as_ref()),
                        }));
                }
            }
            ListItem::List(nested) => flatten(nested, list, seen, what, domain)?,
            ListItem::External(external) => {
                let Some(anchor) = external.anchor.as_deref() else {
                    continue; // points nowhere
                };
                let uri = list_reference(anchor, domain)
                    .map_err(|why| format!("{what}: <external anchor> {why}"))?;
                if seen.references.insert(presentity_key(&uri)) {
                    list.entries.push(ListEntry::Reference(uri));
                }
            }
            ListItem::EntryRef(entry_ref) => {
                let reference = entry_ref.reference.trim();
                let Some(Selected::Entry(target)) = xcap_selection(reference) else {
                    return Err(format!(
                        "{what}: <entry-ref ref='{reference}'> does not select an entry by \
                         its URI (.../entry[@uri=\"...\"]); write the entry itself"
                    ));
                };
                let uri = Uri::parse(&target).map_err(|e| {
                    format!("{what}: <entry-ref ref='{reference}'> selects '{target}': {e}")
                })?;
                if seen.resources.insert(presentity_key(&uri)) {
                    list.entries
                        .push(ListEntry::Resource(impp::model::list::Resource {
                            uri,
                            display_name: display_name(entry_ref.display_name.as_ref()),
                        }));
                }
            }
        }
    }
    Ok(())
}

/// A display name's text, trimmed; none when empty.
fn display_name(name: Option<&DisplayName>) -> Option<String> {
    name.map(|n| n.text.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The list a `<resource-list>` or an `<external anchor>` names: a SIP URI as it is, or an
/// XCAP URI selecting `list[@name="N"]` as `sip:N@DOMAIN`. The error says why not.
fn list_reference(text: &str, domain: Option<&str>) -> Result<Uri, String> {
    let text = text.trim();
    if let Ok(uri) = Uri::parse(text) {
        return Ok(uri);
    }
    let Some(Selected::List(name)) = xcap_selection(text) else {
        return Err(format!(
            "'{text}' is neither a SIP URI nor an XCAP URI selecting a list by name \
             (.../list[@name=\"...\"])"
        ));
    };
    let Some(domain) = domain else {
        return Err(format!(
            "'{text}' selects list '{name}' of an XCAP document: give one --domain DOMAIN to \
             read it as sip:{name}@DOMAIN"
        ));
    };
    Uri::parse(&format!("sip:{name}@{domain}"))
        .map_err(|e| format!("'{text}' selects list '{name}', which makes no URI: {e}"))
}

/// What the last step of an XCAP URI's node selector (RFC 4825 §6.3, after `/~~/`) selects
/// in a resource-lists document.
#[derive(Debug, PartialEq, Eq)]
enum Selected {
    /// `list[@name="N"]`.
    List(String),
    /// `entry[@uri="U"]`.
    Entry(String),
}

fn xcap_selection(uri: &str) -> Option<Selected> {
    let decoded = impp::uri::percent_decode(uri)?;
    let (_, selector) = decoded.split_once("/~~/")?;
    // The last step: split on '/' outside quotes and brackets.
    let (mut depth, mut quote, mut start) = (0usize, None, 0usize);
    for (i, c) in selector.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => depth = depth.saturating_sub(1),
            (None, '/') if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    let step = &selector[start..];
    let (name, predicate) = step.split_once('[')?;
    let (attribute, value) = predicate.strip_suffix(']')?.split_once('=')?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))?;
    let local = name.rsplit(':').next()?;
    match (local, attribute.trim()) {
        ("list", "@name") => Some(Selected::List(value.to_owned())),
        ("entry", "@uri") => Some(Selected::Entry(value.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xcap_uris_are_read_by_their_last_step() {
        let list = |n: &str| Some(Selected::List(n.into()));
        assert_eq!(
            xcap_selection(
                "http://x/xcap-root/resource-lists/users/sip:a@x/index/~~/resource-lists/list%5b@name=%22blf-t46%22%5d"
            ),
            list("blf-t46")
        );
        assert_eq!(
            xcap_selection(
                "resource-lists/users/sip:a@x/index/~~/rl:resource-lists/rl:list[@name='a/b']"
            ),
            list("a/b")
        );
        assert_eq!(
            xcap_selection(
                "r/~~/resource-lists/list%5b@name=%22work%22%5d/entry%5b@uri=%22sip:kim@x%22%5d"
            ),
            Some(Selected::Entry("sip:kim@x".into()))
        );
        for bad in [
            "http://x/resource-lists/index",
            "r/~~/resource-lists/list",
            "r/~~/resource-lists/list[1]",
            "r/~~/resource-lists/list[@name=x]",
            "r/~~/resource-lists/display-name[@x=\"y\"]",
            "r/~~/resource-lists/list%5",
            "r/~~/resource-lists/list%ff[@name='a']",
        ] {
            assert_eq!(xcap_selection(bad), None, "{bad}");
        }
    }

    #[test]
    fn references_are_sip_uris_or_xcap_lists_in_the_domain_given() {
        let sel = "http://x/~~/resource-lists/list%5b@name=%22team%22%5d";
        assert_eq!(
            list_reference(sel, Some("example.test")).unwrap(),
            Uri::parse("sip:team@example.test").unwrap()
        );
        assert!(list_reference(sel, None)
            .unwrap_err()
            .contains("give one --domain"));
        assert_eq!(
            list_reference(" sip:other@x ", None).unwrap(),
            Uri::parse("sip:other@x").unwrap()
        );
        assert!(list_reference("http://x/index", Some("x"))
            .unwrap_err()
            .contains("neither a SIP URI"));
    }
}
