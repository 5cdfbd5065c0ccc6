/* tests/unit/test_s3_xml.c - the expat parsers and body builders of s3/xml.c on S3-shaped
 * documents (AWS and Swift flavours), malformed input and escaping. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "s3/xml.h"

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static int parse_list(const char *doc, bool v1, struct s3_list_page *p, struct err *e)
{
    return xml_parse_list(doc, strlen(doc), v1, p, e);
}

Test(s3_xml, error_document)
{
    const char *doc = "<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>SignatureDoesNotMatch"
                      "</Code><Message>The request signature we calculated does not match"
                      "</Message><CanonicalRequest>GET\n/\n</CanonicalRequest>"
                      "<RequestId>tx1</RequestId></Error>";
    struct xml_s3_error e;
    cr_assert_eq(xml_parse_error(doc, strlen(doc), &e), 0);
    cr_expect_str_eq(e.code, "SignatureDoesNotMatch");
    cr_expect_str_eq(e.message, "The request signature we calculated does not match");
}

Test(s3_xml, error_rejects_other_documents)
{
    struct xml_s3_error e;
    const char *html = "<html><body>502 Bad Gateway</body></html>";
    cr_expect_eq(xml_parse_error(html, strlen(html), &e), EBADMSG);
    cr_expect_eq(xml_parse_error("", 0, &e), EBADMSG);
    cr_expect_eq(xml_parse_error("<Error><Code>x", 14, &e), EBADMSG);
}

Test(s3_xml, list_v2_with_prefixes_and_token)
{
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<ListBucketResult " NS "><Name>b</Name><Prefix>db/</Prefix><KeyCount>3</KeyCount>"
        "<MaxKeys>2</MaxKeys><Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>tok+/=</NextContinuationToken>"
        "<Contents><Key>db/a &amp; b&lt;1&gt;</Key><LastModified>2015-08-30T12:36:00.000Z"
        "</LastModified><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag>"
        "<Size>123456789012</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>db/\xc3\xa9</Key><ETag>\"abc-2\"</ETag><Size>0</Size></Contents>"
        "<CommonPrefixes><Prefix>db/gen1/</Prefix></CommonPrefixes>"
        "</ListBucketResult>";
    struct s3_list_page p;
    struct err e = {0};
    cr_assert_eq(parse_list(doc, false, &p, &e), 0, "%s", e.msg);
    cr_assert_eq(p.n_objects, 2);
    cr_expect_str_eq(p.objects[0].key, "db/a & b<1>");
    cr_expect_eq(p.objects[0].size, 123456789012ull);
    cr_expect_str_eq(p.objects[0].etag, "0123456789abcdef0123456789abcdef");
    cr_expect_eq(p.objects[0].last_modified, 1440938160);
    cr_expect_str_eq(p.objects[1].key, "db/\xc3\xa9");
    cr_expect_str_eq(p.objects[1].etag, "abc-2");
    cr_assert_eq(p.n_prefixes, 1);
    cr_expect_str_eq(p.prefixes[0], "db/gen1/");
    cr_expect(p.truncated);
    cr_expect_str_eq(p.next, "tok+/=");
    s3_list_page_free(&p);
    cr_expect_null(p.objects);
}

Test(s3_xml, list_v1_next_marker_and_fallback)
{
    const char *with_marker =
        "<ListBucketResult " NS "><IsTruncated>true</IsTruncated><NextMarker>m/</NextMarker>"
        "<Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
    const char *without = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                          "<Contents><Key>a</Key><Size>1</Size></Contents>"
                          "<CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes>"
                          "<Contents><Key>ab</Key><Size>1</Size></Contents></ListBucketResult>";
    const char *done = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                       "<NextMarker>ignored</NextMarker></ListBucketResult>";
    struct s3_list_page p;
    struct err e = {0};
    cr_assert_eq(parse_list(with_marker, true, &p, &e), 0, "%s", e.msg);
    cr_expect_str_eq(p.next, "m/");
    s3_list_page_free(&p);
    cr_assert_eq(parse_list(without, true, &p, &e), 0, "%s", e.msg);
    cr_expect_str_eq(p.next, "b/"); /* greatest of last key "ab" and last prefix "b/" */
    s3_list_page_free(&p);
    cr_assert_eq(parse_list(done, true, &p, &e), 0, "%s", e.msg);
    cr_expect_not(p.truncated);
    cr_expect_null(p.next);
    cr_expect_eq(p.n_objects, 0);
    s3_list_page_free(&p);
}

Test(s3_xml, list_rejects_bad_documents)
{
    struct s3_list_page p;
    struct err e = {0};
    cr_expect_eq(parse_list("<Error><Code>x</Code></Error>", false, &p, &e), EBADMSG);
    cr_expect(strstr(e.msg, "xml") != NULL, "%s", e.msg);
    err_clear(&e);
    cr_expect_eq(parse_list("<ListBucketResult><Contents><Key>a</Key>", false, &p, &e), EBADMSG);
    err_clear(&e);
    cr_expect_eq(parse_list("<ListBucketResult><IsTruncated>true</IsTruncated>"
                            "</ListBucketResult>",
                            false, &p, &e),
                 EBADMSG, "truncated v2 page without a token must fail");
    err_clear(&e);
    cr_expect_eq(parse_list("<ListBucketResult><Contents><Size>1</Size></Contents>"
                            "</ListBucketResult>",
                            false, &p, &e),
                 EBADMSG, "object without a key");
    cr_expect_null(p.objects);
}

Test(s3_xml, text_over_cap_is_emsgsize)
{
    size_t n = XML_MAX_TEXT + 10;
    char *doc = malloc(n + 100);
    strcpy(doc, "<ListBucketResult><Contents><Key>");
    size_t off = strlen(doc);
    memset(doc + off, 'a', n);
    strcpy(doc + off + n, "</Key></Contents></ListBucketResult>");
    struct s3_list_page p;
    struct err e = {0};
    cr_expect_eq(parse_list(doc, false, &p, &e), EMSGSIZE, "%s", e.msg);
    free(doc);
}

Test(s3_xml, initiate_and_complete)
{
    const char *init = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult " NS
                       "><Bucket>b</Bucket><Key>k</Key><UploadId>ZjQ5&amp;x</UploadId>"
                       "</InitiateMultipartUploadResult>";
    char *id = NULL;
    struct err e = {0};
    cr_assert_eq(xml_parse_initiate(init, strlen(init), &id, &e), 0, "%s", e.msg);
    cr_expect_str_eq(id, "ZjQ5&x");
    free(id);
    cr_expect_eq(xml_parse_initiate("<InitiateMultipartUploadResult/>", 32, &id, &e), EBADMSG);

    const char *ok = "<CompleteMultipartUploadResult " NS "><Location>l</Location>"
                     "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
                     "</CompleteMultipartUploadResult>";
    const char *err200 = "<Error><Code>InternalError</Code><Message>try again</Message></Error>";
    char etag[80];
    struct xml_s3_error xe;
    err_clear(&e);
    cr_assert_eq(xml_parse_complete(ok, strlen(ok), etag, &xe, &e), 0, "%s", e.msg);
    cr_expect_str_eq(etag, "3858f62230ac3c915f300c664312c11f-9");
    cr_expect_eq(xml_parse_complete(err200, strlen(err200), etag, &xe, &e), EAGAIN);
    cr_expect_str_eq(xe.code, "InternalError");
}

Test(s3_xml, delete_result)
{
    const char *doc = "<DeleteResult " NS "><Deleted><Key>a</Key></Deleted>"
                      "<Error><Key>b&lt;</Key><Code>AccessDenied</Code><Message>no</Message>"
                      "</Error><Error><Key>c</Key><Code>InternalError</Code></Error>"
                      "</DeleteResult>";
    size_t n_del = 0, n_err = 0;
    struct xml_s3_error first;
    struct err e = {0};
    cr_assert_eq(xml_parse_delete(doc, strlen(doc), &n_del, &n_err, &first, &e), 0, "%s", e.msg);
    cr_expect_eq(n_del, 1);
    cr_expect_eq(n_err, 2);
    cr_expect_str_eq(first.key, "b<");
    cr_expect_str_eq(first.code, "AccessDenied");
    cr_expect_str_eq(first.message, "no");
}

Test(s3_xml, build_bodies_escape_and_round_trip)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    const char *keys[] = {"plain", "a&b<c>\"d'", "\xc3\xa9/x"};
    cr_assert_eq(xml_build_delete(&b, keys, 3), 0);
    cr_expect(strstr((char *)b.data, "<Key>a&amp;b&lt;c&gt;&quot;d&apos;</Key>") != NULL, "%s",
              (char *)b.data);
    cr_expect(strstr((char *)b.data, "<Quiet>true</Quiet>") != NULL);
    buf_reset(&b);
    char etags[2][80] = {"aa", "bb"};
    cr_assert_eq(xml_build_complete(&b, etags, 2), 0);
    cr_expect_str_eq((char *)b.data,
                     "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"aa\""
                     "</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"bb\"</ETag></Part>"
                     "</CompleteMultipartUpload>");
    buf_free(&b);
}

Test(s3_xml, etag_and_time_helpers)
{
    char out[80];
    xml_unquote_etag("\"abc\"", 5, out);
    cr_expect_str_eq(out, "abc");
    xml_unquote_etag("abc", 3, out);
    cr_expect_str_eq(out, "abc");
    cr_expect_eq(xml_parse_time("1970-01-02T00:00:00Z"), 86400);
    cr_expect_eq(xml_parse_time("garbage"), 0);
}
