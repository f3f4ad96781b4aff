//! Resource lists as data (RFC 4826 lists, served by an RFC 4662 list server): a URI that
//! stands for several resources, so that one subscription to it watches them all (a desk
//! phone's busy-lamp panel, a team's buddy list). The engine keeps them
//! (`engine::Core::set_list`), the stores persist them; the list server serves them.
//!
//! # What a list is
//!
//! A [`ResourceList`] has a URI (of a domain the engine owns), an optional display name, the
//! event packages it serves ([`LIST_PACKAGES`]: `presence` and `dialog`; `presence` when none
//! is named) and ordered entries ([`ListEntry`]): a resource (a URI with an optional display
//! name), or a reference to another list by its URI. Order matters: it is the order of a
//! phone's keys.
//!
//! # Identity
//!
//! A list is named by the [`presentity_key`] of its URI, as a presentity is (scheme and
//! parameters do not count: `sip:sales@x` and `pres:sales@x` are one list); so are the
//! resources and references within it.
//!
//! # Rules (checked before anything changes; a refusal is [`Error::InvalidArgument`])
//!
//! - At most [`MAX_ENTRIES`] (500) entries in one list; a display name is 1 to
//!   [`MAX_DISPLAY_NAME`] (256) characters without control characters.
//! - No resource twice in one list, no list referenced twice by one list, and no list naming
//!   itself (as a resource or a reference).
//! - A reference may name a list that does not exist (yet): it expands to nothing until the
//!   list is set. But no list may reach itself through references (a cycle), whichever
//!   change would close it: setting a list that references one that (through others)
//!   references it back is refused.
//! - Nesting: a list without references is one level deep, each reference adds one; at most
//!   [`MAX_DEPTH`] (8) levels.
//! - A list expands ([`ListTable::expand`]) to at most [`MAX_RESOURCES`] (1000) distinct
//!   resources, references followed. Setting a list is refused when it, or any list that
//!   reaches it through references, would expand to more.
//!
//! # Expansion
//!
//! A list's resources in order: its entries, each reference replaced by the expansion of the
//! list it names, depth first; a resource met again (by key) is skipped, the first one met
//! (with its display name) is kept; a list met again is skipped (its resources are already
//! there); a reference to a missing list is skipped.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::key::presentity_key;
use super::package::Package;
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The most entries one list holds.
pub const MAX_ENTRIES: usize = 500;

/// The most distinct resources a list expands to, references followed.
pub const MAX_RESOURCES: usize = 1000;

/// The deepest nesting of lists through references (a list without references is 1 deep).
pub const MAX_DEPTH: usize = 8;

/// The longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 256;

/// The event packages a list may serve: `presence` (buddy lists) and `dialog` (busy lamps).
pub const LIST_PACKAGES: [Package; 2] = [Package::Presence, Package::Dialog];

/// A resource of a list: what a list subscription watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its URI.
    pub uri: Uri,
    /// How the list shows it (a key's label), if named.
    pub display_name: Option<String>,
}

impl Resource {
    /// A resource without a display name.
    pub fn new(uri: Uri) -> Resource {
        Resource {
            uri,
            display_name: None,
        }
    }

    /// A resource with a display name.
    pub fn named(uri: Uri, display_name: impl Into<String>) -> Resource {
        Resource {
            uri,
            display_name: Some(display_name.into()),
        }
    }
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// A resource.
    Resource(Resource),
    /// Every resource of another list, by the list's URI.
    Reference(Uri),
}

impl ListEntry {
    /// The URI the entry names (the resource's, or the referenced list's).
    pub fn uri(&self) -> &Uri {
        match self {
            ListEntry::Resource(r) => &r.uri,
            ListEntry::Reference(uri) => uri,
        }
    }
}

/// A resource list (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceList {
    /// The list's URI: what a list subscription names.
    pub uri: Uri,
    /// The list's display name, if any.
    pub display_name: Option<String>,
    /// The packages it serves, among [`LIST_PACKAGES`]; empty means `presence`. A checked
    /// list ([`ResourceList::checked`], and so every list the engine or a store gives back)
    /// names them in [`Package`] order, each once, and never none.
    pub packages: Vec<Package>,
    /// Its entries, in order.
    pub entries: Vec<ListEntry>,
}

impl ResourceList {
    /// An empty list serving `presence`.
    pub fn new(uri: Uri) -> ResourceList {
        ResourceList {
            uri,
            display_name: None,
            packages: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// The list's identity ([`presentity_key`] of its URI).
    pub fn key(&self) -> String {
        presentity_key(&self.uri)
    }

    /// Appends a resource.
    pub fn push_resource(&mut self, uri: Uri, display_name: Option<String>) {
        self.entries
            .push(ListEntry::Resource(Resource { uri, display_name }));
    }

    /// Appends a reference to another list.
    pub fn push_reference(&mut self, list: Uri) {
        self.entries.push(ListEntry::Reference(list));
    }

    /// The packages the list serves: [`ResourceList::packages`], or `presence` when empty.
    pub fn served_packages(&self) -> Vec<Package> {
        let mut packages = self.packages.clone();
        if packages.is_empty() {
            packages.push(Package::Presence);
        }
        packages.sort();
        packages.dedup();
        packages
    }

    /// The references of the list, in order.
    pub fn references(&self) -> impl Iterator<Item = &Uri> {
        self.entries.iter().filter_map(|e| match e {
            ListEntry::Reference(uri) => Some(uri),
            ListEntry::Resource(_) => None,
        })
    }

    /// The list checked on its own (everything but what depends on other lists, which
    /// [`ListTable::insert`] checks) and normalized: packages in [`Package`] order, each
    /// once, `presence` when none was named.
    ///
    /// Errors: [`Error::InvalidArgument`] naming the list and what is wrong (see the
    /// module documentation).
    pub fn checked(mut self) -> Result<ResourceList> {
        let name = self.uri.to_string();
        if let Some(display_name) = &self.display_name {
            check_display_name(display_name, &format!("the display name of list {name}"))?;
        }
        for package in &self.packages {
            check_package(*package, &name)?;
        }
        self.packages = self.served_packages();
        check_entry_count(&name, self.entries.len())?;
        let own = self.key();
        let mut resources = HashSet::new();
        let mut references = HashSet::new();
        for entry in &self.entries {
            let key = presentity_key(entry.uri());
            match entry {
                ListEntry::Resource(r) => {
                    if key == own {
                        return Err(Error::InvalidArgument(format!(
                            "list {name} names itself as a resource"
                        )));
                    }
                    if let Some(display_name) = &r.display_name {
                        check_display_name(
                            display_name,
                            &format!("the display name of {} in list {name}", r.uri),
                        )?;
                    }
                    if !resources.insert(key) {
                        return Err(Error::InvalidArgument(format!(
                            "list {name} names resource {} twice",
                            r.uri
                        )));
                    }
                }
                ListEntry::Reference(uri) => {
                    if key == own {
                        return Err(Error::InvalidArgument(format!(
                            "list {name} references itself: a list may not reach itself \
                             through references (a cycle)"
                        )));
                    }
                    if !references.insert(key) {
                        return Err(Error::InvalidArgument(format!(
                            "list {name} references list {uri} twice"
                        )));
                    }
                }
            }
        }
        Ok(self)
    }
}

/// Whether `package` may be served by a list (`list` names the list in the message).
pub fn check_package(package: Package, list: &str) -> Result<()> {
    if LIST_PACKAGES.contains(&package) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "list {list} cannot serve {package}: a list serves presence or dialog"
        )))
    }
}

/// Whether a list may hold `count` entries.
pub fn check_entry_count(list: &str, count: usize) -> Result<()> {
    if count > MAX_ENTRIES {
        return Err(Error::InvalidArgument(format!(
            "list {list} has {count} entries; a list holds at most {MAX_ENTRIES}"
        )));
    }
    Ok(())
}

/// A display name: 1 to [`MAX_DISPLAY_NAME`] characters, no control characters (`what`
/// names it in the message).
pub fn check_display_name(display_name: &str, what: &str) -> Result<()> {
    let chars = display_name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME {
        return Err(Error::InvalidArgument(format!(
            "{what} has {chars} characters; a display name has 1 to {MAX_DISPLAY_NAME}"
        )));
    }
    if display_name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "{what} contains a control character"
        )));
    }
    Ok(())
}

/// A set of lists by key, and the rules that hold between them: what the engine holds, and
/// what `imppd list` checks a change against before writing it. Every change through
/// [`ListTable::insert`] keeps the module's rules; a table built with [`ListTable::new`]
/// from a store is taken as stored (expansion never loops, whatever it holds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListTable {
    lists: BTreeMap<String, ResourceList>,
}

impl ListTable {
    /// A table of `lists` as given (a later list with the key of an earlier one replaces it).
    pub fn new(lists: impl IntoIterator<Item = ResourceList>) -> ListTable {
        ListTable {
            lists: lists.into_iter().map(|l| (l.key(), l)).collect(),
        }
    }

    /// A table of exactly `lists`, each checked and every rule between them kept (the
    /// check of [`ListTable::insert`] for all of them at once): how a whole set of lists is
    /// replaced (`imppd`'s reload, an import). Two lists with one key are refused.
    pub fn checked(lists: impl IntoIterator<Item = ResourceList>) -> Result<ListTable> {
        let mut table = ListTable::default();
        for list in lists {
            let list = list.checked()?;
            if let Some(earlier) = table.lists.get(&list.key()) {
                return Err(Error::InvalidArgument(format!(
                    "lists {} and {} are the same list",
                    earlier.uri, list.uri
                )));
            }
            table.lists.insert(list.key(), list);
        }
        let view = table.view(None);
        for key in table.lists.keys() {
            if let Some(path) = view.cycle_through(key) {
                return Err(cycle_error(&path));
            }
        }
        for key in table.lists.keys() {
            view.check_bounds(key, None)?;
        }
        Ok(table)
    }

    /// The number of lists.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The list named `uri`, if any.
    pub fn get(&self, uri: &Uri) -> Option<&ResourceList> {
        self.lists.get(&presentity_key(uri))
    }

    /// Every list, by key (the order of [`crate::store::Snapshot::lists`]).
    pub fn lists(&self) -> impl Iterator<Item = &ResourceList> {
        self.lists.values()
    }

    /// The lists that reference `uri` (directly), by key.
    pub fn referrers(&self, uri: &Uri) -> Vec<&ResourceList> {
        let key = presentity_key(uri);
        self.lists
            .values()
            .filter(|l| l.references().any(|r| presentity_key(r) == key))
            .collect()
    }

    /// Checks `list` as [`ResourceList::checked`] does and against the other lists (cycles,
    /// depth, expansion: see the module documentation), as if it replaced the list with its
    /// key, and returns it normalized. The table does not change. Errors:
    /// [`Error::InvalidArgument`].
    pub fn check(&self, list: ResourceList) -> Result<ResourceList> {
        let list = list.checked()?;
        let key = list.key();
        let view = self.view(Some((&key, &list)));
        if let Some(path) = view.cycle_through(&key) {
            return Err(cycle_error(&path));
        }
        // The lists whose depth or expansion the change can alter: it and every list that
        // reaches it.
        view.check_bounds(&key, Some(&key))?;
        for k in view.ancestors(&key) {
            view.check_bounds(&k, Some(&key))?;
        }
        Ok(list)
    }

    /// Adds `list`, or replaces the list with its key, once [`ListTable::check`] accepts it;
    /// returns the list replaced. Refused: nothing changes.
    pub fn insert(&mut self, list: ResourceList) -> Result<Option<ResourceList>> {
        let list = self.check(list)?;
        Ok(self.lists.insert(list.key(), list))
    }

    /// Sets `list` as it is, without a check: for a list [`ListTable::check`] accepted
    /// against this same table (the engine checks, stores, then sets); returns the list
    /// replaced.
    pub(crate) fn put(&mut self, list: ResourceList) -> Option<ResourceList> {
        self.lists.insert(list.key(), list)
    }

    /// Removes the list named `uri`; returns it. References to it stay (they expand to
    /// nothing until it is set again).
    pub fn remove(&mut self, uri: &Uri) -> Option<ResourceList> {
        self.lists.remove(&presentity_key(uri))
    }

    /// The resources of the list named `uri` (see "Expansion" in the module documentation),
    /// or `None` when there is no such list.
    pub fn expand(&self, uri: &Uri) -> Option<Vec<Resource>> {
        let key = presentity_key(uri);
        self.lists
            .contains_key(&key)
            .then(|| self.view(None).expand_key(&key, usize::MAX).0)
    }

    /// The table as it would be with `changed` (key, list) set.
    fn view<'a>(&'a self, changed: Option<(&'a str, &'a ResourceList)>) -> View<'a> {
        View {
            lists: &self.lists,
            changed,
        }
    }
}

/// A table with one list set or replaced, without changing (or copying) the table: what a
/// change is checked against.
struct View<'a> {
    lists: &'a BTreeMap<String, ResourceList>,
    changed: Option<(&'a str, &'a ResourceList)>,
}

impl<'a> View<'a> {
    fn get(&self, key: &str) -> Option<&'a ResourceList> {
        match self.changed {
            Some((k, list)) if k == key => Some(list),
            _ => self.lists.get(key),
        }
    }

    /// Every list with its key.
    fn all(&self) -> impl Iterator<Item = (&'a str, &'a ResourceList)> + '_ {
        let added = self
            .changed
            .filter(|(k, _)| !self.lists.contains_key(*k))
            .into_iter();
        self.lists
            .keys()
            .map(|k| (k.as_str(), self.get(k).expect("a key of the table")))
            .chain(added)
    }

    /// The expansion of the list `key` (which exists), stopping once it holds more than
    /// `limit` resources; and whether it stopped.
    fn expand_key(&self, key: &str, limit: usize) -> (Vec<Resource>, bool) {
        let mut resources = Vec::new();
        let Some(first) = self.get(key) else {
            return (resources, false);
        };
        let mut seen_resources = HashSet::new();
        let mut seen_lists = HashSet::from([key.to_owned()]);
        // Depth first without recursion: (list, next entry) per level.
        let mut stack: Vec<(&ResourceList, usize)> = vec![(first, 0)];
        while let Some((list, at)) = stack.pop() {
            let Some(entry) = list.entries.get(at) else {
                continue;
            };
            stack.push((list, at + 1));
            match entry {
                ListEntry::Resource(r) => {
                    if seen_resources.insert(presentity_key(&r.uri)) {
                        resources.push(r.clone());
                        if resources.len() > limit {
                            return (resources, true);
                        }
                    }
                }
                ListEntry::Reference(uri) => {
                    let k = presentity_key(uri);
                    if let Some(next) = self.get(&k) {
                        if seen_lists.insert(k) {
                            stack.push((next, 0));
                        }
                    }
                }
            }
        }
        (resources, false)
    }

    /// A path of references from `key` back to itself, if there is one: the URIs of the
    /// lists on it, `key`'s first and last.
    fn cycle_through(&self, key: &str) -> Option<Vec<String>> {
        // Depth first over existing lists, remembering how each was reached.
        let mut came_from: HashMap<String, String> = HashMap::new();
        let mut stack = vec![key.to_owned()];
        while let Some(k) = stack.pop() {
            let Some(list) = self.get(&k) else {
                continue;
            };
            for r in list.references() {
                let next = presentity_key(r);
                if next == key {
                    let mut path = vec![k.clone()];
                    let mut at = k.clone();
                    while at != key {
                        at = came_from[&at].clone();
                        path.push(at.clone());
                    }
                    path.reverse();
                    path.push(key.to_owned());
                    return Some(
                        path.iter()
                            .map(|k| self.get(k).expect("on the path").uri.to_string())
                            .collect(),
                    );
                }
                if self.get(&next).is_some() && !came_from.contains_key(&next) {
                    came_from.insert(next.clone(), k.clone());
                    stack.push(next);
                }
            }
        }
        None
    }

    /// The keys of every list that reaches `key` through references (not `key` itself).
    fn ancestors(&self, key: &str) -> Vec<String> {
        let mut referrers: HashMap<String, Vec<&str>> = HashMap::new();
        for (k, list) in self.all() {
            for r in list.references() {
                referrers.entry(presentity_key(r)).or_default().push(k);
            }
        }
        let mut found = Vec::new();
        let mut seen = HashSet::from([key.to_owned()]);
        let mut stack = vec![key.to_owned()];
        while let Some(k) = stack.pop() {
            for r in referrers.get(&k).into_iter().flatten() {
                if seen.insert((*r).to_owned()) {
                    found.push((*r).to_owned());
                    stack.push((*r).to_owned());
                }
            }
        }
        found
    }

    /// How many levels deep the list `key` nests (1: no reference to an existing list), when
    /// it is `level` levels below the list being measured; a list below [`MAX_DEPTH`] levels
    /// counts as 1, so the answer is above [`MAX_DEPTH`] exactly when the nesting is, and
    /// the walk ends even on a cycle (only in a table not built by [`ListTable::insert`]).
    /// Memoized in `memo`.
    fn depth(&self, key: &str, memo: &mut HashMap<String, usize>, level: usize) -> usize {
        if let Some(d) = memo.get(key) {
            return *d;
        }
        let Some(list) = self.get(key) else {
            return 0;
        };
        if level >= MAX_DEPTH {
            return 1;
        }
        let deepest = list
            .references()
            .map(|r| self.depth(&presentity_key(r), memo, level + 1))
            .max()
            .unwrap_or(0);
        memo.insert(key.to_owned(), deepest + 1);
        deepest + 1
    }

    /// Checks the depth and the expansion of the list `key` (`changed`: the key of the list
    /// being set, named in the message when it is not `key`).
    fn check_bounds(&self, key: &str, changed: Option<&str>) -> Result<()> {
        let list = self.get(key).expect("a list of the view");
        let because = match changed.and_then(|c| self.get(c)) {
            Some(c) if c.key() != key => format!(" once {} is set", c.uri),
            _ => String::new(),
        };
        if self.depth(key, &mut HashMap::new(), 0) > MAX_DEPTH {
            return Err(Error::InvalidArgument(format!(
                "list {} would nest more than {MAX_DEPTH} levels deep{because}; lists nest at \
                 most {MAX_DEPTH} levels",
                list.uri
            )));
        }
        let (_, over) = self.expand_key(key, MAX_RESOURCES);
        if over {
            return Err(Error::InvalidArgument(format!(
                "list {} would expand to more than {MAX_RESOURCES} resources{because}; a \
                 list expands to at most {MAX_RESOURCES}",
                list.uri
            )));
        }
        Ok(())
    }
}

/// The refusal of a cycle, naming its path by URI.
fn cycle_error(path: &[String]) -> Error {
    Error::InvalidArgument(format!(
        "lists may not reach themselves through references: {} is a cycle",
        path.join(" -> ")
    ))
}

impl fmt::Display for ResourceList {
    /// `URI (packages): N entries`, for log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let packages: Vec<&str> = self.served_packages().iter().map(|p| p.as_str()).collect();
        write!(
            f,
            "{} ({}): {} entries",
            self.uri,
            packages.join(", "),
            self.entries.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    /// A list `name@x` with resources `r` and references to lists `l`.
    fn list(name: &str, resources: &[&str], references: &[&str]) -> ResourceList {
        let mut l = ResourceList::new(uri(&format!("sip:{name}@x")));
        for r in resources {
            l.push_resource(uri(&format!("sip:{r}@x")), None);
        }
        for r in references {
            l.push_reference(uri(&format!("sip:{r}@x")));
        }
        l
    }

    fn message(e: Error) -> String {
        match e {
            Error::InvalidArgument(m) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn names(resources: &[Resource]) -> Vec<String> {
        resources
            .iter()
            .map(|r| r.uri.user().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_checked_list_serves_presence_by_default_and_names_packages_once_in_order() {
        let l = list("a", &["b"], &[]).checked().unwrap();
        assert_eq!(l.packages, vec![Package::Presence]);
        let mut l = list("a", &["b"], &[]);
        l.packages = vec![Package::Dialog, Package::Presence, Package::Dialog];
        assert_eq!(
            l.checked().unwrap().packages,
            vec![Package::Presence, Package::Dialog]
        );
        let mut l = list("a", &[], &[]);
        l.packages = vec![Package::MessageSummary];
        assert!(message(l.checked().unwrap_err()).contains("cannot serve message-summary"));
    }

    #[test]
    fn one_list_is_checked_on_its_own() {
        let cases: Vec<(ResourceList, &str)> = vec![
            (
                list("a", &["b", "c", "b"], &[]),
                "names resource sip:b@x twice",
            ),
            (list("a", &[], &["b", "b"]), "references list sip:b@x twice"),
            (list("a", &[], &["a"]), "references itself"),
            (list("a", &["a"], &[]), "names itself as a resource"),
            (
                {
                    let mut l = list("a", &[], &[]);
                    l.push_resource(uri("pres:b@x"), None);
                    l.push_resource(uri("sip:b@x;transport=tcp"), None);
                    l
                },
                "twice",
            ),
            (
                {
                    let mut l = list("a", &[], &[]);
                    l.display_name = Some(String::new());
                    l
                },
                "1 to 256",
            ),
            (
                {
                    let mut l = list("a", &[], &[]);
                    l.push_resource(uri("sip:b@x"), Some("tab\there".into()));
                    l
                },
                "control character",
            ),
            (
                {
                    let mut l = list("a", &[], &[]);
                    l.display_name = Some("é".repeat(257));
                    l
                },
                "257 characters",
            ),
        ];
        for (l, wanted) in cases {
            let m = message(l.clone().checked().unwrap_err());
            assert!(m.contains(wanted), "{l:?}: {m}");
        }
        let mut l = list("a", &[], &[]);
        l.display_name = Some("é".repeat(256));
        l.push_resource(uri("sip:b@x"), Some("Bob".into()));
        l.checked().unwrap();
    }

    #[test]
    fn a_list_holds_at_most_500_entries() {
        let names: Vec<String> = (0..MAX_ENTRIES).map(|i| format!("r{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let full = list("a", &refs, &[]);
        ListTable::default().check(full.clone()).unwrap();
        let mut over = full;
        over.push_reference(uri("sip:other@x"));
        let m = message(over.checked().unwrap_err());
        assert!(
            m.contains("501 entries") && m.contains("at most 500"),
            "{m}"
        );
    }

    #[test]
    fn expansion_follows_references_in_order_once_each_and_skips_missing_lists() {
        let mut t = ListTable::default();
        let mut top = list("top", &["a"], &["team", "missing", "other"]);
        top.push_resource(uri("sip:z@x"), None);
        t.insert(top).unwrap();
        assert_eq!(names(&t.expand(&uri("sip:top@x")).unwrap()), ["a", "z"]);
        t.insert(list("team", &["b", "a", "c"], &["other"]))
            .unwrap();
        t.insert(list("other", &["c", "d"], &[])).unwrap();
        assert_eq!(
            names(&t.expand(&uri("pres:top@x")).unwrap()),
            ["a", "b", "c", "d", "z"]
        );
        // The first display name met is kept.
        let mut named = list("named", &[], &["team"]);
        named.entries.insert(
            0,
            ListEntry::Resource(Resource::named(uri("sip:c@x"), "Carol")),
        );
        t.insert(named).unwrap();
        let expanded = t.expand(&uri("sip:named@x")).unwrap();
        assert_eq!(names(&expanded), ["c", "b", "a", "d"]);
        assert_eq!(expanded[0].display_name.as_deref(), Some("Carol"));
        assert!(t.expand(&uri("sip:missing@x")).is_none());
        // Removing a referenced list leaves the reference, expanding to nothing.
        t.remove(&uri("sip:team@x")).unwrap();
        assert_eq!(
            names(&t.expand(&uri("sip:top@x")).unwrap()),
            ["a", "c", "d", "z"]
        );
    }

    #[test]
    fn cycles_are_refused_whichever_change_closes_them_and_nothing_changes() {
        let mut t = ListTable::default();
        t.insert(list("a", &["r"], &["b"])).unwrap(); // b does not exist yet
        t.insert(list("b", &[], &["c"])).unwrap();
        let before = t.clone();
        let m = message(t.insert(list("c", &["s"], &["a"])).unwrap_err());
        assert!(
            m.contains("sip:c@x -> sip:a@x -> sip:b@x -> sip:c@x is a cycle"),
            "{m}"
        );
        assert_eq!(t, before);
        // Replacing a list by one that closes a cycle is refused too.
        t.insert(list("c", &["s"], &[])).unwrap();
        let m = message(t.insert(list("b", &[], &["c", "a"])).unwrap_err());
        assert!(m.contains("sip:b@x -> sip:a@x -> sip:b@x"), "{m}");
        // A diamond is not a cycle.
        t.insert(list("d", &[], &["b", "c"])).unwrap();
        assert_eq!(names(&t.expand(&uri("sip:a@x")).unwrap()), ["r", "s"]);
        // Nor is a list's URI named as a resource of another.
        t.insert(list("e", &["a"], &["a"])).unwrap();
    }

    #[test]
    fn nesting_is_at_most_8_levels_from_any_list() {
        // l1 -> l2 -> ... -> l8: 8 levels.
        let mut t = ListTable::default();
        for i in 1..=MAX_DEPTH {
            let next = format!("l{}", i + 1);
            let refs: Vec<&str> = if i < MAX_DEPTH { vec![&next] } else { vec![] };
            t.insert(list(&format!("l{i}"), &["r"], &refs)).unwrap();
        }
        // l8 may reference l9 while it does not exist (still 8 levels), but l9 cannot be set
        // then: it would make l1 nine deep.
        t.insert(list("l8", &["r"], &["l9"])).unwrap();
        let before = t.clone();
        let m = message(t.insert(list("l9", &["q"], &[])).unwrap_err());
        assert!(
            m.contains("list sip:l1@x would nest more than 8 levels deep once sip:l9@x is set"),
            "{m}"
        );
        assert_eq!(t, before);
        // A new list on top of l1 is 9 levels itself.
        let m = message(t.insert(list("l0", &[], &["l1"])).unwrap_err());
        assert!(
            m.contains("list sip:l0@x would nest more than 8 levels"),
            "{m}"
        );
    }

    fn numbered(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    #[test]
    fn expansion_is_at_most_1000_resources_from_any_list() {
        let (a, b, c) = (numbered("a", 400), numbered("b", 400), numbered("c", 201));
        let mut t = ListTable::default();
        t.insert(list("all", &[], &["la", "lb", "lc"])).unwrap();
        t.insert(list("la", &strs(&a), &[])).unwrap();
        t.insert(list("lb", &strs(&b), &[])).unwrap();
        // 400 + 400 + 200 = 1000: fine; 201 is one too many.
        t.insert(list("lc", &strs(&c[..200]), &[])).unwrap();
        assert_eq!(t.expand(&uri("sip:all@x")).unwrap().len(), 1000);
        let before = t.clone();
        let m = message(t.insert(list("lc", &strs(&c), &[])).unwrap_err());
        assert!(
            m.contains(
                "list sip:all@x would expand to more than 1000 resources once sip:lc@x is set"
            ),
            "{m}"
        );
        assert_eq!(t, before);
        // Resources shared between the lists count once.
        let mut shared = strs(&c);
        shared[200] = "a0";
        t.insert(list("lc", &shared, &[])).unwrap();
    }

    #[test]
    fn a_whole_set_of_lists_is_checked_together() {
        let ok = ListTable::checked(vec![
            list("a", &["r"], &["b"]),
            list("b", &["s"], &["missing"]),
        ])
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(names(&ok.expand(&uri("sip:a@x")).unwrap()), ["r", "s"]);
        let m = message(
            ListTable::checked(vec![list("a", &[], &["b"]), list("b", &[], &["a"])]).unwrap_err(),
        );
        assert!(m.contains("is a cycle"), "{m}");
        let m = message(
            ListTable::checked(vec![list("a", &[], &[]), {
                let mut l = list("a", &["r"], &[]);
                l.uri = uri("pres:a@x");
                l
            }])
            .unwrap_err(),
        );
        assert!(m.contains("are the same list"), "{m}");
    }

    #[test]
    fn a_stored_table_with_a_cycle_still_expands_and_measures() {
        // Only a damaged store could hold this; expansion must not loop.
        let t = ListTable::new(vec![list("a", &["r"], &["b"]), list("b", &["s"], &["a"])]);
        assert_eq!(names(&t.expand(&uri("sip:a@x")).unwrap()), ["r", "s"]);
        assert_eq!(names(&t.expand(&uri("sip:b@x")).unwrap()), ["s", "r"]);
        assert!(t.view(None).depth("a@x", &mut HashMap::new(), 0) > MAX_DEPTH);
    }
}
