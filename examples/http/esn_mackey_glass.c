/*
 * esn_mackey_glass.c — an echo state network on the Mackey-Glass series,
 * through a running nerved:
 *
 *   b >> r >> o,  r << o       b: a constant input, r: Reservoir,
 *                              o: LinearReadout fed back into r
 *
 * The readout is fitted by ridge regression with teacher forcing (r sees
 * the true x(t) where o's output would go), to output x(t + 1). Then a
 * session is synchronised on the training series with forced feedback,
 * predicts the test series one step ahead (forced with the true values),
 * and finally runs free: closed-loop generation, o's own output fed back.
 * Prints the NRMSE (RMSE / standard deviation) of both.
 *
 *   esn_mackey_glass [--url URL] [--small] [--check NRMSE]
 */
#include "client.h"
#include "nn_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    ex_options o;
    if (ex_parse_args(argc, argv, &o))
        return 2;
    const int units = o.small ? 200 : 500;
    const int train = o.small ? 1500 : 3000, test = 500, free_run = 100;
    const int total = train + test + free_run + 1;

    /* The series, scaled to [-1, 1] as reservoir inputs usually are. */
    nn_mackey_glass_opts mg;
    nn_mackey_glass_defaults(&mg);
    nn_error err;
    double *x = malloc(sizeof(double) * (size_t)total);
    double *ones = malloc(sizeof(double) * (size_t)total);
    if (!x || !ones || nn_mackey_glass(x, total, &mg, &err) != NN_OK) {
        fprintf(stderr, "series: %s\n", err.msg);
        return 2;
    }
    double lo = x[0], hi = x[0];
    for (int t = 0; t < total; t++) {
        lo = x[t] < lo ? x[t] : lo;
        hi = x[t] > hi ? x[t] : hi;
        ones[t] = 1;
    }
    for (int t = 0; t < total; t++)
        x[t] = 2 * (x[t] - lo) / (hi - lo) - 1;

    ex_buf b = {0};
    ex_printf(&b, "{\"name\": \"esn-mackey-glass\", \"seed\": 5, \"nodes\": ["
              "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
              "{\"name\": \"r\", \"type\": \"Reservoir\", \"num_unit\": %d,"
              " \"leaky_rate\": 0.3, \"spectral_radius\": 1.25,"
              " \"input_scaling\": 0.2, \"fb_scaling\": 1.0,"
              " \"rc_connectivity\": 0.1, \"fb_connectivity\": 0.2},"
              "{\"name\": \"o\", \"type\": \"LinearReadout\", \"num_unit\": 1}],"
              "\"edges\": [\"b >> r >> o\", \"r << o\"]}", units);
    cJSON_Delete(ex_request(&o, "DELETE", "/v1/networks/esn-mackey-glass",
                            NULL, 0));
    cJSON *j = ex_request(&o, "POST", "/v1/networks", b.s, 201);
    ex_free(&b);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);

    /* Ridge: targets x(t + 1); o is fed back, so ridge teacher-forces it. */
    ex_printf(&b, "{\"method\": \"ridge\", \"beta\": 1e-6, \"warmup\": 100,"
              " \"wait\": true, \"inputs\": {\"b\": ");
    ex_sequence(&b, ones, train, 1, 1, 0);
    ex_printf(&b, "}, \"targets\": {\"o\": ");
    ex_sequence(&b, x, train, 1, 1, 1);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/esn-mackey-glass/fit", b.s, 200);
    ex_free(&b);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);

    /* A session: synchronise on the training series, then predict the test
     * series one step ahead, feedback forced to the true values. */
    j = ex_request(&o, "POST", "/v1/networks/esn-mackey-glass/sessions",
                   "{\"id\": \"mg\"}", 201);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    double *pred = malloc(sizeof(double) * (size_t)(train + test));
    double nrmse_step = 0, nrmse_free = 0;
    for (int phase = 0; phase < 2; phase++) {
        int from = phase ? train : 0, steps = phase ? test : train;
        ex_printf(&b, "{\"inputs\": {\"b\": ");
        ex_sequence(&b, ones, steps, 1, 1, from);
        ex_printf(&b, "}, \"forced\": {\"o\": ");
        ex_sequence(&b, x, steps, 1, 1, from + 1);
        ex_printf(&b, "}}");
        j = ex_request(&o, "POST",
                       "/v1/networks/esn-mackey-glass/sessions/mg/run", b.s,
                       200);
        ex_free(&b);
        if (!j || ex_read_sequence(cJSON_GetObjectItem(
                                       cJSON_GetObjectItem(j, "outputs"), "o"),
                                   pred, steps, 1))
            return ex_fail(__LINE__);
        cJSON_Delete(j);
        if (phase)
            nrmse_step = ex_nrmse(pred, x + train + 1, test, 1);
    }
    /* Closed loop: nothing forced, o's own output is fed back. */
    ex_printf(&b, "{\"inputs\": {\"b\": ");
    ex_sequence(&b, ones, free_run, 1, 1, 0);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/esn-mackey-glass/sessions/mg/run",
                   b.s, 200);
    ex_free(&b);
    if (!j || ex_read_sequence(cJSON_GetObjectItem(
                                   cJSON_GetObjectItem(j, "outputs"), "o"),
                               pred, free_run, 1))
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    nrmse_free = ex_nrmse(pred, x + train + test + 1, free_run, 1);

    printf("one-step NRMSE over %d test steps: %.5f\n", test, nrmse_step);
    printf("closed-loop NRMSE over %d generated steps: %.5f\n", free_run,
           nrmse_free);
    free(x);
    free(ones);
    free(pred);
    return o.check > 0 && !(nrmse_step < o.check);
}
