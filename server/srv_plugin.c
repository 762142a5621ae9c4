/*
 * srv_plugin.c — dlopen-based plugin loading, after redis's moduleLoad and
 * ggml's backend loader: open, check the version symbol, call one entry
 * point, and undo everything on failure.
 */
#define _GNU_SOURCE /* realpath, DT_REG */
#include "srv_plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PLUGINS 64

static void *loaded[MAX_PLUGINS];
static int n_loaded;

static int fail(char *msg, size_t msgsize, const char *path, const char *why)
{
    snprintf(msg, msgsize, "plugin '%s': %s", path, why);
    return -1;
}

int srv_plugin_load(nn_registry *reg, const char *path, char *msg,
                    size_t msgsize)
{
    char why[600], full[PATH_MAX];
    struct stat st;
    if (n_loaded == MAX_PLUGINS)
        return fail(msg, msgsize, path, "too many plugins");
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return fail(msg, msgsize, path, "no such file");
    /* dlopen searches the library path for names without a slash; a plugin
     * is always the file that was named. */
    if (!realpath(path, full))
        return fail(msg, msgsize, path, "cannot resolve the path");
    dlerror();
    void *handle = dlopen(full, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *e = dlerror();
        const char *undefined = e ? strstr(e, "undefined symbol: ") : NULL;
        if (undefined)
            snprintf(why, sizeof why, "uses '%.200s', which the daemon does "
                     "not export: a plugin may call only the functions of "
                     "nn.h", undefined + strlen("undefined symbol: "));
        else
            snprintf(why, sizeof why, "cannot be loaded as a shared object "
                     "(%s)", e ? e : "unknown reason");
        return fail(msg, msgsize, path, why);
    }
    const int *version = dlsym(handle, NN_PLUGIN_VERSION_SYMBOL);
    if (!version) {
        dlclose(handle);
        return fail(msg, msgsize, path, "missing symbol "
                    NN_PLUGIN_VERSION_SYMBOL " (declare NN_PLUGIN_EXPORT_VERSION "
                    "once in the plugin)");
    }
    if (*version < NN_API_VERSION_MIN || *version > NN_API_VERSION) {
        snprintf(why, sizeof why, "built against node API version %d; this "
                 "nerved accepts versions %d to %d", *version,
                 NN_API_VERSION_MIN, NN_API_VERSION);
        dlclose(handle);
        return fail(msg, msgsize, path, why);
    }
    nn_plugin_init_fn init;
    /* POSIX guarantees object and function pointers convert through dlsym. */
    *(void **)&init = dlsym(handle, NN_PLUGIN_INIT_SYMBOL);
    if (!init) {
        dlclose(handle);
        return fail(msg, msgsize, path, "missing symbol "
                    NN_PLUGIN_INIT_SYMBOL);
    }
    int before = nn_registry_count(reg);
    nn_error err;
    nn_error_clear(&err);
    int rc = init(reg, &err);
    if (rc != NN_OK) {
        nn_registry_truncate(reg, before);
        dlclose(handle);
        snprintf(why, sizeof why, "%s failed: %s", NN_PLUGIN_INIT_SYMBOL,
                 err.msg[0] ? err.msg : nn_status_str(rc));
        return fail(msg, msgsize, path, why);
    }
    loaded[n_loaded++] = handle;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int srv_plugin_load_dir(nn_registry *reg, const char *dir, char *msg,
                        size_t msgsize)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(msg, msgsize, "plugin directory '%s' cannot be read", dir);
        return -1;
    }
    char *names[MAX_PLUGINS];
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        if (n == MAX_PLUGINS) {
            snprintf(msg, msgsize, "plugin directory '%s' holds more than %d "
                     "plugins", dir, MAX_PLUGINS);
            rc = -1;
            break;
        }
        if (!(names[n] = malloc(strlen(dir) + len + 2))) {
            snprintf(msg, msgsize, "out of memory");
            rc = -1;
            break;
        }
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && srv_plugin_load(reg, names[i], msg, msgsize) == 0)
            count++;
        else
            rc = -1;
        free(names[i]);
    }
    return rc == 0 ? count : -1;
}

void srv_plugins_unload_all(void)
{
    while (n_loaded > 0)
        dlclose(loaded[--n_loaded]);
}
