//! Rich presence (RPID, RFC 4480): what a person is doing, how they feel, where they are,
//! who could overhear them, and how a service relates to them.
//!
//! Every element of the RPID namespace has a typed model here with a reader and a writer;
//! [`crate::doc::pidf`] and [`crate::doc::datamodel`] call them for the children of
//! `<person>`, `<tuple>` and `<device>`.
//!
//! # What is kept, what is refused
//!
//! RPID spells most of its values as element names (`<rpid:on-the-phone/>`), and devices
//! send names RFC 4480 never defined: the pre-RFC drafts' `<rpid:place-type><rpid:office/>`
//! (RFC 4480 wants `<lt:office/>` from RFC 4589), vendor activities, values of a newer
//! draft. Such names are kept, not refused (see [`crate::doc`] for the rule of every codec):
//!
//! - A child element that an RPID element does not define, in any namespace (`<rpid:office/>`
//!   in `<rpid:place-type>`, `<rpid:partying/>` in `<rpid:activities>`, a second value in
//!   `<rpid:sphere>` or `<rpid:relationship>`, a note with child elements), is kept in that
//!   element's `extensions` and written back after its modelled children.
//! - An RPID element in a shape RFC 4480 does not give it (text in `<rpid:activities>`,
//!   elements in `<rpid:user-input>` or `<rpid:status-icon>`, a `<rpid:place-is>` medium
//!   that is not one known value, attributes where the model has no room for them) is not
//!   read at all: its reader returns `None` and the caller keeps it whole in the `extensions`
//!   of the person, tuple or device.
//! - Values in text and attributes are checked: a `<rpid:user-input>` that is neither
//!   `active` nor `idle`, a `<rpid:time-offset>` that is not a number, a `from`, `until` or
//!   `last-input` that is not a date-time, and a bad `idle-threshold` are errors, because the
//!   typed field would otherwise claim the sender said nothing.
//!
//! Attributes of other namespaces (and unknown unqualified ones, which the schema's
//! `anyAttribute` allows) are kept as [`Attribute`]s where the element has
//! `extension_attributes`.
//!
//! Free-text values (`<rpid:other>`) carry an optional `xml:lang` like notes do, so they are
//! modelled as [`Note`]s.
#![forbid(unsafe_code)]

use crate::doc::xml::{Node, XmlWriter};
use crate::doc::{ns, push_small, Attribute, Element, Note, Timestamp};
use crate::error::{Error, Result};

/// The document name used in error messages: RPID lives inside PIDF documents.
const DOC: &str = "pidf";

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::malformed(DOC, what)
}

use crate::doc::token::token_enum;

/// Writes a `Note_t` element (text with an optional `xml:lang`) under another name, as RPID
/// does for `<other>`.
fn write_note_as(w: &mut XmlWriter<'_>, name: &str, note: &Note) {
    w.open(ns::RPID, name);
    w.attr_opt("xml:lang", note.lang.as_deref());
    w.close_start();
    w.text(&note.text);
    w.end(ns::RPID, name);
}

/// `value` when `node` is an empty element (`<rpid:busy/>`), the shape of RPID's token
/// values; `None` for an unknown name or a token with content, which is kept as an extension.
fn token<T>(node: Node<'_, '_>, value: Option<T>) -> Option<T> {
    value.filter(|_| node.is_empty_element())
}

fn read_id(node: Node<'_, '_>) -> Option<String> {
    node.attr("id").map(str::to_owned)
}

/// Reads the unknown attributes of an element whose schema has `anyAttribute`.
fn read_ext_attrs(node: Node<'_, '_>, known: &[&str]) -> Vec<Attribute> {
    node.other_attrs(known)
}

// ---------------------------------------------------------------------------------------
// from / until
// ---------------------------------------------------------------------------------------

/// The period during which an RPID element is valid (the `from` and `until` attributes).
/// Either end may be open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// Start of validity (`from`).
    pub from: Option<Timestamp>,
    /// End of validity (`until`).
    pub until: Option<Timestamp>,
}

impl TimeRange {
    /// True when neither end is set.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }

    /// Reads `from` and `until` of `node`, naming `node` in the error.
    pub(crate) fn from_attrs(node: Node<'_, '_>) -> Result<TimeRange> {
        if !node.has_attrs() {
            return Ok(TimeRange::default());
        }
        let read = |name: &str| -> Result<Option<Timestamp>> {
            match node.attr(name) {
                None => Ok(None),
                Some(v) => Timestamp::parse(v).map(Some).map_err(|_| {
                    malformed(format!(
                        "<rpid:{}> has a bad '{name}' attribute '{v}' \
                         (expected a date-time such as 2026-11-24T14:45:00Z)",
                        node.local()
                    ))
                }),
            }
        };
        Ok(TimeRange {
            from: read("from")?,
            until: read("until")?,
        })
    }

    /// Writes ` from=".." until=".."` inside an open start tag.
    pub(crate) fn write_attrs(&self, w: &mut XmlWriter<'_>) {
        w.attr_opt("from", self.from.as_ref().map(Timestamp::as_str));
        w.attr_opt("until", self.until.as_ref().map(Timestamp::as_str));
    }
}

/// The attributes every `fromUntil` element knows; the rest are extension attributes.
const RANGE_ATTRS: &[&str] = &["id", "from", "until"];

/// The shape RPID's value lists share (`<activities>`, `<mood>`): attributes with a time
/// range, notes, one empty element per value (or `<other>` free text), extensions.
struct TokenList<'a> {
    name: &'a str,
    id: Option<&'a str>,
    range: &'a TimeRange,
    attributes: &'a [Attribute],
    notes: &'a [Note],
    extensions: &'a [Element],
}

impl TokenList<'_> {
    /// Writes the element; each value is its token name, or the note of an `<other>`.
    fn write<'v>(
        &self,
        w: &mut XmlWriter<'_>,
        values: impl ExactSizeIterator<Item = std::result::Result<&'static str, &'v Note>>,
    ) {
        open_ranged(w, self.name, self.id, self.range, self.attributes);
        if self.notes.is_empty() && values.len() == 0 && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for n in self.notes {
            n.write(w, ns::RPID);
        }
        for v in values {
            match v {
                Ok(token) => w.empty(ns::RPID, token),
                Err(note) => write_note_as(w, "other", note),
            }
        }
        w.elements(self.extensions);
        w.end(ns::RPID, self.name);
    }
}

/// Writes the start tag of an element with `id`, `from`, `until` and extension attributes.
fn open_ranged(
    w: &mut XmlWriter<'_>,
    name: &str,
    id: Option<&str>,
    range: &TimeRange,
    ext: &[Attribute],
) {
    w.open(ns::RPID, name);
    w.attr_opt("id", id);
    range.write_attrs(w);
    w.ext_attrs(ext);
}

// ---------------------------------------------------------------------------------------
// activities
// ---------------------------------------------------------------------------------------

token_enum! {
    /// One thing a person is doing (RFC 4480 section 3.2). A person may do several at once.
    pub enum Activity("activity") {
        /// Has a calendar appointment.
        Appointment = "appointment",
        /// Physically away from all interactive communication devices.
        Away = "away",
        /// Eating the first meal of the day.
        Breakfast = "breakfast",
        /// Busy, without further detail.
        Busy = "busy",
        /// Having the main meal of the day.
        Dinner = "dinner",
        /// A scheduled national or local holiday.
        Holiday = "holiday",
        /// Riding in a vehicle (bus, train, plane).
        InTransit = "in-transit",
        /// Looking for (paid) work.
        LookingForWork = "looking-for-work",
        /// Eating a meal, without saying which.
        Meal = "meal",
        /// In an assembly or gathering of people.
        Meeting = "meeting",
        /// Talking on the phone.
        OnThePhone = "on-the-phone",
        /// Performing in a theatre, concert or similar.
        Performance = "performance",
        /// Will not return for the foreseeable future.
        PermanentAbsence = "permanent-absence",
        /// Occupying themselves in amusement, sport or recreation.
        Playing = "playing",
        /// Giving a presentation, lecture or talk.
        Presentation = "presentation",
        /// Visiting stores to buy things.
        Shopping = "shopping",
        /// Sleeping.
        Sleeping = "sleeping",
        /// Watching a performance (sports, theatre, concert).
        Spectator = "spectator",
        /// Controlling a vehicle, watercraft or plane.
        Steering = "steering",
        /// On a business or personal trip, not necessarily in transit.
        Travel = "travel",
        /// Watching television.
        Tv = "tv",
        /// The activity is not known (`<rpid:unknown/>`).
        Unknown = "unknown",
        /// A scheduled period of rest from work.
        Vacation = "vacation",
        /// Engaged in paid or unpaid work.
        Working = "working",
        /// Participating in religious rites.
        Worship = "worship",
        @other
        /// An activity described in free text (`<rpid:other>`).
        Other(Note),
    }
}

/// What the person is doing (`<rpid:activities>`). An empty list is valid and means the
/// presentity says nothing about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Activities {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The activities, in document order.
    pub values: Vec<Activity>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl Activities {
    /// Activities with these values and nothing else.
    pub fn new(values: Vec<Activity>) -> Activities {
        Activities {
            values,
            ..Activities::default()
        }
    }

    /// Reads `<rpid:activities>`; `None` when it holds text (a shape RFC 4480 does not give
    /// it): the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = Activities {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..Activities::default()
        };
        for child in node.children() {
            if child.ns() == ns::RPID {
                match child.local() {
                    "note" => {
                        if let Some(n) = Note::read(child) {
                            push_small(&mut out.notes, n);
                            continue;
                        }
                    }
                    "other" => {
                        if let Some(n) = Note::read(child) {
                            push_small(&mut out.values, Activity::Other(n));
                            continue;
                        }
                    }
                    name => {
                        if let Some(a) = token(child, Activity::from_name(name)) {
                            push_small(&mut out.values, a);
                            continue;
                        }
                    }
                }
            }
            push_small(&mut out.extensions, child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        let values = self.values.iter().map(|v| match v {
            Activity::Other(note) => Err(note),
            v => Ok(v.as_str()),
        });
        let list = TokenList {
            name: "activities",
            id: self.id.as_deref(),
            range: &self.range,
            attributes: &self.extension_attributes,
            notes: &self.notes,
            extensions: &self.extensions,
        };
        list.write(w, values);
    }
}

// ---------------------------------------------------------------------------------------
// mood
// ---------------------------------------------------------------------------------------

token_enum! {
    /// One mood of the person (RFC 4480 section 3.4, names from the schema).
    pub enum MoodValue("mood") {
        /// Afraid.
        Afraid = "afraid",
        /// Amazed.
        Amazed = "amazed",
        /// Angry.
        Angry = "angry",
        /// Annoyed.
        Annoyed = "annoyed",
        /// Anxious.
        Anxious = "anxious",
        /// Ashamed.
        Ashamed = "ashamed",
        /// Bored.
        Bored = "bored",
        /// Brave.
        Brave = "brave",
        /// Calm.
        Calm = "calm",
        /// Cold.
        Cold = "cold",
        /// Confused.
        Confused = "confused",
        /// Contented.
        Contented = "contented",
        /// Cranky.
        Cranky = "cranky",
        /// Curious.
        Curious = "curious",
        /// Depressed.
        Depressed = "depressed",
        /// Disappointed.
        Disappointed = "disappointed",
        /// Disgusted.
        Disgusted = "disgusted",
        /// Distracted.
        Distracted = "distracted",
        /// Embarrassed.
        Embarrassed = "embarrassed",
        /// Excited.
        Excited = "excited",
        /// Flirtatious.
        Flirtatious = "flirtatious",
        /// Frustrated.
        Frustrated = "frustrated",
        /// Grumpy.
        Grumpy = "grumpy",
        /// Guilty.
        Guilty = "guilty",
        /// Happy.
        Happy = "happy",
        /// Hot.
        Hot = "hot",
        /// Humbled.
        Humbled = "humbled",
        /// Humiliated.
        Humiliated = "humiliated",
        /// Hungry.
        Hungry = "hungry",
        /// Hurt.
        Hurt = "hurt",
        /// Impressed.
        Impressed = "impressed",
        /// In awe (the schema writes `in_awe`, with an underscore).
        InAwe = "in_awe",
        /// In love (the schema writes `in_love`, with an underscore).
        InLove = "in_love",
        /// Indignant.
        Indignant = "indignant",
        /// Interested.
        Interested = "interested",
        /// Invincible.
        Invincible = "invincible",
        /// Jealous.
        Jealous = "jealous",
        /// Lonely.
        Lonely = "lonely",
        /// Mean.
        Mean = "mean",
        /// Moody.
        Moody = "moody",
        /// Nervous.
        Nervous = "nervous",
        /// Neutral.
        Neutral = "neutral",
        /// Offended.
        Offended = "offended",
        /// Playful.
        Playful = "playful",
        /// Proud.
        Proud = "proud",
        /// Relieved.
        Relieved = "relieved",
        /// Remorseful.
        Remorseful = "remorseful",
        /// Restless.
        Restless = "restless",
        /// Sad.
        Sad = "sad",
        /// Sarcastic.
        Sarcastic = "sarcastic",
        /// Serious.
        Serious = "serious",
        /// Shocked.
        Shocked = "shocked",
        /// Shy.
        Shy = "shy",
        /// Sick.
        Sick = "sick",
        /// Sleepy.
        Sleepy = "sleepy",
        /// Stressed.
        Stressed = "stressed",
        /// Surprised.
        Surprised = "surprised",
        /// Thirsty.
        Thirsty = "thirsty",
        /// Worried.
        Worried = "worried",
        /// The mood is not known (`<rpid:unknown/>`).
        Unknown = "unknown",
        @other
        /// A mood described in free text (`<rpid:other>`).
        Other(Note),
    }
}

/// The mood of the person (`<rpid:mood>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mood {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The moods, in document order.
    pub values: Vec<MoodValue>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl Mood {
    /// A mood with these values and nothing else.
    pub fn new(values: Vec<MoodValue>) -> Mood {
        Mood {
            values,
            ..Mood::default()
        }
    }

    /// Reads `<rpid:mood>`; `None` when it holds text: the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = Mood {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..Mood::default()
        };
        for child in node.children() {
            if child.ns() == ns::RPID {
                match child.local() {
                    "note" => {
                        if let Some(n) = Note::read(child) {
                            out.notes.push(n);
                            continue;
                        }
                    }
                    "other" => {
                        if let Some(n) = Note::read(child) {
                            out.values.push(MoodValue::Other(n));
                            continue;
                        }
                    }
                    name => {
                        if let Some(m) = token(child, MoodValue::from_name(name)) {
                            out.values.push(m);
                            continue;
                        }
                    }
                }
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        let values = self.values.iter().map(|v| match v {
            MoodValue::Other(note) => Err(note),
            v => Ok(v.as_str()),
        });
        let list = TokenList {
            name: "mood",
            id: self.id.as_deref(),
            range: &self.range,
            attributes: &self.extension_attributes,
            notes: &self.notes,
            extensions: &self.extensions,
        };
        list.write(w, values);
    }
}

// ---------------------------------------------------------------------------------------
// place-is
// ---------------------------------------------------------------------------------------

token_enum! {
    /// How the place is for audio communication (`<rpid:place-is><rpid:audio>`).
    pub enum PlaceAudio("place-is audio") {
        /// Too noisy for a conversation.
        Noisy = "noisy",
        /// Fine for audio.
        Ok = "ok",
        /// Quiet: speaking would disturb others.
        Quiet = "quiet",
        /// Not known.
        Unknown = "unknown",
    }
}

token_enum! {
    /// How the place is for video communication (`<rpid:place-is><rpid:video>`).
    pub enum PlaceVideo("place-is video") {
        /// Too bright for video.
        TooBright = "toobright",
        /// Fine for video.
        Ok = "ok",
        /// Too dark for video.
        Dark = "dark",
        /// Not known.
        Unknown = "unknown",
    }
}

token_enum! {
    /// How the place is for text communication (`<rpid:place-is><rpid:text>`).
    pub enum PlaceText("place-is text") {
        /// Typing is uncomfortable (e.g. while walking).
        Uncomfortable = "uncomfortable",
        /// Typing is inappropriate (e.g. in a meeting).
        Inappropriate = "inappropriate",
        /// Fine for text.
        Ok = "ok",
        /// Not known.
        Unknown = "unknown",
    }
}

/// Properties of the place the person is in, for each medium (`<rpid:place-is>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceIs {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// Conditions for audio.
    pub audio: Option<PlaceAudio>,
    /// Conditions for video.
    pub video: Option<PlaceVideo>,
    /// Conditions for text.
    pub text: Option<PlaceText>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

/// Reads the single token child of a `<rpid:place-is>` medium element (`<rpid:audio>`);
/// `None` unless it is exactly one known value and nothing else: the medium is then kept
/// whole in the `<rpid:place-is>` extensions.
fn place_token<T>(node: Node<'_, '_>, from_name: fn(&str) -> Option<T>) -> Option<T> {
    if node.has_attrs() || node.has_text() {
        return None;
    }
    let mut children = node.children();
    let child = children.next()?;
    if children.next().is_some() || child.ns() != ns::RPID {
        return None;
    }
    token(child, from_name(child.local()))
}

impl PlaceIs {
    /// Reads `<rpid:place-is>`; `None` when it holds text: the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = PlaceIs {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..PlaceIs::default()
        };
        for child in node.children() {
            if child.ns() == ns::RPID {
                // A medium seen before is a repeat: kept, like an unknown element.
                let read = match child.local() {
                    "note" => Note::read(child).map(|n| out.notes.push(n)),
                    "audio" if out.audio.is_none() => {
                        place_token(child, PlaceAudio::from_name).map(|v| out.audio = Some(v))
                    }
                    "video" if out.video.is_none() => {
                        place_token(child, PlaceVideo::from_name).map(|v| out.video = Some(v))
                    }
                    "text" if out.text.is_none() => {
                        place_token(child, PlaceText::from_name).map(|v| out.text = Some(v))
                    }
                    _ => None,
                };
                if read.is_some() {
                    continue;
                }
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        open_ranged(
            w,
            "place-is",
            self.id.as_deref(),
            &self.range,
            &self.extension_attributes,
        );
        w.close_start();
        for n in &self.notes {
            n.write(w, ns::RPID);
        }
        let media = [
            ("audio", self.audio.as_ref().map(PlaceAudio::as_str)),
            ("video", self.video.as_ref().map(PlaceVideo::as_str)),
            ("text", self.text.as_ref().map(PlaceText::as_str)),
        ];
        for (medium, value) in media {
            if let Some(value) = value {
                w.open(ns::RPID, medium);
                w.close_start();
                w.empty(ns::RPID, value);
                w.end(ns::RPID, medium);
            }
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "place-is");
    }
}

// ---------------------------------------------------------------------------------------
// place-type
// ---------------------------------------------------------------------------------------

/// One type of place (`<rpid:place-type>` child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceTypeValue {
    /// A location type token of RFC 4589 (namespace [`ns::LOCATION_TYPE`]), such as
    /// `"residence"`, `"office"` or `"airport"`, kept as its element name.
    Location(String),
    /// A place type described in free text (`<rpid:other>`).
    Other(Note),
}

impl PlaceTypeValue {
    /// The token (`"office"`), or `"other"` for free text.
    pub fn as_str(&self) -> &str {
        match self {
            PlaceTypeValue::Location(t) => t,
            PlaceTypeValue::Other(_) => "other",
        }
    }
}

/// The type of place the person is at (`<rpid:place-type>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceType {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The place types, in document order.
    pub values: Vec<PlaceTypeValue>,
    /// Child elements of namespaces other than RPID and location types, kept.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl PlaceType {
    /// Reads `<rpid:place-type>`; `None` when it holds text: the caller keeps it whole.
    /// The pre-RFC form `<rpid:place-type><rpid:office/></rpid:place-type>` reads as a
    /// place type without values whose `extensions` hold `<rpid:office/>`.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = PlaceType {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..PlaceType::default()
        };
        for child in node.children() {
            match (child.ns(), child.local()) {
                (ns::LOCATION_TYPE, name) if child.is_empty_element() => {
                    out.values.push(PlaceTypeValue::Location(name.to_owned()));
                    continue;
                }
                (ns::RPID, "note") => {
                    if let Some(n) = Note::read(child) {
                        out.notes.push(n);
                        continue;
                    }
                }
                (ns::RPID, "other") => {
                    if let Some(n) = Note::read(child) {
                        out.values.push(PlaceTypeValue::Other(n));
                        continue;
                    }
                }
                _ => {}
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        open_ranged(
            w,
            "place-type",
            self.id.as_deref(),
            &self.range,
            &self.extension_attributes,
        );
        if self.notes.is_empty() && self.values.is_empty() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for n in &self.notes {
            n.write(w, ns::RPID);
        }
        for v in &self.values {
            match v {
                // Written as a kept element so that it carries its own namespace declaration
                // when the writer has no prefix for location types.
                PlaceTypeValue::Location(token) => w.element(&Element {
                    namespace: ns::LOCATION_TYPE.to_owned(),
                    name: token.clone(),
                    ..Element::default()
                }),
                PlaceTypeValue::Other(note) => write_note_as(w, "other", note),
            }
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "place-type");
    }
}

// ---------------------------------------------------------------------------------------
// privacy
// ---------------------------------------------------------------------------------------

token_enum! {
    /// A medium that third parties near the person are unlikely to overhear.
    pub enum PrivacyValue("privacy") {
        /// Audio is private.
        Audio = "audio",
        /// Text is private.
        Text = "text",
        /// Video is private.
        Video = "video",
        /// Not known (`<rpid:unknown/>`).
        Unknown = "unknown",
    }
}

/// Which media are private at the person's location (`<rpid:privacy>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Privacy {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The private media.
    pub values: Vec<PrivacyValue>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl Privacy {
    /// Reads `<rpid:privacy>`; `None` when it holds text: the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() {
            return Ok(None);
        }
        let mut out = Privacy {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..Privacy::default()
        };
        for child in node.children() {
            if child.ns() == ns::RPID {
                match child.local() {
                    "note" => {
                        if let Some(n) = Note::read(child) {
                            out.notes.push(n);
                            continue;
                        }
                    }
                    name => {
                        if let Some(p) = token(child, PrivacyValue::from_name(name)) {
                            out.values.push(p);
                            continue;
                        }
                    }
                }
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        open_ranged(
            w,
            "privacy",
            self.id.as_deref(),
            &self.range,
            &self.extension_attributes,
        );
        if self.notes.is_empty() && self.values.is_empty() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for n in &self.notes {
            n.write(w, ns::RPID);
        }
        for v in &self.values {
            w.empty(ns::RPID, v.as_str());
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "privacy");
    }
}

// ---------------------------------------------------------------------------------------
// relationship, service-class (tuple level, no attributes)
// ---------------------------------------------------------------------------------------

token_enum! {
    /// How the contact of a tuple relates to the presentity (`<rpid:relationship>`).
    pub enum RelationshipValue("relationship") {
        /// The presentity's assistant.
        Assistant = "assistant",
        /// An associate (colleague).
        Associate = "associate",
        /// A family member.
        Family = "family",
        /// A friend.
        Friend = "friend",
        /// The presentity itself (the default when the element is absent).
        SelfContact = "self",
        /// The presentity's supervisor.
        Supervisor = "supervisor",
        /// Not known.
        Unknown = "unknown",
        @other
        /// A relationship described in free text (`<rpid:other>`).
        Other(Note),
    }
}

/// The relationship of a tuple's contact to the presentity (`<rpid:relationship>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relationship {
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The relationship; `None` when the element carries none (or only extensions).
    pub value: Option<RelationshipValue>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
}

impl Relationship {
    /// Reads `<rpid:relationship>`; `None` when it holds text or attributes (RFC 4480 gives
    /// it none): the caller keeps it whole. A second value is kept as an extension.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() || node.has_attrs() {
            return Ok(None);
        }
        let mut out = Relationship::default();
        for child in node.children() {
            if child.ns() == ns::RPID {
                match child.local() {
                    "note" => {
                        if let Some(n) = Note::read(child) {
                            out.notes.push(n);
                            continue;
                        }
                    }
                    "other" if out.value.is_none() => {
                        if let Some(n) = Note::read(child) {
                            out.value = Some(RelationshipValue::Other(n));
                            continue;
                        }
                    }
                    name if out.value.is_none() => {
                        if let Some(v) = token(child, RelationshipValue::from_name(name)) {
                            out.value = Some(v);
                            continue;
                        }
                    }
                    _ => {}
                }
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::RPID, "relationship");
        if self.notes.is_empty() && self.value.is_none() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for n in &self.notes {
            n.write(w, ns::RPID);
        }
        match &self.value {
            Some(RelationshipValue::Other(note)) => write_note_as(w, "other", note),
            Some(v) => w.empty(ns::RPID, v.as_str()),
            None => {}
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "relationship");
    }
}

token_enum! {
    /// The kind of service a tuple offers (`<rpid:service-class>`).
    pub enum ServiceClassValue("service class") {
        /// Courier delivery.
        Courier = "courier",
        /// Electronic communication (the usual case).
        Electronic = "electronic",
        /// Freight delivery.
        Freight = "freight",
        /// Meeting in person.
        InPerson = "in-person",
        /// Postal mail.
        Postal = "postal",
        /// Not known.
        Unknown = "unknown",
    }
}

/// The kind of service a tuple offers (`<rpid:service-class>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceClass {
    /// `<rpid:note>` children.
    pub notes: Vec<Note>,
    /// The service class; `None` when the element carries none (or only extensions).
    pub value: Option<ServiceClassValue>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
}

impl ServiceClass {
    /// Reads `<rpid:service-class>`; `None` when it holds text or attributes (RFC 4480
    /// gives it none): the caller keeps it whole. A second value is kept as an extension.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_text() || node.has_attrs() {
            return Ok(None);
        }
        let mut out = ServiceClass::default();
        for child in node.children() {
            if child.ns() == ns::RPID {
                match child.local() {
                    "note" => {
                        if let Some(n) = Note::read(child) {
                            out.notes.push(n);
                            continue;
                        }
                    }
                    name if out.value.is_none() => {
                        if let Some(v) = token(child, ServiceClassValue::from_name(name)) {
                            out.value = Some(v);
                            continue;
                        }
                    }
                    _ => {}
                }
            }
            out.extensions.push(child.to_element());
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::RPID, "service-class");
        if self.notes.is_empty() && self.value.is_none() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        for n in &self.notes {
            n.write(w, ns::RPID);
        }
        if let Some(v) = &self.value {
            w.empty(ns::RPID, v.as_str());
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "service-class");
    }
}

// ---------------------------------------------------------------------------------------
// sphere
// ---------------------------------------------------------------------------------------

/// The role the person currently plays (`<rpid:sphere>` content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SphereValue {
    /// `<rpid:home/>`.
    Home,
    /// `<rpid:work/>`.
    Work,
    /// `<rpid:unknown/>`.
    Unknown,
    /// A sphere given as free text, e.g. `<rpid:sphere>bowling league</rpid:sphere>`.
    Other(String),
}

impl SphereValue {
    /// `"home"`, `"work"`, `"unknown"` or the free text.
    pub fn as_str(&self) -> &str {
        match self {
            SphereValue::Home => "home",
            SphereValue::Work => "work",
            SphereValue::Unknown => "unknown",
            SphereValue::Other(t) => t,
        }
    }

    /// The predefined value with this name, if any.
    pub fn from_name(name: &str) -> Option<SphereValue> {
        match name {
            "home" => Some(SphereValue::Home),
            "work" => Some(SphereValue::Work),
            "unknown" => Some(SphereValue::Unknown),
            _ => None,
        }
    }
}

/// The current role of the person (`<rpid:sphere>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sphere {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// The sphere; `None` for an empty element (or one with extensions only).
    pub value: Option<SphereValue>,
    /// Child elements this module does not read (other namespaces, names RFC 4480 does not
    /// define here, repeats, other shapes), kept and written back.
    pub extensions: Vec<Element>,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl Sphere {
    /// Reads `<rpid:sphere>`; `None` when it holds both a value element and text (the
    /// schema allows one or the other): the caller keeps it whole. A second value element
    /// is kept as an extension.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        let mut out = Sphere {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
            ..Sphere::default()
        };
        for child in node.children() {
            if child.ns() == ns::RPID && out.value.is_none() {
                if let Some(v) = token(child, SphereValue::from_name(child.local())) {
                    out.value = Some(v);
                    continue;
                }
            }
            out.extensions.push(child.to_element());
        }
        let text = node.trimmed();
        if !text.is_empty() {
            if out.value.is_some() {
                return Ok(None);
            }
            out.value = Some(SphereValue::Other(text.to_owned()));
        }
        Ok(Some(out))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        open_ranged(
            w,
            "sphere",
            self.id.as_deref(),
            &self.range,
            &self.extension_attributes,
        );
        if self.value.is_none() && self.extensions.is_empty() {
            w.close_empty();
            return;
        }
        w.close_start();
        match &self.value {
            Some(SphereValue::Other(text)) => w.text(text),
            Some(v) => w.empty(ns::RPID, v.as_str()),
            None => {}
        }
        w.elements(&self.extensions);
        w.end(ns::RPID, "sphere");
    }
}

// ---------------------------------------------------------------------------------------
// status-icon, time-offset, user-input, class
// ---------------------------------------------------------------------------------------

/// An image representing the current status (`<rpid:status-icon>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusIcon {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// The URI of the image (surrounding whitespace removed).
    pub uri: String,
    /// Attributes other than `id`, `from` and `until`, kept and written back.
    pub extension_attributes: Vec<Attribute>,
}

impl StatusIcon {
    /// Reads `<rpid:status-icon>`; `None` when it holds elements (it holds a URI): the
    /// caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_children() {
            return Ok(None);
        }
        Ok(Some(StatusIcon {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            uri: node.trimmed().to_owned(),
            extension_attributes: read_ext_attrs(node, RANGE_ATTRS),
        }))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        open_ranged(
            w,
            "status-icon",
            self.id.as_deref(),
            &self.range,
            &self.extension_attributes,
        );
        w.close_start();
        w.text(&self.uri);
        w.end(ns::RPID, "status-icon");
    }
}

/// The offset of the person's local time from UTC (`<rpid:time-offset>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimeOffset {
    /// The `id` attribute.
    pub id: Option<String>,
    /// The `from` and `until` attributes.
    pub range: TimeRange,
    /// The `description` attribute, e.g. a time zone name.
    pub description: Option<String>,
    /// Minutes east of UTC (negative west of it), e.g. 60 for CET.
    pub minutes: i32,
    /// Attributes other than `id`, `from`, `until` and `description`, kept.
    pub extension_attributes: Vec<Attribute>,
}

impl TimeOffset {
    /// Reads `<rpid:time-offset>`; `None` when it holds elements (it holds a number): the
    /// caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_children() {
            return Ok(None);
        }
        let text = node.trimmed();
        let minutes = text.parse::<i32>().map_err(|_| {
            malformed(format!(
                "<rpid:time-offset> must be a whole number of minutes, not '{text}'"
            ))
        })?;
        Ok(Some(TimeOffset {
            id: read_id(node),
            range: TimeRange::from_attrs(node)?,
            description: node.attr("description").map(str::to_owned),
            minutes,
            extension_attributes: read_ext_attrs(node, &["id", "from", "until", "description"]),
        }))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::RPID, "time-offset");
        w.attr_opt("id", self.id.as_deref());
        self.range.write_attrs(w);
        w.attr_opt("description", self.description.as_deref());
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        w.text(&self.minutes.to_string());
        w.end(ns::RPID, "time-offset");
    }
}

/// Whether the user is using the service or device (`<rpid:user-input>` content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UserInputState {
    /// Input happened within the idle threshold.
    #[default]
    Active,
    /// No input for longer than the idle threshold.
    Idle,
}

impl UserInputState {
    /// `"active"` or `"idle"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            UserInputState::Active => "active",
            UserInputState::Idle => "idle",
        }
    }

    /// Parses `"active"` or `"idle"`.
    pub fn from_name(name: &str) -> Option<UserInputState> {
        match name {
            "active" => Some(UserInputState::Active),
            "idle" => Some(UserInputState::Idle),
            _ => None,
        }
    }
}

/// Recent user input on a service or device (`<rpid:user-input>`). RFC 4480 gives this
/// element no `from`/`until` (it describes the present); if a document carries them anyway
/// they are kept in [`UserInput::extension_attributes`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInput {
    /// The `id` attribute.
    pub id: Option<String>,
    /// Seconds without input after which the state becomes idle (`idle-threshold`, > 0).
    pub idle_threshold: Option<u32>,
    /// When the last input happened (`last-input`).
    pub last_input: Option<Timestamp>,
    /// Active or idle.
    pub state: UserInputState,
    /// Attributes other than `id`, `idle-threshold` and `last-input`, kept.
    pub extension_attributes: Vec<Attribute>,
}

impl UserInput {
    /// Reads `<rpid:user-input>`; `None` when it holds elements (it holds `active` or
    /// `idle`): the caller keeps it whole.
    pub(crate) fn from_node(node: Node<'_, '_>) -> Result<Option<Self>> {
        if node.has_children() {
            return Ok(None);
        }
        let text = node.trimmed();
        let state = UserInputState::from_name(text).ok_or_else(|| {
            malformed(format!(
                "<rpid:user-input> must be 'active' or 'idle', not '{text}'"
            ))
        })?;
        let idle_threshold =
            match node.attr("idle-threshold") {
                None => None,
                Some(v) => Some(v.trim().parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(
                    || {
                        malformed(format!(
                            "<rpid:user-input> has a bad 'idle-threshold' attribute '{v}' \
                             (expected a positive number of seconds)"
                        ))
                    },
                )?),
            };
        let last_input = match node.attr("last-input") {
            None => None,
            Some(v) => Some(Timestamp::parse(v).map_err(|_| {
                malformed(format!(
                    "<rpid:user-input> has a bad 'last-input' attribute '{v}' \
                     (expected a date-time such as 2026-11-24T14:45:00Z)"
                ))
            })?),
        };
        Ok(Some(UserInput {
            id: read_id(node),
            idle_threshold,
            last_input,
            state,
            extension_attributes: read_ext_attrs(node, &["id", "idle-threshold", "last-input"]),
        }))
    }

    pub(crate) fn write(&self, w: &mut XmlWriter<'_>) {
        w.open(ns::RPID, "user-input");
        w.attr_opt("id", self.id.as_deref());
        if let Some(t) = self.idle_threshold {
            w.attr("idle-threshold", &t.to_string());
        }
        w.attr_opt(
            "last-input",
            self.last_input.as_ref().map(Timestamp::as_str),
        );
        w.ext_attrs(&self.extension_attributes);
        w.close_start();
        w.text(self.state.as_str());
        w.end(ns::RPID, "user-input");
    }
}

/// Reads `<rpid:class>`: an `xs:token` used to group tuples, devices or persons. Runs of
/// whitespace collapse to one space, as `xs:token` demands. `None` when it holds elements
/// or attributes (the schema gives it neither): the caller keeps it whole.
pub(crate) fn parse_class(node: Node<'_, '_>) -> Result<Option<String>> {
    if !node.is_leaf(&[]) {
        return Ok(None);
    }
    Ok(Some(
        node.text().split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// Writes `<rpid:class>token</rpid:class>`.
pub(crate) fn write_class(w: &mut XmlWriter<'_>, class: &str) {
    w.leaf(ns::RPID, "class", class);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::xml::Tree;
    use crate::doc::Limits;

    const KNOWN: &[(&str, &str)] = &[
        (ns::RPID, "rpid"),
        (ns::CAPS, "caps"),
        (ns::LOCATION_TYPE, "lt"),
    ];

    trait Codec: Sized + PartialEq + std::fmt::Debug {
        fn read(node: Node<'_, '_>) -> Result<Option<Self>>;
        fn put(&self, w: &mut XmlWriter<'_>);
    }

    macro_rules! codec {
        ($($t:ty),*) => {$(
            impl Codec for $t {
                fn read(node: Node<'_, '_>) -> Result<Option<Self>> { <$t>::from_node(node) }
                fn put(&self, w: &mut XmlWriter<'_>) { self.write(w) }
            }
        )*};
    }
    codec!(
        Activities,
        Mood,
        PlaceIs,
        PlaceType,
        Privacy,
        Relationship,
        ServiceClass,
        Sphere
    );
    codec!(StatusIcon, TimeOffset, UserInput);

    /// Reads `fragment` (prefixes rpid, lt and ext declared) as the first child of a root:
    /// `Ok(None)` when the reader leaves it to its parent to keep whole.
    fn read<T: Codec>(fragment: &str) -> Result<Option<T>> {
        let doc = format!(
            r#"<presence xmlns="{}" xmlns:rpid="{}" xmlns:lt="{}" xmlns:ext="urn:example:ext">{fragment}</presence>"#,
            ns::PIDF,
            ns::RPID,
            ns::LOCATION_TYPE
        );
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT)?;
        let node = tree.root().children().next().expect("a child");
        T::read(node)
    }

    /// Reads `fragment`, which must be taken by its reader.
    fn parse<T: Codec>(fragment: &str) -> Result<T> {
        read(fragment).map(|v| v.unwrap_or_else(|| panic!("not read, kept: {fragment}")))
    }

    /// Asserts that the reader does not take `fragment`: its parent keeps it whole.
    fn kept<T: Codec>(fragment: &str) {
        assert_eq!(read::<T>(fragment).unwrap(), None, "{fragment}");
    }

    /// The names of the extensions of a model read from `fragment`.
    fn ext_names(extensions: &[Element]) -> Vec<&str> {
        extensions.iter().map(|e| e.name.as_str()).collect()
    }

    /// Writes `value`, parses the output and checks the model survived; returns the XML.
    fn round_trip<T: Codec>(value: &T, known: &'static [(&'static str, &'static str)]) -> String {
        let mut w = XmlWriter::new(ns::PIDF, known);
        value.put(&mut w);
        let doc = w.finish("presence", |_| {});
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT).unwrap();
        let again = T::read(tree.root().children().next().unwrap()).unwrap();
        assert_eq!(again.as_ref(), Some(value), "{doc}");
        doc
    }

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn activities_model_and_round_trip() {
        let a: Activities = parse(
            r#"<rpid:activities id="act1" from="2026-11-24T14:00:00Z" until="2026-11-24T15:00:00Z" ext:src="calendar">
                 <rpid:note xml:lang="en">Weekly sync</rpid:note>
                 <rpid:meeting/>
                 <rpid:on-the-phone/>
                 <rpid:other xml:lang="de">Wandern</rpid:other>
                 <ext:juggling level="3"/>
               </rpid:activities>"#,
        )
        .unwrap();
        assert_eq!(a.id.as_deref(), Some("act1"));
        assert_eq!(a.range.from, Some(ts("2026-11-24T14:00:00Z")));
        assert_eq!(a.range.until, Some(ts("2026-11-24T15:00:00Z")));
        assert_eq!(a.notes, vec![Note::with_lang("Weekly sync", "en")]);
        assert_eq!(
            a.values,
            vec![
                Activity::Meeting,
                Activity::OnThePhone,
                Activity::Other(Note::with_lang("Wandern", "de")),
            ]
        );
        assert_eq!(a.extensions.len(), 1);
        assert_eq!(a.extensions[0].name, "juggling");
        assert_eq!(a.extension_attributes.len(), 1);
        assert_eq!(a.extension_attributes[0].name, "src");
        round_trip(&a, KNOWN);
    }

    #[test]
    fn empty_and_unknown_activities_are_valid() {
        let empty: Activities = parse("<rpid:activities/>").unwrap();
        assert_eq!(empty, Activities::default());
        let doc = round_trip(&empty, KNOWN);
        assert!(doc.contains("<rpid:activities/>"), "{doc}");

        let unknown: Activities =
            parse("<rpid:activities><rpid:unknown/></rpid:activities>").unwrap();
        assert_eq!(unknown.values, vec![Activity::Unknown]);
        round_trip(&unknown, KNOWN);
    }

    #[test]
    fn activity_names() {
        assert_eq!(Activity::NAMES.len(), 25);
        for name in Activity::NAMES {
            let a = Activity::from_name(name).unwrap();
            assert_eq!(a.as_str(), *name);
        }
        assert_eq!(
            Activity::from_name("on-the-phone"),
            Some(Activity::OnThePhone)
        );
        assert_eq!(Activity::from_name("other"), None);
        assert_eq!(Activity::from_name("On-The-Phone"), None);
        assert_eq!(Activity::Other(Note::new("x")).as_str(), "other");
        let all = Activities::new(
            Activity::NAMES
                .iter()
                .filter_map(|n| Activity::from_name(n))
                .collect(),
        );
        round_trip(&all, KNOWN);
    }

    #[test]
    fn unknown_activities_are_kept_values_are_checked() {
        let a: Activities = parse(
            "<rpid:activities><rpid:foo/><rpid:busy/><rpid:away>now</rpid:away></rpid:activities>",
        )
        .unwrap();
        assert_eq!(a.values, vec![Activity::Busy]);
        assert_eq!(ext_names(&a.extensions), ["foo", "away"]);
        assert_eq!(a.extensions[1].text, "now");
        round_trip(&a, KNOWN);
        kept::<Activities>("<rpid:activities>busy</rpid:activities>");
        let err = parse::<Activities>(
            r#"<rpid:activities from="tomorrow"><rpid:away/></rpid:activities>"#,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Malformed(m) if m.contains("tomorrow") && m.contains("from")),
            "{err}"
        );
        assert!(parse::<Activities>(r#"<rpid:activities until="2026-02-30T00:00:00Z"/>"#).is_err());
    }

    #[test]
    fn mood_model_and_round_trip() {
        let m: Mood = parse(
            r#"<rpid:mood id="m1" until="2026-11-24T18:00:00+01:00">
                 <rpid:note>after the release</rpid:note>
                 <rpid:happy/><rpid:in_love/><rpid:other>chuffed</rpid:other>
               </rpid:mood>"#,
        )
        .unwrap();
        assert_eq!(m.id.as_deref(), Some("m1"));
        assert_eq!(m.range.until, Some(ts("2026-11-24T18:00:00+01:00")));
        assert_eq!(m.notes, vec![Note::new("after the release")]);
        assert_eq!(
            m.values,
            vec![
                MoodValue::Happy,
                MoodValue::InLove,
                MoodValue::Other(Note::new("chuffed"))
            ]
        );
        round_trip(&m, KNOWN);
        assert_eq!(MoodValue::NAMES.len(), 60);
        for name in MoodValue::NAMES {
            assert_eq!(MoodValue::from_name(name).unwrap().as_str(), *name);
        }
        let m: Mood = parse("<rpid:mood><rpid:elated/><rpid:sad/></rpid:mood>").unwrap();
        assert_eq!(m.values, vec![MoodValue::Sad]);
        assert_eq!(ext_names(&m.extensions), ["elated"]);
        round_trip(&m, KNOWN);
        round_trip(&Mood::new(vec![MoodValue::Unknown]), KNOWN);
    }

    #[test]
    fn place_is_model_and_round_trip() {
        let p: PlaceIs = parse(
            r#"<rpid:place-is from="2026-11-24T09:00:00Z">
                 <rpid:audio><rpid:noisy/></rpid:audio>
                 <rpid:video><rpid:toobright/></rpid:video>
                 <rpid:text><rpid:uncomfortable/></rpid:text>
               </rpid:place-is>"#,
        )
        .unwrap();
        assert_eq!(p.audio, Some(PlaceAudio::Noisy));
        assert_eq!(p.video, Some(PlaceVideo::TooBright));
        assert_eq!(p.text, Some(PlaceText::Uncomfortable));
        round_trip(&p, KNOWN);
        // A medium that is not one known value, a repeated medium and an unknown medium are
        // kept; the first readable medium is read.
        let p: PlaceIs = parse(
            "<rpid:place-is><rpid:audio><rpid:dark/></rpid:audio><rpid:audio/>\
             <rpid:audio><rpid:quiet/></rpid:audio><rpid:audio><rpid:ok/></rpid:audio>\
             <rpid:smell><rpid:ok/></rpid:smell></rpid:place-is>",
        )
        .unwrap();
        assert_eq!(p.audio, Some(PlaceAudio::Quiet));
        assert_eq!(
            ext_names(&p.extensions),
            ["audio", "audio", "audio", "smell"]
        );
        round_trip(&p, KNOWN);
    }

    #[test]
    fn place_type_model_and_round_trip() {
        let p: PlaceType = parse(
            r#"<rpid:place-type id="pt">
                 <lt:residence/><lt:office/><rpid:other xml:lang="en">boat</rpid:other>
                 <ext:deck n="2"/>
               </rpid:place-type>"#,
        )
        .unwrap();
        assert_eq!(
            p.values,
            vec![
                PlaceTypeValue::Location("residence".into()),
                PlaceTypeValue::Location("office".into()),
                PlaceTypeValue::Other(Note::with_lang("boat", "en")),
            ]
        );
        assert_eq!(p.extensions.len(), 1);
        let doc = round_trip(&p, KNOWN);
        assert!(doc.contains("<lt:residence/>"), "{doc}");
        // A writer without a prefix for location types still produces the right namespace.
        round_trip(&p, &[(ns::RPID, "rpid")]);
        // The pre-RFC form names the place type in the RPID namespace: kept, not refused.
        let old: PlaceType = parse("<rpid:place-type><rpid:office/></rpid:place-type>").unwrap();
        assert!(old.values.is_empty());
        assert_eq!(old.extensions[0].namespace, ns::RPID);
        assert_eq!(old.extensions[0].name, "office");
        let doc = round_trip(&old, KNOWN);
        assert!(doc.contains("<rpid:office/>"), "{doc}");
        kept::<PlaceType>("<rpid:place-type>office</rpid:place-type>");
    }

    #[test]
    fn privacy_model_and_round_trip() {
        let p: Privacy = parse(
            r#"<rpid:privacy><rpid:note>door closed</rpid:note><rpid:audio/><rpid:video/></rpid:privacy>"#,
        )
        .unwrap();
        assert_eq!(p.values, vec![PrivacyValue::Audio, PrivacyValue::Video]);
        assert_eq!(p.notes.len(), 1);
        round_trip(&p, KNOWN);
        let u: Privacy = parse("<rpid:privacy><rpid:unknown/></rpid:privacy>").unwrap();
        assert_eq!(u.values, vec![PrivacyValue::Unknown]);
        round_trip(&u, KNOWN);
        let p: Privacy = parse("<rpid:privacy><rpid:smell/></rpid:privacy>").unwrap();
        assert_eq!(ext_names(&p.extensions), ["smell"]);
        round_trip(&p, KNOWN);
    }

    #[test]
    fn relationship_and_service_class() {
        let r: Relationship =
            parse("<rpid:relationship><rpid:assistant/></rpid:relationship>").unwrap();
        assert_eq!(r.value, Some(RelationshipValue::Assistant));
        round_trip(&r, KNOWN);
        let r: Relationship =
            parse("<rpid:relationship><rpid:other>coach</rpid:other></rpid:relationship>").unwrap();
        assert_eq!(r.value, Some(RelationshipValue::Other(Note::new("coach"))));
        round_trip(&r, KNOWN);
        assert_eq!(
            RelationshipValue::from_name("self"),
            Some(RelationshipValue::SelfContact)
        );
        let r: Relationship =
            parse("<rpid:relationship><rpid:family/><rpid:friend/></rpid:relationship>").unwrap();
        assert_eq!(r.value, Some(RelationshipValue::Family));
        assert_eq!(ext_names(&r.extensions), ["friend"]);
        round_trip(&r, KNOWN);
        kept::<Relationship>(r#"<rpid:relationship id="r"><rpid:family/></rpid:relationship>"#);

        let s: ServiceClass =
            parse("<rpid:service-class><rpid:note>front desk</rpid:note><rpid:in-person/></rpid:service-class>")
                .unwrap();
        assert_eq!(s.value, Some(ServiceClassValue::InPerson));
        round_trip(&s, KNOWN);
        let s: ServiceClass =
            parse("<rpid:service-class><rpid:pigeon/></rpid:service-class>").unwrap();
        assert_eq!(s.value, None);
        assert_eq!(ext_names(&s.extensions), ["pigeon"]);
        round_trip(&s, KNOWN);
    }

    #[test]
    fn sphere_values() {
        let s: Sphere =
            parse(r#"<rpid:sphere id="s1" from="2026-11-24T08:00:00Z"><rpid:work/></rpid:sphere>"#)
                .unwrap();
        assert_eq!(s.value, Some(SphereValue::Work));
        assert_eq!(s.id.as_deref(), Some("s1"));
        round_trip(&s, KNOWN);
        let s: Sphere = parse("<rpid:sphere> bowling league </rpid:sphere>").unwrap();
        assert_eq!(s.value, Some(SphereValue::Other("bowling league".into())));
        round_trip(&s, KNOWN);
        let s: Sphere = parse("<rpid:sphere/>").unwrap();
        assert_eq!(s.value, None);
        round_trip(&s, KNOWN);
        let s: Sphere = parse("<rpid:sphere><rpid:home/><rpid:work/></rpid:sphere>").unwrap();
        assert_eq!(s.value, Some(SphereValue::Home));
        assert_eq!(ext_names(&s.extensions), ["work"]);
        round_trip(&s, KNOWN);
        kept::<Sphere>("<rpid:sphere>club<rpid:home/></rpid:sphere>");
        let s: Sphere = parse("<rpid:sphere>club<rpid:garden/></rpid:sphere>").unwrap();
        assert_eq!(s.value, Some(SphereValue::Other("club".into())));
        assert_eq!(ext_names(&s.extensions), ["garden"]);
        round_trip(&s, KNOWN);
    }

    #[test]
    fn status_icon_and_time_offset() {
        let i: StatusIcon =
            parse(r#"<rpid:status-icon until="2026-11-25T00:00:00Z"> http://example.test/busy.png </rpid:status-icon>"#)
                .unwrap();
        assert_eq!(i.uri, "http://example.test/busy.png");
        assert_eq!(i.range.until, Some(ts("2026-11-25T00:00:00Z")));
        round_trip(&i, KNOWN);

        let t: TimeOffset = parse(
            r#"<rpid:time-offset description="Eastern" ext:dst="no">-300</rpid:time-offset>"#,
        )
        .unwrap();
        assert_eq!(t.minutes, -300);
        assert_eq!(t.description.as_deref(), Some("Eastern"));
        assert_eq!(t.extension_attributes.len(), 1);
        round_trip(&t, KNOWN);
        let t: TimeOffset = parse("<rpid:time-offset>+60</rpid:time-offset>").unwrap();
        assert_eq!(t.minutes, 60);
        kept::<TimeOffset>("<rpid:time-offset><ext:hours>1</ext:hours></rpid:time-offset>");
        kept::<StatusIcon>("<rpid:status-icon><ext:img/></rpid:status-icon>");
        for bad in ["", "1.5", "an hour", "99999999999"] {
            let err = parse::<TimeOffset>(&format!("<rpid:time-offset>{bad}</rpid:time-offset>"))
                .unwrap_err();
            assert!(
                matches!(&err, Error::Malformed(m) if m.contains("time-offset")),
                "{err}"
            );
        }
    }

    #[test]
    fn user_input_model_and_errors() {
        let u: UserInput = parse(
            r#"<rpid:user-input id="ui" idle-threshold="600" last-input="2026-11-24T14:40:00Z">idle</rpid:user-input>"#,
        )
        .unwrap();
        assert_eq!(u.state, UserInputState::Idle);
        assert_eq!(u.idle_threshold, Some(600));
        assert_eq!(u.last_input, Some(ts("2026-11-24T14:40:00Z")));
        round_trip(&u, KNOWN);
        let u: UserInput = parse("<rpid:user-input> active </rpid:user-input>").unwrap();
        assert_eq!(u.state, UserInputState::Active);
        round_trip(&u, KNOWN);

        for (bad, needle) in [
            (
                r#"<rpid:user-input idle-threshold="abc">idle</rpid:user-input>"#,
                "abc",
            ),
            (
                r#"<rpid:user-input idle-threshold="0">idle</rpid:user-input>"#,
                "idle-threshold",
            ),
            (
                r#"<rpid:user-input last-input="now">idle</rpid:user-input>"#,
                "now",
            ),
            ("<rpid:user-input>asleep</rpid:user-input>", "asleep"),
            // A value is checked even next to an extension attribute.
            (
                r#"<rpid:user-input ext:why="away">asleep</rpid:user-input>"#,
                "asleep",
            ),
        ] {
            let err = parse::<UserInput>(bad).unwrap_err();
            assert!(
                matches!(&err, Error::Malformed(m) if m.contains(needle)),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn class_is_a_token() {
        let doc = format!(
            r#"<r xmlns:rpid="{}"><rpid:class>  home   phones </rpid:class></r>"#,
            ns::RPID
        );
        let tree = Tree::parse("pidf", &doc, &Limits::DEFAULT).unwrap();
        let class = parse_class(tree.root().children().next().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(class, "home phones");
        let mut w = XmlWriter::new(ns::PIDF, KNOWN);
        write_class(&mut w, &class);
        assert!(w
            .finish("presence", |_| {})
            .contains("<rpid:class>home phones</rpid:class>"));
    }
}
