"""Pieces shared by the C exports (float32 and int8): literals, constant arrays, the header, the metadata file.

A C export is a directory with ``spikerl_policy.h`` (sizes, the state struct, the API), ``spikerl_policy.c``
(const weight arrays and the decision function) and ``spikerl_policy.json`` (what the Python side needs to
build, check and evaluate it: sizes, spike-count layout, energy bookkeeping, env, quantization report).
The C code is C99, allocates nothing and calls nothing from libc beyond ``math.h`` (``tanhf``, ``expf``,
``isfinite``); the integer types come from the freestanding ``stdint.h``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikerl.runtime.c_policy import HEADER_FILE, META_FILE, META_FORMAT, META_VERSION, SOURCE_FILE
from spikerl.runtime.spec import PolicySpec

PRECISIONS = ("float32", "int8")


def c_float(x: float) -> str:
    """``x`` rounded to float32 as a C float literal that parses back to exactly that float32."""
    f = np.float32(x)
    if not np.isfinite(f):
        raise ValueError(f"C export: a constant is not finite ({x!r}); the policy holds NaN or Inf weights")
    text = np.format_float_scientific(f, unique=True, trim="-")
    return ("-" if text.startswith("-") else "") + text.lstrip("-") + "f"


def c_array(ctype: str, name: str, values: np.ndarray, fmt: Any = None, per_line: int = 12) -> str:
    """``static const ctype name[d0][d1]... = {...};`` of ``values`` (C row-major order, nested braces)."""
    values = np.asarray(values)
    fmt = fmt or (c_float if ctype == "float" else (lambda v: str(int(v))))

    def body(a: np.ndarray, depth: int) -> str:
        pad = "    " * depth
        if a.ndim == 1:
            flat = [fmt(v) for v in a]
            return ",\n".join(pad + ", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line))
        return ",\n".join(f"{pad}{{\n{body(sub, depth + 1)}\n{pad}}}" for sub in a)

    dims = "".join(f"[{d}]" for d in values.shape)
    return f"static const {ctype} {name}{dims} = {{\n{body(values, 1)}\n}};\n"


def index_type(max_index: int) -> str:
    """The smallest unsigned type holding a neuron index below ``max_index``."""
    return "uint16_t" if max_index <= 0xFFFF else "uint32_t"


def action_affine(manifest: dict[str, Any] | None, act_dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, span) in float32 of the bundle's action scaling ``a_env = low + (0.5 (a + 1)) span``, or None.

    Rounded as the runtime rounds them: low and high each to float32, then span = high - low in float32."""
    if not manifest:
        return None
    space = manifest.get("action_space")
    if space is None or manifest.get("action_scaling", {}).get("kind") != "affine":
        return None
    low = np.array([float(v) for v in space["low"]], dtype=np.float64).astype(np.float32)
    high = np.array([float(v) for v in space["high"]], dtype=np.float64).astype(np.float32)
    if low.shape != (act_dim,):
        raise ValueError(f"C export: the action space has {low.size} entries but the policy gives {act_dim}")
    return low, (high - low).astype(np.float32)


@dataclass
class CodeParts:
    """What a precision-specific generator produces, for :func:`write_files` to assemble.

    ``state_fields``: C declarations inside ``struct spikerl_state`` (scratch and carried state);
    ``host_fields``: extra fields present only with ``SPIKERL_HOST_API`` (spike counts);
    ``constants``: weight arrays and scalar constants; ``decide``: the body of
    ``static void decide(const float *obs, float *a, spikerl_state *s)`` writing the network action a in [-1, 1];
    ``reset``: statements clearing the carried state; ``notes``: header comment lines (format, bounds).
    """

    state_fields: list[str]
    host_fields: list[str]
    constants: str
    decide: str
    reset: list[str]
    notes: list[str]
    flash: dict[str, int]
    extra_meta: dict[str, Any] = field(default_factory=dict)


class Emitter:
    """Collects state fields, constant arrays (with their flash bytes) and code lines of one export."""

    def __init__(self) -> None:
        self.fields: list[str] = []
        self.consts: list[str] = []
        self.lines: list[str] = []
        self.weight_bytes = 0
        self.other_bytes = 0

    def field(self, decl: str) -> None:
        self.fields.append(decl)

    def const(self, name: str, values: np.ndarray, ctype: str = "float", *, weight: bool = False) -> None:
        """A ``static const`` array; ``weight``: counted as weights (the rest as other constants)."""
        dtype = {"float": np.float32, "int8_t": np.int8, "int32_t": np.int32}[ctype]
        values = np.asarray(values).astype(dtype)
        self.consts.append(c_array(ctype, name, values))
        if weight:
            self.weight_bytes += values.nbytes
        else:
            self.other_bytes += values.nbytes

    def emit(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)

    def flash(self) -> dict[str, int]:
        return {"weights": self.weight_bytes, "total": self.weight_bytes + self.other_bytes}


#: input events summed per pass over the accumulators (fewer loads and stores of them; the order is unchanged)
EVENT_UNROLL = 4


def emit_event_sum(e: Emitter, acc: str, weights: str, n: int, src: int, row_type: str, graded: bool,
                   cast: str = "") -> None:
    """``acc[j] += v_q W[idx_q][j]`` over the events q of list ``src`` (v_q = 1 unless ``graded``), in event
    order: :data:`EVENT_UNROLL` events per pass, ``acc + r0 + r1 + ...`` evaluated left to right, so each sum is
    the sequential one, in the same order (float rounding included). ``cast``: a C cast applied to each new
    value (``(int16_t)`` for a narrow integer accumulator whose sums are known to fit)."""
    k = EVENT_UNROLL

    def term(r: int) -> str:
        return f"v{r} * r{r}[j]" if graded else f"r{r}[j]"

    rows = [f"const {row_type} *r{r} = {weights}[s->idx[{src}][q + {r}]];" for r in range(k)]
    vals = [f"const {'int32_t' if row_type == 'int8_t' else 'float'} v{r} = s->val[{src}][q + {r}];"
            for r in range(k)] if graded else []
    total = cast + "(" + " + ".join([f"{acc}[j]", *[term(r) for r in range(k)]]) + ")"
    e.emit(2, "q = 0;", f"for (; q + {k} <= n_ev[{src}]; q += {k}) {{", *[f"    {x}" for x in rows + vals],
           f"    for (j = 0; j < {n}; ++j) {acc}[j] = {total};", "}",
           f"for (; q < n_ev[{src}]; ++q) {{", f"    const {row_type} *r0 = {weights}[s->idx[{src}][q]];")
    if graded:
        e.emit(3, vals[0].replace("q + 0", "q"))
    e.emit(3, f"for (j = 0; j < {n}; ++j) {acc}[j] = {cast}({acc}[j] + {term(0)});")
    e.emit(2, "}")


def emit_compaction(e: Emitter, dst: int, n: int, value: str | None = None) -> None:
    """Event list ``dst`` from the spike flags ``s->fired[0..n)`` (ascending neuron order; ``value``: the C
    expression of a spiking neuron j's event value, stored in ``s->val``)."""
    store = [f"    s->val[{dst}][m] = {value};"] if value else []
    e.emit(2, "m = 0;", f"for (j = 0; j < {n}; ++j) {{", f"    s->idx[{dst}][m] = (spikerl_index)j;", *store,
           "    m += s->fired[j];", "}", f"n_ev[{dst}] = m;")


def count_layout(spec: PolicySpec) -> tuple[list[str], list[int]]:
    """(names, sizes) of the spike counts, as ``spikerl.runtime`` reports them."""
    names: list[str] = ["encoder"] if spec.encoder == "pop" else []
    sizes: list[int] = [spec.encoder_out] if spec.encoder == "pop" else []
    L = len(spec.layers)
    names += [f"hidden{i}" for i in range(L)] if spec.readout == "linear" else \
        [f"hidden{i}" for i in range(L - 1)] + ["output"]
    sizes += [layer.n_out for layer in spec.layers]
    return names, sizes


def energy_layout(spec: PolicySpec) -> dict[str, Any]:
    """Drivers, fan-outs and analog MACs per decision, as :meth:`spikerl.runtime.Policy.energy` counts them."""
    names, _ = count_layout(spec)
    layers = spec.layers if spec.encoder == "pop" else spec.layers[1:]
    macs = float(spec.decoder_weight.size)
    if spec.encoder != "pop":
        steps_in = 1 if spec.layers[0].neuron == "diff-conv" else spec.T
        macs += steps_in * spec.layers[0].n_in * spec.layers[0].n_out
    return {"drivers": names[:-1], "fan_outs": [layer.n_out for layer in layers], "macs": macs}


def _header(spec: PolicySpec, parts: CodeParts, precision: str, source: str, n_counts: int,
            idx_type: str) -> str:
    notes = "\n".join(f" * {line}".rstrip() for line in parts.notes)
    fields = "\n".join(f"    {f}" for f in parts.state_fields)
    host = "\n".join(f"    {f}" for f in parts.host_fields)
    layers = "-".join(f"{layer.n_out} {layer.neuron}" for layer in spec.layers)
    return f"""/* spikerl_policy.h: a spiking policy exported by spikerl ({precision}); generated, do not edit.
 *
 * Source: {source}
 * obs[{spec.obs_dim}] -> {spec.encoder} encoder -> {layers} (T = {spec.T}) -> {spec.readout} readout -> \
action[{spec.act_dim}]
 *
 * Build: cc -std=c99 -O2 -c spikerl_policy.c   (link with -lm). Plain C99: no heap, no libc beyond math.h.
 * tanhf and expf are the toolchain's (glibc and newlib: within 1-2 ulp), not a table or an approximation
 * of ours. Do not build with -ffast-math: it removes the NaN check.
 *
 * Use:
 *     static spikerl_state state;          (or on the stack; all of the policy's RAM is in this struct)
 *     spikerl_reset(&state);               (before the first decision and at every episode start)
 *     spikerl_act(obs, action, &state);    (one decision: obs[SPIKERL_OBS_DIM] -> action[SPIKERL_ACT_DIM])
 *
 * The action is on the env's action space (a_env = low + (a + 1)/2 (high - low)) when the policy was
 * exported with one, else the network action a in [-1, 1].
 * Non-finite observations: spikerl_act writes the neutral action (a = 0, the middle of the action range)
 * and leaves the state unchanged. spikerl_act_checked also takes the observation length and returns
 * SPIKERL_OK (0), SPIKERL_ERR_SIZE (-1, obs_len != SPIKERL_OBS_DIM) or 1 + i for the first non-finite
 * obs[i]; on an error it writes the neutral action and leaves the state unchanged.
 *
{notes}
 */
#ifndef SPIKERL_POLICY_H
#define SPIKERL_POLICY_H

#include <stdint.h>

#define SPIKERL_OBS_DIM {spec.obs_dim}
#define SPIKERL_ACT_DIM {spec.act_dim}
#define SPIKERL_T {spec.T}
#define SPIKERL_STATEFUL {1 if spec.carry else 0}  /* 1: state carried across decisions (CRPI); reset per episode */
#define SPIKERL_OK 0
#define SPIKERL_ERR_SIZE (-1)

typedef {idx_type} spikerl_index;

typedef struct spikerl_state {{
{fields}
#ifdef SPIKERL_HOST_API
{host}
#endif
}} spikerl_state;

void spikerl_reset(spikerl_state *s);
void spikerl_act(const float *obs, float *action, spikerl_state *s);
int spikerl_act_checked(const float *obs, int obs_len, float *action, spikerl_state *s);

#ifdef SPIKERL_HOST_API  /* for the host-side tests and tools (ctypes), not for the device */
#define SPIKERL_N_COUNTS {n_counts}
void spikerl_sizes(int32_t *out);  /* obs_dim, act_dim, SPIKERL_N_COUNTS, sizeof(spikerl_state), and the
                                      state's bytes without the host-only counts (its device-build size) */
void spikerl_counts(const spikerl_state *s, float *out);  /* spikes per neuron in the last decision */
/* rows decisions (obs[rows][OBS_DIM] -> action[rows][ACT_DIM], spike counts[rows][SPIKERL_N_COUNTS] unless
   counts is NULL), on states[rows] (state_per_row != 0) or one state; returns 0, or 1 + the flat index of the
   first non-finite observation entry (the rows before it are done, the rest are not) */
int spikerl_act_rows(const float *obs, int rows, float *action, float *counts, spikerl_state *states,
                     int state_per_row);
#endif

#endif /* SPIKERL_POLICY_H */
"""


def _source(spec: PolicySpec, parts: CodeParts, affine: tuple[np.ndarray, np.ndarray] | None,
            precision: str) -> str:
    D, A = spec.obs_dim, spec.act_dim
    if affine is not None:
        scale = c_array("float", "ACT_LOW", affine[0]) + c_array("float", "ACT_SPAN", affine[1])
        to_env = "action[k] = ACT_LOW[k] + (0.5f * (a[k] + 1.0f)) * ACT_SPAN[k];"
    else:
        scale, to_env = "", "action[k] = a[k];"
    reset = "\n".join(f"    {line}" for line in parts.reset) or "    (void)s;"
    return f"""/* spikerl_policy.c: generated by spikerl ({precision}); see spikerl_policy.h. */
#include <math.h>
#include <stdint.h>
#ifdef SPIKERL_HOST_API
#include <stddef.h>
#endif

#include "spikerl_policy.h"

{scale}{parts.constants}
static void decide(const float *obs, float *a, spikerl_state *s) {{
{parts.decide}}}

static void neutral(float *action) {{
    int k;
    float a[SPIKERL_ACT_DIM];
    for (k = 0; k < {A}; ++k) a[k] = 0.0f;
    for (k = 0; k < {A}; ++k) {to_env}
}}

static int first_non_finite(const float *obs) {{
    int i;
    for (i = 0; i < {D}; ++i)
        if (!isfinite(obs[i])) return i;
    return -1;
}}

void spikerl_reset(spikerl_state *s) {{
{reset}
}}

void spikerl_act(const float *obs, float *action, spikerl_state *s) {{
    int k;
    float a[SPIKERL_ACT_DIM];
    if (first_non_finite(obs) >= 0) {{
        neutral(action);
        return;
    }}
    decide(obs, a, s);
    for (k = 0; k < {A}; ++k) {to_env}
}}

int spikerl_act_checked(const float *obs, int obs_len, float *action, spikerl_state *s) {{
    int bad;
    if (obs_len != SPIKERL_OBS_DIM) {{
        neutral(action);
        return SPIKERL_ERR_SIZE;
    }}
    bad = first_non_finite(obs);
    if (bad >= 0) {{
        neutral(action);
        return 1 + bad;
    }}
    spikerl_act(obs, action, s);
    return SPIKERL_OK;
}}

#ifdef SPIKERL_HOST_API
void spikerl_sizes(int32_t *out) {{
    out[0] = SPIKERL_OBS_DIM;
    out[1] = SPIKERL_ACT_DIM;
    out[2] = SPIKERL_N_COUNTS;
    out[3] = (int32_t)sizeof(spikerl_state);
    out[4] = (int32_t)offsetof(spikerl_state, counts);
}}

void spikerl_counts(const spikerl_state *s, float *out) {{
    int i;
    for (i = 0; i < SPIKERL_N_COUNTS; ++i) out[i] = s->counts[i];
}}

int spikerl_act_rows(const float *obs, int rows, float *action, float *counts, spikerl_state *states,
                     int state_per_row) {{
    int b, rc;
    for (b = 0; b < rows; ++b) {{
        spikerl_state *s = states + (state_per_row ? b : 0);
        rc = spikerl_act_checked(obs + b * SPIKERL_OBS_DIM, SPIKERL_OBS_DIM, action + b * SPIKERL_ACT_DIM, s);
        if (rc != SPIKERL_OK) return b * SPIKERL_OBS_DIM + rc;
        if (counts) spikerl_counts(s, counts + b * SPIKERL_N_COUNTS);
    }}
    return 0;
}}
#endif
"""


def write_files(spec: PolicySpec, parts: CodeParts, out: str | Path, *, precision: str,
                manifest: dict[str, Any] | None = None, source: str = "PolicySpec") -> Path:
    """Write the header, the source and the metadata file of one export into the directory ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"C export: {out} exists and is not a directory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    names, sizes = count_layout(spec)
    max_n = max([spec.encoder_out, *[layer.n_out for layer in spec.layers]])
    affine = action_affine(manifest, spec.act_dim)
    (out / HEADER_FILE).write_text(_header(spec, parts, precision, source, sum(sizes), index_type(max_n)))
    (out / SOURCE_FILE).write_text(_source(spec, parts, affine, precision))
    manifest = manifest or {}
    meta = {
        "format": META_FORMAT, "format_version": META_VERSION, "precision": precision, "source": source,
        "obs_dim": spec.obs_dim, "act_dim": spec.act_dim, "T": spec.T, "stateful": spec.carry is not None,
        "layers": [{"neuron": layer.neuron, "in": layer.n_in, "out": layer.n_out} for layer in spec.layers],
        "counts": {"names": names, "sizes": sizes}, "energy": energy_layout(spec),
        "flash_bytes": parts.flash, "action_space": manifest.get("action_space") if affine is not None else None,
        "env": manifest.get("env"), **parts.extra_meta,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")
    return out
