//! Event packages: the seam between the generic publish/subscribe/notify core and the
//! documents of each package. A package names its codec (parse a body into a [`Document`]);
//! its composition of several publications into what watchers see, and its neutral document
//! (what a polite-blocked watcher sees), are the engine's (`engine::compose`).
//!
//! The engine, the stores (the package of a publication or a subscription) and the SIP
//! layer (the `Event` header, the `Content-Type` of a body) all name packages this way.
#![forbid(unsafe_code)]

use crate::doc::dialog::DialogInfo;
use crate::doc::mwi::MessageSummary;
use crate::doc::pidf::Presence;
use crate::doc::winfo::Watcherinfo;
use crate::doc::Limits;
use crate::error::{Error, Result};

/// An event package the engine serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Package {
    /// `presence` (RFC 3856): PIDF documents.
    Presence,
    /// `presence.winfo` (RFC 3857): who watches a presentity.
    PresenceWinfo,
    /// `dialog` (RFC 4235): dialog state for busy-lamp fields.
    Dialog,
    /// `message-summary` (RFC 3842): voicemail lamps.
    MessageSummary,
}

impl Package {
    /// Every package, in a stable order.
    pub const ALL: [Package; 4] = [
        Package::Presence,
        Package::PresenceWinfo,
        Package::Dialog,
        Package::MessageSummary,
    ];

    /// The package name as SIP's `Event` header spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Package::Presence => "presence",
            Package::PresenceWinfo => "presence.winfo",
            Package::Dialog => "dialog",
            Package::MessageSummary => "message-summary",
        }
    }

    /// The MIME type of the package's documents.
    pub fn content_type(self) -> &'static str {
        match self {
            Package::Presence => crate::doc::pidf::CONTENT_TYPE,
            Package::PresenceWinfo => Watcherinfo::CONTENT_TYPE,
            Package::Dialog => DialogInfo::CONTENT_TYPE,
            Package::MessageSummary => crate::doc::mwi::CONTENT_TYPE,
        }
    }

    /// Whether presentities publish documents of this package (watcher information is made
    /// by the engine, never published).
    pub fn is_publishable(self) -> bool {
        self != Package::PresenceWinfo
    }

    /// Parses a body of this package.
    pub fn parse(self, body: &str, limits: &Limits) -> Result<Document> {
        Ok(match self {
            Package::Presence => Document::Presence(Presence::parse(body, limits)?),
            Package::PresenceWinfo => Document::Winfo(Watcherinfo::parse(body, limits)?),
            Package::Dialog => Document::Dialog(DialogInfo::parse(body, limits)?),
            Package::MessageSummary => {
                Document::MessageSummary(MessageSummary::parse(body, limits)?)
            }
        })
    }
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Package {
    type Err = Error;
    fn from_str(s: &str) -> Result<Package> {
        Package::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::UnknownPackage(format!(
                    "'{s}' (served: presence, presence.winfo, dialog, message-summary)"
                ))
            })
    }
}

/// A document of one of the packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A presence document.
    Presence(Presence),
    /// A watcher information document.
    Winfo(Watcherinfo),
    /// A dialog information document.
    Dialog(DialogInfo),
    /// A message summary.
    MessageSummary(MessageSummary),
}

impl Document {
    /// The package this document belongs to.
    pub fn package(&self) -> Package {
        match self {
            Document::Presence(_) => Package::Presence,
            Document::Winfo(_) => Package::PresenceWinfo,
            Document::Dialog(_) => Package::Dialog,
            Document::MessageSummary(_) => Package::MessageSummary,
        }
    }

    /// The document serialized as its package's body.
    pub fn to_body(&self) -> String {
        match self {
            Document::Presence(p) => p.to_xml(),
            Document::Winfo(w) => w.to_xml(),
            Document::Dialog(d) => d.to_xml(),
            Document::MessageSummary(m) => m.to_text(),
        }
    }
}
