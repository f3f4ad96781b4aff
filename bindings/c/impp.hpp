/*
 * libimpp: a header-only C++17 wrapper over the C API in impp.h.
 *
 * - Every failing call throws impp::Error, which carries the impp_status and the message of
 *   impp_last_error() taken on the calling thread at the moment of failure.
 * - Handles (Presence, Config, Engine, Event) are move-only RAII owners; a moved-from object
 *   holds nothing and may only be destroyed or assigned to.
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

    impp_event_kind kind() const noexcept { return impp_event_get_kind(event_); }
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
    /* Seconds; -1: the configured default; 0: fetch once. */
    std::int64_t expires = -1;
    /* An RFC 4661 filter document; none: no filter. */
    std::optional<std::string> filter;
    /* Minimum time between notifications; negative: the engine default. */
    std::chrono::milliseconds min_interval{-1};
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

    /* Extends a publication; returns its new entity tag (the old one stops working). */
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
        std::uint64_t id = 0;
        const char *filter = options.filter ? options.filter->data() : nullptr;
        const std::size_t filter_len = options.filter ? options.filter->size() : 0;
        const std::int64_t min_interval =
            options.min_interval.count() < 0 ? -1
                                             : static_cast<std::int64_t>(options.min_interval.count());
        detail::check(impp_engine_subscribe(engine_, watcher.c_str(), presentity.c_str(),
                                            package.c_str(), options.expires, filter, filter_len,
                                            min_interval, &id));
        return id;
    }

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

    std::vector<Rule> rules(const std::string &presentity) const {
        std::size_t count = 0;
        detail::check(impp_engine_rule_count(engine_, presentity.c_str(), &count));
        std::vector<Rule> rules;
        rules.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            char *watcher = nullptr;
            char *domain = nullptr;
            impp_auth_action action = IMPP_AUTH_CONFIRM;
            detail::check(
                impp_engine_rule(engine_, presentity.c_str(), i, &watcher, &domain, &action));
            detail::OwnedString w(watcher), d(domain);
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

}  // namespace impp

#endif /* IMPP_HPP */
