/*
 * libimpp: a header-only C++17 wrapper over the C API in impp.h.
 *
 * - Every failing call throws impp::Error, which carries the impp_status and the message of
 *   impp_last_error() taken on the calling thread at the moment of failure.
 * - Handles (Presence, Watcherinfo, DialogInfo, MessageSummary, FilterSet, Config, Engine,
 *   Event) are move-only RAII owners; a moved-from object holds nothing and may only be
 *   destroyed or assigned to.
 * - Strings returned by value are copies; std::string_view results are borrowed from the
 *   object they came from and live as long as it (the lifetime rules of impp.h).
 *
 * Threading: as impp.h. An Engine may be used from any number of threads at once and from
 * inside its own callback. The callback runs on the engine's dispatcher thread, one event at
 * a time, in order. Destroying an Engine joins every engine thread; no callback runs after
 * its destructor returns. Destroying an Engine (or calling close()) from inside its own
 * callback is not allowed: close() throws impp::Error(IMPP_ERR_IN_CALLBACK) and changes
 * nothing, and the destructor, which cannot throw, calls std::terminate().
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

struct StringFree {
    void operator()(char *s) const noexcept { impp_string_free(s); }
};
using OwnedString = std::unique_ptr<char, StringFree>;

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

inline const char *c_str_or_null(const std::optional<std::string> &s) {
    return s ? s->c_str() : nullptr;
}

struct PresenceFree {
    void operator()(impp_presence *p) const noexcept { impp_presence_free(p); }
};
struct ConfigFree {
    void operator()(impp_config *c) const noexcept { impp_config_free(c); }
};
struct EventFree {
    void operator()(impp_event *e) const noexcept { impp_event_free(e); }
};

}  // namespace detail

/* A presence document (PIDF with its extensions). */
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

    std::string to_xml() const {
        char *xml = nullptr;
        detail::check(impp_presence_to_xml(get(), &xml, nullptr));
        return detail::take(xml);
    }

    std::string entity() const {
        const char *s = nullptr;
        detail::check(impp_presence_entity(get(), &s));
        return std::string(detail::view(s));
    }

    std::size_t tuple_count() const noexcept { return impp_presence_tuple_count(get()); }

    /* Appends a tuple; returns its index. */
    std::size_t add_tuple(const std::string &id, impp_basic basic) {
        std::size_t index = 0;
        detail::check(impp_presence_add_tuple(get(), id.c_str(), basic, &index));
        return index;
    }

    void remove_tuple(std::size_t index) { detail::check(impp_presence_remove_tuple(get(), index)); }

    std::string tuple_id(std::size_t index) const {
        const char *s = nullptr;
        detail::check(impp_presence_tuple_id(get(), index, &s));
        return std::string(detail::view(s));
    }

    impp_basic tuple_basic(std::size_t index) const {
        impp_basic b = IMPP_BASIC_UNSET;
        detail::check(impp_presence_tuple_basic(get(), index, &b));
        return b;
    }

    void set_tuple_basic(std::size_t index, impp_basic basic) {
        detail::check(impp_presence_tuple_set_basic(get(), index, basic));
    }

    /* Sets the contact (`priority` 0..1, or negative for none). */
    void set_tuple_contact(std::size_t index, const std::string &uri, double priority = -1.0) {
        detail::check(impp_presence_tuple_set_contact(get(), index, uri.c_str(), priority));
    }

    /* The contact URI, if the tuple has one. */
    std::optional<std::string> tuple_contact(std::size_t index) const {
        const char *uri = nullptr;
        detail::check(impp_presence_tuple_contact(get(), index, &uri, nullptr));
        if (uri == nullptr) {
            return std::nullopt;
        }
        return std::string(uri);
    }

    void add_tuple_note(std::size_t index, const std::string &text,
                        const std::optional<std::string> &lang = std::nullopt) {
        detail::check(impp_presence_tuple_add_note(get(), index, text.c_str(),
                                                   detail::c_str_or_null(lang)));
    }

    std::vector<std::string> tuple_notes(std::size_t index) const {
        std::vector<std::string> notes;
        const std::size_t n = impp_presence_tuple_note_count(get(), index);
        for (std::size_t i = 0; i < n; i++) {
            const char *text = nullptr;
            detail::check(impp_presence_tuple_note(get(), index, i, &text, nullptr));
            notes.emplace_back(detail::view(text));
        }
        return notes;
    }

    void add_note(const std::string &text, const std::optional<std::string> &lang = std::nullopt) {
        detail::check(impp_presence_add_note(get(), text.c_str(), detail::c_str_or_null(lang)));
    }

    std::vector<std::string> notes() const {
        std::vector<std::string> notes;
        const std::size_t n = impp_presence_note_count(get());
        for (std::size_t i = 0; i < n; i++) {
            const char *text = nullptr;
            detail::check(impp_presence_note(get(), i, &text, nullptr));
            notes.emplace_back(detail::view(text));
        }
        return notes;
    }

    /* An RFC 4480 activity by name ("away", "on-the-phone", ...). */
    void add_activity(const std::string &name) {
        detail::check(impp_presence_add_activity(get(), name.c_str()));
    }

    /* The person's activities by name ("other" for free text). */
    std::vector<std::string> activities() const {
        std::vector<std::string> names;
        const std::size_t n = impp_presence_activity_count(get());
        for (std::size_t i = 0; i < n; i++) {
            const char *name = nullptr;
            detail::check(impp_presence_activity(get(), i, &name, nullptr));
            names.emplace_back(detail::view(name));
        }
        return names;
    }

    const impp_presence *get() const noexcept { return handle_.get(); }
    impp_presence *get() noexcept { return handle_.get(); }
    /* Gives up ownership (e.g. to hand the handle to C code that frees it). */
    impp_presence *release() noexcept { return handle_.release(); }

private:
    explicit Presence(impp_presence *raw) noexcept : handle_(raw) {}
    std::unique_ptr<impp_presence, detail::PresenceFree> handle_;
};

namespace detail {

struct WinfoFree {
    void operator()(impp_winfo *w) const noexcept { impp_winfo_free(w); }
};
struct DialogInfoFree {
    void operator()(impp_dialog_info *d) const noexcept { impp_dialog_info_free(d); }
};
struct MessageSummaryFree {
    void operator()(impp_message_summary *m) const noexcept { impp_message_summary_free(m); }
};
struct FilterSetFree {
    void operator()(impp_filter_set *f) const noexcept { impp_filter_set_free(f); }
};

inline std::optional<std::string> optional_string(const char *s) {
    if (s == nullptr) {
        return std::nullopt;
    }
    return std::string(s);
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

}  // namespace detail

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
 * EventView::winfo(). Lists are indexed from 0, and so are the watchers of each list. */
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
    std::unique_ptr<impp_winfo, detail::WinfoFree> handle_;
};

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
        const char *s = nullptr;
        detail::check(impp_dialog_info_entity(get(), &s));
        return std::string(detail::view(s));
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

    std::unique_ptr<impp_dialog_info, detail::DialogInfoFree> handle_;
};

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
        const char *s = nullptr;
        detail::check(impp_message_summary_account(get(), &s));
        return detail::optional_string(s);
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
    std::unique_ptr<impp_message_summary, detail::MessageSummaryFree> handle_;
};

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
    std::unique_ptr<impp_filter_set, detail::FilterSetFree> handle_;
};

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

    /* A clock that moves only with Engine::advance_clock (for tests). */
    Config &manual_clock() & {
        detail::check(impp_config_use_manual_clock(get()));
        return *this;
    }
    Config &&manual_clock() && { return std::move(manual_clock()); }

    impp_config *get() const noexcept { return handle_.get(); }
    /* Gives up ownership (impp_engine_new consumes the configuration). */
    impp_config *release() noexcept { return handle_.release(); }

private:
    std::unique_ptr<impp_config, detail::ConfigFree> handle_;
};

/* A non-owning view of an event: the one handed to a callback (valid for the call only), or
 * an Event's. Copy out what you keep; string_views are borrowed from the event. */
class EventView {
public:
    explicit EventView(const impp_event *event) noexcept : event_(event) {}

    impp_event_type kind() const noexcept { return impp_event_kind(event_); }
    /* The subscription; 0 for a publication expiry. */
    std::uint64_t subscription() const noexcept { return impp_event_subscription(event_); }
    /* The watcher; none for a publication expiry. */
    std::optional<std::string_view> watcher() const noexcept {
        return detail::optional_view(impp_event_watcher(event_));
    }
    std::string_view presentity() const noexcept {
        return detail::view(impp_event_presentity(event_));
    }
    /* "presence", "presence.winfo", "dialog" or "message-summary". */
    std::string_view package() const noexcept { return detail::view(impp_event_package(event_)); }
    /* IMPP_SUBSCRIPTION_NONE for events without one. */
    impp_subscription_state state() const noexcept { return impp_event_state(event_, nullptr); }
    impp_reason reason() const noexcept {
        impp_reason reason = IMPP_REASON_NONE;
        impp_event_state(event_, &reason);
        return reason;
    }
    /* The entity tag of an expired publication. */
    std::optional<std::string_view> etag() const noexcept {
        return detail::optional_view(impp_event_etag(event_));
    }
    bool has_document() const noexcept { return impp_event_has_document(event_); }

    /* The document in its package's format; none when the event carries none. */
    std::optional<std::string_view> body() const {
        const char *body = nullptr;
        std::size_t len = 0;
        const impp_status status = impp_event_body(event_, &body, &len);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return std::string_view(body, len);
    }

    /* The presence document as a new, owned handle; none unless a PIDF notification. */
    std::optional<Presence> presence() const {
        impp_presence *p = nullptr;
        const impp_status status = impp_event_presence(event_, &p);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return Presence::adopt(p);
    }

    /* The watcher information document as a new, owned handle; none unless a
     * presence.winfo notification with a document. */
    std::optional<Watcherinfo> winfo() const {
        impp_winfo *w = nullptr;
        const impp_status status = impp_event_winfo(event_, &w);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return Watcherinfo::adopt(w);
    }

    /* The dialog-info document as a new, owned handle; none unless a dialog notification
     * with a document. */
    std::optional<DialogInfo> dialog_info() const {
        impp_dialog_info *d = nullptr;
        const impp_status status = impp_event_dialog_info(event_, &d);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return DialogInfo::adopt(d);
    }

    /* The message summary as a new, owned handle; none unless a message-summary
     * notification with a document. */
    std::optional<MessageSummary> message_summary() const {
        impp_message_summary *m = nullptr;
        const impp_status status = impp_event_message_summary(event_, &m);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return MessageSummary::adopt(m);
    }

    /* --- Message, delivery and endpoint expiry events --- */

    /* The message id of a message or delivery event; 0 for other events. */
    std::uint64_t message_id() const noexcept { return impp_event_message_id(event_); }
    /* The sender of a message or delivery event. */
    std::optional<std::string_view> sender() const noexcept {
        return detail::optional_view(impp_event_sender(event_));
    }
    /* The recipient of a message or delivery event. */
    std::optional<std::string_view> recipient() const noexcept {
        return detail::optional_view(impp_event_recipient(event_));
    }
    /* The endpoint of a message event (the copy's) or of an endpoint expiry (its user is
     * presentity()). */
    std::optional<std::string_view> endpoint() const noexcept {
        return detail::optional_view(impp_event_endpoint(event_));
    }
    /* The MIME type of a message event. */
    std::optional<std::string_view> content_type() const noexcept {
        return detail::optional_view(impp_event_content_type(event_));
    }
    /* The body of a message event: any bytes, NULs included; none for other events. */
    std::optional<std::string_view> message_body() const {
        const std::uint8_t *body = nullptr;
        std::size_t len = 0;
        const impp_status status = impp_event_message_body(event_, &body, &len);
        if (status == IMPP_ERR_NOT_FOUND) {
            return std::nullopt;
        }
        detail::check(status);
        return std::string_view(reinterpret_cast<const char *>(body), len);
    }
    /* The reference the sender gave, if any. */
    std::optional<std::string_view> in_reply_to() const noexcept {
        return detail::optional_view(impp_event_in_reply_to(event_));
    }
    /* When a message event's message was sent, in Unix milliseconds; 0 otherwise. */
    std::uint64_t sent_at() const noexcept { return impp_event_sent_at(event_); }
    /* IMPP_DELIVERY_NONE unless a delivery event. */
    impp_delivery_outcome delivery_outcome() const noexcept {
        return impp_event_delivery_outcome(event_);
    }
    /* IMPP_FAILURE_NONE unless a failed delivery. */
    impp_failure_reason failure_reason() const noexcept {
        return impp_event_failure_reason(event_);
    }

    const impp_event *get() const noexcept { return event_; }

protected:
    const impp_event *event_;
};

/* An owned event from Engine::next_event. Move-only; usable wherever an EventView is. */
class Event : public EventView {
public:
    /* Takes ownership of an event from impp_engine_next_event. */
    explicit Event(impp_event *owned) noexcept : EventView(owned) {}
    Event(Event &&other) noexcept : EventView(std::exchange(other.event_, nullptr)) {}
    Event &operator=(Event &&other) noexcept {
        if (this != &other) {
            free();
            event_ = std::exchange(other.event_, nullptr);
        }
        return *this;
    }
    Event(const Event &) = delete;
    Event &operator=(const Event &) = delete;
    ~Event() { free(); }

private:
    void free() noexcept { impp_event_free(const_cast<impp_event *>(event_)); }
};

/* A rule of a presentity: for one watcher URI or for a whole domain. */
struct Rule {
    std::optional<std::string> watcher;
    std::optional<std::string> domain;
    impp_auth_action action = IMPP_AUTH_CONFIRM;

    static Rule for_watcher(std::string uri, impp_auth_action action) {
        return Rule{std::move(uri), std::nullopt, action};
    }
    static Rule for_domain(std::string domain, impp_auth_action action) {
        return Rule{std::nullopt, std::move(domain), action};
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
};

/* The state of a live subscription. */
struct SubscriptionInfo {
    impp_subscription_state state;
    std::uint32_t expires_in;  // seconds
    impp_auth_action authorization;
};

/* A running engine. See the threading notes at the top of this file. */
class Engine {
public:
    using Callback = std::function<void(const EventView &)>;

    explicit Engine(Config config) {
        impp_engine *e = nullptr;
        detail::check(impp_engine_new(config.release(), &e));
        engine_ = e;
    }

    Engine(Engine &&other) noexcept : engine_(std::exchange(other.engine_, nullptr)) {}
    Engine &operator=(Engine &&other) noexcept {
        if (this != &other) {
            destroy();
            engine_ = std::exchange(other.engine_, nullptr);
        }
        return *this;
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    /* Joins every engine thread and frees the callback. Never from inside the callback. */
    ~Engine() { destroy(); }

    /* Shuts the engine down now (as the destructor does), reporting failure: from inside the
     * callback it throws IMPP_ERR_IN_CALLBACK and the engine keeps working. */
    void close() {
        if (engine_ != nullptr) {
            detail::check(impp_engine_free(engine_));
            engine_ = nullptr;
        }
    }

    /* Publishes `body` (PIDF, dialog-info or message-summary text); returns the entity tag.
     * `expires` in seconds, 0 for the default. */
    std::string publish(const std::string &presentity, const std::string &package,
                        std::string_view body, std::uint32_t expires = 0) const {
        char *etag = nullptr;
        detail::check(impp_engine_publish(engine_, presentity.c_str(), package.c_str(),
                                          body.data(), body.size(), expires, &etag));
        return detail::take(etag);
    }

    /* Publishes a presence document; returns the entity tag. */
    std::string publish(const std::string &presentity, const Presence &document,
                        std::uint32_t expires = 0) const {
        char *etag = nullptr;
        detail::check(impp_engine_publish_presence(engine_, presentity.c_str(), document.get(),
                                                   expires, &etag));
        return detail::take(etag);
    }

    /* Publishes a dialog-info document in the "dialog" package; returns the entity tag. */
    std::string publish(const std::string &presentity, const DialogInfo &document,
                        std::uint32_t expires = 0) const {
        return publish(presentity, "dialog", document.to_xml(), expires);
    }

    /* Publishes a message summary in the "message-summary" package; returns the entity
     * tag. */
    std::string publish(const std::string &presentity, const MessageSummary &document,
                        std::uint32_t expires = 0) const {
        return publish(presentity, "message-summary", document.to_text(), expires);
    }

    /* Extends a publication by `expires` seconds (0: the configured default); returns its new
     * entity tag (the old one stops working). Withdraw it with remove_publication. */
    std::string refresh_publication(const std::string &etag, std::uint32_t expires) const {
        char *next = nullptr;
        detail::check(impp_engine_refresh_publication(engine_, etag.c_str(), expires, &next));
        return detail::take(next);
    }

    /* Replaces a publication's document; returns its new entity tag. */
    std::string modify_publication(const std::string &etag, const std::string &package,
                                   std::string_view body) const {
        char *next = nullptr;
        detail::check(impp_engine_modify_publication(engine_, etag.c_str(), package.c_str(),
                                                     body.data(), body.size(), &next));
        return detail::take(next);
    }

    void remove_publication(const std::string &etag) const {
        detail::check(impp_engine_remove_publication(engine_, etag.c_str()));
    }

    /* Subscribes; returns the subscription id. The first notification comes as an event. */
    std::uint64_t subscribe(const std::string &watcher, const std::string &presentity,
                            const std::string &package = "presence",
                            const SubscribeOptions &options = SubscribeOptions()) const {
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
        detail::check(impp_engine_subscribe(engine_, watcher.c_str(), presentity.c_str(),
                                            package.c_str(), raw, &id));
        return id;
    }

    /* Extends a subscription by `expires` seconds (0: the configured default). End it with
     * unsubscribe. */
    void refresh_subscription(std::uint64_t id, std::uint32_t expires) const {
        detail::check(impp_engine_refresh_subscription(engine_, id, expires));
    }

    void unsubscribe(std::uint64_t id) const {
        detail::check(impp_engine_unsubscribe(engine_, id));
    }

    void terminate_subscription(std::uint64_t id, impp_reason reason) const {
        detail::check(impp_engine_terminate_subscription(engine_, id, reason));
    }

    SubscriptionInfo subscription(std::uint64_t id) const {
        SubscriptionInfo info{IMPP_SUBSCRIPTION_NONE, 0, IMPP_AUTH_CONFIRM};
        detail::check(impp_engine_subscription_state(engine_, id, &info.state, &info.expires_in,
                                                     &info.authorization));
        return info;
    }

    void authorize(std::uint64_t id, impp_auth_action action) const {
        detail::check(impp_engine_authorize(engine_, id, action));
    }

    void set_rule(const std::string &presentity, const Rule &rule) const {
        detail::check(impp_engine_set_rule(engine_, presentity.c_str(),
                                           detail::c_str_or_null(rule.watcher),
                                           detail::c_str_or_null(rule.domain), rule.action));
    }

    /* Removes the rule for the same watcher or domain (the action is ignored); returns
     * whether there was one. */
    bool remove_rule(const std::string &presentity, const Rule &rule) const {
        bool removed = false;
        detail::check(impp_engine_remove_rule(engine_, presentity.c_str(),
                                              detail::c_str_or_null(rule.watcher),
                                              detail::c_str_or_null(rule.domain), &removed));
        return removed;
    }

    /* The rules of `presentity`, as one snapshot. */
    std::vector<Rule> rules(const std::string &presentity) const {
        impp_rule_list *raw = nullptr;
        detail::check(impp_engine_rules(engine_, presentity.c_str(), &raw));
        const std::unique_ptr<impp_rule_list, void (*)(impp_rule_list *)> list(
            raw, &impp_rule_list_free);
        const std::size_t count = impp_rule_list_count(raw);
        std::vector<Rule> rules;
        rules.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            const char *watcher = nullptr;
            const char *domain = nullptr;
            impp_auth_action action = IMPP_AUTH_CONFIRM;
            detail::check(impp_rule_list_watcher(raw, i, &watcher));
            detail::check(impp_rule_list_domain(raw, i, &domain));
            detail::check(impp_rule_list_action(raw, i, &action));
            Rule rule;
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

    /* Logs endpoint `endpoint` of `user` in or refreshes it; returns the granted seconds.
     * `expires` in seconds; 0 (IMPP_EXPIRES_DEFAULT): the configured default (log out with
     * logout). `contact`: where the endpoint is reached (none: not given). */
    std::uint32_t login(const std::string &user, const std::string &endpoint,
                        std::uint32_t expires = IMPP_EXPIRES_DEFAULT,
                        const std::optional<std::string> &contact = std::nullopt) const {
        std::uint32_t granted = 0;
        detail::check(impp_engine_login_at(engine_, user.c_str(), endpoint.c_str(),
                                           detail::c_str_or_null(contact), expires, &granted));
        return granted;
    }

    /* Logs an endpoint out; returns whether it was logged in. */
    bool logout(const std::string &user, const std::string &endpoint) const {
        bool was = false;
        detail::check(impp_engine_logout(engine_, user.c_str(), endpoint.c_str(), &was));
        return was;
    }

    /* Sends an instant message (`body`: any bytes); returns its id. What becomes of it
     * arrives as delivery events for the sender. */
    std::uint64_t send_message(const std::string &sender, const std::string &recipient,
                               std::string_view body,
                               const std::string &content_type = "text/plain",
                               const std::optional<std::string> &endpoint = std::nullopt,
                               const std::optional<std::string> &in_reply_to = std::nullopt) const {
        impp_message_options *raw = nullptr;
        detail::check(impp_message_options_new(&raw));
        const std::unique_ptr<impp_message_options, void (*)(impp_message_options *)> options(
            raw, &impp_message_options_free);
        detail::check(impp_message_options_set_endpoint(raw, detail::c_str_or_null(endpoint)));
        detail::check(
            impp_message_options_set_in_reply_to(raw, detail::c_str_or_null(in_reply_to)));
        std::uint64_t id = 0;
        detail::check(impp_engine_send_message(
            engine_, sender.c_str(), recipient.c_str(), content_type.c_str(),
            reinterpret_cast<const std::uint8_t *>(body.data()), body.size(), raw, &id));
        return id;
    }

    /* The next event, waiting up to `timeout` (negative: forever; zero: not at all); none
     * when none came in time. Don't poll while a callback is set. */
    std::optional<Event> next_event(
        std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) const {
        const auto max = std::numeric_limits<std::int32_t>::max();
        const std::int32_t ms = timeout.count() < 0    ? -1
                                : timeout.count() > max ? max
                                                        : static_cast<std::int32_t>(timeout.count());
        impp_event *event = nullptr;
        detail::check(impp_engine_next_event(engine_, ms, &event));
        if (event == nullptr) {
            return std::nullopt;
        }
        return Event(event);
    }

    /* Readable exactly while events wait; never read or close it. */
    int event_fd() const noexcept { return impp_engine_event_fd(engine_); }

    /* Sets the callback (an empty function: back to polling). It runs on the dispatcher
     * thread, in order, and may call this engine (but not destroy it). An exception leaving
     * it is reported on stderr and dropped: it never reaches the library. The function is
     * kept on the heap and destroyed after its last call: when replaced or when the engine
     * is destroyed. */
    void set_callback(Callback callback) const {
        if (!callback) {
            detail::check(impp_engine_set_event_callback(engine_, nullptr, nullptr, nullptr));
            return;
        }
        auto *held = new Callback(std::move(callback));
        /* On failure the library has already called free_callback(held). */
        detail::check(impp_engine_set_event_callback(engine_, &Engine::trampoline, held,
                                                     &Engine::free_callback));
    }

    /* Back to polling. */
    void clear_callback() const { set_callback(Callback()); }

    std::uint64_t stat(impp_stat which) const noexcept { return impp_engine_stat(engine_, which); }

    /* Moves the manual clock forward and waits for what became due. */
    void advance_clock(std::chrono::milliseconds by) const {
        detail::check(impp_engine_advance_clock(
            engine_, by.count() < 0 ? 0 : static_cast<std::uint64_t>(by.count())));
    }

    /* Waits until every earlier call was handled and its events queued. */
    void sync() const { detail::check(impp_engine_sync(engine_)); }

    impp_engine *get() const noexcept { return engine_; }

private:
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

    void destroy() noexcept {
        if (engine_ == nullptr) {
            return;
        }
        if (impp_engine_free(engine_) == IMPP_ERR_IN_CALLBACK) {
            std::fprintf(stderr, "impp: an Engine was destroyed from inside its own callback\n");
            std::terminate();
        }
        engine_ = nullptr;
    }

    impp_engine *engine_ = nullptr;
};

/* The SIP stack over an engine (impp_sip_*): serves the engine's domains on the wire,
 * forwards other domains to their routes. Options are set on the object, then start()
 * binds and runs it (an address that cannot be bound throws IMPP_ERR_NETWORK); stop() or
 * the destructor stops it. Destroy it before its engine. As for an Engine, stopping it from
 * inside an engine's event callback is refused: stop() throws IMPP_ERR_IN_CALLBACK and the
 * stack keeps running, and the destructor, which cannot throw, calls std::terminate(). */
class SipStack {
public:
    SipStack() {
        impp_sip_config *c = nullptr;
        detail::check(impp_sip_config_new(&c));
        config_ = c;
    }
    SipStack(SipStack &&other) noexcept
        : config_(std::exchange(other.config_, nullptr)), sip_(std::exchange(other.sip_, nullptr)) {}
    SipStack &operator=(SipStack &&other) noexcept {
        if (this != &other) {
            destroy();
            config_ = std::exchange(other.config_, nullptr);
            sip_ = std::exchange(other.sip_, nullptr);
        }
        return *this;
    }
    SipStack(const SipStack &) = delete;
    SipStack &operator=(const SipStack &) = delete;
    ~SipStack() { destroy(); }

    /* "udp:127.0.0.1:5060", "tcp:[::1]:0"... (before start). */
    SipStack &listen(const std::string &address) {
        detail::check(impp_sip_config_add_listen(config(), address.c_str()));
        return *this;
    }
    /* "b.example=udp:192.0.2.7:5060", "*=..." for the default route (before start). */
    SipStack &route(const std::string &route) {
        detail::check(impp_sip_config_add_route(config(), route.c_str()));
        return *this;
    }
    SipStack &authenticate(bool on) {
        detail::check(impp_sip_config_set_authenticate(config(), on));
        return *this;
    }
    SipStack &federate(bool on) {
        detail::check(impp_sip_config_set_federate(config(), on));
        return *this;
    }
    SipStack &t1_ms(std::uint32_t t1) {
        detail::check(impp_sip_config_set_t1_ms(config(), t1));
        return *this;
    }

    /* Binds the addresses and starts serving over `engine`. */
    void start(const Engine &engine) {
        impp_sip *s = nullptr;
        impp_sip_config *c = std::exchange(config_, nullptr);
        if (c == nullptr) {
            throw Error(IMPP_ERR_INVALID_ARGUMENT, "the SIP stack was started already");
        }
        detail::check(impp_sip_start(engine.get(), c, &s));
        sip_ = s;
    }

    /* Stops the stack now (as the destructor does), reporting failure: from inside an event
     * callback it throws IMPP_ERR_IN_CALLBACK and the stack keeps running. */
    void stop() {
        if (sip_ != nullptr) {
            detail::check(impp_sip_free(sip_));
            sip_ = nullptr;
        }
    }

    /* The first bound address of "udp" or "tcp", port 0 resolved. */
    std::string local_address(const std::string &proto) const {
        char *out = nullptr;
        detail::check(impp_sip_local_address(sip_, proto.c_str(), &out));
        return detail::take(out);
    }

private:
    impp_sip_config *config() const {
        if (config_ == nullptr) {
            throw Error(IMPP_ERR_INVALID_ARGUMENT, "the SIP stack is started: options are fixed");
        }
        return config_;
    }

    void destroy() noexcept {
        impp_sip_config_free(std::exchange(config_, nullptr));
        if (sip_ == nullptr) {
            return;
        }
        if (impp_sip_free(sip_) == IMPP_ERR_IN_CALLBACK) {
            std::fprintf(stderr, "impp: a SipStack was destroyed from inside an event callback\n");
            std::terminate();
        }
        sip_ = nullptr;
    }

    impp_sip_config *config_ = nullptr;
    impp_sip *sip_ = nullptr;
};

}  // namespace impp

#endif /* IMPP_HPP */
