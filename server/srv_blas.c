/*
 * srv_blas.c — choosing the OpenBLAS core at start (see srv_blas.h).
 *
 * The re-execution is guarded by environment markers: NERVED_BLAS_CHOSEN
 * (the core this process was started with, by us) and NERVED_BLAS_FALLBACK
 * (the core whose self-test failed, after which we never re-execute
 * again), so the daemon executes itself at most twice.
 */
#include "srv_blas.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static srv_blas_info info = {"", "auto", "", "", ""};
static char core_buf[64], choice_buf[160], cpu_buf[96];

const srv_blas_info *srv_blas(void) { return &info; }

/* The cores by the vector features they need: 0 SSE only, 1 AVX2+FMA,
 * 2 AVX-512. Names as OpenBLAS 0.3 spells them (compared ignoring case). */
static const struct {
    const char *name;
    int level;
} cores[] = {
    {"Prescott", 0},   {"Core2", 0},      {"Penryn", 0},
    {"Dunnington", 0}, {"Nehalem", 0},    {"Atom", 0},
    {"Barcelona", 0},  {"Bobcat", 0},     {"Bulldozer", 0},
    {"Piledriver", 0}, {"Steamroller", 0}, {"Excavator", 0},
    {"Sandybridge", 0}, {"Haswell", 1},   {"Zen", 1},
    {"SkylakeX", 2},   {"Cooperlake", 2}, {"SapphireRapids", 2},
};
#define N_CORES (sizeof cores / sizeof *cores)

static int core_level(const char *name)
{
    for (size_t i = 0; i < N_CORES; i++)
        if (strcasecmp(cores[i].name, name) == 0)
            return cores[i].level;
    return -1;
}

/* The best level the CPU allows, and its features in cpu_buf. */
static int cpu_level(void)
{
    int level = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") &&
                 __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl");
    snprintf(cpu_buf, sizeof cpu_buf, "%s%s%s%s",
             __builtin_cpu_supports("avx") ? "avx," : "",
             avx2 ? "avx2,fma," : "",
             __builtin_cpu_supports("avx512f") ? "avx512f," : "",
             avx512 ? "avx512bw,avx512dq,avx512vl," : "");
    level = avx512 ? 2 : avx2 ? 1 : 0;
#endif
    size_t len = strlen(cpu_buf);
    if (len)
        cpu_buf[len - 1] = '\0';
    else
        snprintf(cpu_buf, sizeof cpu_buf, "none");
    info.cpu = cpu_buf;
    return level;
}

/* sgemm and sgemv on fixed inputs against plain loops in double, within
 * float32 tolerance. Some OpenBLAS builds compute wrong results with some
 * cores on some processors; this is where that shows. */
static int self_test(void)
{
    enum { M = 37, N = 45, K = 67 };
    static float a[M * K], b[K * N], c[M * N], x[K], y[M];
    for (int i = 0; i < M * K; i++)
        a[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < K * N; i++)
        b[i] = cosf(0.61f * (float)i);
    for (int i = 0; i < K; i++)
        x[i] = sinf(1.3f * (float)i + 0.5f);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K,
                b, N, 0.0f, c, N);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, M, K, 1.0f, a, K, x, 1, 0.0f, y,
                1);
    int ok = 1;
    for (int i = 0; i < M; i++) {
        double s = 0, mag = 0;
        for (int k = 0; k < K; k++) {
            s += (double)a[i * K + k] * x[k];
            mag += fabs((double)a[i * K + k] * x[k]);
        }
        ok &= fabs(y[i] - s) <= 1e-5 * mag + 1e-6;
        for (int j = 0; j < N; j++) {
            double t = 0, tm = 0;
            for (int k = 0; k < K; k++) {
                t += (double)a[i * K + k] * b[k * N + j];
                tm += fabs((double)a[i * K + k] * b[k * N + j]);
            }
            ok &= fabs(c[i * N + j] - t) <= 1e-5 * tm + 1e-6;
        }
    }
    return ok;
}

static void reexec(char **argv)
{
    /* The path /proc/self/exe names, not the link itself: under a tool such
     * as valgrind the link is the tool's own binary, the readlink answer
     * the program's. */
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0)
        path[n] = '\0';
    else
        snprintf(path, sizeof path, "/proc/self/exe");
    fflush(NULL);
    execv(path, argv);
    fprintf(stderr, "nerved: blas: cannot re-execute to change the core "
                    "(%s); keeping %s\n", "execv failed", info.core);
}

static void finish(const char *choice)
{
    snprintf(core_buf, sizeof core_buf, "%s", openblas_get_corename());
    info.core = core_buf;
    snprintf(choice_buf, sizeof choice_buf, "%s", choice);
    info.choice = choice_buf;
}

int srv_blas_start(const char *mode, char **argv)
{
    int level = cpu_level();
    info.mode = mode && mode[0] ? mode : "auto";
    const char *now = openblas_get_corename();
    const char *chosen = getenv("NERVED_BLAS_CHOSEN");
    const char *fallback = getenv("NERVED_BLAS_FALLBACK");
    const char *user = getenv("OPENBLAS_CORETYPE");
    char msg[160];
    int keep = strcmp(info.mode, "keep") == 0;
    int automatic = strcmp(info.mode, "auto") == 0;

    if (fallback) {
        /* After a failed self-test: OpenBLAS's own choice, for good. */
        info.selftest = self_test() ? "passed" : "failed";
        snprintf(msg, sizeof msg, "%s failed the self-test; OpenBLAS's own "
                 "choice", fallback);
        finish(msg);
        unsetenv("NERVED_BLAS_FALLBACK");
        unsetenv("NERVED_BLAS_PICKED");
    } else if (chosen) {
        /* Started by us with OPENBLAS_CORETYPE=chosen. */
        if (!automatic && strcasecmp(now, chosen) != 0) {
            fprintf(stderr, "nerved: --blas-core %s: OpenBLAS does not know "
                            "this core or cannot use it here (it runs %s)\n",
                    chosen, now);
            return -1;
        }
        if (!self_test()) {
            fprintf(stderr, "nerved: blas: core %s failed the start-up "
                            "self-test (sgemm/sgemv against plain loops); "
                            "going back to OpenBLAS's own choice\n", now);
            unsetenv("NERVED_BLAS_CHOSEN");
            unsetenv("OPENBLAS_CORETYPE");
            setenv("NERVED_BLAS_FALLBACK", now, 1);
            reexec(argv);
            info.selftest = "failed";
            finish("self-test failed; re-execution failed");
            return 0;
        }
        info.selftest = "passed";
        const char *picked = getenv("NERVED_BLAS_PICKED");
        if (strcasecmp(now, chosen) != 0)
            snprintf(msg, sizeof msg, "OpenBLAS would not run %s; its own "
                     "choice", chosen);
        else
            snprintf(msg, sizeof msg, automatic ? "chosen for this CPU's "
                     "features (OpenBLAS picked %s)" : "forced by --blas-core "
                     "(OpenBLAS picked %s)", picked ? picked : "?");
        finish(msg);
        unsetenv("NERVED_BLAS_CHOSEN");
        unsetenv("NERVED_BLAS_PICKED");
    } else if (user) {
        info.selftest = self_test() ? "passed" : "failed";
        finish("OPENBLAS_CORETYPE set by the user");
    } else if (keep) {
        info.selftest = self_test() ? "passed" : "failed";
        finish("OpenBLAS's own choice (--blas-core keep)");
    } else {
        /* auto or NAME: decide the wanted core, re-execute if it differs. */
        const char *want = NULL;
        if (automatic) {
            int have = core_level(now);
            if (have >= 0 && have < level)
                want = level == 2 ? "SkylakeX" : "Haswell";
        } else {
            int need = core_level(info.mode);
            if (need < 0) {
                fprintf(stderr, "nerved: --blas-core %s: not a core this "
                                "daemon knows; use auto, keep or one of",
                        info.mode);
                for (size_t i = 0; i < N_CORES; i++)
                    fprintf(stderr, " %s", cores[i].name);
                fprintf(stderr, "\n");
                return -1;
            }
            if (need > level) {
                fprintf(stderr, "nerved: --blas-core %s: this CPU lacks the "
                                "instructions it needs (has: %s)\n",
                        info.mode, info.cpu);
                return -1;
            }
            if (strcasecmp(now, info.mode) != 0)
                want = info.mode;
        }
        if (want) {
            fprintf(stderr, "nerved: blas: OpenBLAS picked %s on a CPU with "
                            "%s; re-executing with OPENBLAS_CORETYPE=%s\n",
                    now, info.cpu, want);
            setenv("OPENBLAS_CORETYPE", want, 1);
            setenv("NERVED_BLAS_CHOSEN", want, 1);
            setenv("NERVED_BLAS_PICKED", now, 1);
            reexec(argv);
            unsetenv("OPENBLAS_CORETYPE");
            unsetenv("NERVED_BLAS_CHOSEN");
            unsetenv("NERVED_BLAS_PICKED");
        }
        info.selftest = self_test() ? "passed" : "failed";
        finish(want ? "re-execution failed; OpenBLAS's own choice"
                    : automatic ? "OpenBLAS's own choice, the best this CPU "
                                  "allows"
                                : "as asked by --blas-core");
    }
    fprintf(stderr, "nerved: blas: core %s (%s), self-test %s, cpu %s\n",
            info.core, info.choice, info.selftest, info.cpu);
    return 0;
}
