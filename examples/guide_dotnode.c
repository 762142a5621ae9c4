/*
 * guide_dotnode.c — the customization guide's first network through the C
 * API: three inputs of sizes 1, 2 and 3 concatenated into Dense(10),
 *   net = {i1, i2, i3} >> l
 *   net({'i1': ones((1, 1)), 'i2': zeros((1, 2)), 'i3': random((1, 3))})
 */
#include "nn_graph.h"

#include <stdio.h>

static int fail(const char *what, const nn_error *err)
{
    fprintf(stderr, "%s: %s\n", what, err->msg);
    return 1;
}

int main(void)
{
    nn_error err;
    nn_registry *reg = nn_registry_new();
    if (!reg || nn_registry_add_builtins(reg, &err) != NN_OK)
        return fail("registry", &err);
    nn_graph *g = nn_graph_new(reg, 2022);
    const char *inputs[3][2] = {{"i1", "1"}, {"i2", "2"}, {"i3", "3"}};
    for (int i = 0; i < 3; i++) {
        nn_node *in = nn_graph_add_node(g, "Input", inputs[i][0], &err);
        if (!in || nn_node_set_param(in, "shape", inputs[i][1], &err))
            return fail("input", &err);
    }
    nn_node *l = nn_graph_add_node(g, "Dense", "l", &err);
    if (!l || nn_node_set_param(l, "num_unit", "10", &err) ||
        nn_graph_link(g, "{i1, i2, i3} >> l", &err) ||
        nn_graph_build(g, &err))
        return fail("graph", &err);

    nn_session *s = nn_session_new(g, 1, 0, &err);
    if (!s)
        return fail("session", &err);
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_session_input(s, "i1")->data[0] = 1.0f;
    for (int k = 0; k < 3; k++)
        nn_session_input(s, "i3")->data[k] = (float)nn_rng_uniform(&rng);
    if (nn_session_step(s, 0, &err))
        return fail("step", &err);

    const nn_tensor *out = nn_session_output(s, "l");
    char shape[64];
    printf("{i1, i2, i3} >> Dense(10): output %s\n[",
           nn_shape_str(&out->shape, shape, sizeof shape));
    for (int j = 0; j < 10; j++)
        printf("%s%.6f", j ? ", " : "", out->data[j]);
    printf("]\n");
    nn_session_free(s);
    nn_graph_free(g);
    nn_registry_free(reg);
    return 0;
}
