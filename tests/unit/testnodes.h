/*
 * testnodes.h — tiny node types for the engine's tests, written through the
 * public API only, each with a hand-checkable forward and a backward:
 *   TIn(shape)       a source (input)
 *   TAdd(gain)       sum of ff inputs + gain * sum of fb inputs
 *   TNoFb            sum of ff inputs; no feedback support
 *   TCat             concatenation on the last axis
 *   TAcc(start)      stateful: s += x, out = s; s starts at `start`
 *   TWeighted        out = x * w (elementwise), one trainable weight "w"
 */
#ifndef TESTNODES_H
#define TESTNODES_H

#include "nn_graph.h"

/* Registers every test type into reg. */
int tn_register_all(nn_registry *reg, nn_error *err);

#endif
