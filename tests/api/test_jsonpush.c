/*
 * test_jsonpush.c — the pushed reader against the pull reader over the
 * whole text: every document, fed in two pieces split at every byte, one
 * byte at a time and in random pieces, with blobs made of every array
 * that may be one and of none, gives the same check verdict and offset,
 * the same depth, and through every reader (tensors in both forms, step
 * and run bodies, the stateless batch, parameter documents) the same
 * tensors bit for bit or the same status, code and message.
 */
#include "api.h"
#include "api_codec.h"
#include "testutil.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nn_registry *reg;
static api_limits lim;
static nn_graph *seq_graph, *par_graph;

/* The HTTP layer's depth guard, as it counts over the whole body. */
static int depth_of(const char *s, size_t len)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest)
                deepest = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return deepest;
}

/* ------------------------------------------------- what a reader says */

typedef struct say {
    char *text;
    size_t len, cap;
} say;

static void sayf(say *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sayf(say *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->len + (size_t)n + 1) * 2;
        s->text = realloc(s->text, s->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s->text);
    }
    memcpy(s->text + s->len, line, (size_t)n + 1);
    s->len += (size_t)n;
}

static void say_error(say *s, const api_error *e)
{
    sayf(s, "error %d %s '%s'\n", e->http_status, e->code, e->message);
}

static void say_tensor(say *s, const nn_tensor *t)
{
    char shape[96];
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)t->data;
    for (size_t k = 0; k < nn_tensor_numel(t) * sizeof(float); k++)
        h = (h ^ p[k]) * 1099511628211ull;
    sayf(s, "tensor %s %016llx\n", nn_shape_str(&t->shape, shape, sizeof shape),
         (unsigned long long)h);
}

static void say_read(say *s, const api_json *j, size_t pos, const char *where,
                     const api_limits *l, int trainable)
{
    nn_tensor *t = NULL;
    api_error e;
    if (api_json_tensor(j, pos, where, l, trainable, &t, &e))
        say_error(s, &e);
    else
        say_tensor(s, t);
    nn_tensor_free(t);
}

static void say_bindings(say *s, nn_binding *b, int n)
{
    for (int k = 0; b && k < n; k++)
        if (b[k].tensor) {
            sayf(s, "%s: ", b[k].name);
            say_tensor(s, b[k].tensor);
        }
}

/* Everything the readers make of the document j. */
static void say_all(say *s, const api_json *j)
{
    api_limits small = lim;
    small.max_tensor_elems = 4;
    int kind = api_json_kind(j, 0);
    sayf(s, "kind %d\n", kind);
    for (int t = 0; t < 2; t++) {
        say_read(s, j, 0, "top", &lim, t);
        say_read(s, j, 0, "top", &small, t);
    }
    if (kind != '{')
        return;
    sayf(s, "batch %d\n", api_json_stateless_batch(j, 0));
    size_t it = 0, value;
    char key[64];
    int cut, rc;
    while ((rc = api_json_member(j, 0, &it, key, sizeof key, &cut,
                                 &value)) == 1) {
        sayf(s, "member %s kind %d\n", key, api_json_kind(j, value));
        say_read(s, j, value, key, &lim, 1);
        say_read(s, j, value, key, &small, 0);
        if (api_json_kind(j, value) == '{')
            sayf(s, "batch %d\n", api_json_stateless_batch(j, value));
    }
    sayf(s, "members %d\n", rc);

    api_step_body body;
    api_error e;
    if (api_read_step_body(j, 1, &body, &e)) {
        say_error(s, &e);
    } else {
        nn_binding *b = NULL;
        int steps = 0;
        if (api_json_sequence_inputs(j, body.inputs, seq_graph, 2, &lim, &b,
                                     &steps, &e))
            say_error(s, &e);
        else
            sayf(s, "steps %d\n", steps);
        say_bindings(s, b, nn_graph_entry_count(seq_graph));
        api_bindings_free(b, nn_graph_entry_count(seq_graph));
        if (body.forced != (size_t)-1) {
            int n = 0;
            b = NULL;
            if (api_json_node_sequences(j, body.forced, seq_graph, 2, 3,
                                        "forced", &lim, &b, &n, &e))
                say_error(s, &e);
            say_bindings(s, b, n);
            api_bindings_free(b, n);
        }
    }
    api_params_import *imp = NULL;
    if (api_params_read(par_graph, j, &imp, &e))
        say_error(s, &e);
    else
        sayf(s, "params ok\n");
    api_params_import_free(imp);
}

/* ---------------------------------------------------------- pushing */

/* The verdicts on text, whole. */
static char *reference(const char *text, size_t len)
{
    say s = {0};
    size_t at = 0;
    int trailing = 0;
    int rc = api_json_check(text, len, &at, &trailing);
    sayf(&s, "depth %d check %d", depth_of(text, len), rc);
    if (rc)
        sayf(&s, " at %zu trailing %d\n", at, trailing);
    else
        sayf(&s, "\n");
    if (rc == 0) {
        api_json j = {text, len, NULL};
        say_all(&s, &j);
    }
    return s.text;
}

static long blobs_seen;

/* The same, fed in pieces: cuts[0..n) are the ends of all pieces but the
 * last. */
static char *pushed(const char *text, size_t len, size_t blob_min,
                    const size_t *cuts, int n)
{
    api_jsondoc *d = api_jsondoc_new(blob_min, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    size_t from = 0;
    for (int k = 0; k <= n; k++) {
        size_t to = k < n ? cuts[k] : len;
        /* Each piece in its own buffer: ASan sees a read past it. */
        char *piece = malloc(to - from + 1);
        memcpy(piece, text + from, to - from);
        CU_ASSERT_EQUAL(api_jsondoc_feed(d, piece, to - from), 0);
        free(piece);
        from = to;
    }
    api_jsondoc_finish(d);
    say s = {0};
    size_t at = 0;
    int trailing = 0;
    int rc = api_jsondoc_check(d, &at, &trailing);
    sayf(&s, "depth %d check %d", api_jsondoc_depth(d), rc);
    if (rc)
        sayf(&s, " at %zu trailing %d\n", at, trailing);
    else
        sayf(&s, "\n");
    if (rc == 0) {
        api_json j = api_jsondoc_json(d);
        for (size_t k = 0; k < j.len; k++)
            blobs_seen += j.s[k] == '\001';
        say_all(&s, &j);
    }
    api_jsondoc_free(d);
    return s.text;
}

static long compared, differed;

static void compare(const char *text, size_t len, const char *want,
                    size_t blob_min, const size_t *cuts, int n)
{
    char *got = pushed(text, len, blob_min, cuts, n);
    compared++;
    if (strcmp(got, want) != 0) {
        if (differed++ < 5) {
            fprintf(stderr, "\n'%.*s' (blob_min %zu, %d cuts, first %zu):\n"
                    "whole:\n%s\npushed:\n%s\n", (int)len, text, blob_min, n,
                    n ? cuts[0] : 0, want, got);
        }
    }
    CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
}

static unsigned long long rng = 88172645463325252ull;
static unsigned next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/* Every way of feeding text this test has. */
static void every_feeding(const char *text)
{
    size_t len = strlen(text);
    char *want = reference(text, len);
    static const size_t mins[] = {0, 12, API_JSONDOC_BLOB_MIN};
    for (size_t m = 0; m < sizeof mins / sizeof *mins; m++) {
        compare(text, len, want, mins[m], NULL, 0);
        for (size_t cut = 0; cut <= len; cut++)
            compare(text, len, want, mins[m], &cut, 1);
        size_t *ones = malloc((len + 1) * sizeof *ones);
        for (size_t k = 0; k < len; k++)
            ones[k] = k + 1;
        compare(text, len, want, mins[m], ones, len ? (int)len - 1 : 0);
        for (int r = 0; r < 4; r++) {
            int n = 0;
            for (size_t at = 0; at < len; at += 1 + next_random() % 7)
                ones[n++] = at;
            compare(text, len, want, mins[m], ones, n);
        }
        free(ones);
    }
    free(want);
}

/* ------------------------------------------------------------ tests */

static const char *const documents[] = {
    /* tensors, both forms, as test_codec's reader cases */
    "[1, 2, 3]", "[[1, 2, 3], [4, 5, 6]]", "[[[1], [2]], [[3], [4]]]",
    "[0.1, -0.25, 1e-3, 3.5E2]", "{\"shape\": [2, 2], \"data\": [1,2,3,4]}",
    "[[1, 2], [3]]", "[[1, 2], 3]", "[[1, 2], [3, [4]]]", "[1, [2]]",
    "[[1, \"2\"]]", "[[1, null]]", "[]", "[[]]", "[[1], []]", "3", "\"x\"",
    "[1e39]", "[[1e999]]", "[-1e39]", "[1e-50]", "[[[[[[[[[1]]]]]]]]]",
    "[[[[[[[[1]]]]]]]]", "[{}]", "[[{}]]", "[[true]]", "[[1,2],[3,4],[5,6]]",
    /* more than NN_MAX_DIMS numbers: flat arrays that may be blobs */
    "[1,2,3,4,5,6,7,8,9,10]", "[1,2,3,4,5,6,7,8,9,1e40]",
    "[1,2,3,4,5,6,7,8,9,\"x\"]", "[1,2,3,4,5,6,7,8,9,[10]]",
    "[1,2,3,4,5,6,7,8,9,{\"a\": [1,2]}]", "[1,2,3,4,5,6,7,8,9,10,true]",
    "[[1,2,3,4,5,6,7,8,9,10],[1,2,3,4,5,6,7,8,9,10]]",
    "[[1,2,3,4,5,6,7,8,9,10],[1,2,3,4,5,6,7,8,9,10,11]]",
    "[[1,2,3,4,5,6,7,8,9,10],[1,2,3,4,5,6,7,8,9]]",
    "[[[1,2],[3,4]],[[5,6],[7,8]],[[9,10],[11]]]",
    "[[[1,2],[3,4]],[[5,6],[7,8]],[[9,10],[11,[12]]]]",
    "[[1],[2],[3],[4],[5],[6],[7],[8],[9],[10]]", "[[1],[2],[],[4]]",
    "[[[[[[[[[1,2,3,4,5,6,7,8,9]]]]]]]]]",
    /* tensor objects with a blob for data or for shape */
    "{\"shape\": [10], \"data\": [1,2,3,4,5,6,7,8,9,10]}",
    "{\"shape\": [9], \"data\": [1,2,3,4,5,6,7,8,9,10]}",
    "{\"shape\": [11], \"data\": [1,2,3,4,5,6,7,8,9,10]}",
    "{\"shape\": [2, 5], \"data\": [1,2,3,4,5,6,7,8,9,1e39]}",
    "{\"shape\": [3], \"data\": [1,2,3,4,5,6,7,8,9,1e39]}",
    "{\"shape\": [10], \"data\": [1,2,3,\"4\",5,6,7,8,9,10]}",
    "{\"shape\": [2], \"data\": [1,2,[3],4,5,6,7,8,9,10]}",
    "{\"shape\": [1,1,1,1,1,1,1,1,1,1], \"data\": [1]}",
    "{\"shape\": [[1],[2]], \"data\": [1,2]}",
    "{\"data\": [1,2,3,4,5,6,7,8,9,10], \"shape\": [10], \"trainable\": true}",
    "{\"shape\": [10], \"data\": [1,2,3,4,5,6,7,8,9,10], \"x\": [1,2,3,4,5,6,"
    "7,8,9,10]}",
    /* step and run bodies for Input x (2) and Input y (1) */
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]], "
    "\"y\": [[[1],[2],[3]],[[4],[5],[6]]]}}",
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]], "
    "\"y\": [[[1],[2],[3]],[[4],[5],[6]]]}, \"train\": true, \"forced\": "
    "{\"o\": [[[1,2,3],[4,5,6],[7,8,9]],[[1,2,3],[4,5,6],[7,8,9]]]}}",
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12,13]]], "
    "\"y\": [[[1],[2],[3]],[[4],[5],[6]]]}}",
    "{\"inputs\": {\"y\": [[[1],[2],[3]],[[4],[5],[6]]], \"x\": {\"shape\": "
    "[2,3,2], \"data\": [1,2,3,4,5,6,7,8,9,10,11,12]}}}",
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]]], \"y\": [[[1],[2],[3]]]}}",
    "{\"inputs\": {\"x\": {\"shape\": [12,1,1,1,1,1,1,1,1], \"data\": []}}}",
    "{\"inputs\": {\"x\": {\"shape\": [3,4,5,6,7,8,9,10,11,12], \"data\": []}}}",
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]]}, "
    "\"zz\": 1}",
    "{\"inputs\": {\"x\": [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]], "
    "\"q\": [1,2,3,4,5,6,7,8,9,10]}}",
    "{\"inputs\": [[1,2,3,4,5,6,7,8,9,10]]}",
    "{\"train\": [1,2,3,4,5,6,7,8,9,10], \"inputs\": {}}",
    /* parameter documents for Dense d (3 -> 4) */
    "{\"nodes\": {\"d\": {\"W\": {\"shape\": [3, 4], \"data\": [1,2,3,4,5,6,"
    "7,8,9,10,11,12], \"trainable\": true}, \"b\": [1,2,3,4]}}}",
    "{\"nodes\": {\"d\": {\"W\": [[1,2,3,4],[5,6,7,8],[9,10,11,12]]}}}",
    "{\"nodes\": {\"d\": {\"W\": [[1,2,3,4],[5,6,7,8],[9,10,11]]}}}",
    "{\"nodes\": {\"d\": {\"W\": {\"shape\": [4, 3], \"data\": [1,2,3,4,5,6,"
    "7,8,9,10,11,12]}}}}",
    "{\"nodes\": {\"d\": {\"b\": [1, 2, 3, \"4\"], \"W\": [1,2,3,4,5,6,7,8,9,"
    "10,11,12]}}}",
    "{\"nodes\": {\"zz\": {\"W\": [1,2,3,4,5,6,7,8,9,10,11,12]}}}",
    /* Sparse forms: index arrays stay text (exact integers), values may be
     * blobs, and both read as the text does. */
    "{\"nodes\": {\"d\": {\"W\": {\"format\": \"csc\", \"shape\": [3, 4], "
    "\"indptr\": [0,3,6,9,12], \"indices\": [0,1,2,0,1,2,0,1,2,0,1,2], "
    "\"data\": [1,2,3,4,5,6,7,8,9,10,11,12]}}}}",
    "{\"nodes\": {\"d\": {\"W\": {\"format\": \"coo\", \"shape\": [3, 4], "
    "\"row\": [0,1,2,0,1,2,0,1,2,0,1,2], \"col\": [0,0,0,1,1,1,2,2,2,3,3,3], "
    "\"data\": [1,2,3,4,5,6,7,8,9,10,11,1e99]}}}}",
    "{\"nodes\": {\"d\": {\"W\": {\"format\": \"csc\", \"shape\": [3, 4], "
    "\"indptr\": [0,3,6,9,12], \"indices\": [0,1,2,0,1,2,0,1,2,0,1,2], "
    "\"data\": [1,2,3,4,5,6,7,8,9,10,11,\"x\"]}}}}",
    "{\"nodes\": [1,2,3,4,5,6,7,8,9,10]}",
    /* a wrong "datatype" is described alike, blob or text */
    "{\"datatype\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "
    "\"data\": [1]}",
    "{\"datatype\": [1,2], \"data\": [1]}", "{\"datatype\": {}, \"data\": [1]}",
    "{\"datatype\": \"FP16\", \"data\": [1]}",
    "{\"datatype\": 16, \"shape\": [1], \"data\": [1]}",
    /* white space, escapes and names around blobs */
    " {\n\t\"x\\u0041\" : [ 1 ,\r\n 2e-3,3 , 4, 5,6,7,8,9,  -0.0 ] ,\"\\ud83d"
    "\\ude00\": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]  } \n",
    "{\"a\": [[1,2],[3,4]], \"b\": [[1,2],[3]], \"c\": [[1,2],[3,4,5]]}",
    "[{\"a\": [1,2,3,4,5,6,7,8,9,10]}, {\"b\": [[1,2],[3]]}]",
    /* malformed, at every kind of place */
    "", " ", "[1,]", "[1 2]", "{\"a\" 1}", "{a: 1}", "[01]", "[1.]",
    "[tru]", "\"\\x\"", "\"\\udc00\"", "\"\\ud800x\"", "\"a\nb\"", "{} x",
    "[1] [2]", "\"abc", "[NaN]", "[-]", "[1e]", "[1e+]", "[1.5.3]", "[1-2]",
    "[1,2,3,4,5,6,7,8,9,10", "[1,2,3,4,5,6,7,8,9,10,]",
    "{\"a\": [1,2,3,4,5,6,7,8,9,10]} 1", "{\"a\": [1,2,3,4,5,6,7,8,9,10]",
    "{\"a\": [1,2,3,4,5,6,7,8,9,1x]}", "{\"a\": [[1,2,3,4,5,6,7,8,9,\"\\q\"]]}",
    "\"\\u12", "\"\\", "\"\\ud800\\u", "\"\\ud800\\udbff\"", "tr", "nul",
    "falsey", "12", "-0", "1e5", "{\"a\":}", "{\"a\":1,}", "{,}", "[,1]",
    "]", "{\"a\" : [1, 2] ] }",
};

static void test_every_feeding(void)
{
    for (size_t k = 0; k < sizeof documents / sizeof *documents; k++)
        every_feeding(documents[k]);
    fprintf(stderr, "%ld feedings compared, %ld blobs read\n", compared,
            blobs_seen);
    CU_ASSERT(blobs_seen > 1000); /* the blobs were there to be read */
    CU_ASSERT_EQUAL(differed, 0);
}

static void test_depth(void)
{
    /* 64 levels are fine, 65 are not; the guard counts past errors. */
    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    every_feeding(deep + 1);
    every_feeding(deep);
    char late[300];
    snprintf(late, sizeof late, "x%s", deep);
    every_feeding(late);
    CU_ASSERT_EQUAL(differed, 0);
}

/* Random documents of numeric arrays and names, and the same with one
 * byte changed, inserted or taken out. */
static void put_value(say *s, int depth)
{
    unsigned r = next_random() % 10;
    if (depth > 3 || r < 4) {
        static const char *const nums[] = {"0", "-1", "2.5", "1e3", "-0.0",
                                           "1e39", "7", "3.25e-2", "\"s\"",
                                           "null"};
        sayf(s, "%s", nums[next_random() % (r < 2 ? 10 : 8)]);
        return;
    }
    if (r < 8) {
        int n = (int)(next_random() % 12);
        int inner = next_random() % 2;
        sayf(s, "[");
        for (int k = 0; k < n; k++) {
            sayf(s, "%s", k ? (next_random() % 4 ? "," : " , ") : "");
            if (inner)
                put_value(s, depth + 1);
            else
                sayf(s, "%u", next_random() % 100);
        }
        sayf(s, "]");
        return;
    }
    int n = (int)(next_random() % 4);
    sayf(s, "{");
    for (int k = 0; k < n; k++) {
        static const char *const keys[] = {"shape", "data", "x", "inputs",
                                           "nodes", "d", "W", "b", "y"};
        sayf(s, "%s\"%s\": ", k ? ", " : "", keys[next_random() % 9]);
        put_value(s, depth + 1);
    }
    sayf(s, "}");
}

static void test_random_documents(void)
{
    for (int k = 0; k < 300; k++) {
        say s = {0};
        sayf(&s, "{\"inputs\": ");
        put_value(&s, 0);
        sayf(&s, ", \"x\": ");
        put_value(&s, 1);
        sayf(&s, "}");
        every_feeding(s.text);
        size_t at = next_random() % s.len;
        switch (next_random() % 3) {
        case 0:
            s.text[at] = " ,[]{}\"1e-x:\\"[next_random() % 13];
            break;
        case 1:
            memmove(s.text + at, s.text + at + 1, s.len - at);
            break;
        default:
            s.text[at] = '\0';
            break;
        }
        every_feeding(s.text);
        free(s.text);
    }
    CU_ASSERT_EQUAL(differed, 0);
}

/* The budget is asked before the document grows, and refusing stops it. */
static size_t granted, limit;
static int ask(void *cls, size_t bytes)
{
    (void)cls;
    if (granted + bytes > limit)
        return -1;
    granted += bytes;
    return 0;
}

static void test_reserve(void)
{
    say s = {0};
    sayf(&s, "{\"nodes\": {\"d\": {\"W\": [");
    for (int k = 0; k < 20000; k++)
        sayf(&s, "%s%d.125", k ? "," : "", k);
    sayf(&s, "]}}}");
    granted = 0;
    limit = (size_t)-1;
    api_jsondoc *d = api_jsondoc_new(API_JSONDOC_BLOB_MIN, ask, NULL);
    CU_ASSERT_EQUAL(api_jsondoc_feed(d, s.text, s.len), 0);
    api_jsondoc_finish(d);
    size_t at;
    int trailing;
    CU_ASSERT_EQUAL(api_jsondoc_check(d, &at, &trailing), 0);
    CU_ASSERT_EQUAL(api_jsondoc_charged(d), granted);
    fprintf(stderr, "%zu bytes of text held in %zu bytes\n", s.len, granted);
    /* The floats, not the text: 20,000 floats in well under the text's
     * 180 kB. */
    CU_ASSERT(granted >= 20000 * sizeof(float));
    CU_ASSERT(granted < 2 * 32768 * sizeof(float) + 4096);
    CU_ASSERT(granted < s.len * 3 / 4);
    api_json j = api_jsondoc_json(d);
    CU_ASSERT(j.len < 64);
    size_t w = api_json_find(&j, api_json_find(&j, api_json_find(&j, 0,
                                                                 "nodes"),
                                               "d"),
                             "W");
    nn_tensor *t;
    api_error e;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&j, w, "w", &lim, 0, &t, &e), 0);
    CU_ASSERT_EQUAL(nn_tensor_numel(t), 20000);
    CU_ASSERT_EQUAL(t->data[19999], 19999.125f);
    nn_tensor_free(t);
    api_jsondoc_free(d);

    /* Refused halfway: feeding fails, and nothing more is asked. */
    granted = 0;
    limit = 40000;
    d = api_jsondoc_new(API_JSONDOC_BLOB_MIN, ask, NULL);
    CU_ASSERT_EQUAL(api_jsondoc_feed(d, s.text, s.len), -1);
    CU_ASSERT(granted <= limit);
    CU_ASSERT_EQUAL(api_jsondoc_feed(d, "1", 1), -1);
    api_jsondoc_free(d);
    free(s.text);
}

static nn_graph *graph_of(const char *text)
{
    cJSON *def = cJSON_Parse(text);
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    return g;
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    lim = api_default_limits();
    seq_graph = graph_of(
        "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 2}, "
        "{\"name\": \"y\", \"type\": \"Input\", \"shape\": 1}, {\"name\": "
        "\"o\", \"type\": \"Dense\", \"num_unit\": 3}], \"edges\": "
        "[\"{x, y} >> o\"]}");
    par_graph = graph_of(
        "{\"nodes\": [{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3}, "
        "{\"name\": \"d\", \"type\": \"Dense\", \"num_unit\": 4}], "
        "\"edges\": [\"x >> d\"]}");
    if (!seq_graph || !par_graph)
        return 2;
    static const tu_test tests[] = {
        {"every feeding reads as the whole text", test_every_feeding},
        {"the depth guard and the depth limit", test_depth},
        {"random documents, whole and broken", test_random_documents},
        {"memory is asked for before it is used", test_reserve},
        {NULL, NULL},
    };
    int rc = tu_run_suite("jsonpush", tests);
    nn_graph_free(seq_graph);
    nn_graph_free(par_graph);
    nn_registry_free(reg);
    return rc;
}
