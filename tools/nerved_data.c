/*
 * nerved_data.c — nerved-data: prints a Mackey-Glass, Lorenz or NARMA
 * series (engine/nn_data.h) as a JSON array or as CSV.
 *
 *   nerved-data mackey-glass --steps 2000 --tau 17 --format json
 *   nerved-data lorenz --steps 5000 --dt 0.01 --format csv
 *   nerved-data narma --steps 1000 --order 10 --seed 3
 *
 * A one-column series is a flat JSON array; several columns are an array
 * of rows. CSV starts with a header naming the columns. Bad arguments are
 * answered with a message on stderr and exit status 2.
 */
#include "nn_data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 100000000

static const char usage[] =
    "usage: nerved-data SERIES [options]\n"
    "\n"
    "Series and their options (defaults in brackets):\n"
    "  mackey-glass  --tau [17] --a [0.2] --b [0.1] --n [10] --x0 [1.2]\n"
    "                --h [1] (step; RK4 with the delayed term held per step)\n"
    "                --seed [0] (the random initial history)\n"
    "  lorenz        --sigma [10] --rho [28] --beta [2.6666666666666665]\n"
    "                --x0 [1] --y0 [1] --z0 [1] --dt [0.03] (RK4)\n"
    "  narma         --order [10] --a1 [0.3] --a2 [0.05] --b [1.5] --c [0.1]\n"
    "                --seed [0] (the input u); columns u, y\n"
    "\n"
    "Common options:\n"
    "  --steps N          samples to print [1000]\n"
    "  --format json|csv  [json]\n"
    "  --help             this text\n";

static int bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "nerved-data: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n(nerved-data --help lists the series and options)\n");
    return 2;
}

static int parse_double(const char *opt, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v))
        return bad("%s wants a finite number, got '%s'", opt, text);
    *out = v;
    return 0;
}

static int parse_long(const char *opt, const char *text, long long lo,
                      long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno || v < lo || v > hi) {
        char range[96];
        snprintf(range, sizeof range, "an integer from %lld to %lld", lo, hi);
        fprintf(stderr, "nerved-data: %s wants %s, got '%s'\n"
                        "(nerved-data --help lists the series and options)\n",
                opt, range, text);
        return 2;
    }
    *out = v;
    return 0;
}

/* Shortest text that reads back as the same double. */
static void print_number(double v)
{
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    fputs(buf, stdout);
}

/* data holds steps rows of cols values. */
static void print_series(const double *data, int steps, int cols,
                         const char *const *names, int csv)
{
    if (csv) {
        for (int c = 0; c < cols; c++)
            printf("%s%s", c ? "," : "", names[c]);
        putchar('\n');
        for (int t = 0; t < steps; t++) {
            for (int c = 0; c < cols; c++) {
                if (c)
                    putchar(',');
                print_number(data[(size_t)t * cols + c]);
            }
            putchar('\n');
        }
        return;
    }
    putchar('[');
    for (int t = 0; t < steps; t++) {
        if (t)
            fputs(", ", stdout);
        if (cols > 1)
            putchar('[');
        for (int c = 0; c < cols; c++) {
            if (c)
                fputs(", ", stdout);
            print_number(data[(size_t)t * cols + c]);
        }
        if (cols > 1)
            putchar(']');
    }
    puts("]");
}

/* Each series' options, by name, pointing into its option struct. */
typedef struct number_opt {
    const char *name;
    double *value;
} number_opt;

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
                      strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2)
        return bad("which series? mackey-glass, lorenz or narma%s%s", "", "");
    const char *series = argv[1];
    nn_mackey_glass_opts mg;
    nn_lorenz_opts lz;
    nn_narma_opts na;
    nn_mackey_glass_defaults(&mg);
    nn_lorenz_defaults(&lz);
    nn_narma_defaults(&na);
    number_opt numbers[8];
    int n_numbers = 0, has_seed = 0, has_order = 0;
    if (strcmp(series, "mackey-glass") == 0) {
        number_opt o[] = {{"--tau", &mg.tau}, {"--a", &mg.a}, {"--b", &mg.b},
                          {"--n", &mg.n},     {"--x0", &mg.x0}, {"--h", &mg.h}};
        n_numbers = (int)(sizeof o / sizeof *o);
        memcpy(numbers, o, sizeof o);
        has_seed = 1;
    } else if (strcmp(series, "lorenz") == 0) {
        number_opt o[] = {{"--sigma", &lz.sigma}, {"--rho", &lz.rho},
                          {"--beta", &lz.beta},   {"--x0", &lz.x0[0]},
                          {"--y0", &lz.x0[1]},    {"--z0", &lz.x0[2]},
                          {"--dt", &lz.dt}};
        n_numbers = (int)(sizeof o / sizeof *o);
        memcpy(numbers, o, sizeof o);
    } else if (strcmp(series, "narma") == 0) {
        number_opt o[] = {{"--a1", &na.a1}, {"--a2", &na.a2}, {"--b", &na.b},
                          {"--c", &na.c}};
        n_numbers = (int)(sizeof o / sizeof *o);
        memcpy(numbers, o, sizeof o);
        has_seed = has_order = 1;
    } else {
        return bad("unknown series '%s'%s; use mackey-glass, lorenz or narma",
                   series, "");
    }
    long long steps = 1000, value;
    int csv = 0;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (strncmp(opt, "--", 2) != 0)
            return bad("unexpected argument '%s'%s", opt, "");
        if (i + 1 >= argc)
            return bad("%s needs a value%s", opt, "");
        const char *text = argv[++i];
        int known = 0, rc = 0;
        if (strcmp(opt, "--steps") == 0) {
            known = 1;
            rc = parse_long(opt, text, 1, MAX_STEPS, &steps);
        } else if (strcmp(opt, "--format") == 0) {
            known = 1;
            if (strcmp(text, "json") != 0 && strcmp(text, "csv") != 0)
                return bad("--format wants json or csv, got '%s'%s", text, "");
            csv = strcmp(text, "csv") == 0;
        } else if (has_seed && strcmp(opt, "--seed") == 0) {
            known = 1;
            rc = parse_long(opt, text, 0, INT64_MAX, &value);
            mg.seed = na.seed = (uint64_t)value;
        } else if (has_order && strcmp(opt, "--order") == 0) {
            known = 1;
            rc = parse_long(opt, text, 1, 1000, &value);
            na.order = (int)value;
        }
        for (int k = 0; !known && k < n_numbers; k++)
            if (strcmp(opt, numbers[k].name) == 0) {
                known = 1;
                rc = parse_double(opt, text, numbers[k].value);
            }
        if (!known)
            return bad("unknown option %s for %s", opt, series);
        if (rc)
            return rc;
    }
    int cols = strcmp(series, "mackey-glass") == 0 ? 1
               : strcmp(series, "lorenz") == 0     ? 3
                                                   : 2;
    double *data = malloc((size_t)steps * (size_t)cols * sizeof(double));
    double *y = cols == 2 ? malloc((size_t)steps * sizeof(double)) : NULL;
    if (!data || (cols == 2 && !y)) {
        free(data);
        free(y);
        fprintf(stderr, "nerved-data: out of memory for %lld steps\n", steps);
        return 1;
    }
    nn_error err;
    nn_error_clear(&err);
    int rc;
    if (cols == 1)
        rc = nn_mackey_glass(data, (int)steps, &mg, &err);
    else if (cols == 3)
        rc = nn_lorenz(data, (int)steps, &lz, &err);
    else {
        /* u into data's first half, then interleave (u, y) rows. */
        rc = nn_narma(data, y, (int)steps, &na, &err);
        for (long long t = steps - 1; rc == NN_OK && t >= 0; t--) {
            double u = data[t];
            data[2 * t] = u;
            data[2 * t + 1] = y[t];
        }
    }
    if (rc != NN_OK) {
        fprintf(stderr, "nerved-data: %s: %s\n", series, err.msg);
        free(data);
        free(y);
        return rc == NN_ERR_INVALID ? 2 : 1;
    }
    static const char *const mg_names[] = {"x"};
    static const char *const lz_names[] = {"x", "y", "z"};
    static const char *const na_names[] = {"u", "y"};
    print_series(data, (int)steps, cols,
                 cols == 1 ? mg_names : cols == 3 ? lz_names : na_names, csv);
    free(data);
    free(y);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "nerved-data: could not write the output\n");
        return 1;
    }
    return 0;
}
