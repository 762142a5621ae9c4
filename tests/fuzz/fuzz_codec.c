/*
 * fuzz_codec.c — the pull reader over a body exactly as long as what was
 * sent (so a sanitizer sees any read past it): checked, read as a tensor,
 * compared with the cJSON reader, and when read, streamed back out in
 * small chunks and read again to the same bits.
 */
#include "api.h"
#include "api_codec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Equal, or one float apart: cJSON rounds through double, which is
 * wrong by one at exact halfway decimals. */
static int near(float a, float b)
{
    return a == b || nextafterf(a, b) == b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 16;
    size_t at;
    int trailing;
    int valid = api_json_check(text, size, &at, &trailing) == 0;
    if (!valid && at > size)
        abort();
    api_json j = {text, size, NULL};
    api_error err, err_old;
    nn_tensor *t = NULL;
    /* Unchecked text too: the reader must fail cleanly, not overrun. */
    int rc = api_json_tensor(&j, 0, "t", &lim, 0, &t, &err);
    char *copy = malloc(size + 1);
    if (copy) {
        memcpy(copy, data, size);
        copy[size] = '\0';
    }
    cJSON *c = copy && valid ? cJSON_ParseWithLength(copy, size) : NULL;
    if (valid && !c && copy)
        abort(); /* what we accept, cJSON does */
    nn_tensor *old = NULL;
    if (valid && c) {
        int rc_old = api_tensor_from_json(c, "t", &lim, &old, &err_old);
        if (rc_old == 0 && rc == 0) {
            if (!nn_shape_equal(&t->shape, &old->shape))
                abort();
            for (size_t k = 0; k < nn_tensor_numel(t); k++)
                if (!near(t->data[k], old->data[k]))
                    abort();
        } else if (rc == 0 && !strstr(err_old.message, "finite")) {
            abort(); /* only float32's overflow edge may differ (double */
        } else if (rc_old == 0 && !strstr(err.message, "finite")) {
            abort(); /* rounding again) */
        }
    }
    if (rc == 0) {
        api_enc *e = api_enc_new();
        nn_tensor *dup = e ? nn_tensor_new(&t->shape) : NULL;
        if (dup) {
            memcpy(dup->data, t->data, nn_tensor_numel(t) * sizeof(float));
            api_enc_tensor(e, dup);
            api_buf b = {0};
            char chunk[7];
            size_t n;
            while ((n = api_enc_next(e, chunk, sizeof chunk)) > 0)
                api_buf_put(&b, chunk, n);
            api_buf_put(&b, "", 0);
            size_t len;
            char *back = api_buf_finish(&b, &len);
            if (back) {
                api_json bj = {back, len, NULL};
                nn_tensor *again = NULL;
                if (api_json_tensor(&bj, 0, "t", &lim, 0, &again, &err) ||
                    !nn_shape_equal(&t->shape, &again->shape) ||
                    memcmp(t->data, again->data,
                           nn_tensor_numel(t) * sizeof(float)) != 0)
                    abort();
                nn_tensor_free(again);
                free(back);
            }
        }
        api_enc_free(e);
    }
    nn_tensor_free(t);
    nn_tensor_free(old);
    cJSON_Delete(c);
    free(copy);
    free(text);
    return 0;
}
