//! XCAP URIs (RFC 4825 §6): the document selector (`AUID/users/XUI/DOC` or
//! `AUID/global/DOC`) and the node selector after `~~` (element steps by name, position and
//! attribute), and what a node selector picks in, inserts into or removes from an element
//! tree.
//!
//! Supported steps: `name`, `*`, `name[N]`, `name[@attr="value"]`, `name[N][@attr="value"]`
//! (single or double quotes), prefixed names. A prefix is bound by the URI's query
//! (`?xmlns(pr=urn:ietf:params:xml:ns:pres-rules)`, RFC 4825 §6.4); an unprefixed name is
//! in the app usage's default namespace. Attribute (`@name`) and namespace (`namespace::*`)
//! terminal selectors are refused as unsupported.
#![forbid(unsafe_code)]

use crate::doc::Element;
use crate::uri::percent_decode;

/// Where a request points: a document, and maybe a node in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The application usage (`pres-rules`, `xcap-caps`).
    pub auid: String,
    /// `Some(XUI)` for a user's document, `None` for a global one.
    pub xui: Option<String>,
    /// The document name (`index`).
    pub document: String,
    /// The node selector's steps; empty: the whole document.
    pub steps: Vec<Step>,
}

/// One step of a node selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Namespace URI and local name; `None`: `*` (any element).
    pub name: Option<(String, String)>,
    /// `[N]`, from 1.
    pub position: Option<usize>,
    /// `[@attr="value"]` (attribute in no namespace).
    pub attribute: Option<(String, String)>,
}

impl Step {
    fn names(&self, e: &Element) -> bool {
        match &self.name {
            None => true,
            Some((ns, local)) => e.namespace == *ns && e.name == *local,
        }
    }

    /// Whether `e` satisfies the step's name and attribute tests.
    pub fn accepts(&self, e: &Element) -> bool {
        self.names(e)
            && self
                .attribute
                .as_ref()
                .map_or(true, |(a, v)| e.attribute("", a) == Some(v.as_str()))
    }
}

/// Reads a request target's path and query below the XCAP root (the part after the root,
/// starting with `/`). `default_ns` is the namespace of unprefixed names; `Err` says why
/// the URI is not one.
pub fn parse(path: &str, query: Option<&str>, default_ns: &str) -> Result<Selector, String> {
    let (doc, node) = match path.find("/~~/") {
        Some(i) => (&path[..i], Some(&path[i + 4..])),
        None => (path, None),
    };
    let segments: Vec<String> = doc
        .strip_prefix('/')
        .ok_or("the path does not start with '/'")?
        .split('/')
        .map(|s| percent_decode(s).ok_or_else(|| format!("broken %-escape in '{s}'")))
        .collect::<Result<_, _>>()?;
    let (auid, xui, document) = match segments.as_slice() {
        [auid, g, document] if g == "global" => (auid, None, document),
        [auid, u, xui, document] if u == "users" => (auid, Some(xui.clone()), document),
        _ => {
            return Err(
                "expected AUID/users/XUI/DOCUMENT or AUID/global/DOCUMENT after the XCAP root"
                    .into(),
            )
        }
    };
    if auid.is_empty() || document.is_empty() || xui.as_deref() == Some("") {
        return Err("an empty AUID, XUI or document name".into());
    }
    let bindings = namespace_bindings(query.unwrap_or(""))?;
    let steps = match node {
        None => Vec::new(),
        Some(node) => {
            let node = percent_decode(node).ok_or("broken %-escape in the node selector")?;
            parse_steps(&node, default_ns, &bindings)?
        }
    };
    Ok(Selector {
        auid: auid.clone(),
        xui,
        document: document.clone(),
        steps,
    })
}

/// The `xmlns(prefix=namespace)` entries of the query (RFC 4825 §6.4).
fn namespace_bindings(query: &str) -> Result<Vec<(String, String)>, String> {
    let query = percent_decode(query).ok_or("broken %-escape in the query")?;
    let mut out = Vec::new();
    let mut rest = query.trim();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix("xmlns(")
            .ok_or_else(|| format!("query '{query}': only xmlns(prefix=namespace) entries"))?;
        let end = inner
            .find(')')
            .ok_or_else(|| format!("query '{query}': xmlns( without ')'"))?;
        let (prefix, ns) = inner[..end]
            .split_once('=')
            .ok_or_else(|| format!("query '{query}': xmlns(prefix=namespace)"))?;
        out.push((prefix.trim().to_owned(), ns.trim().to_owned()));
        rest = inner[end + 1..].trim_start();
    }
    Ok(out)
}

/// Splits at `/` outside quotes and reads each step.
fn parse_steps(
    node: &str,
    default_ns: &str,
    bindings: &[(String, String)],
) -> Result<Vec<Step>, String> {
    let mut parts = Vec::new();
    let mut quote = None;
    let mut start = 0;
    for (i, c) in node.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('/', None) => {
                parts.push(&node[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(format!("node selector '{node}': an unclosed quote"));
    }
    parts.push(&node[start..]);
    parts
        .into_iter()
        .map(|p| parse_step(p, default_ns, bindings))
        .collect()
}

fn parse_step(text: &str, default_ns: &str, bindings: &[(String, String)]) -> Result<Step, String> {
    let bad = |why: &str| format!("node selector step '{text}': {why}");
    if text.starts_with('@') || text.starts_with("namespace::") {
        return Err(bad(
            "attribute and namespace selectors are not supported (select an element)",
        ));
    }
    let name_end = text.find('[').unwrap_or(text.len());
    let name = &text[..name_end];
    let name = if name == "*" {
        None
    } else {
        let (ns, local) = match name.split_once(':') {
            Some((prefix, local)) => {
                let ns = bindings
                    .iter()
                    .rev()
                    .find(|(p, _)| p == prefix)
                    .map(|(_, n)| n.clone())
                    .ok_or_else(|| bad(&format!("prefix '{prefix}' is not bound by xmlns()")))?;
                (ns, local)
            }
            None => (default_ns.to_owned(), name),
        };
        if local.is_empty()
            || !local
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad("not an element name"));
        }
        Some((ns, local.to_owned()))
    };
    let mut step = Step {
        name,
        position: None,
        attribute: None,
    };
    let mut rest = &text[name_end..];
    while let Some(inner) = rest.strip_prefix('[') {
        let end = predicate_end(inner).ok_or_else(|| bad("a '[' without ']'"))?;
        let predicate = &inner[..end];
        rest = &inner[end + 1..];
        if let Some(attr) = predicate.strip_prefix('@') {
            if step.attribute.is_some() {
                return Err(bad("two attribute tests"));
            }
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad("[@name=\"value\"]"))?;
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .ok_or_else(|| bad("the attribute value is not quoted"))?;
            step.attribute = Some((name.trim().to_owned(), unquoted.to_owned()));
        } else {
            if step.position.is_some() || step.attribute.is_some() {
                return Err(bad("a position comes first, once"));
            }
            let n: usize = predicate
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("a position is a number from 1"))?;
            step.position = Some(n);
        }
    }
    if !rest.is_empty() {
        return Err(bad("text after the predicates"));
    }
    Ok(step)
}

/// The index of the `]` closing a predicate, outside quotes.
fn predicate_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (']', None) => return Some(i),
            _ => {}
        }
    }
    None
}

/// The children of `parent` one step picks: by name, then the N-th of those, then by
/// attribute (XPath's order for `name[N][@a="v"]`).
fn candidates(parent: &Element, step: &Step) -> Vec<usize> {
    let named: Vec<usize> = (0..parent.children.len())
        .filter(|&i| step.names(&parent.children[i]))
        .collect();
    let positioned = match step.position {
        Some(n) => named.get(n - 1).map(|&i| vec![i]).unwrap_or_default(),
        None => named,
    };
    positioned
        .into_iter()
        .filter(|&i| step.accepts(&parent.children[i]))
        .collect()
}

/// The path (child indices from the root) of the one element `steps` select; `None` when
/// they select none or more than one (RFC 4825 §6.3: then nothing is selected). The first
/// step selects the root.
pub fn select(root: &Element, steps: &[Step]) -> Option<Vec<usize>> {
    let (first, rest) = steps.split_first()?;
    if first.position.is_some_and(|n| n != 1) || !first.accepts(root) {
        return None;
    }
    let mut path = Vec::new();
    let mut at = root;
    for step in rest {
        let found = candidates(at, step);
        let [i] = found.as_slice() else { return None };
        path.push(*i);
        at = &at.children[*i];
    }
    Some(path)
}

/// The element at `path`.
pub fn at<'e>(root: &'e Element, path: &[usize]) -> &'e Element {
    path.iter().fold(root, |e, &i| &e.children[i])
}

/// The element at `path`, mutable.
pub fn at_mut<'e>(root: &'e mut Element, path: &[usize]) -> &'e mut Element {
    path.iter().fold(root, |e, &i| &mut e.children[i])
}

/// Where a new element for the last step goes among `parent`'s children (RFC 4825 §8.2.3):
/// with a position N, after the (N-1)-th sibling of its name (there must be N-1); without,
/// after the last sibling of its name, or at the end.
pub fn insertion_index(parent: &Element, last: &Step) -> Option<usize> {
    let named: Vec<usize> = (0..parent.children.len())
        .filter(|&i| last.names(&parent.children[i]))
        .collect();
    match last.position {
        Some(1) => Some(named.first().copied().unwrap_or(parent.children.len())),
        Some(n) => named.get(n - 2).map(|i| i + 1),
        None => Some(named.last().map_or(parent.children.len(), |i| i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::Limits;

    const CP: &str = "urn:ietf:params:xml:ns:common-policy";
    const PR: &str = "urn:ietf:params:xml:ns:pres-rules";

    fn doc() -> Element {
        Element::parse(
            &format!(
                "<ruleset xmlns='{CP}' xmlns:pr='{PR}'><rule id='a'><actions>\
                 <pr:sub-handling>allow</pr:sub-handling></actions></rule><rule id='b'/>\
                 <rule id='c/d'/></ruleset>"
            ),
            &Limits::DEFAULT,
        )
        .unwrap()
    }

    #[test]
    fn document_selectors() {
        let s = parse("/pres-rules/users/sip%3Aalice%40x/index", None, CP).unwrap();
        assert_eq!(s.auid, "pres-rules");
        assert_eq!(s.xui.as_deref(), Some("sip:alice@x"));
        assert_eq!(s.document, "index");
        assert!(s.steps.is_empty());
        let s = parse("/xcap-caps/global/index", None, CP).unwrap();
        assert_eq!(s.xui, None);
        for bad in [
            "/pres-rules/index",
            "/pres-rules/users//index",
            "pres-rules/global/index",
            "/a/users/b%zz/index",
            "/a/people/b/index",
        ] {
            assert!(parse(bad, None, CP).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_selectors_pick_by_name_position_and_attribute() {
        let root = doc();
        let sel = |node: &str, query: Option<&str>| {
            let s = parse(
                &format!("/pres-rules/users/sip:a@x/index/~~/{node}"),
                query,
                CP,
            )
            .unwrap_or_else(|e| panic!("{node}: {e}"));
            select(&root, &s.steps)
        };
        assert_eq!(sel("ruleset", None), Some(vec![]));
        assert_eq!(sel("ruleset/rule%5b@id=%22b%22%5d", None), Some(vec![1]));
        assert_eq!(sel("ruleset/rule[@id='c/d']", None), Some(vec![2]));
        assert_eq!(sel("ruleset/rule[2]", None), Some(vec![1]));
        assert_eq!(sel("ruleset/*[3]", None), Some(vec![2]));
        assert_eq!(sel("ruleset/rule[1][@id=\"a\"]", None), Some(vec![0]));
        assert_eq!(sel("ruleset/rule[1][@id=\"b\"]", None), None);
        // More than one selected: none.
        assert_eq!(sel("ruleset/rule", None), None);
        assert_eq!(sel("ruleset/rule[4]", None), None);
        let q = Some("xmlns(p=urn:ietf:params:xml:ns:pres-rules)");
        assert_eq!(
            sel("ruleset/rule[@id=\"a\"]/actions/p:sub-handling", q),
            Some(vec![0, 0, 0])
        );
        // Unprefixed is the default namespace: sub-handling is not in it.
        assert_eq!(
            sel("ruleset/rule[@id=\"a\"]/actions/sub-handling", None),
            None
        );
        for bad in [
            "ruleset/p:x",
            "ruleset/rule[0]",
            "ruleset/rule[@id=a]",
            "ruleset/rule[@id='a'",
            "ruleset/@id",
            "ruleset/rule[@id='a'][2]",
            "ruleset/ru le",
        ] {
            assert!(
                parse(
                    &format!("/pres-rules/users/sip:a@x/index/~~/{bad}"),
                    None,
                    CP
                )
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn insertion_follows_the_siblings_of_the_name() {
        let root = doc();
        let step = |position| Step {
            name: Some((CP.into(), "rule".into())),
            position,
            attribute: None,
        };
        assert_eq!(insertion_index(&root, &step(None)), Some(3));
        assert_eq!(insertion_index(&root, &step(Some(1))), Some(0));
        assert_eq!(insertion_index(&root, &step(Some(2))), Some(1));
        assert_eq!(insertion_index(&root, &step(Some(4))), Some(3));
        assert_eq!(insertion_index(&root, &step(Some(5))), None);
    }
}
