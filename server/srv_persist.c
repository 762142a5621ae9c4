/*
 * srv_persist.c — the data directory: atomic writes (temporary file,
 * fsync, rename, fsync of the directory), removals made durable the same
 * way, and the load at start that skips, naming it, any file it cannot use.
 */
#include "srv_persist.h"
#include "api_persist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NET_PREFIX "net-"
#define CKPT_PREFIX "ckpt-"
#define SUFFIX ".nerved"
#define TMP_PREFIX ".tmp-"

struct srv_persist {
    char dir[4096];
    int dir_fd;     /* fsync'd after every rename and unlink */
};

static int storage_fail(api_error *err, const char *what, const char *file,
                        int errnum)
{
    return api_fail(err, 503, "storage", "cannot %s %s in the data directory: "
                    "%s", what, file, strerror(errnum));
}

srv_persist *srv_persist_open(const char *dir, char *msg, size_t size)
{
    if (strlen(dir) >= sizeof ((srv_persist *)0)->dir - 64) {
        snprintf(msg, size, "--data-dir: the path is too long");
        return NULL;
    }
    if (mkdir(dir, 0700) && errno != EEXIST) {
        snprintf(msg, size, "--data-dir: cannot create '%s': %s", dir,
                 strerror(errno));
        return NULL;
    }
    srv_persist *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(msg, size, "out of memory");
        return NULL;
    }
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    p->dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (p->dir_fd < 0) {
        snprintf(msg, size, "--data-dir: cannot open '%s': %s", dir,
                 strerror(errno));
        free(p);
        return NULL;
    }
    /* What a crash left half written was never renamed into place, so it
     * was never acknowledged: it goes. */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            char path[sizeof p->dir + 256];
            snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    return p;
}

void srv_persist_close(srv_persist *p)
{
    if (!p)
        return;
    close(p->dir_fd);
    free(p);
}

/* ------------------------------------------------------------- files */

static void network_file(const char *net_id, char *out, size_t size)
{
    snprintf(out, size, NET_PREFIX "%s" SUFFIX, net_id);
}

static void checkpoint_file(const char *net_id, const char *sid, char *out,
                            size_t size)
{
    snprintf(out, size, CKPT_PREFIX "%s-%s" SUFFIX, net_id, sid);
}

static int write_all(int fd, const unsigned char *bytes, size_t len)
{
    while (len) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Replaces file (a name in the directory) with bytes, all or nothing. */
static int write_atomically(srv_persist *p, const char *file,
                            const unsigned char *bytes, size_t len,
                            api_error *err)
{
    char tmp[sizeof p->dir + 32], path[sizeof p->dir + 128];
    snprintf(tmp, sizeof tmp, "%s/" TMP_PREFIX "XXXXXX", p->dir);
    snprintf(path, sizeof path, "%s/%s", p->dir, file);
    /* A unique temporary name: two saves of one network may overlap. */
    int fd = mkstemp(tmp);
    if (fd < 0)
        return storage_fail(err, "create a temporary file for", file, errno);
    int failed = write_all(fd, bytes, len) || fsync(fd);
    int saved = errno;
    if (close(fd) && !failed) {
        failed = 1;
        saved = errno;
    }
    if (!failed && rename(tmp, path)) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        unlink(tmp);
        return storage_fail(err, "write", file, saved);
    }
    /* The rename is durable only once the directory is. */
    if (fsync(p->dir_fd))
        return storage_fail(err, "sync the directory after writing", file,
                            errno);
    return 0;
}

/* Removes files (names in the directory), then makes that durable. */
static int remove_files(srv_persist *p, char (*files)[160], int n,
                        api_error *err)
{
    for (int i = 0; i < n; i++) {
        char path[sizeof p->dir + 160];
        snprintf(path, sizeof path, "%s/%s", p->dir, files[i]);
        if (unlink(path) && errno != ENOENT)
            return storage_fail(err, "remove", files[i], errno);
    }
    if (fsync(p->dir_fd))
        return storage_fail(err, "sync the directory after removing",
                            n ? files[0] : "files", errno);
    return 0;
}

/* ------------------------------------------------------------ saving */

#define IDS_FILE "ids" SUFFIX
#define IDS_FORMAT "nerved ids 1\nnetworks %llu\nsessions %llu\n"

int srv_persist_save_id_marks(void *persist, unsigned long long networks,
                              unsigned long long sessions, api_error *err)
{
    srv_persist *p = persist;
    if (!p)
        return 0;
    char text[128];
    int len = snprintf(text, sizeof text, IDS_FORMAT, networks, sessions);
    return write_atomically(p, IDS_FILE, (const unsigned char *)text,
                            (size_t)len, err);
}

int srv_persist_save_network(srv_persist *p, srv_network *net, api_error *err)
{
    if (!p || !srv_network_linked(net))
        return 0;
    if (!net->definition)
        return api_fail(err, 503, "storage", "network '%s' has no definition "
                        "to save", net->id);
    unsigned char *bytes;
    size_t len;
    if (api_network_file_write(net->id, net->name, net->definition,
                               net->graph, &bytes, &len, err))
        return -1;
    char file[160];
    network_file(net->id, file, sizeof file);
    int rc = write_atomically(p, file, bytes, len, err);
    free(bytes);
    return rc;
}

int srv_persist_remove_network(srv_persist *p, srv_network *net,
                               api_error *err)
{
    if (!p)
        return 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, CKPT_PREFIX "%s-", net->id);
    struct dirent **entries;
    int n = scandir(p->dir, &entries, NULL, alphasort);
    if (n < 0)
        return storage_fail(err, "list", "the checkpoints", errno);
    char (*files)[160] = calloc((size_t)n + 1, sizeof *files);
    int n_files = 0;
    if (files)
        network_file(net->id, files[n_files++], sizeof *files);
    for (int i = 0; i < n; i++) {
        if (files && strncmp(entries[i]->d_name, prefix, strlen(prefix)) == 0)
            snprintf(files[n_files++], sizeof *files, "%s",
                     entries[i]->d_name);
        free(entries[i]);
    }
    free(entries);
    if (!files)
        return api_fail(err, 503, "out_of_memory", "out of memory");
    /* The network's own file first: checkpoints without it are never
     * loaded, so a crash in between leaves nothing that comes back. */
    int rc = remove_files(p, files, 1, err);
    if (rc == 0 && n_files > 1)
        rc = remove_files(p, files + 1, n_files - 1, err);
    free(files);
    return rc;
}

int srv_persist_save_session(srv_persist *p, srv_session *s, size_t *bytes_out,
                             api_error *err)
{
    if (bytes_out)
        *bytes_out = 0;
    if (!p || !srv_session_linked(s))
        return 0;
    unsigned char *bytes;
    size_t len;
    if (api_checkpoint_write(s->net->id, s->id, s->net->graph, s->run, &bytes,
                             &len, err))
        return -1;
    char file[160];
    checkpoint_file(s->net->id, s->id, file, sizeof file);
    int rc = write_atomically(p, file, bytes, len, err);
    free(bytes);
    if (rc == 0 && bytes_out)
        *bytes_out = len;
    return rc;
}

int srv_persist_remove_session(srv_persist *p, srv_session *s, api_error *err)
{
    if (!p)
        return 0;
    char files[1][160];
    checkpoint_file(s->net->id, s->id, files[0], sizeof files[0]);
    return remove_files(p, files, 1, err);
}

/* ----------------------------------------------------------- loading */

/* Reads all of fd from its current offset into buf[0, want). */
static int read_fully(int fd, unsigned char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a FIFO"
         : S_ISSOCK(mode) ? "a socket" : S_ISCHR(mode) ? "a character device"
         : S_ISBLK(mode) ? "a block device" : "not a regular file";
}

/* A file of the data directory, checked before it is read: opened without
 * blocking (a FIFO would wait forever for a writer), only a regular file,
 * and its header must announce exactly its size, with at most max_values
 * floats, before the rest is read (a huge file with a bad header costs no
 * memory). */
static unsigned char *read_whole(const char *path, char kind,
                                 size_t max_values, size_t *len, char *why,
                                 size_t size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        snprintf(why, size, "cannot read: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, size, "%s, not a regular file", file_kind(st.st_mode));
        close(fd);
        return NULL;
    }
    size_t want = (size_t)st.st_size;
    unsigned char head[API_PERSIST_HEADER];
    api_error err;
    if (want < sizeof head) {
        snprintf(why, size, "truncated: %zu bytes, shorter than the %d-byte "
                 "header", want, API_PERSIST_HEADER);
        close(fd);
        return NULL;
    }
    if (read_fully(fd, head, sizeof head)) {
        snprintf(why, size, "short read");
        close(fd);
        return NULL;
    }
    if (api_persist_header_check(head, want, kind, max_values, &err)) {
        snprintf(why, size, "%s", err.message);
        close(fd);
        return NULL;
    }
    unsigned char *buf = malloc(want);
    if (!buf) {
        snprintf(why, size, "out of memory (%zu bytes)", want);
        close(fd);
        return NULL;
    }
    memcpy(buf, head, sizeof head);
    int rc = read_fully(fd, buf + sizeof head, want - sizeof head);
    close(fd);
    if (rc) {
        snprintf(why, size, "short read");
        free(buf);
        return NULL;
    }
    *len = want;
    return buf;
}

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n > m && strcmp(name + n - m, suffix) == 0;
}

static void skip(const char *file, const char *why)
{
    fprintf(stderr, "nerved: data directory: %s: %s; skipped\n", file, why);
}

static int load_network(const char *file,
                        const unsigned char *bytes, size_t len,
                        const nn_registry *reg, const api_limits *lim)
{
    api_stored_network stored;
    api_error err;
    if (api_network_file_read(bytes, len, reg, lim, &stored, &err)) {
        skip(file, err.message);
        return 0;
    }
    char expected[160];
    network_file(stored.id, expected, sizeof expected);
    srv_network *net = NULL;
    if (strcmp(file, expected) != 0) {
        char why[256];
        snprintf(why, sizeof why, "holds network '%s', whose file is %s",
                 stored.id, expected);
        skip(file, why);
        api_stored_network_free(&stored);
        return 0;
    }
    const char *name = stored.name[0] ? stored.name : NULL;
    if (name && api_is_network_id(name)) {
        /* Written before such names were refused: the network is kept,
         * its name (which would shadow an id) is not. */
        fprintf(stderr, "nerved: %s: network %s loses its name '%s', which "
                "has the form of a network id\n", file, stored.id, name);
        name = NULL;
    } else if (name && (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)) {
        /* The same for "." and "..", which no URL can address. Only
         * those: a name given by a --preload file may hold characters a
         * definition's may not, and must stay what that file finds. */
        fprintf(stderr, "nerved: %s: network %s loses its name '%s', which "
                "no URL can address\n", file, stored.id, name);
        name = NULL;
    }
    if (srv_network_add(stored.graph, stored.definition, name, stored.id, &net,
                        &err)) {
        skip(file, err.message);
        return 0;
    }
    srv_network_release(net);
    return 1;
}

static int load_checkpoint(const char *file, const unsigned char *bytes,
                           size_t len)
{
    api_checkpoint c;
    api_error err;
    int loaded = 0;
    srv_network *net = NULL;
    srv_session *s = NULL;
    char expected[160];
    if (api_checkpoint_read(bytes, len, &c, &err)) {
        skip(file, err.message);
        goto done;
    }
    checkpoint_file(c.network, c.session, expected, sizeof expected);
    if (strcmp(file, expected) != 0) {
        char why[256];
        snprintf(why, sizeof why, "holds session '%s' of network '%s', whose "
                 "file is %s", c.session, c.network, expected);
        skip(file, why);
        goto done;
    }
    if (!(net = srv_network_get(c.network, &err)) ||
        srv_session_add(net, c.batch, c.session, &s, &err)) {
        skip(file, err.message);
        goto done;
    }
    pthread_mutex_lock(&s->lock);
    int rc = api_checkpoint_apply(&c, net->graph, s->run, &err);
    pthread_mutex_unlock(&s->lock);
    if (rc) {
        skip(file, err.message);
        srv_session_delete(net, s->id, NULL);
        goto done;
    }
    loaded = 1;
done:
    srv_session_release(s);
    srv_network_release(net);
    api_checkpoint_free(&c);
    return loaded;
}

/* Ids named by a file name are never handed out again, even when the file
 * does not load: it may be repaired and loaded at a later start. */
static void reserve_ids_of(const char *file, const char *prefix)
{
    char ids[160];
    size_t len = strlen(file) - strlen(prefix) - strlen(SUFFIX);
    snprintf(ids, sizeof ids, "%.*s", (int)len, file + strlen(prefix));
    char *dash = strchr(ids, '-');
    if (dash) { /* a checkpoint: network id, then session id */
        *dash = '\0';
        srv_store_reserve_id(dash + 1);
    }
    srv_store_reserve_id(ids);
}

/* The marks of ids.nerved, if there is one; a damaged one is named, and
 * the ids the other files name are still never handed out again. */
static void load_id_marks(srv_persist *p)
{
    char path[sizeof p->dir + 32];
    snprintf(path, sizeof path, "%s/" IDS_FILE, p->dir);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            skip(IDS_FILE, strerror(errno));
        return;
    }
    char text[128];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    unsigned long long networks, sessions;
    char end;
    if (n < 0 || (text[n] = '\0',
                  sscanf(text, IDS_FORMAT "%c", &networks, &sessions, &end)
                      != 2 ||
                  networks > 1000000000000000000ULL ||
                  sessions > 1000000000000000000ULL)) {
        skip(IDS_FILE, "not the format of nerved's id marks");
        return;
    }
    srv_store_reserve_serials(networks, sessions);
}

void srv_persist_load(srv_persist *p, const nn_registry *reg,
                      const api_limits *lim, int *networks, int *sessions)
{
    *networks = *sessions = 0;
    if (!p)
        return;
    struct dirent **entries;
    int n = scandir(p->dir, &entries, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "nerved: data directory: cannot list '%s': %s\n",
                p->dir, strerror(errno));
        return;
    }
    load_id_marks(p);
    /* Networks first: every checkpoint needs its network. */
    for (int pass = 0; pass < 2; pass++) {
        const char *prefix = pass == 0 ? NET_PREFIX : CKPT_PREFIX;
        for (int i = 0; i < n; i++) {
            const char *file = entries[i]->d_name;
            if (strncmp(file, prefix, strlen(prefix)) != 0 ||
                !has_suffix(file, SUFFIX))
                continue;
            reserve_ids_of(file, prefix);
            char path[sizeof p->dir + 512], why[256];
            snprintf(path, sizeof path, "%s/%s", p->dir, file);
            size_t len;
            /* A network holds at most max_params weights (and the
             * patterns of its sparse ones); a checkpoint at most a
             * session's floats. */
            size_t max_values = pass == 0
                                    ? api_network_max_words(lim->max_params)
                                    : lim->max_session_floats;
            unsigned char *bytes = read_whole(path, pass == 0 ? 'N' : 'C',
                                              max_values, &len, why,
                                              sizeof why);
            if (!bytes)
                skip(file, why);
            else if (pass == 0)
                *networks += load_network(file, bytes, len, reg, lim);
            else
                *sessions += load_checkpoint(file, bytes, len);
            free(bytes);
        }
    }
    for (int i = 0; i < n; i++)
        free(entries[i]);
    free(entries);
}
