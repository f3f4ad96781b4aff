//! Documents that presence carries, each with a typed model and a strict codec.
//!
//! | module | document | model | RFC |
//! | --- | --- | --- | --- |
//! | [`pidf`] | presence (PIDF) with the data model, RPID and capabilities | [`Presence`](pidf::Presence) | 3863, 4479, 4480, 5196 |
//! | [`winfo`] | watcher information | [`Watcherinfo`](winfo::Watcherinfo) | 3858 |
//! | [`filter`] | event notification filters | [`FilterSet`](filter::FilterSet) | 4661 |
//! | [`dialog`] | dialog state (busy lamps) | [`DialogInfo`](dialog::DialogInfo) | 4235 |
//! | [`mwi`] | message summary (voicemail lamps) | [`MessageSummary`](mwi::MessageSummary) | 3842 |
//! | [`iscomposing`] | is-composing indication (typing indicators) | [`IsComposing`](iscomposing::IsComposing) | 3994 |
//! | [`resource_lists`] | resource lists (buddy lists, busy-lamp panels) | [`ResourceLists`](resource_lists::ResourceLists): [`List`](resource_lists::List)s of [`ListItem`](resource_lists::ListItem)s ([`Entry`](resource_lists::Entry), [`EntryRef`](resource_lists::EntryRef), [`External`](resource_lists::External), nested lists), with [`DisplayName`](resource_lists::DisplayName)s | 4826 §3 |
//! | [`rls_services`] | resource list services (the URIs a list server answers) | [`RlsServices`](rls_services::RlsServices): [`Service`](rls_services::Service)s, each with a [`ServiceList`](rls_services::ServiceList) | 4826 §4 |
//! | [`rlmi`] | resource list meta-information (the root of a list NOTIFY) | [`Rlmi`](rlmi::Rlmi): [`Resource`](rlmi::Resource)s with [`Instance`](rlmi::Instance)s in an [`InstanceState`](rlmi::InstanceState) | 4662 §5 |
//!
//! The `multipart/related` body that carries RLMI with one part per resource instance is a
//! MIME body, not a document: its codecs are in the SIP layer, [`crate::sip::multipart`]
//! and [`crate::sip::list_body`].
//!
//! Every parser takes [`Limits`]; every model serializes back to a document that parses to
//! an equal model. Elements a codec does not model are kept as [`Element`]s and written back.
//!
//! # Documents from real devices: names are kept, values are checked
//!
//! Phones, softphones and PBXes send documents their schemas do not define: pre-RFC RPID
//! (`<rpid:place-type><rpid:office/></rpid:place-type>`), vendor elements in a standard
//! namespace (Asterisk's `<digium_presence>` in a PIDF `<status>`, `<exclusive>` in a dialog),
//! known elements in another shape. Refusing such a document fails a whole PUBLISH or NOTIFY
//! for one element nobody reads, so every XML codec follows one rule:
//!
//! - **Refused**: what is not XML or not safe (malformed documents, DOCTYPE, entity
//!   declarations and references other than the predefined ones, documents over the size or
//!   nesting limits: [`Error::Malformed`](crate::Error::Malformed),
//!   [`Error::UnsafeXml`](crate::Error::UnsafeXml), [`Error::TooLarge`](crate::Error::TooLarge));
//!   a wrong root element or root namespace, and a root without its required attributes;
//!   an item without what identifies it or what a watcher acts on (a tuple's `id` and
//!   `<status>`, ids used twice, a dialog's `id` and `<state>`, a watcher's `id`, `status`,
//!   `event` and URI, the is-composing `<state>`; a data-model person or device may lack its
//!   `id`, as Asterisk's do, see [`datamodel`]); and values
//!   outside their types, in text or attributes (a `<basic>` other than `open`/`closed`, a
//!   state or event outside its tokens, a number, date-time or URI that is not one). A value
//!   is refused rather than kept because the typed field would otherwise tell the
//!   application that the sender said nothing, when it said something else.
//! - **Kept** as an [`Element`] in the `extensions` of the nearest enclosing model, and
//!   written back: an element a schema does not define where it appears, in any namespace,
//!   the codec's own included (an RPID value spelled as an element name RFC 4480 does not
//!   know, like `<rpid:office/>`, is such a name); a repeat of an element that may appear
//!   once (the first is read; the is-composing document refuses repeats instead, see
//!   [`iscomposing`]); and a known optional element in a shape its schema does not give it
//!   (elements where the schema has text, text where it has elements only, attributes where
//!   the model has no room for them). Such an element is not interpreted at all, so its
//!   values are not checked.
//!
//! A kept element is written back where the schema allows extensions, after the modelled
//! children it could be taken for, so that it reads back as the same extension. The filter
//! codec ([`filter`]) is the exception: a filter it does not understand is refused, because
//! ignoring part of a filter would send a watcher what it asked not to get.
#![forbid(unsafe_code)]

pub mod caps;
pub mod datamodel;
pub mod dialog;
pub mod filter;
pub mod iscomposing;
pub mod mwi;
pub mod pidf;
pub mod pres_rules;
pub mod resource_lists;
pub mod rlmi;
pub mod rls_services;
pub mod rpid;
pub mod timestamp;
pub(crate) mod token;
pub mod winfo;
pub(crate) mod xml;
mod xml_lexer;
pub(crate) mod xpath;

pub use timestamp::Timestamp;
pub use token::DocState;
pub use xml::{Attribute, Element, Limits, XML_NS};

/// Namespace URIs of the documents and extensions the codecs model.
pub mod ns {
    /// PIDF, RFC 3863.
    pub const PIDF: &str = "urn:ietf:params:xml:ns:pidf";
    /// The presence data model, RFC 4479.
    pub const DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
    /// Rich presence extensions (RPID), RFC 4480.
    pub const RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
    /// Service and device capabilities, RFC 5196.
    pub const CAPS: &str = "urn:ietf:params:xml:ns:pidf:caps";
    /// Location types used by RPID place-type, RFC 4589.
    pub const LOCATION_TYPE: &str = "urn:ietf:params:xml:ns:location-type";
    /// Watcher information, RFC 3858.
    pub const WATCHERINFO: &str = "urn:ietf:params:xml:ns:watcherinfo";
    /// Event notification filters, RFC 4661.
    pub const FILTER: &str = "urn:ietf:params:xml:ns:simple-filter";
    /// Dialog state, RFC 4235.
    pub const DIALOG_INFO: &str = "urn:ietf:params:xml:ns:dialog-info";
    /// Is-composing indication, RFC 3994.
    pub const IM_ISCOMPOSING: &str = "urn:ietf:params:xml:ns:im-iscomposing";
    /// Resource lists, RFC 4826 §3.
    pub const RESOURCE_LISTS: &str = "urn:ietf:params:xml:ns:resource-lists";
    /// Resource list services, RFC 4826 §4.
    pub const RLS_SERVICES: &str = "urn:ietf:params:xml:ns:rls-services";
    /// Resource list meta-information (RLMI), RFC 4662 §5.
    pub const RLMI: &str = "urn:ietf:params:xml:ns:rlmi";
    /// Common policy (RFC 4745): rulesets, rules, conditions.
    pub const COMMON_POLICY: &str = "urn:ietf:params:xml:ns:common-policy";
    /// Presence authorization rules (RFC 5025): sub-handling and transformations.
    pub const PRES_RULES: &str = "urn:ietf:params:xml:ns:pres-rules";
}

/// Pushes `x` onto `v`, allocating the first room directly (what `push` would allocate, minus
/// the general growth path): the typed models' lists are mostly empty or short.
#[inline]
pub(crate) fn push_small<T>(v: &mut Vec<T>, x: T) {
    if v.capacity() == 0 {
        *v = Vec::with_capacity(if std::mem::size_of::<T>() <= 1024 {
            4
        } else {
            1
        });
    }
    v.push(x);
}

/// Appends a default value to `v` (first room allocated as by [`push_small`]) and returns
/// it, for large models that are read in place rather than built and then moved.
#[inline]
pub(crate) fn push_default<T: Default>(v: &mut Vec<T>) -> &mut T {
    if v.capacity() == 0 {
        *v = Vec::with_capacity(if std::mem::size_of::<T>() <= 1024 {
            4
        } else {
            1
        });
    }
    let n = v.len();
    v.resize_with(n + 1, T::default);
    &mut v[n]
}

/// A note in a natural language (PIDF `note`, data-model `note`, RPID `note`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Note {
    /// The text, as written (UTF-8, any script and direction).
    pub text: String,
    /// The `xml:lang` language tag, if any.
    pub lang: Option<String>,
}

impl Note {
    /// A note without a language tag.
    pub fn new(text: impl Into<String>) -> Note {
        Note {
            text: text.into(),
            lang: None,
        }
    }

    /// A note with a language tag.
    pub fn with_lang(text: impl Into<String>, lang: impl Into<String>) -> Note {
        Note {
            text: text.into(),
            lang: Some(lang.into()),
        }
    }

    /// Reads a note element (text with an optional `xml:lang`), or `None` when it has
    /// child elements or other attributes: such a note is kept whole as an extension.
    pub(crate) fn read(node: xml::Node<'_, '_>) -> Option<Note> {
        node.is_leaf(&["xml:lang"]).then(|| Note {
            text: node.text().to_owned(),
            lang: node.xml_attr("lang").map(str::to_owned),
        })
    }

    pub(crate) fn write(&self, w: &mut xml::XmlWriter<'_>, ns: &str) {
        w.open(ns, "note");
        if let Some(lang) = &self.lang {
            w.attr("xml:lang", lang);
        }
        w.close_start();
        w.text(&self.text);
        w.end(ns, "note");
    }
}
