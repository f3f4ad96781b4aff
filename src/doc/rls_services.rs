//! Resource list services (`application/rls-services+xml`, RFC 4826 §4): the URIs a list
//! server answers, and what each one expands to.
//!
//! An `<rls-services>` document holds `<service uri="...">`s. A SUBSCRIBE to a service's
//! URI is a list subscription (RFC 4662) to the resources of its list: either a
//! `<resource-list>`, the URI of a list kept elsewhere (usually an XCAP URI into a
//! [`resource_lists`](crate::doc::resource_lists) document), or an inline `<list>` (the
//! resource-lists list type, with the `<list>` element itself in the rls-services namespace
//! and everything inside it in the resource-lists one). `<packages>` names the event
//! packages the service accepts; without it, any package the resources support
//! ([`Service::accepts`]).
//!
//! # What is kept, what is refused
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]):
//!
//! - Kept as [`Element`]s in the `extensions` of `<rls-services>` or `<service>` (and inside
//!   an inline list as [`resource_lists`](crate::doc::resource_lists) keeps them): elements
//!   the schema does not define there, in any namespace. Attributes this module does not
//!   know are kept as [`Attribute`]s.
//! - Refused ([`Error::Malformed`]): a wrong root element or namespace; a service without a
//!   `uri`, two services with the same `uri` (compared as [`Uri`] compares them where it
//!   knows the scheme); a service with no list, or with more than one (`<resource-list>` and
//!   `<list>` are a choice of exactly one: which one a list server would expand is not
//!   something to guess); an empty `<resource-list>`; a second `<packages>`; and a
//!   `<packages>` holding anything but `<package>` names or an empty name. The last ones are
//!   refused rather than kept because a dropped `<packages>` would mean "every package":
//!   the service would accept subscriptions its owner restricted. An inline list is checked
//!   as [`resource_lists`](crate::doc::resource_lists) checks lists.
//!
//! `parse(to_xml(d)) == d` for every parsed `d`, and for every built `d` that
//! [`RlsServices::validate`] accepts and whose values have no surrounding whitespace.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use crate::doc::ns;
use crate::doc::resource_lists::{parse_list, write_list, List};
use crate::doc::xml::{Node, Tree, XmlWriter};
use crate::doc::{Attribute, Element, Limits};
use crate::error::{Error, Result};
use crate::uri::Uri;

/// The name of this document in error messages.
const DOC: &str = "rls-services";

/// What a service expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceList {
    /// The URI of a list kept elsewhere (`<resource-list>`), e.g. an XCAP URI selecting a
    /// `<list>` of a user's resource-lists document.
    Reference(String),
    /// A list given in place (`<list>`).
    Inline(List),
}

/// One list service (`<service>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The URI watchers subscribe to, e.g. `sip:alice-buddies@example.test` (`uri`).
    pub uri: String,
    /// The resources it stands for.
    pub list: ServiceList,
    /// The event packages it accepts (`<packages>`); `None` accepts any package.
    pub packages: Option<Vec<String>>,
    /// Elements this module does not read, kept and written back after the packages.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl Service {
    /// A service at `uri` for `list`, accepting any package.
    pub fn new(uri: impl Into<String>, list: ServiceList) -> Service {
        Service {
            uri: uri.into(),
            list,
            packages: None,
            extensions: Vec::new(),
            extension_attributes: Vec::new(),
        }
    }

    /// Whether a subscription to `package` (e.g. `presence`) is one this service accepts.
    /// Package names compare case-sensitively, as event package names do (RFC 6665 §8.2.1).
    pub fn accepts(&self, package: &str) -> bool {
        self.packages
            .as_ref()
            .map_or(true, |p| p.iter().any(|x| x == package))
    }
}

/// A resource list services document (`<rls-services>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RlsServices {
    /// The services, URIs unique among them.
    pub services: Vec<Service>,
    /// Elements this module does not read, kept and written back after the services.
    pub extensions: Vec<Element>,
    /// Attributes this module does not model.
    pub extension_attributes: Vec<Attribute>,
}

impl RlsServices {
    /// The MIME type of this document.
    pub const CONTENT_TYPE: &'static str = "application/rls-services+xml";

    /// Parses an rls-services document under `limits`.
    pub fn parse(input: &str, limits: &Limits) -> Result<RlsServices> {
        let tree = Tree::parse(DOC, input, limits)?;
        let root = tree.root();
        root.expect(DOC, ns::RLS_SERVICES, "rls-services")?;
        let mut doc = RlsServices {
            extension_attributes: root.other_attrs(&[]),
            ..RlsServices::default()
        };
        for child in root.children() {
            if child.is(ns::RLS_SERVICES, "service") {
                doc.services.push(parse_service(child)?);
            } else {
                doc.extensions.push(child.to_element());
            }
        }
        unique_uris(&doc.services)?;
        Ok(doc)
    }

    /// Serializes this document; parsing the result gives a model equal to `self` (see the
    /// module documentation for built models).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new(ns::RLS_SERVICES, &[(ns::RESOURCE_LISTS, "rl")]);
        for service in &self.services {
            write_service(&mut w, service);
        }
        w.elements(&self.extensions);
        w.finish("rls-services", |w| w.ext_attrs(&self.extension_attributes))
    }

    /// The service whose URI is `uri` (compared as the uniqueness rule compares them).
    pub fn service(&self, uri: &str) -> Option<&Service> {
        let key = uri_key(uri.trim());
        self.services.iter().find(|s| uri_key(&s.uri) == key)
    }

    /// Checks a built document as parsing checks a received one.
    pub fn validate(&self) -> Result<()> {
        for s in &self.services {
            non_empty(&s.uri, "a <service> 'uri'")?;
            match &s.list {
                ServiceList::Reference(r) => non_empty(r, "<resource-list>")?,
                ServiceList::Inline(l) => l.validate()?,
            }
            for p in s.packages.iter().flatten() {
                non_empty(p, "<package>")?;
            }
        }
        unique_uris(&self.services)
    }
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

fn parse_service(node: Node<'_, '_>) -> Result<Service> {
    let uri = node.required_attr(DOC, "uri")?.trim().to_owned();
    non_empty(&uri, "a <service> 'uri'")?;
    let mut list = None;
    let mut packages = None;
    let mut extensions = Vec::new();
    for child in node.children() {
        if child.ns() != ns::RLS_SERVICES {
            extensions.push(child.to_element());
            continue;
        }
        match child.local() {
            "resource-list" | "list" => {
                if list.is_some() {
                    return Err(Error::malformed(
                        DOC,
                        format!(
                            "<service uri=\"{uri}\"> has more than one list (<resource-list> or <list>)"
                        ),
                    ));
                }
                list = Some(if child.local() == "list" {
                    ServiceList::Inline(parse_list(child)?)
                } else {
                    ServiceList::Reference(parse_reference(child, &uri)?)
                });
            }
            "packages" => {
                if packages.is_some() {
                    return Err(Error::malformed(
                        DOC,
                        format!("<service uri=\"{uri}\"> has two <packages>"),
                    ));
                }
                packages = Some(parse_packages(child, &uri)?);
            }
            _ => extensions.push(child.to_element()),
        }
    }
    let list = list.ok_or_else(|| {
        Error::malformed(
            DOC,
            format!("<service uri=\"{uri}\"> has neither a <resource-list> nor a <list>"),
        )
    })?;
    Ok(Service {
        extension_attributes: node.other_attrs(&["uri"]),
        uri,
        list,
        packages,
        extensions,
    })
}

fn parse_reference(node: Node<'_, '_>, service: &str) -> Result<String> {
    if node.has_children() {
        return Err(Error::malformed(
            DOC,
            format!("<resource-list> of <service uri=\"{service}\"> must hold a URI, not elements"),
        ));
    }
    let uri = node.trimmed();
    if uri.is_empty() {
        return Err(Error::malformed(
            DOC,
            format!("<resource-list> of <service uri=\"{service}\"> is empty"),
        ));
    }
    Ok(uri.to_owned())
}

fn parse_packages(node: Node<'_, '_>, service: &str) -> Result<Vec<String>> {
    if node.has_text() {
        return Err(Error::malformed(
            DOC,
            format!("<packages> of <service uri=\"{service}\"> holds text outside <package>"),
        ));
    }
    let mut out = Vec::new();
    for p in node.children() {
        if !p.is(ns::RLS_SERVICES, "package") || p.has_children() {
            return Err(Error::malformed(
                DOC,
                format!(
                    "<packages> of <service uri=\"{service}\"> holds <{}>, not a <package> name",
                    p.local()
                ),
            ));
        }
        let name = p.trimmed();
        if name.is_empty() {
            return Err(Error::malformed(
                DOC,
                format!("<service uri=\"{service}\"> has an empty <package>"),
            ));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

fn non_empty(value: &str, what: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::malformed(DOC, format!("{what} is empty")));
    }
    Ok(())
}

/// Service URIs compare by the rules of their scheme where [`Uri`] knows it.
fn uri_key(uri: &str) -> String {
    Uri::parse(uri).map_or_else(|_| uri.to_owned(), |u| u.to_string())
}

fn unique_uris(services: &[Service]) -> Result<()> {
    let mut seen = HashSet::new();
    for s in services {
        if !seen.insert(uri_key(&s.uri)) {
            return Err(Error::malformed(
                DOC,
                format!(
                    "two <service>s have the URI '{}' (service URIs are unique)",
                    s.uri
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

const NS: &str = ns::RLS_SERVICES;

fn write_service(w: &mut XmlWriter<'_>, s: &Service) {
    w.open(NS, "service");
    w.attr("uri", &s.uri);
    w.ext_attrs(&s.extension_attributes);
    w.close_start();
    match &s.list {
        ServiceList::Reference(uri) => w.leaf(NS, "resource-list", uri),
        ServiceList::Inline(list) => write_list(w, list, NS),
    }
    if let Some(packages) = &s.packages {
        if packages.is_empty() {
            w.empty(NS, "packages");
        } else {
            w.open(NS, "packages");
            w.close_start();
            for p in packages {
                w.leaf(NS, "package", p);
            }
            w.end(NS, "packages");
        }
    }
    w.elements(&s.extensions);
    w.end(NS, "service");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::resource_lists::{DisplayName, Entry, ListItem};

    fn parse(doc: &str) -> RlsServices {
        RlsServices::parse(doc, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{doc}"))
    }

    fn round_trip(doc: &RlsServices) {
        let xml = doc.to_xml();
        let again =
            RlsServices::parse(&xml, &Limits::DEFAULT).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(&again, doc, "{xml}");
        assert_eq!(again.to_xml(), xml, "writing is stable");
    }

    fn malformed(doc: &str) -> String {
        match RlsServices::parse(doc, &Limits::DEFAULT) {
            Err(Error::Malformed(m)) => m,
            other => panic!("expected Malformed for {doc:?}, got {other:?}"),
        }
    }

    fn with_service(body: &str) -> String {
        format!(
            r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"><service uri="sip:s@example.test">{body}</service></rls-services>"#
        )
    }

    /// The shape of the RFC 4826 §4.3 example: one service by reference, one inline.
    const SERVICES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"
   xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
  <service uri="sip:mybuddies@example.test">
    <resource-list>http://xcap.example.test/resource-lists/users/sip:joe@example.test/index/~~/resource-lists/list%5b@name=%22l1%22%5d</resource-list>
    <packages>
      <package>presence</package>
    </packages>
  </service>
  <service uri="sip:marketing@example.test">
    <list name="marketing">
      <rl:entry uri="sip:joe@example.test"/>
      <rl:entry uri="sip:sudhir@example.test"><rl:display-name>Sudhir</rl:display-name></rl:entry>
    </list>
    <packages>
      <package>presence</package>
      <package>dialog</package>
    </packages>
  </service>
  <service uri="sip:all@example.test">
    <resource-list>lists/all</resource-list>
  </service>
</rls-services>
"#;

    #[test]
    fn parses_services_by_reference_and_inline() {
        let doc = parse(SERVICES);
        assert_eq!(doc.services.len(), 3);
        let buddies = &doc.services[0];
        assert!(
            matches!(&buddies.list, ServiceList::Reference(r) if r.starts_with("http://xcap.example.test/"))
        );
        assert_eq!(
            buddies.packages.as_deref(),
            Some(&["presence".to_owned()][..])
        );
        assert!(buddies.accepts("presence") && !buddies.accepts("dialog"));
        let marketing = doc.service("sip:marketing@EXAMPLE.test").unwrap();
        let ServiceList::Inline(list) = &marketing.list else {
            panic!("{:?}", marketing.list);
        };
        assert_eq!(list.name.as_deref(), Some("marketing"));
        assert_eq!(list.entries().len(), 2);
        assert!(marketing.accepts("dialog") && !marketing.accepts("Presence"));
        let all = &doc.services[2];
        assert_eq!(all.packages, None);
        assert!(all.accepts("message-summary"));
        round_trip(&doc);
        doc.validate().unwrap();
        let xml = doc.to_xml();
        assert!(
            xml.contains("<rl:entry uri=\"sip:joe@example.test\"/>"),
            "{xml}"
        );
    }

    #[test]
    fn builds_and_round_trips() {
        let mut list = List::new("blf");
        list.display_name = Some(DisplayName::new("Panel"));
        list.items
            .push(ListItem::Entry(Entry::named("sip:201@example.test", "201")));
        let mut inline = Service::new("sip:blf-100@example.test", ServiceList::Inline(list));
        inline.packages = Some(vec!["dialog".into()]);
        let mut none = Service::new(
            "sip:none@example.test",
            ServiceList::Reference("lists/none".into()),
        );
        none.packages = Some(Vec::new());
        assert!(
            !none.accepts("presence"),
            "an empty <packages> accepts nothing"
        );
        let doc = RlsServices {
            services: vec![inline, none],
            ..RlsServices::default()
        };
        doc.validate().unwrap();
        round_trip(&doc);
        round_trip(&RlsServices::default());
        let dup = RlsServices {
            services: vec![doc.services[0].clone(), doc.services[0].clone()],
            ..RlsServices::default()
        };
        assert!(matches!(dup.validate(), Err(Error::Malformed(_))));
    }

    #[test]
    fn extensions_are_kept() {
        let doc = parse(
            r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:k="urn:example:k" k:v="1">
                 <service uri="sip:s@example.test" k:owner="alice">
                   <k:policy>open</k:policy>
                   <resource-list>lists/a</resource-list>
                   <description>unknown here</description>
                 </service>
                 <k:note>n</k:note>
               </rls-services>"#,
        );
        assert_eq!(doc.extension_attributes.len(), 1);
        assert_eq!(doc.extensions[0].name, "note");
        let s = &doc.services[0];
        assert_eq!(s.extension_attributes[0].value, "alice");
        let names: Vec<&str> = s.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["policy", "description"]);
        round_trip(&doc);
    }

    #[test]
    fn refuses_what_a_list_server_cannot_expand() {
        let m = malformed(&with_service(""));
        assert!(m.contains("neither"), "{m}");
        let m = malformed(&with_service(
            "<resource-list>a</resource-list><list name=\"x\"/>",
        ));
        assert!(m.contains("more than one list"), "{m}");
        let m = malformed(&with_service(
            "<resource-list>a</resource-list><resource-list>b</resource-list>",
        ));
        assert!(m.contains("more than one list"), "{m}");
        let m = malformed(&with_service("<resource-list> </resource-list>"));
        assert!(m.contains("empty"), "{m}");
        let m = malformed(&with_service("<resource-list><a/></resource-list>"));
        assert!(m.contains("not elements"), "{m}");
        let m = malformed(&with_service(
            "<list><rl:entry uri=\"sip:a@example.test\"/><rl:entry uri=\"sip:a@example.test\"/></list>",
        ));
        assert!(m.contains("two <entry>s"), "{m}");
        let m = malformed(&with_service("<list><rl:entry/></list>"));
        assert!(m.contains("'uri'"), "{m}");
    }

    #[test]
    fn refuses_packages_it_cannot_read() {
        let list = "<resource-list>a</resource-list>";
        let m = malformed(&with_service(&format!(
            "{list}<packages><package>presence</package></packages><packages/>"
        )));
        assert!(m.contains("two <packages>"), "{m}");
        let m = malformed(&with_service(&format!(
            "{list}<packages><package> </package></packages>"
        )));
        assert!(m.contains("empty <package>"), "{m}");
        let m = malformed(&with_service(&format!(
            "{list}<packages><pkg>presence</pkg></packages>"
        )));
        assert!(m.contains("<pkg>"), "{m}");
        let m = malformed(&with_service(&format!(
            "{list}<packages>presence</packages>"
        )));
        assert!(m.contains("text outside"), "{m}");
        let m = malformed(&with_service(&format!(
            "{list}<packages><package><b/></package></packages>"
        )));
        assert!(m.contains("not a <package> name"), "{m}");
    }

    #[test]
    fn refuses_bad_roots_and_services() {
        let ns = r#"xmlns="urn:ietf:params:xml:ns:rls-services""#;
        let m = malformed(&format!(
            "<rls-services {ns}><service><resource-list>a</resource-list></service></rls-services>"
        ));
        assert!(m.contains("'uri'"), "{m}");
        let m = malformed(&format!(
            "<rls-services {ns}><service uri=\" \"><resource-list>a</resource-list></service></rls-services>"
        ));
        assert!(m.contains("empty"), "{m}");
        let m = malformed(&format!(
            "<rls-services {ns}><service uri=\"sip:a@example.test\"><resource-list>a</resource-list></service><service uri=\"sip:a@example.test:5060\"><resource-list>b</resource-list></service></rls-services>"
        ));
        assert!(m.contains("two <service>s"), "{m}");
        let m = malformed(r#"<rls-services xmlns="urn:ietf:params:xml:ns:resource-lists"/>"#);
        assert!(m.contains("namespace"), "{m}");
        let m = malformed(r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>"#);
        assert!(m.contains("<rls-services>"), "{m}");
        malformed(&SERVICES[..200]);
    }
}
