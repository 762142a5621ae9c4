/*
 * api_fit.h — the JSON of a training request and of its result.
 *
 *   {"method": "ridge" | "rls" | "force" | "bptt",
 *    "inputs": {"<input>": (N, T, ...)}, "targets": {"<node>": (N, T, ...)},
 *    (ridge also: "data": [{"inputs": ..., "targets": ...}, ...]),
 *    ridge: "beta" (1e-7), "warmup" (0);
 *    rls/force: "alpha" (1), "forgetting" (1: none), "reset" (false),
 *               "continue_state" (false);
 *    lms: "lr" (1e-6, ReservoirPy's learning_rate), "reset" (false),
 *         "continue_state" (false);
 *    ip: "epochs" (1), "warmup" (0); no targets (intrinsic plasticity is
 *        unsupervised: it adapts every IPReservoir's a and b);
 *    bptt: "loss" ("mse" | "softmax_cross_entropy"), "epochs" (10),
 *          "batch_size" (0: all), "shuffle" (true), "window" (0: whole),
 *          "clip_norm" (0: none), "seed",
 *          "optimizer": {"type": "sgd" | "adam" | "adamw", "lr",
 *                        "momentum", "beta1", "beta2", "eps",
 *                        "weight_decay" (0; adamw: 0.01, decoupled)},
 *          "schedule": {"type": "constant" | "step" | "exponential" |
 *                       "cosine", "step_size", "gamma", "lr_min",
                       "epochs" (cosine's horizon; default: the fit's)};
 *    "wait": false}
 * Unknown members are refused by name, so a misspelt option is never
 * silently ignored.
 */
#ifndef API_FIT_H
#define API_FIT_H

#include "api.h"
#include "api_codec.h"
#include "nn_train.h"

typedef enum api_fit_method {
    API_FIT_RIDGE,
    API_FIT_RLS,   /* the online rules: rls, force and lms */
    API_FIT_BPTT,
    API_FIT_IP     /* intrinsic plasticity of IPReservoir nodes */
} api_fit_method;

/* One batch of sequences: inputs by entry, targets by node. */
typedef struct api_fit_data {
    nn_binding *inputs;  /* nn_graph_entry_count long */
    int n_inputs;
    nn_binding *targets; /* none for ip */
    int n_targets;
    int batch, steps;
} api_fit_data;

typedef struct api_fit_request {
    api_fit_method method;
    char method_name[8];
    api_fit_data *data;
    int n_data;
    double beta;   /* ridge */
    int warmup;    /* ridge, ip */
    int ip_epochs; /* ip */
    nn_online_opts online; /* rls, force, lms */
    int reset;     /* online: start P (and a kept state) again */
    int continue_state; /* online: start from the state the previous
                           request with continue_state left, not zero */
    nn_fit_opts fit; /* bptt */
    int wait;
} api_fit_request;

/* Reads a request against g: names in the bindings point into g, which must
 * outlive req. Checks every option's type and range and every tensor's
 * shape against its node; the trainers check what depends on the method
 * (which nodes they can train). The options come from body, a tree of the
 * document; the sequences (inputs, targets, data) from text, the same
 * document with its bulk numbers (api_codec.h: the arrays a body's pushed
 * reader kept as float32, which body then holds as the strings
 * api_json_naming_blobs names them by), so no tree of numbers is built.
 * Tensors read from those blobs borrow text's document (owns_data 0),
 * which must outlive req. With the binary tensor framing, bin indexes the
 * bytes after the JSON header (tensors {"shape", "binary_data_size"},
 * copied out); NULL refuses binary_data_size. Release with api_fit_request_release, also
 * after a failure, before that document. */
int api_fit_request_parse(const cJSON *body, const api_json *text,
                          const api_json_blobs *bin, nn_graph *g,
                          const api_limits *lim, api_fit_request *req,
                          api_error *err);
void api_fit_request_release(api_fit_request *req);

#endif
