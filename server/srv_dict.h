/*
 * srv_dict.h — a string-keyed hash table, chained, doubling as it fills
 * (as redis's dict, without incremental rehashing: the tables here hold at
 * most the configured numbers of networks and sessions).
 *
 * The table does not copy keys: a key must stay valid and unchanged while
 * its entry is in the table (it points into the value, as a network's id).
 */
#ifndef SRV_DICT_H
#define SRV_DICT_H

#include <stddef.h>

typedef struct srv_dict_entry {
    const char *key;
    void *value;
    struct srv_dict_entry *next;
} srv_dict_entry;

typedef struct srv_dict {
    srv_dict_entry **table;
    size_t size;    /* buckets: 0 or a power of two */
    size_t used;    /* entries */
} srv_dict;

/* A zeroed srv_dict is an empty table. */
/* Adds key; returns 0, or -1 when out of memory. The key must not be in
 * the table yet. */
int srv_dict_add(srv_dict *d, const char *key, void *value);
void *srv_dict_find(const srv_dict *d, const char *key);
/* Removes key; returns its value, or NULL when it was not there. */
void *srv_dict_delete(srv_dict *d, const char *key);
/* Calls fn for every value, in no particular order; fn must not change d. */
void srv_dict_each(const srv_dict *d, void (*fn)(void *value, void *arg),
                   void *arg);
/* Frees the table, not the values. */
void srv_dict_clear(srv_dict *d);

#endif
