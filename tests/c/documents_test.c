/* The other presence documents (watcherinfo, dialog-info, message summary, filters,
 * is-composing) used as
 * a C program uses them, under ASan/UBSan: parse, read every field, round-trip, build,
 * filter, get them from engine events, and bad input. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "impp.h"
#include "check.h"

/* A failing call must say why. */
#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

/* A pointer no call may write: outputs are written only on success. */
#define UNTOUCHED ((void *)(uintptr_t)0x1)

static const char WINFO_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='3' state='full'>\n"
    "  <watcher-list resource='sip:alice@example.test' package='presence'>\n"
    "    <watcher id='7Wfx' status='active' event='approved' display-name='Bob \xc3\x89tienne'\n"
    "        duration-subscribed='120' expiration='3480'>sip:bob@example.test</watcher>\n"
    "    <watcher id='8Zq1' status='pending' event='subscribe'>\n"
    "      sip:carol@example.test\n"
    "    </watcher>\n"
    "    <watcher id='9aa0' status='terminated' event='noresource'>sip:dan@example.test</watcher>\n"
    "  </watcher-list>\n"
    "  <watcher-list resource='sip:alice@example.test' package='dialog'/>\n"
    "</watcherinfo>\n";

static const char DIALOG_DOC[] =
    "<?xml version='1.0'?>\n"
    "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='7' state='partial'\n"
    "    entity='sip:201@pbx.example.test'>\n"
    "  <dialog id='as7d900as8' call-id='a84b4c76e66710@pc33.example.test'\n"
    "      local-tag='1928301774' remote-tag='456248' direction='recipient'>\n"
    "    <state event='rejected' code='486'>terminated</state>\n"
    "    <duration>12</duration>\n"
    "    <local><identity display='Desk 201'>sip:201@pbx.example.test</identity></local>\n"
    "    <remote>\n"
    "      <identity display='Bob'>sip:bob@example.test</identity>\n"
    "      <target uri='sip:bob@192.0.2.4'/>\n"
    "    </remote>\n"
    "  </dialog>\n"
    "  <dialog id='x2'><state>confirmed</state>\n"
    "    <remote><identity>sip:carol@example.test</identity></remote></dialog>\n"
    "</dialog-info>\n";

static const char MWI_DOC[] =
    "Messages-Waiting: yes\r\n"
    "Message-Account: sip:alice@vmail.example.test\r\n"
    "Voice-Message: 2/8 (0/2)\r\n"
    "fax-message: 1/0\r\n"
    "Video-Message: 3/4\r\n"
    "\r\n"
    "From: <sip:bob@example.test>\r\n"
    "Subject: call me\r\n";

static const char FILTER_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter' package='presence'>\n"
    "  <ns-bindings><ns-binding prefix='p' urn='urn:ietf:params:xml:ns:pidf'/></ns-bindings>\n"
    "  <filter id='desk-only' uri='sip:alice@example.test'>\n"
    "    <what><include type='xpath'>/p:presence/p:tuple[@id='desk']</include></what>\n"
    "  </filter>\n"
    "  <filter id='corp' domain='example.org'>\n"
    "    <what><include>/p:presence/p:note</include></what>\n"
    "  </filter>\n"
    "</filter-set>\n";

static const char PRESENCE_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:alice@example.test'>\n"
    "  <tuple id='desk'><status><basic>open</basic></status>\n"
    "    <contact>sip:alice@192.0.2.7</contact></tuple>\n"
    "  <tuple id='chat'><status><basic>closed</basic></status></tuple>\n"
    "  <note>at lunch</note>\n"
    "</presence>\n";

static const char DOCTYPE_PREFIX[] = "<?xml version='1.0'?>\n<!DOCTYPE x [<!ENTITY e 'boom'>]>\n";

/* `doc` behind a DOCTYPE declaration, in `buf`. */
static size_t with_doctype(char *buf, size_t size, const char *doc) {
    const char *body = strstr(doc, "?>\n");
    body = body ? body + 3 : doc;
    int n = snprintf(buf, size, "%s%s", DOCTYPE_PREFIX, body);
    return n < 0 ? 0 : (size_t)n;
}

/* ------------------------------------------------------------------------------------- */

static void check_winfo_fields(const impp_winfo *w) {
    uint32_t version = 0;
    CHECK_OK(impp_winfo_version(w, &version));
    CHECK(version == 3);
    impp_doc_state state = IMPP_DOC_STATE_PARTIAL;
    CHECK_OK(impp_winfo_state(w, &state));
    CHECK(state == IMPP_DOC_STATE_FULL);
    CHECK(impp_winfo_list_count(w) == 2);

    const char *s = NULL;
    CHECK_OK(impp_winfo_list_resource(w, 0, &s));
    CHECK_STR(s, "sip:alice@example.test");
    CHECK_OK(impp_winfo_list_package(w, 0, &s));
    CHECK_STR(s, "presence");
    CHECK_OK(impp_winfo_list_package(w, 1, &s));
    CHECK_STR(s, "dialog");
    CHECK(impp_winfo_watcher_count(w, 0) == 3);
    CHECK(impp_winfo_watcher_count(w, 1) == 0);

    CHECK_OK(impp_winfo_watcher_id(w, 0, 0, &s));
    CHECK_STR(s, "7Wfx");
    CHECK_OK(impp_winfo_watcher_uri(w, 0, 0, &s));
    CHECK_STR(s, "sip:bob@example.test");
    CHECK_OK(impp_winfo_watcher_display_name(w, 0, 0, &s));
    CHECK_STR(s, "Bob \xc3\x89tienne");
    impp_watcher_status st = IMPP_WATCHER_STATUS_PENDING;
    impp_watcher_event ev = IMPP_WATCHER_EVENT_SUBSCRIBE;
    CHECK_OK(impp_winfo_watcher_status(w, 0, 0, &st));
    CHECK(st == IMPP_WATCHER_STATUS_ACTIVE);
    CHECK_OK(impp_winfo_watcher_event(w, 0, 0, &ev));
    CHECK(ev == IMPP_WATCHER_EVENT_APPROVED);
    int64_t secs = 0;
    CHECK_OK(impp_winfo_watcher_duration_subscribed(w, 0, 0, &secs));
    CHECK(secs == 120);
    CHECK_OK(impp_winfo_watcher_expiration(w, 0, 0, &secs));
    CHECK(secs == 3480);

    /* The second watcher: URI trimmed, no display name, no times. */
    CHECK_OK(impp_winfo_watcher_uri(w, 0, 1, &s));
    CHECK_STR(s, "sip:carol@example.test");
    s = UNTOUCHED;
    CHECK_OK(impp_winfo_watcher_display_name(w, 0, 1, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_winfo_watcher_status(w, 0, 1, &st));
    CHECK(st == IMPP_WATCHER_STATUS_PENDING);
    CHECK_OK(impp_winfo_watcher_event(w, 0, 1, &ev));
    CHECK(ev == IMPP_WATCHER_EVENT_SUBSCRIBE);
    CHECK_OK(impp_winfo_watcher_duration_subscribed(w, 0, 1, &secs));
    CHECK(secs == -1);
    CHECK_OK(impp_winfo_watcher_expiration(w, 0, 1, &secs));
    CHECK(secs == -1);

    CHECK_OK(impp_winfo_watcher_status(w, 0, 2, &st));
    CHECK(st == IMPP_WATCHER_STATUS_TERMINATED);
    CHECK_OK(impp_winfo_watcher_event(w, 0, 2, &ev));
    CHECK(ev == IMPP_WATCHER_EVENT_NORESOURCE);
}

static void test_winfo(void) {
    impp_winfo *w = NULL;
    CHECK_OK(impp_winfo_parse(WINFO_DOC, strlen(WINFO_DOC), &w));
    CHECK(impp_last_error() == NULL);
    check_winfo_fields(w);

    /* A borrowed string stays put across other reads of the handle. */
    const char *first = NULL, *again = NULL;
    CHECK_OK(impp_winfo_watcher_uri(w, 0, 0, &first));
    CHECK_OK(impp_winfo_watcher_uri(w, 0, 1, &again));
    CHECK_OK(impp_winfo_watcher_uri(w, 0, 0, &again));
    CHECK(first == again);

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_winfo_to_xml(w, &xml, &len));
    CHECK(xml != NULL && strlen(xml) == len);
    impp_winfo *w2 = NULL;
    CHECK_OK(impp_winfo_parse(xml, len, &w2));
    check_winfo_fields(w2);
    impp_string_free(xml);
    CHECK_OK(impp_winfo_to_xml(w2, &xml, NULL));
    impp_string_free(xml);
    impp_winfo_free(w2);

    /* Bad indexes and arguments: the right status, outputs untouched, handle unchanged. */
    const char *s = UNTOUCHED;
    CHECK_FAILS(impp_winfo_list_resource(w, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_winfo_watcher_id(w, 0, 3, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_winfo_watcher_uri(w, 5, 0, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_winfo_watcher_display_name(w, 1, 0, &s), IMPP_ERR_NOT_FOUND);
    CHECK(s == UNTOUCHED);
    int64_t secs = 77;
    CHECK_FAILS(impp_winfo_watcher_expiration(w, 0, 9, &secs), IMPP_ERR_NOT_FOUND);
    CHECK(secs == 77);
    CHECK_FAILS(impp_winfo_watcher_id(NULL, 0, 0, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_winfo_watcher_id(w, 0, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_winfo_version(NULL, &(uint32_t){0}), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_winfo_to_xml(NULL, &xml, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_winfo_list_count(NULL) == 0);
    CHECK(impp_winfo_watcher_count(NULL, 0) == 0);
    CHECK(impp_winfo_watcher_count(w, 99) == 0);
    check_winfo_fields(w);

    impp_winfo *bad = UNTOUCHED;
    CHECK_FAILS(impp_winfo_parse(NULL, 10, &bad), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_winfo_parse(WINFO_DOC, strlen(WINFO_DOC), NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_winfo_parse("", 0, &bad), IMPP_ERR_MALFORMED);
    static const char not_utf8[] =
        "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='0' state='full'>"
        "<watcher-list resource='sip:\xff@example.test' package='presence'/></watcherinfo>";
    CHECK_FAILS(impp_winfo_parse(not_utf8, strlen(not_utf8), &bad), IMPP_ERR_MALFORMED);
    static const char bad_status[] =
        "<watcherinfo xmlns='urn:ietf:params:xml:ns:watcherinfo' version='0' state='full'>"
        "<watcher-list resource='sip:a@example.test' package='presence'>"
        "<watcher id='1' status='sleepy' event='subscribe'>sip:b@example.test</watcher>"
        "</watcher-list></watcherinfo>";
    CHECK_FAILS(impp_winfo_parse(bad_status, strlen(bad_status), &bad), IMPP_ERR_MALFORMED);
    /* Truncated: not well-formed. */
    CHECK_FAILS(impp_winfo_parse(WINFO_DOC, strlen(WINFO_DOC) / 2, &bad), IMPP_ERR_MALFORMED);
    char doctype[4096];
    size_t n = with_doctype(doctype, sizeof doctype, WINFO_DOC);
    CHECK_FAILS(impp_winfo_parse(doctype, n, &bad), IMPP_ERR_UNSAFE_XML);
    CHECK(bad == UNTOUCHED);

    impp_winfo_free(w);
    impp_winfo_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

static void check_dialog_fields(const impp_dialog_info *d) {
    uint32_t version = 0;
    CHECK_OK(impp_dialog_info_version(d, &version));
    CHECK(version == 7);
    impp_doc_state state = IMPP_DOC_STATE_FULL;
    CHECK_OK(impp_dialog_info_state(d, &state));
    CHECK(state == IMPP_DOC_STATE_PARTIAL);
    const char *s = NULL;
    CHECK_OK(impp_dialog_info_entity(d, &s));
    CHECK_STR(s, "sip:201@pbx.example.test");
    CHECK(impp_dialog_info_dialog_count(d) == 2);

    CHECK_OK(impp_dialog_info_dialog_id(d, 0, &s));
    CHECK_STR(s, "as7d900as8");
    CHECK_OK(impp_dialog_info_dialog_call_id(d, 0, &s));
    CHECK_STR(s, "a84b4c76e66710@pc33.example.test");
    CHECK_OK(impp_dialog_info_dialog_local_tag(d, 0, &s));
    CHECK_STR(s, "1928301774");
    CHECK_OK(impp_dialog_info_dialog_remote_tag(d, 0, &s));
    CHECK_STR(s, "456248");
    impp_dialog_direction dir = IMPP_DIALOG_DIRECTION_NONE;
    CHECK_OK(impp_dialog_info_dialog_direction(d, 0, &dir));
    CHECK(dir == IMPP_DIALOG_DIRECTION_RECIPIENT);
    impp_dialog_state st = IMPP_DIALOG_STATE_TRYING;
    impp_dialog_event ev = IMPP_DIALOG_EVENT_NONE;
    int code = 0;
    CHECK_OK(impp_dialog_info_dialog_state(d, 0, &st, &ev, &code));
    CHECK(st == IMPP_DIALOG_STATE_TERMINATED);
    CHECK(ev == IMPP_DIALOG_EVENT_REJECTED);
    CHECK(code == 486);
    const char *uri = NULL, *display = NULL;
    CHECK_OK(impp_dialog_info_dialog_local_identity(d, 0, &uri, &display));
    CHECK_STR(uri, "sip:201@pbx.example.test");
    CHECK_STR(display, "Desk 201");
    CHECK_OK(impp_dialog_info_dialog_remote_identity(d, 0, &uri, &display));
    CHECK_STR(uri, "sip:bob@example.test");
    CHECK_STR(display, "Bob");

    /* The second dialog has only an id, a state and a remote URI. */
    CHECK_OK(impp_dialog_info_dialog_id(d, 1, &s));
    CHECK_STR(s, "x2");
    s = UNTOUCHED;
    CHECK_OK(impp_dialog_info_dialog_call_id(d, 1, &s));
    CHECK(s == NULL);
    s = UNTOUCHED;
    CHECK_OK(impp_dialog_info_dialog_local_tag(d, 1, &s));
    CHECK(s == NULL);
    s = UNTOUCHED;
    CHECK_OK(impp_dialog_info_dialog_remote_tag(d, 1, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_dialog_info_dialog_direction(d, 1, &dir));
    CHECK(dir == IMPP_DIALOG_DIRECTION_NONE);
    CHECK_OK(impp_dialog_info_dialog_state(d, 1, &st, &ev, &code));
    CHECK(st == IMPP_DIALOG_STATE_CONFIRMED);
    CHECK(ev == IMPP_DIALOG_EVENT_NONE);
    CHECK(code == -1);
    CHECK_OK(impp_dialog_info_dialog_state(d, 1, &st, NULL, NULL));
    uri = display = UNTOUCHED;
    CHECK_OK(impp_dialog_info_dialog_local_identity(d, 1, &uri, &display));
    CHECK(uri == NULL && display == NULL);
    CHECK_OK(impp_dialog_info_dialog_remote_identity(d, 1, &uri, &display));
    CHECK_STR(uri, "sip:carol@example.test");
    CHECK(display == NULL);
    CHECK_OK(impp_dialog_info_dialog_remote_identity(d, 1, &uri, NULL));
}

static void test_dialog_parse(void) {
    impp_dialog_info *d = NULL;
    CHECK_OK(impp_dialog_info_parse(DIALOG_DOC, strlen(DIALOG_DOC), &d));
    check_dialog_fields(d);

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_dialog_info_to_xml(d, &xml, &len));
    CHECK(xml != NULL && strlen(xml) == len);
    impp_dialog_info *d2 = NULL;
    CHECK_OK(impp_dialog_info_parse(xml, len, &d2));
    check_dialog_fields(d2);
    impp_string_free(xml);
    impp_dialog_info_free(d2);

    /* Bad input: right status, nothing written, nothing changed. */
    const char *s = UNTOUCHED;
    CHECK_FAILS(impp_dialog_info_dialog_id(d, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_dialog_info_dialog_call_id(d, SIZE_MAX, &s), IMPP_ERR_NOT_FOUND);
    CHECK(s == UNTOUCHED);
    impp_dialog_state st = (impp_dialog_state)0;
    CHECK_FAILS(impp_dialog_info_dialog_state(d, 2, &st, NULL, NULL), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_dialog_info_dialog_state(d, 0, NULL, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(st == (impp_dialog_state)0);
    CHECK_FAILS(impp_dialog_info_dialog_remote_identity(d, 0, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_entity(NULL, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_dialog_info_dialog_count(NULL) == 0);
    /* Setters refusing their input leave the document as it was. */
    CHECK_FAILS(impp_dialog_info_dialog_set_call_id(d, 0, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_call_id(d, 0, "a\xff"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_local_tag(d, 0, " padded"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_remote_tag(d, 0, "line\nbreak"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_direction(d, 0, 3), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_state(d, 0, 0, IMPP_DIALOG_EVENT_NONE, -1),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_state(d, 0, IMPP_DIALOG_STATE_EARLY, 8, -1),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_state(d, 0, IMPP_DIALOG_STATE_EARLY,
                                                  IMPP_DIALOG_EVENT_NONE, 99),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_remote_identity(d, 0, "not a uri", NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_remote_identity(d, 0, "sip:x@example.test", ""),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_dialog_set_call_id(d, 2, "abc"), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_dialog_info_dialog_set_direction(d, 2, 1), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_dialog_info_add_dialog(d, "x2", IMPP_DIALOG_STATE_EARLY, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_add_dialog(d, "new", 6, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_add_dialog(d, NULL, IMPP_DIALOG_STATE_EARLY, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_remove_dialog(d, 2), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_dialog_info_add_dialog(NULL, "y", IMPP_DIALOG_STATE_EARLY, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    check_dialog_fields(d);

    impp_dialog_info *bad = UNTOUCHED;
    CHECK_FAILS(impp_dialog_info_parse(NULL, 1, &bad), IMPP_ERR_INVALID_ARGUMENT);
    static const char no_state[] =
        "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='1' state='full'"
        " entity='sip:a@example.test'><dialog id='1'/></dialog-info>";
    CHECK_FAILS(impp_dialog_info_parse(no_state, strlen(no_state), &bad), IMPP_ERR_MALFORMED);
    static const char not_utf8[] =
        "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='1' state='full'"
        " entity='sip:\xc3\x28@example.test'/>";
    CHECK_FAILS(impp_dialog_info_parse(not_utf8, strlen(not_utf8), &bad), IMPP_ERR_MALFORMED);
    char doctype[4096];
    size_t n = with_doctype(doctype, sizeof doctype, DIALOG_DOC);
    CHECK_FAILS(impp_dialog_info_parse(doctype, n, &bad), IMPP_ERR_UNSAFE_XML);
    CHECK(bad == UNTOUCHED);
    impp_dialog_info_free(d);
}

/* A phone publishes its busy lamp: ringing, then talking, then idle. */
static void test_dialog_build(void) {
    impp_dialog_info *d = UNTOUCHED;
    CHECK_FAILS(impp_dialog_info_new("no scheme", &d), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_dialog_info_new(NULL, &d), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(d == UNTOUCHED);
    CHECK_OK(impp_dialog_info_new("sip:201@pbx.example.test", &d));
    CHECK(impp_dialog_info_dialog_count(d) == 0);
    impp_doc_state state = IMPP_DOC_STATE_PARTIAL;
    CHECK_OK(impp_dialog_info_state(d, &state));
    CHECK(state == IMPP_DOC_STATE_FULL);

    size_t idx = 99;
    CHECK_OK(impp_dialog_info_add_dialog(d, "call-1", IMPP_DIALOG_STATE_EARLY, &idx));
    CHECK(idx == 0);
    CHECK_OK(impp_dialog_info_dialog_set_call_id(d, 0, "f81d4fae-7dec@pbx.example.test"));
    CHECK_OK(impp_dialog_info_dialog_set_local_tag(d, 0, "a73kszlfl"));
    CHECK_OK(impp_dialog_info_dialog_set_remote_tag(d, 0, "1kdj4ndj"));
    CHECK_OK(impp_dialog_info_dialog_set_direction(d, 0, IMPP_DIALOG_DIRECTION_RECIPIENT));
    CHECK_OK(impp_dialog_info_dialog_set_remote_identity(d, 0, "sip:bob@example.test",
                                                         "Bob <the builder> & co"));
    CHECK_OK(impp_dialog_info_add_dialog(d, "call-2", IMPP_DIALOG_STATE_TRYING, &idx));
    CHECK(idx == 1);
    CHECK_OK(impp_dialog_info_dialog_set_direction(d, 1, IMPP_DIALOG_DIRECTION_INITIATOR));

    /* A borrowed string is valid until the next modification. */
    const char *id = NULL;
    CHECK_OK(impp_dialog_info_dialog_id(d, 0, &id));
    CHECK_STR(id, "call-1");

    /* Answered. */
    CHECK_OK(impp_dialog_info_dialog_set_state(d, 0, IMPP_DIALOG_STATE_CONFIRMED,
                                               IMPP_DIALOG_EVENT_NONE, 200));

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_dialog_info_to_xml(d, &xml, &len));
    CHECK(strstr(xml, "&lt;the builder&gt; &amp; co") != NULL);
    impp_dialog_info *back = NULL;
    CHECK_OK(impp_dialog_info_parse(xml, len, &back));
    impp_string_free(xml);
    CHECK(impp_dialog_info_dialog_count(back) == 2);
    const char *s = NULL;
    CHECK_OK(impp_dialog_info_entity(back, &s));
    CHECK_STR(s, "sip:201@pbx.example.test");
    CHECK_OK(impp_dialog_info_dialog_call_id(back, 0, &s));
    CHECK_STR(s, "f81d4fae-7dec@pbx.example.test");
    CHECK_OK(impp_dialog_info_dialog_local_tag(back, 0, &s));
    CHECK_STR(s, "a73kszlfl");
    CHECK_OK(impp_dialog_info_dialog_remote_tag(back, 0, &s));
    CHECK_STR(s, "1kdj4ndj");
    impp_dialog_direction dir = IMPP_DIALOG_DIRECTION_NONE;
    CHECK_OK(impp_dialog_info_dialog_direction(back, 0, &dir));
    CHECK(dir == IMPP_DIALOG_DIRECTION_RECIPIENT);
    CHECK_OK(impp_dialog_info_dialog_direction(back, 1, &dir));
    CHECK(dir == IMPP_DIALOG_DIRECTION_INITIATOR);
    impp_dialog_state st = IMPP_DIALOG_STATE_TRYING;
    impp_dialog_event ev = IMPP_DIALOG_EVENT_TIMEOUT;
    int code = 0;
    CHECK_OK(impp_dialog_info_dialog_state(back, 0, &st, &ev, &code));
    CHECK(st == IMPP_DIALOG_STATE_CONFIRMED && ev == IMPP_DIALOG_EVENT_NONE && code == 200);
    CHECK_OK(impp_dialog_info_dialog_state(back, 1, &st, &ev, &code));
    CHECK(st == IMPP_DIALOG_STATE_TRYING && code == -1);
    const char *uri = NULL, *display = NULL;
    CHECK_OK(impp_dialog_info_dialog_remote_identity(back, 0, &uri, &display));
    CHECK_STR(uri, "sip:bob@example.test");
    CHECK_STR(display, "Bob <the builder> & co");
    impp_dialog_info_free(back);

    /* Hung up; then the identity and the other fields can be removed again. */
    CHECK_OK(impp_dialog_info_dialog_set_state(d, 0, IMPP_DIALOG_STATE_TERMINATED,
                                               IMPP_DIALOG_EVENT_REMOTE_BYE, -1));
    CHECK_OK(impp_dialog_info_dialog_set_remote_identity(d, 0, NULL, NULL));
    CHECK_OK(impp_dialog_info_dialog_set_call_id(d, 0, NULL));
    CHECK_OK(impp_dialog_info_dialog_set_direction(d, 0, IMPP_DIALOG_DIRECTION_NONE));
    CHECK_OK(impp_dialog_info_dialog_remote_identity(d, 0, &uri, NULL));
    CHECK(uri == NULL);
    CHECK_OK(impp_dialog_info_dialog_call_id(d, 0, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_dialog_info_dialog_state(d, 0, &st, &ev, &code));
    CHECK(st == IMPP_DIALOG_STATE_TERMINATED && ev == IMPP_DIALOG_EVENT_REMOTE_BYE);
    CHECK_OK(impp_dialog_info_remove_dialog(d, 0));
    CHECK(impp_dialog_info_dialog_count(d) == 1);
    CHECK_OK(impp_dialog_info_dialog_id(d, 0, &s));
    CHECK_STR(s, "call-2");
    impp_dialog_info_free(d);
    impp_dialog_info_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

static void check_class(const impp_message_summary *m, size_t i, const char *name,
                        uint32_t new_msgs, uint32_t old_msgs, int64_t urgent_new,
                        int64_t urgent_old) {
    const char *s = NULL;
    CHECK_OK(impp_message_summary_class_name(m, i, &s));
    CHECK_STR(s, name);
    uint32_t n = 0, o = 0;
    int64_t un = 0, uo = 0;
    CHECK_OK(impp_message_summary_class_counts(m, i, &n, &o, &un, &uo));
    CHECK(n == new_msgs && o == old_msgs && un == urgent_new && uo == urgent_old);
}

static void check_mwi_fields(const impp_message_summary *m) {
    bool waiting = false;
    CHECK_OK(impp_message_summary_messages_waiting(m, &waiting));
    CHECK(waiting);
    const char *s = NULL;
    CHECK_OK(impp_message_summary_account(m, &s));
    CHECK_STR(s, "sip:alice@vmail.example.test");
    CHECK(impp_message_summary_class_count(m) == 3);
    check_class(m, 0, "voice-message", 2, 8, 0, 2);
    check_class(m, 1, "fax-message", 1, 0, -1, -1);
    check_class(m, 2, "video-message", 3, 4, -1, -1);
}

static void test_mwi(void) {
    impp_message_summary *m = NULL;
    CHECK_OK(impp_message_summary_parse(MWI_DOC, strlen(MWI_DOC), &m));
    check_mwi_fields(m);

    char *text = NULL;
    size_t len = 0;
    CHECK_OK(impp_message_summary_to_text(m, &text, &len));
    CHECK(text != NULL && strlen(text) == len);
    CHECK(strstr(text, "Subject: call me\r\n") != NULL);
    impp_message_summary *m2 = NULL;
    CHECK_OK(impp_message_summary_parse(text, len, &m2));
    check_mwi_fields(m2);
    impp_string_free(text);
    impp_message_summary_free(m2);

    /* Bad input. */
    const char *s = UNTOUCHED;
    CHECK_FAILS(impp_message_summary_class_name(m, 3, &s), IMPP_ERR_NOT_FOUND);
    CHECK(s == UNTOUCHED);
    uint32_t n = 42, o = 42;
    CHECK_FAILS(impp_message_summary_class_counts(m, 3, &n, &o, NULL, NULL),
                IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_message_summary_class_counts(m, 0, NULL, &o, NULL, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(n == 42 && o == 42);
    CHECK_FAILS(impp_message_summary_set_count(m, "Sms", 1, 1, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_count(m, "bad name-message", 1, 1, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_count(m, "\xff-message", 1, 1, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_count(m, NULL, 1, 1, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_urgent(m, "pager-message", 1, 1), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_message_summary_set_urgent(m, "voice-message", -2, 1),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_urgent(m, "voice-message", 0, INT64_C(4294967296)),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_set_account(m, "vmail box"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_account(NULL, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_message_summary_class_count(NULL) == 0);
    check_mwi_fields(m);

    impp_message_summary *bad = UNTOUCHED;
    static const char no_waiting[] = "Voice-Message: 1/2\r\n";
    CHECK_FAILS(impp_message_summary_parse(no_waiting, strlen(no_waiting), &bad),
                IMPP_ERR_MALFORMED);
    static const char bad_counts[] = "Messages-Waiting: yes\r\nVoice-Message: two/8\r\n";
    CHECK_FAILS(impp_message_summary_parse(bad_counts, strlen(bad_counts), &bad),
                IMPP_ERR_MALFORMED);
    static const char not_utf8[] = "Messages-Waiting: yes\r\nMessage-Account: sip:\xe2\x82@x\r\n";
    CHECK_FAILS(impp_message_summary_parse(not_utf8, strlen(not_utf8), &bad),
                IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_message_summary_parse(NULL, 3, &bad), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_message_summary_parse("", 0, &bad), IMPP_ERR_MALFORMED);
    CHECK(bad == UNTOUCHED);
    impp_message_summary_free(m);
}

/* A voicemail server builds the body that lights the lamp. */
static void test_mwi_build(void) {
    impp_message_summary *m = NULL;
    CHECK_FAILS(impp_message_summary_new(true, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_message_summary_new(false, &m));
    bool waiting = true;
    CHECK_OK(impp_message_summary_messages_waiting(m, &waiting));
    CHECK(!waiting);
    const char *s = UNTOUCHED;
    CHECK_OK(impp_message_summary_account(m, &s));
    CHECK(s == NULL);
    CHECK(impp_message_summary_class_count(m) == 0);

    CHECK_OK(impp_message_summary_set_messages_waiting(m, true));
    CHECK_OK(impp_message_summary_set_account(m, "sip:bob@vmail.example.test"));
    size_t idx = 99;
    CHECK_OK(impp_message_summary_set_count(m, "voice-message", 1, 0, &idx));
    CHECK(idx == 0);
    CHECK_OK(impp_message_summary_set_count(m, "Text-Message", 4, 5, &idx));
    CHECK(idx == 1);
    /* Setting a class again replaces its line (any case), dropping its urgent counts. */
    CHECK_OK(impp_message_summary_set_urgent(m, "VOICE-MESSAGE", 1, -1));
    CHECK_OK(impp_message_summary_set_count(m, "Voice-Message", 3, 2, &idx));
    CHECK(idx == 0);
    CHECK_OK(impp_message_summary_set_urgent(m, "voice-message", 1, 0));
    CHECK(impp_message_summary_class_count(m) == 2);

    char *text = NULL;
    size_t len = 0;
    CHECK_OK(impp_message_summary_to_text(m, &text, &len));
    CHECK_STR(text,
              "Messages-Waiting: yes\r\n"
              "Message-Account: sip:bob@vmail.example.test\r\n"
              "Voice-Message: 3/2 (1/0)\r\n"
              "Text-Message: 4/5\r\n");
    impp_message_summary *back = NULL;
    CHECK_OK(impp_message_summary_parse(text, len, &back));
    impp_string_free(text);
    CHECK_OK(impp_message_summary_messages_waiting(back, &waiting));
    CHECK(waiting);
    CHECK_OK(impp_message_summary_account(back, &s));
    CHECK_STR(s, "sip:bob@vmail.example.test");
    check_class(back, 0, "voice-message", 3, 2, 1, 0);
    check_class(back, 1, "text-message", 4, 5, -1, -1);
    impp_message_summary_free(back);

    CHECK_OK(impp_message_summary_set_account(m, NULL));
    CHECK_OK(impp_message_summary_account(m, &s));
    CHECK(s == NULL);
    impp_message_summary_free(m);
    impp_message_summary_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

static const char ISCOMPOSING_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<ic:isComposing xmlns:ic='urn:ietf:params:xml:ns:im-iscomposing'\n"
    "    xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'\n"
    "    xsi:schemaLocation='urn:ietf:params:xml:ns:im-composing iscomposing.xsd'>\n"
    "  <ic:state> idle </ic:state>\n"
    "  <ic:lastactive>2003-01-27T10:43:00Z</ic:lastactive>\n"
    "  <ic:contenttype>audio</ic:contenttype>\n"
    "  <x:hint xmlns:x='urn:example:ext'>kept</x:hint>\n"
    "</ic:isComposing>\n";

static void check_iscomposing_fields(const impp_iscomposing *c) {
    impp_composing_state state = IMPP_COMPOSING_STATE_ACTIVE;
    CHECK_OK(impp_iscomposing_state(c, &state));
    CHECK(state == IMPP_COMPOSING_STATE_IDLE);
    const char *s = NULL;
    CHECK_OK(impp_iscomposing_last_active(c, &s));
    CHECK_STR(s, "2003-01-27T10:43:00Z");
    CHECK_OK(impp_iscomposing_content_type(c, &s));
    CHECK_STR(s, "audio");
    int64_t refresh = 0, expires = 0;
    CHECK_OK(impp_iscomposing_refresh(c, &refresh));
    CHECK(refresh == -1);
    CHECK_OK(impp_iscomposing_active_expires_after(c, &expires));
    CHECK(expires == -1);
}

/* A client reads the typing indication its peer sent, and what it cannot accept. */
static void test_iscomposing(void) {
    impp_iscomposing *c = NULL;
    CHECK_OK(impp_iscomposing_parse(ISCOMPOSING_DOC, strlen(ISCOMPOSING_DOC), &c));
    check_iscomposing_fields(c);

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_iscomposing_to_xml(c, &xml, &len));
    CHECK(xml != NULL && strlen(xml) == len);
    CHECK(strstr(xml, "urn:example:ext") != NULL);
    CHECK(strstr(xml, "schemaLocation") != NULL);
    impp_iscomposing *back = NULL;
    CHECK_OK(impp_iscomposing_parse(xml, len, &back));
    check_iscomposing_fields(back);
    impp_iscomposing_free(back);
    impp_string_free(xml);

    impp_iscomposing *bad = UNTOUCHED;
    static const char no_state[] =
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>"
        "<contenttype>text/plain</contenttype></isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(no_state, strlen(no_state), &bad), IMPP_ERR_MALFORMED);
    CHECK(strstr(impp_last_error(), "<state>") != NULL);
    static const char bad_state[] =
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>"
        "<state>typing</state></isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(bad_state, strlen(bad_state), &bad), IMPP_ERR_MALFORMED);
    static const char zero_refresh[] =
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>"
        "<state>active</state><refresh>0</refresh></isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(zero_refresh, strlen(zero_refresh), &bad),
                IMPP_ERR_MALFORMED);
    static const char bad_time[] =
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>"
        "<state>idle</state><lastactive>yesterday</lastactive></isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(bad_time, strlen(bad_time), &bad), IMPP_ERR_MALFORMED);
    static const char wrong_ns[] =
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-composing'>"
        "<state>idle</state></isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(wrong_ns, strlen(wrong_ns), &bad), IMPP_ERR_MALFORMED);
    char buf[1024];
    size_t n = with_doctype(buf, sizeof buf, ISCOMPOSING_DOC);
    CHECK_FAILS(impp_iscomposing_parse(buf, n, &bad), IMPP_ERR_UNSAFE_XML);
    static const char not_utf8[] = "<isComposing>\xff</isComposing>";
    CHECK_FAILS(impp_iscomposing_parse(not_utf8, strlen(not_utf8), &bad), IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_iscomposing_parse(NULL, 3, &bad), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_parse("", 0, &bad), IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_iscomposing_parse(ISCOMPOSING_DOC, strlen(ISCOMPOSING_DOC), NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(bad == UNTOUCHED);

    const char *s = UNTOUCHED;
    CHECK_FAILS(impp_iscomposing_last_active(NULL, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_content_type(c, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(s == UNTOUCHED);
    CHECK_FAILS(impp_iscomposing_to_xml(NULL, &xml, NULL), IMPP_ERR_INVALID_ARGUMENT);
    impp_iscomposing_free(c);
}

/* A client builds the indication it sends while its user types, then when they stop. */
static void test_iscomposing_build(void) {
    impp_iscomposing *c = UNTOUCHED;
    CHECK_FAILS(impp_iscomposing_new(0, &c), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_new(3, &c), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(c == UNTOUCHED);
    CHECK_FAILS(impp_iscomposing_new(IMPP_COMPOSING_STATE_ACTIVE, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_iscomposing_new(IMPP_COMPOSING_STATE_ACTIVE, &c));
    const char *s = UNTOUCHED;
    CHECK_OK(impp_iscomposing_content_type(c, &s));
    CHECK(s == NULL);
    int64_t secs = 0;
    CHECK_OK(impp_iscomposing_active_expires_after(c, &secs));
    CHECK(secs == 120);

    CHECK_OK(impp_iscomposing_set_content_type(c, "text/plain"));
    CHECK_OK(impp_iscomposing_set_refresh(c, 90));
    CHECK_OK(impp_iscomposing_refresh(c, &secs));
    CHECK(secs == 90);
    CHECK_OK(impp_iscomposing_active_expires_after(c, &secs));
    CHECK(secs == 90);
    CHECK_FAILS(impp_iscomposing_set_refresh(c, 0), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_refresh(c, -2), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_refresh(c, INT64_C(4294967296)), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_content_type(c, " text/plain"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_content_type(c, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_last_active(c, "yesterday"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_state(c, 7), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_iscomposing_set_state(NULL, IMPP_COMPOSING_STATE_IDLE),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_iscomposing_refresh(c, &secs));
    CHECK(secs == 90);

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_iscomposing_to_xml(c, &xml, &len));
    CHECK(strstr(xml, "<state>active</state>") != NULL);
    CHECK(strstr(xml, "<contenttype>text/plain</contenttype>") != NULL);
    CHECK(strstr(xml, "<refresh>90</refresh>") != NULL);
    impp_string_free(xml);

    /* The user stopped typing: idle, with the time of the last keystroke. */
    CHECK_OK(impp_iscomposing_content_type(c, &s));
    CHECK_STR(s, "text/plain");
    CHECK_OK(impp_iscomposing_set_state(c, IMPP_COMPOSING_STATE_IDLE));
    CHECK_OK(impp_iscomposing_set_refresh(c, -1));
    CHECK_OK(impp_iscomposing_set_last_active(c, "2026-11-24T14:45:00Z"));
    CHECK_OK(impp_iscomposing_to_xml(c, &xml, &len));
    impp_iscomposing *back = NULL;
    CHECK_OK(impp_iscomposing_parse(xml, len, &back));
    impp_string_free(xml);
    impp_composing_state state = IMPP_COMPOSING_STATE_ACTIVE;
    CHECK_OK(impp_iscomposing_state(back, &state));
    CHECK(state == IMPP_COMPOSING_STATE_IDLE);
    CHECK_OK(impp_iscomposing_last_active(back, &s));
    CHECK_STR(s, "2026-11-24T14:45:00Z");
    CHECK_OK(impp_iscomposing_refresh(back, &secs));
    CHECK(secs == -1);
    impp_iscomposing_free(back);

    CHECK_OK(impp_iscomposing_set_last_active(c, NULL));
    CHECK_OK(impp_iscomposing_set_content_type(c, NULL));
    CHECK_OK(impp_iscomposing_last_active(c, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_iscomposing_content_type(c, &s));
    CHECK(s == NULL);
    impp_iscomposing_free(c);
    impp_iscomposing_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

static void check_filter_fields(const impp_filter_set *f) {
    CHECK(impp_filter_set_filter_count(f) == 2);
    const char *s = NULL;
    CHECK_OK(impp_filter_set_filter_id(f, 0, &s));
    CHECK_STR(s, "desk-only");
    CHECK_OK(impp_filter_set_filter_uri(f, 0, &s));
    CHECK_STR(s, "sip:alice@example.test");
    s = UNTOUCHED;
    CHECK_OK(impp_filter_set_filter_domain(f, 0, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_filter_set_filter_id(f, 1, &s));
    CHECK_STR(s, "corp");
    s = UNTOUCHED;
    CHECK_OK(impp_filter_set_filter_uri(f, 1, &s));
    CHECK(s == NULL);
    CHECK_OK(impp_filter_set_filter_domain(f, 1, &s));
    CHECK_STR(s, "example.org");
}

/* Applies `f` for `resource` to `doc`: the number of tuples and notes left, and the first
 * tuple's id copied into `first_id` ("" when none). */
static size_t tuples_after(const impp_filter_set *f, const char *resource,
                           const impp_presence *doc, char first_id[16], size_t *notes) {
    impp_presence *out = NULL;
    CHECK_OK(impp_filter_set_apply(f, resource, doc, &out));
    first_id[0] = '\0';
    *notes = 0;
    if (out == NULL) {
        return SIZE_MAX;
    }
    size_t n = impp_presence_tuple_count(out);
    const char *id = NULL;
    if (n > 0 && impp_presence_tuple_id(out, 0, &id) == IMPP_OK) {
        snprintf(first_id, 16, "%s", id);
    }
    *notes = impp_presence_note_count(out);
    impp_presence_free(out);
    return n;
}

static void test_filter(void) {
    impp_filter_set *f = NULL;
    CHECK_OK(impp_filter_set_parse(FILTER_DOC, strlen(FILTER_DOC), &f));
    check_filter_fields(f);

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_filter_set_to_xml(f, &xml, &len));
    CHECK(xml != NULL && strlen(xml) == len);
    impp_filter_set *f2 = NULL;
    CHECK_OK(impp_filter_set_parse(xml, len, &f2));
    check_filter_fields(f2);
    impp_string_free(xml);
    impp_filter_set_free(f2);

    impp_presence *doc = NULL;
    CHECK_OK(impp_presence_parse(PRESENCE_DOC, strlen(PRESENCE_DOC), &doc));
    char first[16];
    size_t notes = 0;
    /* The filter for alice keeps the desk tuple only (with its status). */
    CHECK(tuples_after(f, "sip:alice@example.test", doc, first, &notes) == 1);
    CHECK_STR(first, "desk");
    CHECK(notes == 0);
    /* The domain filter keeps the note only. */
    CHECK(tuples_after(f, "sip:zoe@EXAMPLE.org", doc, first, &notes) == 0);
    CHECK(notes == 1);
    /* No filter applies: a copy. */
    CHECK(tuples_after(f, "sip:zed@example.net", doc, first, &notes) == 2);
    CHECK(notes == 1);
    /* The input document is only read. */
    CHECK(impp_presence_tuple_count(doc) == 2);

    impp_presence *out = UNTOUCHED;
    CHECK_FAILS(impp_filter_set_apply(NULL, "sip:a@example.test", doc, &out),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_filter_set_apply(f, NULL, doc, &out), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_filter_set_apply(f, "sip:\xff@example.test", doc, &out),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_filter_set_apply(f, "sip:a@example.test", NULL, &out),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_filter_set_apply(f, "sip:a@example.test", doc, NULL),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(out == UNTOUCHED);
    impp_presence_free(doc);

    const char *s = UNTOUCHED;
    CHECK_FAILS(impp_filter_set_filter_id(f, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_filter_set_filter_uri(f, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_filter_set_filter_domain(NULL, 0, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(s == UNTOUCHED);
    CHECK(impp_filter_set_filter_count(NULL) == 0);
    check_filter_fields(f);

    impp_filter_set *bad = UNTOUCHED;
    static const char positional[] =
        "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'>"
        "<filter id='f'><what><include>/pidf:presence/pidf:tuple[1]</include></what></filter>"
        "</filter-set>";
    CHECK_FAILS(impp_filter_set_parse(positional, strlen(positional), &bad),
                IMPP_ERR_UNSUPPORTED);
    static const char axis[] =
        "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'>"
        "<filter id='f'><what><include>/child::pidf:presence</include></what></filter>"
        "</filter-set>";
    CHECK_FAILS(impp_filter_set_parse(axis, strlen(axis), &bad), IMPP_ERR_UNSUPPORTED);
    static const char unbound[] =
        "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'>"
        "<filter id='f'><what><include>/zz:presence</include></what></filter>"
        "</filter-set>";
    CHECK_FAILS(impp_filter_set_parse(unbound, strlen(unbound), &bad), IMPP_ERR_MALFORMED);
    static const char not_utf8[] =
        "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'>"
        "<filter id='\x80'/></filter-set>";
    CHECK_FAILS(impp_filter_set_parse(not_utf8, strlen(not_utf8), &bad), IMPP_ERR_MALFORMED);
    CHECK_FAILS(impp_filter_set_parse(FILTER_DOC, 40, &bad), IMPP_ERR_MALFORMED);
    char doctype[4096];
    size_t n = with_doctype(doctype, sizeof doctype, FILTER_DOC);
    CHECK_FAILS(impp_filter_set_parse(doctype, n, &bad), IMPP_ERR_UNSAFE_XML);
    CHECK_FAILS(impp_filter_set_parse(NULL, 2, &bad), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(bad == UNTOUCHED);
    impp_filter_set_free(f);
    impp_filter_set_free(NULL);
}

/* ------------------------------------------------------------------------------------- */

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"

/* The last event of the subscription `sub` that carries a document, or NULL. */
static impp_event *document_event(impp_engine *e, uint64_t sub) {
    CHECK_OK(impp_engine_sync(e));
    impp_event *found = NULL;
    for (;;) {
        impp_event *ev = NULL;
        CHECK_OK(impp_engine_next_event(e, 0, &ev));
        if (ev == NULL) {
            break;
        }
        if (impp_event_subscription(ev) == sub && impp_event_has_document(ev)) {
            impp_event_free(found);
            found = ev;
        } else {
            impp_event_free(ev);
        }
    }
    return found;
}

/* Each package's document comes out of a notification as its own handle. */
static void test_events(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_set_default_policy(config, IMPP_AUTH_ALLOW));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    impp_engine *e = NULL;
    CHECK_OK(impp_engine_new(config, &e));
    if (e == NULL) {
        return;
    }

    /* Alice's phone publishes a busy lamp built here; Bob watches it. */
    impp_dialog_info *lamp = NULL;
    CHECK_OK(impp_dialog_info_new(ALICE, &lamp));
    CHECK_OK(impp_dialog_info_add_dialog(lamp, "d1", IMPP_DIALOG_STATE_CONFIRMED, NULL));
    CHECK_OK(impp_dialog_info_dialog_set_direction(lamp, 0, IMPP_DIALOG_DIRECTION_INITIATOR));
    char *body = NULL;
    size_t len = 0;
    CHECK_OK(impp_dialog_info_to_xml(lamp, &body, &len));
    impp_dialog_info_free(lamp);
    char *etag = NULL;
    CHECK_OK(impp_engine_publish(e, ALICE, "dialog", body, len, 0, &etag));
    impp_string_free(body);
    impp_string_free(etag);
    uint64_t sub = 0;
    CHECK_OK(impp_engine_subscribe(e, BOB, ALICE, "dialog", NULL, &sub));
    impp_event *ev = document_event(e, sub);
    CHECK(ev != NULL);
    impp_dialog_info *d = NULL;
    CHECK_OK(impp_event_dialog_info(ev, &d));
    CHECK(impp_dialog_info_dialog_count(d) == 1);
    impp_dialog_state st = IMPP_DIALOG_STATE_TRYING;
    CHECK_OK(impp_dialog_info_dialog_state(d, 0, &st, NULL, NULL));
    CHECK(st == IMPP_DIALOG_STATE_CONFIRMED);
    impp_dialog_info_free(d);
    /* The same event holds no document of the other packages. */
    impp_winfo *w = UNTOUCHED;
    impp_message_summary *m = UNTOUCHED;
    impp_presence *p = UNTOUCHED;
    CHECK_FAILS(impp_event_winfo(ev, &w), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_event_message_summary(ev, &m), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_event_presence(ev, &p), IMPP_ERR_NOT_FOUND);
    CHECK(w == UNTOUCHED && m == UNTOUCHED && p == UNTOUCHED);
    impp_event_free(ev);

    /* A voicemail lamp. */
    impp_message_summary *mwi = NULL;
    CHECK_OK(impp_message_summary_new(true, &mwi));
    CHECK_OK(impp_message_summary_set_count(mwi, "voice-message", 2, 1, NULL));
    CHECK_OK(impp_message_summary_to_text(mwi, &body, &len));
    impp_message_summary_free(mwi);
    CHECK_OK(impp_engine_publish(e, ALICE, "message-summary", body, len, 0, &etag));
    impp_string_free(body);
    impp_string_free(etag);
    CHECK_OK(impp_engine_subscribe(e, ALICE, ALICE, "message-summary", NULL, &sub));
    ev = document_event(e, sub);
    CHECK(ev != NULL);
    CHECK_OK(impp_event_message_summary(ev, &m));
    CHECK(impp_message_summary_class_count(m) == 1);
    check_class(m, 0, "voice-message", 2, 1, -1, -1);
    impp_message_summary_free(m);
    impp_dialog_info *no_dialog = UNTOUCHED;
    CHECK_FAILS(impp_event_dialog_info(ev, &no_dialog), IMPP_ERR_NOT_FOUND);
    CHECK(no_dialog == UNTOUCHED);
    impp_event_free(ev);

    /* Alice watches her own watchers: Bob's dialog subscription is listed. */
    CHECK_OK(impp_engine_subscribe(e, ALICE, ALICE, "presence.winfo", NULL, &sub));
    ev = document_event(e, sub);
    CHECK(ev != NULL);
    CHECK_OK(impp_event_winfo(ev, &w));
    CHECK(w != NULL && w != UNTOUCHED);
    if (w != NULL && w != UNTOUCHED) {
        CHECK(impp_winfo_list_count(w) >= 1);
        impp_winfo_free(w);
    }
    impp_event_free(ev);

    CHECK_FAILS(impp_event_winfo(NULL, &w), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_event_dialog_info(NULL, &d), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_event_message_summary(NULL, &m), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    test_winfo();
    test_dialog_parse();
    test_dialog_build();
    test_mwi();
    test_mwi_build();
    test_iscomposing();
    test_iscomposing_build();
    test_filter();
    test_events();
    return check_report("documents_test");
}
