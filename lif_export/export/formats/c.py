"""The C format: a self-contained C99 library, ``<name>.h`` and ``<name>.c``, for hosts and microcontrollers.

API (sizes fixed at export, one state struct per sample, ``<T>`` is ``float`` or ``double``)::

    typedef struct { <T> <state>[<size>]; ... } <name>_state;
    void <name>_reset(<name>_state *state);
    void <name>_step(<name>_state *state, const <T> *x, <T> *out);
    void <name>_run(<name>_state *state, const <T> *x, <T> *out, size_t steps);

No heap, no libm, no mutable globals: weights and parameters are ``static const``. The result is
the bits of eager PyTorch on x86 (``docs/semantics.md``) whatever flags the integrator compiles with,
short of ``-ffast-math`` (refused with ``#error``):

* **No fused multiply-add**: ``#pragma GCC optimize("fp-contract=off")`` / ``#pragma clang fp
  contract(off)``, and a rounding barrier on every product that is added to (its bits OR-ed with a
  zero the compiler cannot know), which also holds under ``clang -ffp-contract=fast`` (where Clang
  ignores its pragma).
* **NaN bits**: PyTorch's on x86 (the payload of a NaN operand, quieted; the second operand's when
  both are NaN; x86's default NaN for an invalid operation), made explicitly where the hardware
  differs (ARM), see ``c_templates/prelude.c.in``.
* **ExactLinear / ExactConv2d** without floating-point sums: the grid values are integers, inputs in
  units of ``2**-12`` (clamped to ``[-256, 256]``), weights in units of ``2**(k-12)`` (clamped to
  ``[-16 * 2**k, 16 * 2**k]``, ``k`` the layer's ``weight_exponent``), so each product is an integer
  in units of ``2**(k-24)`` and the sum is accumulated exactly in an integer. Its conversion to the
  output dtype, then the product with the power of two ``2**(k-24)`` (exact: a normal number, as
  ``k >= -102``), is the one rounding PyTorch makes (``float64`` sum, exact, then ``.to(dtype)``).
  The sum's magnitude is at most ``in * 2**20 * 2**16 + 2**28 <= 2**53 + 2**28``: below ``2**53``
  (where ``int64 -> double`` is exact) whenever ``in < 2**17``; for ``in == 2**17`` the layer's actual
  weights decide, and if they can reach it the code first rounds the integer to float64's precision
  as PyTorch's float64 bias addition does. Inputs are quantized without libm (exact truncation, then
  ties to even, as ``torch.round``). After a spiking layer the input is known to be 0 or 1, and only
  the weight columns of the neurons that fired are added (the event-driven path, no multiplies).
  A NaN input makes every output it reaches that NaN (quieted), as PyTorch's sum does. When one
  output sums several NaNs of different payloads, PyTorch's BLAS returns one depending on its kernel
  and the output's position (it differs between the outputs of one ``ExactLinear`` row); the C
  library returns the first in input order (channel, row, column for a convolution), so those bits
  can differ. float32 libraries do no double arithmetic (int64 is used where the sum needs it).

:data:`EMITTERS` maps each layer type to the function that writes its C; adding a layer type is one
function registered with ``@emitter(LayerType)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import __version__
from ...errors import InvalidTypeError, InvalidValueError
from ...modules import LIFCell
from ...network import (
    AdaptiveLIFLayer,
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SynapticLIFLayer,
)
from ...network.exact import GRID_BITS, INPUT_BOUND
from ..float_tier import FLOAT_LAYERS
from ..manifest import EMBEDDED_KEY, ArtifactEntry
from ..model import ExportModel
from .base import Artifact, ExportOptions, LayerRegistry, embedded_manifest, model_io

#: Library names when ``ExportOptions.c_name`` is not given.
DEFAULT_NAMES = {"neuron": "lif", "network": "net"}

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "_Bool _Complex _Imaginary".split()
)

#: |quantized input| <= INPUT_Q (units of 2**-GRID_BITS).
INPUT_Q = int(INPUT_BOUND) << GRID_BITS


@dataclass(frozen=True)
class CType:
    """A model dtype in C: the type, its bits' type, the quiet-NaN bit and x86's default NaN."""

    name: str
    bits: str
    quiet: int
    default_nan: int
    suffix: str

    def literal(self, value: float) -> str:
        """An exact literal (C99 hexadecimal float, trailing zeros dropped: ``0x1.8p-1f``)."""
        mantissa, exponent = float(value).hex().split("p")
        return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}{self.suffix}"

    @property
    def one(self) -> str:
        return "1.0" + self.suffix

    @property
    def zero(self) -> str:
        return "0.0" + self.suffix


CTYPES = {
    "float32": CType("float", "uint32_t", 0x00400000, 0xFFC00000, "f"),
    "float64": CType("double", "uint64_t", 0x0008000000000000, 0xFFF8000000000000, ""),
}


@dataclass(frozen=True)
class Activation:
    """What flows between layers for one sample: its shape, and whether every value is 0 or 1."""

    shape: tuple[int, ...]
    spikes: bool = False

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class LayerContext:
    """What an emitter needs besides the layer."""

    lib: str  # library name: prefix of the shared helpers
    fn: str  # this layer's function (and prefix of its constants)
    ctype: CType
    input: Activation
    states: list[str]  # the layer's state variables (its function's arguments), in its state order


@dataclass(frozen=True)
class LayerCode:
    """A layer in C: ``fn(x, out, *states)`` defined by ``definitions`` (``None``: x passes through),
    using the shared helpers named in ``helpers`` (keys of :data:`HELPERS`)."""

    output: Activation
    definitions: str | None
    helpers: tuple[str, ...] = ()


LayerEmitter = Callable[[LayerContext, Any], LayerCode]

#: Layer type -> the function that writes its C.
EMITTERS: LayerRegistry[LayerEmitter] = LayerRegistry("C", "bit-identically")
emitter = EMITTERS.register


# -- C text helpers ---------------------------------------------------------------------------------

def function(ctx: LayerContext, body: list[str]) -> str:
    """``static void fn(const T *restrict x, T *restrict out, T *restrict <state>, ...) { body }``."""
    t = ctx.ctype.name
    args = [f"const {t} *restrict x", f"{t} *restrict out", *(f"{t} *restrict {state}" for state in ctx.states)]
    return "\n".join([f"static void {ctx.fn}({', '.join(args)}) {{", *("    " + line for line in body), "}"])


def array(type_name: str, name: str, values: np.ndarray, literal: Callable[[Any], str], per_line: int = 12) -> str:
    """``static const type name[size] = {...};``: ``values`` flattened in C order."""
    flat = [literal(v) for v in values.reshape(-1)]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return f"static const {type_name} {name}[{len(flat)}] = {{\n    " + ",\n    ".join(lines) + "\n};"


class Parameters:
    """A layer's neuron parameters as C constants: one value, or one per neuron (index ``n``)."""

    def __init__(self, ctx: LayerContext, shape: tuple[int, ...]) -> None:
        self.ctx = ctx
        self.shape = shape
        self.definitions: list[str] = []

    def add(self, name: str, value: torch.Tensor) -> str:
        """The C expression of ``value`` (a scalar or per-neuron tensor) for neuron ``n``."""
        ct = self.ctx.ctype
        values = value.detach().cpu().to(torch.float64 if ct.name == "double" else torch.float32).numpy()
        while values.ndim > len(self.shape) and values.shape[0] == 1:
            values = values[0]
        flat = np.broadcast_to(values, self.shape).reshape(-1)
        symbol = f"{self.ctx.fn}_{name}"
        bits = flat.view(f"u{flat.itemsize}")
        if (bits == bits[0]).all():
            self.definitions.append(f"static const {ct.name} {symbol} = {ct.literal(flat[0])};")
            return symbol
        self.definitions.append(array(ct.name, symbol, flat, ct.literal, per_line=6))
        return f"{symbol}[n]"


def elementwise(ctx: LayerContext, params: Parameters, body: list[str], extra: list[str] | None = None) -> str:
    """A layer whose step is ``body`` for every neuron ``n`` (after the statements ``extra``), with
    ``zero`` read once for the rounding barriers."""
    size = ctx.input.size
    lines = [f"const {ctx.ctype.bits} zero = {ctx.lib}_opaque_zero;", *(extra or []), "size_t n;",
             f"for (n = 0; n < {size}; ++n) {{", *("    " + line for line in body), "}"]
    return "\n".join([*params.definitions, function(ctx, lines)])


def fire_and_reset(ctx: LayerContext, u: str, theta: str, v_reset: str, reset: str, v_out: str) -> list[str]:
    """``functional.fire_and_reset``: the spike into ``out[n]`` and ``spike``, the reset into ``v_out``."""
    ct, lib = ctx.ctype, ctx.lib
    lines = [f"const int fired = {u} > {theta};",
             f"const {ct.name} spike = fired ? {ct.one} : {ct.zero};",
             "out[n] = spike;"]
    if reset == "zero":
        lines.append(f"{v_out} = fired ? {v_reset} : {u};")  # a select: an infinite u still resets
    elif reset == "subtract":
        lines.append(f"{v_out} = {lib}_sub({u}, {lib}_mul(spike, {theta}));")
    else:
        lines.append(f"{v_out} = {u};")
    return lines


def lif_parameters(ctx: LayerContext, layer: Any) -> tuple[Parameters, str, str, str]:
    """``beta``, ``threshold`` and ``v_reset`` as forward uses them (learned ones clamped); ``v_reset``
    only for the zero reset (the others never read it)."""
    params = Parameters(ctx, ctx.input.shape)
    with torch.no_grad():
        beta, threshold, v_reset = layer.neuron_parameters()
    return (params, params.add("beta", beta), params.add("threshold", threshold),
            params.add("v_reset", v_reset) if layer.reset == "zero" else "")


# -- neuron models ---------------------------------------------------------------------------------

@emitter(LIFCell, LIFLayer)
def emit_lif(ctx: LayerContext, layer: Any) -> LayerCode:
    """The LIF step; for ``LIFLayer``'s later reset timings, its ``step`` as written."""
    params, beta, theta, v_reset = lif_parameters(ctx, layer)
    lib, ct, v = ctx.lib, ctx.ctype, f"{ctx.states[0]}[n]"
    timing = getattr(layer, "reset_timing", "same_step")
    if timing == "same_step":
        body = [f"const {ct.name} u = {lib}_integrate({beta}, {v}, x[n], zero);",
                *fire_and_reset(ctx, "u", theta, v_reset, layer.reset, v)]
    else:
        body = [f"const int pending = {v} > {theta};",
                f"const {ct.name} held = pending ? {ct.one} : {ct.zero};"]
        if layer.reset == "zero":
            body.append(f"const {ct.name} u = {lib}_integrate({beta}, pending ? {v_reset} : {v}, x[n], zero);")
        elif layer.reset == "subtract":
            body.append(f"const {ct.name} u = {lib}_sub({lib}_integrate({beta}, {v}, x[n], zero), "
                        f"{lib}_mul(held, {theta}));")
        else:
            body.append(f"const {ct.name} u = {lib}_integrate({beta}, {v}, x[n], zero);")
        body += fire_and_reset(ctx, "u", theta, v_reset, "none", v)
        if timing == "same_step_retest":
            body.append(f"{v} = {lib}_sub(u, {lib}_mul({lib}_sub(spike, held), {theta}));")
    return LayerCode(Activation(ctx.input.shape, spikes=True), elementwise(ctx, params, body))


@emitter(SynapticLIFLayer)
def emit_synaptic(ctx: LayerContext, layer: Any) -> LayerCode:
    params, beta, theta, v_reset = lif_parameters(ctx, layer)
    alpha = params.add("alpha", layer.alpha)
    lib, t = ctx.lib, ctx.ctype.name
    current, v = (f"{state}[n]" for state in ctx.states)
    body = [f"const {t} i_next = {lib}_integrate({alpha}, {current}, x[n], zero);",
            f"const {t} u = {lib}_integrate({beta}, {v}, i_next, zero);",
            *fire_and_reset(ctx, "u", theta, v_reset, layer.reset, v),
            f"{current} = i_next;"]
    return LayerCode(Activation(ctx.input.shape, spikes=True), elementwise(ctx, params, body))


@emitter(AdaptiveLIFLayer)
def emit_adaptive(ctx: LayerContext, layer: Any) -> LayerCode:
    params, beta, threshold, v_reset = lif_parameters(ctx, layer)
    rho, b = params.add("rho", layer.rho), params.add("b", layer.b)
    lib, t = ctx.lib, ctx.ctype.name
    v, a = (f"{state}[n]" for state in ctx.states)
    body = [f"const {t} u = {lib}_integrate({beta}, {v}, x[n], zero);",
            f"const {t} theta = {lib}_add({threshold}, {a});",
            *fire_and_reset(ctx, "u", "theta", v_reset, layer.reset, v),
            f"{a} = {lib}_add({lib}_barrier({lib}_scale({rho}, {a}), zero), {lib}_scale({b}, spike));"]
    return LayerCode(Activation(ctx.input.shape, spikes=True), elementwise(ctx, params, body))


@emitter(RecurrentLIFLayer)
def emit_recurrent(ctx: LayerContext, layer: Any) -> LayerCode:
    """``u = (beta v + x) + W s``: the recurrent ``ExactLinear`` of the previous spikes first (the
    state ``s`` may hold any value, so it takes the general path)."""
    params, beta, theta, v_reset = lif_parameters(ctx, layer)
    lib, t, n = ctx.lib, ctx.ctype.name, ctx.input.size
    recurrent = LayerContext(lib, f"{ctx.fn}_recurrent", ctx.ctype, Activation((n,)), [])
    linear = exact_linear(recurrent, layer.recurrent)
    v, s = ctx.states
    body = [f"const {t} u = {lib}_add({lib}_integrate({beta}, {v}[n], x[n], zero), r[n]);",
            *fire_and_reset(ctx, "u", theta, v_reset, layer.reset, f"{v}[n]"),
            f"{s}[n] = spike;"]
    code = elementwise(ctx, params, body, [f"{t} r[{n}];", f"{recurrent.fn}({s}, r);"])
    return LayerCode(Activation(ctx.input.shape, spikes=True), "\n".join([linear.definitions or "", code]),
                     linear.helpers)


@emitter(LeakyIntegratorLayer)
def emit_leaky(ctx: LayerContext, layer: Any) -> LayerCode:
    params = Parameters(ctx, ctx.input.shape)
    beta = params.add("beta", layer.beta)
    v = f"{ctx.states[0]}[n]"
    body = [f"{v} = {ctx.lib}_integrate({beta}, {v}, x[n], zero);", f"out[n] = {v};"]
    return LayerCode(Activation(ctx.input.shape), elementwise(ctx, params, body))


# -- exact linear layers ---------------------------------------------------------------------------

def grid_integers(tensor: torch.Tensor, exponent: int) -> np.ndarray:
    """A tensor on the grid as integers in units of ``2**(exponent - GRID_BITS)`` (checked exact)."""
    scaled = np.ldexp(tensor.detach().cpu().double().numpy(), GRID_BITS - exponent)
    q = np.rint(scaled).astype(np.int64)
    assert np.array_equal(q, scaled), "quantized weights are off the grid"
    return q


def int_type(bound: int, smallest: int = 8) -> str:
    """The smallest of int<smallest>_t .. int64_t that holds every integer of magnitude <= bound."""
    for bits in (b for b in (8, 16, 32, 64) if b >= smallest):
        if bound < 1 << (bits - 1):
            return f"int{bits}_t"
    raise InvalidValueError(f"an integer of magnitude {bound} does not fit int64_t")


def quantize_helper(lib: str, ct: CType) -> str:
    """``torch.round(torch.clamp(x, -256, 256) * 4096)`` for a non-NaN x, as an integer, without libm:
    the truncation and the fraction are exact (|s| <= 2**20), then ties go to the even neighbour."""
    t, bound, half = ct.name, f"{INPUT_BOUND:.1f}{ct.suffix}", f"0.5{ct.suffix}"
    return f"""static inline int32_t {lib}_quantize({t} x) {{
    const {t} s = (x < -{bound} ? -{bound} : x > {bound} ? {bound} : x) * {float(1 << GRID_BITS):.1f}{ct.suffix};
    int32_t q = (int32_t)s;
    const {t} f = s - ({t})q;
    if (f > {half} || (f == {half} && (q & 1))) ++q;
    else if (f < -{half} || (f == -{half} && (q & 1))) --q;
    return q;
}}"""


def round53_helper(lib: str, _ct: CType) -> str:
    """An integer of magnitude < 2**54 rounded to float64's 53 bits (ties to even), as the float64
    bias addition of ``ExactLinear.forward`` rounds the exact sum (integer arithmetic only)."""
    return f"""static inline int64_t {lib}_round53(int64_t n) {{
    const int64_t m = n < 0 ? -n : n;
    const int64_t r = (m > ((int64_t)1 << 53) && (m & 1)) ? ((m & 2) ? m + 1 : m - 1) : m;
    return n < 0 ? -r : r;
}}"""


#: Helpers shared by layers, written once per library: name -> ``text(library name, ctype)``.
HELPERS: dict[str, Callable[[str, CType], str]] = {"quantize": quantize_helper, "round53": round53_helper}


@dataclass(frozen=True)
class IntegerSum:
    """How a layer accumulates: units of the sum and the integer types."""

    spikes: bool  # inputs 0/1: sum of weights in units of 2**(k-12); else products in units of 2**(k-24)
    acc: str
    weight: str
    needs_round53: bool
    exponent: int  # k, the layer's weight_exponent

    @staticmethod
    def plan(weight_q: np.ndarray, bias_q: np.ndarray, spikes: bool, exponent: int) -> IntegerSum:
        """``weight_q[out, fan_in]``, ``bias_q[out]`` (units of ``2**(exponent-12)``): the largest possible
        sum decides the types."""
        per_output = np.abs(weight_q).reshape(weight_q.shape[0], -1).sum(axis=1).astype(object)
        bias = np.abs(bias_q).astype(object)
        largest = int(max(per_output + bias)) if spikes else int(max(per_output * INPUT_Q + (bias << GRID_BITS)))
        return IntegerSum(spikes, int_type(largest, 32), int_type(int(np.abs(weight_q).max(initial=0))),
                          not spikes and largest > 1 << 53, exponent)

    @property
    def scale(self) -> float:
        return math.ldexp(1.0, self.exponent - (GRID_BITS if self.spikes else 2 * GRID_BITS))

    def initial(self, bias: str) -> str:
        return f"({self.acc}){bias}" if self.spikes else f"({self.acc}){bias} * {1 << GRID_BITS}"

    def result(self, lib: str, ct: CType, acc: str) -> str:
        value = f"{lib}_round53({acc})" if self.needs_round53 else acc
        return f"({ct.name}){value} * {ct.literal(self.scale)}"


@emitter(ExactLinear)
def exact_linear(ctx: LayerContext, layer: Any) -> LayerCode:
    """``ExactLinear`` over the last dim (rows: every leading position)."""
    with torch.no_grad():
        weight, bias = layer.quantized()
    k = layer.weight_exponent
    w = grid_integers(weight, k)  # [out, in]
    b = grid_integers(bias, k) if bias is not None else np.zeros(w.shape[0], np.int64)
    n_in, n_out = layer.in_features, layer.out_features
    if ctx.input.shape[-1] != n_in:
        raise InvalidValueError(f"{ctx.fn}: ExactLinear({n_in}, {n_out}) got an input of shape {ctx.input.shape}")
    sums = IntegerSum.plan(w, b, ctx.input.spikes, k)
    lib, ct, t = ctx.lib, ctx.ctype, ctx.ctype.name
    rows = ctx.input.size // n_in
    data = [array(sums.weight, f"{ctx.fn}_w", w.T, str, per_line=16),  # [in][out]: a column per input
            array("int32_t", f"{ctx.fn}_b", b, str, per_line=16)]
    if sums.spikes:  # event-driven: add the columns of the inputs that fired
        accumulate = [f"if (x[j] != {ct.zero}) {{",
                      f"    for (o = 0; o < {n_out}; ++o) acc[o] += {ctx.fn}_w[j * {n_out} + o];",
                      "}"]
    else:
        accumulate = ["if (x[j] != x[j]) {  /* the row becomes the first NaN (quieted), as in PyTorch */",
                      f"    const {t} nan = {lib}_quiet(x[j]);",
                      f"    for (o = 0; o < {n_out}; ++o) out[o] = nan;",
                      "    return;",
                      "} else {",
                      f"    const {sums.acc} q = {lib}_quantize(x[j]);",
                      "    if (q != 0) {",
                      f"        for (o = 0; o < {n_out}; ++o) acc[o] += q * {ctx.fn}_w[j * {n_out} + o];",
                      "    }",
                      "}"]
    row = [f"{sums.acc} acc[{n_out}];", "size_t j, o;",
           f"for (o = 0; o < {n_out}; ++o) acc[o] = {sums.initial(f'{ctx.fn}_b[o]')};",
           f"for (j = 0; j < {n_in}; ++j) {{", *("    " + line for line in accumulate), "}",
           f"for (o = 0; o < {n_out}; ++o) out[o] = {sums.result(lib, ct, 'acc[o]')};"]
    if rows == 1:
        functions = [function(ctx, row)]
    else:  # ExactLinear acts on the last dim: one row per leading position
        row_ctx = LayerContext(lib, f"{ctx.fn}_row", ct, ctx.input, [])
        functions = [function(row_ctx, row),
                     function(ctx, ["size_t r;", f"for (r = 0; r < {rows}; ++r) {{",
                                    f"    {row_ctx.fn}(x + r * {n_in}, out + r * {n_out});", "}"])]
    code = "\n".join([*data, *functions])
    helpers = () if sums.spikes else ("quantize", "round53") if sums.needs_round53 else ("quantize",)
    return LayerCode(Activation((*ctx.input.shape[:-1], n_out)), code, helpers)


@emitter(ExactConv2d)
def emit_exact_conv2d(ctx: LayerContext, layer: Any) -> LayerCode:
    """A convolution gathered per output (input row ``oy*s_h + ky*d_h - p``, column likewise); the inputs
    quantized once into ``q`` (a NaN marked, and the output becomes the first NaN of its window in
    (channel, row, column) order)."""
    if len(ctx.input.shape) != 3 or ctx.input.shape[0] != layer.in_channels:
        raise InvalidValueError(f"{ctx.fn}: ExactConv2d({layer.in_channels}, ...) needs inputs [batch, "
                                f"{layer.in_channels}, H, W], got per-sample shape {ctx.input.shape}")
    with torch.no_grad():
        weight, bias = layer.quantized()
    w, b = grid_integers(weight, layer.weight_exponent), grid_integers(bias, layer.weight_exponent)  # [O,C,k,k], [O]
    channels, height, width = ctx.input.shape
    k, p, n_out = layer.kernel_size, layer.padding, layer.out_channels
    out_h, out_w = layer.output_size(height, width)
    sums = IntegerSum.plan(w, b, ctx.input.spikes, layer.weight_exponent)
    if sums.needs_round53:
        raise InvalidValueError(f"{ctx.fn}: ExactConv2d's sums can exceed 2**53 with these weights, where PyTorch's "
                                "rounding depends on its convolution algorithm; the C format cannot reproduce it")
    lib, ct = ctx.lib, ctx.ctype
    data = [array(sums.weight, f"{ctx.fn}_w", w, str, per_line=16), array("int32_t", f"{ctx.fn}_b", b, str)]
    shift = f" - {p}" if p else ""
    (sh, sw), (dh, dw) = layer.stride, layer.dilation
    row, col = (f"{out}{f' * {s}' if s != 1 else ''} + {tap}{f' * {d}' if d != 1 else ''}"
                for out, s, tap, d in (("oy", sh, "ky", dh), ("ox", sw, "kx", dw)))
    at = f"(c * {height} + {row}{shift}) * {width} + {col}{shift}"
    where = f"out[(o * {out_h} + oy) * {out_w} + ox]"
    if sums.spikes:
        prologue, nan_init = [], []
        tap = [f"if (x[{at}] != {ct.zero}) acc += {ctx.fn}_w[tap];"]
        store = f"{where} = {sums.result(lib, ct, 'acc')};"
    else:
        marker, size = "INT32_MIN", ctx.input.size  # the marker is never a quantized value (|q| <= 2**20)
        prologue = [f"int32_t q[{size}];",
                    f"for (o = 0; o < {size}; ++o) q[o] = x[o] != x[o] ? {marker} : {lib}_quantize(x[o]);"]
        nan_init = [f"size_t nan_at = {size};"]
        tap = [f"const size_t at = {at};",
               f"if (q[at] == {marker}) {{ if (nan_at == {size}) nan_at = at; }}",
               f"else acc += ({sums.acc})q[at] * {ctx.fn}_w[tap];"]
        store = f"{where} = nan_at < {size} ? {lib}_quiet(x[nan_at]) : {sums.result(lib, ct, 'acc')};"
    tap_index = f"const size_t tap = ((o * {channels} + c) * {k} + ky) * {k} + kx;"
    rows = [f"if ({row} < {p} || {row} - {p} >= {height}) continue;"] if p else []
    cols = [f"if ({col} < {p} || {col} - {p} >= {width}) continue;"] if p else []
    body = ["size_t o, oy, ox, c, ky, kx;", *prologue,
            f"for (o = 0; o < {n_out}; ++o) for (oy = 0; oy < {out_h}; ++oy) for (ox = 0; ox < {out_w}; ++ox) {{",
            f"    {sums.acc} acc = {sums.initial(f'{ctx.fn}_b[o]')};", *("    " + line for line in nan_init),
            f"    for (c = 0; c < {channels}; ++c) for (ky = 0; ky < {k}; ++ky) {{",
            *("        " + line for line in rows),
            f"        for (kx = 0; kx < {k}; ++kx) {{",
            *("            " + line for line in [*cols, tap_index, *tap]),
            "        }",
            "    }",
            f"    {store}",
            "}"]
    return LayerCode(Activation((n_out, out_h, out_w)), "\n".join([*data, function(ctx, body)]),
                     () if sums.spikes else ("quantize",))


# -- ordinary layers that are exact as they are ----------------------------------------------------

def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@emitter(nn.MaxPool2d)
def emit_maxpool(ctx: LayerContext, layer: Any) -> LayerCode:
    """PyTorch's CPU kernel: the window's maximum, a NaN taking over (the last NaN wins), ties keep
    the first value (so ``-0.0`` before ``+0.0`` stays ``-0.0``)."""
    if (_pair(layer.padding) != (0, 0) or _pair(layer.dilation) != (1, 1) or layer.ceil_mode
            or layer.return_indices):
        raise InvalidTypeError("cannot export MaxPool2d with padding, dilation, ceil_mode or return_indices to C: "
                               "only the plain pool")
    if len(ctx.input.shape) != 3:
        raise InvalidValueError(f"{ctx.fn}: MaxPool2d needs inputs [batch, C, H, W], got per-sample shape "
                                f"{ctx.input.shape}")
    (kh, kw), (sh, sw) = _pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size)
    channels, height, width = ctx.input.shape
    out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
    body = ["size_t c, oy, ox, ky, kx;",
            f"for (c = 0; c < {channels}; ++c) for (oy = 0; oy < {out_h}; ++oy) for (ox = 0; ox < {out_w}; ++ox) {{",
            f"    const {ctx.ctype.name} *window = x + (c * {height} + oy * {sh}) * {width} + ox * {sw};",
            f"    {ctx.ctype.name} m = window[0];",
            f"    for (ky = 0; ky < {kh}; ++ky) for (kx = 0; kx < {kw}; ++kx) {{",
            f"        const {ctx.ctype.name} value = window[ky * {width} + kx];",
            "        if (value > m || value != value) m = value;",
            "    }",
            f"    out[(c * {out_h} + oy) * {out_w} + ox] = m;",
            "}"]
    return LayerCode(Activation((channels, out_h, out_w), ctx.input.spikes), function(ctx, body))


@emitter(nn.Flatten)
def emit_flatten(ctx: LayerContext, layer: Any) -> LayerCode:
    if layer.start_dim != 1 or layer.end_dim != -1:
        raise InvalidTypeError(f"cannot export Flatten(start_dim={layer.start_dim}, end_dim={layer.end_dim}) to C: "
                               "only Flatten(start_dim=1) (everything after the batch dim)")
    return LayerCode(Activation((ctx.input.size,), ctx.input.spikes), None)


@emitter(nn.Identity, nn.Dropout)
def emit_identity(ctx: LayerContext, layer: Any) -> LayerCode:
    return LayerCode(ctx.input, None)  # Dropout: exported networks run in eval mode


# -- the library -----------------------------------------------------------------------------------

def check_name(name: object) -> str:
    """A library name: a C identifier, not a keyword."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,30}", name) or name in _C_KEYWORDS:
        raise InvalidValueError("c_name (--name) must be a C identifier of at most 31 characters that starts with a "
                                f"letter and is not a C keyword, got {name!r}")
    return name


def field_name(state: str) -> str:
    """The C field of a state tensor: ``v`` -> ``v``, ``state.1.v`` -> ``state_1_v``."""
    return re.sub(r"\W", "_", state)


@dataclass(frozen=True)
class Library:
    """A model as a C library: the two files' text and what the manifest says about them."""

    name: str
    header: str
    source: str
    entry: ArtifactEntry

    def write(self, folder: Path) -> None:
        (folder / f"{self.name}.h").write_text(self.header)
        (folder / f"{self.name}.c").write_text(self.source)


def _template(name: str) -> Template:
    return Template(resources.files(__package__).joinpath("c_templates", name).read_text())


def _describe(model: ExportModel) -> str:
    if model.is_single_neuron:
        return f"a LIF neuron, {model.description['reset']} reset, feature shape {tuple(model.x_dims[1:])}"
    types = ", ".join(layer["type"] for layer in model.description["layers"])
    return f"a spiking network ({types}), input shape {tuple(model.x_dims[1:])}"


def fixed_shape(model: ExportModel) -> tuple[int, ...]:
    """The per-sample input shape, which the C format needs fixed."""
    shape = tuple(model.x_dims[1:])
    if not all(isinstance(d, int) for d in shape):
        raise InvalidValueError(
            f"the C format needs a fixed feature shape, got {shape} (dynamic): give one, e.g. "
            "export(NeuronSpec(feature_shape=(16,)), formats=['c']) or `lif-export export --format c --features 16`"
        )
    return shape  # type: ignore[return-value]


def _emitter(index: int, layer: Any) -> LayerEmitter:
    """The layer's emitter; a float-tier layer is refused naming it: the C library writes the exact tier only."""
    if isinstance(layer, FLOAT_LAYERS):
        raise InvalidTypeError(
            f"cannot export {type(layer).__name__} to C (layer {index}): the C library writes only the exact tier, "
            "and an ordinary Linear, Conv2d or AvgPool2d is a float-tier layer (docs/networks.md, \"Float tier\"); "
            "lif_export.network.to_exact converts Linear and Conv2d to the exact layers")
    return EMITTERS.emitter_for(layer)


def step_code(model: ExportModel, name: str, ct: CType) -> tuple[list[str], list[str]]:
    """``(file-scope definitions: helpers, then every layer; body of <name>_step)``; raises naming a
    layer it cannot write."""
    fields = [field_name(s.input) for s in model.states]
    act = Activation(fixed_shape(model))
    planned: list[tuple[LayerCode, LayerContext, list[str]]] = []
    for i, (layer, indices) in enumerate(model.layers):
        variables = list(getattr(layer, "state_names", None) or [model.states[k].input for k in indices])
        ctx = LayerContext(name, f"{name}_l{i}", ct, act, variables)
        code = _emitter(i, layer)(ctx, layer)
        planned.append((code, ctx, [fields[k] for k in indices]))
        act = code.output
    out_shape = tuple(model.out_dims[1:])
    assert act.shape == out_shape, f"C layers end in shape {act.shape}, the model's output is {out_shape}"
    computing = [k for k, (code, _, _) in enumerate(planned) if code.definitions is not None]
    buffers = [0, 0]  # ping-pong buffers between layers, sized for what they hold
    body, current, free = [], "x", 0
    for k in computing:
        code, ctx, layer_fields = planned[k]
        if k == computing[-1]:
            target = "out"
        else:
            target, buffers[free] = f"buffer{free}", max(buffers[free], code.output.size)
            free = 1 - free
        body.append(f"{ctx.fn}({current}, {target}{''.join(f', state->{f}' for f in layer_fields)});")
        current = target
    if not computing:
        body += ["size_t i;", f"for (i = 0; i < {act.size}; ++i) out[i] = x[i];"]
    declarations = [f"{ct.name} buffer{b}[{size}];" for b, size in enumerate(buffers) if size]
    helpers = [HELPERS[h](name, ct) for h in HELPERS if any(h in code.helpers for code, _, _ in planned)]
    return helpers + [code.definitions for code, _, _ in planned if code.definitions], declarations + body


def library(model: ExportModel, name: str) -> Library:
    """The C library of ``model`` (planned and checked; nothing written)."""
    name = check_name(name)
    ct = CTYPES[model.dtype]
    upper = name.upper()
    definitions, body = step_code(model, name, ct)
    fields = [(field_name(s.input), s) for s in model.states]
    x_size, out_size = math.prod(fixed_shape(model)), math.prod(model.out_dims[1:])
    defines = [f"#define {upper}_X_SIZE {x_size}  /* x: {list(model.x_dims[1:])} per sample */",
               f"#define {upper}_OUT_SIZE {out_size}  /* {model.output}: {list(model.out_dims[1:])} */",
               *(f"#define {upper}_{f.upper()}_SIZE {math.prod(s.dims[1:])}  /* {s.input}: {list(s.dims[1:])} */"
                 for f, s in fields)]
    struct = [f"    {ct.name} {f}[{math.prod(s.dims[1:])}];  /* {s.input}, initially {s.initial_value} */"
              for f, s in fields]
    description = _describe(model)
    header = _template("header.h.in").substitute(
        name=name, NAME=upper, T=ct.name, description=description, version=__version__,
        defines="\n".join(defines), fields="\n".join(struct) if struct else f"    {ct.name} unused;  /* no state */")
    entry: ArtifactEntry = {
        "name": "c_library", "file": f"{name}.c", "format": "c", "kind": "step", "method": f"{name}_step",
        "calling_convention": "flat",
        "companions": [{"file": f"{name}.h", "sha256": hashlib.sha256(header.encode()).hexdigest()}],
        **model_io(model, False),
        "extra_methods": {
            f"{name}_reset": {"inputs": [], "outputs": [], "state_struct": f"{name}_state",
                              "state_fields": {s.input: f for f, s in fields}},
            f"{name}_run": {"inputs": ["x"], "outputs": [model.output],
                            "steps": "x[steps][X_SIZE] -> out[steps][OUT_SIZE], one sample"},
        },
    }
    reset = [f"for (i = 0; i < {upper}_{f.upper()}_SIZE; ++i) state->{f}[i] = {ct.literal(s.initial_value)};"
             for f, s in fields] or ["(void)state;"]
    prelude = _template("prelude.c.in").substitute(
        name=name, NAME=upper, T=ct.name, U=ct.bits, QUIET=f"0x{ct.quiet:x}u", DEFAULT_NAN=f"0x{ct.default_nan:x}u",
        description=description, version=__version__, key=EMBEDDED_KEY,
        manifest=embedded_manifest(entry).replace("*/", "*\\/"))  # JSON reads *\/ as */, C does not
    api = [
        f"void {name}_reset({name}_state *state) {{", *(["    size_t i;"] if fields else []),
        *("    " + line for line in reset), "}",
        "",
        f"void {name}_step({name}_state *state, const {ct.name} *x, {ct.name} *out) {{",
        *("    " + line for line in body), "}",
        "",
        f"void {name}_run({name}_state *state, const {ct.name} *x, {ct.name} *out, size_t steps) {{",
        "    size_t t;",
        f"    for (t = 0; t < steps; ++t) {name}_step(state, x + t * {upper}_X_SIZE, out + t * {upper}_OUT_SIZE);",
        "}",
    ]
    source = "\n\n".join([prelude.rstrip(), *definitions, "\n".join(api)]) + "\n"
    return Library(name, header, source, entry)


def embedded_entry(path: Path) -> dict:
    """The manifest entry embedded in a generated ``<name>.c`` (its first comment)."""
    prefix = f" * {EMBEDDED_KEY}: "
    for line in path.read_text().splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    raise InvalidValueError(f"{path.name} has no {EMBEDDED_KEY} comment")


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<name>.c`` (the manifest entry, embedded in it as a comment) with ``<name>.h`` as its companion."""
    lib = library(model, options.c_name or DEFAULT_NAMES[model.description_key])
    return [Artifact(lib.entry, lib.write)]
