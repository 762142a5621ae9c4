/*
 * srv_budget.h — one memory budget for the whole daemon (--max-memory).
 * Request bodies as they arrive, sessions, run outputs and training tapes
 * are charged before they are allocated and released when they are freed,
 * so many clients together meet a 503 or 413, never the OOM killer.
 */
#ifndef SRV_BUDGET_H
#define SRV_BUDGET_H

#include <stddef.h>

/* limit 0: the default (srv_budget_default). */
void srv_budget_init(size_t limit);
/* Half of what the machine has, or of the cgroup's limit when there is
 * one (a container's memory.max). */
size_t srv_budget_default(void);
/* Takes bytes from the budget: 0, or -1 (nothing taken) when they do not
 * fit. */
int srv_budget_charge(size_t bytes);
void srv_budget_release(size_t bytes);
size_t srv_budget_used(void);
size_t srv_budget_limit(void);

#endif
