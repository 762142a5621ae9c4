/*
 * client.c — see client.h.
 */
#include "client.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ex_parse_args(int argc, char **argv, ex_options *o)
{
    o->url = "http://127.0.0.1:8080";
    o->check = 0;
    o->small = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            o->url = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0 && i + 1 < argc) {
            o->check = atof(argv[++i]);
        } else if (strcmp(argv[i], "--small") == 0) {
            o->small = 1;
        } else {
            fprintf(stderr, "usage: %s [--url URL] [--check NRMSE] [--small]\n",
                    argv[0]);
            return -1;
        }
    }
    return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *user)
{
    ex_buf *b = user;
    ex_printf(b, "%.*s", (int)(size * n), data);
    return size * n;
}

cJSON *ex_request(const ex_options *o, const char *method, const char *path,
                  const char *body, long expect)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", o->url, path);
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    ex_buf reply = {0};
    struct curl_slist *headers =
        curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    cJSON *j = NULL;
    if (rc != CURLE_OK)
        fprintf(stderr, "%s %s: %s\n", method, path, curl_easy_strerror(rc));
    else if (expect && status != expect)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, status,
                reply.s ? reply.s : "");
    else if (!(j = cJSON_Parse(reply.s ? reply.s : "{}")))
        fprintf(stderr, "%s %s: a reply that is not JSON: %.200s\n", method,
                path, reply.s ? reply.s : "");
    ex_free(&reply);
    return j;
}

int ex_fail(int line)
{
    fprintf(stderr, "example stopped at line %d\n", line);
    return 1;
}

void ex_printf(ex_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ex_sequence(ex_buf *b, const double *x, int steps, int features,
                 int stride, int offset)
{
    ex_printf(b, "[[");
    for (int t = 0; t < steps; t++) {
        ex_printf(b, "%s[", t ? "," : "");
        for (int f = 0; f < features; f++)
            ex_printf(b, "%s%.9g", f ? "," : "",
                      x[(size_t)t * (size_t)stride + (size_t)offset + (size_t)f]);
        ex_printf(b, "]");
    }
    ex_printf(b, "]]");
}

void ex_free(ex_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

int ex_read_sequence(const cJSON *t, double *out, int steps, int features)
{
    const cJSON *rows = cJSON_GetArrayItem(t, 0);
    if (cJSON_GetArraySize(rows) != steps)
        return -1;
    int k = 0;
    for (const cJSON *r = rows->child; r; r = r->next) {
        if (cJSON_GetArraySize(r) != features)
            return -1;
        for (const cJSON *v = r->child; v; v = v->next)
            out[k++] = v->valuedouble;
    }
    return 0;
}

double ex_nrmse(const double *pred, const double *truth, int n, int features)
{
    double se = 0, mean = 0, var = 0;
    int total = n * features;
    for (int k = 0; k < total; k++)
        mean += truth[k];
    mean /= total;
    for (int k = 0; k < total; k++) {
        se += (pred[k] - truth[k]) * (pred[k] - truth[k]);
        var += (truth[k] - mean) * (truth[k] - mean);
    }
    return sqrt(se / total) / sqrt(var / total);
}
