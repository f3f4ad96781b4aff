/* Resource lists through the C API, under ASan/UBSan (and valgrind): a list built with
 * setters (refused values change nothing), set on an engine (which only reads it), read back
 * one at a time and as a snapshot that later changes do not reach, expanded through
 * references, refused when it would break a rule between lists (a cycle, the nesting), and
 * removed; NULL arguments and out-of-range indexes. */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "impp.h"
#include "check.h"

#define SALES "sip:sales-blf@example.test"
#define SUPPORT "sip:support-blf@example.test"
#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define CAROL "sip:carol@example.test"

/* A failure must come with a message. */
#define CHECK_FAILS(call, expected)                                        \
    do {                                                                   \
        CHECK_STATUS(call, expected);                                      \
        CHECK(impp_last_error() != NULL && impp_last_error()[0] != '\0'); \
    } while (0)

/* Whether the last error mentions `text`. */
static bool last_error_has(const char *text) {
    const char *m = impp_last_error();
    return m != NULL && strstr(m, text) != NULL;
}

static impp_engine *start_engine(void) {
    impp_config *config = NULL;
    CHECK_OK(impp_config_new(&config));
    CHECK_OK(impp_config_set_workers(config, 2));
    CHECK_OK(impp_config_use_manual_clock(config));
    CHECK_OK(impp_config_add_domain(config, "example.test"));
    impp_engine *engine = NULL;
    CHECK_OK(impp_engine_new(config, &engine));
    CHECK(engine != NULL);
    return engine;
}

/* The URI of entry `i`. */
static const char *entry_uri(const impp_resource_list *list, size_t i) {
    const char *uri = NULL;
    CHECK_OK(impp_resource_list_entry_uri(list, i, &uri));
    return uri;
}

static void test_building_a_list(void) {
    impp_resource_list *list = NULL;
    CHECK_FAILS(impp_resource_list_new(NULL, &list), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_new("not a uri", &list), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_resource_list_new(SALES, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(list == NULL);
    CHECK_OK(impp_resource_list_new(SALES, &list));

    /* Defaults: no name, no entries, presence. */
    CHECK_STR(impp_resource_list_uri(list), SALES);
    CHECK(impp_resource_list_display_name(list) == NULL);
    CHECK(impp_resource_list_entry_count(list) == 0);
    CHECK(impp_resource_list_package_count(list) == 1);
    const char *package = NULL;
    CHECK_OK(impp_resource_list_package(list, 0, &package));
    CHECK_STR(package, "presence");

    CHECK_OK(impp_resource_list_set_display_name(list, "Sales lamps"));
    CHECK_OK(impp_resource_list_add_entry(list, ALICE, "Alice"));
    CHECK_OK(impp_resource_list_add_reference(list, SUPPORT));
    CHECK_OK(impp_resource_list_add_entry(list, BOB, NULL));
    /* The first package added replaces the default; packages come in a stable order. */
    CHECK_OK(impp_resource_list_add_package(list, "dialog"));
    CHECK(impp_resource_list_package_count(list) == 1);
    CHECK_OK(impp_resource_list_add_package(list, "presence"));
    CHECK_OK(impp_resource_list_add_package(list, "dialog"));
    CHECK(impp_resource_list_package_count(list) == 2);
    CHECK_OK(impp_resource_list_package(list, 0, &package));
    CHECK_STR(package, "presence");
    CHECK_OK(impp_resource_list_package(list, 1, &package));
    CHECK_STR(package, "dialog");

    /* Refused values change nothing. */
    CHECK_FAILS(impp_resource_list_add_entry(list, "pres:alice@example.test", NULL),
                IMPP_ERR_INVALID_ARGUMENT); /* the same resource, by key */
    CHECK(last_error_has("already has the resource"));
    CHECK_FAILS(impp_resource_list_add_reference(list, SUPPORT), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_reference(list, SALES), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(list, SALES, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(list, "sip:bad uri", NULL), IMPP_ERR_INVALID_URI);
    CHECK_FAILS(impp_resource_list_add_entry(list, CAROL, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(list, CAROL, "tab\there"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(list, CAROL, "\xff"), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(NULL, CAROL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_entry(list, NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_package(list, "weather"), IMPP_ERR_UNKNOWN_PACKAGE);
    CHECK_FAILS(impp_resource_list_add_package(list, "message-summary"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_add_package(list, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_set_display_name(list, ""), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(impp_resource_list_entry_count(list) == 3);
    CHECK(impp_resource_list_package_count(list) == 2);
    CHECK_STR(impp_resource_list_display_name(list), "Sales lamps");

    /* Entries, in order. */
    impp_list_entry_kind kind = IMPP_LIST_ENTRY_RESOURCE;
    const char *name = NULL;
    CHECK_STR(entry_uri(list, 0), ALICE);
    CHECK_OK(impp_resource_list_entry_display_name(list, 0, &name));
    CHECK_STR(name, "Alice");
    CHECK_OK(impp_resource_list_entry_kind(list, 1, &kind));
    CHECK(kind == IMPP_LIST_ENTRY_REFERENCE);
    CHECK_STR(entry_uri(list, 1), SUPPORT);
    CHECK_OK(impp_resource_list_entry_display_name(list, 1, &name));
    CHECK(name == NULL);
    CHECK_OK(impp_resource_list_entry_kind(list, 2, &kind));
    CHECK(kind == IMPP_LIST_ENTRY_RESOURCE);

    /* Out of range and NULL: refused, outputs untouched. */
    const char *s = (const char *)(uintptr_t)0x1;
    kind = (impp_list_entry_kind)77;
    CHECK_FAILS(impp_resource_list_entry_uri(list, 3, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_resource_list_entry_display_name(list, 99, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_resource_list_entry_kind(list, 3, &kind), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_resource_list_package(list, 2, &s), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_resource_list_entry_uri(NULL, 0, &s), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_list_entry_uri(list, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(s == (const char *)(uintptr_t)0x1 && kind == (impp_list_entry_kind)77);
    CHECK(impp_resource_list_uri(NULL) == NULL);
    CHECK(impp_resource_list_display_name(NULL) == NULL);
    CHECK(impp_resource_list_entry_count(NULL) == 0);
    CHECK(impp_resource_list_package_count(NULL) == 0);

    /* A copy is independent; removing the display name. */
    impp_resource_list *copy = NULL;
    CHECK_OK(impp_resource_list_copy(list, &copy));
    CHECK_OK(impp_resource_list_set_display_name(copy, NULL));
    CHECK(impp_resource_list_display_name(copy) == NULL);
    CHECK_STR(impp_resource_list_display_name(list), "Sales lamps");
    CHECK(impp_resource_list_entry_count(copy) == 3);
    CHECK_FAILS(impp_resource_list_copy(NULL, &copy), IMPP_ERR_INVALID_ARGUMENT);
    impp_resource_list_free(copy);
    impp_resource_list_free(list);
    impp_resource_list_free(NULL);
}

/* A list of `uri` with one resource and one reference (either may be NULL). */
static impp_resource_list *make(const char *uri, const char *resource, const char *reference) {
    impp_resource_list *list = NULL;
    CHECK_OK(impp_resource_list_new(uri, &list));
    if (resource != NULL) CHECK_OK(impp_resource_list_add_entry(list, resource, NULL));
    if (reference != NULL) CHECK_OK(impp_resource_list_add_reference(list, reference));
    return list;
}

/* Sets a list made by `make` on the engine and frees it. */
static impp_status set(impp_engine *e, const char *uri, const char *resource,
                       const char *reference) {
    impp_resource_list *list = make(uri, resource, reference);
    impp_status s = impp_engine_set_list(e, list);
    impp_resource_list_free(list);
    return s;
}

static void test_lists_on_an_engine(void) {
    impp_engine *e = start_engine();

    /* Sales references support, which does not exist yet. */
    impp_resource_list *sales = make(SALES, ALICE, SUPPORT);
    CHECK_OK(impp_resource_list_add_entry(sales, BOB, "Bob"));
    CHECK_OK(impp_engine_set_list(e, sales));
    /* The engine only read it: it may be changed and freed at once. */
    CHECK_OK(impp_resource_list_add_entry(sales, CAROL, NULL));
    impp_resource_list_free(sales);

    impp_resource_list *got = NULL;
    CHECK_OK(impp_engine_resource_list(e, "pres:sales-blf@example.test", &got));
    CHECK(impp_resource_list_entry_count(got) == 3);
    CHECK_STR(impp_resource_list_uri(got), SALES);
    impp_resource_list_free(got);
    got = (impp_resource_list *)(uintptr_t)0x1;
    CHECK_FAILS(impp_engine_resource_list(e, SUPPORT, &got), IMPP_ERR_NOT_FOUND);
    CHECK(got == (impp_resource_list *)(uintptr_t)0x1);

    /* Expanded: the missing reference is skipped. */
    impp_resource_list *expanded = NULL;
    CHECK_OK(impp_engine_expand_list(e, SALES, &expanded));
    CHECK(impp_resource_list_entry_count(expanded) == 2);
    impp_resource_list_free(expanded);

    CHECK_OK(set(e, SUPPORT, CAROL, NULL));
    CHECK_OK(impp_engine_expand_list(e, SALES, &expanded));
    CHECK(impp_resource_list_entry_count(expanded) == 3);
    CHECK_STR(entry_uri(expanded, 0), ALICE);
    CHECK_STR(entry_uri(expanded, 1), CAROL);
    CHECK_STR(entry_uri(expanded, 2), BOB);
    const char *name = NULL;
    CHECK_OK(impp_resource_list_entry_display_name(expanded, 2, &name));
    CHECK_STR(name, "Bob");
    for (size_t i = 0; i < 3; i++) {
        impp_list_entry_kind kind = IMPP_LIST_ENTRY_REFERENCE;
        CHECK_OK(impp_resource_list_entry_kind(expanded, i, &kind));
        CHECK(kind == IMPP_LIST_ENTRY_RESOURCE);
    }
    impp_resource_list_free(expanded);
    CHECK_FAILS(impp_engine_expand_list(e, "sip:nothing@example.test", &expanded),
                IMPP_ERR_NOT_FOUND);

    /* A cycle is refused with a clear message, and nothing changes. */
    CHECK_FAILS(set(e, SUPPORT, CAROL, SALES), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("is a cycle"));
    /* Another domain's list. */
    CHECK_FAILS(set(e, "sip:team@other.test", ALICE, NULL), IMPP_ERR_FORBIDDEN);
    /* Nine levels of nesting: l1 -> l2 -> ... -> l9. */
    char uri[64], next[64];
    for (int i = 8; i >= 1; i--) {
        snprintf(uri, sizeof uri, "sip:l%d@example.test", i);
        snprintf(next, sizeof next, "sip:l%d@example.test", i + 1);
        CHECK_OK(set(e, uri, NULL, i < 8 ? next : NULL));
    }
    CHECK_FAILS(set(e, "sip:l0@example.test", NULL, "sip:l1@example.test"),
                IMPP_ERR_INVALID_ARGUMENT);
    CHECK(last_error_has("more than 8 levels"));
    CHECK_FAILS(impp_engine_set_list(e, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_engine_set_list(NULL, NULL), IMPP_ERR_INVALID_ARGUMENT);

    /* A snapshot: every list by key, unaffected by later changes. */
    impp_resource_lists *before = NULL;
    CHECK_OK(impp_engine_resource_lists(e, &before));
    CHECK(impp_resource_lists_count(before) == 10);
    const impp_resource_list *first = NULL;
    CHECK_OK(impp_resource_lists_item(before, 0, &first));
    CHECK_STR(impp_resource_list_uri(first), "sip:l1@example.test");
    const impp_resource_list *sales_seen = NULL;
    CHECK_OK(impp_resource_lists_item(before, 8, &sales_seen));
    CHECK_STR(impp_resource_list_uri(sales_seen), SALES);

    bool removed = false;
    CHECK_OK(impp_engine_remove_list(e, SALES, &removed));
    CHECK(removed);
    CHECK_OK(impp_engine_remove_list(e, SALES, &removed));
    CHECK(!removed);
    CHECK_OK(impp_engine_remove_list(e, SUPPORT, NULL));
    CHECK_FAILS(impp_engine_remove_list(e, "no uri", &removed), IMPP_ERR_INVALID_URI);

    CHECK(impp_resource_lists_count(before) == 10);
    CHECK(impp_resource_list_entry_count(sales_seen) == 3);
    /* Kept past the snapshot with a copy. */
    impp_resource_list *kept = NULL;
    CHECK_OK(impp_resource_list_copy(sales_seen, &kept));

    impp_resource_lists *after = NULL;
    CHECK_OK(impp_engine_resource_lists(e, &after));
    CHECK(impp_resource_lists_count(after) == 8);
    const impp_resource_list *item = (const impp_resource_list *)(uintptr_t)0x1;
    CHECK_FAILS(impp_resource_lists_item(after, 8, &item), IMPP_ERR_NOT_FOUND);
    CHECK_FAILS(impp_resource_lists_item(NULL, 0, &item), IMPP_ERR_INVALID_ARGUMENT);
    CHECK_FAILS(impp_resource_lists_item(after, 0, NULL), IMPP_ERR_INVALID_ARGUMENT);
    CHECK(item == (const impp_resource_list *)(uintptr_t)0x1);
    CHECK(impp_resource_lists_count(NULL) == 0);
    impp_resource_lists_free(before);
    impp_resource_lists_free(after);
    impp_resource_lists_free(NULL);

    /* Set back from the copy. */
    CHECK_OK(impp_engine_set_list(e, kept));
    CHECK_OK(impp_engine_expand_list(e, SALES, &expanded));
    CHECK(impp_resource_list_entry_count(expanded) == 2);
    impp_resource_list_free(expanded);
    impp_resource_list_free(kept);
    CHECK_OK(impp_engine_free(e));
}

int main(void) {
    test_building_a_list();
    test_lists_on_an_engine();
    return check_report("lists_test");
}
