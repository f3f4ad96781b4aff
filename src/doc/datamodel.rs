//! The presence data model's person and device elements (RFC 4479), as they appear inside a
//! PIDF document, carrying RPID (RFC 4480) person data and device capabilities (RFC 5196).
//!
//! Names are kept, values are checked (the rule of every codec, see [`crate::doc`]): an
//! element a person or device does not define, in any namespace (the data-model one
//! included: a `<dm:foo>`), an element that may appear once (say `rpid:activities`) and
//! appears again, and an element in a shape its schema does not give it (a `<dm:note>` or
//! `<dm:deviceID>` holding elements, an RPID element its reader does not take, such as a
//! text-only `<rpid:activities>busy</rpid:activities>`) are kept in `extensions`, so nothing
//! a device sent is dropped. A blank `id`, and values outside their
//! types (a `<dm:timestamp>` that is not a date-time, the RPID and caps values those modules
//! check), are errors. A person or device without an `id` is read with an empty one:
//! RFC 4479 requires it, but Asterisk's PIDF carries `<dm:person>` without it, and nothing
//! refers to a person by id.
//!
//! Extensions are written before `<dm:deviceID>`, the notes and the timestamp, where RFC 4479
//! puts them, unless one of them is in the data-model namespace: then all of them are written
//! last (see `xml::any_in`).
#![forbid(unsafe_code)]

use super::caps::DeviceCaps;
use super::ns;
use super::rpid::{
    parse_class, write_class, Activities, Mood, PlaceIs, PlaceType, Privacy, Sphere, StatusIcon,
    TimeOffset, UserInput,
};
use super::xml::{any_in, read_once, trim, Attribute, Element, Node, XmlWriter};
use super::{push_small, Note, Timestamp};
use crate::error::{Error, Result};

const DOC: &str = "pidf";

/// The human behind the presentity (`dm:person`): what they do, feel, where they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// Element id, unique within the document; empty when the element has none (RFC 4479
    /// requires one, but Asterisk, for one, writes `<dm:person>` without it).
    pub id: String,
    /// What the person is doing (away, busy, on-the-phone, meeting, ...).
    pub activities: Option<Activities>,
    /// RPID class, for grouping.
    pub class: Option<String>,
    /// The person's mood.
    pub mood: Option<Mood>,
    /// What the place the person is in is like for audio, video and text.
    pub place_is: Option<PlaceIs>,
    /// The type of place the person is in (home, office, ...).
    pub place_type: Option<PlaceType>,
    /// Who can hear, see or read the person's communication.
    pub privacy: Option<Privacy>,
    /// The sphere (home, work) the person is in.
    pub sphere: Option<Sphere>,
    /// An icon for the person's status.
    pub status_icon: Option<StatusIcon>,
    /// The person's local time offset from UTC.
    pub time_offset: Option<TimeOffset>,
    /// Whether the person is using their devices (idle/active).
    pub user_input: Option<UserInput>,
    /// Notes about the person (`dm:note`).
    pub notes: Vec<Note>,
    /// When this information last changed (`dm:timestamp`).
    pub timestamp: Option<Timestamp>,
    /// Other child elements, kept as read.
    pub extensions: Vec<Element>,
    /// Other attributes, kept as read.
    pub extension_attributes: Vec<Attribute>,
}

/// A physical device of the presentity (`dm:device`): a phone, a laptop.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// Element id, unique within the document; empty when the element has none (RFC 4479
    /// requires one, but Asterisk, for one, writes `<dm:person>` without it).
    pub id: String,
    /// The device identifier (`dm:deviceID`, usually a URN) that tuples refer to.
    pub device_id: Option<String>,
    /// RPID class, for grouping.
    pub class: Option<String>,
    /// Whether someone is using the device (idle/active).
    pub user_input: Option<UserInput>,
    /// Device capabilities (RFC 5196 `devcaps`).
    pub device_caps: Option<DeviceCaps>,
    /// Notes about the device (`dm:note`).
    pub notes: Vec<Note>,
    /// When this information last changed (`dm:timestamp`).
    pub timestamp: Option<Timestamp>,
    /// Other child elements, kept as read.
    pub extensions: Vec<Element>,
    /// Other attributes, kept as read.
    pub extension_attributes: Vec<Attribute>,
}

/// The `id` of a person or device: empty when absent (Asterisk writes `<dm:person>` without
/// one); an `id` attribute that is there must not be blank.
fn element_id<'t>(node: Node<'t, '_>) -> Result<&'t str> {
    let Some(id) = node.attr("id") else {
        return Ok("");
    };
    if trim(id).is_empty() {
        return Err(Error::malformed(
            DOC,
            format!("<{}> has an empty id", node.local()),
        ));
    }
    Ok(id)
}

/// Writes the `id` of a person or device, unless it has none.
fn write_id(w: &mut XmlWriter<'_>, id: &str) {
    if !id.is_empty() {
        w.attr("id", id);
    }
}

/// Reads `node` into `slot` as [`read_once`] does, or keeps it in `extensions`.
fn once<T>(
    slot: &mut Option<T>,
    node: Node<'_, '_>,
    extensions: &mut Vec<Element>,
    read: impl FnOnce(Node<'_, '_>) -> Result<Option<T>>,
) -> Result<()> {
    if !read_once(slot, node, read)? {
        extensions.push(node.to_element());
    }
    Ok(())
}

/// Keeps `note` in `notes`, or the element in `extensions` when it is not a plain note.
fn note(node: Node<'_, '_>, notes: &mut Vec<Note>, extensions: &mut Vec<Element>) {
    match Note::read(node) {
        Some(n) => push_small(notes, n),
        None => extensions.push(node.to_element()),
    }
}

fn timestamp(node: Node<'_, '_>) -> Result<Option<Timestamp>> {
    node.is_leaf(&[])
        .then(|| Timestamp::from_node(DOC, node))
        .transpose()
}

fn text(node: Node<'_, '_>) -> Result<Option<String>> {
    Ok(node.is_leaf(&[]).then(|| node.trimmed().to_owned()))
}

impl Person {
    /// A person element with this id and nothing else.
    pub fn new(id: impl Into<String>) -> Person {
        Person {
            id: id.into(),
            ..Person::default()
        }
    }

    /// Reads `<dm:person>` into `self`, a default person.
    pub(crate) fn read(&mut self, node: Node<'_, '_>) -> Result<()> {
        let p = self;
        p.id = element_id(node)?.to_owned();
        p.extension_attributes = node.other_attrs(&["id"]);
        let ext = &mut p.extensions;
        for child in node.children() {
            match (child.ns(), child.local()) {
                (ns::RPID, "activities") => {
                    once(&mut p.activities, child, ext, Activities::from_node)?
                }
                (ns::RPID, "class") => once(&mut p.class, child, ext, parse_class)?,
                (ns::RPID, "mood") => once(&mut p.mood, child, ext, Mood::from_node)?,
                (ns::RPID, "place-is") => once(&mut p.place_is, child, ext, PlaceIs::from_node)?,
                (ns::RPID, "place-type") => {
                    once(&mut p.place_type, child, ext, PlaceType::from_node)?
                }
                (ns::RPID, "privacy") => once(&mut p.privacy, child, ext, Privacy::from_node)?,
                (ns::RPID, "sphere") => once(&mut p.sphere, child, ext, Sphere::from_node)?,
                (ns::RPID, "status-icon") => {
                    once(&mut p.status_icon, child, ext, StatusIcon::from_node)?
                }
                (ns::RPID, "time-offset") => {
                    once(&mut p.time_offset, child, ext, TimeOffset::from_node)?
                }
                (ns::RPID, "user-input") => {
                    once(&mut p.user_input, child, ext, UserInput::from_node)?
                }
                (ns::DATA_MODEL, "note") => note(child, &mut p.notes, ext),
                (ns::DATA_MODEL, "timestamp") => once(&mut p.timestamp, child, ext, timestamp)?,
                _ => ext.push(child.to_element()),
            }
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::DATA_MODEL, "person");
        write_id(w, &self.id);
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        if let Some(a) = &self.activities {
            a.write(w);
        }
        if let Some(c) = &self.class {
            write_class(w, c);
        }
        if let Some(m) = &self.mood {
            m.write(w);
        }
        if let Some(p) = &self.place_is {
            p.write(w);
        }
        if let Some(p) = &self.place_type {
            p.write(w);
        }
        if let Some(p) = &self.privacy {
            p.write(w);
        }
        if let Some(s) = &self.sphere {
            s.write(w);
        }
        if let Some(s) = &self.status_icon {
            s.write(w);
        }
        if let Some(t) = &self.time_offset {
            t.write(w);
        }
        if let Some(u) = &self.user_input {
            u.write(w);
        }
        let late = any_in(&self.extensions, ns::DATA_MODEL);
        if !late {
            w.elements(&self.extensions);
        }
        for n in &self.notes {
            n.write(w, ns::DATA_MODEL);
        }
        if let Some(ts) = &self.timestamp {
            w.leaf(ns::DATA_MODEL, "timestamp", ts.as_str());
        }
        if late {
            w.elements(&self.extensions);
        }
        w.end(ns::DATA_MODEL, "person");
    }
}

impl Device {
    /// A device element with this id and device identifier.
    pub fn new(id: impl Into<String>, device_id: impl Into<String>) -> Device {
        Device {
            id: id.into(),
            device_id: Some(device_id.into()),
            ..Device::default()
        }
    }

    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Device> {
        let mut d = Device {
            id: element_id(node)?.to_owned(),
            extension_attributes: node.other_attrs(&["id"]),
            ..Device::default()
        };
        let ext = &mut d.extensions;
        for child in node.children() {
            match (child.ns(), child.local()) {
                (ns::DATA_MODEL, "deviceID") => once(&mut d.device_id, child, ext, text)?,
                (ns::RPID, "class") => once(&mut d.class, child, ext, parse_class)?,
                (ns::RPID, "user-input") => {
                    once(&mut d.user_input, child, ext, UserInput::from_node)?
                }
                (ns::CAPS, "devcaps") => {
                    once(&mut d.device_caps, child, ext, DeviceCaps::from_node)?
                }
                (ns::DATA_MODEL, "note") => note(child, &mut d.notes, ext),
                (ns::DATA_MODEL, "timestamp") => once(&mut d.timestamp, child, ext, timestamp)?,
                _ => ext.push(child.to_element()),
            }
        }
        Ok(d)
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::DATA_MODEL, "device");
        write_id(w, &self.id);
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        if let Some(c) = &self.class {
            write_class(w, c);
        }
        if let Some(u) = &self.user_input {
            u.write(w);
        }
        if let Some(c) = &self.device_caps {
            c.write(w);
        }
        let late = any_in(&self.extensions, ns::DATA_MODEL);
        if !late {
            w.elements(&self.extensions);
        }
        if let Some(id) = &self.device_id {
            w.leaf(ns::DATA_MODEL, "deviceID", id);
        }
        for n in &self.notes {
            n.write(w, ns::DATA_MODEL);
        }
        if let Some(ts) = &self.timestamp {
            w.leaf(ns::DATA_MODEL, "timestamp", ts.as_str());
        }
        if late {
            w.elements(&self.extensions);
        }
        w.end(ns::DATA_MODEL, "device");
    }
}
