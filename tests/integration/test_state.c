/*
 * test_state.c — GET and PUT .../sessions/{sid}/state between two daemons:
 * the imported session carries everything (an export of it is the same
 * document, byte for byte, and its next training steps through Dropout
 * equal the original's), and every import that does not fit is refused
 * without leaving a session behind.
 */
#include "itest.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        {NULL, NULL}};
    int rc = tu_run_suite("state", tests);
    if (it_stop(&a) || it_stop(&b))
        rc = 1;
    return rc;
}
