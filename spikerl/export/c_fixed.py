"""A spiking policy as int8 fixed-point C99: int8 weights, int32 membranes, the integer arithmetic of
:mod:`spikerl.export.fixed_point` (whose NumPy model :func:`~spikerl.export.fixed_point.simulate` the C code
equals exactly in its integer parts).

The observation preprocessing, the population encoder and the last step of the readout run in float32
(once per decision); every hidden layer is event-driven integer code: an input event adds an int8 weight row
into accumulators (int16 where a step's sum cannot leave int16's range, n_in 127 k_max <= 32767, else int32),
and the neuron updates are integer adds, compares and Q15 leak multiplies done in int32.
"""

from __future__ import annotations

import numpy as np

from spikerl.export.c_common import CodeParts, Emitter, c_float, count_layout, emit_compaction, emit_event_sum
from spikerl.export.c_source import HOST_COUNT, emit_encoder_step, emit_front
from spikerl.export.fixed_point import INPUT_MAX, Q_DECAY, FixedLayer, FixedPolicy, quantize, simulate
from spikerl.runtime.spec import PolicySpec

__all__ = ["fixed_parts", "fixed_report"]


def _fields(e: Emitter, fp: FixedPolicy, max_n: int) -> None:
    spec = fp.spec
    D, pop = spec.obs_dim, spec.encoder == "pop"
    e.field(f"float x[{D}];  /* preprocessed observation */")
    if pop:
        e.field(f"float enc_a[{D * spec.pop_dim}];  /* encoder drive A */")
        e.field(f"float enc_v[{D * spec.pop_dim}];  /* encoder potential */")
    else:
        e.field(f"int32_t xq[{D}];  /* quantized analog input */")
    event_layers = [i for i in range(len(fp.layers)) if pop or i > 0]
    if any(_narrow(fp, i) for i in event_layers):
        e.field(f"int16_t acc16[{max_n}];  /* summed int8 weight rows of this step's events (sums that fit) */")
    if any(not _narrow(fp, i) for i in event_layers):
        e.field(f"int32_t acc[{max_n}];  /* summed int8 weight rows of this step's input events */")
    e.field(f"spikerl_index idx[2][{max_n}];  /* events of the last two layers at this step */")
    e.field(f"uint8_t fired[{max_n}];  /* spike flags of the layer being updated */")
    if any(layer.neuron == "multi-threshold" for layer in fp.layers[:-1]):
        e.field(f"int32_t val[2][{max_n}];  /* event values (graded spikes) */")
    for i, layer in enumerate(fp.layers):
        n = layer.n_out
        e.field(f"int32_t l{i}_u[{n}];  /* membrane, units m_j */")
        if layer.neuron == "clif":
            e.field(f"int32_t l{i}_c[{n}];  /* synaptic current */")
        if layer.neuron == "if-conv":
            e.field(f"int32_t l{i}_u0[{n}];  /* start potential */")
        if (not pop) and i == 0:
            e.field(f"int32_t l{i}_cur0[{n}];  /* current of the analog input */")
        if _has_count(fp, i):
            e.field(f"int32_t l{i}_n[{n}];  /* spike count */")
        if fp.carry:
            e.field(f"int32_t l{i}_carry[{n}];  /* CRPI carry, kept across decisions until spikerl_reset */")


def _has_count(fp: FixedPolicy, i: int) -> bool:
    return i == len(fp.layers) - 1 or (fp.carry and fp.layers[i].neuron == "if-conv")


def _constants(e: Emitter, fp: FixedPolicy) -> None:
    spec = fp.spec
    if spec.encoder == "pop":
        e.const("ENC_MEAN", np.asarray(spec.encoder_mean).reshape(-1))
        e.const("ENC_STD", np.asarray(spec.encoder_std).reshape(-1))
    for i, layer in enumerate(fp.layers):
        e.const(f"L{i}_W", layer.weight.T, "int8_t", weight=True)
        e.const(f"L{i}_B", layer.bias, "int32_t")
        e.const(f"L{i}_TH", layer.threshold, "int32_t")
        if layer.v0 is not None:
            e.const(f"L{i}_V0", layer.v0, "int32_t")
    e.const("DEC_W", fp.decoder_weight, "int8_t", weight=True)
    e.const("DEC_R", fp.decoder_rate_scale)
    e.const("DEC_B", fp.decoder_bias)


def _leak(value: str, q15: int | None) -> str:
    return value if q15 is None else f"leak({value}, {q15})"


def _init(e: Emitter, fp: FixedPolicy, i: int, layer: FixedLayer, analog: bool) -> None:
    lines = []
    if layer.neuron == "if-conv":
        start = f"L{i}_V0[j]" + (f" + s->l{i}_carry[j]" if fp.carry else "")
        lines += [f"s->l{i}_u[j] = {start};", f"s->l{i}_u0[j] = s->l{i}_u[j];"]
    else:
        lines.append(f"s->l{i}_u[j] = 0;")
    if layer.neuron == "clif":
        lines.append(f"s->l{i}_c[j] = 0;")
    if _has_count(fp, i):
        lines.append(f"s->l{i}_n[j] = 0;")
    e.emit(1, f"for (j = 0; j < {layer.n_out}; ++j) {{", *[f"    {x}" for x in lines], "}")
    if analog:
        k = fp.input_exp - layer.frac_bits
        scaled = f"(a + {1 << (k - 1)}) >> {k}" if k > 0 else f"a * {1 << -k}"
        e.emit(1, f"for (j = 0; j < {layer.n_out}; ++j) {{", "    int64_t a = 0;",
               f"    for (i = 0; i < {layer.n_in}; ++i) a += (int64_t)L{i}_W[i][j] * s->xq[i];",
               f"    s->l{i}_cur0[j] = L{i}_B[j] + (int32_t)({scaled});", "}")


def _narrow(fp: FixedPolicy, i: int) -> bool:
    """Whether layer i's per-step event sum fits int16 whatever the input: n_in 127 k_max <= 32767 (int16 lanes
    are twice as many per vector as int32 ones)."""
    kmax = fp.layers[i - 1].levels if i > 0 and fp.layers[i - 1].neuron == "multi-threshold" else 1
    return fp.layers[i].n_in * 127 * kmax <= 32767


def _accumulator(fp: FixedPolicy, i: int) -> str:
    return "s->acc16" if _narrow(fp, i) else "s->acc"


def _current(e: Emitter, fp: FixedPolicy, i: int, layer: FixedLayer, src: int, graded_in: bool) -> None:
    acc = _accumulator(fp, i)
    e.emit(2, f"for (j = 0; j < {layer.n_out}; ++j) {acc}[j] = 0;")
    emit_event_sum(e, acc, f"L{i}_W", layer.n_out, src, "int8_t", graded_in, "(int16_t)" if _narrow(fp, i) else "")


def _update(e: Emitter, fp: FixedPolicy, i: int, layer: FixedLayer, cur: str, dst: int | None,
            count_off: int) -> None:
    n = layer.n_out
    u, th = f"s->l{i}_u[j]", f"L{i}_TH[j]"
    kept = _has_count(fp, i)
    if layer.neuron == "multi-threshold":
        after = "0" if layer.hard else f"h - k * {th}"
        ev = [] if dst is None else [f"s->idx[{dst}][m] = (spikerl_index)j;", f"s->val[{dst}][m] = k;", "++m;"]
        body = [f"const int32_t h = {_leak(u, layer.decay)} + cur;", "int32_t k = 0;",
                f"while (k < {layer.levels} && h > (k + 1) * {th}) ++k;", "if (k > 0) {",
                *[f"    {x}" for x in ev], f"    HOST_COUNT({count_off} + j, (float)k);",
                *([f"    s->l{i}_n[j] += k;"] if kept else []), f"    {u} = {after};", "} else {",
                f"    {u} = h;", "}"]
        e.emit(2, "m = 0;", f"for (j = 0; j < {n}; ++j) {{", f"    const int32_t cur = {cur};",
               *[f"    {x}" for x in body], "}")
        if dst is not None:
            e.emit(2, f"n_ev[{dst}] = m;")
        return
    # binary events: a branch-free loop over the neurons (it vectorizes) writing spike flags, then the events
    if layer.neuron == "if-conv":
        cmp = ">=" if layer.fire_ge else ">"
        pre, after = [f"const int32_t h = {u} + cur;"], f"h - {th}"
    elif layer.neuron == "clif":
        pre = [f"const int32_t c = {_leak(f's->l{i}_c[j]', layer.current_decay)} + cur;", f"s->l{i}_c[j] = c;",
               f"const int32_t h = {_leak(u, layer.decay)} + c;"]
        cmp, after = ">", "0" if layer.hard else f"h - {th}"
    else:
        pre, cmp = [f"const int32_t h = {_leak(u, layer.decay)} + cur;"], ">"
        after = "0" if layer.hard else f"h - {th}"
    body = [f"const int32_t cur = {cur};", *pre, f"const int fired = h {cmp} {th};", f"{u} = fired ? {after} : h;",
            *([] if dst is None else ["s->fired[j] = (uint8_t)fired;"]),
            f"HOST_COUNT({count_off} + j, fired ? 1.0f : 0.0f);", *([f"s->l{i}_n[j] += fired;"] if kept else [])]
    e.emit(2, f"for (j = 0; j < {n}; ++j) {{", *[f"    {x}" for x in body], "}")
    if dst is not None:
        emit_compaction(e, dst, n)


def _carry(e: Emitter, i: int, layer: FixedLayer) -> None:
    half = 1 << (Q_DECAY - 1)
    e.emit(1, f"for (j = 0; j < {layer.n_out}; ++j) {{", f"    const int64_t th = L{i}_TH[j];",
           f"    int64_t r = (int64_t)s->l{i}_u[j] - s->l{i}_u0[j];", f"    const int64_t fl = -th * s->l{i}_n[j];",
           "    int64_t cv;", "    if (r < fl) r = fl;", f"    cv = (r * {layer.alpha} + {half}) >> {Q_DECAY};",
           "    if (cv > th / 2) cv = th / 2;", "    else if (cv < -(th / 2)) cv = -(th / 2);",
           f"    s->l{i}_carry[j] = (int32_t)cv;", "}")


def fixed_parts(spec: PolicySpec, calib: np.ndarray) -> CodeParts:
    """The int8 C code of ``spec`` calibrated on ``calib[N, obs_dim]``; ValueError for what it does not cover."""
    fp = quantize(spec, calib)
    report = fixed_report(fp, calib)
    e = Emitter()
    pop, L, T = spec.encoder == "pop", len(fp.layers), spec.T
    max_n = max([spec.encoder_out, *[layer.n_out for layer in fp.layers]])
    names, sizes = count_layout(spec)
    offsets = dict(zip(names, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    _fields(e, fp, max_n)
    _constants(e, fp)
    emit_front(e, spec, sum(sizes))
    if not pop:
        xs = c_float(2.0 ** fp.input_exp)
        e.emit(1, f"for (i = 0; i < {spec.obs_dim}; ++i) {{", f"    float v = floorf(s->x[i] * {xs} + 0.5f);",
               f"    if (v > {INPUT_MAX}.0f) v = {INPUT_MAX}.0f;",
               f"    else if (v < -{INPUT_MAX}.0f) v = -{INPUT_MAX}.0f;",
               "    s->xq[i] = (int32_t)v;", "}")
    for i, layer in enumerate(fp.layers):
        _init(e, fp, i, layer, (not pop) and i == 0)
    e.emit(1, f"for (t = 0; t < {T}; ++t) {{")
    if pop:
        emit_encoder_step(e, spec, offsets["encoder"])
    for i, layer in enumerate(fp.layers):
        e.emit(2, f"/* layer {i}: {layer.n_in} -> {layer.n_out} {layer.neuron}, {layer.frac_bits} fraction bits */")
        if (not pop) and i == 0:
            cur = f"s->l{i}_cur0[j]"
        else:
            _current(e, fp, i, layer, i % 2, i > 0 and fp.layers[i - 1].neuron == "multi-threshold")
            cur = f"L{i}_B[j] + (int32_t){_accumulator(fp, i)}[j] * {1 << layer.frac_bits}"
        _update(e, fp, i, layer, cur, None if i == L - 1 else (i + 1) % 2, offsets[names[i + (1 if pop else 0)]])
    e.emit(1, "}")
    if fp.carry:
        for i, layer in enumerate(fp.layers):
            _carry(e, i, layer)
    DP = spec.decoder_pop_dim
    last = f"s->l{L - 1}_n[" + (f"k * {DP} + j]" if spec.readout == "population" else "j]")
    e.emit(1, f"for (k = 0; k < {spec.act_dim}; ++k) {{", "    int32_t acc = 0;",
           f"    for (j = 0; j < {DP}; ++j) acc += {last} * DEC_W[k][j];",
           "    a[k] = tanhf((float)acc * DEC_R[k] + DEC_B[k]);", "}")

    q, lo = Q_DECAY, (1 << Q_DECAY) - 1
    leak = ("/* round(u d / 2^15) half up in int32 arithmetic: u = hi 2^15 + lo, u d = hi d 2^15 + lo d */\n"
            f"static int32_t leak(int32_t u, int32_t d) {{\n"
            f"    return (u >> {q}) * d + (((u & {lo}) * d + {1 << (q - 1)}) >> {q});\n}}\n\n")
    uses_leak = any(layer.decay is not None or layer.current_decay is not None for layer in fp.layers)
    reset = ["int j;", *[f"for (j = 0; j < {layer.n_out}; ++j) s->l{i}_carry[j] = 0;"
                         for i, layer in enumerate(fp.layers)]] if fp.carry else []
    notes = _notes(fp)
    return CodeParts(state_fields=e.fields, host_fields=[f"float counts[{sum(sizes)}];  /* spikes per neuron */"],
                     constants=HOST_COUNT + (leak if uses_leak else "") + "\n".join(e.consts),
                     decide="\n".join(e.lines) + "\n", reset=reset, notes=notes, flash=e.flash(),
                     extra_meta={"quantization": report})


def _notes(fp: FixedPolicy) -> list[str]:
    bits = ", ".join(f"layer {i}: F = {layer.frac_bits}" for i, layer in enumerate(fp.layers))
    notes = [
        "Fixed point (int8): layer i's weights L<i>_W are int8 with one scale s_j per output neuron j; neuron j's",
        "membrane, bias L<i>_B, threshold L<i>_TH (and start potential L<i>_V0) are int32 in units s_j / 2^F,",
        "so an input event adds its weight row times 2^F; F per layer, the largest that no input can overflow:",
        f"{bits}.",
        "Leak: u d / 2^15 rounded half up, d = round(decay 2^15), in int32 (u = hi 2^15 + lo). It needs two's",
        "complement and an arithmetic right shift of negative numbers, as gcc, clang, armcc and IAR give.",
        "The preprocessing, the population encoder and the readout's final scaling are float32:",
        "a_k = tanhf(sum_j count_kj DEC_W[k][j] DEC_R[k] + DEC_B[k]).",
    ]
    if fp.spec.encoder == "direct":
        notes.append(f"Analog input: x_q = clamp(floor(x 2^{fp.input_exp} + 1/2), -32767, 32767), int64 sums.")
    return notes


def fixed_report(fp: FixedPolicy, calib: np.ndarray) -> dict:
    """Calibration summary and the action error of the fixed-point model against the float runtime on ``calib``."""
    from spikerl.runtime.policy import Policy

    spec = fp.spec
    obs = np.asarray(calib, dtype=np.float32)
    policy = Policy(spec, {}, None, np.float32)
    if fp.carry:  # decisions in order (consecutive env steps), each side carrying its own state
        carry, got = None, []
        for o in obs:
            a, _, carry = simulate(fp, o[None], carry)
            got.append(a[0])
        act, ref = np.stack(got), np.stack([policy.act(o, normalized=True) for o in obs])
    else:
        act, ref = simulate(fp, obs)[0], policy.act(obs, normalized=True)
    err = np.abs(act - ref)
    return {"calibration_observations": int(len(obs)), "input_exponent": fp.input_exp if spec.encoder == "direct"
            else None, "frac_bits": [layer.frac_bits for layer in fp.layers],
            "action_error_vs_float": {"max": float(err.max()), "mean": float(err.mean()),
                                      "note": "network action in [-1, 1], on the calibration observations"}}
