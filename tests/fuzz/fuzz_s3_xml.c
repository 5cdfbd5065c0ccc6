/* tests/fuzz/fuzz_s3_xml.c - the S3 XML response parsers (s3/xml.h) on arbitrary bytes.
 * Input: byte 0 selects the parser (Error, ListBucketResult v1/v2, Initiate, Complete,
 * DeleteResult), the rest is the response body. Results are freed; a list page's keys are
 * checked to be NUL-terminated strings. */
#include <stdlib.h>
#include <string.h>

#include "s3/xml.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct err e = {0};
    switch (data[0] % 6) {
    case 0: {
        struct xml_s3_error x;
        xml_parse_error(body, len, &x);
        break;
    }
    case 1:
    case 2: {
        struct s3_list_page pg;
        memset(&pg, 0, sizeof(pg));
        if (xml_parse_list(body, len, data[0] % 6 == 1, &pg, &e) == 0) {
            size_t total = 0;
            for (size_t i = 0; i < pg.n_objects; i++)
                total += strlen(pg.objects[i].key);
            for (size_t i = 0; i < pg.n_prefixes; i++)
                total += strlen(pg.prefixes[i]);
            (void)total;
        }
        s3_list_page_free(&pg);
        break;
    }
    case 3: {
        char *id = NULL;
        xml_parse_initiate(body, len, &id, &e);
        free(id);
        break;
    }
    case 4: {
        char etag[80];
        struct xml_s3_error x;
        xml_parse_complete(body, len, etag, &x, &e);
        break;
    }
    case 5: {
        size_t nd = 0, ne = 0;
        struct xml_s3_error x;
        xml_parse_delete(body, len, &nd, &ne, &x, &e);
        break;
    }
    }
    return 0;
}
