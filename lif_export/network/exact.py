"""``ExactLinear`` and ``ExactConv2d``: layers whose result is the same bits on every backend.

A matrix product's rounding depends on the order in which a library sums
(MKL, MLAS and Eigen all differ), so an ordinary ``Linear`` cannot be
bit-identical across PyTorch and onnxruntime. ``ExactLinear`` puts inputs,
weights and bias on a fixed-point grid (inputs: multiples of ``2**-12`` clamped
to ``[-256, 256]``; weights and bias: multiples of ``2**(k-12)`` clamped to
``[-16 * 2**k, 16 * 2**k]``, ``k = weight_exponent``, a per-layer power of two,
0 by default) and computes in float64: every product then has at most 36
significant bits and a sum of up to 2**17 of them is exact in float64, so any
summation order gives the same float64 value, which is rounded once to the
input's dtype (``docs/semantics.md``, "Exact linear layers", states the bounds
on ``k``). Gradients pass straight through the grid (a straight-through estimator).

Fast paths, the same bits (eager mode; scripted, or traced by ``torch.export``/``torch.compile``, a
layer runs the plain formula):

* the quantized weights (and, without autograd, their float64 copies) are kept between calls
  while the parameters hold the same bits (compared on every call with one ``memcmp`` each, so
  any way of changing them is seen, ``.data`` writes included), instead of being rounded again
  at every time step;
* ``spike_input`` (set by :class:`~lif_export.network.SpikingSequential` on a layer that follows
  a spiking layer): the input is 0/1, already on the grid, so it is not quantized, and when
  the layer's worst-case sum is exact in float32 as well (every partial sum a multiple of
  ``2**(k-12)`` below ``2**(k+12)``) an ``ExactLinear`` multiplies in float32 directly;
* with autograd the quantization is one function whose backward is the straight-through
  gradient plus ``+0.0``, exactly what the autograd graph of :func:`straight_through` adds up
  (the rounding branch contributes zeros), without that branch's elementwise backward kernels;
* with autograd an ``ExactLinear`` step on a 2-D input is one node (``_ExactLinearStep``): its forward uses
  the cached float64 (or, for a spike input whose sums are exact in float32, float32) copies of the
  quantized parameters instead of casting them at every step, and its backward runs the operations that
  autograd runs for the formula's graph, one for one, on operands of the same dtypes and layouts (a BLAS
  product may sum in another order on another layout), so every gradient keeps its bits;
* without autograd, an ``ExactLinear`` step on a 2-D float32/float64 input of a small batch
  (streaming, ``KERNEL_MAX_BATCH``) is one call of the package's compiled loop (``exact_linear_*`` in
  ``lif_export/fast/lif_kernel.c``: the parameters' comparison, the input's quantization, the exact
  sums from ``+0.0`` and the bias in one call instead of eight PyTorch kernels), when a C compiler is
  available; it declines what it cannot give the formula's bits for (a NaN input, whose payload
  depends on the summation order; a spike input other than 0/1; NaN weights; a single input feature,
  where PyTorch's product of one term keeps ``-0.0``), which then takes PyTorch's operations.
"""

import ctypes
import ctypes.util
import functools
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from ..fast.kernel import EXACT_DONE, ExactLinearPlan, compiled

GRID_BITS = 12
SCALE = float(2**GRID_BITS)
INPUT_BOUND = 256.0
WEIGHT_BOUND = 16.0
MAX_IN_FEATURES = 2**17
#: Largest sum (in absolute value) of grid values that float32 holds exactly: 2**24 grid steps
#: (for ``weight_exponent = 0``; times ``2**k`` for the grid ``2**(k-12)``).
FLOAT32_EXACT_SUM = float(2 ** (24 - GRID_BITS))
#: The per-layer weight exponents ``k`` whose sums stay exact on every backend (docs/semantics.md):
#: ``-102``: the smallest unit of a sum, ``2**(k-24)``, is a normal float32 (no double rounding in the
#: C library's ``(float)S * 2**(k-24)``); ``123``: the bound ``16 * 2**k`` is a finite float32.
WEIGHT_EXPONENT_MIN, WEIGHT_EXPONENT_MAX = -102, 123


def quantize(x: Tensor, bound: float, scale: float) -> Tensor:
    """Clamp to ``[-bound, bound]`` and round to a multiple of ``1/scale`` (each step exact)."""
    return torch.round(torch.clamp(x, -bound, bound) * scale) / scale


def _quantize_new(x: Tensor, bound: float, scale: float) -> Tensor:
    """:func:`quantize`'s operations, in place on one new tensor (no autograd)."""
    return torch.clamp(x, -bound, bound).mul_(scale).round_().div_(scale)


def straight_through(x: Tensor, bound: float, scale: float) -> Tensor:
    """``quantize`` in the forward pass; when a gradient is needed, identity for it."""
    q = quantize(x, bound, scale)
    if x.requires_grad:
        q = q + (x - x.detach())  # exactly +0.0 for finite x: the forward value stays on the grid
    return q


class _StraightThrough(torch.autograd.Function):
    """:func:`straight_through` of a tensor that requires a gradient, as one node, the same bits both ways.

    Forward: ``quantize(x) + (x - x)``, the value :func:`straight_through` computes (the ``+ (x - x)``
    turns a ``-0.0`` into ``+0.0`` and an infinite ``x`` into NaN), or ``x`` itself when it is a spike
    train (0/1, on which that is the identity). Backward: ``grad + 0.0``, what the graph of
    :func:`straight_through` adds up (its rounding branch contributes ``+0.0``).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, bound: float, scale: float, on_grid: bool) -> Tensor:
        return x if on_grid else _quantize_new(x, bound, scale).add_(x - x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return grad + 0.0, None, None, None


def _straight_through_node(x: Tensor, bound: float, scale: float, on_grid: bool) -> Tensor:
    """:class:`_StraightThrough` applied (typed)."""
    out: Tensor = _StraightThrough.apply(x, bound, scale, on_grid)
    return out


def _memcmp() -> Any:
    """The C library's ``memcmp`` (``None`` where ctypes cannot find it)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        compare = libc.memcmp
    except (OSError, AttributeError):
        return None
    compare.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    compare.restype = ctypes.c_int
    return compare


_MEMCMP = _memcmp()


class _Kept:
    """A parameter and a copy of its bits, taken when its quantization was cached."""

    __slots__ = ("copy", "nbytes", "param", "raw")

    def __init__(self, param: Tensor):
        self.param = param
        self.copy = param.detach().clone(memory_format=torch.contiguous_format)
        self.nbytes = self.copy.numel() * self.copy.element_size()
        # memcmp of the raw memory: CPU, contiguous (checked again on every call)
        self.raw = _MEMCMP is not None and param.is_cpu and param.is_contiguous()

    def matches(self, param: Tensor) -> bool:
        """Still the same tensor with the same bits (``-0.0`` differs from ``+0.0``, a NaN equals itself):
        one ``memcmp``, a microsecond or two where ``torch.equal`` takes ten."""
        copy = self.copy
        if param is not self.param or param.dtype != copy.dtype or param.shape != copy.shape:
            return False
        if self.raw and param.is_cpu and param.is_contiguous():
            return _MEMCMP(param.data_ptr(), copy.data_ptr(), self.nbytes) == 0
        ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[copy.element_size()]
        return torch.equal(param.detach().view(ints), copy.view(ints))


def _float32_matmul_exact(x: Tensor) -> bool:
    """Whether float32 matrix products of ``x`` are true float32 (not reduced to bfloat16/TF32 by a setting or by
    autocast)."""
    return (torch.get_float32_matmul_precision() == "highest" and not torch.is_autocast_enabled(x.device.type)
            and os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT").upper() in ("STRICT", "ANY"))


class _GridLayer(nn.Module):
    """What ``ExactLinear`` and ``ExactConv2d`` share: the grid, the quantized weights and their cache."""

    weight: Tensor
    bias: Tensor | None

    def _init_grid(self, weight_exponent: int) -> None:
        """The input grid (``scale``, ``input_bound``) and the weights' (``weight_scale``,
        ``weight_bound``: the fixed grid scaled by ``2**weight_exponent``)."""
        if (isinstance(weight_exponent, bool) or not isinstance(weight_exponent, int)
                or not WEIGHT_EXPONENT_MIN <= weight_exponent <= WEIGHT_EXPONENT_MAX):
            raise InvalidValueError(f"weight_exponent must be an integer from {WEIGHT_EXPONENT_MIN} to "
                                    f"{WEIGHT_EXPONENT_MAX} (weights on multiples of 2**(k-{GRID_BITS}) within "
                                    f"+-{WEIGHT_BOUND:g}*2**k), got {weight_exponent!r}")
        self.scale, self.input_bound = SCALE, INPUT_BOUND
        self.weight_exponent = weight_exponent
        self.weight_scale = math.ldexp(1.0, GRID_BITS - weight_exponent)
        self.weight_bound = math.ldexp(WEIGHT_BOUND, weight_exponent)
        self.spike_input = False
        self._cache: dict[bool, dict[str, Any]] = {}

    def _input(self, x: Tensor) -> Tensor:
        """The input on the grid (scripted: the plain formula; a spike input needs nothing without autograd)."""
        if self.spike_input and not x.requires_grad:
            return x
        return straight_through(x, self.input_bound, self.scale)

    @torch.jit.unused
    def _eager_input(self, x: Tensor) -> Tensor:
        if x.requires_grad:
            return _straight_through_node(x, self.input_bound, self.scale, self.spike_input)
        if self.spike_input:
            return x
        return _quantize_new(x, self.input_bound, self.scale)

    @torch.jit.unused
    def _cached(self, derive: Any) -> dict[str, Any]:
        """The quantized weight and bias, ``autograd`` (whether they are nodes of an autograd graph) and what
        ``derive(entry)`` adds (computed without autograd), kept while the parameters are the same objects with
        the same values; separate entries with and without autograd."""
        weight, bias = self.weight, self.bias
        grad = torch.is_grad_enabled() and (weight.requires_grad or (bias is not None and bias.requires_grad))
        entry = self._cache.get(grad)
        if entry is not None and entry["weight_kept"].matches(weight) and (
                entry["bias_kept"] is None if bias is None else entry["bias_kept"] is not None
                and entry["bias_kept"].matches(bias)):
            return entry
        params = (weight, bias)
        if grad:
            wq, bq = (None if p is None else _straight_through_node(p, self.weight_bound, self.weight_scale, False)
                      for p in params)
        else:
            with torch.no_grad():  # the values of straight_through (a parameter requires a gradient even here)
                wq, bq = (None if p is None else straight_through(p, self.weight_bound, self.weight_scale)
                          for p in params)
        entry = {"weight_kept": _Kept(weight), "bias_kept": None if bias is None else _Kept(bias), "weight": wq,
                 "bias": bq, "autograd": bool(grad)}
        with torch.no_grad():
            entry.update(derive(entry))
        self._cache[bool(grad)] = entry
        return entry

    def _grid_repr(self) -> str:
        """``extra_repr``'s tail: the weight exponent when not 0, and ``spike_input``."""
        exponent = f", weight_exponent={self.weight_exponent}" if self.weight_exponent else ""
        return exponent + (", spike_input=True" if self.spike_input else "")

    def __getstate__(self) -> dict[str, Any]:
        # The cache holds tensors of an autograd graph (which cannot be deep-copied) and is rebuilt anyway.
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        return {**state, "_cache": {}}

    #: What a layer saved (``torch.save``) before these attributes existed computed.
    _SAVED_DEFAULTS: dict[str, Any] = {"weight_exponent": 0, "weight_scale": SCALE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({**self._SAVED_DEFAULTS, **state})


class ExactLinear(_GridLayer):
    """``y = x W^T + b`` computed exactly (see the module docstring).

    Shape: ``x [*, in_features]`` -> ``y [*, out_features]``, dtype of ``x``.

    ``spike_input = True`` declares that the input is a spike train (every value 0 or 1), which
    is then not put on the grid (it is on it); :class:`~lif_export.network.SpikingSequential`
    sets it on a layer that follows a spiking layer. Other values would then be used unrounded.
    """

    # TorchScript reads module constants, not module-level globals.
    __constants__ = ["in_features", "out_features", "scale", "input_bound", "weight_scale", "weight_bound",
                     "weight_exponent", "spike_input"]

    def __init__(self, in_features: int, out_features: int, bias: bool = True, weight_exponent: int = 0) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")
        if in_features > MAX_IN_FEATURES:
            raise InvalidValueError(f"in_features must be <= {MAX_IN_FEATURES} for exact sums, got {in_features}")
        self.in_features = in_features
        self.out_features = out_features
        self._init_grid(weight_exponent)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def quantized(self) -> tuple[Tensor, Tensor | None]:
        """The weight and bias as used in forward (on the grid)."""
        b = self.bias
        return (straight_through(self.weight, self.weight_bound, self.weight_scale),
                None if b is None else straight_through(b, self.weight_bound, self.weight_scale))

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            return self._eager_forward(x)
        weight, bias = self.quantized()
        wide = torch.matmul(self._input(x).double(), weight.double().t())
        if bias is not None:
            wide = wide + bias.double()
        return wide.to(x.dtype)

    @torch.jit.unused
    def _eager_forward(self, x: Tensor) -> Tensor:
        kept = self._cache.get(False)
        kernel = None if kept is None else kept.get("kernel")
        if kernel is not None:
            y = kernel(self, x)
            if y is not None:
                return y
        entry = self._cached(functools.partial(_linear_derived, exponent=self.weight_exponent))
        if entry["autograd"]:
            if x.dim() != 2:
                return _formula_step(self, x, entry["weight"], entry["bias"])
            out: Tensor = _ExactLinearStep.apply(x, entry["weight"], entry["bias"], entry, self)
            return out
        if self.spike_input and x.dim() == 2 and not x.requires_grad:
            exact = entry.get("weight32_t") if x.dtype == torch.float32 and _float32_matmul_exact(x) else None
            if exact is not None or x.dtype == torch.float64:
                # Exact sums in x's dtype, then the bias added, as the formula does (addmm can give
                # -0.0 where the formula gives +0.0: an all-zero input, negative weights, bias +0).
                w, b = (exact, entry["bias32"]) if exact is not None else (entry["weight64_t"], entry["bias64"])
                y = torch.mm(x, w)
                return y if b is None else y.add_(b)
        wide = torch.matmul(self._eager_input(x).double(), entry["weight64_t"])
        if entry["bias64"] is not None:
            wide.add_(entry["bias64"])  # the formula's add, in place
        return wide.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}{self._grid_repr()}")


def _linear_derived(entry: dict[str, Any], exponent: int) -> dict[str, Any]:
    """The float64 weight and bias, float32 ones when every sum of the layer is exact in float32
    (multiples of ``2**(exponent-12)`` below ``2**(exponent+12)``), and without autograd the compiled kernel."""
    weight, bias = entry["weight"], entry["bias"]
    # Transposed views of contiguous copies: the same operand layout as the formula's ``weight.double().t()``.
    derived = {"weight64_t": weight.double().t(), "bias64": None if bias is None else bias.double()}
    worst = weight.abs().sum(1) + (0.0 if bias is None else bias.abs())
    if bool((worst < math.ldexp(FLOAT32_EXACT_SUM, exponent)).all()):
        derived.update(weight32_t=weight.float().contiguous().t(), bias32=None if bias is None else bias.float())
    derived["kernel"] = None if entry["autograd"] else _LinearKernel.build(entry, derived)
    return derived


class _ExactLinearStep(torch.autograd.Function):
    """An ``ExactLinear`` step on a 2-D input with autograd, as one node with the bits of the formula's graph
    (:func:`_formula_step`: the input's ``_StraightThrough``, ``.double()`` of it and of the quantized weight and
    bias, ``mm``, ``+``, ``.to(x.dtype)``) both ways, using the parameters' copies of the cache entry.

    Forward: the formula's value; for a float32 spike input whose every sum is exact in float32 (``weight32_t``),
    computed in float32 (the same value, as without autograd). Backward: the operations autograd runs for that
    graph, one for one, on tensors of the same dtypes and layouts (a BLAS product may sum in another order for
    another layout): ``ToCopyBackward`` (the gradient to float64), ``AddBackward`` and ``sum_to`` for the bias,
    ``MmBackward`` (``mm_mat1_backward``, ``mm_mat2_backward``, with their column-major branches),
    ``TBackward``, the ``ToCopyBackward`` to each input's dtype, and ``_StraightThrough``'s ``+ 0.0`` for the
    input. With ``create_graph`` (the saved copies are constants) the backward is the formula's graph itself.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, derived: dict[str, Any],
                layer: "ExactLinear") -> Tensor:
        # x [batch, in]; weight [out, in] and bias [out]: the quantized parameters (the cache entry's graph
        # nodes, inputs here for their gradients); derived: their copies (``_linear_derived``).
        ctx.inputs, ctx.layer = (x, weight, bias), layer
        weight32_t = derived.get("weight32_t") if layer.spike_input and x.dtype == torch.float32 else None
        if weight32_t is not None and _float32_matmul_exact(x):
            y = torch.mm(x, weight32_t)
            if derived["bias32"] is not None:
                y.add_(derived["bias32"])
            ctx.save_for_backward(x)  # x.double() (mat1 of the formula's mm) is made by the backward
        else:
            q = x
            if not layer.spike_input:
                q = _quantize_new(x, layer.input_bound, layer.scale)
                if ctx.needs_input_grad[0]:
                    q.add_(x - x)  # _StraightThrough's value
            wide_x = q.double()
            wide = torch.mm(wide_x, derived["weight64_t"])
            if derived["bias64"] is not None:
                wide.add_(derived["bias64"])
            y = wide.to(x.dtype)
            ctx.save_for_backward(wide_x)  # mat1 of the formula's mm
        ctx.weight64_t = derived["weight64_t"]  # its mat2
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        # grad [batch, out] -> the gradients of x [batch, in], weight [out, in], bias [out]
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        x, weight, bias = ctx.inputs
        if torch.is_grad_enabled():  # create_graph
            wanted = [t for t, need in zip(ctx.inputs, (need_x, need_weight, need_bias), strict=True) if need]
            found = iter(torch.autograd.grad(_formula_step(ctx.layer, x, weight, bias), wanted, grad,
                                             create_graph=True))
            return (*(next(found) if need else None for need in (need_x, need_weight, need_bias)), None, None)
        (wide_x,) = ctx.saved_tensors
        wide_x = wide_x.double()  # no-op when saved in float64
        weight64_t = ctx.weight64_t
        wide_grad = grad.to(torch.float64)
        grad_x = grad_weight = grad_bias = None
        if need_x:
            if wide_x.stride(0) == 1 and wide_x.stride(1) == wide_x.size(0):
                grad_x = weight64_t.mm(wide_grad.t()).t().to(x.dtype).add_(0.0)
            else:
                grad_x = wide_grad.mm(weight64_t.t()).to(x.dtype).add_(0.0)
        if need_weight:
            if weight64_t.stride(0) == 1 and weight64_t.stride(1) == weight64_t.size(0):
                grad_weight = wide_grad.t().mm(wide_x).to(weight.dtype)  # mm(...).t(), then TBackward's .t()
            else:
                grad_weight = wide_x.t().mm(wide_grad).t().to(weight.dtype)
        if need_bias:
            grad_bias = wide_grad.sum(0).to(bias.dtype)  # sum_to: sum([0], keepdim=True) viewed as [out]
        return grad_x, grad_weight, grad_bias, None, None


def _formula_step(layer: "ExactLinear", x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The formula's autograd graph on the quantized ``weight [out, in]`` and ``bias [out]`` of a cache entry:
    ``x [*, in]`` -> ``[*, out]``."""
    wide = torch.matmul(layer._eager_input(x).double(), weight.double().t())
    if bias is not None:
        wide = wide + bias.double()
    return wide.to(x.dtype)


#: The compiled loop is for streaming steps: up to this batch (larger ones are faster in PyTorch's blocked
#: product), up to this many outputs (its sums sit on the stack) and weights (it keeps a transposed copy).
KERNEL_MAX_BATCH, KERNEL_MAX_OUT, KERNEL_MAX_WEIGHTS = 8, 4096, 2**22


class _LinearKernel:
    """An ``ExactLinear``'s no-autograd step in the compiled loop (``exact_linear_*``), for the parameters of
    one cache entry: ``x [batch, in_features]`` float32/float64, CPU, contiguous -> ``[batch, out_features]``
    (``batch <= KERNEL_MAX_BATCH``)."""

    __slots__ = ("address", "bias", "by_dtype", "keep", "layout", "n_in", "n_out", "plan", "weight")

    def __init__(self, library: Any, entry: dict[str, Any], derived: dict[str, Any]):
        weight_kept, bias_kept = entry["weight_kept"], entry["bias_kept"]
        weight_t = derived["weight64_t"].contiguous()  # [in, out]: the loop over the outputs innermost
        bias = derived["bias64"]
        self.n_in, self.n_out = weight_t.shape
        self.plan = ExactLinearPlan(
            weight_t.data_ptr(), None if bias is None else bias.data_ptr(), weight_kept.copy.data_ptr(),
            None if bias_kept is None else bias_kept.copy.data_ptr(), weight_kept.nbytes,
            0 if bias_kept is None else bias_kept.nbytes, self.n_in, self.n_out, SCALE, INPUT_BOUND)
        self.address = ctypes.addressof(self.plan)
        self.keep = (weight_t, bias, weight_kept, bias_kept)  # what the plan points into
        self.weight, self.bias = weight_kept.param, None if bias_kept is None else bias_kept.param
        # The parameters' dtypes and shapes when copied (weight's, bias's; their memory must stay contiguous
        # and on the CPU: the loop compares it with the copies' bytes).
        self.layout = tuple(v for k in (weight_kept, bias_kept) if k is not None for v in (k.copy.dtype, k.copy.shape))
        # dtype -> [the C function, an output of the last batch size (a template for torch.empty_like)]
        self.by_dtype: dict[torch.dtype, list[Any]] = {torch.float32: [library.exact_linear_f32, None],
                                                       torch.float64: [library.exact_linear_f64, None]}

    @classmethod
    def build(cls, entry: dict[str, Any], derived: dict[str, Any]) -> "_LinearKernel | None":
        """The kernel for this entry, or ``None`` when there is no compiled library or the loop would not
        give the formula's bits (see the module docstring)."""
        library = compiled().library
        weight, bias = entry["weight"], entry["bias"]
        if (library is None or weight.dim() != 2 or weight.size(1) < 2 or weight.size(0) > KERNEL_MAX_OUT
                or weight.numel() > KERNEL_MAX_WEIGHTS
                or not all(k is None or k.raw for k in (entry["weight_kept"], entry["bias_kept"]))
                or bool(weight.isnan().any()) or (bias is not None and bool(bias.isnan().any()))):
            return None
        return cls(library, entry, derived)

    def __call__(self, layer: "ExactLinear", x: Tensor) -> Tensor | None:
        """``layer(x)`` (the formula's bits), or ``None`` when the loop does not take this call: autograd,
        another dtype/shape/device/layout, a larger batch, a tensor subclass or functorch wrapper, changed
        parameters (the caller quantizes them again), a NaN or non-spike input (the caller runs PyTorch's
        operations)."""
        spec = self.by_dtype.get(x.dtype)
        params = layer._parameters  # registered parameters stay in this dict (``layer.weight`` costs more)
        weight = params.get("weight")
        bias = layer.bias if self.bias is None else params.get("bias")
        layout = self.layout
        if (spec is None or type(x) is not Tensor or weight is not self.weight or bias is not self.bias
                or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                 or (bias is not None and bias.requires_grad)))
                or x.dim() != 2 or x.size(1) != self.n_in or x.size(0) > KERNEL_MAX_BATCH or not x.is_cpu
                or not x.is_contiguous()
                or weight.dtype != layout[0] or weight.shape != layout[1] or not weight.is_contiguous()
                or not weight.is_cpu or (bias is not None and (bias.dtype != layout[2] or bias.shape != layout[3]
                                                               or not bias.is_contiguous() or not bias.is_cpu))):
            return None
        try:
            x_address = x.data_ptr()
        except RuntimeError:  # no storage: a functorch (vmap, grad) wrapper
            return None
        batch, template = x.size(0), spec[1]
        if template is None or template.size(0) != batch:
            template = spec[1] = torch.empty((batch, self.n_out), dtype=x.dtype, device="cpu")
        out = torch.empty_like(template)
        status = spec[0](self.address, weight.data_ptr(), None if bias is None else bias.data_ptr(), x_address,
                         batch, layer.spike_input, out.data_ptr())
        return out if status == EXACT_DONE else None


class ExactConv2d(_GridLayer):
    """A 2-D convolution (square kernel, zero padding, any stride and dilation) computed exactly, like
    :class:`ExactLinear`.

    Shape: ``x [batch, in_channels, H, W]`` -> ``[batch, out_channels, H', W']`` with
    ``H' = (H + 2p - d_h (k - 1) - 1) // s_h + 1`` (``W'`` likewise), ``p = padding``,
    ``s = stride``, ``d = dilation`` (an integer or a ``(height, width)`` pair each).
    The grid bounds hold for up to ``2**17`` terms per output (``in_channels * k * k``).
    ``spike_input`` and ``weight_exponent`` as for :class:`ExactLinear` (the sum stays in float64).
    """

    __constants__ = ["in_channels", "out_channels", "kernel_size", "padding", "stride", "dilation", "scale",
                     "input_bound", "weight_scale", "weight_bound", "weight_exponent", "spike_input"]
    bias: Tensor
    _SAVED_DEFAULTS = {**_GridLayer._SAVED_DEFAULTS, "stride": (1, 1), "dilation": (1, 1)}

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 stride: int | tuple[int, int] = 1, dilation: int | tuple[int, int] = 1,
                 weight_exponent: int = 0) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("padding", padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if in_channels * kernel_size * kernel_size > MAX_IN_FEATURES:
            raise InvalidValueError(f"in_channels * kernel_size**2 must be <= {MAX_IN_FEATURES} for exact sums")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = kernel_size, padding
        self.stride, self.dilation = _positive_pair("stride", stride), _positive_pair("dilation", dilation)
        self._init_grid(weight_exponent)
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H', W')`` of an ``H x W`` input (see the class docstring)."""
        h, w = ((size + 2 * self.padding - d * (self.kernel_size - 1) - 1) // s + 1
                for size, s, d in zip((height, width), self.stride, self.dilation, strict=True))
        return h, w

    def quantized(self) -> tuple[Tensor, Tensor]:
        """The weight and bias as used in forward (on the grid)."""
        return (straight_through(self.weight, self.weight_bound, self.weight_scale),
                straight_through(self.bias, self.weight_bound, self.weight_scale))

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting() and not torch.compiler.is_compiling():
            return self._eager_forward(x)
        weight, bias = self.quantized()
        wide = torch.nn.functional.conv2d(self._input(x).double(), weight.double(), bias.double(),
                                          stride=self.stride, padding=self.padding, dilation=self.dilation)
        return wide.to(x.dtype)

    @torch.jit.unused
    def _eager_forward(self, x: Tensor) -> Tensor:
        entry = self._cached(lambda e: {} if e["autograd"] else {"weight64": e["weight"].double(),
                                                                  "bias64": e["bias"].double()})
        weight, bias = ((entry["weight64"], entry["bias64"]) if "weight64" in entry
                        else (entry["weight"].double(), entry["bias"].double()))
        wide = torch.nn.functional.conv2d(self._eager_input(x).double(), weight, bias, stride=self.stride,
                                          padding=self.padding, dilation=self.dilation)
        return wide.to(x.dtype)

    def extra_repr(self) -> str:
        geometry = "".join(f", {name}={value}" for name, value in (("stride", self.stride),
                                                                  ("dilation", self.dilation)) if value != (1, 1))
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}{geometry}{self._grid_repr()}")


def _positive_pair(name: str, value: object) -> tuple[int, int]:
    """An integer >= 1 or a pair of them, as ``(height, width)``."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise InvalidValueError(f"{name} must be an integer >= 1 or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def mark_spike_inputs(layers: Sequence[nn.Module]) -> None:
    """Set ``spike_input`` on every exact layer of a chain whose input is a spike train: the output of a
    spiking layer, possibly through ``Flatten``, ``MaxPool2d`` or ``Identity`` (which keep values 0/1)."""
    from .protocol import SpikingLayer, Stateless

    spikes = False
    for layer in layers:
        inner = layer.module if isinstance(layer, Stateless) else layer
        if isinstance(inner, _GridLayer):
            inner.spike_input = spikes
            spikes = False
        elif isinstance(inner, SpikingLayer):
            spikes = True
        elif not isinstance(inner, (nn.Flatten, nn.MaxPool2d, nn.Identity)):
            spikes = False
