/*
 * bidir.c — a recurrent cell over a whole sequence in both directions.
 *
 * Scratch, from ctx->work ((T + 1) * batch * nn_bidir_work_per_row):
 * each direction's state before each of its steps and after the last,
 * hist[d][s][k] (batch, H), s counted in the direction's own order (the
 * reverse direction's step s is time T - 1 - s); then the cell's one-step
 * scratch, one (batch, H) step of output or output gradient, and the
 * state gradients.
 */
#include "bidir.h"

#include <string.h>

size_t nn_bidir_work_per_row(const nn_bidir_cell *cell)
{
    size_t h = (size_t)cell->units, k = (size_t)cell->n_state;
    /* Per step: both histories; once (counted per step, as the host gives
     * per-step scratch): the cell's, a step of output and the dstate. */
    return 2 * k * h + cell->step_work + h + k * h;
}

typedef struct layout {
    int T, batch;
    size_t bh;     /* batch * H: one state tensor */
    float *hist;   /* [2][T + 1][n_state][bh] */
    float *step;   /* the cell's scratch */
    float *row;    /* (batch, H) */
    float *dstate; /* [n_state][bh] */
} layout;

static layout make_layout(const nn_bidir_cell *cell, int T, nn_ctx *ctx)
{
    layout l;
    l.T = T;
    l.batch = ctx->num_batch;
    l.bh = (size_t)l.batch * (size_t)cell->units;
    size_t k = (size_t)cell->n_state;
    l.hist = ctx->work;
    l.step = l.hist + 2 * (size_t)(T + 1) * k * l.bh;
    l.row = l.step + (size_t)l.batch * cell->step_work;
    l.dstate = l.row + l.bh;
    return l;
}

static float *hist_at(const nn_bidir_cell *cell, const layout *l, int d,
                      int s, int k)
{
    size_t n = (size_t)cell->n_state;
    return l->hist + (((size_t)d * (size_t)(l->T + 1) + (size_t)s) * n +
                      (size_t)k) * l->bh;
}

/* Views of step t of the sequences seq[0..n) (T, batch, ...) into views. */
static void step_views(const nn_tensor *seq, int n, int t, nn_tensor *views)
{
    for (int i = 0; i < n; i++) {
        nn_shape sh = seq[i].shape;
        memmove(&sh.dims[0], &sh.dims[1], sizeof(int) * (size_t)(sh.ndim - 1));
        sh.ndim--;
        size_t per = nn_shape_numel(&sh);
        views[i] = nn_tensor_view(seq[i].data + (size_t)t * per, &sh);
    }
}

/* Both directions forward from zero state, filling the histories and,
 * when out is not NULL, out (T, batch, 2H). views: n_ff tensors. */
static int run_both(const nn_bidir_cell *cell, const layout *l,
                    const nn_tensor *ff, int n_ff, nn_tensor *out,
                    nn_tensor *views, nn_ctx *ctx)
{
    int T = l->T, k_n = cell->n_state;
    size_t H = (size_t)cell->units;
    nn_shape bhs = nn_shape2(l->batch, cell->units);
    nn_tensor state[2];
    for (int d = 0; d < 2; d++) {
        memset(hist_at(cell, l, d, 0, 0), 0,
               (size_t)k_n * l->bh * sizeof(float));
        for (int s = 0; s < T; s++) {
            int t = d ? T - 1 - s : s;
            for (int k = 0; k < k_n; k++) {
                float *next = hist_at(cell, l, d, s + 1, k);
                memcpy(next, hist_at(cell, l, d, s, k),
                       l->bh * sizeof(float));
                state[k] = nn_tensor_view(next, &bhs);
            }
            step_views(ff, n_ff, t, views);
            nn_tensor row = nn_tensor_view(l->row, &bhs);
            nn_ctx c = *ctx;
            c.state = state;
            c.n_state = k_n;
            c.work = l->step;
            int rc = cell->forward(cell->dir[d], views, n_ff, &row, &c);
            if (rc != NN_OK)
                return rc;
            for (int b = 0; out && b < l->batch; b++)
                memcpy(out->data + (((size_t)t * (size_t)l->batch +
                                     (size_t)b) * 2 + (size_t)d) * H,
                       l->row + (size_t)b * H, H * sizeof(float));
        }
    }
    return NN_OK;
}

static nn_tensor *views_new(int n, nn_ctx *ctx)
{
    nn_tensor *v = nn_calloc((size_t)(n > 0 ? n : 1), sizeof *v);
    if (!v)
        nn_error_set(ctx->err, NN_ERR_NOMEM, "out of memory");
    return v;
}

int nn_bidir_forward(const nn_bidir_cell *cell, const nn_tensor *ff, int n_ff,
                     nn_tensor *out, nn_ctx *ctx)
{
    layout l = make_layout(cell, out->shape.dims[0], ctx);
    nn_tensor *views = views_new(n_ff, ctx);
    if (!views)
        return NN_ERR_NOMEM;
    int rc = run_both(cell, &l, ff, n_ff, out, views, ctx);
    nn_free(views);
    return rc;
}

int nn_bidir_backward(const nn_bidir_cell *cell, const nn_tensor *ff,
                      int n_ff, const nn_tensor *dout, nn_tensor *dff,
                      nn_ctx *ctx)
{
    layout l = make_layout(cell, dout->shape.dims[0], ctx);
    int T = l.T, k_n = cell->n_state;
    size_t H = (size_t)cell->units;
    nn_tensor *views = views_new(2 * n_ff, ctx);
    if (!views)
        return NN_ERR_NOMEM;
    nn_tensor *dviews = dff ? views + n_ff : NULL;
    int rc = run_both(cell, &l, ff, n_ff, NULL, views, ctx);
    nn_shape bhs = nn_shape2(l.batch, cell->units);
    nn_tensor before[2], after[2], dstate[2];
    for (int k = 0; k < k_n; k++)
        dstate[k] = nn_tensor_view(l.dstate + (size_t)k * l.bh, &bhs);
    for (int d = 0; d < 2 && rc == NN_OK; d++) {
        memset(l.dstate, 0, (size_t)k_n * l.bh * sizeof(float));
        for (int s = T - 1; s >= 0 && rc == NN_OK; s--) {
            int t = d ? T - 1 - s : s;
            for (int k = 0; k < k_n; k++) {
                before[k] = nn_tensor_view(hist_at(cell, &l, d, s, k), &bhs);
                after[k] = nn_tensor_view(hist_at(cell, &l, d, s + 1, k),
                                          &bhs);
            }
            step_views(ff, n_ff, t, views);
            if (dviews)
                step_views(dff, n_ff, t, dviews);
            for (int b = 0; b < l.batch; b++)
                memcpy(l.row + (size_t)b * H,
                       dout->data + (((size_t)t * (size_t)l.batch +
                                      (size_t)b) * 2 + (size_t)d) * H,
                       H * sizeof(float));
            nn_tensor drow = nn_tensor_view(l.row, &bhs);
            nn_ctx c = *ctx;
            c.state = before;
            c.state_next = after;
            c.n_state = k_n;
            c.dstate = dstate;
            c.work = l.step;
            /* h after the step is the step's output. */
            rc = cell->backward(cell->dir[d], views, n_ff, &after[0], &drow,
                                dviews, &c);
        }
    }
    nn_free(views);
    return rc;
}
