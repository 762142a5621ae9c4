/*
 * test_state.c — GET and PUT .../sessions/{sid}/state between two daemons:
 * the imported session carries everything (an export of it is the same
 * document, byte for byte, and its next training steps through Dropout
 * equal the original's), and every import that does not fit is refused
 * without leaving a session behind.
 */
#include "itest.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *NETWORK =
    "{\"name\": \"drop\", \"seed\": 5, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 6, "
    "\"activation\": \"tanh\"},"
    "{\"name\": \"d\", \"type\": \"Dropout\", \"prob\": 0.5},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> r >> d >> o\", \"r << o\"]}";

static const char *OTHER =
    "{\"name\": \"other\", \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> o\"]}";

static it_server a, b;

static long request(const it_server *s, const char *method, const char *path,
                    const char *body, char **out)
{
    it_response r;
    long status = 0;
    if (it_request(s, method, path, body ? "application/json" : NULL, body,
                   body ? strlen(body) : 0, &r) == 0) {
        status = r.status;
        if (out)
            *out = strdup(r.body ? r.body : "");
    } else if (out) {
        *out = strdup("");
    }
    it_response_free(&r);
    return status;
}

/* A training step (Dropout draws from the session's random stream); the
 * outputs as text, malloc'd. */
static char *train_step(const it_server *s, const char *sid, int t)
{
    char path[128], body[128], *out = NULL;
    snprintf(path, sizeof path, "/v1/networks/drop/sessions/%s/forward", sid);
    snprintf(body, sizeof body, "{\"inputs\": {\"x\": [[%d, 0.5, -1], "
             "[0.25, %d, 2]]}, \"train\": true}", t, -t);
    CU_ASSERT_EQUAL(request(s, "POST", path, body, &out), 200);
    return out;
}

/* Every number of the "o" output of two answers agrees within float32
 * tolerance (two daemons: the same bits are not promised). */
static int outputs_close(const char *x, const char *y)
{
    cJSON *jx = cJSON_Parse(x), *jy = cJSON_Parse(y);
    const cJSON *ox = cJSON_GetObjectItem(cJSON_GetObjectItem(jx, "outputs"), "o");
    const cJSON *oy = cJSON_GetObjectItem(cJSON_GetObjectItem(jy, "outputs"), "o");
    int ok = ox && oy && cJSON_GetArraySize(ox) == cJSON_GetArraySize(oy);
    for (int i = 0; ok && i < cJSON_GetArraySize(ox); i++) {
        const cJSON *rx = cJSON_GetArrayItem(ox, i), *ry = cJSON_GetArrayItem(oy, i);
        ok = cJSON_GetArraySize(rx) == cJSON_GetArraySize(ry);
        for (int k = 0; ok && k < cJSON_GetArraySize(rx); k++) {
            double p = cJSON_GetArrayItem(rx, k)->valuedouble;
            double q = cJSON_GetArrayItem(ry, k)->valuedouble;
            double d = p > q ? p - q : q - p;
            ok = d <= 1e-5 * (p > 0 ? p : -p) + 1e-6;
        }
    }
    cJSON_Delete(jx);
    cJSON_Delete(jy);
    return ok;
}

static void test_imported_session_continues(void)
{
    CU_ASSERT_EQUAL_FATAL(request(&a, "POST", "/v1/networks/drop/sessions",
                                  "{\"id\": \"walk\", \"batch\": 2}", NULL), 201);
    for (int t = 0; t < 4; t++)
        free(train_step(&a, "walk", t));
    char *state = NULL;
    CU_ASSERT_EQUAL_FATAL(request(&a, "GET", "/v1/networks/drop/sessions/walk/"
                                  "state", NULL, &state), 200);
    cJSON *doc = cJSON_Parse(state);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(doc, "steps")->valueint, 4);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(doc, "batch")->valueint, 2);
    CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(doc, "session")->valuestring,
                           "walk");
    cJSON_Delete(doc);

    char *answer = NULL;
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/walk/state",
                            state, &answer), 201);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "\"steps\":4"));
    free(answer);
    /* What was restored is what was saved: the same bytes come back. */
    char *again = NULL;
    CU_ASSERT_EQUAL(request(&b, "GET", "/v1/networks/drop/sessions/walk/state",
                            NULL, &again), 200);
    CU_ASSERT_STRING_EQUAL(again, state);
    free(again);
    /* And the two go on alike, random streams included. */
    for (int t = 4; t < 8; t++) {
        char *here = train_step(&a, "walk", t), *there = train_step(&b, "walk", t);
        CU_ASSERT(outputs_close(here, there));
        free(here);
        free(there);
    }
    /* A fresh session does not: the state made the difference. */
    CU_ASSERT_EQUAL(request(&b, "POST", "/v1/networks/drop/sessions",
                            "{\"id\": \"fresh\", \"batch\": 2}", NULL), 201);
    char *fresh = train_step(&b, "fresh", 8), *walked = train_step(&a, "walk", 8);
    CU_ASSERT_FALSE(outputs_close(fresh, walked));
    free(fresh);
    free(walked);

    /* Refusals, none of which leaves a session behind. */
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/fresh2/state",
                            "{\"checkpoint\": \"\"}", &answer), 400);
    free(answer);
    CU_ASSERT_EQUAL(request(&b, "POST", "/v1/networks/drop/sessions",
                            "{\"id\": \"single\", \"batch\": 1}", NULL), 201);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/single/state",
                            state, &answer), 409);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "batch"));
    free(answer);
    CU_ASSERT_EQUAL(request(&b, "POST", "/v1/networks", OTHER, NULL), 201);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/other/sessions/walk/state",
                            state, &answer), 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "state_mismatch"));
    free(answer);
    CU_ASSERT_EQUAL(request(&b, "GET", "/v1/networks/other/sessions/walk", NULL,
                            NULL), 404);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/nope/sessions/walk/state",
                            state, NULL), 404);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/"
                            "abcdefghijklmnopqrstuvwxyz/state", state, NULL),
                    400);
    char *wrong = malloc(strlen(state) + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wrong);
    snprintf(wrong, strlen(state) + 64, "{\"format\": \"other\", %s",
             state + 1);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/w2/state",
                            wrong, &answer), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "format"));
    free(answer);
    free(wrong);
    CU_ASSERT_EQUAL(request(&b, "GET", "/v1/networks/drop/sessions/w2", NULL,
                            NULL), 404);
    CU_ASSERT_EQUAL(request(&a, "GET", "/v1/networks/drop/sessions/gone/state",
                            NULL, &answer), 404);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "'gone'"));
    free(answer);
    free(state);
}

/* ------------------------------------------- checkpoints made by hand */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static unsigned char *unbase64(const char *text, size_t *len)
{
    size_t n = strlen(text);
    unsigned char *out = malloc(n / 4 * 3 + 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t at = 0;
    uint32_t bits = 0;
    int have = 0;
    for (size_t i = 0; i < n && text[i] != '='; i++) {
        bits = bits << 6 | (uint32_t)(strchr(B64, text[i]) - B64);
        if ((have += 6) >= 8)
            out[at++] = (unsigned char)(bits >> (have -= 8));
    }
    *len = at;
    return out;
}

static char *base64(const unsigned char *p, size_t len)
{
    char *out = malloc(len / 3 * 4 + 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    size_t at = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[at++] = B64[v >> 18 & 63];
        out[at++] = B64[v >> 12 & 63];
        out[at++] = i + 1 < len ? B64[v >> 6 & 63] : '=';
        out[at++] = i + 2 < len ? B64[v & 63] : '=';
    }
    out[at] = '\0';
    return out;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> 8 * k);
}

/* The state document of an export with its checkpoint's meta text `from`
 * replaced by `to`, and, when nan_last, its last value made NaN; lengths
 * and CRC made right again (see api_persist.h), so only the change itself
 * is what an import may refuse. Malloc'd. */
static char *altered_state(const char *state, const char *from, const char *to,
                           int nan_last)
{
    cJSON *doc = cJSON_Parse(state);
    size_t len;
    unsigned char *in = unbase64(
        cJSON_GetObjectItem(doc, "checkpoint")->valuestring, &len);
    uint32_t meta_len = (uint32_t)in[8] | (uint32_t)in[9] << 8 |
                        (uint32_t)in[10] << 16 | (uint32_t)in[11] << 24;
    char *meta = malloc(meta_len + strlen(to) + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(meta);
    memcpy(meta, in + 28, meta_len);
    meta[meta_len] = '\0';
    char *at = from ? strstr(meta, from) : NULL;
    if (from)
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    char *changed = malloc(meta_len + strlen(to) + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(changed);
    if (at)
        snprintf(changed, meta_len + strlen(to) + 1, "%.*s%s%s",
                 (int)(at - meta), meta, to, at + strlen(from));
    else
        strcpy(changed, meta);
    size_t new_meta = strlen(changed), rest = len - 28 - meta_len;
    unsigned char *out = malloc(28 + new_meta + rest);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    memcpy(out, in, 28);
    memcpy(out + 28, changed, new_meta);
    memcpy(out + 28 + new_meta, in + 28 + meta_len, rest);
    size_t total = 28 + new_meta + rest;
    put_u32(out + 8, (uint32_t)new_meta);
    if (nan_last)
        put_u32(out + total - 4, 0x7fc00000u);
    uLong crc = crc32(0L, out, 24);
    crc = crc32(crc, out + 28, (uInt)(total - 28));
    put_u32(out + 24, (uint32_t)crc);
    char *text = base64(out, total);
    char *body = malloc(strlen(text) + 32);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    sprintf(body, "{\"checkpoint\": \"%s\"}", text);
    free(text);
    free(out);
    free(changed);
    free(meta);
    free(in);
    cJSON_Delete(doc);
    return body;
}

/* A state of NaN would make every later output null: refused. A step
 * count at the import limit is taken, and the session stepped on from it
 * still exports and imports (it was refused once past that limit, and so
 * lost at the next start). */
static void test_imports_that_cannot_go_on(void)
{
    CU_ASSERT_EQUAL_FATAL(request(&a, "POST", "/v1/networks/drop/sessions",
                                  "{\"id\": \"src\", \"batch\": 2}", NULL),
                          201);
    free(train_step(&a, "src", 1));
    char *state = NULL, *answer = NULL;
    CU_ASSERT_EQUAL_FATAL(request(&a, "GET", "/v1/networks/drop/sessions/src/"
                                  "state", NULL, &state), 200);
    /* The tools above are right: an unaltered copy is taken. */
    char *same = altered_state(state, NULL, "", 0);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/same/state",
                            same, NULL), 201);
    free(same);
    char *nan = altered_state(state, NULL, "", 1);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/nan/state",
                            nan, &answer), 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "finite"));
    free(answer);
    free(nan);
    CU_ASSERT_EQUAL(request(&b, "GET", "/v1/networks/drop/sessions/nan", NULL,
                            NULL), 404);
    char *late = altered_state(state, "\"steps\":1",
                               "\"steps\":9000000000000000", 0);
    CU_ASSERT_EQUAL(request(&b, "PUT", "/v1/networks/drop/sessions/late/state",
                            late, NULL), 201);
    free(late);
    for (int t = 0; t < 3; t++)
        free(train_step(&b, "late", t));
    char *later = NULL;
    CU_ASSERT_EQUAL_FATAL(request(&b, "GET", "/v1/networks/drop/sessions/late/"
                                  "state", NULL, &later), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(later, "9000000000000003"));
    CU_ASSERT_EQUAL(request(&a, "PUT", "/v1/networks/drop/sessions/late/state",
                            later, &answer), 201);
    free(answer);
    free(later);
    free(state);
}

/* Every export can be put back: a state's text larger than --max-body
 * (here 64 KiB against some 350 KB) is taken, up to the largest state a
 * session may hold. It was refused with 413, so a large session could not
 * move between replicas. The base64 may also come with its '/' escaped,
 * as some JSON encoders write it; a repeated member is refused. */
static void test_large_state_moves(void)
{
    static const char *const args[] = {"--max-body", "65536", NULL};
    it_server c, d;
    CU_ASSERT_EQUAL_FATAL(it_start(&c, args), 0);
    CU_ASSERT_EQUAL_FATAL(it_start(&d, args), 0);
    static const char *wide =
        "{\"name\": \"wide\", \"seed\": 3, \"nodes\": ["
        "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 1},"
        "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 1000}],"
        "\"edges\": [\"x >> r\"]}";
    CU_ASSERT_EQUAL_FATAL(request(&c, "POST", "/v1/networks", wide, NULL), 201);
    CU_ASSERT_EQUAL_FATAL(request(&d, "POST", "/v1/networks", wide, NULL), 201);
    CU_ASSERT_EQUAL_FATAL(request(&c, "POST", "/v1/networks/wide/sessions",
                                  "{\"id\": \"big\", \"batch\": 32}", NULL),
                          201);
    char body[512];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"inputs\": {\"x\": [");
    for (int b = 0; b < 32; b++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s[%d]", b ? "," : "",
                              b - 16);
    snprintf(body + n, sizeof body - n, "]}}");
    for (int t = 0; t < 2; t++)
        CU_ASSERT_EQUAL(request(&c, "POST", "/v1/networks/wide/sessions/big/"
                                "forward", body, NULL), 200);
    char *state = NULL, *again = NULL, *answer = NULL;
    CU_ASSERT_EQUAL_FATAL(request(&c, "GET", "/v1/networks/wide/sessions/big/"
                                  "state", NULL, &state), 200);
    CU_ASSERT(strlen(state) > 4 * 65536);
    CU_ASSERT_EQUAL(request(&d, "PUT", "/v1/networks/wide/sessions/big/state",
                            state, &answer), 201);
    CU_ASSERT_PTR_NOT_NULL(strstr(answer, "\"steps\":2"));
    free(answer);
    CU_ASSERT_EQUAL(request(&d, "GET", "/v1/networks/wide/sessions/big/state",
                            NULL, &again), 200);
    CU_ASSERT(again && strcmp(again, state) == 0);
    free(again);

    /* The same with every '/' written as the escape "\/". */
    size_t slashes = 0;
    for (const char *p = state; *p; p++)
        slashes += *p == '/';
    CU_ASSERT(slashes > 0);
    char *escaped = malloc(strlen(state) + slashes + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(escaped);
    char *o = escaped;
    for (const char *p = state; *p; p++) {
        if (*p == '/')
            *o++ = '\\';
        *o++ = *p;
    }
    *o = '\0';
    CU_ASSERT_EQUAL(request(&d, "PUT", "/v1/networks/wide/sessions/big2/state",
                            escaped, &answer), 201);
    free(answer);
    /* Both imports step on alike (one daemon: the same bits). */
    char *one = NULL, *two = NULL;
    CU_ASSERT_EQUAL(request(&d, "POST", "/v1/networks/wide/sessions/big/"
                            "forward", body, &one), 200);
    CU_ASSERT_EQUAL(request(&d, "POST", "/v1/networks/wide/sessions/big2/"
                            "forward", body, &two), 200);
    CU_ASSERT(one && two && strcmp(one, two) == 0);
    free(one);
    free(two);
    free(escaped);

    /* A member given twice is refused, and leaves no session. */
    char *twice = malloc(strlen(state) + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(twice);
    snprintf(twice, strlen(state) + 64, "{\"format\": \"nerved-checkpoint\", "
             "%s", state + 1);
    CU_ASSERT_EQUAL(request(&d, "PUT", "/v1/networks/wide/sessions/big3/state",
                            twice, &answer), 400);
    CU_ASSERT(answer && strstr(answer, "twice"));
    free(answer);
    free(twice);
    CU_ASSERT_EQUAL(request(&d, "GET", "/v1/networks/wide/sessions/big3", NULL,
                            NULL), 404);
    /* Other routes keep --max-body. */
    CU_ASSERT_EQUAL(request(&d, "POST", "/v1/networks/wide/sessions/big/forward",
                            state, NULL), 413);
    free(state);
    CU_ASSERT_EQUAL(it_stop(&c), 0);
    CU_ASSERT_EQUAL(it_stop(&d), 0);
}

int main(void)
{
    if (it_start(&a, NULL) || it_start(&b, NULL))
        return 2;
    long status;
    cJSON_Delete(it_json(&a, "POST", "/v1/networks", NETWORK, &status));
    cJSON_Delete(it_json(&b, "POST", "/v1/networks", NETWORK, &status));
    static const tu_test tests[] = {
        {"an imported session continues as the exported one",
         test_imported_session_continues},
        {"imports that could not go on are refused, those that can kept",
         test_imports_that_cannot_go_on},
        {"a state larger than --max-body moves", test_large_state_moves},
        {NULL, NULL}};
    int rc = tu_run_suite("state", tests);
    if (it_stop(&a) || it_stop(&b))
        rc = 1;
    return rc;
}
