/*
 * srv_state.c — GET and PUT .../sessions/{sid}/state (see srv_state.h):
 * the checkpoint format of the data directory, carried in JSON as base64
 * because the HTTP layer takes JSON bodies only.
 */
#include "srv_state.h"
#include "api_codec.h"
#include "api_persist.h"
#include "srv_persist.h"
#include "srv_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FORMAT "nerved-checkpoint"

/* ------------------------------------------------------------ base64 */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The standard alphabet with padding, NUL-terminated; malloc'd, or NULL. */
/* Writes the base64 of in into out (4 * ceil(len / 3) bytes, no NUL). */
static void base64_into(char *out, const unsigned char *in, size_t len)
{
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < len ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? B64[v & 63] : '=';
    }
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Decodes padded standard base64, in[0..n), into out, which has room for
 * n / 4 * 3 bytes. Returns the length, or -1 when it is not base64. */
static long base64_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    size_t at = 0;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = b64_value(in[i + k]);
        /* '=' only at the very end: xx== or xxx=. */
        int pad = last && in[i + 3] == '=' ? (in[i + 2] == '=' ? 2 : 1) : 0;
        if (v[0] < 0 || v[1] < 0 || (pad < 2 && v[2] < 0) ||
            (pad < 1 && v[3] < 0))
            return -1;
        unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
                     (unsigned)(pad < 2 ? v[2] : 0) << 6 |
                     (unsigned)(pad < 1 ? v[3] : 0);
        out[at++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[at++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[at++] = (unsigned char)w;
    }
    return (long)at;
}

/* ------------------------------------------------------------ helpers */

static srv_network *state_network(srv_request *req)
{
    api_error err;
    srv_network *net = srv_network_get(req->params[0], &err);
    if (!net)
        srv_reply_error(req, &err);
    return net;
}

/* The id a PUT may create: what a client may name a session, and also the
 * daemon's own form (s1, s2, ...), since exported sessions often have it;
 * the store keeps its later ids from repeating one. */
static int importable_id(const char *id)
{
    return api_is_path_name(id, sizeof ((srv_session *)0)->id);
}

static cJSON *session_summary(srv_session *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    cJSON_AddStringToObject(o, "network", s->net->id);
    cJSON_AddNumberToObject(o, "batch", nn_session_batch(s->run));
    cJSON_AddNumberToObject(o, "steps", (double)nn_session_steps(s->run));
    return o;
}

/* ---------------------------------------------------------------- GET */

/* The document GET .../state answers, with the checkpoint's base64
 * written straight into it: the checkpoint's bytes and this text are all
 * an export holds. Ids are path names, which need no escaping. NULL when
 * out of memory; *size gets the length. */
static char *state_document(const srv_network *net, const srv_session *s,
                            int batch, long steps, const unsigned char *bytes,
                            size_t len, size_t *size)
{
    char head[256];
    int n = snprintf(head, sizeof head, "{\"network\":\"%s\",\"batch\":%d,"
                     "\"steps\":%ld,\"session\":\"%s\",\"format\":\"%s\","
                     "\"version\":%d,\"checkpoint\":\"", net->id, batch, steps,
                     s->id, STATE_FORMAT, API_PERSIST_VERSION);
    size_t text = 4 * ((len + 2) / 3);
    char *doc = malloc((size_t)n + text + 3);
    if (!doc)
        return NULL;
    memcpy(doc, head, (size_t)n);
    base64_into(doc + n, bytes, len);
    memcpy(doc + n + text, "\"}", 3);
    *size = (size_t)n + text + 2;
    return doc;
}

void srv_state_get(srv_request *req)
{
    srv_network *net = state_network(req);
    if (!net)
        return;
    api_error err;
    srv_session *s = srv_session_get(net, req->params[1], &err);
    if (!s) {
        srv_reply_error(req, &err);
        srv_network_release(net);
        return;
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    /* Under the session's lock: between two steps, never inside one. */
    pthread_mutex_lock(&s->lock);
    int rc = api_checkpoint_write(net->id, s->id, net->graph, s->run, &bytes,
                                  &len, &err);
    int batch = nn_session_batch(s->run);
    long steps = nn_session_steps(s->run);
    pthread_mutex_unlock(&s->lock);
    /* The bytes and their text, held together until the text is sent. */
    double need = (double)len * (1 + 4.0 / 3);
    if (rc) {
        srv_reply_error(req, &err);
    } else if (srv_request_charge(req, need, "the export") == 0) {
        size_t size;
        char *doc = state_document(net, s, batch, steps, bytes, len, &size);
        if (doc)
            srv_reply_bytes(req, 200, "application/json", doc, size);
        else
            srv_reply_fail(req, 503, "out_of_memory", "out of memory");
    }
    free(bytes);
    srv_session_release(s);
    srv_network_release(net);
}

/* ---------------------------------------------------------------- PUT */

/* Bytes of meta JSON a checkpoint may spend on each node (its name, rng
 * and shapes) and on the rest. */
#define STATE_META_PER_NODE 1024
#define STATE_META_FIXED 4096

size_t srv_state_max_body(const srv_config *cfg)
{
    /* The largest checkpoint holds a session's every float, and its text
     * is 4/3 of it, plus the document around it and room for a client's
     * white space. */
    double bytes = API_PERSIST_HEADER + STATE_META_FIXED +
                   (double)cfg->limits.max_nodes * STATE_META_PER_NODE +
                   4.0 * (double)cfg->limits.max_session_floats;
    double text = 4.0 * (bytes / 3.0 + 1) + 4096;
    if (text > (double)(SIZE_MAX / 2))
        text = (double)(SIZE_MAX / 2);
    return (size_t)text > cfg->max_body ? (size_t)text : cfg->max_body;
}

/* The text between the quotes of the string value at pos of j (a value
 * position api_json_member gave), escapes as written, or -1 when the
 * value there is not a string. */
static int string_span(const api_json *j, size_t pos, const char **text,
                       size_t *len)
{
    size_t end = api_json_skip(j, pos);
    if (api_json_kind(j, pos) != '"' || end == (size_t)-1 || end < pos + 2)
        return -1;
    *text = j->s + pos + 1;
    *len = end - pos - 2;
    return 0;
}

/* Checks the body and reads its checkpoint into c (which the caller frees
 * with api_checkpoint_free in any case). Replies and returns -1 when the
 * body is refused. The route reads the body's text (SRV_BODY_RAW): the
 * checkpoint's base64 is decoded from it in place, never copied into a
 * tree first, and what the decoding holds is charged before. */
static int read_state_body(srv_request *req, api_checkpoint *c)
{
    memset(c, 0, sizeof *c);
    enum { NETWORK, SESSION, BATCH, STEPS, FORMAT, VERSION, CHECKPOINT, KNOWN };
    static const char *const known[KNOWN] = {
        [NETWORK] = "network", [SESSION] = "session", [BATCH] = "batch",
        [STEPS] = "steps",     [FORMAT] = "format",   [VERSION] = "version",
        [CHECKPOINT] = "checkpoint"};
    api_json j = {req->raw ? req->raw : "", req->raw_len, req->raw_doc};
    if (api_json_kind(&j, 0) != '{') {
        srv_reply_fail(req, 400, "bad_request", "the body must be the object "
                       "GET .../state answers, with at least \"checkpoint\"");
        return -1;
    }
    size_t at[KNOWN], it = 0, value;
    for (int k = 0; k < KNOWN; k++)
        at[k] = (size_t)-1;
    char key[64];
    int cut, more;
    while ((more = api_json_member(&j, 0, &it, key, sizeof key, &cut,
                                   &value)) == 1) {
        int k = 0;
        while (k < KNOWN && (cut || strcmp(key, known[k])))
            k++;
        if (k == KNOWN) {
            srv_reply_fail(req, 400, "bad_request", "unknown member '%.64s%s' "
                           "(expected checkpoint, and optionally network, "
                           "session, batch, steps, format, version)", key,
                           cut ? "..." : "");
            return -1;
        }
        if (at[k] != (size_t)-1) {
            srv_reply_fail(req, 400, "bad_json", "member \"%s\" is given "
                           "twice", key);
            return -1;
        }
        at[k] = value;
    }
    if (more < 0) {
        srv_reply_fail(req, 400, "bad_json", "the body is not a JSON object");
        return -1;
    }
    char format[sizeof STATE_FORMAT + 1];
    float version;
    int format_ok = at[FORMAT] == (size_t)-1 ||
                    (api_json_string(&j, at[FORMAT], format, sizeof format,
                                     &cut) != (size_t)-1 &&
                     !cut && strcmp(format, STATE_FORMAT) == 0);
    int version_ok = at[VERSION] == (size_t)-1 ||
                     (api_read_float(j.s + at[VERSION], j.len - at[VERSION],
                                     &version) &&
                      version == API_PERSIST_VERSION);
    if (!format_ok || !version_ok) {
        srv_reply_fail(req, 400, "bad_request", "\"format\" must be \""
                       STATE_FORMAT "\" and \"version\" %d",
                       API_PERSIST_VERSION);
        return -1;
    }
    const char *text;
    size_t text_len;
    if (at[CHECKPOINT] == (size_t)-1 ||
        string_span(&j, at[CHECKPOINT], &text, &text_len)) {
        srv_reply_fail(req, 400, "bad_request", "\"checkpoint\" must be the "
                       "base64 string GET .../state gave");
        return -1;
    }
    /* The bytes, and the checkpoint read from them; and, only when the
     * base64 is written with escapes (some encoders write '/' as "\/"),
     * its unescaped copy first. */
    int escaped = memchr(text, '\\', text_len) != NULL;
    size_t room = text_len / 4 * 3 + 1;
    if (srv_request_charge(req, 2.0 * (double)room +
                                    (escaped ? (double)text_len + 1 : 0),
                           "the imported state"))
        return -1;
    char *plain = escaped ? malloc(text_len + 1) : NULL;
    unsigned char *bytes = malloc(room);
    if (!bytes || (escaped && !plain)) {
        free(plain);
        free(bytes);
        srv_reply_fail(req, 503, "out_of_memory", "out of memory");
        return -1;
    }
    long len = -1;
    if (!escaped) {
        len = base64_decode(text, text_len, bytes);
    } else {
        size_t n = api_json_string(&j, at[CHECKPOINT], plain, text_len + 1,
                                   &cut);
        if (!cut) /* cut: it held a \u0000, not base64 either */
            len = base64_decode(plain, n, bytes);
    }
    free(plain);
    if (len < 0) {
        free(bytes);
        srv_reply_fail(req, 400, "bad_request", "\"checkpoint\" is not "
                       "padded standard base64");
        return -1;
    }
    api_error err;
    int rc = api_checkpoint_read(bytes, (size_t)len, c, &err);
    free(bytes);
    if (rc) {
        srv_reply_fail(req, 400, "bad_state", "\"checkpoint\": %s",
                       err.message);
        return -1;
    }
    if (c->batch < 1 || c->batch > req->cfg->limits.max_batch) {
        srv_reply_fail(req, 400, "bad_state", "\"checkpoint\": its batch %d "
                       "is not from 1 to %d (--max-batch)", c->batch,
                       req->cfg->limits.max_batch);
        return -1;
    }
    /* As every tensor a request brings: a state of inf or NaN would make
     * every later output null. (The daemon's own checkpoints of a session
     * that diverged still load at start: nothing it held is lost.) */
    for (size_t k = 0; k < c->n_values; k++)
        if (!isfinite(c->values[k])) {
            srv_reply_fail(req, 400, "bad_state", "\"checkpoint\": value %zu "
                           "of its outputs and states is not a finite "
                           "number", k);
            return -1;
        }
    return 0;
}

/* Puts c into s (held, s->lock held), then onto disk; when the disk
 * refuses, s gets back the state it had. Replies on failure. */
static int import_into(srv_request *req, srv_session *s,
                       const api_checkpoint *c)
{
    srv_network *net = s->net;
    api_error err;
    unsigned char *before = NULL;
    size_t before_len = 0;
    if (nn_session_batch(s->run) != c->batch) {
        srv_reply_fail(req, 409, "conflict", "session '%s' has batch %d; the "
                       "state's batch is %d (delete the session to import "
                       "it)", s->id, nn_session_batch(s->run), c->batch);
        return -1;
    }
    if (req->persist && api_checkpoint_write(net->id, s->id, net->graph, s->run,
                                             &before, &before_len, &err)) {
        srv_reply_error(req, &err);
        return -1;
    }
    if (api_checkpoint_apply(c, net->graph, s->run, &err)) {
        free(before);
        srv_reply_fail(req, 422, "state_mismatch", "the state does not fit "
                       "network '%s': %s", net->id, err.message);
        return -1;
    }
    /* The dispatcher holds the weights read-locked (SRV_LOCK_READ). */
    int rc = srv_persist_save_session(req->persist, s, NULL, &err);
    if (rc) {
        api_checkpoint old;
        api_error ignored;
        if (api_checkpoint_read(before, before_len, &old, &ignored) == 0)
            api_checkpoint_apply(&old, net->graph, s->run, &ignored);
        api_checkpoint_free(&old);
        srv_reply_error(req, &err);
    }
    free(before);
    return rc;
}

void srv_state_put(srv_request *req)
{
    const char *sid = req->params[1];
    if (!importable_id(sid)) {
        srv_reply_fail(req, 400, "bad_request", "the session id must be 1-23 "
                       "letters, digits, '_', '-' or '.', and not \".\" or "
                       "\"..\"");
        return;
    }
    api_checkpoint c;
    if (read_state_body(req, &c)) {
        api_checkpoint_free(&c);
        return;
    }
    srv_network *net = state_network(req);
    if (!net) {
        api_checkpoint_free(&c);
        return;
    }
    api_error err;
    int created = 0;
    srv_session *s = srv_session_get(net, sid, &err);
    if (!s) {
        if (srv_session_add(net, c.batch, sid, &s, &err)) {
            srv_reply_error(req, &err);
            api_checkpoint_free(&c);
            srv_network_release(net);
            return;
        }
        created = 1;
    }
    pthread_mutex_lock(&s->lock);
    int rc = import_into(req, s, &c);
    if (rc == 0 && !srv_session_linked(s)) {
        srv_reply_fail(req, 404, "not_found", "session '%s' was deleted "
                       "during the import", s->id);
        rc = -1;
    }
    if (rc == 0)
        srv_reply_json(req, created ? 201 : 200, session_summary(s));
    else if (created)
        /* Never a fresh, empty session left under the id. */
        srv_session_delete(net, s->id, NULL);
    pthread_mutex_unlock(&s->lock);
    srv_session_release(s);
    api_checkpoint_free(&c);
    srv_network_release(net);
}
