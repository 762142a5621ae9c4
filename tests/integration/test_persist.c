/*
 * test_persist.c — the data directory against the real daemon: networks,
 * imported and trained weights and session checkpoints survive kill -9; a
 * restored session continues bit for bit like the same session run here,
 * never interrupted; deletions stay deleted; damaged files are named at start and
 * skipped; preloaded networks keep their imported weights.
 *
 * The crash loop starts the daemon on one directory again and again,
 * issues changes and kills it with SIGKILL at a point drawn from a fixed
 * seed. A change that was answered must be there after the restart, bit
 * for bit; one that was in flight may be there or not, but whole.
 *
 * Bit for bit means against what the daemon itself reported: after every
 * answered change the test reads the weights back and keeps the daemon's
 * own values, which a restart must bring back exactly. What the test
 * computes itself with the engine (a network's initial weights, a fit, a
 * session's next step) comes from another process, whose OpenBLAS may run
 * other kernels, so it is compared to float32 rounding (it_float_close).
 */
#include "api.h"
#include "api_codec.h"
#include "nn_train.h"
#include "itest.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static nn_registry *reg;
static api_limits lim;

static const char *LOOP_NET =
    "{\"name\": \"loop\", \"seed\": 5, \"nodes\": ["
    "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
    "{\"name\": \"r\", \"type\": \"VanillaRNN\", \"num_unit\": 4,"
    " \"activation\": \"tanh\"},"
    "{\"name\": \"d\", \"type\": \"Dropout\", \"prob\": 0.6},"
    "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
    "\"edges\": [\"x >> r >> d >> o\", \"r << o\"]}";

static void ff_def(int k, char *out, size_t size)
{
    snprintf(out, size,
             "{\"name\": \"ff%d\", \"seed\": %d, \"nodes\": ["
             "{\"name\": \"x\", \"type\": \"Input\", \"shape\": 3},"
             "{\"name\": \"h\", \"type\": \"Dense\", \"num_unit\": 4},"
             "{\"name\": \"o\", \"type\": \"Dense\", \"num_unit\": 2}],"
             "\"edges\": [\"x >> h >> o\"]}", k, 100 + k);
}

static nn_graph *local_graph(const char *def)
{
    cJSON *j = cJSON_Parse(def);
    api_error err;
    nn_graph *g = api_graph_from_json(j, reg, &lim, &err);
    cJSON_Delete(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    return g;
}

/* The daemon's text for GET .../params of g. */
static char *params_text(nn_graph *g)
{
    api_enc *e = api_params_enc(g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    api_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
        api_buf_put(&b, chunk, n);
    api_buf_put(&b, "", 0);
    api_enc_free(e);
    return api_buf_finish(&b, NULL);
}

/* What PUT .../params of text does to g. */
static int params_import(nn_graph *g, const char *text, api_error *err)
{
    api_json j = {text, strlen(text), NULL};
    api_params_import *imp;
    if (api_params_read(g, &j, &imp, err))
        return -1;
    api_params_apply(g, imp);
    api_params_import_free(imp);
    return 0;
}

/* Requests that got no answer (the daemon was killed), and whether one
 * did since the daemon last started: no change after it reached the
 * daemon, so it must not enter the model. */
static int unanswered, dead;

/* One request; the body text (malloc'd) or NULL when no answer came. */
static char *request(const it_server *s, const char *method, const char *path,
                     const char *body, long *status)
{
    it_response r;
    *status = 0;
    if (it_request(s, method, path, body ? "application/json" : NULL, body,
                   body ? strlen(body) : 0, &r)) {
        it_response_free(&r);
        unanswered++;
        dead = 1;
        return NULL;
    }
    *status = r.status;
    return r.body;
}

static char *make_data_dir(void)
{
    char *dir = it_temp_dir("nerved-persist");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    return dir;
}

static void remove_tree(const char *dir) { it_remove_tree(dir); }

static int start_on(it_server *s, const char *dir, const char *log)
{
    const char *const args[] = {"--data-dir", dir, NULL};
    dead = 0;
    return it_start_logged(s, args, log);
}

/* ---------------------------------------------------------- sessions */

/* The input of step t of session k, and whether it trains (Dropout then
 * draws from the session's random stream). */
static void step_body(int k, long t, int batch, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "{\"inputs\": {\"x\": [");
    for (int b = 0; b < batch; b++) {
        n += (size_t)snprintf(out + n, size - n, "%s[", b ? ", " : "");
        for (int f = 0; f < 3; f++)
            n += (size_t)snprintf(out + n, size - n, "%s%g", f ? ", " : "",
                                  (double)((k * 5 + (int)t * 3 + b * 7 + f) %
                                           9 - 4) * 0.25);
        n += (size_t)snprintf(out + n, size - n, "]");
    }
    snprintf(out + n, size - n, "]}, \"train\": %s}",
             t % 3 == 0 ? "true" : "false");
}

/* What the daemon must answer to step t of session k (id sid, batch
 * rows): the same session run here from its start, never interrupted. */
static char *expected_step(nn_graph *loop, int k, const char *sid, int batch,
                           long t)
{
    nn_error e;
    nn_session *s = nn_session_new(loop, batch,
                                   nn_seed_derive(nn_graph_seed(loop), sid), &e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char body[1024];
    for (long i = 0; i <= t; i++) {
        step_body(k, i, batch, body, sizeof body);
        api_json j = {body, strlen(body), NULL};
        api_step_body b;
        api_error err;
        CU_ASSERT_EQUAL_FATAL(api_read_step_body(&j, 0, &b, &err), 0);
        CU_ASSERT_EQUAL_FATAL(api_json_bind_step_inputs(&j, b.inputs, s, loop,
                                                        &lim, &err), 0);
        CU_ASSERT_EQUAL_FATAL(nn_session_step(s, i % 3 == 0, &e), NN_OK);
    }
    /* The daemon's answer, as it writes it. */
    api_enc *enc = api_step_outputs_enc(s, loop, t + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    api_buf text = {0};
    char chunk[4096];
    size_t n;
    while ((n = api_enc_next(enc, chunk, sizeof chunk)) > 0)
        api_buf_put(&text, chunk, n);
    api_buf_put(&text, "", 0);
    api_enc_free(enc);
    nn_session_free(s);
    return api_buf_finish(&text, NULL);
}

/* ------------------------------------------------ the model of the disk */

enum { ABSENT, PRESENT, MAYBE };

/* How an expected weights document is compared with the daemon's. */
enum {
    REPORTED,   /* the daemon's own answer: bit for bit */
    COMPUTED,   /* computed here: to float32 rounding */
    SOLVED      /* a ridge solve computed here, whose small system can
                   magnify rounding differences: within 1e-3 relative */
};

typedef struct net_model {
    char name[16];
    char id[24];
    int state;
    char *weights;      /* expected params text when present */
    int weights_kind;   /* REPORTED, COMPUTED or SOLVED */
    char *other;        /* a change in flight: these are fine too */
    int other_kind;
} net_model;

typedef struct session_model {
    char id[24];
    int k, batch;
    int state;          /* PRESENT: restored at durable (or pending) */
    long steps;         /* in the running daemon */
    long durable;       /* steps at the last answered checkpoint, -1 none */
    long pending;       /* steps at a checkpoint in flight, -1 none */
} session_model;

#define MAX_NETS 64
#define MAX_SESSIONS 48

typedef struct model {
    net_model nets[MAX_NETS];
    int n_nets, next_ff;
    session_model sessions[MAX_SESSIONS];
    int n_sessions, next_session;
    nn_graph *loop;
} model;

static void set_text(char **slot, char *text)
{
    free(*slot);
    *slot = text;
}

static int values_match(const cJSON *got, const cJSON *want, int kind)
{
    if (!cJSON_IsNumber(got) || !cJSON_IsNumber(want))
        return 0;
    float g = (float)got->valuedouble, w = (float)want->valuedouble;
    if (kind == REPORTED)
        return memcmp(&g, &w, sizeof g) == 0;
    if (kind == SOLVED) {
        double scale = fabs(g) > fabs(w) ? fabs(g) : fabs(w);
        return fabs(g - w) <= 1e-3 * scale + 1e-5;
    }
    return it_float_close(g, w);
}

/* Whether two params documents hold the same weights: the same nodes,
 * weights and shapes, and values that match as kind says. */
static int params_match(const char *got_text, const char *want_text, int kind)
{
    cJSON *got = cJSON_Parse(got_text), *want = cJSON_Parse(want_text);
    const cJSON *gn = cJSON_GetObjectItem(got, "nodes");
    const cJSON *wn = cJSON_GetObjectItem(want, "nodes");
    int same = cJSON_IsObject(gn) && cJSON_IsObject(wn) &&
               cJSON_GetArraySize(gn) == cJSON_GetArraySize(wn);
    for (const cJSON *node = same ? wn->child : NULL; node && same;
         node = node->next) {
        const cJSON *gnode = cJSON_GetObjectItem(gn, node->string);
        same = cJSON_IsObject(gnode) &&
               cJSON_GetArraySize(gnode) == cJSON_GetArraySize(node);
        for (const cJSON *w = same ? node->child : NULL; w && same;
             w = w->next) {
            const cJSON *gw = cJSON_GetObjectItem(gnode, w->string);
            const cJSON *gd = cJSON_GetObjectItem(gw, "data");
            const cJSON *wd = cJSON_GetObjectItem(w, "data");
            same = cJSON_Compare(cJSON_GetObjectItem(gw, "shape"),
                                 cJSON_GetObjectItem(w, "shape"), 1) &&
                   cJSON_GetArraySize(gd) == cJSON_GetArraySize(wd);
            for (const cJSON *a = same ? gd->child : NULL,
                             *b = same ? wd->child : NULL;
                 a && b && same; a = a->next, b = b->next)
                same = values_match(a, b, kind);
        }
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    return same;
}

/* Whether a step's answer matches the one computed here: the same step
 * count and the same outputs to float32 rounding. */
static int step_matches(const char *got_text, const char *want_text)
{
    cJSON *got = cJSON_Parse(got_text), *want = cJSON_Parse(want_text);
    int same = got && want &&
               cJSON_Compare(cJSON_GetObjectItem(got, "step"),
                             cJSON_GetObjectItem(want, "step"), 1);
    const cJSON *go = cJSON_GetObjectItem(got, "outputs");
    const cJSON *wo = cJSON_GetObjectItem(want, "outputs");
    same = same && cJSON_GetArraySize(go) == cJSON_GetArraySize(wo);
    for (const cJSON *out = same ? wo->child : NULL; out && same;
         out = out->next) {
        const cJSON *g = cJSON_GetObjectItem(go, out->string);
        same = cJSON_GetArraySize(g) == cJSON_GetArraySize(out);
        for (const cJSON *gr = same ? g->child : NULL, *wr = out->child;
             gr && wr && same; gr = gr->next, wr = wr->next) {
            same = cJSON_GetArraySize(gr) == cJSON_GetArraySize(wr);
            for (const cJSON *a = gr->child, *b = wr->child;
                 a && b && same; a = a->next, b = b->next)
                same = values_match(a, b, COMPUTED);
        }
    }
    cJSON_Delete(got);
    cJSON_Delete(want);
    return same;
}

/* After an answered change: what the daemon now reports becomes the
 * expectation, bit for bit. When the daemon dies before answering the
 * read, the computed expectation stays, compared as it was computed. */
static void take_reported(const it_server *s, net_model *n);

/* Checks what the restarted daemon holds against the model, then makes
 * the model what the daemon holds (resolving changes that were in
 * flight). */
static void verify(const it_server *s, model *m, int round)
{
    long status;
    char path[256];
    char *list = request(s, "GET", "/v1/networks", NULL, &status);
    CU_ASSERT_EQUAL_FATAL(status, 200);
    cJSON *j = cJSON_Parse(list);
    free(list);
    const cJSON *nets = cJSON_GetObjectItem(j, "networks");
    /* Nothing the model does not know of. */
    for (const cJSON *n = nets ? nets->child : NULL; n; n = n->next) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(n, "name"));
        int known = 0;
        for (int i = 0; i < m->n_nets && name; i++)
            known |= strcmp(m->nets[i].name, name) == 0 &&
                     m->nets[i].state != ABSENT;
        if (!known)
            fprintf(stderr, "round %d: unexpected network %s\n", round,
                    name ? name : "(unnamed)");
        CU_ASSERT(known);
    }
    cJSON_Delete(j);

    for (int i = 0; i < m->n_nets; i++) {
        net_model *n = &m->nets[i];
        snprintf(path, sizeof path, "/v1/networks/%s/params", n->name);
        char *got = request(s, "GET", path, NULL, &status);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        if (status == 404) {
            if (n->state == PRESENT)
                fprintf(stderr, "round %d: network %s lost\n", round, n->name);
            CU_ASSERT(n->state != PRESENT);
            n->state = ABSENT;
        } else {
            CU_ASSERT_EQUAL(status, 200);
            if (n->state == ABSENT)
                fprintf(stderr, "round %d: network %s came back\n", round,
                        n->name);
            CU_ASSERT(n->state != ABSENT);
            int same = n->weights && params_match(got, n->weights,
                                                  n->weights_kind);
            int other = n->other && params_match(got, n->other, n->other_kind);
            if (!same && !other)
                fprintf(stderr, "round %d: network %s has other weights\n",
                        round, n->name);
            CU_ASSERT(same || other);
            /* What came back is the daemon's own: from now on it must
             * come back bit for bit. */
            set_text(&n->weights, got);
            n->weights_kind = REPORTED;
            got = NULL;
            /* Same id as when it was created. */
            snprintf(path, sizeof path, "/v1/networks/%s", n->name);
            char *desc = request(s, "GET", path, NULL, &status);
            cJSON *dj = cJSON_Parse(desc);
            const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(dj, "id"));
            CU_ASSERT_PTR_NOT_NULL_FATAL(id);
            if (n->id[0])
                CU_ASSERT_STRING_EQUAL(id, n->id);
            snprintf(n->id, sizeof n->id, "%s", id);
            cJSON_Delete(dj);
            free(desc);
            n->state = PRESENT;
        }
        set_text(&n->other, NULL);
        free(got);
    }

    for (int i = 0; i < m->n_sessions; i++) {
        session_model *q = &m->sessions[i];
        snprintf(path, sizeof path, "/v1/networks/loop/sessions/%s", q->id);
        char *got = request(s, "GET", path, NULL, &status);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        cJSON *sj = cJSON_Parse(got);
        free(got);
        if (status == 404) {
            if (q->state == PRESENT && q->durable >= 0)
                fprintf(stderr, "round %d: session %s lost\n", round, q->id);
            CU_ASSERT(!(q->state == PRESENT && q->durable >= 0));
            q->state = ABSENT;
            cJSON_Delete(sj);
            continue;
        }
        CU_ASSERT_EQUAL(status, 200);
        if (q->state == ABSENT)
            fprintf(stderr, "round %d: session %s came back\n", round, q->id);
        CU_ASSERT(q->state != ABSENT);
        long steps = (long)cJSON_GetObjectItem(sj, "steps")->valuedouble;
        cJSON_Delete(sj);
        if (steps != q->durable && steps != q->pending)
            fprintf(stderr, "round %d: session %s at step %ld, checkpoints at "
                    "%ld and %ld\n", round, q->id, steps, q->durable,
                    q->pending);
        CU_ASSERT(steps == q->durable || steps == q->pending);
        /* It continues exactly where the checkpoint was. */
        char body[1024];
        step_body(q->k, steps, q->batch, body, sizeof body);
        snprintf(path, sizeof path, "/v1/networks/loop/sessions/%s/forward",
                 q->id);
        got = request(s, "POST", path, body, &status);
        CU_ASSERT_EQUAL(status, 200);
        char *want = expected_step(m->loop, q->k, q->id, q->batch, steps);
        int matches = got && step_matches(got, want);
        if (!matches)
            fprintf(stderr, "round %d: session %s step %ld:\n  got  %s\n  "
                    "want %s\n", round, q->id, steps, got ? got : "-", want);
        CU_ASSERT(matches);
        free(got);
        free(want);
        q->state = PRESENT;
        q->durable = steps;
        q->pending = -1;
        q->steps = steps + 1;
    }
}

/* ---------------------------------------------------------- the changes */

typedef struct killer {
    it_server *server;
    long delay_us;
    atomic_int done;
} killer;

static void *kill_later(void *arg)
{
    killer *k = arg;
    struct timespec delay = {0, k->delay_us * 1000};
    nanosleep(&delay, NULL);
    it_kill(k->server);
    atomic_store(&k->done, 1);
    return NULL;
}

static int pick(nn_rng *rng, int n)
{
    return (int)(nn_rng_u64(rng) % (uint64_t)n);
}

/* A random present feedforward network, or -1. */
static int some_ff(model *m, nn_rng *rng)
{
    int candidates[MAX_NETS], n = 0;
    for (int i = 0; i < m->n_nets; i++)
        if (m->nets[i].state == PRESENT && strncmp(m->nets[i].name, "ff", 2) == 0)
            candidates[n++] = i;
    return n ? candidates[pick(rng, n)] : -1;
}

static int some_session(model *m, nn_rng *rng)
{
    int candidates[MAX_SESSIONS], n = 0;
    for (int i = 0; i < m->n_sessions; i++)
        if (m->sessions[i].state == PRESENT)
            candidates[n++] = i;
    return n ? candidates[pick(rng, n)] : -1;
}

static void op_create_network(const it_server *s, model *m)
{
    if (m->n_nets == MAX_NETS)
        return;
    net_model *n = &m->nets[m->n_nets++];
    char def[1024];
    int k = m->next_ff++;
    ff_def(k, def, sizeof def);
    snprintf(n->name, sizeof n->name, "ff%d", k);
    nn_graph *g = local_graph(def);
    n->weights = params_text(g);
    n->weights_kind = COMPUTED;
    nn_graph_free(g);
    n->state = MAYBE;
    long status;
    char *got = request(s, "POST", "/v1/networks", def, &status);
    if (status == 201) {
        cJSON *j = cJSON_Parse(got);
        snprintf(n->id, sizeof n->id, "%s",
                 cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
        cJSON_Delete(j);
        n->state = PRESENT;
        take_reported(s, n);
    }
    free(got);
}

static void op_import(const it_server *s, model *m, nn_rng *rng)
{
    int i = some_ff(m, rng);
    if (i < 0)
        return;
    net_model *n = &m->nets[i];
    char def[1024];
    ff_def(atoi(n->name + 2), def, sizeof def);
    nn_graph *g = local_graph(def);
    for (int x = 0; x < nn_graph_node_count(g); x++) {
        nn_node *node = nn_graph_node_at(g, x);
        for (int w = 0; w < nn_node_weight_count(node); w++) {
            nn_tensor *t = nn_node_weight_at(node, w);
            for (size_t e = 0; e < nn_tensor_numel(t); e++)
                t->data[e] = (float)nn_rng_normal(rng);
        }
    }
    char *doc = params_text(g);
    /* What the daemon holds after importing this very text. */
    api_error err;
    CU_ASSERT_EQUAL_FATAL(params_import(g, doc, &err), 0);
    set_text(&n->other, params_text(g));
    n->other_kind = COMPUTED;
    nn_graph_free(g);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/params", n->name);
    long status;
    free(request(s, "PUT", path, doc, &status));
    free(doc);
    if (status == 200) {
        set_text(&n->weights, n->other);
        n->weights_kind = n->other_kind;
        n->other = NULL;
        take_reported(s, n);
    }
}

/* Trains one: a ridge fit of o over six steps of random data. The test
 * computes the same fit with the engine to know what an answered (or
 * interrupted) fit leaves on disk. */
static void op_fit(const it_server *s, model *m, nn_rng *rng)
{
    enum { T = 6 };
    int i = some_ff(m, rng);
    if (i < 0)
        return;
    net_model *n = &m->nets[i];
    char def[1024];
    ff_def(atoi(n->name + 2), def, sizeof def);
    nn_graph *g = local_graph(def);
    api_error err;
    CU_ASSERT_EQUAL_FATAL(params_import(g, n->weights, &err), 0);
    int xd[3] = {1, T, 3}, yd[3] = {1, T, 2};
    nn_shape xs = nn_shape_make(3, xd), ys = nn_shape_make(3, yd);
    nn_tensor *x = nn_tensor_new(&xs), *y = nn_tensor_new(&ys);
    char body[2048];
    int len = snprintf(body, sizeof body, "{\"method\": \"ridge\", \"wait\": "
                       "true, \"beta\": 0.001, \"inputs\": {\"x\": [[");
    for (int t = 0; t < T; t++)
        for (int f = 0; f < 3; f++) {
            x->data[t * 3 + f] = (float)nn_rng_normal(rng);
            len += snprintf(body + len, sizeof body - (size_t)len, "%s%.9g%s",
                            f ? ", " : t ? ", [" : "[", x->data[t * 3 + f],
                            f == 2 ? "]" : "");
        }
    len += snprintf(body + len, sizeof body - (size_t)len,
                    "]]}, \"targets\": {\"o\": [[");
    for (int t = 0; t < T; t++)
        for (int f = 0; f < 2; f++) {
            y->data[t * 2 + f] = (float)nn_rng_normal(rng);
            len += snprintf(body + len, sizeof body - (size_t)len, "%s%.9g%s",
                            f ? ", " : t ? ", [" : "[", y->data[t * 2 + f],
                            f == 1 ? "]" : "");
        }
    snprintf(body + len, sizeof body - (size_t)len, "]]}}");
    nn_error e;
    nn_binding in = {"x", x}, tg = {"o", y};
    nn_ridge *r = nn_ridge_new(g, &tg, 1, &e);
    nn_session *ss = nn_session_new(g, 1, nn_graph_seed(g), &e);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_feed(r, ss, &in, 1, &tg, 1, T, 0, &e), NN_OK);
    CU_ASSERT_EQUAL_FATAL(nn_ridge_solve(r, g, 0.001, NULL, &e), NN_OK);
    set_text(&n->other, params_text(g));
    n->other_kind = SOLVED;
    nn_session_free(ss);
    nn_ridge_free(r);
    nn_tensor_free(x);
    nn_tensor_free(y);
    nn_graph_free(g);
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/fit", n->name);
    long status;
    free(request(s, "POST", path, body, &status));
    if (status == 200) {
        set_text(&n->weights, n->other);
        n->weights_kind = n->other_kind;
        n->other = NULL;
        take_reported(s, n);
    }
}

static void take_reported(const it_server *s, net_model *n)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s/params", n->name);
    long status;
    char *got = request(s, "GET", path, NULL, &status);
    if (status == 200) {
        set_text(&n->weights, got);
        n->weights_kind = REPORTED;
    } else {
        free(got);
    }
}

static void op_delete_network(const it_server *s, model *m, nn_rng *rng)
{
    int i = some_ff(m, rng);
    if (i < 0)
        return;
    net_model *n = &m->nets[i];
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/%s", n->name);
    n->state = MAYBE;
    long status;
    free(request(s, "DELETE", path, NULL, &status));
    if (status == 200)
        n->state = ABSENT;
}

static int checkpoint(const it_server *s, session_model *q)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/loop/sessions/%s/checkpoint",
             q->id);
    q->pending = q->steps;
    long status;
    char *got = request(s, "POST", path, NULL, &status);
    if (status == 200) {
        cJSON *j = cJSON_Parse(got);
        CU_ASSERT_EQUAL((long)cJSON_GetObjectItem(j, "steps")->valuedouble,
                        q->steps);
        cJSON_Delete(j);
        q->durable = q->steps;
        q->pending = -1;
    }
    free(got);
    return status == 200;
}

static void op_step_and_checkpoint(const it_server *s, model *m, nn_rng *rng)
{
    int i = some_session(m, rng);
    if (i < 0)
        return;
    session_model *q = &m->sessions[i];
    char path[128], body[1024];
    snprintf(path, sizeof path, "/v1/networks/loop/sessions/%s/forward", q->id);
    for (int n = 1 + pick(rng, 3); n > 0; n--) {
        step_body(q->k, q->steps, q->batch, body, sizeof body);
        long status;
        free(request(s, "POST", path, body, &status));
        if (status != 200)
            return; /* killed: the running state is gone anyway */
        q->steps++;
    }
    checkpoint(s, q);
}

static void op_new_session(const it_server *s, model *m, nn_rng *rng)
{
    if (m->n_sessions == MAX_SESSIONS)
        return;
    session_model *q = &m->sessions[m->n_sessions];
    memset(q, 0, sizeof *q);
    q->k = m->next_session++;
    q->batch = 1 + pick(rng, 2);
    /* Both kinds of id: the client's and the daemon's own. */
    int named = q->k % 2 == 0;
    char body[128];
    if (named)
        snprintf(body, sizeof body, "{\"batch\": %d, \"id\": \"q-%d\"}",
                 q->batch, q->k);
    else
        snprintf(body, sizeof body, "{\"batch\": %d}", q->batch);
    long status;
    char *got = request(s, "POST", "/v1/networks/loop/sessions", body, &status);
    if (status != 201) {
        free(got);
        return; /* not answered: a session without checkpoint is not kept */
    }
    cJSON *j = cJSON_Parse(got);
    snprintf(q->id, sizeof q->id, "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
    cJSON_Delete(j);
    free(got);
    q->state = PRESENT;
    q->durable = q->pending = -1;
    /* The daemon's own ids never come again, across kills too. */
    int slot = m->n_sessions;
    for (int i = 0; i < m->n_sessions; i++)
        if (strcmp(m->sessions[i].id, q->id) == 0) {
            fprintf(stderr, "session id %s handed out again\n", q->id);
            CU_FAIL("a session id was handed out again");
            slot = i;
        }
    if (slot != m->n_sessions)
        m->sessions[slot] = *q;
    else
        m->n_sessions++;
    checkpoint(s, &m->sessions[slot]);
}

static void op_delete_session(const it_server *s, model *m, nn_rng *rng)
{
    int i = some_session(m, rng);
    if (i < 0)
        return;
    session_model *q = &m->sessions[i];
    char path[128];
    snprintf(path, sizeof path, "/v1/networks/loop/sessions/%s", q->id);
    q->state = MAYBE;
    long status;
    free(request(s, "DELETE", path, NULL, &status));
    if (status == 200)
        q->state = ABSENT;
}

/* ----------------------------------------------------------------- tests */

static void test_crash_loop(void)
{
    char *dir = make_data_dir();
    model *m = calloc(1, sizeof *m);
    m->loop = local_graph(LOOP_NET);
    nn_rng rng;
    nn_rng_seed(&rng, 2022);
    it_server s;
    long status;

    /* Networks, an import, sessions with checkpoints; then a crash. */
    CU_ASSERT_EQUAL_FATAL(start_on(&s, dir, NULL), 0);
    free(request(&s, "POST", "/v1/networks", LOOP_NET, &status));
    CU_ASSERT_EQUAL_FATAL(status, 201);
    net_model *loop = &m->nets[m->n_nets++];
    snprintf(loop->name, sizeof loop->name, "loop");
    snprintf(loop->id, sizeof loop->id, "n1");
    loop->weights = params_text(m->loop);
    loop->weights_kind = COMPUTED;
    loop->state = PRESENT;
    take_reported(&s, loop);
    for (int k = 0; k < 3; k++)
        op_create_network(&s, m);
    op_import(&s, m, &rng);
    op_fit(&s, m, &rng);
    for (int k = 0; k < 4; k++)
        op_new_session(&s, m, &rng);
    for (int k = 0; k < 6; k++)
        op_step_and_checkpoint(&s, m, &rng);
    CU_ASSERT_EQUAL(m->n_sessions, 4);
    for (int i = 0; i < m->n_nets; i++)
        CU_ASSERT_EQUAL(m->nets[i].state, PRESENT);
    it_kill(&s);

    int rounds = 24, kills_in_flight = 0;
    for (int round = 0; round < rounds; round++) {
        CU_ASSERT_EQUAL_FATAL(start_on(&s, dir, NULL), 0);
        verify(&s, m, round);
        /* The loop network itself never changes; its weights are the
         * reference's. */
        killer k = {&s, pick(&rng, 4000), 0};
        int unanswered_before = unanswered;
        int kill_at = pick(&rng, 8);
        pthread_t thread;
        int started = 0;
        /* Changes go on until the kill has landed, however fast they are,
         * so it lands in the middle of one. */
        for (int op = 0; op < 200 && !dead &&
                         (op < 8 || !atomic_load(&k.done));
             op++) {
            if (op == kill_at) {
                CU_ASSERT_EQUAL_FATAL(pthread_create(&thread, NULL, kill_later,
                                                     &k), 0);
                started = 1;
            }
            switch (pick(&rng, 7)) {
            case 0: op_create_network(&s, m); break;
            case 1: op_import(&s, m, &rng); break;
            case 6: op_fit(&s, m, &rng); break;
            case 2: op_delete_network(&s, m, &rng); break;
            case 3: op_new_session(&s, m, &rng); break;
            case 4: op_delete_session(&s, m, &rng); break;
            default: op_step_and_checkpoint(&s, m, &rng); break;
            }
        }
        if (started)
            pthread_join(thread, NULL);
        /* Did the kill land while changes were still being made? */
        kills_in_flight += unanswered > unanswered_before;
    }
    CU_ASSERT_EQUAL_FATAL(start_on(&s, dir, NULL), 0);
    verify(&s, m, rounds);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    fprintf(stderr, "crash loop: %d kills, %d while changes ran\n", rounds,
            kills_in_flight);
    /* Most kills must have hit running changes, or the loop proves little. */
    CU_ASSERT(kills_in_flight >= rounds / 2);

    for (int i = 0; i < m->n_nets; i++) {
        free(m->nets[i].weights);
        free(m->nets[i].other);
    }
    nn_graph_free(m->loop);
    free(m);
    remove_tree(dir);
    free(dir);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void damage(const char *path, long at, int truncate_to)
{
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    if (truncate_to >= 0) {
        CU_ASSERT_EQUAL(ftruncate(fileno(f), truncate_to), 0);
    } else {
        fseek(f, at, SEEK_SET);
        int c = fgetc(f);
        fseek(f, at, SEEK_SET);
        fputc(c ^ 0x20, f);
    }
    fclose(f);
}

static void test_damaged_files_are_skipped(void)
{
    char *dir = make_data_dir();
    char log[600], path[700], data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/stderr.log", dir);
    it_server s;
    long status;
    CU_ASSERT_EQUAL_FATAL(start_on(&s, data, NULL), 0);
    char def[1024];
    for (int k = 0; k < 3; k++) {
        ff_def(k, def, sizeof def);
        free(request(&s, "POST", "/v1/networks", def, &status));
        CU_ASSERT_EQUAL(status, 201);
    }
    free(request(&s, "POST", "/v1/networks", LOOP_NET, &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions", "{\"id\": \"a\"}",
                 &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions", "{\"id\": \"b\"}",
                 &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions/a/checkpoint", NULL,
                 &status));
    CU_ASSERT_EQUAL(status, 200);
    free(request(&s, "POST", "/v1/networks/loop/sessions/b/checkpoint", NULL,
                 &status));
    CU_ASSERT_EQUAL(status, 200);
    char *ff2 = request(&s, "GET", "/v1/networks/ff2/params", NULL, &status);
    CU_ASSERT_EQUAL(it_stop(&s), 0);

    /* ff0 (n1) loses a bit, ff1 (n2) its tail, checkpoint a its tail; a
     * stranger and an empty checkpoint join them. */
    snprintf(path, sizeof path, "%s/net-n1.nerved", data);
    damage(path, 40, -1);
    snprintf(path, sizeof path, "%s/net-n2.nerved", data);
    damage(path, 0, 100);
    snprintf(path, sizeof path, "%s/ckpt-n4-a.nerved", data);
    damage(path, 0, 30);
    snprintf(path, sizeof path, "%s/net-n9.nerved", data);
    FILE *f = fopen(path, "w");
    fputs("not a network at all", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/ckpt-n4-zz.nerved", data);
    fclose(fopen(path, "w"));

    CU_ASSERT_EQUAL_FATAL(start_on(&s, data, log), 0);
    CU_ASSERT(file_contains(log, "net-n1.nerved: CRC-32 mismatch"));
    CU_ASSERT(file_contains(log, "net-n2.nerved:") &&
              file_contains(log, "truncated or damaged"));
    CU_ASSERT(file_contains(log, "ckpt-n4-a.nerved:"));
    CU_ASSERT(file_contains(log, "net-n9.nerved: truncated"));
    CU_ASSERT(file_contains(log, "ckpt-n4-zz.nerved: truncated"));
    CU_ASSERT(file_contains(log, "2 networks and 1 session checkpoints "
                                 "restored"));
    /* The others are intact and served. */
    char *got = request(&s, "GET", "/v1/networks/ff2/params", NULL, &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(got && ff2 && strcmp(got, ff2) == 0);
    free(got);
    free(request(&s, "GET", "/v1/networks/loop/sessions/b", NULL, &status));
    CU_ASSERT_EQUAL(status, 200);
    free(request(&s, "GET", "/v1/networks/loop/sessions/a", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    free(request(&s, "GET", "/v1/networks/ff0", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    /* A new network does not take an id a skipped file holds (it jumps
     * to the recorded marks, past n9). */
    ff_def(5, def, sizeof def);
    got = request(&s, "POST", "/v1/networks", def, &status);
    CU_ASSERT_EQUAL(status, 201);
    const char *id = got ? strstr(got, "\"id\":\"n") : NULL;
    CU_ASSERT(id && atol(id + strlen("\"id\":\"n")) > 9);
    free(got);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    free(ff2);
    remove_tree(dir);
    free(dir);
}

static void test_deletions_and_checkpoint_answers(void)
{
    char *dir = make_data_dir();
    it_server s;
    long status;
    CU_ASSERT_EQUAL_FATAL(start_on(&s, dir, NULL), 0);
    free(request(&s, "POST", "/v1/networks", LOOP_NET, &status));
    char def[1024];
    ff_def(1, def, sizeof def);
    free(request(&s, "POST", "/v1/networks", def, &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions",
                 "{\"id\": \"keep\", \"batch\": 2}", &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions", "{\"id\": \"drop\"}",
                 &status));
    char *got = request(&s, "POST", "/v1/networks/loop/sessions/keep/checkpoint",
                        NULL, &status);
    CU_ASSERT_EQUAL(status, 200);
    cJSON *j = cJSON_Parse(got);
    free(got);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")),
                           "keep");
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(j, "batch")->valueint, 2);
    const cJSON *saved = cJSON_GetObjectItem(j, "checkpoint");
    CU_ASSERT(cJSON_GetObjectItem(saved, "bytes")->valuedouble > 28);
    const cJSON *state = cJSON_GetArrayItem(cJSON_GetObjectItem(saved,
                                                                "states"), 0);
    CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(state,
                                                                    "node")),
                           "r");
    cJSON_Delete(j);
    free(request(&s, "POST", "/v1/networks/loop/sessions/drop/checkpoint",
                 NULL, &status));
    free(request(&s, "DELETE", "/v1/networks/loop/sessions/drop", NULL,
                 &status));
    CU_ASSERT_EQUAL(status, 200);
    free(request(&s, "DELETE", "/v1/networks/ff1", NULL, &status));
    CU_ASSERT_EQUAL(status, 200);
    free(request(&s, "POST", "/v1/networks/loop/sessions/nope/checkpoint",
                 NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    it_kill(&s);

    CU_ASSERT_EQUAL_FATAL(start_on(&s, dir, NULL), 0);
    free(request(&s, "GET", "/v1/networks/loop/sessions/keep", NULL, &status));
    CU_ASSERT_EQUAL(status, 200);
    free(request(&s, "GET", "/v1/networks/loop/sessions/drop", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    free(request(&s, "GET", "/v1/networks/ff1", NULL, &status));
    CU_ASSERT_EQUAL(status, 404);
    /* Deleting the network takes its checkpoints along. */
    free(request(&s, "DELETE", "/v1/networks/loop", NULL, &status));
    CU_ASSERT_EQUAL(status, 200);
    it_kill(&s);
    DIR *d = opendir(dir);
    int files = 0, marks = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        /* What stays is the record of the ids handed out. */
        int is_marks = strcmp(e->d_name, "ids.nerved") == 0;
        marks += is_marks;
        files += e->d_name[0] != '.' && !is_marks;
    }
    closedir(d);
    CU_ASSERT_EQUAL(files, 0);
    CU_ASSERT_EQUAL(marks, 1);
    remove_tree(dir);
    free(dir);

    /* Without a data directory there is nowhere to checkpoint to. */
    CU_ASSERT_EQUAL_FATAL(it_start(&s, NULL), 0);
    free(request(&s, "POST", "/v1/networks", LOOP_NET, &status));
    free(request(&s, "POST", "/v1/networks/loop/sessions", NULL, &status));
    got = request(&s, "POST", "/v1/networks/loop/sessions/s1/checkpoint", NULL,
                  &status);
    CU_ASSERT_EQUAL(status, 409);
    CU_ASSERT(got && strstr(got, "--data-dir") != NULL);
    free(got);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
}

static void test_preloaded_networks_keep_imports(void)
{
    char *dir = make_data_dir();
    char pre[600], data[600], path[700];
    snprintf(pre, sizeof pre, "%s/pre", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(pre, 0700), 0);
    snprintf(path, sizeof path, "%s/ff3.json", pre);
    char def[1024];
    ff_def(3, def, sizeof def);
    FILE *f = fopen(path, "w");
    fputs(def, f);
    fclose(f);
    const char *const args[] = {"--data-dir", data, "--preload", pre, NULL};
    it_server s;
    long status;
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    nn_graph *g = local_graph(def);
    nn_node *h = nn_graph_find(g, "h");
    nn_node_weight_at(h, 0)->data[0] = 0.5f;
    char *doc = params_text(g);
    free(request(&s, "PUT", "/v1/networks/ff3/params", doc, &status));
    CU_ASSERT_EQUAL(status, 200);
    it_kill(&s);
    CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
    char *got = request(&s, "GET", "/v1/networks/ff3/params", NULL, &status);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT(got && strcmp(got, doc) == 0);
    free(got);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    free(doc);
    nn_graph_free(g);
    remove_tree(dir);
    free(dir);
}

/* A --preload file's name may hold what a definition's "name" may not (a
 * space here); the network keeps it across restarts, and no copy of it
 * appears. A file that would name a network "." is refused at start. */
static void test_preloaded_names_survive_restarts(void)
{
    char *dir = make_data_dir();
    char pre[600], data[600], path[700];
    snprintf(pre, sizeof pre, "%s/pre", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(pre, 0700), 0);
    snprintf(path, sizeof path, "%s/my model.json", pre);
    /* no "name": the file's gives it */
    char def[1024];
    ff_def(3, def, sizeof def);
    char *def_unnamed = strchr(def, ',') + 1;
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputc('{', f);
    fputs(def_unnamed, f);
    fclose(f);
    const char *const args[] = {"--data-dir", data, "--preload", pre, NULL};
    for (int start = 0; start < 3; start++) {
        it_server s;
        long status;
        CU_ASSERT_EQUAL_FATAL(it_start(&s, args), 0);
        char *list = request(&s, "GET", "/v1/networks", NULL, &status);
        CU_ASSERT_EQUAL(status, 200);
        cJSON *j = cJSON_Parse(list);
        free(list);
        const cJSON *nets = cJSON_GetObjectItem(j, "networks");
        CU_ASSERT_EQUAL(cJSON_GetArraySize(nets), 1);
        const cJSON *first = cJSON_GetArrayItem(nets, 0);
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(first,
                                                                    "name"));
        CU_ASSERT(name && strcmp(name, "my model") == 0);
        cJSON_Delete(j);
        CU_ASSERT_EQUAL(it_stop(&s), 0);
    }
    snprintf(path, sizeof path, "%s/..json", pre);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputc('{', f);
    fputs(def_unnamed, f);
    fclose(f);
    it_server s;
    CU_ASSERT_NOT_EQUAL(it_start(&s, args), 0);
    remove_tree(dir);
    free(dir);
}

/* --------------------------------------------------------------- ids */

/* POSTs body to path, expects 201, returns the answer's "id" (static). */
static const char *created_id(const it_server *s, const char *path,
                              const char *body)
{
    static char ids[4][32];
    static int turn;
    long status;
    char *got = request(s, "POST", path, body, &status);
    CU_ASSERT_EQUAL_FATAL(status, 201);
    cJSON *j = cJSON_Parse(got);
    char *id = ids[turn++ % 4];
    snprintf(id, sizeof ids[0], "%s",
             cJSON_GetStringValue(cJSON_GetObjectItem(j, "id")));
    cJSON_Delete(j);
    free(got);
    return id;
}

/* The daemon never hands an id out twice: not the id of a network deleted
 * before a restart, not that of a session that was never checkpointed,
 * neither after a SIGTERM nor after kill -9. A damaged record of the marks
 * is named at start; the ids the other files name stay reserved. */
static void test_ids_are_never_handed_out_twice(void)
{
    char *dir = make_data_dir();
    char log[600], path[700], data[600], def[1024];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/stderr.log", dir);
    char seen[64][32], kept[8][32];
    int n_seen = 0;
    it_server s;
    long status;
    CU_ASSERT_EQUAL_FATAL(start_on(&s, data, NULL), 0);
    for (int round = 0; round < 4; round++) {
        /* A network kept, one deleted, and a session never checkpointed
         * on the first. */
        ff_def(2 * round, def, sizeof def);
        snprintf(kept[round], sizeof kept[0], "%s",
                 created_id(&s, "/v1/networks", def));
        snprintf(seen[n_seen++], sizeof seen[0], "%s", kept[round]);
        char sessions[96];
        snprintf(sessions, sizeof sessions, "/v1/networks/%s/sessions",
                 kept[round]);
        snprintf(seen[n_seen++], sizeof seen[0], "%s",
                 created_id(&s, sessions, "{}"));
        ff_def(2 * round + 1, def, sizeof def);
        const char *gone = created_id(&s, "/v1/networks", def);
        snprintf(seen[n_seen++], sizeof seen[0], "%s", gone);
        snprintf(path, sizeof path, "/v1/networks/%s", gone);
        free(request(&s, "DELETE", path, NULL, &status));
        CU_ASSERT_EQUAL(status, 200);
        if (round % 2)
            it_kill(&s);
        else
            CU_ASSERT_EQUAL(it_stop(&s), 0);
        CU_ASSERT_EQUAL_FATAL(start_on(&s, data, NULL), 0);
    }
    for (int i = 0; i < n_seen; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(seen[i], seen[k]) == 0) {
                fprintf(stderr, "id %s handed out twice\n", seen[i]);
                CU_FAIL("an id was handed out twice");
            }

    /* Damaged marks are named; a new network still avoids the ids of the
     * networks on disk. */
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    snprintf(path, sizeof path, "%s/ids.nerved", data);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("nerved ids 1\nnetworks -\n", f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(start_on(&s, data, log), 0);
    CU_ASSERT(file_contains(log, "ids.nerved: not the format"));
    ff_def(9, def, sizeof def);
    const char *fresh = created_id(&s, "/v1/networks", def);
    for (int round = 0; round < 4; round++)
        CU_ASSERT_STRING_NOT_EQUAL(fresh, kept[round]);
    CU_ASSERT_EQUAL(it_stop(&s), 0);
    remove_tree(dir);
    free(dir);
}

int main(void)
{
    nn_error e;
    reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &e) != NN_OK)
        return 2;
    lim = api_default_limits();
    static const tu_test tests[] = {
        {"deletions stay deleted; checkpoints answer what they saved",
         test_deletions_and_checkpoint_answers},
        {"damaged files are named and skipped", test_damaged_files_are_skipped},
        {"preloaded networks keep their imported weights",
         test_preloaded_networks_keep_imports},
        {"a preload file's name survives restarts; '.' is refused",
         test_preloaded_names_survive_restarts},
        {"ids are never handed out twice", test_ids_are_never_handed_out_twice},
        {"what was answered survives kill -9, bit for bit", test_crash_loop},
        {NULL, NULL}};
    int rc = tu_run_suite("persist", tests);
    nn_registry_free(reg);
    return rc;
}
