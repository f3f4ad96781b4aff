/*
 * Build a presence document through the C API, serialize it to PIDF, parse it back and
 * read it. Run it with `./examples/run.sh` (it builds libimpp first).
 */
#include <stdio.h>
#include <stdlib.h>

#include "impp.h"

/* Print the failure and its detail, then stop. */
static void check(impp_status status, const char *what) {
    if (status != IMPP_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, impp_status_name(status),
                impp_last_error() ? impp_last_error() : "");
        exit(1);
    }
}

int main(void) {
    if (impp_abi_version() != IMPP_ABI_VERSION) {
        fprintf(stderr, "libimpp ABI %u, header ABI %d\n", impp_abi_version(), IMPP_ABI_VERSION);
        return 1;
    }
    printf("libimpp %s\n\n", impp_version());

    /* Alice's phone is open and her desk client is closed. */
    impp_presence *doc = NULL;
    check(impp_presence_new("pres:alice@example.test", &doc), "impp_presence_new");
    size_t phone = 0;
    check(impp_presence_add_tuple(doc, "phone", IMPP_BASIC_OPEN, &phone), "add_tuple");
    check(impp_presence_tuple_set_contact(doc, phone, "sip:alice@198.51.100.7", 0.9),
          "set_contact");
    check(impp_presence_tuple_add_note(doc, phone, "On my mobile", "en"), "add_note");
    check(impp_presence_add_tuple(doc, "desk", IMPP_BASIC_CLOSED, NULL), "add_tuple");
    check(impp_presence_add_note(doc, "Travelling today", "en"), "add_note");
    /* Rich presence (RPID) on the person, capabilities (RFC 5196) on the phone's service. */
    check(impp_presence_add_activity(doc, "on-the-phone"), "add_activity");
    check(impp_presence_set_user_input(doc, IMPP_USER_INPUT_ACTIVE, NULL), "set_user_input");
    check(impp_presence_tuple_set_capability(doc, phone, IMPP_CAP_AUDIO, 1), "set_capability");
    check(impp_presence_tuple_set_capability(doc, phone, IMPP_CAP_MESSAGE, 1), "set_capability");

    char *xml = NULL;
    size_t len = 0;
    check(impp_presence_to_xml(doc, &xml, &len), "impp_presence_to_xml");
    printf("Serialized (%zu bytes):\n%s\n\n", len, xml);

    impp_presence *parsed = NULL;
    check(impp_presence_parse(xml, len, &parsed), "impp_presence_parse");
    impp_string_free(xml);

    const char *entity = NULL;
    check(impp_presence_entity(parsed, &entity), "impp_presence_entity");
    printf("Parsed back: %s has %zu tuples\n", entity, impp_presence_tuple_count(parsed));
    for (size_t i = 0; i < impp_presence_tuple_count(parsed); i++) {
        const char *id = NULL, *contact = NULL;
        impp_basic basic = IMPP_BASIC_UNSET;
        double priority = -1;
        check(impp_presence_tuple_id(parsed, i, &id), "tuple_id");
        check(impp_presence_tuple_basic(parsed, i, &basic), "tuple_basic");
        check(impp_presence_tuple_contact(parsed, i, &contact, &priority), "tuple_contact");
        printf("  tuple %-6s %-6s contact=%s", id, basic == IMPP_BASIC_OPEN ? "open" : "closed",
               contact ? contact : "(none)");
        if (priority >= 0) printf(" priority=%.3g", priority);
        printf("\n");
    }

    for (size_t i = 0; i < impp_presence_activity_count(parsed); i++) {
        const char *activity = NULL;
        check(impp_presence_activity(parsed, i, &activity, NULL), "activity");
        printf("  activity: %s\n", activity);
    }
    int audio = -1;
    check(impp_presence_tuple_capability(parsed, phone, IMPP_CAP_AUDIO, &audio), "capability");
    printf("  phone supports audio: %s\n", audio == 1 ? "yes" : audio == 0 ? "no" : "not said");

    /* Bad input gets a clear error and changes nothing. */
    const char bad[] = "<presence xmlns='urn:ietf:params:xml:ns:pidf'/>";
    impp_presence *nothing = NULL;
    impp_status status = impp_presence_parse(bad, sizeof bad - 1, &nothing);
    printf("\nParsing a document without entity: %s (%s)\n", impp_status_name(status),
           impp_last_error());

    impp_presence_free(parsed);
    impp_presence_free(doc);
    return status == IMPP_ERR_MALFORMED ? 0 : 1;
}
