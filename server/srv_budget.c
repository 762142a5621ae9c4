/*
 * srv_budget.c — the memory budget: one atomic counter, charged with a
 * compare-and-swap so that concurrent charges never overshoot the limit.
 */
#include "srv_budget.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static atomic_size_t used;
static size_t limit_bytes = SIZE_MAX;

/* The cgroup v2 (or v1) limit of this process, or 0 when there is none. */
static size_t cgroup_limit(void)
{
    static const char *const files[] = {
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f)
            continue;
        unsigned long long v = 0;
        int got = fscanf(f, "%llu", &v) == 1;
        fclose(f);
        /* "max", or v1's "no limit" of nearly 2^63. */
        if (got && v > 0 && v < (1ull << 60))
            return (size_t)v;
    }
    return 0;
}

size_t srv_budget_default(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t machine = pages > 0 && page > 0 ? (size_t)pages * (size_t)page
                                           : (size_t)1 << 32;
    size_t group = cgroup_limit();
    size_t have = group && group < machine ? group : machine;
    return have / 2;
}

void srv_budget_init(size_t limit)
{
    limit_bytes = limit ? limit : srv_budget_default();
    atomic_store(&used, 0);
}

int srv_budget_charge(size_t bytes)
{
    size_t now = atomic_load(&used);
    do {
        if (bytes > limit_bytes || now > limit_bytes - bytes)
            return -1;
    } while (!atomic_compare_exchange_weak(&used, &now, now + bytes));
    return 0;
}

void srv_budget_release(size_t bytes)
{
    atomic_fetch_sub(&used, bytes);
}

size_t srv_budget_used(void) { return atomic_load(&used); }
size_t srv_budget_limit(void) { return limit_bytes; }
