/*
 * fuzz_jsonpush.c — the pushed reader against the pull reader over the
 * whole text. The first byte chooses the piece size (1 to 64) and whether
 * every eligible array becomes a blob; the rest is the body, fed in
 * pieces each in its own buffer of exactly its size (so a sanitizer sees a
 * read past one). The check's verdict and offset must be the same, and
 * every tensor read (the body, and each member of it) the same bits or
 * the same message.
 */
#include "api.h"
#include "api_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The tensor at pos both ways, which must agree. */
static void same_tensor(const api_json *whole, size_t wpos,
                        const api_json *kept, size_t kpos)
{
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 16;
    for (int trainable = 0; trainable < 2; trainable++) {
        nn_tensor *a = NULL, *b = NULL;
        api_error ea, eb;
        int ra = api_json_tensor(whole, wpos, "t", &lim, trainable, &a, &ea);
        int rb = api_json_tensor(kept, kpos, "t", &lim, trainable, &b, &eb);
        if (ra != rb)
            abort();
        if (ra && (ea.http_status != eb.http_status ||
                   strcmp(ea.code, eb.code) || strcmp(ea.message, eb.message)))
            abort();
        if (!ra && (!nn_shape_equal(&a->shape, &b->shape) ||
                    memcmp(a->data, b->data,
                           nn_tensor_numel(a) * sizeof(float))))
            abort();
        nn_tensor_free(a);
        nn_tensor_free(b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + (data[0] & 63);
    size_t blob_min = data[0] & 64 ? 0 : API_JSONDOC_BLOB_MIN;
    data++, size--;
    api_jsondoc *d = api_jsondoc_new(blob_min, NULL, NULL);
    if (!d)
        return 0;
    for (size_t at = 0; at < size; at += piece) {
        size_t n = size - at < piece ? size - at : piece;
        char *copy = malloc(n);
        if (!copy)
            break;
        memcpy(copy, data + at, n);
        if (api_jsondoc_feed(d, copy, n))
            abort(); /* no budget here: nothing may be refused */
        free(copy);
    }
    api_jsondoc_finish(d);
    char *text = malloc(size ? size : 1);
    if (!text) {
        api_jsondoc_free(d);
        return 0;
    }
    memcpy(text, data, size);
    size_t at1 = 0, at2 = 0;
    int tr1 = 0, tr2 = 0;
    int r1 = api_json_check(text, size, &at1, &tr1);
    int r2 = api_jsondoc_check(d, &at2, &tr2);
    if (r1 != r2 || (r1 && (at1 != at2 || tr1 != tr2)))
        abort();
    if (r1 == 0) {
        api_json whole = {text, size, NULL};
        api_json kept = api_jsondoc_json(d);
        same_tensor(&whole, 0, &kept, 0);
        if (api_json_kind(&whole, 0) == '{') {
            size_t i1 = 0, i2 = 0, v1, v2;
            char k1[64], k2[64];
            int c1, c2, m1, m2;
            for (;;) {
                m1 = api_json_member(&whole, 0, &i1, k1, sizeof k1, &c1, &v1);
                m2 = api_json_member(&kept, 0, &i2, k2, sizeof k2, &c2, &v2);
                if (m1 != m2 || (m1 == 1 && strcmp(k1, k2)))
                    abort();
                if (m1 != 1)
                    break;
                same_tensor(&whole, v1, &kept, v2);
            }
            if (api_json_stateless_batch(&whole, 0) !=
                api_json_stateless_batch(&kept, 0))
                abort();
        }
    }
    free(text);
    api_jsondoc_free(d);
    return 0;
}
