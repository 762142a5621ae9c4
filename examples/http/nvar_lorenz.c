/*
 * nvar_lorenz.c — next-generation reservoir computing (Gauthier et al.,
 * 2021) forecasting the Lorenz system, through a running nerved:
 *
 *   u >> v >> o      u: the state (x, y, z), v: NVAR(delay 2, order 2,
 *                    constant), o: LinearReadout(3) without bias
 *
 * As in the paper: dt = 0.025, 10 time units of training after a 5-unit
 * transient, and the readout learns the increment u(t + 1) − u(t). The
 * ridge parameter is 1, not the paper's 2.5e-6: on this RK4 series the
 * latter fits the training data as well but makes the closed loop unstable
 * within five steps, in double precision too. The forecast then runs in closed loop — each predicted
 * state is the next input — over one Lyapunov time (1 / 0.9056 time units,
 * 44 steps). Prints the NRMSE over that horizon: the RMSE over the three
 * variables divided by their standard deviation over the training data.
 *
 *   nvar_lorenz [--url URL] [--small] [--check NRMSE]
 */
#include "client.h"
#include "nn_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    ex_options o;
    if (ex_parse_args(argc, argv, &o))
        return 2;
    const double dt = 0.025;
    const int transient = 200, train = 400;
    const int horizon = (int)(1.0 / 0.9056 / dt + 0.5); /* one Lyapunov time */
    const int total = transient + train + horizon + 1;

    nn_lorenz_opts lo;
    nn_lorenz_defaults(&lo);
    lo.dt = dt;
    lo.x0[0] = 17.67715816276679;  /* on the attractor, as the paper starts */
    lo.x0[1] = 12.931379185960404;
    lo.x0[2] = 43.91404334248268;
    nn_error err;
    double *s = malloc(sizeof(double) * 3 * (size_t)total);
    double *inc = malloc(sizeof(double) * 3 * (size_t)total);
    if (!s || !inc || nn_lorenz(s, total, &lo, &err) != NN_OK) {
        fprintf(stderr, "series: %s\n", err.msg);
        return 2;
    }
    for (int t = 0; t + 1 < total; t++)
        for (int k = 0; k < 3; k++)
            inc[3 * t + k] = s[3 * (t + 1) + k] - s[3 * t + k];

    ex_buf b = {0};
    cJSON_Delete(ex_request(&o, "DELETE", "/v1/networks/nvar-lorenz", NULL, 0));
    cJSON *j = ex_request(&o, "POST", "/v1/networks",
                          "{\"name\": \"nvar-lorenz\", \"nodes\": ["
                          "{\"name\": \"u\", \"type\": \"Input\", \"shape\": 3},"
                          "{\"name\": \"v\", \"type\": \"NVAR\", \"delay\": 2,"
                          " \"order\": 2, \"stride\": 1, \"constant\": true},"
                          "{\"name\": \"o\", \"type\": \"LinearReadout\","
                          " \"num_unit\": 3, \"use_bias\": false}],"
                          "\"edges\": [\"u >> v >> o\"]}",
                          201);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);

    /* Training: the readout learns the increment; the first step, whose
     * delayed input is still zero, is left out. */
    ex_printf(&b, "{\"method\": \"ridge\", \"beta\": 1, \"warmup\": 1,"
              " \"wait\": true, \"inputs\": {\"u\": ");
    ex_sequence(&b, s, train, 3, 3, 3 * transient);
    ex_printf(&b, "}, \"targets\": {\"o\": ");
    ex_sequence(&b, inc, train, 3, 3, 3 * transient);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/nvar-lorenz/fit", b.s, 200);
    ex_free(&b);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);

    /* A session fills NVAR's history with the training data; its last
     * output is the first forecast increment. */
    j = ex_request(&o, "POST", "/v1/networks/nvar-lorenz/sessions",
                   "{\"id\": \"forecast\"}", 201);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    ex_printf(&b, "{\"inputs\": {\"u\": ");
    ex_sequence(&b, s, train, 3, 3, 3 * transient);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/nvar-lorenz/sessions/forecast/run",
                   b.s, 200);
    ex_free(&b);
    double *out = malloc(sizeof(double) * 3 * (size_t)train);
    double *pred = malloc(sizeof(double) * 3 * (size_t)horizon);
    if (!j || !out || !pred ||
        ex_read_sequence(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outputs"),
                                             "o"), out, train, 3))
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    /* How well the readout fits the increments it was trained on. */
    double fit = ex_nrmse(out + 3, inc + 3 * (transient + 1), train - 1, 3);
    printf("training NRMSE of the increments: %.5f\n", fit);
    double state[3];
    for (int k = 0; k < 3; k++)
        state[k] = s[3 * (transient + train - 1) + k] + out[3 * (train - 1) + k];

    /* Closed loop, one step per request. */
    for (int h = 0; h < horizon; h++) {
        for (int k = 0; k < 3; k++)
            pred[3 * h + k] = state[k];
        ex_printf(&b, "{\"inputs\": {\"u\": [[%.17g, %.17g, %.17g]]}}",
                  state[0], state[1], state[2]);
        j = ex_request(&o, "POST",
                       "/v1/networks/nvar-lorenz/sessions/forecast/forward",
                       b.s, 200);
        ex_free(&b);
        const cJSON *row = cJSON_GetArrayItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(j, "outputs"), "o"), 0);
        if (!j || cJSON_GetArraySize(row) != 3) {
            char *text = j ? cJSON_PrintUnformatted(j) : NULL;
            fprintf(stderr, "unexpected reply: %s\n", text ? text : "");
            free(text);
            return ex_fail(__LINE__);
        }
        for (int k = 0; k < 3; k++)
            state[k] += cJSON_GetArrayItem(row, k)->valuedouble;
        cJSON_Delete(j);
    }

    /* NRMSE against the true states transient + train .. + horizon. */
    double se = 0, mean[3] = {0}, var = 0;
    for (int t = 0; t < train; t++)
        for (int k = 0; k < 3; k++)
            mean[k] += s[3 * (transient + t) + k] / train;
    for (int t = 0; t < train; t++)
        for (int k = 0; k < 3; k++) {
            double d = s[3 * (transient + t) + k] - mean[k];
            var += d * d / (3.0 * train);
        }
    for (int h = 0; h < horizon; h++)
        for (int k = 0; k < 3; k++) {
            double d = pred[3 * h + k] - s[3 * (transient + train + h) + k];
            se += d * d / (3.0 * horizon);
        }
    double nrmse = sqrt(se) / sqrt(var);
    printf("NRMSE over one Lyapunov time (%d steps): %.5f\n", horizon, nrmse);
    free(s);
    free(inc);
    free(out);
    free(pred);
    return o.check > 0 && !(nrmse < o.check);
}
