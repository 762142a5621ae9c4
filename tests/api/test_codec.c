/*
 * test_codec.c — the tensor codec against references it does not share
 * code with: float text against strtof and printf on millions of values
 * (a stride over every bit pattern, random ones, every power of two, the
 * subnormal and range boundaries, exact halfway decimals); the pull
 * reader against the cJSON readers it replaces; the chunked encoder
 * against the one-piece writer and cJSON's printing.
 */
#include "api.h"
#include "api_codec.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanitizer builds run every unit test; a smaller sweep keeps them quick
 * (the same values, fewer of them). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SWEEP_SCALE 16
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
#define SWEEP_SCALE 16
#endif
#endif
#ifndef SWEEP_SCALE
#define SWEEP_SCALE 1
#endif

static nn_registry *reg;
static api_limits lim;
static long failures_shown;

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* Digits from the first nonzero one to the last nonzero one. */
static int significant_digits(const char *s)
{
    int n = 0, leading = 1, zeros = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (leading && *s == '0')
            continue;
        leading = 0;
        n++;
        zeros = *s == '0' ? zeros + 1 : 0;
    }
    return n - zeros;
}

/* Checks one finite float: its text reads back (strtof) to the same
 * bits, our reader agrees, and with `strict` that the text is shortest
 * (printf's correctly rounded one digit fewer does not read back) and the
 * nearest of its length (printf's correctly rounded same length, when it
 * reads back, is the same number). Returns 0 when all hold. */
static int check_float(float v, int strict)
{
    char buf[API_FLOAT_MAX + 1];
    size_t n = api_write_float(v, buf);
    buf[n] = '\0';
    int bad = 0;
    float back = strtof(buf, NULL);
    if (bits_of(back) != bits_of(v))
        bad = 1;
    float ours;
    if (api_read_float(buf, n, &ours) != n || bits_of(ours) != bits_of(v))
        bad = 2;
    if (!bad && strict && v != 0) {
        int digits = significant_digits(buf);
        char ref[64];
        if (digits > 1) {
            snprintf(ref, sizeof ref, "%.*e", digits - 2, (double)v);
            if (strtof(ref, NULL) == v)
                bad = 3;
        }
        snprintf(ref, sizeof ref, "%.*e", digits - 1, (double)v);
        if (!bad && strtof(ref, NULL) == v && strtod(ref, NULL) !=
                                                  strtod(buf, NULL))
            bad = 4;
    }
    if (bad && failures_shown++ < 10)
        fprintf(stderr, "float %08x (%.9g) -> '%s': check %d fails\n",
                bits_of(v), (double)v, buf, bad);
    return bad;
}

static void test_float_sweep(void)
{
    /* An odd stride visits every exponent and mantissa pattern class. */
    uint64_t stride = 1021 * SWEEP_SCALE;
    long bad = 0, count = 0;
    for (uint64_t b = 0; b < ((uint64_t)1 << 32); b += stride) {
        float v = from_bits((uint32_t)b);
        if (!isfinite(v))
            continue;
        bad += check_float(v, (count++ & 15) == 0) != 0;
    }
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    for (long k = 0; k < 1000000 / SWEEP_SCALE; k++) {
        float v = from_bits((uint32_t)nn_rng_u64(&rng));
        if (isfinite(v))
            bad += check_float(v, (k & 7) == 0) != 0;
    }
    CU_ASSERT(count > 4000000 / SWEEP_SCALE);
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_float_boundaries(void)
{
    long bad = 0;
    /* Every power of two, normal and subnormal, both signs, and its
     * neighbours: the asymmetric intervals of the algorithm. */
    for (int e = -149; e <= 127; e++)
        for (int sign = 0; sign < 2; sign++) {
            float p = ldexpf(sign ? -1.0f : 1.0f, e);
            bad += check_float(p, 1) != 0;
            bad += check_float(nextafterf(p, 0), 1) != 0;
            bad += check_float(nextafterf(p, sign ? -INFINITY : INFINITY),
                               1) != 0;
        }
    const float special[] = {FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                             FLT_TRUE_MIN, -FLT_TRUE_MIN,
                             nextafterf(FLT_MIN, 0), 16777216.0f,
                             16777217.0f, 0.1f, 0.2f, 0.3f, 1e-10f, 1e10f,
                             3.14159274f, 2.71828175f, 1e38f, 1e-38f,
                             0.333333343f, 123456789.0f, 0.0f, -0.0f};
    for (size_t k = 0; k < sizeof special / sizeof *special; k++)
        bad += check_float(special[k], 1) != 0;
    /* Every subnormal below 2^-140 and around the normal boundary. */
    for (uint32_t b = 1; b < (1u << 12); b++)
        bad += check_float(from_bits(b), 1) != 0;
    for (uint32_t b = 0x7ff000u; b < 0x801000u; b++)
        bad += check_float(from_bits(b), 0) != 0;
    CU_ASSERT_EQUAL(bad, 0);
}

/* The text is %g's layout with the fewest digits: what the former
 * %.6g..%.9g search printed for everything but a few subnormals. */
static void test_float_text(void)
{
    struct {
        float v;
        const char *text;
    } cases[] = {
        {1.0f, "1"},          {-1.0f, "-1"},       {0.0f, "0"},
        {-0.0f, "-0"},        {0.1f, "0.1"},       {1.5f, "1.5"},
        {1e-7f, "1e-07"},     {1e7f, "1e+07"},     {123456.0f, "123456"},
        {1234567.0f, "1234567"}, {0.0001f, "0.0001"}, {1.5e10f, "1.5e+10"},
        {FLT_MAX, "3.4028235e+38"}, {FLT_TRUE_MIN, "1e-45"},
        {16777216.0f, "16777216"}, {100.0f, "100"}, {-2.5e-5f, "-2.5e-05"},
        {NAN, "null"},        {INFINITY, "null"},  {-INFINITY, "null"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char buf[API_FLOAT_MAX + 1];
        buf[api_write_float(cases[k].v, buf)] = '\0';
        if (strcmp(buf, cases[k].text))
            fprintf(stderr, "want %s, got %s\n", cases[k].text, buf);
        CU_ASSERT_STRING_EQUAL(buf, cases[k].text);
    }
    /* Against the former search on a sample of normal floats. */
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    int differ = 0;
    for (int k = 0; k < 100000 / SWEEP_SCALE; k++) {
        float v = from_bits((uint32_t)nn_rng_u64(&rng));
        if (!isnormal(v))
            continue;
        char old[32], buf[API_FLOAT_MAX + 1];
        for (int d = 6; d <= 9; d++) {
            snprintf(old, sizeof old, "%.*g", d, (double)v);
            if (strtof(old, NULL) == v)
                break;
        }
        buf[api_write_float(v, buf)] = '\0';
        differ += strcmp(old, buf) != 0 &&
                  significant_digits(buf) >= significant_digits(old);
    }
    CU_ASSERT_EQUAL(differ, 0);
}

/* One decimal through our reader and strtof; 0 when they agree. */
static int agree(const char *text)
{
    float ours, ref = strtof(text, NULL);
    size_t n = api_read_float(text, strlen(text), &ours);
    int bad = n != strlen(text) || bits_of(ours) != bits_of(ref);
    if (bad && failures_shown++ < 20)
        fprintf(stderr, "'%s': ours %08x (%zu bytes), strtof %08x\n", text,
                bits_of(ours), n, bits_of(ref));
    return bad;
}

static void test_read_tricky(void)
{
    long bad = 0;
    const char *fixed[] = {
        "0", "-0", "1", "-1", "0.5", "1e0", "1E+2", "1e-2", "123.456e-7",
        "3.4028234663852886e38",  /* just below the overflow point */
        "3.4028235677973366e38",  /* the overflow point itself: inf */
        "3.4028235677973362e38", "3.5e38", "1e39", "-1e39", "1e999999999",
        "1e-46", "7.006492321624085354618e-46", /* half the least */
        "7.006492321624085354619e-46", "1.4e-45", "-1e-50", "0e99999",
        "1.17549435082228750797e-38", "1.1754942807573642917e-38",
        "123456789012345678901234567890", "0.000000000000000000000000001",
        "1.00000005960464477539062499", "1.000000059604644775390625",
        "1.00000005960464477539062501", "16777217", "16777219",
        "33554434.99999999999999999", "9007199254740993",
        "0.1000000000000000055511151231257827021181583404541015625",
        "4.9406564584124654e-324", "2.2250738585072014e-308",
        "179769313486231570000000000000000000000000000000000000000000",
    };
    for (size_t k = 0; k < sizeof fixed / sizeof *fixed; k++)
        bad += agree(fixed[k]);
    /* Exact halfway points between neighbouring floats (doubles, so %.60g
     * is their exact decimal) and a hair on either side. */
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    for (int k = 0; k < 200000 / SWEEP_SCALE; k++) {
        float v = from_bits((uint32_t)nn_rng_u64(&rng) & 0x7fffffffu);
        if (!isfinite(v) || v == FLT_MAX)
            continue;
        double mid = ((double)v + (double)nextafterf(v, INFINITY)) / 2;
        char text[128];
        snprintf(text, sizeof text, "%.60g", mid);
        if (strchr(text, 'e') || strlen(text) > 100)
            snprintf(text, sizeof text, "%.80e", mid);
        bad += agree(text);
        char *e = strchr(text, 'e');
        char tail[32] = "";
        if (e) {
            snprintf(tail, sizeof tail, "%s", e);
            *e = '\0';
        }
        char hair[160];
        snprintf(hair, sizeof hair, "%s%s1%s", text,
                 strchr(text, '.') ? "" : ".", tail);
        bad += agree(hair);
        /* And the nearest decimals with 9 to 17 digits. */
        for (int d = 9; d <= 17; d += 4) {
            snprintf(text, sizeof text, "%.*e", d - 1, mid);
            bad += agree(text);
        }
    }
    /* Random decimals: long mantissas, exponents over the whole range. */
    for (int k = 0; k < 300000 / SWEEP_SCALE; k++) {
        char text[96];
        int len = 1 + (int)(nn_rng_u64(&rng) % 30), at = 0;
        if (nn_rng_u64(&rng) & 1)
            text[at++] = '-';
        text[at++] = (char)('1' + nn_rng_u64(&rng) % 9);
        int dot = (int)(nn_rng_u64(&rng) % (uint64_t)(len + 1));
        for (int i = 1; i < len; i++) {
            if (i == dot)
                text[at++] = '.';
            text[at++] = (char)('0' + nn_rng_u64(&rng) % 10);
        }
        int ex = (int)(nn_rng_u64(&rng) % 110) - 70;
        snprintf(text + at, sizeof text - (size_t)at, "e%d", ex);
        bad += agree(text);
    }
    /* Digits read eight at a time: runs of every length around 8 and 16,
     * leading zeros after the point (no significant digits, so not
     * counted against the 19 a mantissa holds), and runs cut by the end
     * of the text. */
    for (int k = 0; k < 300000 / SWEEP_SCALE; k++) {
        char text[96];
        int at = 0;
        int whole = (int)(nn_rng_u64(&rng) % 20);
        int zeros = (int)(nn_rng_u64(&rng) % 4 == 0 ? nn_rng_u64(&rng) % 20 : 0);
        int frac = (int)(nn_rng_u64(&rng) % 26);
        if (whole == 0) {
            text[at++] = '0';
        } else {
            text[at++] = (char)('1' + nn_rng_u64(&rng) % 9);
            for (int i = 1; i < whole; i++)
                text[at++] = (char)('0' + nn_rng_u64(&rng) % 10);
        }
        if (zeros + frac > 0) {
            text[at++] = '.';
            for (int i = 0; i < zeros; i++)
                text[at++] = '0';
            for (int i = 0; i < frac; i++)
                text[at++] = (char)('0' + nn_rng_u64(&rng) % 10);
            if (frac == 0)
                text[at++] = '5';
        }
        if (nn_rng_u64(&rng) % 3 == 0)
            at += snprintf(text + at, sizeof text - (size_t)at, "e%d",
                           (int)(nn_rng_u64(&rng) % 60) - 30);
        text[at] = '\0';
        bad += agree(text);
    }
    CU_ASSERT_EQUAL(bad, 0);

    /* Only JSON's grammar: no hex, no inf/nan words, no leading '+' or
     * '.', no bare exponent; the number ends where JSON's does. */
    float f;
    const char *refused[] = {"", "-", "+1", ".5", "1.", "1e", "1e+", "-.5",
                             "inf", "nan", "Infinity", "e5", "-e5"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++)
        CU_ASSERT_EQUAL(api_read_float(refused[k], strlen(refused[k]), &f), 0);
    CU_ASSERT_EQUAL(api_read_float("01", 2, &f), 1);
    CU_ASSERT_EQUAL(api_read_float("1.5,2", 5, &f), 3);
    CU_ASSERT_EQUAL(api_read_float("0x10", 4, &f), 1); /* "0", then junk */
    /* Not past the given length, though the text goes on. */
    CU_ASSERT_EQUAL(api_read_float("12345", 3, &f), 3);
    CU_ASSERT_EQUAL(f, 123.0f);
    CU_ASSERT_EQUAL(api_read_float("123456789012", 9, &f), 9);
    CU_ASSERT_EQUAL(f, 123456789.0f);
    CU_ASSERT_EQUAL(api_read_float("0.12345678901", 10, &f), 10);
    CU_ASSERT_EQUAL(f, 0.12345678f);
    CU_ASSERT_EQUAL(api_read_float("0.1234567,8901", 14, &f), 9);
    CU_ASSERT_EQUAL(f, 0.1234567f);
}

/* ------------------------------------------------------- pull reader */

static void test_json_check(void)
{
    const char *good[] = {"{}", "[]", " [1, -2.5e3, true, false, null] ",
                          "{\"a\": {\"b\": [\"\\u00e9\\n\\\"\"]}}",
                          "\"\\ud83d\\ude00\"", "0", "[[[[]]]]"};
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        size_t at;
        int trailing;
        CU_ASSERT_EQUAL(api_json_check(good[k], strlen(good[k]), &at,
                                       &trailing), 0);
        /* cJSON agrees. */
        cJSON *c = cJSON_Parse(good[k]);
        CU_ASSERT_PTR_NOT_NULL(c);
        cJSON_Delete(c);
    }
    struct {
        const char *text;
        size_t at;
        int trailing;
    } bad[] = {
        {"", 0, 0},           {"[1,]", 3, 0},      {"[1 2]", 3, 0},
        {"{\"a\" 1}", 5, 0},  {"{a: 1}", 1, 0},    {"[01]", 2, 0},
        {"[1.]", 1, 0},       {"[tru]", 1, 0},     {"\"\\x\"", 1, 0},
        {"\"\\udc00\"", 1, 0}, {"\"\\ud800x\"", 1, 0}, {"\"a\nb\"", 2, 0},
        {"{} x", 3, 1},       {"[1] [2]", 4, 1},   {"\"abc", 4, 0},
        {"[NaN]", 1, 0},      {"[-]", 1, 0},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t at = 999;
        int trailing = -1;
        CU_ASSERT_EQUAL(api_json_check(bad[k].text, strlen(bad[k].text), &at,
                                       &trailing), -1);
        if (at != bad[k].at || trailing != bad[k].trailing)
            fprintf(stderr, "'%s': at %zu trailing %d\n", bad[k].text, at,
                    trailing);
        CU_ASSERT_EQUAL(at, bad[k].at);
        CU_ASSERT_EQUAL(trailing, bad[k].trailing);
    }
    /* Depth: 64 levels are fine, 65 are not. */
    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    size_t at;
    int trailing;
    CU_ASSERT_EQUAL(api_json_check(deep + 1, 128, &at, &trailing), 0);
    CU_ASSERT_EQUAL(api_json_check(deep, 130, &at, &trailing), -1);
    CU_ASSERT_EQUAL(at, 64);

    /* Members: keys unescaped, the first of repeated ones found. */
    const char *doc = "{\"a\\u0062\": 1, \"x\": [2], \"x\": 3}";
    api_json j = {doc, strlen(doc), NULL};
    size_t it = 0, value;
    char key[8];
    int cut;
    CU_ASSERT_EQUAL(api_json_member(&j, 0, &it, key, sizeof key, &cut, &value),
                    1);
    CU_ASSERT_STRING_EQUAL(key, "ab");
    CU_ASSERT_EQUAL(doc[value], '1');
    CU_ASSERT_EQUAL(doc[api_json_find(&j, 0, "x")], '[');
    CU_ASSERT_EQUAL(api_json_find(&j, 0, "y"), (size_t)-1);
}

/* The text through the new reader and, parsed by cJSON, through
 * api_tensor_from_json: the same verdict, status, code, shape and bits. */
static void same_as_cjson(const char *text)
{
    api_error e1, e2;
    memset(&e1, 0, sizeof e1);
    memset(&e2, 0, sizeof e2);
    nn_tensor *a = NULL, *b = NULL;
    api_json j = {text, strlen(text), NULL};
    int r1 = api_json_tensor(&j, 0, "inputs.x", &lim, 0, &a, &e1);
    cJSON *c = cJSON_Parse(text);
    int r2 = c ? api_tensor_from_json(c, "inputs.x", &lim, &b, &e2) : -1;
    cJSON_Delete(c);
    if (r1 != r2 || (r1 && (e1.http_status != e2.http_status ||
                            strcmp(e1.code, e2.code))))
        fprintf(stderr, "'%s': new %d %d %s '%s', old %d %d %s '%s'\n", text,
                r1, e1.http_status, e1.code, e1.message, r2, e2.http_status,
                e2.code, e2.message);
    CU_ASSERT_EQUAL(r1, r2);
    if (r1 == 0 && r2 == 0) {
        CU_ASSERT(nn_shape_equal(&a->shape, &b->shape));
        CU_ASSERT_EQUAL(memcmp(a->data, b->data,
                               nn_tensor_numel(a) * sizeof(float)), 0);
    } else if (r1 && r2) {
        CU_ASSERT_EQUAL(e1.http_status, e2.http_status);
        CU_ASSERT_STRING_EQUAL(e1.code, e2.code);
        CU_ASSERT_PTR_NOT_NULL(strstr(e1.message, "inputs.x"));
    }
    nn_tensor_free(a);
    nn_tensor_free(b);
}

static void test_tensor_reader(void)
{
    const char *cases[] = {
        "[1, 2, 3]", "[[1, 2, 3], [4, 5, 6]]", "[[[1], [2]], [[3], [4]]]",
        "[0.1, -0.25, 1e-3, 3.5E2]", "{\"shape\": [2, 2], \"data\": [1,2,3,4]}",
        "{\"data\": [1], \"shape\": [1]}", "[[1, 2], [3]]", "[[1, 2], 3]",
        "[[1, 2], [3, [4]]]", "[1, [2]]", "[[1, \"2\"]]", "[[1, null]]",
        "[]", "[[]]", "[[1], []]", "3", "\"x\"", "[1e39]", "[1e999]",
        "[-1e39]", "[1e-50]", "[[[[[[[[[1]]]]]]]]]", "[[[[[[[[1]]]]]]]]",
        "{\"shape\": [2], \"data\": [1]}", "{\"shape\": [2], \"data\": [1,2,3]}",
        "{\"shape\": [0], \"data\": []}", "{\"shape\": [2.5], \"data\": [1, 2]}",
        "{\"shape\": [2.0], \"data\": [1, 2]}", "{\"shape\": [], \"data\": []}",
        "{\"shape\": [1], \"data\": [1], \"x\": 1}", "{\"shape\": [1]}",
        "{\"shape\": 1, \"data\": [1]}", "{\"shape\": [1], \"data\": [true]}",
        "{\"shape\": [1], \"data\": [[1]]}", "{\"shape\": [-1], \"data\": []}",
        "{\"shape\": [1,1,1,1,1,1,1,1,1], \"data\": [1]}",
        "{\"shape\": [1], \"data\": [1e40]}", "{}", "[true]", "[{}]",
        "[[1,2],[3,4],[5,6]]",
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        same_as_cjson(cases[k]);
    /* The size limit, both forms. */
    api_limits keep = lim;
    lim.max_tensor_elems = 4;
    same_as_cjson("[1, 2, 3, 4, 5]");
    same_as_cjson("[[1, 2], [3, 4], [5, 6]]");
    same_as_cjson("{\"shape\": [100000, 100000], \"data\": []}");
    same_as_cjson("[1, 2, 3, 4]");
    lim = keep;

    /* Where cJSON's double rounded twice, the reader is right: a hair
     * above the halfway point between 1 and the next float. */
    const char *hair = "[1.00000005960464477539062501]";
    api_json h = {hair, strlen(hair), NULL};
    nn_tensor *up;
    api_error herr;
    CU_ASSERT_EQUAL_FATAL(api_json_tensor(&h, 0, "x", &lim, 0, &up, &herr), 0);
    CU_ASSERT_EQUAL(up->data[0], nextafterf(1.0f, 2.0f));
    nn_tensor_free(up);

    /* Messages name the element's place and byte. */
    const char *text = "[[1, 2], [3, \"4\"]]";
    api_json j = {text, strlen(text), NULL};
    nn_tensor *t;
    api_error err;
    CU_ASSERT_EQUAL(api_json_tensor(&j, 0, "inputs.x", &lim, 0, &t, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "inputs.x[1][1]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "byte 13"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "not a number"));
    text = "[[1, 2], [3]]";
    j.s = text, j.len = strlen(text);
    CU_ASSERT_EQUAL(api_json_tensor(&j, 0, "inputs.x", &lim, 0, &t, &err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "ragged"));
    /* "trainable" only where asked for (parameter documents). */
    text = "{\"shape\": [1], \"data\": [2], \"trainable\": true}";
    j.s = text, j.len = strlen(text);
    CU_ASSERT_EQUAL(api_json_tensor(&j, 0, "w", &lim, 0, &t, &err), -1);
    CU_ASSERT_EQUAL(api_json_tensor(&j, 0, "w", &lim, 1, &t, &err), 0);
    CU_ASSERT_EQUAL(t->data[0], 2.0f);
    nn_tensor_free(t);
    /* Cut-off text is an error, never a read past the end. */
    const char *whole = "{\"shape\": [2], \"data\": [1.5, 2.5]}";
    for (size_t n = 0; n < strlen(whole); n++) {
        char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees over-reads */
        memcpy(copy, whole, n);
        j.s = copy, j.len = n;
        t = NULL;
        CU_ASSERT_EQUAL(api_json_tensor(&j, 0, "w", &lim, 0, &t, &err), -1);
        nn_tensor_free(t);
        free(copy);
    }
}

/* ------------------------------------------------------------ writer */

static char *drain(api_enc *e, size_t cap)
{
    api_buf b = {0};
    char *chunk = malloc(cap);
    size_t n;
    while ((n = api_enc_next(e, chunk, cap)) > 0) {
        CU_ASSERT(n <= cap);
        api_buf_put(&b, chunk, n);
    }
    free(chunk);
    api_buf_put(&b, "", 0);
    return api_buf_finish(&b, NULL);
}

static void test_encoder(void)
{
    int shapes[][4] = {{1, 1}, {1, 7}, {2, 3, 4}, {3, 1, 1, 5}, {4, 2, 2, 2}};
    int ndims[] = {1, 1, 2, 3, 3};
    for (size_t s = 0; s < sizeof ndims / sizeof *ndims; s++) {
        nn_shape sh = nn_shape_make(ndims[s], &shapes[s][1]);
        if (ndims[s] == 1)
            sh = nn_shape_make(1, &shapes[s][1]);
        else
            sh = nn_shape_make(ndims[s], &shapes[s][1]);
        nn_tensor *t = tu_wave(sh.ndim, sh.dims, 3.0f, 0.5f);
        t->data[0] = NAN; /* null, as before */
        /* The one-piece writer and cJSON's printing agree... */
        api_buf b = {0};
        api_buf_tensor(&b, t->data, &t->shape);
        char *one = api_buf_finish(&b, NULL);
        cJSON *c = api_tensor_to_json(t);
        char *ref = cJSON_PrintUnformatted(c);
        CU_ASSERT_STRING_EQUAL(one, ref);
        /* ...and so does the encoder in chunks of any size. */
        size_t caps[] = {1, 2, 3, 7, 16, 33, 64, 4096};
        for (size_t k = 0; k < sizeof caps / sizeof *caps; k++) {
            api_enc *e = api_enc_new();
            api_enc_text(e, "{\"t\":");
            nn_tensor *copy = nn_tensor_new(&t->shape);
            memcpy(copy->data, t->data, nn_tensor_numel(t) * sizeof(float));
            api_enc_tensor(e, copy);
            api_enc_text(e, ",\"n\":");
            api_enc_long(e, -42);
            api_enc_text(e, ",\"s\":");
            api_enc_string(e, "a\"b\\c\n\x01");
            api_enc_text(e, "}");
            CU_ASSERT_FALSE(api_enc_failed(e));
            char *text = drain(e, caps[k]);
            char want[4096];
            snprintf(want, sizeof want,
                     "{\"t\":%s,\"n\":-42,\"s\":\"a\\\"b\\\\c\\n\\u0001\"}",
                     ref);
            CU_ASSERT_STRING_EQUAL(text, want);
            cJSON *back = cJSON_Parse(text);
            CU_ASSERT_PTR_NOT_NULL(back);
            CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(back, "s")->valuestring,
                                   "a\"b\\c\n\x01");
            cJSON_Delete(back);
            free(text);
            /* Drained: nothing more. */
            char x;
            CU_ASSERT_EQUAL(api_enc_next(e, &x, 1), 0);
            api_enc_free(e);
        }
        free(one);
        free(ref);
        cJSON_Delete(c);
        nn_tensor_free(t);
    }
}

/* A live tensor's source over a held one: ready grows by one step each
 * time the encoder finds it waiting, at most `piece` elements are given
 * at a time (as a ring's wrap would cut them), and with cut_at >= 0 the
 * tensor ends there. */
typedef struct live_src {
    const nn_tensor *t;
    size_t step, ready, piece;
    long cut_at;
} live_src;

static const float *live_next(void *ctx, size_t k, size_t *n,
                              const char **tail)
{
    live_src *l = ctx;
    size_t end = l->ready;
    if (l->cut_at >= 0 && end > (size_t)l->cut_at)
        end = (size_t)l->cut_at;
    if (k >= end) {
        *n = 0;
        if (l->cut_at >= 0 && k == (size_t)l->cut_at)
            *tail = "},\"error\":\"cut\"}";
        return NULL;
    }
    *n = end - k < l->piece ? end - k : l->piece;
    return l->t->data + k;
}

static char *drain_live(api_enc *e, live_src *l, size_t cap)
{
    api_buf b = {0};
    char *chunk = malloc(cap);
    for (;;) {
        size_t n = api_enc_next(e, chunk, cap);
        CU_ASSERT(n <= cap);
        api_buf_put(&b, chunk, n);
        if (n == 0 && !api_enc_waiting(e))
            break;
        if (api_enc_waiting(e))
            l->ready += l->step;
    }
    free(chunk);
    api_buf_put(&b, "", 0);
    return api_buf_finish(&b, NULL);
}

/* The text of a tensor sent as it arrives equals the held tensor's, in
 * chunks of any size; cut at a step, it is the first steps' text with
 * the tail; in the binary framing the same bytes, or a broken end. */
static void test_live_encoder(void)
{
    int dims[][4] = {{1, 9, 5}, {1, 6, 2, 3}, {1, 1, 1}};
    int ndims[] = {3, 4, 3};
    for (size_t s = 0; s < sizeof ndims / sizeof *ndims; s++) {
        nn_tensor *t = tu_wave(ndims[s], dims[s], 2.0f, 0.25f);
        size_t step = nn_tensor_numel(t) / (size_t)dims[s][1];
        api_buf b = {0};
        api_buf_tensor(&b, t->data, &t->shape);
        char *held = api_buf_finish(&b, NULL);
        size_t caps[] = {1, 5, 64, 4096};
        for (size_t c = 0; c < sizeof caps / sizeof *caps; c++)
            for (long cut = -1; cut <= 2; cut++) {
                live_src l = {t, step, 0, 4, cut < 0 ? -1 : cut * (long)step};
                if (cut >= dims[s][1])
                    continue;
                api_enc *e = api_enc_new();
                api_enc_text(e, "{\"o\":{\"t\":");
                api_enc_tensor_live(e, &t->shape, live_next, &l);
                api_enc_text(e, "},\"step\":7}");
                char *text = drain_live(e, &l, caps[c]);
                char want[8192];
                if (cut < 0) {
                    snprintf(want, sizeof want, "{\"o\":{\"t\":%s},\"step\":7}",
                             held);
                } else {
                    nn_shape part = t->shape;
                    part.dims[1] = (int)cut;
                    api_buf pb = {0};
                    if (cut > 0)
                        api_buf_tensor(&pb, t->data, &part);
                    else
                        api_buf_puts(&pb, "[[]]");
                    char *first = api_buf_finish(&pb, NULL);
                    snprintf(want, sizeof want,
                             "{\"o\":{\"t\":%s},\"error\":\"cut\"}", first);
                    free(first);
                }
                CU_ASSERT_STRING_EQUAL(text, want);
                cJSON *back = cJSON_Parse(text);
                CU_ASSERT_PTR_NOT_NULL(back);
                cJSON_Delete(back);
                free(text);
                api_enc_free(e);

                /* The binary framing. */
                live_src lb = {t, step, 0, 4, l.cut_at};
                e = api_enc_new();
                api_enc_text(e, "{\"t\":");
                api_enc_tensor_live(e, &t->shape, live_next, &lb);
                api_enc_text(e, "}");
                size_t header_len, total;
                CU_ASSERT_EQUAL_FATAL(api_enc_binary(e, &header_len, &total),
                                      0);
                CU_ASSERT_EQUAL(total - header_len,
                                nn_tensor_numel(t) * sizeof(float));
                char *bytes = drain_live(e, &lb, caps[c]);
                if (cut < 0) {
                    CU_ASSERT_FALSE(api_enc_broken(e));
                    CU_ASSERT_EQUAL(memcmp(bytes + header_len, t->data,
                                           total - header_len), 0);
                } else {
                    CU_ASSERT(api_enc_broken(e));
                }
                free(bytes);
                api_enc_free(e);
            }
        free(held);
        nn_tensor_free(t);
    }
}

static nn_graph *graph_of(const char *text)
{
    cJSON *def = cJSON_Parse(text);
    api_error err;
    nn_graph *g = api_graph_from_json(def, reg, &lim, &err);
    cJSON_Delete(def);
    if (!g)
        fprintf(stderr, "%s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* Parameter documents: the streamed export has the former document's
 * form and every weight bit for bit; the import reads everything before
 * changing anything. */
static void test_params(void)
{
    nn_graph *g = graph_of(
        "{\"seed\": 3, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
        "\"shape\": 3}, {\"name\": \"d\", \"type\": \"Dense\", "
        "\"num_unit\": 4}, {\"name\": \"r\", \"type\": \"Reservoir\", "
        "\"num_unit\": 6}], \"edges\": [\"x >> d >> r\"]}");
    api_enc *e = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    char *got = drain(e, 100);
    api_enc_free(e);
    /* The document's form, member by member, as the cJSON export had it. */
    cJSON *doc = cJSON_Parse(got);
    const cJSON *nodes = cJSON_GetObjectItem(doc, "nodes");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(nodes), 2); /* x has no weights */
    api_json dj = {got, strlen(got), NULL};
    size_t nodes_at = api_json_find(&dj, 0, "nodes");
    for (int i = 0; i < nn_graph_node_count(g); i++) {
        nn_node *node = nn_graph_node_at(g, i);
        const cJSON *nj = cJSON_GetObjectItem(nodes, nn_node_name(node));
        CU_ASSERT_EQUAL(nj != NULL, nn_node_weight_count(node) > 0);
        for (int w = 0; nj && w < nn_node_weight_count(node); w++) {
            const nn_tensor *t = nn_node_weight_at(node, w);
            const char *wname = nn_node_weight_name(node, w);
            const cJSON *wj = cJSON_GetObjectItem(nj, wname);
            const cJSON *shape = cJSON_GetObjectItem(wj, "shape");
            CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(shape), t->shape.ndim);
            for (int d = 0; d < t->shape.ndim; d++)
                CU_ASSERT_EQUAL(cJSON_GetArrayItem(shape, d)->valueint,
                                t->shape.dims[d]);
            CU_ASSERT_EQUAL(cJSON_IsTrue(cJSON_GetObjectItem(wj, "trainable")),
                            nn_node_weight_trainable(node, w));
            /* Every value bit for bit, through the reader. */
            size_t at = api_json_find(&dj, api_json_find(&dj, nodes_at,
                                                         nn_node_name(node)),
                                      wname);
            nn_tensor *back;
            api_error e2;
            CU_ASSERT_EQUAL_FATAL(api_json_tensor(&dj, at, "w", &lim, 1, &back,
                                                  &e2), 0);
            CU_ASSERT_EQUAL(memcmp(back->data, t->data,
                                   nn_tensor_numel(t) * sizeof(float)), 0);
            nn_tensor_free(back);
        }
    }
    cJSON_Delete(doc);

    /* Changed weights come back bit for bit from the export's text. */
    nn_node *d = nn_graph_find(g, "d");
    nn_tensor *W = nn_node_weight(d, "W");
    float *saved = malloc(nn_tensor_numel(W) * sizeof(float));
    memcpy(saved, W->data, nn_tensor_numel(W) * sizeof(float));
    for (size_t k = 0; k < nn_tensor_numel(W); k++)
        W->data[k] = -1;
    api_json j = {got, strlen(got), NULL};
    api_params_import *imp;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_params_read(g, &j, &imp, &err), 0);
    CU_ASSERT_EQUAL(W->data[0], -1); /* reading writes nothing */
    api_params_apply(g, imp);
    api_params_import_free(imp);
    CU_ASSERT_EQUAL(memcmp(W->data, saved, nn_tensor_numel(W) * sizeof(float)),
                    0);

    /* Refusals, with the messages the cJSON import gave. */
    struct {
        const char *text;
        const char *needle;
    } bad[] = {
        {"[]", "parameter document"},
        {"{\"nodes\": []}", "parameter document"},
        {"{\"nodes\": {\"zz\": {}}}", "nodes.zz"},
        {"{\"nodes\": {\"d\": 1}}", "nodes.d must map"},
        {"{\"nodes\": {\"d\": {\"Q\": [1]}}}", "nodes.d.Q"},
        {"{\"nodes\": {\"d\": {\"W\": [1]}}}", "shape"},
        {"{\"nodes\": {\"d\": {\"b\": [1, 2, 3, \"4\"]}}}", "not a number"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        j.s = bad[k].text, j.len = strlen(bad[k].text);
        imp = (api_params_import *)1;
        CU_ASSERT_EQUAL(api_params_read(g, &j, &imp, &err), -1);
        CU_ASSERT_PTR_NULL(imp);
        CU_ASSERT_EQUAL(err.http_status, 400);
        if (!strstr(err.message, bad[k].needle))
            fprintf(stderr, "%s -> %s\n", bad[k].text, err.message);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, bad[k].needle));
    }
    free(saved);
    free(got);
    nn_graph_free(g);
}

/* A step's answer: the same text as the cJSON document the routes
 * printed before. */
static void test_output_documents(void)
{
    nn_graph *g = graph_of(
        "{\"seed\": 1, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
        "\"shape\": 2}, {\"name\": \"o\", \"type\": \"Dense\", "
        "\"num_unit\": 3}], \"edges\": [\"x >> o\"]}");
    nn_error e;
    nn_session *s = nn_session_new(g, 2, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const char *body = "{\"inputs\": {\"x\": [[0.5, -1], [2, 0.25]]}, "
                       "\"train\": false}";
    api_json j = {body, strlen(body), NULL};
    api_step_body b;
    api_error err;
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 0, &b, &err), 0);
    CU_ASSERT_EQUAL(api_json_stateless_batch(&j, b.inputs), 2);
    CU_ASSERT_EQUAL_FATAL(api_json_bind_step_inputs(&j, b.inputs, s, g, &lim,
                                                    &err), 0);
    CU_ASSERT_EQUAL_FATAL(nn_session_step(s, 0, &e), NN_OK);
    cJSON *o = cJSON_CreateObject();
    cJSON *outs = cJSON_AddObjectToObject(o, "outputs");
    cJSON_AddItemToObject(outs, "o", api_tensor_to_json(nn_session_output(s,
                                                                          "o")));
    cJSON_AddNumberToObject(o, "step", 1);
    char *want = cJSON_PrintUnformatted(o);
    api_enc *enc = api_step_outputs_enc(s, g, 1);
    char *got = drain(enc, 5);
    CU_ASSERT_STRING_EQUAL(got, want);
    api_enc_free(enc);
    free(got);
    free(want);
    cJSON_Delete(o);

    /* Step bodies: the routes' messages. */
    struct {
        const char *text;
        int sequence;
        const char *needle;
    } bad[] = {
        {"[]", 0, "must be a JSON object"},
        {"{\"inputs\": {}, \"forced\": {}}", 0, "unknown member 'forced'"},
        {"{\"train\": true}", 1, "\"inputs\" is missing"},
        {"{\"inputs\": {}, \"train\": 1}", 0, "\"train\" must be"},
        {"{\"inputs\": {}, \"inputs\": {}}", 0, "\"inputs\" is given twice"},
        {"{\"inputs\": {}, \"train\": true, \"train\": false}", 0,
         "\"train\" is given twice"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        j.s = bad[k].text, j.len = strlen(bad[k].text);
        CU_ASSERT_EQUAL(api_read_step_body(&j, bad[k].sequence, &b, &err), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.message, bad[k].needle));
    }
    const char *run = "{\"inputs\": {\"x\": [[[1, 2], [3, 4], [5, 6]], "
                      "[[0, 0], [1, 1], [2, 2]]]}, \"forced\": {}}";
    j.s = run, j.len = strlen(run);
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 1, &b, &err), 0);
    nn_binding *bind;
    int steps;
    CU_ASSERT_EQUAL_FATAL(api_json_sequence_inputs(&j, b.inputs, g, 2, &lim,
                                                   &bind, &steps, &err), 0);
    CU_ASSERT_EQUAL(steps, 3);
    CU_ASSERT_EQUAL(bind[0].tensor->data[5], 6.0f);
    api_bindings_free(bind, 1);
    nn_binding *forced;
    int n_forced;
    CU_ASSERT_EQUAL(api_json_node_sequences(&j, b.forced, g, 2, 3, "forced",
                                            &lim, &forced, &n_forced, &err), 0);
    CU_ASSERT_EQUAL(n_forced, 0);
    api_bindings_free(forced, n_forced);
    const char *bad_run = "{\"inputs\": {\"x\": [[[1, 2]]], \"y\": [1]}}";
    j.s = bad_run, j.len = strlen(bad_run);
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 1, &b, &err), 0);
    CU_ASSERT_EQUAL(api_json_sequence_inputs(&j, b.inputs, g, 2, &lim, &bind,
                                             &steps, &err), -1);
    CU_ASSERT_STRING_EQUAL(err.code, "unknown_input");
    /* A sequence of the wrong shape: both readers (the codec's and the
     * cJSON one of fit requests) refuse it with the same words. */
    const char *wrong = "{\"inputs\": {\"x\": [[[1, 2, 3]], [[4, 5, 6]]]}}";
    j.s = wrong, j.len = strlen(wrong);
    CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 1, &b, &err), 0);
    CU_ASSERT_EQUAL(api_json_sequence_inputs(&j, b.inputs, g, 2, &lim, &bind,
                                             &steps, &err), -1);
    api_error other;
    cJSON *doc = cJSON_Parse(wrong);
    CU_ASSERT_EQUAL(api_read_sequence_inputs(cJSON_GetObjectItem(doc, "inputs"),
                                             g, 2, &lim, &bind, &steps,
                                             &other), -1);
    cJSON_Delete(doc);
    CU_ASSERT_STRING_EQUAL(err.code, "shape_mismatch");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "inputs.x has shape (2, 1, 3)"));
    CU_ASSERT_STRING_EQUAL(err.message, other.message);
    nn_session_free(s);
    nn_graph_free(g);
}

/* A step's inputs are read straight into the session: one of more floats
 * than the reader holds on its stack, entries named in another order, and
 * the refusals with the shapes as read, past the stack too; a name given
 * twice is refused (it was read by its first value, silently). */
static void test_step_inputs_into_session(void)
{
    nn_graph *g = graph_of(
        "{\"seed\": 1, \"nodes\": [{\"name\": \"x\", \"type\": \"Input\", "
        "\"shape\": 300}, {\"name\": \"y\", \"type\": \"Input\", "
        "\"shape\": 2}, {\"name\": \"o\", \"type\": \"Dense\", "
        "\"num_unit\": 3}], \"edges\": [\"{x, y} >> o\"]}");
    nn_error e;
    nn_session *s = nn_session_new(g, 1, 1, &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    enum { N = 301 };
    size_t cap = 16 * N + 200;
    char *body = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    for (int width = 300; width <= N; width++) {
        size_t len = (size_t)snprintf(body, cap, "{\"inputs\": {\"y\": "
                                      "[[7, -8]], \"x\": [[");
        for (int k = 0; k < width; k++)
            len += (size_t)snprintf(body + len, cap - len, "%s%s%d.25",
                                    k ? "," : "", k % 2 ? "-" : "", k);
        snprintf(body + len, cap - len, "]]}}");
        api_json j = {body, strlen(body), NULL};
        api_step_body b;
        api_error err;
        CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 0, &b, &err), 0);
        int rc = api_json_bind_step_inputs(&j, b.inputs, s, g, &lim, &err);
        if (width == 300) {
            CU_ASSERT_EQUAL_FATAL(rc, 0);
            const nn_tensor *x = nn_session_input(s, "x");
            const nn_tensor *y = nn_session_input(s, "y");
            for (int k = 0; k < 300; k++)
                CU_ASSERT_EQUAL(x->data[k], (k % 2 ? -1.0f : 1.0f) *
                                                ((float)k + 0.25f));
            CU_ASSERT_EQUAL(y->data[0], 7.0f);
            CU_ASSERT_EQUAL(y->data[1], -8.0f);
        } else {
            CU_ASSERT_EQUAL(rc, -1);
            CU_ASSERT_STRING_EQUAL(err.code, "shape_mismatch");
            CU_ASSERT_STRING_EQUAL(err.message, "inputs.x has shape (1, 301); "
                                   "the network needs (1, 300) (batch, ...)");
        }
    }
    static const struct {
        const char *text, *code, *message;
    } bad[] = {
        {"{\"inputs\": {\"x\": [[1]], \"y\": [[1, 2]]}}", "shape_mismatch",
         "inputs.x has shape (1, 1); the network needs (1, 300) (batch, ...)"},
        {"{\"inputs\": {\"y\": [[1, 2]]}}", "missing_input",
         "inputs.x is missing"},
        {"{\"inputs\": {\"y\": [[1, 2]], \"x\": [[1, [2]]]}}", "bad_tensor",
         NULL},
        {"{\"inputs\": {\"y\": [[1, 2]], \"z\": [[1]]}}", "unknown_input",
         "inputs.z: the network has no input of that name"},
        {"{\"inputs\": {\"y\": [[1, 2]], \"y\": [[3, 4]]}}", "bad_request",
         "inputs.y is given twice"},
        {"{\"inputs\": {\"y\": [[1, 2]], \"x\": {\"shape\": [1, 300], "
         "\"data\": [1], \"data\": [3]}}}", "bad_tensor",
         "inputs.x: \"data\" is given twice"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        api_json j = {bad[k].text, strlen(bad[k].text), NULL};
        api_step_body b;
        api_error err;
        CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 0, &b, &err), 0);
        CU_ASSERT_EQUAL(api_json_bind_step_inputs(&j, b.inputs, s, g, &lim,
                                                  &err), -1);
        CU_ASSERT_STRING_EQUAL(err.code, bad[k].code);
        if (bad[k].message) {
            CU_ASSERT_STRING_EQUAL(err.message, bad[k].message);
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(err.message, "inputs.x: ragged"));
        }
    }
    free(body);
    nn_session_free(s);
    nn_graph_free(g);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    lim = api_default_limits();
    static const tu_test tests[] = {
        {"float text round trips, shortest (sweep)", test_float_sweep},
        {"float text at the boundaries", test_float_boundaries},
        {"float text layout", test_float_text},
        {"decimal reading agrees with strtof", test_read_tricky},
        {"JSON check and members", test_json_check},
        {"tensor reader agrees with the cJSON one", test_tensor_reader},
        {"chunked encoder", test_encoder},
        {"live tensors, whole and cut", test_live_encoder},
        {"parameter documents", test_params},
        {"step and run documents", test_output_documents},
        {"step inputs straight into the session",
         test_step_inputs_into_session},
        {NULL, NULL},
    };
    int rc = tu_run_suite("codec", tests);
    nn_registry_free(reg);
    return rc;
}
