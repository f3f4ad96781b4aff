/*
 * libimpp: a header-only C++17 wrapper over the C API in impp.h.
 *
 * Every function of impp.h is reachable from here (tests/c_api.rs fails on one that is not).
 *
 * - Errors: every failing call throws impp::Error, which carries the impp_status and the
 *   message of impp_last_error() taken on the calling thread at the moment of failure.
 *   A library whose ABI differs from the header's throws impp::AbiMismatch (an impp::Error)
 *   when an Engine is made; impp::check_abi() runs the same check on demand.
 * - Ownership, one style: every class that owns a library handle (Presence, Watcherinfo,
 *   DialogInfo, MessageSummary, IsComposing, FilterSet, ResourceList, Config, Event, Engine,
 *   SipConfig, SipStack) is move-only and holds it in a std::unique_ptr with a deleter that
 *   calls the handle's _free. Each offers get() (the handle, still owned), release() (gives it up) and,
 *   where C code can hand one over, adopt(raw) (takes it). A moved-from object holds nothing
 *   and may only be destroyed or assigned to.
 * - Events: impp::Event owns an event (from Engine::next_event); impp::EventView borrows one
 *   (the callback's, or an Event's through view() or the implicit conversion). Both have the
 *   same accessors, from one template; neither derives from the other.
 * - const: a method is const only when it changes nothing: getters of documents, and on an
 *   Engine the calls that only read (subscription, rules, resource_list, resource_lists,
 *   expand_list, has_user, stat, event_fd, sync).
 *   Publishing, subscribing, taking events, setting callbacks are not const.
 * - Strings returned by value are copies; std::string_view results are borrowed from the
 *   object they came from and live as long as it (the lifetime rules of impp.h).
 * - Configuration before start: Config and SipConfig are builders whose setters chain on
 *   lvalues and temporaries alike; Engine(Config) and SipStack(Engine &, SipConfig) consume
 *   them. A running Engine or SipStack has no setters, so nothing fails for being "started".
 *
 * Threading: as impp.h. An Engine may be used from any number of threads at once (const
 * methods or not: the engine synchronizes internally) and from inside its own callback. The
 * callback runs on the engine's dispatcher thread, one event at a time, in order. Destroying
 * an Engine joins every engine thread; no callback runs after its destructor returns.
 * Destroying an Engine (or calling close()) from inside its own callback is not allowed:
 * close() throws impp::Error(IMPP_ERR_IN_CALLBACK) and changes nothing, and the destructor,
 * which cannot throw, calls std::terminate(). The same holds for a SipStack and stop(). The
 * log callback (impp::logging) runs on any library thread, possibly several at once.
 *
 * Link with -limpp. Include impp.h's directory and this one.
 */
#ifndef IMPP_HPP
#define IMPP_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "impp.h"

/* The ABI version of impp.h this wrapper was written for. A different impp.h (one that added,
 * removed or re-shaped functions) must not compile against it unreviewed. */
#define IMPP_HPP_ABI_VERSION 3
static_assert(IMPP_ABI_VERSION == IMPP_HPP_ABI_VERSION,
              "impp.hpp wraps another ABI version of impp.h: update the wrapper with the header");

namespace impp {

/* A failed call: the status and the library's message. */
class Error : public std::exception {
public:
    Error(impp_status status, std::string message)
        : status_(status), message_(std::move(message)) {}

    impp_status status() const noexcept { return status_; }
    /* The static name of the status, such as "IMPP_ERR_MALFORMED". */
    const char *status_name() const noexcept { return impp_status_name(status_); }
    const char *what() const noexcept override { return message_.c_str(); }

private:
    impp_status status_;
    std::string message_;
};

/* The loaded library speaks another ABI than the impp.h this program was compiled with
 * (status IMPP_ERR_UNSUPPORTED). Rebuild the program against the library's header. */
class AbiMismatch : public Error {
public:
    AbiMismatch(std::uint32_t header_version, std::uint32_t library_version)
        : Error(IMPP_ERR_UNSUPPORTED,
                "libimpp ABI mismatch: this program was built against IMPP_ABI_VERSION " +
                    std::to_string(header_version) + " but the loaded library has ABI " +
                    std::to_string(library_version)),
          header_version_(header_version),
          library_version_(library_version) {}

    std::uint32_t header_version() const noexcept { return header_version_; }
    std::uint32_t library_version() const noexcept { return library_version_; }

private:
    std::uint32_t header_version_;
    std::uint32_t library_version_;
};

namespace detail {

/* Throws for a failed status, with the calling thread's last error. */
inline void check(impp_status status) {
    if (status == IMPP_OK) {
        return;
    }
    const char *message = impp_last_error();
    throw Error(status, message != nullptr ? std::string(message)
                                           : std::string(impp_status_name(status)));
}

/* Throws AbiMismatch unless the two versions are equal. */
inline void check_abi_versions(std::uint32_t header_version, std::uint32_t library_version) {
    if (header_version != library_version) {
        throw AbiMismatch(header_version, library_version);
    }
}

/* The deleter of every owned handle whose _free returns nothing: Free(p), NULL a no-op. */
template <auto Free>
struct Deleter {
    template <typename T>
    void operator()(T *p) const noexcept {
        Free(p);
    }
};

template <typename T, auto Free>
using Owned = std::unique_ptr<T, Deleter<Free>>;

using OwnedString = Owned<char, impp_string_free>;

/* Copies and frees a string the library returned as owned. */
inline std::string take(char *s) {
    OwnedString owner(s);
    return s != nullptr ? std::string(s) : std::string();
}

inline std::string_view view(const char *s) {
    return s != nullptr ? std::string_view(s) : std::string_view();
}

inline std::optional<std::string_view> optional_view(const char *s) {
    if (s == nullptr) {
        return std::nullopt;
    }
    return std::string_view(s);
}

inline std::optional<std::string> optional_string(const char *s) {
    if (s == nullptr) {
        return std::nullopt;
    }
    return std::string(s);
}

inline const char *c_str_or_null(const std::optional<std::string> &s) {
    return s ? s->c_str() : nullptr;
}

/* The C API's yes (1) / no (0) / not said (-1). */
inline int tristate(std::optional<bool> value) { return value ? (*value ? 1 : 0) : -1; }
inline std::optional<bool> from_tristate(int value) {
    if (value < 0) {
        return std::nullopt;
    }
    return value != 0;
}

/* Milliseconds as the C API's uint32 durations: negative as 0 and too long as UINT32_MAX,
 * so that out of range either way stays the library's error to report, not a silent clamp
 * into range. */
inline std::uint32_t ms_arg(std::chrono::milliseconds interval) noexcept {
    if (interval.count() <= 0) {
        return 0;
    }
    const auto count = static_cast<std::uint64_t>(interval.count());
    return count > std::numeric_limits<std::uint32_t>::max()
               ? std::numeric_limits<std::uint32_t>::max()
               : static_cast<std::uint32_t>(count);
}

/* Seconds as the C API's int64 with -1 for none. */
inline std::optional<std::chrono::seconds> optional_seconds(std::int64_t secs) {
    if (secs < 0) {
        return std::nullopt;
    }
    return std::chrono::seconds(secs);
}

/* Calls a serializer of the form f(handle, char **out, size_t *len) and takes its string. */
template <typename Handle, typename Fn>
std::string serialize(Fn fn, const Handle *handle) {
    char *text = nullptr;
    check(fn(handle, &text, nullptr));
    return take(text);
}

/* Calls a getter of the form f(handle, index, const char **out): the borrowed string copied,
 * or none when the library gives NULL. */
template <typename Handle, typename Fn>
std::optional<std::string> borrowed_at(Fn fn, const Handle *handle, std::size_t index) {
    const char *s = nullptr;
    check(fn(handle, index, &s));
    return optional_string(s);
}

/* Calls a getter of the form f(handle, const char **out). */
template <typename Handle, typename Fn>
std::optional<std::string> borrowed(Fn fn, const Handle *handle) {
    const char *s = nullptr;
    check(fn(handle, &s));
    return optional_string(s);
}

/* Calls a getter of the form f(handle, int64_t *out) that gives -1 for none. */
template <typename Handle, typename Fn>
std::optional<std::chrono::seconds> seconds_of(Fn fn, const Handle *handle) {
    std::int64_t secs = -1;
    check(fn(handle, &secs));
    return optional_seconds(secs);
}

}  // namespace detail

/* --- The library as a whole ------------------------------------------------------------- */

/* The loaded library's version, "major.minor.patch". */
inline std::string_view version() noexcept { return detail::view(impp_version()); }

/* The loaded library's ABI version (compare with IMPP_ABI_VERSION). */
inline std::uint32_t abi_version() noexcept { return impp_abi_version(); }

/* Throws AbiMismatch when the loaded library's ABI is not the one of the impp.h this program
 * was compiled with. Engine's constructor calls it; call it yourself to check earlier. */
inline void check_abi() { detail::check_abi_versions(IMPP_ABI_VERSION, impp_abi_version()); }

/* Static names, for messages: "IMPP_ERR_MALFORMED", "deactivated", "delivered", "too-large"
 * ("unknown" or "IMPP_UNKNOWN" for a value outside the enum). */
inline std::string_view name(impp_status status) noexcept {
    return detail::view(impp_status_name(status));
}
inline std::string_view name(impp_reason reason) noexcept {
    return detail::view(impp_reason_name(reason));
}
inline std::string_view name(impp_delivery_outcome outcome) noexcept {
    return detail::view(impp_delivery_outcome_name(outcome));
}
inline std::string_view name(impp_failure_reason reason) noexcept {
    return detail::view(impp_failure_reason_name(reason));
}

/* The library's log lines (process-wide). Without a callback, error and warning lines go to
 * standard error. */
namespace logging {

/* One line: its level, the library module that logged it ("impp::engine::shard"), and the
 * text without a line break; both views are valid for the call only. */
using Callback =
    std::function<void(impp_log_level level, std::string_view target, std::string_view message)>;

namespace detail {

inline void trampoline(impp_log_level level, const char *target, const char *message,
                       void *user_data) noexcept {
    try {
        (*static_cast<const Callback *>(user_data))(level, impp::detail::view(target),
                                                    impp::detail::view(message));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "impp: the log callback threw: %s\n", e.what());
    } catch (...) {
        std::fprintf(stderr, "impp: the log callback threw a non-standard exception\n");
    }
}

inline void free_callback(void *user_data) noexcept { delete static_cast<Callback *>(user_data); }

}  // namespace detail

/* Sends every line at `max_level` or more important to `callback` (an empty function: back
 * to standard error). It runs on whichever library thread logged the line, possibly on
 * several at once: make it thread-safe, and quick. It may call the library; an exception
 * leaving it is reported on standard error and dropped. The function is kept on the heap and
 * destroyed after its last call, when it is replaced; the library never resets the setting,
 * so a callback still set at exit is never destroyed (call clear_callback() first). */
inline void set_callback(Callback callback, impp_log_level max_level = IMPP_LOG_INFO) {
    if (!callback) {
        impp::detail::check(impp_log_set_callback(nullptr, nullptr, nullptr, max_level));
        return;
    }
    auto *held = new Callback(std::move(callback));
    /* On failure the library has already called free_callback(held). */
    impp::detail::check(impp_log_set_callback(&detail::trampoline, held, &detail::free_callback,
                                              max_level));
}

/* Back to standard error (error and warning lines, or what `max_level` lets through). */
inline void clear_callback(impp_log_level max_level = IMPP_LOG_WARN) {
    set_callback(Callback(), max_level);
}

/* The most detailed level that still reaches the callback or standard error. */
inline void set_level(impp_log_level max_level) {
    impp::detail::check(impp_log_set_level(max_level));
}

}  // namespace logging

/* --- Presence documents ----------------------------------------------------------------- */

/* A note and its language (an xml:lang tag), if it has one. */
struct Note {
    std::string text;
    std::optional<std::string> lang;
};
inline bool operator==(const Note &a, const Note &b) {
    return a.text == b.text && a.lang == b.lang;
}
inline bool operator!=(const Note &a, const Note &b) { return !(a == b); }

/* An activity of the person: an RFC 4480 name, or "other" with its free text. */
struct Activity {
    std::string name;
    std::optional<std::string> text;
};
inline bool operator==(const Activity &a, const Activity &b) {
    return a.name == b.name && a.text == b.text;
}
inline bool operator!=(const Activity &a, const Activity &b) { return !(a == b); }

/* A tuple's contact: its URI and priority (0..1), if it has one. */
struct Contact {
    std::string uri;
    std::optional<double> priority;
};

/* Whether the person is using their devices, and when they last did (an xs:dateTime). */
struct UserInput {
    impp_user_input state = IMPP_USER_INPUT_UNKNOWN;
    std::optional<std::string> last_input;
};

/* A presence document (PIDF with its extensions). Tuples, notes, activities and moods are
 * indexed from 0 in document order. */
class Presence {
public:
    /* An empty document for `entity`, a URI such as "pres:alice@example.test". */
    explicit Presence(const std::string &entity) {
        impp_presence *p = nullptr;
        detail::check(impp_presence_new(entity.c_str(), &p));
        handle_.reset(p);
    }

    /* Parses a PIDF document (throws IMPP_ERR_MALFORMED, _TOO_LARGE or _UNSAFE_XML). */
    static Presence parse(std::string_view xml) {
        impp_presence *p = nullptr;
        detail::check(impp_presence_parse(xml.data(), xml.size(), &p));
        return adopt(p);
    }

    /* Parses with explicit limits: larger or deeper documents throw IMPP_ERR_TOO_LARGE. */
    static Presence parse(std::string_view xml, std::size_t max_bytes, std::uint32_t max_depth) {
        impp_presence *p = nullptr;
        detail::check(impp_presence_parse_limited(xml.data(), xml.size(), max_bytes, max_depth, &p));
        return adopt(p);
    }

    /* Takes ownership of a handle from the C API (e.g. impp_event_presence). */
    static Presence adopt(impp_presence *raw) noexcept { return Presence(raw); }

    Presence(Presence &&) noexcept = default;
    Presence &operator=(Presence &&) noexcept = default;
    Presence(const Presence &) = delete;
    Presence &operator=(const Presence &) = delete;

    /* An independent copy. */
    Presence clone() const {
        impp_presence *p = nullptr;
        detail::check(impp_presence_clone(get(), &p));
        return adopt(p);
    }

    std::string to_xml() const { return detail::serialize(impp_presence_to_xml, get()); }

    std::string entity() const {
        const char *s = nullptr;
        detail::check(impp_presence_entity(get(), &s));
        return std::string(detail::view(s));
    }

    /* --- Tuples --- */

    std::size_t tuple_count() const noexcept { return impp_presence_tuple_count(get()); }

    /* Appends a tuple; returns its index. */
    std::size_t add_tuple(const std::string &id, impp_basic basic) {
        std::size_t index = 0;
        detail::check(impp_presence_add_tuple(get(), id.c_str(), basic, &index));
        return index;
    }

    void remove_tuple(std::size_t index) { detail::check(impp_presence_remove_tuple(get(), index)); }

    std::string tuple_id(std::size_t index) const {
        return detail::borrowed_at(impp_presence_tuple_id, get(), index).value_or("");
    }

    impp_basic tuple_basic(std::size_t index) const {
        impp_basic b = IMPP_BASIC_UNSET;
        detail::check(impp_presence_tuple_basic(get(), index, &b));
        return b;
    }

    void set_tuple_basic(std::size_t index, impp_basic basic) {
        detail::check(impp_presence_tuple_set_basic(get(), index, basic));
    }

    /* Sets (`uri` none: removes) the contact; `priority` 0..1, or none. */
    void set_tuple_contact(std::size_t index, const std::optional<std::string> &uri,
                           std::optional<double> priority = std::nullopt) {
        detail::check(impp_presence_tuple_set_contact(get(), index, detail::c_str_or_null(uri),
                                                      priority.value_or(-1.0)));
    }

    /* The contact, if the tuple has one. */
    std::optional<Contact> tuple_contact(std::size_t index) const {
        const char *uri = nullptr;
        double priority = -1.0;
        detail::check(impp_presence_tuple_contact(get(), index, &uri, &priority));
        if (uri == nullptr) {
            return std::nullopt;
        }
        Contact contact{std::string(uri), std::nullopt};
        if (priority >= 0.0) {
            contact.priority = priority;
        }
        return contact;
    }

    /* Sets (none: removes) the timestamp, an xs:dateTime such as "2026-11-24T14:45:00Z". */
    void set_tuple_timestamp(std::size_t index, const std::optional<std::string> &timestamp) {
        detail::check(
            impp_presence_tuple_set_timestamp(get(), index, detail::c_str_or_null(timestamp)));
    }

    std::optional<std::string> tuple_timestamp(std::size_t index) const {
        return detail::borrowed_at(impp_presence_tuple_timestamp, get(), index);
    }

    void add_tuple_note(std::size_t index, const std::string &text,
                        const std::optional<std::string> &lang = std::nullopt) {
        detail::check(impp_presence_tuple_add_note(get(), index, text.c_str(),
                                                   detail::c_str_or_null(lang)));
    }

    std::vector<Note> tuple_notes(std::size_t index) const {
        std::vector<Note> notes;
        const std::size_t n = impp_presence_tuple_note_count(get(), index);
        for (std::size_t i = 0; i < n; i++) {
            const char *text = nullptr;
            const char *lang = nullptr;
            detail::check(impp_presence_tuple_note(get(), index, i, &text, &lang));
            notes.push_back(Note{std::string(detail::view(text)), detail::optional_string(lang)});
        }
        return notes;
    }

    /* Declares a capability supported (true), not supported (false), or says nothing (none). */
    void set_tuple_capability(std::size_t index, impp_capability cap, std::optional<bool> value) {
        detail::check(
            impp_presence_tuple_set_capability(get(), index, cap, detail::tristate(value)));
    }

    /* Whether the tuple's service supports `cap`; none when the document does not say. */
    std::optional<bool> tuple_capability(std::size_t index, impp_capability cap) const {
        int value = -1;
        detail::check(impp_presence_tuple_capability(get(), index, cap, &value));
        return detail::from_tristate(value);
    }

    /* Adds a MIME type the tuple's service supports ("text/plain"). */
    void add_tuple_media_type(std::size_t index, const std::string &mime) {
        detail::check(impp_presence_tuple_add_media_type(get(), index, mime.c_str()));
    }

    std::vector<std::string> tuple_media_types(std::size_t index) const {
        std::vector<std::string> types;
        const std::size_t n = impp_presence_tuple_media_type_count(get(), index);
        for (std::size_t i = 0; i < n; i++) {
            const char *mime = nullptr;
            detail::check(impp_presence_tuple_media_type(get(), index, i, &mime));
            types.emplace_back(detail::view(mime));
        }
        return types;
    }

    /* Declares a duplex mode ("full", "half", "receive-only", "send-only") supported or not. */
    void add_tuple_duplex(std::size_t index, const std::string &mode, bool supported) {
        detail::check(impp_presence_tuple_add_duplex(get(), index, mode.c_str(), supported));
    }

    /* Whether the tuple's service supports a duplex mode; none when not said. */
    std::optional<bool> tuple_duplex(std::size_t index, const std::string &mode) const {
        int value = -1;
        detail::check(impp_presence_tuple_duplex(get(), index, mode.c_str(), &value));
        return detail::from_tristate(value);
    }

    /* --- The document's own notes --- */

    void add_note(const std::string &text, const std::optional<std::string> &lang = std::nullopt) {
        detail::check(impp_presence_add_note(get(), text.c_str(), detail::c_str_or_null(lang)));
    }

    std::vector<Note> notes() const {
        std::vector<Note> notes;
        const std::size_t n = impp_presence_note_count(get());
        for (std::size_t i = 0; i < n; i++) {
            const char *text = nullptr;
            const char *lang = nullptr;
            detail::check(impp_presence_note(get(), i, &text, &lang));
            notes.push_back(Note{std::string(detail::view(text)), detail::optional_string(lang)});
        }
        return notes;
    }

    /* --- The person (RFC 4479/4480) --- */

    /* An RFC 4480 activity by name ("away", "on-the-phone", ...). */
    void add_activity(const std::string &name) {
        detail::check(impp_presence_add_activity(get(), name.c_str()));
    }

    /* A free-text activity (listed as "other" with its text). */
    void add_other_activity(const std::string &text) {
        detail::check(impp_presence_add_other_activity(get(), text.c_str()));
    }

    void clear_activities() { detail::check(impp_presence_clear_activities(get())); }

    std::vector<Activity> activities() const {
        std::vector<Activity> found;
        const std::size_t n = impp_presence_activity_count(get());
        for (std::size_t i = 0; i < n; i++) {
            const char *name = nullptr;
            const char *text = nullptr;
            detail::check(impp_presence_activity(get(), i, &name, &text));
            found.push_back(Activity{std::string(detail::view(name)), detail::optional_string(text)});
        }
        return found;
    }

    /* An RFC 4480 mood by name ("happy", "in_love", ...). */
    void add_mood(const std::string &name) {
        detail::check(impp_presence_add_mood(get(), name.c_str()));
    }

    /* The moods by name ("other" for free text). */
    std::vector<std::string> moods() const {
        std::vector<std::string> names;
        const std::size_t n = impp_presence_mood_count(get());
        for (std::size_t i = 0; i < n; i++) {
            names.push_back(detail::borrowed_at(impp_presence_mood, get(), i).value_or(""));
        }
        return names;
    }

    /* IMPP_USER_INPUT_UNKNOWN removes it; `last_input` an xs:dateTime, or none. */
    void set_user_input(impp_user_input state,
                        const std::optional<std::string> &last_input = std::nullopt) {
        detail::check(
            impp_presence_set_user_input(get(), state, detail::c_str_or_null(last_input)));
    }

    UserInput user_input() const {
        UserInput out;
        const char *last = nullptr;
        detail::check(impp_presence_user_input(get(), &out.state, &last));
        out.last_input = detail::optional_string(last);
        return out;
    }

    void add_person_note(const std::string &text,
                         const std::optional<std::string> &lang = std::nullopt) {
        detail::check(
            impp_presence_add_person_note(get(), text.c_str(), detail::c_str_or_null(lang)));
    }

    std::vector<Note> person_notes() const {
        std::vector<Note> notes;
        const std::size_t n = impp_presence_person_note_count(get());
        for (std::size_t i = 0; i < n; i++) {
            const char *text = nullptr;
            const char *lang = nullptr;
            detail::check(impp_presence_person_note(get(), i, &text, &lang));
            notes.push_back(Note{std::string(detail::view(text)), detail::optional_string(lang)});
        }
        return notes;
    }

    const impp_presence *get() const noexcept { return handle_.get(); }
    impp_presence *get() noexcept { return handle_.get(); }
    /* Gives up ownership (e.g. to hand the handle to C code that frees it). */
    impp_presence *release() noexcept { return handle_.release(); }

private:
    explicit Presence(impp_presence *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_presence, impp_presence_free> handle_;
};

/* --- Watcher information ---------------------------------------------------------------- */

/* One watcher of a watched resource (a subscription), copied out of a Watcherinfo. */
struct Watcher {
    std::string id;
    std::string uri;
    impp_watcher_status status = IMPP_WATCHER_STATUS_PENDING;
    impp_watcher_event event = IMPP_WATCHER_EVENT_SUBSCRIBE;
    std::optional<std::string> display_name;
    /* Seconds the subscription has existed; none when the document does not say. */
    std::optional<std::int64_t> duration_subscribed;
    /* Seconds before it expires; none when the document does not say. */
    std::optional<std::int64_t> expiration;
};

/* A watcher information document (presence.winfo), read-only: from Watcherinfo::parse or
 * an event's winfo(). Lists are indexed from 0, and so are the watchers of each list. */
class Watcherinfo {
public:
    /* Parses watcherinfo XML (throws IMPP_ERR_MALFORMED, _TOO_LARGE or _UNSAFE_XML). */
    static Watcherinfo parse(std::string_view xml) {
        impp_winfo *w = nullptr;
        detail::check(impp_winfo_parse(xml.data(), xml.size(), &w));
        return adopt(w);
    }

    /* Takes ownership of a handle from the C API (e.g. impp_event_winfo). */
    static Watcherinfo adopt(impp_winfo *raw) noexcept { return Watcherinfo(raw); }

    Watcherinfo(Watcherinfo &&) noexcept = default;
    Watcherinfo &operator=(Watcherinfo &&) noexcept = default;
    Watcherinfo(const Watcherinfo &) = delete;
    Watcherinfo &operator=(const Watcherinfo &) = delete;

    std::string to_xml() const { return detail::serialize(impp_winfo_to_xml, get()); }

    std::uint32_t version() const {
        std::uint32_t v = 0;
        detail::check(impp_winfo_version(get(), &v));
        return v;
    }

    impp_doc_state state() const {
        impp_doc_state s = IMPP_DOC_STATE_FULL;
        detail::check(impp_winfo_state(get(), &s));
        return s;
    }

    std::size_t list_count() const noexcept { return impp_winfo_list_count(get()); }

    /* The watched resource of a list (a URI). */
    std::string list_resource(std::size_t list) const {
        return detail::borrowed_at(impp_winfo_list_resource, get(), list).value_or("");
    }

    /* The event package of a list ("presence", "dialog", ...). */
    std::string list_package(std::size_t list) const {
        return detail::borrowed_at(impp_winfo_list_package, get(), list).value_or("");
    }

    /* 0 for a list index out of range. */
    std::size_t watcher_count(std::size_t list) const noexcept {
        return impp_winfo_watcher_count(get(), list);
    }

    Watcher watcher(std::size_t list, std::size_t index) const {
        const impp_winfo *w = get();
        Watcher out;
        const char *s = nullptr;
        detail::check(impp_winfo_watcher_id(w, list, index, &s));
        out.id = detail::view(s);
        detail::check(impp_winfo_watcher_uri(w, list, index, &s));
        out.uri = detail::view(s);
        detail::check(impp_winfo_watcher_status(w, list, index, &out.status));
        detail::check(impp_winfo_watcher_event(w, list, index, &out.event));
        detail::check(impp_winfo_watcher_display_name(w, list, index, &s));
        out.display_name = detail::optional_string(s);
        std::int64_t secs = -1;
        detail::check(impp_winfo_watcher_duration_subscribed(w, list, index, &secs));
        if (secs >= 0) {
            out.duration_subscribed = secs;
        }
        secs = -1;
        detail::check(impp_winfo_watcher_expiration(w, list, index, &secs));
        if (secs >= 0) {
            out.expiration = secs;
        }
        return out;
    }

    /* Every watcher of a list, in document order. */
    std::vector<Watcher> watchers(std::size_t list) const {
        std::vector<Watcher> found;
        const std::size_t n = watcher_count(list);
        found.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            found.push_back(watcher(list, i));
        }
        return found;
    }

    const impp_winfo *get() const noexcept { return handle_.get(); }
    impp_winfo *release() noexcept { return handle_.release(); }

private:
    explicit Watcherinfo(impp_winfo *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_winfo, impp_winfo_free> handle_;
};

/* --- Dialog information ----------------------------------------------------------------- */

/* A party of a dialog: its URI and display name. */
struct Identity {
    std::string uri;
    std::optional<std::string> display;
};

/* The state of a dialog, why it got there, and the SIP response code behind it. */
struct DialogState {
    impp_dialog_state state = IMPP_DIALOG_STATE_TRYING;
    impp_dialog_event event = IMPP_DIALOG_EVENT_NONE;
    std::optional<int> code;
};

/* A dialog information document (the "dialog" package: busy lamps). Dialogs are indexed from
 * 0 in document order. */
class DialogInfo {
public:
    /* An idle document for `entity` (version 0, full, no dialogs). */
    explicit DialogInfo(const std::string &entity) {
        impp_dialog_info *d = nullptr;
        detail::check(impp_dialog_info_new(entity.c_str(), &d));
        handle_.reset(d);
    }

    /* Parses dialog-info XML (throws IMPP_ERR_MALFORMED, _TOO_LARGE or _UNSAFE_XML). */
    static DialogInfo parse(std::string_view xml) {
        impp_dialog_info *d = nullptr;
        detail::check(impp_dialog_info_parse(xml.data(), xml.size(), &d));
        return adopt(d);
    }

    /* Takes ownership of a handle from the C API (e.g. impp_event_dialog_info). */
    static DialogInfo adopt(impp_dialog_info *raw) noexcept { return DialogInfo(raw); }

    DialogInfo(DialogInfo &&) noexcept = default;
    DialogInfo &operator=(DialogInfo &&) noexcept = default;
    DialogInfo(const DialogInfo &) = delete;
    DialogInfo &operator=(const DialogInfo &) = delete;

    /* The document, ready for Engine::publish in the "dialog" package. */
    std::string to_xml() const { return detail::serialize(impp_dialog_info_to_xml, get()); }

    std::uint32_t version() const {
        std::uint32_t v = 0;
        detail::check(impp_dialog_info_version(get(), &v));
        return v;
    }

    impp_doc_state state() const {
        impp_doc_state s = IMPP_DOC_STATE_FULL;
        detail::check(impp_dialog_info_state(get(), &s));
        return s;
    }

    std::string entity() const {
        return detail::borrowed(impp_dialog_info_entity, get()).value_or("");
    }

    std::size_t dialog_count() const noexcept { return impp_dialog_info_dialog_count(get()); }

    std::string dialog_id(std::size_t index) const {
        return detail::borrowed_at(impp_dialog_info_dialog_id, get(), index).value_or("");
    }

    std::optional<std::string> call_id(std::size_t index) const {
        return detail::borrowed_at(impp_dialog_info_dialog_call_id, get(), index);
    }

    std::optional<std::string> local_tag(std::size_t index) const {
        return detail::borrowed_at(impp_dialog_info_dialog_local_tag, get(), index);
    }

    std::optional<std::string> remote_tag(std::size_t index) const {
        return detail::borrowed_at(impp_dialog_info_dialog_remote_tag, get(), index);
    }

    impp_dialog_direction direction(std::size_t index) const {
        impp_dialog_direction d = IMPP_DIALOG_DIRECTION_NONE;
        detail::check(impp_dialog_info_dialog_direction(get(), index, &d));
        return d;
    }

    DialogState dialog_state(std::size_t index) const {
        DialogState out;
        int code = -1;
        detail::check(impp_dialog_info_dialog_state(get(), index, &out.state, &out.event, &code));
        if (code >= 0) {
            out.code = code;
        }
        return out;
    }

    /* The entity's own identity in the dialog; none when the document gives none. */
    std::optional<Identity> local_identity(std::size_t index) const {
        return identity(impp_dialog_info_dialog_local_identity, index);
    }

    /* The other party's identity in the dialog; none when the document gives none. */
    std::optional<Identity> remote_identity(std::size_t index) const {
        return identity(impp_dialog_info_dialog_remote_identity, index);
    }

    /* Appends a dialog; returns its index. */
    std::size_t add_dialog(const std::string &id, impp_dialog_state state) {
        std::size_t index = 0;
        detail::check(impp_dialog_info_add_dialog(get(), id.c_str(), state, &index));
        return index;
    }

    void remove_dialog(std::size_t index) {
        detail::check(impp_dialog_info_remove_dialog(get(), index));
    }

    /* `code` a SIP response code from 100 to 699, or none. */
    void set_state(std::size_t index, impp_dialog_state state,
                   impp_dialog_event event = IMPP_DIALOG_EVENT_NONE,
                   std::optional<int> code = std::nullopt) {
        detail::check(
            impp_dialog_info_dialog_set_state(get(), index, state, event, code.value_or(-1)));
    }

    /* Sets (none: removes) the SIP Call-ID. */
    void set_call_id(std::size_t index, const std::optional<std::string> &call_id) {
        detail::check(
            impp_dialog_info_dialog_set_call_id(get(), index, detail::c_str_or_null(call_id)));
    }

    void set_local_tag(std::size_t index, const std::optional<std::string> &tag) {
        detail::check(
            impp_dialog_info_dialog_set_local_tag(get(), index, detail::c_str_or_null(tag)));
    }

    void set_remote_tag(std::size_t index, const std::optional<std::string> &tag) {
        detail::check(
            impp_dialog_info_dialog_set_remote_tag(get(), index, detail::c_str_or_null(tag)));
    }

    /* IMPP_DIALOG_DIRECTION_NONE removes it. */
    void set_direction(std::size_t index, impp_dialog_direction direction) {
        detail::check(impp_dialog_info_dialog_set_direction(get(), index, direction));
    }

    /* Sets (`uri` none: removes) the other party's identity. */
    void set_remote_identity(std::size_t index, const std::optional<std::string> &uri,
                             const std::optional<std::string> &display = std::nullopt) {
        detail::check(impp_dialog_info_dialog_set_remote_identity(
            get(), index, detail::c_str_or_null(uri), detail::c_str_or_null(display)));
    }

    const impp_dialog_info *get() const noexcept { return handle_.get(); }
    impp_dialog_info *get() noexcept { return handle_.get(); }
    impp_dialog_info *release() noexcept { return handle_.release(); }

private:
    explicit DialogInfo(impp_dialog_info *raw) noexcept : handle_(raw) {}

    template <typename Fn>
    std::optional<Identity> identity(Fn fn, std::size_t index) const {
        const char *uri = nullptr;
        const char *display = nullptr;
        detail::check(fn(get(), index, &uri, &display));
        if (uri == nullptr) {
            return std::nullopt;
        }
        return Identity{std::string(uri), detail::optional_string(display)};
    }

    detail::Owned<impp_dialog_info, impp_dialog_info_free> handle_;
};

/* --- Message summaries ------------------------------------------------------------------ */

/* The counts of one message class; the urgent ones are none when not given. */
struct MessageCounts {
    std::uint32_t new_messages = 0;
    std::uint32_t old_messages = 0;
    std::optional<std::uint32_t> urgent_new;
    std::optional<std::uint32_t> urgent_old;
};

/* A message summary (the "message-summary" package: voicemail lamps). Classes are indexed
 * from 0 in body order. */
class MessageSummary {
public:
    /* A summary with only the lamp state. */
    explicit MessageSummary(bool messages_waiting = false) {
        impp_message_summary *m = nullptr;
        detail::check(impp_message_summary_new(messages_waiting, &m));
        handle_.reset(m);
    }

    /* Parses a body (throws IMPP_ERR_MALFORMED or _TOO_LARGE). */
    static MessageSummary parse(std::string_view text) {
        impp_message_summary *m = nullptr;
        detail::check(impp_message_summary_parse(text.data(), text.size(), &m));
        return adopt(m);
    }

    /* Takes ownership of a handle from the C API (e.g. impp_event_message_summary). */
    static MessageSummary adopt(impp_message_summary *raw) noexcept { return MessageSummary(raw); }

    MessageSummary(MessageSummary &&) noexcept = default;
    MessageSummary &operator=(MessageSummary &&) noexcept = default;
    MessageSummary(const MessageSummary &) = delete;
    MessageSummary &operator=(const MessageSummary &) = delete;

    /* The body (CRLF line ends), ready for Engine::publish in "message-summary". */
    std::string to_text() const { return detail::serialize(impp_message_summary_to_text, get()); }

    bool messages_waiting() const {
        bool waiting = false;
        detail::check(impp_message_summary_messages_waiting(get(), &waiting));
        return waiting;
    }

    void set_messages_waiting(bool waiting) {
        detail::check(impp_message_summary_set_messages_waiting(get(), waiting));
    }

    /* The mailbox URI (Message-Account), if the body gives one. */
    std::optional<std::string> account() const {
        return detail::borrowed(impp_message_summary_account, get());
    }

    /* Sets (none: removes) the mailbox URI. */
    void set_account(const std::optional<std::string> &account) {
        detail::check(impp_message_summary_set_account(get(), detail::c_str_or_null(account)));
    }

    std::size_t class_count() const noexcept { return impp_message_summary_class_count(get()); }

    /* The class name in lower case ("voice-message", ...). */
    std::string class_name(std::size_t index) const {
        return detail::borrowed_at(impp_message_summary_class_name, get(), index).value_or("");
    }

    MessageCounts counts(std::size_t index) const {
        MessageCounts out;
        std::int64_t urgent_new = -1;
        std::int64_t urgent_old = -1;
        detail::check(impp_message_summary_class_counts(get(), index, &out.new_messages,
                                                        &out.old_messages, &urgent_new,
                                                        &urgent_old));
        if (urgent_new >= 0) {
            out.urgent_new = static_cast<std::uint32_t>(urgent_new);
        }
        if (urgent_old >= 0) {
            out.urgent_old = static_cast<std::uint32_t>(urgent_old);
        }
        return out;
    }

    /* Sets a class's counts (the name in any case), replacing its line or appending one;
     * returns the class's index. */
    std::size_t set_count(const std::string &class_name, std::uint32_t new_messages,
                          std::uint32_t old_messages) {
        std::size_t index = 0;
        detail::check(impp_message_summary_set_count(get(), class_name.c_str(), new_messages,
                                                     old_messages, &index));
        return index;
    }

    /* Sets the urgent counts of a class that has a count line (none: not given). */
    void set_urgent(const std::string &class_name, std::optional<std::uint32_t> urgent_new,
                    std::optional<std::uint32_t> urgent_old = std::nullopt) {
        const std::int64_t n = urgent_new ? static_cast<std::int64_t>(*urgent_new) : -1;
        const std::int64_t o = urgent_old ? static_cast<std::int64_t>(*urgent_old) : -1;
        detail::check(impp_message_summary_set_urgent(get(), class_name.c_str(), n, o));
    }

    const impp_message_summary *get() const noexcept { return handle_.get(); }
    impp_message_summary *get() noexcept { return handle_.get(); }
    impp_message_summary *release() noexcept { return handle_.release(); }

private:
    explicit MessageSummary(impp_message_summary *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_message_summary, impp_message_summary_free> handle_;
};

/* --- Is-composing (RFC 3994) ------------------------------------------------------------ */

/* An is-composing document: the typing indication sent as an instant message of content
 * type IsComposing::mime_type (Engine::send_message), and read back with
 * EventView::is_composing(). */
class IsComposing {
public:
    /* The content type of the message that carries one. */
    static constexpr std::string_view mime_type = "application/im-iscomposing+xml";

    /* A document in `state` with nothing else. */
    explicit IsComposing(impp_composing_state state) {
        impp_iscomposing *c = nullptr;
        detail::check(impp_iscomposing_new(state, &c));
        handle_.reset(c);
    }

    /* Parses one (throws IMPP_ERR_MALFORMED, _TOO_LARGE or _UNSAFE_XML). */
    static IsComposing parse(std::string_view xml) {
        impp_iscomposing *c = nullptr;
        detail::check(impp_iscomposing_parse(xml.data(), xml.size(), &c));
        return adopt(c);
    }

    static IsComposing adopt(impp_iscomposing *raw) noexcept { return IsComposing(raw); }

    IsComposing(IsComposing &&) noexcept = default;
    IsComposing &operator=(IsComposing &&) noexcept = default;
    IsComposing(const IsComposing &) = delete;
    IsComposing &operator=(const IsComposing &) = delete;

    /* The body of the message that carries it. */
    std::string to_xml() const { return detail::serialize(impp_iscomposing_to_xml, get()); }

    impp_composing_state state() const {
        impp_composing_state s = IMPP_COMPOSING_STATE_IDLE;
        detail::check(impp_iscomposing_state(get(), &s));
        return s;
    }

    void set_state(impp_composing_state state) {
        detail::check(impp_iscomposing_set_state(get(), state));
    }

    /* When the user last composed, an xs:dateTime as written; none when not given. */
    std::optional<std::string> last_active() const {
        return detail::borrowed(impp_iscomposing_last_active, get());
    }

    /* Sets (none: removes) when the user last composed ("2026-11-24T14:45:00Z"). */
    void set_last_active(const std::optional<std::string> &timestamp) {
        detail::check(impp_iscomposing_set_last_active(get(), detail::c_str_or_null(timestamp)));
    }

    /* What is being composed ("text/plain", "audio"); none when not said. */
    std::optional<std::string> content_type() const {
        return detail::borrowed(impp_iscomposing_content_type, get());
    }

    void set_content_type(const std::optional<std::string> &content_type) {
        detail::check(
            impp_iscomposing_set_content_type(get(), detail::c_str_or_null(content_type)));
    }

    /* The refresh interval; none when the document has none. */
    std::optional<std::chrono::seconds> refresh() const {
        return detail::seconds_of(impp_iscomposing_refresh, get());
    }

    /* Sets (none: removes) the refresh interval, 1 s or more. */
    void set_refresh(std::optional<std::chrono::seconds> refresh) {
        detail::check(impp_iscomposing_set_refresh(
            get(), refresh ? static_cast<std::int64_t>(refresh->count()) : -1));
    }

    /* For an active document, after how long without a refresh the sender counts as idle
     * (the refresh interval, or 120 s); none for an idle document. */
    std::optional<std::chrono::seconds> active_expires_after() const {
        return detail::seconds_of(impp_iscomposing_active_expires_after, get());
    }

    const impp_iscomposing *get() const noexcept { return handle_.get(); }
    impp_iscomposing *get() noexcept { return handle_.get(); }
    impp_iscomposing *release() noexcept { return handle_.release(); }

private:
    explicit IsComposing(impp_iscomposing *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_iscomposing, impp_iscomposing_free> handle_;
};

/* --- Filters (RFC 4661) ----------------------------------------------------------------- */

/* A filter document (RFC 4661 <filter-set>); its XPath is compiled by parse(). */
class FilterSet {
public:
    /* Parses a filter set (throws IMPP_ERR_MALFORMED, _UNSUPPORTED, _TOO_LARGE or
     * _UNSAFE_XML). */
    static FilterSet parse(std::string_view xml) {
        impp_filter_set *f = nullptr;
        detail::check(impp_filter_set_parse(xml.data(), xml.size(), &f));
        return adopt(f);
    }

    static FilterSet adopt(impp_filter_set *raw) noexcept { return FilterSet(raw); }

    FilterSet(FilterSet &&) noexcept = default;
    FilterSet &operator=(FilterSet &&) noexcept = default;
    FilterSet(const FilterSet &) = delete;
    FilterSet &operator=(const FilterSet &) = delete;

    std::string to_xml() const { return detail::serialize(impp_filter_set_to_xml, get()); }

    std::size_t filter_count() const noexcept { return impp_filter_set_filter_count(get()); }

    std::string filter_id(std::size_t index) const {
        return detail::borrowed_at(impp_filter_set_filter_id, get(), index).value_or("");
    }

    /* The one resource the filter applies to, if it names one. */
    std::optional<std::string> filter_uri(std::size_t index) const {
        return detail::borrowed_at(impp_filter_set_filter_uri, get(), index);
    }

    /* The domain whose resources the filter applies to, if it names one. */
    std::optional<std::string> filter_domain(std::size_t index) const {
        return detail::borrowed_at(impp_filter_set_filter_domain, get(), index);
    }

    /* What a watcher of `resource` may see of `document` (which is only read), as a new
     * document; a copy when no filter applies. */
    Presence apply(const std::string &resource, const Presence &document) const {
        impp_presence *out = nullptr;
        detail::check(impp_filter_set_apply(get(), resource.c_str(), document.get(), &out));
        return Presence::adopt(out);
    }

    const impp_filter_set *get() const noexcept { return handle_.get(); }
    impp_filter_set *release() noexcept { return handle_.release(); }

private:
    explicit FilterSet(impp_filter_set *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_filter_set, impp_filter_set_free> handle_;
};

/* --- Resource lists ------------------------------------------------------------------- */

/* One entry of a resource list: a resource (a URI, maybe with a display name) or a reference
 * to another list, by its URI (every resource of that list). */
struct ListEntry {
    impp_list_entry_kind kind = IMPP_LIST_ENTRY_RESOURCE;
    std::string uri;
    std::optional<std::string> display_name;

    static ListEntry resource(std::string uri,
                              std::optional<std::string> display_name = std::nullopt) {
        return ListEntry{IMPP_LIST_ENTRY_RESOURCE, std::move(uri), std::move(display_name)};
    }
    static ListEntry reference(std::string list_uri) {
        return ListEntry{IMPP_LIST_ENTRY_REFERENCE, std::move(list_uri), std::nullopt};
    }
};

inline bool operator==(const ListEntry &a, const ListEntry &b) {
    return a.kind == b.kind && a.uri == b.uri && a.display_name == b.display_name;
}
inline bool operator!=(const ListEntry &a, const ListEntry &b) { return !(a == b); }

/* A resource list (RFC 4826): a URI that stands for its entries, the packages it serves
 * ("presence" unless others are added) and a display name. Built with chaining setters, which
 * throw at once on a refused value and change nothing then:
 * `engine.set_list(impp::ResourceList("sip:sales@example.test").add_entry(alice, "Alice"))`.
 * Engine::set_list only reads it. Move-only; clone() copies it. */
class ResourceList {
public:
    explicit ResourceList(const std::string &uri) {
        impp_resource_list *l = nullptr;
        detail::check(impp_resource_list_new(uri.c_str(), &l));
        handle_.reset(l);
    }

    static ResourceList adopt(impp_resource_list *raw) noexcept { return ResourceList(raw); }

    /* A copy of a list the library owns, such as one borrowed from a C snapshot. */
    static ResourceList copy(const impp_resource_list *list) {
        impp_resource_list *l = nullptr;
        detail::check(impp_resource_list_copy(list, &l));
        return adopt(l);
    }

    ResourceList clone() const { return copy(get()); }

    ResourceList(ResourceList &&) noexcept = default;
    ResourceList &operator=(ResourceList &&) noexcept = default;
    ResourceList(const ResourceList &) = delete;
    ResourceList &operator=(const ResourceList &) = delete;

    /* Sets the display name (none: removes it). */
    ResourceList &display_name(const std::optional<std::string> &name) & {
        detail::check(impp_resource_list_set_display_name(get(), detail::c_str_or_null(name)));
        return *this;
    }
    ResourceList &&display_name(const std::optional<std::string> &name) && {
        return std::move(display_name(name));
    }

    /* Appends a resource. */
    ResourceList &add_entry(const std::string &uri,
                            const std::optional<std::string> &name = std::nullopt) & {
        detail::check(
            impp_resource_list_add_entry(get(), uri.c_str(), detail::c_str_or_null(name)));
        return *this;
    }
    ResourceList &&add_entry(const std::string &uri,
                             const std::optional<std::string> &name = std::nullopt) && {
        return std::move(add_entry(uri, name));
    }

    /* Appends a reference to another list (which need not exist yet). */
    ResourceList &add_reference(const std::string &list_uri) & {
        detail::check(impp_resource_list_add_reference(get(), list_uri.c_str()));
        return *this;
    }
    ResourceList &&add_reference(const std::string &list_uri) && {
        return std::move(add_reference(list_uri));
    }

    /* Appends an entry of either kind. */
    ResourceList &add(const ListEntry &entry) & {
        return entry.kind == IMPP_LIST_ENTRY_REFERENCE ? add_reference(entry.uri)
                                                       : add_entry(entry.uri, entry.display_name);
    }
    ResourceList &&add(const ListEntry &entry) && { return std::move(add(entry)); }

    /* Adds a package the list serves: "presence" or "dialog". The first one added replaces
     * the default, "presence". */
    ResourceList &add_package(const std::string &event_package) & {
        detail::check(impp_resource_list_add_package(get(), event_package.c_str()));
        return *this;
    }
    ResourceList &&add_package(const std::string &event_package) && {
        return std::move(add_package(event_package));
    }

    std::string uri() const { return std::string(detail::view(impp_resource_list_uri(get()))); }

    std::optional<std::string> display_name() const {
        return detail::optional_string(impp_resource_list_display_name(get()));
    }

    /* The packages served, in a stable order ("presence" before "dialog"). */
    std::vector<std::string> packages() const {
        std::vector<std::string> packages;
        const std::size_t count = impp_resource_list_package_count(get());
        for (std::size_t i = 0; i < count; i++) {
            packages.push_back(
                detail::borrowed_at(impp_resource_list_package, get(), i).value_or(""));
        }
        return packages;
    }

    std::size_t entry_count() const noexcept { return impp_resource_list_entry_count(get()); }

    ListEntry entry(std::size_t index) const {
        ListEntry entry;
        detail::check(impp_resource_list_entry_kind(get(), index, &entry.kind));
        entry.uri = detail::borrowed_at(impp_resource_list_entry_uri, get(), index).value_or("");
        entry.display_name =
            detail::borrowed_at(impp_resource_list_entry_display_name, get(), index);
        return entry;
    }

    /* Every entry, in order. */
    std::vector<ListEntry> entries() const {
        std::vector<ListEntry> entries;
        const std::size_t count = entry_count();
        entries.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            entries.push_back(entry(i));
        }
        return entries;
    }

    const impp_resource_list *get() const noexcept { return handle_.get(); }
    impp_resource_list *get() noexcept { return handle_.get(); }
    impp_resource_list *release() noexcept { return handle_.release(); }

private:
    explicit ResourceList(impp_resource_list *raw) noexcept : handle_(raw) {}
    detail::Owned<impp_resource_list, impp_resource_list_free> handle_;
};

/* --- The engine ------------------------------------------------------------------------- */

/* An engine configuration. Setters return the object for chaining, on lvalues and on
 * temporaries alike: `Engine engine(Config().workers(2).manual_clock());` */
class Config {
public:
    Config() {
        impp_config *c = nullptr;
        detail::check(impp_config_new(&c));
        handle_.reset(c);
    }

    Config(Config &&) noexcept = default;
    Config &operator=(Config &&) noexcept = default;
    Config(const Config &) = delete;
    Config &operator=(const Config &) = delete;

    /* The workers a new configuration gets (the number of cores). */
    static std::uint32_t default_workers() noexcept { return impp_config_default_workers(); }

    Config &workers(std::uint32_t n) & {
        detail::check(impp_config_set_workers(get(), n));
        return *this;
    }
    Config &&workers(std::uint32_t n) && { return std::move(workers(n)); }

    Config &add_domain(const std::string &domain) & {
        detail::check(impp_config_add_domain(get(), domain.c_str()));
        return *this;
    }
    Config &&add_domain(const std::string &domain) && { return std::move(add_domain(domain)); }

    Config &publication_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) & {
        detail::check(impp_config_set_publication_expiry(get(), min, dflt, max));
        return *this;
    }
    Config &&publication_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) && {
        return std::move(publication_expiry(min, dflt, max));
    }

    Config &subscription_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) & {
        detail::check(impp_config_set_subscription_expiry(get(), min, dflt, max));
        return *this;
    }
    Config &&subscription_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) && {
        return std::move(subscription_expiry(min, dflt, max));
    }

    Config &queue_capacity(std::size_t capacity) & {
        detail::check(impp_config_set_queue_capacity(get(), capacity));
        return *this;
    }
    Config &&queue_capacity(std::size_t capacity) && {
        return std::move(queue_capacity(capacity));
    }

    Config &default_policy(impp_auth_action action) & {
        detail::check(impp_config_set_default_policy(get(), action));
        return *this;
    }
    Config &&default_policy(impp_auth_action action) && {
        return std::move(default_policy(action));
    }

    /* Watchers no rule names whose host is the presentity's get `action` instead of the
       default policy (unset: the default policy for everyone). */
    Config &same_domain_policy(impp_auth_action action) & {
        detail::check(impp_config_set_same_domain_policy(get(), action));
        return *this;
    }
    Config &&same_domain_policy(impp_auth_action action) && {
        return std::move(same_domain_policy(action));
    }

    Config &clear_same_domain_policy() & {
        detail::check(impp_config_clear_same_domain_policy(get()));
        return *this;
    }
    Config &&clear_same_domain_policy() && { return std::move(clear_same_domain_policy()); }

    Config &min_notify_interval(std::chrono::milliseconds interval) & {
        const auto ms = interval.count() < 0 ? 0 : static_cast<std::uint64_t>(interval.count());
        detail::check(impp_config_set_min_notify_interval_ms(get(), ms));
        return *this;
    }
    Config &&min_notify_interval(std::chrono::milliseconds interval) && {
        return std::move(min_notify_interval(interval));
    }

    Config &add_winfo_admin(const std::string &uri) & {
        detail::check(impp_config_add_winfo_admin(get(), uri.c_str()));
        return *this;
    }
    Config &&add_winfo_admin(const std::string &uri) && {
        return std::move(add_winfo_admin(uri));
    }

    Config &document_limits(std::size_t max_bytes, std::uint32_t max_depth) & {
        detail::check(impp_config_set_document_limits(get(), max_bytes, max_depth));
        return *this;
    }
    Config &&document_limits(std::size_t max_bytes, std::uint32_t max_depth) && {
        return std::move(document_limits(max_bytes, max_depth));
    }

    Config &endpoint_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) & {
        detail::check(impp_config_set_endpoint_expiry(get(), min, dflt, max));
        return *this;
    }
    Config &&endpoint_expiry(std::uint32_t min, std::uint32_t dflt, std::uint32_t max) && {
        return std::move(endpoint_expiry(min, dflt, max));
    }

    /* The largest message body in bytes; larger ones fail as IMPP_FAILURE_TOO_LARGE. */
    Config &max_message_size(std::size_t max_bytes) & {
        detail::check(impp_config_set_max_message_size(get(), max_bytes));
        return *this;
    }
    Config &&max_message_size(std::size_t max_bytes) && {
        return std::move(max_message_size(max_bytes));
    }

    /* How long a message stored for an offline recipient is kept. */
    Config &message_expiry(std::chrono::seconds expiry) & {
        detail::check(impp_config_set_message_expiry(
            get(), expiry.count() < 0 ? 0 : static_cast<std::uint64_t>(expiry.count())));
        return *this;
    }
    Config &&message_expiry(std::chrono::seconds expiry) && {
        return std::move(message_expiry(expiry));
    }

    /* Whether a logged-in endpoint makes a user who publishes nothing appear open. */
    Config &endpoint_presence(bool enabled) & {
        detail::check(impp_config_set_endpoint_presence(get(), enabled));
        return *this;
    }
    Config &&endpoint_presence(bool enabled) && { return std::move(endpoint_presence(enabled)); }

    /* Bounds on the state one user, watcher or presentity makes the engine keep (each at
     * least 1; UINT32_MAX: none). Messages waiting per recipient (default 1000) and per
     * sender per recipient (default 100): past either a message fails as
     * IMPP_FAILURE_MAILBOX_FULL. */
    Config &max_offline_messages_per_user(std::uint32_t max) & {
        detail::check(impp_config_set_max_offline_messages_per_user(get(), max));
        return *this;
    }
    Config &&max_offline_messages_per_user(std::uint32_t max) && {
        return std::move(max_offline_messages_per_user(max));
    }
    Config &max_offline_messages_per_sender(std::uint32_t max) & {
        detail::check(impp_config_set_max_offline_messages_per_sender(get(), max));
        return *this;
    }
    Config &&max_offline_messages_per_sender(std::uint32_t max) && {
        return std::move(max_offline_messages_per_sender(max));
    }
    /* Live subscriptions per watcher (default 1000) and per presentity (default 10000), and
     * endpoints per user (default 10): past them IMPP_ERR_LIMIT_REACHED. */
    Config &max_subscriptions_per_watcher(std::uint32_t max) & {
        detail::check(impp_config_set_max_subscriptions_per_watcher(get(), max));
        return *this;
    }
    Config &&max_subscriptions_per_watcher(std::uint32_t max) && {
        return std::move(max_subscriptions_per_watcher(max));
    }
    Config &max_subscriptions_per_presentity(std::uint32_t max) & {
        detail::check(impp_config_set_max_subscriptions_per_presentity(get(), max));
        return *this;
    }
    Config &&max_subscriptions_per_presentity(std::uint32_t max) && {
        return std::move(max_subscriptions_per_presentity(max));
    }
    Config &max_endpoints_per_user(std::uint32_t max) & {
        detail::check(impp_config_set_max_endpoints_per_user(get(), max));
        return *this;
    }
    Config &&max_endpoints_per_user(std::uint32_t max) && {
        return std::move(max_endpoints_per_user(max));
    }

    /* Keeps the durable state (rules, users) in the SQLite file at `path`, opened (and
     * created if missing) here: a bad path throws now (IMPP_ERR_STORAGE, _MALFORMED,
     * _UNSUPPORTED). Without it the state lives in memory and goes with the engine. */
    Config &store_path(const std::string &path) & {
        detail::check(impp_config_set_store_path(get(), path.c_str()));
        return *this;
    }
    Config &&store_path(const std::string &path) && { return std::move(store_path(path)); }

    /* A clock that moves only with Engine::advance_clock (for tests). */
    Config &manual_clock() & {
        detail::check(impp_config_use_manual_clock(get()));
        return *this;
    }
    Config &&manual_clock() && { return std::move(manual_clock()); }

    const impp_config *get() const noexcept { return handle_.get(); }
    impp_config *get() noexcept { return handle_.get(); }
    /* Gives up ownership (impp_engine_new consumes the configuration). */
    impp_config *release() noexcept { return handle_.release(); }

private:
    detail::Owned<impp_config, impp_config_free> handle_;
};

namespace detail {

/* The accessors of an event, shared by the owning Event and the borrowing EventView: `Self`
 * provides `const impp_event *get() const`. */
template <typename Self>
class EventAccessors {
public:
    impp_event_type kind() const noexcept { return impp_event_kind(raw()); }
    /* The subscription; 0 for a publication expiry. */
    std::uint64_t subscription() const noexcept { return impp_event_subscription(raw()); }
    /* The watcher; none for a publication expiry. */
    std::optional<std::string_view> watcher() const noexcept {
        return optional_view(impp_event_watcher(raw()));
    }
    std::string_view presentity() const noexcept { return view(impp_event_presentity(raw())); }
    /* "presence", "presence.winfo", "dialog" or "message-summary". */
    std::string_view package() const noexcept { return view(impp_event_package(raw())); }
    /* IMPP_SUBSCRIPTION_NONE for events without one. */
    impp_subscription_state state() const noexcept { return impp_event_state(raw(), nullptr); }
    impp_reason reason() const noexcept {
        impp_reason reason = IMPP_REASON_NONE;
        impp_event_state(raw(), &reason);
        return reason;
    }
    /* The entity tag of an expired publication. */
    std::optional<std::string_view> etag() const noexcept {
        return optional_view(impp_event_etag(raw()));
    }
    bool has_document() const noexcept { return impp_event_has_document(raw()); }

    /* The document in its package's format; none when the event carries none. */
    std::optional<std::string_view> body() const {
        const char *body = nullptr;
        std::size_t len = 0;
        const impp_status status = impp_event_body(raw(), &body, &len);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        check(status);
        return std::string_view(body, len);
    }

    /* The presence document as a new, owned handle; none unless a PIDF notification. */
    std::optional<Presence> presence() const {
        return document<Presence>(impp_event_presence);
    }

    /* The watcher information document as a new, owned handle; none unless a
     * presence.winfo notification with a document. */
    std::optional<Watcherinfo> winfo() const { return document<Watcherinfo>(impp_event_winfo); }

    /* The dialog-info document as a new, owned handle; none unless a dialog notification
     * with a document. */
    std::optional<DialogInfo> dialog_info() const {
        return document<DialogInfo>(impp_event_dialog_info);
    }

    /* The message summary as a new, owned handle; none unless a message-summary
     * notification with a document. */
    std::optional<MessageSummary> message_summary() const {
        return document<MessageSummary>(impp_event_message_summary);
    }

    /* --- Message, delivery and endpoint expiry events --- */

    /* The message id of a message or delivery event; 0 for other events. */
    std::uint64_t message_id() const noexcept { return impp_event_message_id(raw()); }
    /* The sender of a message or delivery event. */
    std::optional<std::string_view> sender() const noexcept {
        return optional_view(impp_event_sender(raw()));
    }
    /* The recipient of a message or delivery event. */
    std::optional<std::string_view> recipient() const noexcept {
        return optional_view(impp_event_recipient(raw()));
    }
    /* The endpoint of a message event (the copy's) or of an endpoint expiry (its user is
     * presentity()). */
    std::optional<std::string_view> endpoint() const noexcept {
        return optional_view(impp_event_endpoint(raw()));
    }
    /* The MIME type of a message event. */
    std::optional<std::string_view> content_type() const noexcept {
        return optional_view(impp_event_content_type(raw()));
    }
    /* The body of a message event: any bytes, NULs included; none for other events. */
    std::optional<std::string_view> message_body() const {
        const std::uint8_t *body = nullptr;
        std::size_t len = 0;
        const impp_status status = impp_event_message_body(raw(), &body, &len);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        check(status);
        return std::string_view(reinterpret_cast<const char *>(body), len);
    }
    /* A message event carrying an is-composing document (content type
     * IsComposing::mime_type, any case, parameters allowed), parsed; none for other events.
     * A malformed one throws as IsComposing::parse does. */
    std::optional<IsComposing> is_composing() const {
        const std::optional<std::string_view> type = content_type();
        const std::optional<std::string_view> body = message_body();
        if (!type || !body || !same_media_type(*type, IsComposing::mime_type)) {
            return std::nullopt;
        }
        return IsComposing::parse(*body);
    }
    /* The reference the sender gave, if any. */
    std::optional<std::string_view> in_reply_to() const noexcept {
        return optional_view(impp_event_in_reply_to(raw()));
    }
    /* When a message event's message was sent, in Unix milliseconds; 0 otherwise. */
    std::uint64_t sent_at() const noexcept { return impp_event_sent_at(raw()); }
    /* IMPP_DELIVERY_NONE unless a delivery event. */
    impp_delivery_outcome delivery_outcome() const noexcept {
        return impp_event_delivery_outcome(raw());
    }
    /* IMPP_FAILURE_NONE unless a failed delivery. */
    impp_failure_reason failure_reason() const noexcept {
        return impp_event_failure_reason(raw());
    }

protected:
    EventAccessors() = default;
    ~EventAccessors() = default;
    EventAccessors(const EventAccessors &) = default;
    EventAccessors &operator=(const EventAccessors &) = default;

private:
    const impp_event *raw() const noexcept { return static_cast<const Self &>(*this).get(); }

    template <typename Document, typename Raw>
    std::optional<Document> document(impp_status (*fn)(const impp_event *, Raw **)) const {
        Raw *out = nullptr;
        const impp_status status = fn(raw(), &out);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        check(status);
        return Document::adopt(out);
    }

    /* Whether a content type ("Application/IM-isComposing+xml; charset=utf-8") is `want`. */
    static bool same_media_type(std::string_view type, std::string_view want) noexcept {
        const std::size_t semi = type.find(';');
        if (semi != std::string_view::npos) {
            type = type.substr(0, semi);
        }
        while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) {
            type.remove_suffix(1);
        }
        if (type.size() != want.size()) {
            return false;
        }
        for (std::size_t i = 0; i < type.size(); i++) {
            char c = type[i];
            if (c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
            if (c != want[i]) {
                return false;
            }
        }
        return true;
    }
};

}  // namespace detail

/* A borrowed event: the one handed to a callback (valid for the call only), or an Event's
 * (valid while the Event lives). Copy out what you keep; string_views are borrowed from the
 * event. */
class EventView : public detail::EventAccessors<EventView> {
public:
    explicit EventView(const impp_event *event) noexcept : event_(event) {}

    const impp_event *get() const noexcept { return event_; }

private:
    const impp_event *event_;
};

/* An owned event, from Engine::next_event. Move-only; converts to an EventView wherever one
 * is expected. */
class Event : public detail::EventAccessors<Event> {
public:
    /* Takes ownership of an event from impp_engine_next_event. */
    static Event adopt(impp_event *owned) noexcept { return Event(owned); }

    Event(Event &&) noexcept = default;
    Event &operator=(Event &&) noexcept = default;
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;

    /* A view of this event, valid while it lives. */
    EventView view() const noexcept { return EventView(get()); }
    operator EventView() const noexcept { return view(); }

    const impp_event *get() const noexcept { return handle_.get(); }
    impp_event *release() noexcept { return handle_.release(); }

private:
    explicit Event(impp_event *owned) noexcept : handle_(owned) {}
    detail::Owned<impp_event, impp_event_free> handle_;
};

/* A rule of a presentity: for one watcher URI or for a whole domain. */
struct Rule {
    std::optional<std::string> watcher;
    std::optional<std::string> domain;
    impp_auth_action action = IMPP_AUTH_CONFIRM;
    /* Where an IMPP_AUTH_REDIRECT sends the watchers (another presence agent's URI); none
     * for every other action. */
    std::optional<std::string> target;

    static Rule for_watcher(std::string uri, impp_auth_action action) {
        return Rule{std::move(uri), std::nullopt, action, std::nullopt};
    }
    static Rule for_domain(std::string domain, impp_auth_action action) {
        return Rule{std::nullopt, std::move(domain), action, std::nullopt};
    }
    /* A rule sending the watcher (a URI) or the domain's watchers to `target`. */
    static Rule redirect(std::string watcher_or_domain, std::string target, bool domain = false) {
        Rule rule;
        if (domain) {
            rule.domain = std::move(watcher_or_domain);
        } else {
            rule.watcher = std::move(watcher_or_domain);
        }
        rule.action = IMPP_AUTH_REDIRECT;
        rule.target = std::move(target);
        return rule;
    }
};

/* Options of Engine::subscribe. */
struct SubscribeOptions {
    /* Seconds; 0 (IMPP_EXPIRES_DEFAULT): the configured default. */
    std::uint32_t expires = IMPP_EXPIRES_DEFAULT;
    /* An RFC 4661 filter document; none: no filter. */
    std::optional<std::string> filter;
    /* Minimum time between notifications; 0: the engine default. */
    std::chrono::milliseconds min_interval{0};
    /* Fetch the state once: one notification, then the subscription ends. */
    bool fetch = false;

    /* The options a C `impp_subscribe_options` handle holds (for code that has one). */
    static SubscribeOptions from(const impp_subscribe_options *options) {
        SubscribeOptions out;
        if (options == nullptr) {
            return out;
        }
        out.expires = impp_subscribe_options_expires(options);
        out.fetch = impp_subscribe_options_fetch(options);
        if (const char *filter = impp_subscribe_options_filter(options)) {
            out.filter = std::string(filter);
        }
        out.min_interval = std::chrono::milliseconds(impp_subscribe_options_min_interval_ms(options));
        return out;
    }
};

/* What `Engine::send_message` takes besides the message itself. */
struct MessageOptions {
    /* The one endpoint of the recipient to deliver to; none: every endpoint. */
    std::optional<std::string> endpoint;
    /* The message or call this one refers to (the application's reference). */
    std::optional<std::string> in_reply_to;

    /* The options a C `impp_message_options` handle holds (for code that has one). */
    static MessageOptions from(const impp_message_options *options) {
        MessageOptions out;
        if (options == nullptr) {
            return out;
        }
        if (const char *endpoint = impp_message_options_endpoint(options)) {
            out.endpoint = std::string(endpoint);
        }
        if (const char *in_reply_to = impp_message_options_in_reply_to(options)) {
            out.in_reply_to = std::string(in_reply_to);
        }
        return out;
    }
};

/* The state of a live subscription. */
struct SubscriptionInfo {
    impp_subscription_state state;
    std::uint32_t expires_in;  // seconds
    impp_auth_action authorization;
};

/* One subscription of a snapshot (`Engine::subscriptions`). */
struct SubscriptionEntry {
    std::uint64_t id;  // what `Engine::authorize` takes
    std::string watcher;
    std::string presentity;
    std::string package;
    impp_subscription_state state;
    impp_auth_action authorization;
    std::uint32_t expires_in;  // seconds left when the snapshot was taken
};

namespace detail {

/* Frees an engine; from inside its own callback that is refused, and a destructor cannot
 * report it: terminate, rather than leave an engine running that its owner thinks gone. */
struct EngineFree {
    void operator()(impp_engine *engine) const noexcept {
        if (impp_engine_free(engine) == IMPP_ERR_IN_CALLBACK) {
            std::fprintf(stderr, "impp: an Engine was destroyed from inside its own callback\n");
            std::terminate();
        }
    }
};

/* Frees a SIP stack, as EngineFree. */
struct SipFree {
    void operator()(impp_sip *sip) const noexcept {
        if (impp_sip_free(sip) == IMPP_ERR_IN_CALLBACK) {
            std::fprintf(stderr, "impp: a SipStack was destroyed from inside an event callback\n");
            std::terminate();
        }
    }
};

}  // namespace detail

/* A running engine. See the threading notes at the top of this file. */
class Engine {
public:
    using Callback = std::function<void(const EventView &)>;

    /* Starts an engine from `config` (consumed). Throws AbiMismatch first when the loaded
     * library's ABI is not this header's. */
    explicit Engine(Config config) {
        check_abi();
        impp_engine *e = nullptr;
        detail::check(impp_engine_new(config.release(), &e));
        handle_.reset(e);
    }

    /* Takes ownership of an engine from the C API (no ABI check: its creator's job). */
    static Engine adopt(impp_engine *raw) noexcept { return Engine(raw); }

    Engine(Engine &&) noexcept = default;
    /* Destroys the engine held before (as the destructor does). */
    Engine &operator=(Engine &&) noexcept = default;
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    /* Joins every engine thread and frees the callback. Never from inside the callback. */
    ~Engine() = default;

    /* Shuts the engine down now (as the destructor does), reporting failure: from inside the
     * callback it throws IMPP_ERR_IN_CALLBACK and the engine keeps working. */
    void close() {
        if (handle_) {
            detail::check(impp_engine_free(handle_.get()));
            (void)handle_.release();
        }
    }

    /* --- Publications --- */

    /* Publishes `body` (PIDF, dialog-info or message-summary text); returns the entity tag.
     * `expires` in seconds, 0 for the default. */
    std::string publish(const std::string &presentity, const std::string &package,
                        std::string_view body, std::uint32_t expires = 0) {
        char *etag = nullptr;
        detail::check(impp_engine_publish(get(), presentity.c_str(), package.c_str(),
                                          body.data(), body.size(), expires, &etag));
        return detail::take(etag);
    }

    /* Publishes a presence document; returns the entity tag. */
    std::string publish(const std::string &presentity, const Presence &document,
                        std::uint32_t expires = 0) {
        char *etag = nullptr;
        detail::check(impp_engine_publish_presence(get(), presentity.c_str(), document.get(),
                                                   expires, &etag));
        return detail::take(etag);
    }

    /* Publishes a dialog-info document in the "dialog" package; returns the entity tag. */
    std::string publish(const std::string &presentity, const DialogInfo &document,
                        std::uint32_t expires = 0) {
        return publish(presentity, "dialog", document.to_xml(), expires);
    }

    /* Publishes a message summary in the "message-summary" package; returns the entity
     * tag. */
    std::string publish(const std::string &presentity, const MessageSummary &document,
                        std::uint32_t expires = 0) {
        return publish(presentity, "message-summary", document.to_text(), expires);
    }

    /* Extends a publication by `expires` seconds (0: the configured default); returns its new
     * entity tag (the old one stops working). Withdraw it with remove_publication. */
    std::string refresh_publication(const std::string &etag, std::uint32_t expires) {
        char *next = nullptr;
        detail::check(impp_engine_refresh_publication(get(), etag.c_str(), expires, &next));
        return detail::take(next);
    }

    /* Replaces a publication's document; returns its new entity tag. */
    std::string modify_publication(const std::string &etag, const std::string &package,
                                   std::string_view body) {
        char *next = nullptr;
        detail::check(impp_engine_modify_publication(get(), etag.c_str(), package.c_str(),
                                                     body.data(), body.size(), &next));
        return detail::take(next);
    }

    void remove_publication(const std::string &etag) {
        detail::check(impp_engine_remove_publication(get(), etag.c_str()));
    }

    /* --- Subscriptions and authorization --- */

    /* Subscribes; returns the subscription id. The first notification comes as an event. */
    std::uint64_t subscribe(const std::string &watcher, const std::string &presentity,
                            const std::string &package = "presence",
                            const SubscribeOptions &options = SubscribeOptions()) {
        impp_subscribe_options *raw = nullptr;
        detail::check(impp_subscribe_options_new(&raw));
        const std::unique_ptr<impp_subscribe_options, void (*)(impp_subscribe_options *)> c_options(
            raw, &impp_subscribe_options_free);
        detail::check(impp_subscribe_options_set_expires(raw, options.expires));
        detail::check(impp_subscribe_options_set_fetch(raw, options.fetch));
        if (options.filter) {
            detail::check(impp_subscribe_options_set_filter(raw, options.filter->data(),
                                                            options.filter->size()));
        }
        const auto max_ms = std::numeric_limits<std::uint32_t>::max();
        const auto ms = options.min_interval.count();
        detail::check(impp_subscribe_options_set_min_interval_ms(
            raw, ms <= 0 ? 0 : ms > max_ms ? max_ms : static_cast<std::uint32_t>(ms)));
        std::uint64_t id = 0;
        detail::check(impp_engine_subscribe(get(), watcher.c_str(), presentity.c_str(),
                                            package.c_str(), raw, &id));
        return id;
    }

    /* Extends a subscription by `expires` seconds (0: the configured default). End it with
     * unsubscribe. */
    void refresh_subscription(std::uint64_t id, std::uint32_t expires) {
        detail::check(impp_engine_refresh_subscription(get(), id, expires));
    }

    void unsubscribe(std::uint64_t id) { detail::check(impp_engine_unsubscribe(get(), id)); }

    void terminate_subscription(std::uint64_t id, impp_reason reason) {
        detail::check(impp_engine_terminate_subscription(get(), id, reason));
    }

    SubscriptionInfo subscription(std::uint64_t id) const {
        SubscriptionInfo info{IMPP_SUBSCRIPTION_NONE, 0, IMPP_AUTH_CONFIRM};
        detail::check(impp_engine_subscription_state(get(), id, &info.state, &info.expires_in,
                                                     &info.authorization));
        return info;
    }

    void authorize(std::uint64_t id, impp_auth_action action) {
        detail::check(impp_engine_authorize(get(), id, action));
    }

    /* Adds or replaces a rule; a redirect goes through impp_engine_set_redirect_rule with
     * its target. */
    void set_rule(const std::string &presentity, const Rule &rule) {
        if (rule.action == IMPP_AUTH_REDIRECT) {
            detail::check(impp_engine_set_redirect_rule(
                get(), presentity.c_str(), detail::c_str_or_null(rule.watcher),
                detail::c_str_or_null(rule.domain), detail::c_str_or_null(rule.target)));
            return;
        }
        detail::check(impp_engine_set_rule(get(), presentity.c_str(),
                                           detail::c_str_or_null(rule.watcher),
                                           detail::c_str_or_null(rule.domain), rule.action));
    }

    /* Sends one subscription's watcher to another presence agent (`target`, a URI): see
     * impp_engine_redirect. */
    void redirect(std::uint64_t id, const std::string &target) {
        detail::check(impp_engine_redirect(get(), id, target.c_str()));
    }

    /* Removes the rule for the same watcher or domain (the action is ignored); returns
     * whether there was one. */
    bool remove_rule(const std::string &presentity, const Rule &rule) {
        bool removed = false;
        detail::check(impp_engine_remove_rule(get(), presentity.c_str(),
                                              detail::c_str_or_null(rule.watcher),
                                              detail::c_str_or_null(rule.domain), &removed));
        return removed;
    }

    /* The subscriptions to `presentity` (nullopt: to every presentity), in every package and
     * state, as one snapshot in a stable order. */
    std::vector<SubscriptionEntry> subscriptions(
        const std::optional<std::string> &presentity = std::nullopt) const {
        impp_subscription_list *raw = nullptr;
        detail::check(
            impp_engine_subscriptions(get(), detail::c_str_or_null(presentity), &raw));
        const std::unique_ptr<impp_subscription_list, void (*)(impp_subscription_list *)> list(
            raw, &impp_subscription_list_free);
        const std::size_t count = impp_subscription_list_count(raw);
        std::vector<SubscriptionEntry> found;
        found.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            SubscriptionEntry entry{};
            const char *watcher = nullptr;
            const char *pres = nullptr;
            const char *package = nullptr;
            detail::check(impp_subscription_list_id(raw, i, &entry.id));
            detail::check(impp_subscription_list_watcher(raw, i, &watcher));
            detail::check(impp_subscription_list_presentity(raw, i, &pres));
            detail::check(impp_subscription_list_package(raw, i, &package));
            detail::check(impp_subscription_list_state(raw, i, &entry.state));
            detail::check(impp_subscription_list_authorization(raw, i, &entry.authorization));
            detail::check(impp_subscription_list_expires_in(raw, i, &entry.expires_in));
            entry.watcher = watcher;
            entry.presentity = pres;
            entry.package = package;
            found.push_back(std::move(entry));
        }
        return found;
    }

    /* The rules of `presentity`, as one snapshot. */
    std::vector<Rule> rules(const std::string &presentity) const {
        impp_rule_list *raw = nullptr;
        detail::check(impp_engine_rules(get(), presentity.c_str(), &raw));
        const std::unique_ptr<impp_rule_list, void (*)(impp_rule_list *)> list(
            raw, &impp_rule_list_free);
        const std::size_t count = impp_rule_list_count(raw);
        std::vector<Rule> rules;
        rules.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            const char *watcher = nullptr;
            const char *domain = nullptr;
            const char *target = nullptr;
            impp_auth_action action = IMPP_AUTH_CONFIRM;
            detail::check(impp_rule_list_watcher(raw, i, &watcher));
            detail::check(impp_rule_list_domain(raw, i, &domain));
            detail::check(impp_rule_list_action(raw, i, &action));
            detail::check(impp_rule_list_target(raw, i, &target));
            Rule rule;
            if (target != nullptr) {
                rule.target = std::string(target);
            }
            if (watcher != nullptr) {
                rule.watcher = std::string(watcher);
            }
            if (domain != nullptr) {
                rule.domain = std::string(domain);
            }
            rule.action = action;
            rules.push_back(std::move(rule));
        }
        return rules;
    }

    /* --- Resource lists --- */

    /* Adds a list, or replaces the list with its URI; returns once it is durable. Throws
     * IMPP_ERR_INVALID_ARGUMENT when it would break a rule between lists (a cycle, over 8
     * levels or 1000 resources; the message says which), IMPP_ERR_FORBIDDEN for another
     * domain's list. `list` is only read. */
    void set_list(const ResourceList &list) {
        detail::check(impp_engine_set_list(get(), list.get()));
    }

    /* Removes a list; returns whether there was one. */
    bool remove_list(const std::string &uri) {
        bool removed = false;
        detail::check(impp_engine_remove_list(get(), uri.c_str(), &removed));
        return removed;
    }

    /* A copy of the list named `uri`; none when there is no such list. */
    std::optional<ResourceList> resource_list(const std::string &uri) const {
        impp_resource_list *raw = nullptr;
        const impp_status status = impp_engine_resource_list(get(), uri.c_str(), &raw);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return ResourceList::adopt(raw);
    }

    /* Every list, by key, as one snapshot. */
    std::vector<ResourceList> resource_lists() const {
        impp_resource_lists *raw = nullptr;
        detail::check(impp_engine_resource_lists(get(), &raw));
        const detail::Owned<impp_resource_lists, impp_resource_lists_free> snapshot(raw);
        const std::size_t count = impp_resource_lists_count(raw);
        std::vector<ResourceList> lists;
        lists.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            const impp_resource_list *item = nullptr;
            detail::check(impp_resource_lists_item(raw, i, &item));
            lists.push_back(ResourceList::copy(item));
        }
        return lists;
    }

    /* The resources of the list named `uri`, references followed (in order, each once);
     * throws IMPP_ERR_NOT_FOUND when there is no such list. */
    std::vector<ListEntry> expand_list(const std::string &uri) const {
        impp_resource_list *raw = nullptr;
        detail::check(impp_engine_expand_list(get(), uri.c_str(), &raw));
        return ResourceList::adopt(raw).entries();
    }

    /* --- Endpoints, messages and users --- */

    /* Logs endpoint `endpoint` of `user` in or refreshes it; returns the granted seconds.
     * `expires` in seconds; 0 (IMPP_EXPIRES_DEFAULT): the configured default (log out with
     * logout). `contact`: where the endpoint is reached (none: not given). */
    std::uint32_t login(const std::string &user, const std::string &endpoint,
                        std::uint32_t expires = IMPP_EXPIRES_DEFAULT,
                        const std::optional<std::string> &contact = std::nullopt) {
        std::uint32_t granted = 0;
        if (!contact) {
            detail::check(
                impp_engine_login(get(), user.c_str(), endpoint.c_str(), expires, &granted));
            return granted;
        }
        detail::check(impp_engine_login_at(get(), user.c_str(), endpoint.c_str(),
                                           detail::c_str_or_null(contact), expires, &granted));
        return granted;
    }

    /* Logs an endpoint out; returns whether it was logged in. */
    bool logout(const std::string &user, const std::string &endpoint) {
        bool was = false;
        detail::check(impp_engine_logout(get(), user.c_str(), endpoint.c_str(), &was));
        return was;
    }

    /* Sends an instant message (`body`: any bytes); returns its id. What becomes of it
     * arrives as delivery events for the sender. */
    std::uint64_t send_message(const std::string &sender, const std::string &recipient,
                               std::string_view body,
                               const std::string &content_type = "text/plain",
                               const std::optional<std::string> &endpoint = std::nullopt,
                               const std::optional<std::string> &in_reply_to = std::nullopt) {
        impp_message_options *raw = nullptr;
        detail::check(impp_message_options_new(&raw));
        const std::unique_ptr<impp_message_options, void (*)(impp_message_options *)> options(
            raw, &impp_message_options_free);
        detail::check(impp_message_options_set_endpoint(raw, detail::c_str_or_null(endpoint)));
        detail::check(
            impp_message_options_set_in_reply_to(raw, detail::c_str_or_null(in_reply_to)));
        std::uint64_t id = 0;
        detail::check(impp_engine_send_message(
            get(), sender.c_str(), recipient.c_str(), content_type.c_str(),
            reinterpret_cast<const std::uint8_t *>(body.data()), body.size(), raw, &id));
        return id;
    }

    /* Adds `user` (a URI with a user part) to the user directory, or changes its password;
     * returns once the digests are durable. While the directory has users, messages to
     * anyone else fail as IMPP_FAILURE_UNKNOWN_USER. */
    void set_user_password(const std::string &user, const std::string &password) {
        detail::check(impp_engine_set_user_password(get(), user.c_str(), password.c_str()));
    }

    /* Removes `user` from the user directory; returns whether it was there. */
    bool remove_user(const std::string &user) {
        bool was = false;
        detail::check(impp_engine_remove_user(get(), user.c_str(), &was));
        return was;
    }

    /* Whether `user` is in the user directory. */
    bool has_user(const std::string &user) const {
        bool has = false;
        detail::check(impp_engine_has_user(get(), user.c_str(), &has));
        return has;
    }

    /* --- Events --- */

    /* The next event, waiting up to `timeout` (negative: forever; zero: not at all); none
     * when none came in time. Don't poll while a callback is set. */
    std::optional<Event> next_event(
        std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        const auto max = std::numeric_limits<std::int32_t>::max();
        const std::int32_t ms = timeout.count() < 0    ? -1
                                : timeout.count() > max ? max
                                                        : static_cast<std::int32_t>(timeout.count());
        impp_event *event = nullptr;
        detail::check(impp_engine_next_event(get(), ms, &event));
        if (event == nullptr) {
            return std::nullopt;
        }
        return Event::adopt(event);
    }

    /* Readable exactly while events wait; never read or close it. */
    int event_fd() const noexcept { return impp_engine_event_fd(get()); }

    /* Sets the callback (an empty function: back to polling). It runs on the dispatcher
     * thread, in order, and may call this engine (but not destroy it). An exception leaving
     * it is reported on stderr and dropped: it never reaches the library. The function is
     * kept on the heap and destroyed after its last call: when replaced or when the engine
     * is destroyed. */
    void set_callback(Callback callback) {
        if (!callback) {
            detail::check(impp_engine_set_event_callback(get(), nullptr, nullptr, nullptr));
            return;
        }
        auto *held = new Callback(std::move(callback));
        /* On failure the library has already called free_callback(held). */
        detail::check(impp_engine_set_event_callback(get(), &Engine::trampoline, held,
                                                     &Engine::free_callback));
    }

    /* Back to polling. */
    void clear_callback() { set_callback(Callback()); }

    /* --- Counters, clock, barrier --- */

    std::uint64_t stat(impp_stat which) const noexcept { return impp_engine_stat(get(), which); }

    /* Moves the manual clock forward and waits for what became due. */
    void advance_clock(std::chrono::milliseconds by) {
        detail::check(impp_engine_advance_clock(
            get(), by.count() < 0 ? 0 : static_cast<std::uint64_t>(by.count())));
    }

    /* Waits until every earlier call was handled and its events queued. */
    void sync() const { detail::check(impp_engine_sync(get())); }

    const impp_engine *get() const noexcept { return handle_.get(); }
    impp_engine *get() noexcept { return handle_.get(); }
    /* Gives up ownership: the engine keeps running, and its callback with it. */
    impp_engine *release() noexcept { return handle_.release(); }

private:
    explicit Engine(impp_engine *raw) noexcept : handle_(raw) {}

    static void trampoline(const impp_event *event, void *user_data) noexcept {
        try {
            (*static_cast<Callback *>(user_data))(EventView(event));
        } catch (const std::exception &e) {
            std::fprintf(stderr, "impp: the event callback threw: %s\n", e.what());
        } catch (...) {
            std::fprintf(stderr, "impp: the event callback threw a non-standard exception\n");
        }
    }

    static void free_callback(void *user_data) noexcept {
        delete static_cast<Callback *>(user_data);
    }

    std::unique_ptr<impp_engine, detail::EngineFree> handle_;
};

/* --- The SIP stack ---------------------------------------------------------------------- */

/* A resource list at an account's server (RFC 4662) the stack subscribes to while it runs
 * (SipAccount::lists, impp_account_add_list): each resource's state reaches the engine's
 * watchers of that resource as ordinary notifications. */
struct SipList {
    /* "sip:buddies@b.example". */
    std::string uri;
    /* "presence" or "dialog". */
    std::string package = "presence";
};

/* An account of the user-agent role (SipConfig::add_account): the stack registers `aor` at
 * `registrar`, publishes its presence, subscribes to buddies and to `lists`, and carries its
 * messages. */
struct SipAccount {
    /* "sip:alice@b.example". */
    std::string aor;
    /* The digest user name; none: the user part of `aor`. */
    std::optional<std::string> username;
    std::string password;
    /* The next hop, "udp:192.0.2.7:5060". */
    std::string registrar;
    /* Where requests other than REGISTER go; none: the registrar. */
    std::optional<std::string> outbound_proxy;
    /* The registration and publication expiry asked for, in seconds; 0: 3600. */
    std::uint32_t expires = 0;
    /* Resource lists subscribed to at every start of the stack, until it stops (a list of
     * the engine's own domain makes SipStack's constructor throw IMPP_ERR_INVALID_ARGUMENT). */
    std::vector<SipList> lists;
    /* Whether the account is the presence agent of its own address of record (README,
     * "Presence at the edge"): its REGISTER offers it, and the SUBSCRIBEs for `aor` that
     * reach the stack are served by the rules read from `xcap`. */
    bool serve = false;
    /* Seconds between the keep-alive pings on a serving account's TCP/TLS flow; 0: none. */
    std::uint32_t keepalive = 30;
    /* The XCAP root ("http://192.0.2.7:8080/xcap-root") of a serving account's rules. */
    std::optional<std::string> xcap;

    /* The account a C `impp_account` handle describes (its password is not readable back:
     * give it here). */
    static SipAccount from(const impp_account *account, const std::string &password) {
        SipAccount out;
        if (account == nullptr) {
            return out;
        }
        auto text = [](const char *s) { return s == nullptr ? std::string() : std::string(s); };
        out.aor = text(impp_account_aor(account));
        out.registrar = text(impp_account_registrar(account));
        if (const char *username = impp_account_username(account)) {
            out.username = std::string(username);
        }
        if (const char *proxy = impp_account_outbound_proxy(account)) {
            out.outbound_proxy = std::string(proxy);
        }
        out.expires = impp_account_expires(account);
        out.serve = impp_account_serve(account);
        out.keepalive = impp_account_keepalive(account);
        if (const char *xcap = impp_account_xcap(account)) {
            out.xcap = std::string(xcap);
        }
        for (std::size_t i = 0; i < impp_account_list_count(account); i++) {
            out.lists.push_back(SipList{text(impp_account_list_uri(account, i)),
                                        text(impp_account_list_package(account, i))});
        }
        out.password = password;
        return out;
    }
};

/* How a SIP stack is set up: a builder, consumed by SipStack's constructor. Setters throw at
 * once on a bad value (IMPP_ERR_INVALID_ARGUMENT, _INVALID_URI) and change nothing then;
 * they chain on lvalues and temporaries alike. */
class SipConfig {
public:
    /* No listen address yet (add at least one); authentication, SHA-256 challenges and
     * federation on; no routes; T1 500 ms; 2 workers. */
    SipConfig() {
        impp_sip_config *c = nullptr;
        detail::check(impp_sip_config_new(&c));
        handle_.reset(c);
    }

    SipConfig(SipConfig &&) noexcept = default;
    SipConfig &operator=(SipConfig &&) noexcept = default;
    SipConfig(const SipConfig &) = delete;
    SipConfig &operator=(const SipConfig &) = delete;

    /* "udp:127.0.0.1:5060", "tcp:[::1]:0" (port 0: any free port, see local_address). */
    SipConfig &add_listen(const std::string &address) & {
        detail::check(impp_sip_config_add_listen(get(), address.c_str()));
        return *this;
    }
    SipConfig &&add_listen(const std::string &address) && {
        return std::move(add_listen(address));
    }

    /* "b.example=udp:192.0.2.7:5060"; "*=..." for the default route. */
    SipConfig &add_route(const std::string &route) & {
        detail::check(impp_sip_config_add_route(get(), route.c_str()));
        return *this;
    }
    SipConfig &&add_route(const std::string &route) && { return std::move(add_route(route)); }

    SipConfig &add_account(const SipAccount &account) & {
        impp_account *raw = nullptr;
        detail::check(impp_account_new(account.aor.c_str(), account.password.c_str(),
                                       account.registrar.c_str(), &raw));
        const std::unique_ptr<impp_account, void (*)(impp_account *)> handle(raw,
                                                                              &impp_account_free);
        if (account.username) {
            detail::check(impp_account_set_username(raw, account.username->c_str()));
        }
        if (account.outbound_proxy) {
            detail::check(impp_account_set_outbound_proxy(raw, account.outbound_proxy->c_str()));
        }
        detail::check(impp_account_set_expires(raw, account.expires));
        detail::check(impp_account_set_serve(raw, account.serve));
        detail::check(impp_account_set_keepalive(raw, account.keepalive));
        if (account.xcap) {
            detail::check(impp_account_set_xcap(raw, account.xcap->c_str()));
        }
        for (const SipList &list : account.lists) {
            detail::check(impp_account_add_list(raw, list.uri.c_str(), list.package.c_str()));
        }
        detail::check(impp_sip_config_add_account(get(), raw));
        return *this;
    }
    SipConfig &&add_account(const SipAccount &account) && {
        return std::move(add_account(account));
    }

    /* Whether requests from the engine's users must carry digest credentials. */
    SipConfig &authenticate(bool on) & {
        detail::check(impp_sip_config_set_authenticate(get(), on));
        return *this;
    }
    SipConfig &&authenticate(bool on) && { return std::move(authenticate(on)); }

    /* Whether challenges offer SHA-256 next to MD5 (off for clients that fail on it). */
    SipConfig &offer_sha256(bool on) & {
        detail::check(impp_sip_config_set_offer_sha256(get(), on));
        return *this;
    }
    SipConfig &&offer_sha256(bool on) && { return std::move(offer_sha256(on)); }

    /* Whether subscriptions to other domains are served here (federation) or forwarded. */
    SipConfig &federate(bool on) & {
        detail::check(impp_sip_config_set_federate(get(), on));
        return *this;
    }
    SipConfig &&federate(bool on) && { return std::move(federate(on)); }

    /* The transaction timer T1, 1 ms to 60 s. */
    SipConfig &t1(std::chrono::milliseconds interval) & {
        detail::check(impp_sip_config_set_t1_ms(get(), detail::ms_arg(interval)));
        return *this;
    }
    SipConfig &&t1(std::chrono::milliseconds interval) && { return std::move(t1(interval)); }

    /* How long the list server collects changes before a partial NOTIFY, 0 to 60 s (0: none). */
    SipConfig &list_batch_interval(std::chrono::milliseconds interval) & {
        detail::check(impp_sip_config_set_list_batch_interval_ms(get(), detail::ms_arg(interval)));
        return *this;
    }
    SipConfig &&list_batch_interval(std::chrono::milliseconds interval) && {
        return std::move(list_batch_interval(interval));
    }

    /* Threads handling requests, 1 to 64. */
    SipConfig &workers(std::uint32_t n) & {
        detail::check(impp_sip_config_set_workers(get(), n));
        return *this;
    }
    SipConfig &&workers(std::uint32_t n) && { return std::move(workers(n)); }

    /* TLS for tls: listen addresses, routes and accounts, from PEM files: the certificate
     * chain, its private key, and the trust anchors peers' certificates must chain to
     * (std::nullopt: the system's). Read and checked now: a file that cannot be read or does
     * not hold what it should throws IMPP_ERR_INVALID_ARGUMENT naming it. */
    SipConfig &tls_files(const std::string &cert_path, const std::string &key_path,
                         const std::optional<std::string> &ca_path = std::nullopt) & {
        detail::check(impp_sip_config_set_tls_files(get(), cert_path.c_str(), key_path.c_str(),
                                                    detail::c_str_or_null(ca_path)));
        return *this;
    }
    SipConfig &&tls_files(const std::string &cert_path, const std::string &key_path,
                          const std::optional<std::string> &ca_path = std::nullopt) && {
        return std::move(tls_files(cert_path, key_path, ca_path));
    }

    /* As tls_files, from PEM text in memory. */
    SipConfig &tls_pem(const std::string &cert_pem, const std::string &key_pem,
                       const std::optional<std::string> &ca_pem = std::nullopt) & {
        detail::check(impp_sip_config_set_tls_pem(get(), cert_pem.c_str(), key_pem.c_str(),
                                                  detail::c_str_or_null(ca_pem)));
        return *this;
    }
    SipConfig &&tls_pem(const std::string &cert_pem, const std::string &key_pem,
                        const std::optional<std::string> &ca_pem = std::nullopt) && {
        return std::move(tls_pem(cert_pem, key_pem, ca_pem));
    }

    /* TCP and TLS connections open at once (at least 1; default 4096). */
    SipConfig &max_connections(std::uint32_t n) & {
        detail::check(impp_sip_config_set_max_connections(get(), n));
        return *this;
    }
    SipConfig &&max_connections(std::uint32_t n) && { return std::move(max_connections(n)); }

    /* Inbound connections from one IP address (at least 1; default 64). */
    SipConfig &max_connections_per_address(std::uint32_t n) & {
        detail::check(impp_sip_config_set_max_connections_per_address(get(), n));
        return *this;
    }
    SipConfig &&max_connections_per_address(std::uint32_t n) && {
        return std::move(max_connections_per_address(n));
    }

    /* A connection with no traffic this long closes (100 ms to a day; default 180 s). */
    SipConfig &idle_timeout(std::chrono::milliseconds timeout) & {
        detail::check(impp_sip_config_set_idle_timeout_ms(get(), detail::ms_arg(timeout)));
        return *this;
    }
    SipConfig &&idle_timeout(std::chrono::milliseconds timeout) && {
        return std::move(idle_timeout(timeout));
    }

    /* A TLS handshake must end this long after the connection opened (100 ms to 10 min;
     * default 10 s). */
    SipConfig &tls_handshake_timeout(std::chrono::milliseconds timeout) & {
        detail::check(
            impp_sip_config_set_tls_handshake_timeout_ms(get(), detail::ms_arg(timeout)));
        return *this;
    }
    SipConfig &&tls_handshake_timeout(std::chrono::milliseconds timeout) && {
        return std::move(tls_handshake_timeout(timeout));
    }

    /* An inbound connection no request authenticated on closes this long after it opened
     * (100 ms to a day; default 32 s). */
    SipConfig &unvouched_timeout(std::chrono::milliseconds timeout) & {
        detail::check(impp_sip_config_set_unvouched_timeout_ms(get(), detail::ms_arg(timeout)));
        return *this;
    }
    SipConfig &&unvouched_timeout(std::chrono::milliseconds timeout) && {
        return std::move(unvouched_timeout(timeout));
    }

    /* Messages per second per source address, in bursts of up to `burst` (at least
     * per_second); per_second 0 turns the limit off. Default 200/s, bursts of 1000. */
    SipConfig &rate_limit(std::uint32_t per_second, std::uint32_t burst) & {
        detail::check(impp_sip_config_set_rate_limit(get(), per_second, burst));
        return *this;
    }
    SipConfig &&rate_limit(std::uint32_t per_second, std::uint32_t burst) && {
        return std::move(rate_limit(per_second, burst));
    }

    /* How long a digest nonce is good for (1 s to a day; default 300 s). */
    SipConfig &nonce_lifetime(std::chrono::milliseconds lifetime) & {
        detail::check(impp_sip_config_set_nonce_lifetime_ms(get(), detail::ms_arg(lifetime)));
        return *this;
    }
    SipConfig &&nonce_lifetime(std::chrono::milliseconds lifetime) && {
        return std::move(nonce_lifetime(lifetime));
    }

    /* How far below the highest nc an unused one is accepted (0 to 64; default 32). */
    SipConfig &nc_window(std::uint32_t window) & {
        detail::check(impp_sip_config_set_nc_window(get(), window));
        return *this;
    }
    SipConfig &&nc_window(std::uint32_t window) && { return std::move(nc_window(window)); }

    /* Failed credentials within the failure window that start a block (0: no throttle;
     * default 10). */
    SipConfig &max_auth_failures(std::uint32_t n) & {
        detail::check(impp_sip_config_set_max_auth_failures(get(), n));
        return *this;
    }
    SipConfig &&max_auth_failures(std::uint32_t n) && { return std::move(max_auth_failures(n)); }

    /* The window failures are counted in (1 s to a day; default 60 s). */
    SipConfig &auth_failure_window(std::chrono::milliseconds window) & {
        detail::check(impp_sip_config_set_auth_failure_window_ms(get(), detail::ms_arg(window)));
        return *this;
    }
    SipConfig &&auth_failure_window(std::chrono::milliseconds window) && {
        return std::move(auth_failure_window(window));
    }

    /* How long an address or (user, address) pair that failed too often is refused (1 s to
     * a day; default 300 s). */
    SipConfig &auth_block(std::chrono::milliseconds block) & {
        detail::check(impp_sip_config_set_auth_block_ms(get(), detail::ms_arg(block)));
        return *this;
    }
    SipConfig &&auth_block(std::chrono::milliseconds block) && {
        return std::move(auth_block(block));
    }

    /* A front proxy by IP address: failures in its requests count against the client's Via
     * address, and it is not rate limited. */
    SipConfig &add_auth_proxy(const std::string &address) & {
        detail::check(impp_sip_config_add_auth_proxy(get(), address.c_str()));
        return *this;
    }
    SipConfig &&add_auth_proxy(const std::string &address) && {
        return std::move(add_auth_proxy(address));
    }

    /* A peer trusted by its address to speak for another domain's users: "b.test=192.0.2.7",
     * "b.test=192.0.2.0/24", "b.test=2001:db8::/64" (repeatable). A domain of the engine's
     * is refused when the stack starts (impp::SipStack throws IMPP_ERR_INVALID_ARGUMENT). */
    SipConfig &add_peer(const std::string &peer) & {
        detail::check(impp_sip_config_add_peer(get(), peer.c_str()));
        return *this;
    }
    SipConfig &&add_peer(const std::string &peer) && { return std::move(add_peer(peer)); }

    /* A web origin whose pages may open WebSockets to the ws: and wss: listeners (RFC 7118):
     * "https://phone.example.test", or "*" for any (repeatable; pages of the stack's own host
     * and port are always allowed). */
    SipConfig &add_ws_origin(const std::string &origin) & {
        detail::check(impp_sip_config_add_ws_origin(get(), origin.c_str()));
        return *this;
    }
    SipConfig &&add_ws_origin(const std::string &origin) && {
        return std::move(add_ws_origin(origin));
    }

    /* Whom requests claiming another domain's identity are believed from:
     * IMPP_FEDERATION_TRUSTED (trusted peers only; the default) or IMPP_FEDERATION_OPEN
     * (anyone). */
    SipConfig &federation(impp_federation mode) & {
        detail::check(impp_sip_config_set_federation(get(), mode));
        return *this;
    }
    SipConfig &&federation(impp_federation mode) && { return std::move(federation(mode)); }

    /* Whether the watchers of a presentity whose registered device offers to serve them
     * (Contact events="presence") are handed to it: IMPP_MIGRATION_OFF (the default),
     * IMPP_MIGRATION_PROXY (record-routed, taken back when the device goes) or
     * IMPP_MIGRATION_REDIRECT (302 with the device's contact). */
    SipConfig &migration(impp_migration mode) & {
        detail::check(impp_sip_config_set_migration(get(), mode));
        return *this;
    }
    SipConfig &&migration(impp_migration mode) && { return std::move(migration(mode)); }

    /* How long a serving device's TCP/TLS flow may stay silent (no keep-alive) before its
     * watchers are taken back; 0 (the default): never. */
    SipConfig &flow_timeout(std::chrono::milliseconds timeout) & {
        detail::check(impp_sip_config_set_flow_timeout_ms(
            get(), static_cast<std::uint64_t>(timeout.count())));
        return *this;
    }
    SipConfig &&flow_timeout(std::chrono::milliseconds timeout) && {
        return std::move(flow_timeout(timeout));
    }

    /* A telephony system that may publish presence, dialog and message-summary state for
     * every user of one of the engine's domains: "192.0.2.20=example.test" (a PBX by
     * address) or "sip:voicemail@example.test=example.test" (an account, by digest)
     * (repeatable). A domain not the engine's is refused when the stack starts. */
    SipConfig &add_publisher(const std::string &publisher) & {
        detail::check(impp_sip_config_add_publisher(get(), publisher.c_str()));
        return *this;
    }
    SipConfig &&add_publisher(const std::string &publisher) && {
        return std::move(add_publisher(publisher));
    }

    const impp_sip_config *get() const noexcept { return handle_.get(); }
    impp_sip_config *get() noexcept { return handle_.get(); }
    /* Gives up ownership (impp_sip_start consumes the configuration). */
    impp_sip_config *release() noexcept { return handle_.release(); }

private:
    detail::Owned<impp_sip_config, impp_sip_config_free> handle_;
};

/* A running SIP stack over an engine (impp_sip_*): serves the engine's domains on the wire,
 * forwards other domains to their routes, runs the accounts. Made running from a SipConfig;
 * stop() or the destructor stops it. Destroy it before its engine. As for an Engine,
 * stopping it from inside an engine's event callback is refused: stop() throws
 * IMPP_ERR_IN_CALLBACK and the stack keeps running, and the destructor, which cannot throw,
 * calls std::terminate(). */
class SipStack {
public:
    /* Binds the addresses and starts serving over `engine`, consuming `config`. Throws
     * IMPP_ERR_INVALID_ARGUMENT (no listen address, bad settings), IMPP_ERR_NETWORK (an
     * address cannot be bound), IMPP_ERR_STORAGE, IMPP_ERR_SHUTDOWN. */
    SipStack(Engine &engine, SipConfig config) {
        impp_sip *s = nullptr;
        detail::check(impp_sip_start(engine.get(), config.release(), &s));
        handle_.reset(s);
    }

    /* Takes ownership of a stack from the C API. */
    static SipStack adopt(impp_sip *raw) noexcept { return SipStack(raw); }

    SipStack(SipStack &&) noexcept = default;
    /* Stops the stack held before (as the destructor does). */
    SipStack &operator=(SipStack &&) noexcept = default;
    SipStack(const SipStack &) = delete;
    SipStack &operator=(const SipStack &) = delete;
    ~SipStack() = default;

    /* Stops the stack now (as the destructor does), reporting failure: from inside an event
     * callback it throws IMPP_ERR_IN_CALLBACK and the stack keeps running. Stopping a stopped
     * stack does nothing. */
    void stop() {
        if (handle_) {
            detail::check(impp_sip_free(handle_.get()));
            (void)handle_.release();
        }
    }

    /* What SipStack::reconfigure applied, and what takes a restart: comma-separated names
     * ("routes, peers"), empty for none. */
    struct Reconfigured {
        std::string changed;
        std::string needs_restart;
    };

    /* Applies `config` to the running stack as far as it can change without a restart
     * (routes, peers, federation, publishers, rate limit, migration, TLS certificate),
     * consuming it; dialogs, registrations and connections carry on. Throws
     * IMPP_ERR_INVALID_ARGUMENT (a configuration that would not start a stack: nothing
     * changes). */
    Reconfigured reconfigure(SipConfig config) {
        char *changed = nullptr;
        char *restart = nullptr;
        detail::check(impp_sip_reconfigure(get(), config.release(), &changed, &restart));
        Reconfigured done;
        done.changed = detail::take(changed);
        done.needs_restart = detail::take(restart);
        return done;
    }

    /* The first bound address of "udp", "tcp" or "tls", port 0 resolved (throws
     * IMPP_ERR_INVALID_ARGUMENT once stopped). */
    std::string local_address(const std::string &proto) const {
        char *out = nullptr;
        detail::check(impp_sip_local_address(get(), proto.c_str(), &out));
        return detail::take(out);
    }

    /* Subscribes account `account` (its index among those added to the SipConfig, from 0) to
     * the resource list `list` at its server for `package` ("presence", "dialog"), until
     * unsubscribe_list or stop (not made again at the next start: declare it in
     * SipAccount::lists for that). Again for the same list: a no-op. Throws
     * IMPP_ERR_INVALID_ARGUMENT (no such account, a list of the engine's own domain,
     * "presence.winfo", stopped), IMPP_ERR_INVALID_URI, IMPP_ERR_UNKNOWN_PACKAGE. */
    void subscribe_list(std::size_t account, const std::string &list,
                        const std::string &package = "presence") {
        detail::check(impp_sip_subscribe_list(get(), account, list.c_str(), package.c_str()));
    }

    /* Ends what subscribe_list (or a declared list) started; whether there was one. Throws
     * as subscribe_list. */
    bool unsubscribe_list(std::size_t account, const std::string &list,
                          const std::string &package = "presence") {
        bool ended = false;
        detail::check(
            impp_sip_unsubscribe_list(get(), account, list.c_str(), package.c_str(), &ended));
        return ended;
    }

    /* One counter (IMPP_SIP_STAT_RATE_REFUSED, IMPP_SIP_STAT_OPEN_CONNECTIONS...): what the
     * stack refused to protect its users, and its connections. 0 once stopped. */
    std::uint64_t stat(impp_sip_counter which) const noexcept {
        return impp_sip_stat(get(), which);
    }

    const impp_sip *get() const noexcept { return handle_.get(); }
    impp_sip *release() noexcept { return handle_.release(); }

private:
    explicit SipStack(impp_sip *raw) noexcept : handle_(raw) {}
    std::unique_ptr<impp_sip, detail::SipFree> handle_;
};

}  // namespace impp

#endif /* IMPP_HPP */
