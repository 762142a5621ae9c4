/*
 * force_periodic.c — FORCE learning (Sussillo & Abbott, 2009) of a
 * periodic signal, through a running nerved:
 *
 *   b >> r >> o,  r << o       b: a constant input, r: Reservoir,
 *                              o: LinearReadout fed back into r
 *
 * The readout is trained online by recursive least squares while the
 * network runs on its own output (method "force": nothing is
 * teacher-forced), over several requests: P persists between them, so each
 * continues the learning. Then a session is synchronised with the target
 * for a few periods (forced feedback) and left to run free; the NRMSE of
 * the free run against the continuing target is printed.
 *
 *   force_periodic [--url URL] [--small] [--check NRMSE]
 */
#include "client.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PERIOD 40.0

static double target(int t)
{
    double w = 2 * 3.14159265358979323846 * t / PERIOD;
    return 0.6 * sin(w) + 0.3 * sin(2 * w + 0.5);
}

int main(int argc, char **argv)
{
    ex_options o;
    if (ex_parse_args(argc, argv, &o))
        return 2;
    const int rounds = o.small ? 6 : 10, per_round = 1000;
    const int sync = 200, free_run = 200;
    int total = rounds * per_round + sync + free_run;
    double *y = malloc(sizeof(double) * (size_t)total);
    double *ones = malloc(sizeof(double) * (size_t)total);
    double *out = malloc(sizeof(double) * (size_t)total);
    if (!y || !ones || !out)
        return 2;
    for (int t = 0; t < total; t++) {
        y[t] = target(t);
        ones[t] = 1;
    }

    cJSON_Delete(ex_request(&o, "DELETE", "/v1/networks/force-periodic", NULL,
                            0));
    cJSON *j = ex_request(&o, "POST", "/v1/networks",
                          "{\"name\": \"force-periodic\", \"seed\": 3,"
                          " \"nodes\": ["
                          "{\"name\": \"b\", \"type\": \"Input\", \"shape\": 1},"
                          "{\"name\": \"r\", \"type\": \"Reservoir\","
                          " \"num_unit\": 300, \"leaky_rate\": 0.3,"
                          " \"spectral_radius\": 1.2, \"input_scaling\": 0.2,"
                          " \"fb_scaling\": 1.0, \"rc_connectivity\": 0.1,"
                          " \"fb_connectivity\": 0.3},"
                          "{\"name\": \"o\", \"type\": \"LinearReadout\","
                          " \"num_unit\": 1}],"
                          "\"edges\": [\"b >> r >> o\", \"r << o\"]}",
                          201);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);

    /* Online learning, round after round; each request reports the mean
     * squared error of the outputs it produced before each update. */
    ex_buf b = {0};
    for (int round = 0; round < rounds; round++) {
        ex_printf(&b, "{\"method\": \"force\", \"alpha\": 1, \"wait\": true,"
                  " \"inputs\": {\"b\": ");
        ex_sequence(&b, ones, per_round, 1, 1, 0);
        ex_printf(&b, "}, \"targets\": {\"o\": ");
        ex_sequence(&b, y, per_round, 1, 1, 0);
        ex_printf(&b, "}}");
        j = ex_request(&o, "POST", "/v1/networks/force-periodic/fit", b.s, 200);
        ex_free(&b);
        if (!j)
            return ex_fail(__LINE__);
        printf("round %d: training mse %.6f\n", round + 1,
               cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mse")));
        cJSON_Delete(j);
    }

    /* Synchronise a session with the target, then let it run free. */
    j = ex_request(&o, "POST", "/v1/networks/force-periodic/sessions",
                   "{\"id\": \"free\"}", 201);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    ex_printf(&b, "{\"inputs\": {\"b\": ");
    ex_sequence(&b, ones, sync, 1, 1, 0);
    ex_printf(&b, "}, \"forced\": {\"o\": ");
    ex_sequence(&b, y, sync, 1, 1, 0);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/force-periodic/sessions/free/run",
                   b.s, 200);
    ex_free(&b);
    if (!j)
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    ex_printf(&b, "{\"inputs\": {\"b\": ");
    ex_sequence(&b, ones, free_run, 1, 1, 0);
    ex_printf(&b, "}}");
    j = ex_request(&o, "POST", "/v1/networks/force-periodic/sessions/free/run",
                   b.s, 200);
    ex_free(&b);
    if (!j || ex_read_sequence(cJSON_GetObjectItem(
                                   cJSON_GetObjectItem(j, "outputs"), "o"),
                               out, free_run, 1))
        return ex_fail(__LINE__);
    cJSON_Delete(j);
    double nrmse = ex_nrmse(out, y + sync, free_run, 1);
    printf("free-running NRMSE over %d steps (%.0f periods): %.5f\n", free_run,
           free_run / PERIOD, nrmse);
    free(y);
    free(ones);
    free(out);
    return o.check > 0 && !(nrmse < o.check);
}
