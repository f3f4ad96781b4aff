/* Built against an installed libimpp with `cc $(pkg-config --cflags --libs impp)` by the
 * test `installed_library_builds_with_pkg_config` (tests/c_api.rs): the header and library
 * that scripts/install.sh put under its prefix are found and work together. */
#include <stdio.h>
#include <string.h>

#include <impp.h>

static int fail(const char *what, impp_status status) {
    fprintf(stderr, "pkgconfig_smoke: %s: %s: %s\n", what, impp_status_name(status),
            impp_last_error() ? impp_last_error() : "");
    return 1;
}

int main(void) {
    if (impp_abi_version() != IMPP_ABI_VERSION) {
        fprintf(stderr, "pkgconfig_smoke: ABI %u, header %d\n", impp_abi_version(),
                IMPP_ABI_VERSION);
        return 1;
    }

    impp_presence *doc = NULL;
    impp_status s = impp_presence_new("pres:alice@example.test", &doc);
    if (s != IMPP_OK) return fail("impp_presence_new", s);
    s = impp_presence_add_tuple(doc, "phone", IMPP_BASIC_OPEN, NULL);
    if (s != IMPP_OK) return fail("impp_presence_add_tuple", s);

    char *xml = NULL;
    size_t len = 0;
    s = impp_presence_to_xml(doc, &xml, &len);
    if (s != IMPP_OK) return fail("impp_presence_to_xml", s);
    int ok = len == strlen(xml) && strstr(xml, "<basic>open</basic>") != NULL;

    printf("pkgconfig_smoke: libimpp %s, %zu bytes of PIDF%s\n", impp_version(), len,
           ok ? ", ok" : ", WRONG");
    impp_string_free(xml);
    impp_presence_free(doc);
    return ok ? 0 : 1;
}
