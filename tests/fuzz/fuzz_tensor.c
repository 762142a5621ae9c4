/*
 * fuzz_tensor.c — tensors as a client sends them (nested arrays or
 * {"shape", "data"}): read, and when read, written back and read again to
 * the same values.
 */
#include "api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cJSON *j = cJSON_Parse(text);
    free(text);
    api_limits lim = api_default_limits();
    lim.max_tensor_elems = 1u << 16;
    api_error err;
    nn_tensor *t = NULL;
    if (api_tensor_from_json(j, "t", &lim, &t, &err) == 0) {
        cJSON *back = api_tensor_to_json(t);
        nn_tensor *again = NULL;
        if (back && api_tensor_from_json(back, "t", &lim, &again, &err) == 0) {
            /* The shortest float text must read back to the same bits. */
            if (!nn_shape_equal(&t->shape, &again->shape) ||
                memcmp(t->data, again->data,
                       nn_tensor_numel(t) * sizeof(float)) != 0)
                abort();
        } else if (back) {
            abort();
        }
        nn_tensor_free(again);
        cJSON_Delete(back);
        nn_tensor_free(t);
    }
    cJSON_Delete(j);
    return 0;
}
