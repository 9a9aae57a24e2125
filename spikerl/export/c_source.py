"""A spiking policy as float32 C99 source: the same arithmetic as the Numba runtime, step by step.

The decision runs the T steps in an outer loop and the layers inside it (each layer's step t depends only
on its own state and the previous layer's events at step t, so this equals the runtime's layer-by-layer
order and needs only one event list per layer). Each float32 operation is the runtime's, in its order:

    s = tanh(obs) (or obs);   A = exp((-0.5 (s - mu)^2) / sigma^2);   V += A, S = [V > 0.999], V -= 0.999 S
    I_t = b + sum over the input events i (ascending) of v_i W^T[i, :]     (event-driven; v_i = 1 for spikes)
          (direct input: I = b + sum_i x_i W^T[i, :], computed once)
    neuron update per kind (if/lif/plif/clif/dn/multi-threshold, if-conv, diff-conv; see spikerl.runtime.spec)
    population readout a_k = tanh(sum_j (count_kj / T) w_kj + b_k); linear readout a = tanh(W r + b)

so on float32 hardware without fused multiply-add contraction (``-std=c99`` keeps GCC from contracting)
the C policy gives the runtime's spikes, and its actions up to the last bit of ``tanhf``/``expf``.
"""

from __future__ import annotations

import numpy as np

from spikerl.export.c_common import CodeParts, Emitter, c_float, count_layout, emit_compaction, emit_event_sum
from spikerl.runtime.spec import ENCODER_THRESHOLD, LayerSpec, PolicySpec

#: neuron kinds whose events carry a value (graded spikes); the others emit 0/1 spikes
GRADED = ("multi-threshold", "if-conv", "diff-conv")
SUPPORTED = ("if", "lif", "plif", "clif", "dn", "multi-threshold", "if-conv", "diff-conv")


def diff_levels(theta: np.ndarray, levels: int) -> np.ndarray:
    """``[3, levels, n]`` float32: levels l_i = theta / 2^i, positive cuts (theta for one level, else 0.75 l_i),
    negative cuts (0 for one level, else -0.75 l_i) of a diff-conv layer, each product rounded once."""
    theta = np.asarray(theta, dtype=np.float32)
    pow2 = np.array([2.0 ** i for i in range(levels)], dtype=np.float32)
    lv = theta[None, :] / pow2[:, None]
    if levels == 1:
        return np.stack([lv, lv, np.zeros_like(lv)])
    return np.stack([lv, np.float32(0.75) * lv, np.float32(-0.75) * lv])


def check_supported(spec: PolicySpec) -> None:
    """ValueError naming the first part of ``spec`` the C export does not cover."""
    spec.validate()
    for i, layer in enumerate(spec.layers):
        if layer.neuron not in SUPPORTED:
            raise ValueError(f"C export: layer {i} has neuron {layer.neuron!r}, which has no C code; supported: "
                             f"{', '.join(SUPPORTED)}")
        if layer.neuron == "if-conv" and layer.params.get("reset", "soft") != "soft":
            raise ValueError(f"C export: layer {i} (if-conv) has reset {layer.params.get('reset')!r}; converted "
                             "policies use the soft reset")
    if spec.carry is not None and spec.readout != "linear":
        raise ValueError(f"C export: carry={spec.carry!r} goes with converted policies (linear readout) only")


def _has_count(layer: LayerSpec, last: bool, carry: bool) -> bool:
    """Whether the layer keeps its spike counts outside the host build: the readout reads the last layer's
    (diff-conv: its decoded rate instead), the CRPI carry of an if-conv layer reads its own."""
    return (last and layer.neuron != "diff-conv") or (carry and layer.neuron == "if-conv")


def _layer_fields(e: Emitter, i: int, layer: LayerSpec, last: bool, analog: bool, carry: bool) -> None:
    n = layer.n_out
    kind = layer.neuron
    what = {"dn": "membrane V", "diff-conv": "potential v"}.get(kind, "membrane")
    e.field(f"float l{i}_u[{n}];  /* {what} */")
    if kind in ("clif", "dn", "if-conv"):
        e.field(f"float l{i}_c[{n}];  /* {'start potential v_0' if kind == 'if-conv' else 'synaptic current'} */")
    if kind == "dn":
        e.field(f"float l{i}_w[{n}];  /* recovery variable U */")
        e.field(f"float l{i}_s[{n}];  /* previous spike */")
    if kind == "diff-conv":
        e.field(f"float l{i}_v0[{n}];  /* start potential v_0 */")
        e.field(f"float l{i}_ri[{n}];  /* decoded input rate r_in */")
        e.field(f"float l{i}_ro[{n}];  /* decoded output rate r_out */")
        e.field(f"float l{i}_em[{n}];  /* output emitted, sum_t |o_t| */")
    if analog:
        e.field(f"float l{i}_cur0[{n}];  /* W x + b of the analog input */")
    if _has_count(layer, last, carry):
        e.field(f"float l{i}_n[{n}];  /* spike count */")
    if carry:
        e.field(f"float l{i}_carry[{n}];  /* CRPI carry, kept across decisions until spikerl_reset */")


def _init_layer(e: Emitter, i: int, layer: LayerSpec, last: bool, analog: bool, carry: bool) -> None:
    n, kind = layer.n_out, layer.neuron
    zero = [f"s->l{i}_u[j] = 0.0f;"]
    if kind in ("clif", "dn"):
        zero.append(f"s->l{i}_c[j] = 0.0f;")
    if kind == "dn":
        zero += [f"s->l{i}_w[j] = 0.0f;", f"s->l{i}_s[j] = 0.0f;"]
    if _has_count(layer, last, carry):
        zero.append(f"s->l{i}_n[j] = 0.0f;")
    if kind in ("if-conv", "diff-conv"):
        v0 = c_float(float(layer.params["v0"]))
        start = f"{v0} * L{i}_TH[j]" + (f" + s->l{i}_carry[j]" if carry else "")
        zero = [z for z in zero if not z.startswith(f"s->l{i}_u")]
        store = f"s->l{i}_c[j] = v;" if kind == "if-conv" else f"s->l{i}_v0[j] = v;"
        zero += ["{", f"    const float v = {start};", f"    s->l{i}_u[j] = v;", f"    {store}", "}"]
    if kind == "diff-conv":
        x0 = "0.0f" if analog else f"L{i}_B[j]"
        zero += [f"s->l{i}_ri[j] = {x0};", f"s->l{i}_ro[j] = 0.0f;", f"s->l{i}_em[j] = 0.0f;"]
    e.emit(1, f"for (j = 0; j < {n}; ++j) {{")
    e.emit(2, *zero)
    e.emit(1, "}")
    if analog:
        e.emit(1, f"for (j = 0; j < {n}; ++j) s->l{i}_cur0[j] = L{i}_B[j];",
               f"for (i = 0; i < {layer.n_in}; ++i) {{",
               "    const float xi = s->x[i];",
               f"    const float *row = L{i}_W[i];",
               f"    for (j = 0; j < {n}; ++j) s->l{i}_cur0[j] += xi * row[j];",
               "}")


def _current(e: Emitter, i: int, layer: LayerSpec, src: int, graded_in: bool) -> None:
    """s->cur = b + the weight rows of the input events of this step (bias first, events in order)."""
    e.emit(2, f"for (j = 0; j < {layer.n_out}; ++j) s->cur[j] = L{i}_B[j];")
    emit_event_sum(e, "s->cur", f"L{i}_W", layer.n_out, src, "float", graded_in)


def _counting(i: int, count_off: int, kept: bool, value: str) -> list[str]:
    out = [f"HOST_COUNT({count_off} + j, {value});"]
    if kept:
        out.append(f"s->l{i}_n[j] += {value};")
    return out


#: kinds updated by a branch-free loop over the neurons (it vectorizes) that writes spike flags, then a compaction
SPLIT = ("if", "lif", "plif", "clif", "if-conv")


def _split_update(e: Emitter, i: int, layer: LayerSpec, cur: str, dst: int | None, kept: bool,
                  count_off: int) -> None:
    n, kind, p = layer.n_out, layer.neuron, layer.params
    u = f"s->l{i}_u[j]"
    body: list[str] = []
    if kind == "if-conv":
        cmp = ">=" if p["fire"] == "ge" else ">"
        body += [f"const float h = {u} + {cur};", f"const float th = L{i}_TH[j];", f"const int fired = h {cmp} th;",
                 f"{u} = fired ? h - th : h;"]
    else:
        thr = c_float(p["threshold"])
        decay = float(p.get("decay", 1.0)) if kind != "if" else 1.0
        if kind == "clif":
            body += [f"const float c = s->l{i}_c[j] * {c_float(p['current_decay'])} + {cur};", f"s->l{i}_c[j] = c;"]
            cur = "c"
        leak = u if np.float32(decay) == np.float32(1.0) else f"{u} * {c_float(decay)}"
        after = "0.0f" if p.get("reset", "hard") == "hard" else f"h - {thr}"
        body += [f"const float h = {leak} + {cur};", f"const int fired = h > {thr};", f"{u} = fired ? {after} : h;"]
    if dst is not None:
        body.append("s->fired[j] = (uint8_t)fired;")
    body += _counting(i, count_off, kept, "fired ? 1.0f : 0.0f")
    e.emit(2, f"for (j = 0; j < {n}; ++j) {{", *[f"    {x}" for x in body], "}")
    if dst is not None:
        emit_compaction(e, dst, n, f"L{i}_TH[j]" if kind == "if-conv" else None)


def _update(e: Emitter, i: int, layer: LayerSpec, cur: str, dst: int | None, kept: bool, analog: bool,
            count_off: int) -> None:
    """The neuron update of one step over all neurons, writing the events to list ``dst`` (None: last layer);
    ``kept``: the layer keeps its counts (:func:`_has_count`); ``analog``: it takes the analog input."""
    n, kind, p = layer.n_out, layer.neuron, layer.params
    u = f"s->l{i}_u[j]"
    if kind in SPLIT:  # a loop over the neurons that vectorizes, then the events from the spike flags
        _split_update(e, i, layer, cur, dst, kept, count_off)
        return
    event = [] if dst is None else [f"s->idx[{dst}][m] = (spikerl_index)j;"]
    e.emit(2, "m = 0;", f"for (j = 0; j < {n}; ++j) {{")
    if kind in ("if", "lif", "plif", "clif"):
        thr = c_float(p["threshold"])
        decay = float(p.get("decay", 1.0)) if kind != "if" else 1.0
        if kind == "clif":
            e.emit(3, f"const float c = s->l{i}_c[j] * {c_float(p['current_decay'])} + {cur};",
                   f"s->l{i}_c[j] = c;")
            cur = "c"
        leak = u if np.float32(decay) == np.float32(1.0) else f"{u} * {c_float(decay)}"
        after = "0.0f" if p.get("reset", "hard") == "hard" else f"h - {thr}"
        e.emit(3, f"const float h = {leak} + {cur};", f"const int fired = h > {thr};",
               f"{u} = fired ? {after} : h;", *event, *([] if dst is None else ["m += fired;"]),
               *_counting(i, count_off, kept, "fired ? 1.0f : 0.0f"))
    elif kind == "dn":
        tu = float(p["theta_u"]) if p["u_sign"] == "+" else -float(p["theta_u"])
        e.emit(3, f"const float c = s->l{i}_c[j] * {c_float(p['current_decay'])} + {cur};",
               f"const float sp = s->l{i}_s[j];",
               f"float v = {u} * (1.0f - sp) + {c_float(p['theta_r'])} * sp;",
               f"float w = s->l{i}_w[j] + {c_float(p['theta_s'])} * sp;",
               "const float dv = v * v - v - w + c;",
               f"const float dw = {c_float(p['theta_v'])} * v + {c_float(tu)} * w;",
               "v = v + dv;", "w = w + dw;",
               f"s->l{i}_c[j] = c;", f"{u} = v;", f"s->l{i}_w[j] = w;",
               f"const int fired = v > {c_float(p['threshold'])};",
               f"s->l{i}_s[j] = fired ? 1.0f : 0.0f;", *event, *([] if dst is None else ["m += fired;"]),
               *_counting(i, count_off, kept, "fired ? 1.0f : 0.0f"))
    elif kind == "multi-threshold":
        thr = float(p["threshold"])
        levels = int(p["levels"])
        mthr = ", ".join(c_float(j * thr) for j in range(1, levels + 1))
        decay = c_float(p["decay"])
        after = "0.0f" if p.get("reset", "hard") == "hard" else f"h - {c_float(thr)} * kf"
        ev = [] if dst is None else [f"s->idx[{dst}][m] = (spikerl_index)j;", f"s->val[{dst}][m] = kf;", "++m;"]
        e.emit(3, f"static const float MTHR[{levels}] = {{{mthr}}};",
               f"const float h = {u} * {decay} + {cur};", "int k = 0;", "float kf = 0.0f;",
               f"while (k < {levels} && h > MTHR[k]) {{", "    ++k;", "    kf += 1.0f;", "}",
               "if (k > 0) {", *[f"    {x}" for x in ev],
               *[f"    {x}" for x in _counting(i, count_off, kept, "kf")],
               f"    {u} = {after};", "} else {", f"    {u} = h;", "}")
    elif kind == "if-conv":
        cmp = ">=" if p["fire"] == "ge" else ">"
        ev = [] if dst is None else [f"s->idx[{dst}][m] = (spikerl_index)j;", f"s->val[{dst}][m] = th;",
                                     "m += fired;"]
        e.emit(3, f"const float h = {u} + {cur};", f"const float th = L{i}_TH[j];",
               f"const int fired = h {cmp} th;", f"{u} = fired ? h - th : h;", *ev,
               *_counting(i, count_off, kept, "fired ? 1.0f : 0.0f"))
    else:  # diff-conv
        _diff_update(e, i, layer, cur, dst, analog, count_off)
    e.emit(2, "}")
    if dst is not None:
        e.emit(2, f"n_ev[{dst}] = m;")


def _diff_update(e: Emitter, i: int, layer: LayerSpec, cur: str, dst: int | None, analog: bool,
                 count_off: int) -> None:
    levels, signed = int(layer.params["levels"]), bool(layer.params["signed"])
    x0 = "0.0f" if analog else f"L{i}_B[j]"  # I_0: nothing before the analog input arrives, b for a hidden layer
    lines = [f"const float d = {cur} - {x0};",
             f"const float mm = s->l{i}_u[j] + d + s->l{i}_ri[j] - s->l{i}_ro[j];",
             "float pos = 0.0f, neg = 0.0f, o;", "int k;",
             f"for (k = {levels - 1}; k >= 0; --k) {{",
             f"    const float l = L{i}_LV[0][k][j];",
             f"    if (mm >= L{i}_LV[1][k][j]) pos = l;"]
    if signed:
        lines.append(f"    if (mm <= L{i}_LV[2][k][j] && tstep * s->l{i}_ro[j] >= l) neg = -l;")
    lines += ["}", "o = pos != 0.0f ? pos : neg;",
              f"s->l{i}_u[j] = mm - o;", f"s->l{i}_ri[j] = s->l{i}_ri[j] + d / tstep;",
              f"s->l{i}_ro[j] = s->l{i}_ro[j] + o / tstep;", f"s->l{i}_em[j] += fabsf(o);",
              f"HOST_COUNT({count_off} + j, o != 0.0f ? 1.0f : 0.0f);"]
    if dst is not None:
        lines += [f"s->idx[{dst}][m] = (spikerl_index)j;", f"s->val[{dst}][m] = o;", "m += o != 0.0f;"]
    e.emit(3, *lines)


def _carry_update(e: Emitter, i: int, layer: LayerSpec) -> None:
    """CRPI: c = clip(alpha max(v_T - v_0, -theta N), -theta/2, theta/2) (N: spikes; diff-conv: em / theta)."""
    alpha = c_float(float(layer.params["alpha"]))
    if layer.neuron == "diff-conv":
        r, floor_ = f"s->l{i}_u[j] - s->l{i}_v0[j]", f"-th * (s->l{i}_em[j] / th)"
    else:
        r, floor_ = f"s->l{i}_u[j] - s->l{i}_c[j]", f"-th * s->l{i}_n[j]"
    e.emit(1, f"for (j = 0; j < {layer.n_out}; ++j) {{",
           f"    const float th = L{i}_TH[j];", f"    const float r = {r};", f"    const float fl = {floor_};",
           f"    float cv = {alpha} * (r > fl ? r : fl);", "    const float half = th * 0.5f;",
           "    if (cv > half) cv = half;", "    else if (cv < -half) cv = -half;",
           f"    s->l{i}_carry[j] = cv;", "}")


def _readout(e: Emitter, spec: PolicySpec) -> None:
    L = len(spec.layers)
    last = spec.layers[-1]
    DP, A = spec.decoder_pop_dim, spec.act_dim
    tf = c_float(float(spec.T))
    if spec.readout == "population":
        e.emit(1, f"for (k = 0; k < {A}; ++k) {{", "    float acc = 0.0f;",
               f"    for (j = 0; j < {DP}; ++j) acc += s->l{L - 1}_n[k * {DP} + j] / {tf} * DEC_W[k][j];",
               "    a[k] = tanhf(acc + DEC_B[k]);", "}")
        return
    if last.neuron == "diff-conv":
        rate = f"s->l{L - 1}_ro"
    else:
        e.emit(1, f"for (j = 0; j < {DP}; ++j) s->cur[j] = L{L - 1}_TH[j] * s->l{L - 1}_n[j] / {tf};")
        rate = "s->cur"
    e.emit(1, f"for (k = 0; k < {A}; ++k) {{", "    float acc = 0.0f;",
           f"    for (j = 0; j < {DP}; ++j) acc += {rate}[j] * DEC_W[k][j];",
           "    a[k] = tanhf(acc + DEC_B[k]);", "}")


HOST_COUNT = ("#ifdef SPIKERL_HOST_API\n#define HOST_COUNT(i, v) (s->counts[i] += (v))\n#else\n"
              "#define HOST_COUNT(i, v) ((void)0)\n#endif\n\n")


def emit_front(e: Emitter, spec: PolicySpec, n_counts: int) -> None:
    """Locals, the host counts' reset, the preprocessing s->x and the population encoder's drive (float32)."""
    D, P = spec.obs_dim, spec.pop_dim
    e.emit(1, "int t, i, j, k, q, m;", "int n_ev[2] = {0, 0};", "float tstep = 0.0f;",
           "(void)i; (void)k; (void)q; (void)m; (void)tstep; (void)n_ev;")
    e.emit(0, "#ifdef SPIKERL_HOST_API")
    e.emit(1, f"for (i = 0; i < {n_counts}; ++i) s->counts[i] = 0.0f;")
    e.emit(0, "#endif")
    pre = "tanhf(obs[i])" if spec.preprocess == "tanh" else "obs[i]"
    e.emit(1, f"for (i = 0; i < {D}; ++i) s->x[i] = {pre};")
    if spec.encoder == "pop":
        e.emit(1, f"for (i = 0; i < {D}; ++i) {{", f"    for (j = 0; j < {P}; ++j) {{",
               f"        const int e = i * {P} + j;", "        const float d = s->x[i] - ENC_MEAN[e];",
               "        const float sd = ENC_STD[e];",
               "        s->enc_a[e] = expf((-0.5f * (d * d)) / (sd * sd));", "        s->enc_v[e] = 0.0f;",
               "    }", "}")


def emit_encoder_step(e: Emitter, spec: PolicySpec, count_off: int) -> None:
    """One step of the population encoder (regular firing, soft reset): its spikes into event list 0."""
    thr = c_float(ENCODER_THRESHOLD)
    e.emit(2, f"for (j = 0; j < {spec.encoder_out}; ++j) {{",
           "    const float v = s->enc_v[j] + s->enc_a[j];", f"    const int fired = v > {thr};",
           f"    s->enc_v[j] = fired ? v - {thr} : v;", "    s->fired[j] = (uint8_t)fired;",
           f"    HOST_COUNT({count_off} + j, fired ? 1.0f : 0.0f);", "}")
    emit_compaction(e, 0, spec.encoder_out)


def float_parts(spec: PolicySpec) -> CodeParts:
    """The float32 C code of ``spec`` (see the module docstring); ValueError for what it does not cover."""
    check_supported(spec)
    e = Emitter()
    D, P, T, L = spec.obs_dim, spec.pop_dim, spec.T, len(spec.layers)
    pop = spec.encoder == "pop"
    carry = spec.carry is not None
    max_n = max([spec.encoder_out, *[layer.n_out for layer in spec.layers]])
    graded = any(layer.neuron in GRADED for layer in spec.layers[:-1])
    names, sizes = count_layout(spec)
    offsets = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))

    # state
    e.field(f"float x[{D}];  /* preprocessed observation */")
    if pop:
        e.field(f"float enc_a[{D * P}];  /* encoder drive A */")
        e.field(f"float enc_v[{D * P}];  /* encoder potential */")
    e.field(f"float cur[{max_n}];  /* input current of the layer being updated */")
    e.field(f"spikerl_index idx[2][{max_n}];  /* events of the last two layers at this step */")
    e.field(f"uint8_t fired[{max_n}];  /* spike flags of the layer being updated */")
    if graded:
        e.field(f"float val[2][{max_n}];  /* event values (graded spikes) */")
    for i, layer in enumerate(spec.layers):
        _layer_fields(e, i, layer, i == L - 1, (not pop) and i == 0, carry)

    # constants
    if pop:
        e.const("ENC_MEAN", np.asarray(spec.encoder_mean).reshape(-1))
        e.const("ENC_STD", np.asarray(spec.encoder_std).reshape(-1))
    for i, layer in enumerate(spec.layers):
        e.const(f"L{i}_W", np.asarray(layer.weight).T, weight=True)
        e.const(f"L{i}_B", layer.bias)
        if layer.neuron in ("if-conv", "diff-conv"):
            e.const(f"L{i}_TH", layer.threshold)  # type: ignore[arg-type]
        if layer.neuron == "diff-conv":
            e.const(f"L{i}_LV", diff_levels(layer.threshold, int(layer.params["levels"])))  # type: ignore
    e.const("DEC_W", spec.decoder_weight, weight=True)
    e.const("DEC_B", spec.decoder_bias)

    # decision
    emit_front(e, spec, sum(sizes))
    for i, layer in enumerate(spec.layers):
        _init_layer(e, i, layer, i == L - 1, (not pop) and i == 0, carry)
    e.emit(1, f"for (t = 0; t < {T}; ++t) {{", "    tstep += 1.0f;")
    if pop:
        emit_encoder_step(e, spec, offsets["encoder"])
    for i, layer in enumerate(spec.layers):
        name = names[i + (1 if pop else 0)]
        e.emit(2, f"/* layer {i}: {layer.n_in} -> {layer.n_out} {layer.neuron} */")
        if (not pop) and i == 0:
            cur = f"(t == 0 ? s->l{i}_cur0[j] : 0.0f)" if layer.neuron == "diff-conv" else f"s->l{i}_cur0[j]"
        else:
            graded_in = i > 0 and spec.layers[i - 1].neuron in GRADED
            _current(e, i, layer, i % 2, graded_in)
            cur = "s->cur[j]"
        dst = None if i == L - 1 else (i + 1) % 2
        _update(e, i, layer, cur, dst, _has_count(layer, i == L - 1, carry), (not pop) and i == 0, offsets[name])
    e.emit(1, "}")
    if carry:
        for i, layer in enumerate(spec.layers):
            _carry_update(e, i, layer)
    _readout(e, spec)

    constants = HOST_COUNT + "\n".join(e.consts)
    reset = [f"for (j = 0; j < {layer.n_out}; ++j) s->l{i}_carry[j] = 0.0f;"
             for i, layer in enumerate(spec.layers)] if carry else []
    if reset:
        reset = ["int j;", *reset]
    notes = ["Arithmetic: float32, the operations and summation order of spikerl.runtime (the Numba runtime):",
             "the same spikes and the same actions up to the last bit of tanhf/expf, unless the compiler",
             "contracts a*b+c into a fused multiply-add (-std=c99 keeps GCC from it; on a core with FMA pass",
             "-ffp-contract=off to keep the runtime's rounding)."]
    decide = "\n".join(e.lines) + "\n"
    return CodeParts(state_fields=e.fields, host_fields=[f"float counts[{sum(sizes)}];  /* spikes per neuron */"],
                     constants=constants, decide=decide, reset=reset, notes=notes, flash=e.flash())
