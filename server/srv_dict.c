/*
 * srv_dict.c — the string-keyed hash table of srv_dict.h.
 */
#include "srv_dict.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static int grow(srv_dict *d)
{
    size_t size = d->size ? 2 * d->size : 16;
    srv_dict_entry **table = calloc(size, sizeof *table);
    if (!table)
        return -1;
    for (size_t i = 0; i < d->size; i++)
        for (srv_dict_entry *e = d->table[i], *next; e; e = next) {
            next = e->next;
            size_t b = hash(e->key) & (size - 1);
            e->next = table[b];
            table[b] = e;
        }
    free(d->table);
    d->table = table;
    d->size = size;
    return 0;
}

int srv_dict_add(srv_dict *d, const char *key, void *value)
{
    /* Grows at one entry per bucket; a table that cannot grow still
     * works, with longer chains. */
    if ((d->used >= d->size && grow(d) && !d->size))
        return -1;
    srv_dict_entry *e = malloc(sizeof *e);
    if (!e)
        return -1;
    size_t b = hash(key) & (d->size - 1);
    e->key = key;
    e->value = value;
    e->next = d->table[b];
    d->table[b] = e;
    d->used++;
    return 0;
}

void *srv_dict_find(const srv_dict *d, const char *key)
{
    if (!d->size)
        return NULL;
    for (srv_dict_entry *e = d->table[hash(key) & (d->size - 1)]; e;
         e = e->next)
        if (strcmp(e->key, key) == 0)
            return e->value;
    return NULL;
}

void *srv_dict_delete(srv_dict *d, const char *key)
{
    if (!d->size)
        return NULL;
    srv_dict_entry **at = &d->table[hash(key) & (d->size - 1)];
    for (; *at; at = &(*at)->next)
        if (strcmp((*at)->key, key) == 0) {
            srv_dict_entry *e = *at;
            void *value = e->value;
            *at = e->next;
            free(e);
            d->used--;
            return value;
        }
    return NULL;
}

void srv_dict_each(const srv_dict *d, void (*fn)(void *value, void *arg),
                   void *arg)
{
    for (size_t i = 0; i < d->size; i++)
        for (srv_dict_entry *e = d->table[i]; e; e = e->next)
            fn(e->value, arg);
}

void srv_dict_clear(srv_dict *d)
{
    for (size_t i = 0; i < d->size; i++)
        for (srv_dict_entry *e = d->table[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(d->table);
    memset(d, 0, sizeof *d);
}
