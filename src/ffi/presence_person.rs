//! Person data of a presence document (RFC 4479 `dm:person` with RFC 4480 RPID): activities,
//! mood, user input and person notes.
//!
//! These functions read and write the document's first person element; the setters create
//! it (with id `"person"`, or `"person-N"` if that id is taken) when the document has none.
//! Strings read are borrowed from the handle like every other getter.

use std::ffi::c_char;

use super::boundary::{
    guard, guard_value, handle, handle_mut, opt_str_arg, out_arg, str_arg, write_out,
};
use super::enum_arg;
use super::presence::{as_invalid_argument, impp_presence, make_note, Field};
use super::status::impp_status;
use crate::doc::datamodel::Person;
use crate::doc::pidf::Presence;
use crate::doc::rpid::{Activities, Activity, Mood, MoodValue, UserInput, UserInputState};
use crate::doc::{Note, Timestamp};
use crate::error::{Error, Result};

/// Whether the person is using their devices (RPID `user-input`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum impp_user_input {
    /// The document does not say.
    IMPP_USER_INPUT_UNKNOWN = 0,
    /// The person is using a device.
    IMPP_USER_INPUT_ACTIVE = 1,
    /// No input for longer than the idle threshold.
    IMPP_USER_INPUT_IDLE = 2,
}

fn person(doc: &Presence) -> Option<&Person> {
    doc.persons.first()
}

/// The first person, created if the document has none.
fn person_mut(doc: &mut Presence) -> &mut Person {
    if doc.persons.is_empty() {
        let taken = |id: &str| {
            doc.tuples.iter().any(|t| t.id == id) || doc.devices.iter().any(|d| d.id == id)
        };
        let mut id = "person".to_owned();
        let mut n = 1;
        while taken(&id) {
            n += 1;
            id = format!("person-{n}");
        }
        doc.persons.push(Person::new(id));
    }
    &mut doc.persons[0]
}

fn activity_from_name(name: &str) -> Result<Activity> {
    Activity::from_name(name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "'{name}' is not an RPID activity (one of {}; use impp_presence_add_other_activity for free text)",
            Activity::NAMES.join(", ")
        ))
    })
}

/// Adds an RPID activity by its RFC 4480 name (`"away"`, `"busy"`, `"on-the-phone"`,
/// `"meeting"`, ...) to the person. Adding one already present changes nothing.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, unknown name). Nothing changes on error.
///
/// # Safety
/// `presence` is NULL or a live handle; `name` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_activity(
    presence: *mut impp_presence,
    name: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let activity = activity_from_name(unsafe { str_arg(name, "name") }?)?;
        let person = person_mut(p.edit());
        let acts = person
            .activities
            .get_or_insert_with(|| Activities::new(Vec::new()));
        if !acts.values.contains(&activity) {
            acts.values.push(activity);
        }
        Ok(())
    })
}

/// Adds a free-text activity (RPID `<other>`), e.g. `"gardening"`, to the person.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, empty).
///
/// # Safety
/// `presence` is NULL or a live handle; `text` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_other_activity(
    presence: *mut impp_presence,
    text: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let text = unsafe { str_arg(text, "text") }?;
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument("activity text is empty".into()));
        }
        let person = person_mut(p.edit());
        let acts = person
            .activities
            .get_or_insert_with(|| Activities::new(Vec::new()));
        acts.values.push(Activity::Other(Note::new(text)));
        Ok(())
    })
}

/// Removes every activity of the person.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_clear_activities(
    presence: *mut impp_presence,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        if let Some(person) = p.edit().persons.first_mut() {
            person.activities = None;
        }
        Ok(())
    })
}

/// The number of activities of the person; 0 for NULL or when there is no person.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_activity_count(presence: *const impp_presence) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }
            .and_then(|p| person(&p.doc))
            .and_then(|x| x.activities.as_ref())
            .map_or(0, |a| a.values.len())
    })
}

/// Activity `index` of the person: `*name_out` is its RFC 4480 name, or
/// `"other"` for free text, whose text is then in `*text_out` (NULL for named activities). Both are borrowed from the handle;. `text_out` may be NULL.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND` (index out of range).
///
/// # Safety
/// `presence` is NULL or a live handle; `name_out` NULL or writable; `text_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_activity(
    presence: *const impp_presence,
    index: usize,
    name_out: *mut *const c_char,
    text_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(name_out, "name_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let values = person(&p.doc)
            .and_then(|x| x.activities.as_ref())
            .map_or(&[][..], |a| &a.values[..]);
        let activity = values.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "activity index {index} is out of range ({} activities)",
                values.len()
            ))
        })?;
        let name = p.borrow_str(Field::ActivityName(index), activity.as_str())?;
        let text = match activity {
            Activity::Other(note) => p.borrow_str(Field::ActivityText(index), &note.text)?,
            _ => std::ptr::null(),
        };
        // SAFETY: checked non-NULL above; `text_out` may be NULL.
        unsafe {
            write_out(name_out, name);
            if !text_out.is_null() {
                write_out(text_out, text);
            }
        }
        Ok(())
    })
}

/// Adds a mood by its RFC 4480 name (`"happy"`, `"stressed"`, `"in_love"`, ...) to the person.
/// Adding one already present changes nothing.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, unknown name).
///
/// # Safety
/// `presence` is NULL or a live handle; `name` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_mood(
    presence: *mut impp_presence,
    name: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let name = unsafe { str_arg(name, "name") }?;
        let mood = MoodValue::from_name(name)
            .ok_or_else(|| Error::InvalidArgument(format!("'{name}' is not an RPID mood")))?;
        let person = person_mut(p.edit());
        let moods = person.mood.get_or_insert_with(|| Mood::new(Vec::new()));
        if !moods.values.contains(&mood) {
            moods.values.push(mood);
        }
        Ok(())
    })
}

/// The number of moods of the person; 0 for NULL or when there is no person.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_mood_count(presence: *const impp_presence) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }
            .and_then(|p| person(&p.doc))
            .and_then(|x| x.mood.as_ref())
            .map_or(0, |m| m.values.len())
    })
}

/// Mood `index` of the person: its RFC 4480 name, or `"other"` for free text, borrowed from
/// the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `name_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_mood(
    presence: *const impp_presence,
    index: usize,
    name_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(name_out, "name_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let values = person(&p.doc)
            .and_then(|x| x.mood.as_ref())
            .map_or(&[][..], |m| &m.values[..]);
        let mood = values.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "mood index {index} is out of range ({} moods)",
                values.len()
            ))
        })?;
        let name = p.borrow_str(Field::MoodName(index), mood.as_str())?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(name_out, name) };
        Ok(())
    })
}

/// Sets the person's user input: `state` is an `impp_user_input` value
/// (`IMPP_USER_INPUT_UNKNOWN` removes it); `last_input` (may be NULL) is the `xs:dateTime` of
/// the last input.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL handle, bad state, bad date-time).
///
/// # Safety
/// `presence` is NULL or a live handle; `last_input` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_set_user_input(
    presence: *mut impp_presence,
    state: enum_arg::impp_user_input,
    last_input: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        let state = match state {
            0 => None,
            1 => Some(UserInputState::Active),
            2 => Some(UserInputState::Idle),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "user input {other} is not an impp_user_input value (0, 1 or 2)"
                )))
            }
        };
        // SAFETY: the caller's contract.
        let last_input = unsafe { opt_str_arg(last_input, "last_input") }?
            .map(Timestamp::parse)
            .transpose()
            .map_err(as_invalid_argument)?;
        let person = person_mut(p.edit());
        person.user_input = state.map(|state| UserInput {
            state,
            last_input,
            ..UserInput::default()
        });
        Ok(())
    })
}

/// The person's user input state, and (if `last_input_out` is not NULL) the time of the last
/// input, borrowed from the handle, or NULL when not given.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL).
///
/// # Safety
/// `presence` is NULL or a live handle; `state_out` NULL or writable; `last_input_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_user_input(
    presence: *const impp_presence,
    state_out: *mut impp_user_input,
    last_input_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(state_out, "state_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let input = person(&p.doc).and_then(|x| x.user_input.as_ref());
        let state = match input.map(|u| u.state) {
            None => impp_user_input::IMPP_USER_INPUT_UNKNOWN,
            Some(UserInputState::Active) => impp_user_input::IMPP_USER_INPUT_ACTIVE,
            Some(UserInputState::Idle) => impp_user_input::IMPP_USER_INPUT_IDLE,
        };
        let last = input
            .and_then(|u| u.last_input.as_ref())
            .map(Timestamp::as_str);
        let last = p.borrow_opt(Field::LastInput, last)?;
        // SAFETY: checked non-NULL above; `last_input_out` may be NULL.
        unsafe {
            write_out(state_out, state);
            if !last_input_out.is_null() {
                write_out(last_input_out, last);
            }
        }
        Ok(())
    })
}

/// Adds a note to the person (`dm:note`; `lang` may be NULL).
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL, not UTF-8, bad language tag).
///
/// # Safety
/// `presence` is NULL or a live handle; `text` and `lang` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_add_person_note(
    presence: *mut impp_presence,
    text: *const c_char,
    lang: *const c_char,
) -> impp_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { handle_mut(presence, "presence") }?;
        // SAFETY: the caller's contract.
        let note = make_note(unsafe { str_arg(text, "text") }?, unsafe {
            opt_str_arg(lang, "lang")
        }?)?;
        person_mut(p.edit()).notes.push(note);
        Ok(())
    })
}

/// The number of notes of the person; 0 for NULL or when there is no person.
///
/// # Safety
/// `presence` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_person_note_count(presence: *const impp_presence) -> usize {
    guard_value(0, || {
        // SAFETY: the caller's contract.
        unsafe { presence.as_ref() }
            .and_then(|p| person(&p.doc))
            .map_or(0, |x| x.notes.len())
    })
}

/// Person note `index`: text and language (NULL when none; `lang_out` may be NULL), borrowed
/// from the handle.
///
/// Errors: `IMPP_ERR_INVALID_ARGUMENT` (NULL), `IMPP_ERR_NOT_FOUND`.
///
/// # Safety
/// `presence` is NULL or a live handle; `text_out` NULL or writable; `lang_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn impp_presence_person_note(
    presence: *const impp_presence,
    index: usize,
    text_out: *mut *const c_char,
    lang_out: *mut *const c_char,
) -> impp_status {
    guard(|| {
        out_arg(text_out, "text_out")?;
        // SAFETY: the caller's contract.
        let p = unsafe { handle(presence, "presence") }?;
        let notes = person(&p.doc).map_or(&[][..], |x| &x.notes[..]);
        let n = notes.get(index).ok_or_else(|| {
            Error::NotFound(format!(
                "person note index {index} is out of range ({} notes)",
                notes.len()
            ))
        })?;
        let text = p.borrow_str(Field::PersonNote(index), &n.text)?;
        let lang = p.borrow_opt(Field::PersonNoteLang(index), n.lang.as_deref())?;
        // SAFETY: checked non-NULL above; `lang_out` may be NULL.
        unsafe {
            write_out(text_out, text);
            if !lang_out.is_null() {
                write_out(lang_out, lang);
            }
        }
        Ok(())
    })
}
