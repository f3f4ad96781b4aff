/* The presence document API used as a C program uses it, under ASan/UBSan. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "impp.h"
#include "check.h"

static const char PHONE_DOC[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<p:presence xmlns:p='urn:ietf:params:xml:ns:pidf'\n"
    "    xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'\n"
    "    xmlns:x='urn:example:vendor' entity='sip:bob@example.test' x:build='42'>\n"
    "  <p:tuple id='deskphone'>\n"
    "    <p:status><p:basic>closed</p:basic></p:status>\n"
    "    <x:line-key x:n='3'>busy</x:line-key>\n"
    "    <p:contact priority='0.8'>sip:bob@192.0.2.4:5060</p:contact>\n"
    "    <p:note xml:lang='en'>In a call</p:note>\n"
    "    <p:note xml:lang='he'>\xd7\x91\xd7\xa9\xd7\x99\xd7\x97\xd7\x94</p:note>\n"
    "    <p:timestamp>2026-11-24T14:45:00Z</p:timestamp>\n"
    "  </p:tuple>\n"
    "  <p:tuple id='softphone'><p:status><p:basic>open</p:basic></p:status></p:tuple>\n"
    "  <p:note>Back at 3</p:note>\n"
    "</p:presence>\n";

static void test_versions(void) {
    CHECK(impp_abi_version() == IMPP_ABI_VERSION);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", IMPP_VERSION_MAJOR, IMPP_VERSION_MINOR,
             IMPP_VERSION_PATCH);
    CHECK_STR(impp_version(), expected);
    CHECK_STR(impp_status_name(IMPP_OK), "IMPP_OK");
    CHECK_STR(impp_status_name(IMPP_ERR_MALFORMED), "IMPP_ERR_MALFORMED");
    CHECK_STR(impp_status_name(12345), "IMPP_UNKNOWN");
}

static void test_build_serialize_parse(void) {
    impp_presence *p = NULL;
    CHECK_OK(impp_presence_new("pres:alice@example.test", &p));
    CHECK(p != NULL);
    CHECK(impp_last_error() == NULL);

    size_t idx = 99;
    CHECK_OK(impp_presence_add_tuple(p, "t-mobile", IMPP_BASIC_OPEN, &idx));
    CHECK(idx == 0);
    CHECK_OK(impp_presence_tuple_set_contact(p, 0, "sip:alice@198.51.100.7;transport=tcp", 0.75));
    CHECK_OK(impp_presence_tuple_add_note(p, 0, "On the train \xf0\x9f\x9a\x86", "en"));
    CHECK_OK(impp_presence_tuple_set_timestamp(p, 0, "2026-11-24T14:45:00.250+01:00"));
    CHECK_OK(impp_presence_add_tuple(p, "t-desk", IMPP_BASIC_CLOSED, NULL));
    CHECK_OK(impp_presence_add_note(p, "Reachable by IM <only> & mail", NULL));

    char *xml = NULL;
    size_t len = 0;
    CHECK_OK(impp_presence_to_xml(p, &xml, &len));
    CHECK(xml != NULL && strlen(xml) == len);
    CHECK(strstr(xml, "&lt;only&gt; &amp; mail") != NULL);

    impp_presence *q = NULL;
    CHECK_OK(impp_presence_parse(xml, len, &q));
    impp_string_free(xml);

    const char *s = NULL;
    CHECK_OK(impp_presence_entity(q, &s));
    CHECK_STR(s, "pres:alice@example.test");
    CHECK(impp_presence_tuple_count(q) == 2);
    CHECK_OK(impp_presence_tuple_id(q, 1, &s));
    CHECK_STR(s, "t-desk");
    impp_basic b = IMPP_BASIC_UNSET;
    CHECK_OK(impp_presence_tuple_basic(q, 0, &b));
    CHECK(b == IMPP_BASIC_OPEN);
    CHECK_OK(impp_presence_tuple_basic(q, 1, &b));
    CHECK(b == IMPP_BASIC_CLOSED);
    double prio = 0;
    CHECK_OK(impp_presence_tuple_contact(q, 0, &s, &prio));
    CHECK_STR(s, "sip:alice@198.51.100.7;transport=tcp");
    CHECK(fabs(prio - 0.75) < 1e-9);
    CHECK_OK(impp_presence_tuple_contact(q, 1, &s, &prio));
    CHECK(s == NULL && prio == -1.0);
    CHECK(impp_presence_tuple_note_count(q, 0) == 1);
    const char *lang = NULL;
    CHECK_OK(impp_presence_tuple_note(q, 0, 0, &s, &lang));
    CHECK_STR(s, "On the train \xf0\x9f\x9a\x86");
    CHECK_STR(lang, "en");
    CHECK_OK(impp_presence_tuple_timestamp(q, 0, &s));
    CHECK_STR(s, "2026-11-24T14:45:00.250+01:00");
    CHECK_OK(impp_presence_tuple_timestamp(q, 1, &s));
    CHECK(s == NULL);
    CHECK(impp_presence_note_count(q) == 1);
    CHECK_OK(impp_presence_note(q, 0, &s, &lang));
    CHECK_STR(s, "Reachable by IM <only> & mail");
    CHECK(lang == NULL);

    /* A borrowed string stays valid across further reads of the same handle. */
    const char *id0 = NULL, *id1 = NULL;
    CHECK_OK(impp_presence_tuple_id(q, 0, &id0));
    CHECK_OK(impp_presence_tuple_id(q, 1, &id1));
    CHECK_OK(impp_presence_tuple_id(q, 0, &s));
    CHECK(s == id0);
    CHECK_STR(id0, "t-mobile");

    /* Editing: remove a tuple, change status. */
    CHECK_OK(impp_presence_remove_tuple(q, 0));
    CHECK(impp_presence_tuple_count(q) == 1);
    CHECK_OK(impp_presence_tuple_set_basic(q, 0, IMPP_BASIC_OPEN));
    CHECK_OK(impp_presence_tuple_basic(q, 0, &b));
    CHECK(b == IMPP_BASIC_OPEN);

    impp_presence *c = NULL;
    CHECK_OK(impp_presence_clone(q, &c));
    impp_presence_free(q);
    CHECK(impp_presence_tuple_count(c) == 1);
    impp_presence_free(c);
    impp_presence_free(p);
}

static void test_parse_real_device_document(void) {
    impp_presence *p = NULL;
    CHECK_OK(impp_presence_parse(PHONE_DOC, strlen(PHONE_DOC), &p));
    CHECK(impp_presence_tuple_count(p) == 2);
    const char *s = NULL, *lang = NULL;
    CHECK_OK(impp_presence_tuple_note(p, 0, 1, &s, &lang));
    CHECK_STR(s, "\xd7\x91\xd7\xa9\xd7\x99\xd7\x97\xd7\x94");
    CHECK_STR(lang, "he");

    /* Unknown extension elements and attributes survive a round trip. */
    char *xml = NULL;
    CHECK_OK(impp_presence_to_xml(p, &xml, NULL));
    CHECK(strstr(xml, "line-key") != NULL);
    CHECK(strstr(xml, "urn:example:vendor") != NULL);
    CHECK(strstr(xml, "build=\"42\"") != NULL);
    impp_string_free(xml);
    impp_presence_free(p);

    /* The length is honoured: no NUL terminator needed, trailing bytes ignored. */
    char buf[sizeof PHONE_DOC + 8];
    memcpy(buf, PHONE_DOC, strlen(PHONE_DOC));
    memcpy(buf + strlen(PHONE_DOC), "GARBAGE!", 8);
    CHECK_OK(impp_presence_parse(buf, strlen(PHONE_DOC), &p));
    impp_presence_free(p);
}

static void test_bad_input(void) {
    impp_presence *p = NULL;
    impp_presence *untouched = (impp_presence *)(uintptr_t)0x1;

    /* NULL arguments. */
    CHECK_STATUS(impp_presence_new(NULL, &p), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_last_error() != NULL && strstr(impp_last_error(), "entity") != NULL);
    CHECK_STATUS(impp_presence_new("pres:a@b", NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_parse(NULL, 10, &p), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_to_xml(NULL, NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_entity(NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_add_tuple(NULL, "x", IMPP_BASIC_OPEN, NULL),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_presence_tuple_count(NULL) == 0);
    impp_presence_free(NULL);
    impp_string_free(NULL);

    /* Invalid UTF-8 in arguments and documents. */
    CHECK_STATUS(impp_presence_new("pres:\xff\xfe@b", &p), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(impp_last_error(), "UTF-8") != NULL);
    const char bad_utf8[] =
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'>"
        "<note>\xc3\x28</note></presence>";
    p = untouched;
    CHECK_STATUS(impp_presence_parse(bad_utf8, strlen(bad_utf8), &p), IMPP_ERR_MALFORMED);
    CHECK(p == untouched); /* outputs are written only on success */

    /* Malformed XML and PIDF. */
    const char *malformed[] = {
        "",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'><tuple id='t'>",
        "<presence xmlns='urn:example:wrong' entity='pres:a@b'/>",
        "<presence entity='pres:a@b'/>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'><tuple id='t'>"
        "<status><basic>maybe</basic></status></tuple></presence>",
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'>"
        "<tuple id='t'><status/></tuple><tuple id='t'><status/></tuple></presence>",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        CHECK_STATUS(impp_presence_parse(malformed[i], strlen(malformed[i]), &p),
                     IMPP_ERR_MALFORMED);
        CHECK(impp_last_error() != NULL);
    }

    /* Entity expansion of any kind is refused. */
    const char bomb[] =
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
        "<!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'>"
        "<note>&lol2;</note></presence>";
    CHECK_STATUS(impp_presence_parse(bomb, strlen(bomb), &p), IMPP_ERR_UNSAFE_XML);
    const char undeclared[] =
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b'>"
        "<note>&xxe;</note></presence>";
    CHECK_STATUS(impp_presence_parse(undeclared, strlen(undeclared), &p), IMPP_ERR_UNSAFE_XML);

    /* Oversized documents. */
    CHECK_STATUS(impp_presence_parse_limited(PHONE_DOC, strlen(PHONE_DOC), 100, 32, &p),
                 IMPP_ERR_TOO_LARGE);
    CHECK_STATUS(impp_presence_parse_limited(PHONE_DOC, strlen(PHONE_DOC), 65536, 2, &p),
                 IMPP_ERR_TOO_LARGE);

    /* Bad values leave the handle unchanged. */
    CHECK_OK(impp_presence_new("pres:a@example.test", &p));
    CHECK_OK(impp_presence_add_tuple(p, "t1", IMPP_BASIC_OPEN, NULL));
    CHECK_STATUS(impp_presence_add_tuple(p, "t1", IMPP_BASIC_OPEN, NULL),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_add_tuple(p, "", IMPP_BASIC_OPEN, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_add_tuple(p, "t2", 7, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_set_contact(p, 0, "not a uri", 0.5),
                 IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_set_contact(p, 0, "sip:a@b", 1.5), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_set_contact(p, 0, "sip:a@b", NAN), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_set_timestamp(p, 0, "yesterday"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_add_note(p, 0, "x", "e n"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(impp_presence_tuple_set_basic(p, 5, IMPP_BASIC_OPEN), IMPP_ERR_NOT_FOUND);
    const char *s = NULL;
    CHECK_STATUS(impp_presence_tuple_id(p, 1, &s), IMPP_ERR_NOT_FOUND);
    CHECK_STATUS(impp_presence_tuple_note(p, 0, 0, &s, NULL), IMPP_ERR_NOT_FOUND);
    CHECK_STATUS(impp_presence_remove_tuple(p, 3), IMPP_ERR_NOT_FOUND);
    CHECK(impp_presence_tuple_count(p) == 1);
    CHECK(impp_presence_tuple_note_count(p, 0) == 0);
    CHECK_OK(impp_presence_tuple_contact(p, 0, &s, NULL));
    CHECK(s == NULL);

    /* A successful call clears the last error. */
    CHECK_OK(impp_presence_entity(p, &s));
    CHECK(impp_last_error() == NULL);
    impp_presence_free(p);
}

int main(void) {
    test_versions();
    test_build_serialize_parse();
    test_parse_real_device_document();
    test_bad_input();
    return check_report("presence_test");
}
