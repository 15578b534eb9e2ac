"""One generated test program for the C libraries, for every target: the host (gcc, clang), aarch64
Linux (under ``qemu-aarch64``) and a bare-metal Cortex-M4F (an MPS2 AN386 board under
``qemu-system-arm``, output through semihosting).

The golden vectors of one or more C libraries (read from exported folders, or computed in memory:
:meth:`HarnessLibrary.of_model`) are compiled in as bit patterns (``data.c``); ``main.c`` runs every
case of every library through ``<name>_step`` one step at a time, comparing the output and every
state with the golden bits after every step, and through ``<name>_run`` in one call (output and
final state), then prints ``ok``/``FAIL`` per case (with the first differing step, sample and
element) and ``PASS`` or ``FAIL`` at the end. On the microcontroller it uses no C library beyond the
``memset``/``memcpy`` a compiler may call (newlib-nano's).

:func:`cached_build` compiles anything (the ``c`` backend's shared objects too) into a cache keyed by
the sources, the command and the CPU.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...cases import CASES
from ...fast.ccompile import cache_dir, cpu_info
from .. import vectors
from ..manifest import find_artifact, load_manifest
from ..model import ExportModel
from .c import CTYPES, field_name, library


class BuildError(RuntimeError):
    """A compiler or linker failed; the message has its output."""


def cached_build(command: Sequence[str], files: Mapping[str, bytes], sources: Sequence[str], output: str,
                 libraries: Sequence[str] = ()) -> Path:
    """``command *sources *libraries -o output`` in a folder holding ``files``, cached under
    ``<cache>/c-build/`` by the sha256 of the files, the command and the CPU (for ``-march=native``)."""
    digest = hashlib.sha256()
    for part in [*command, *sources, *libraries, output, str(cpu_info()["identity"])]:
        digest.update(part.encode() + b"\0")
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    target = cache_dir() / "c-build" / f"{digest.hexdigest()[:20]}-{output}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lif-c-build-") as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        result = subprocess.run([*command, *sources, *libraries, "-o", output], cwd=tmp, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise BuildError(f"{' '.join([*command, *sources])} failed:\n{result.stderr.strip()[-2000:]}")
        os.replace(Path(tmp) / output, target)  # atomic: concurrent builders agree
    return target


# -- what the harness checks -----------------------------------------------------------------------

@dataclass(frozen=True)
class HarnessLibrary:
    """A C library (its manifest entry and files) and golden cases for it, as bit patterns."""

    entry: dict[str, Any]
    files: dict[str, bytes]  # <name>.c and <name>.h
    cases: dict[str, dict[str, np.ndarray]]  # case -> see case_bits

    @staticmethod
    def read(folder: Path, cases: Sequence[str] | None = None) -> HarnessLibrary:
        """The library of an exported folder with its golden vectors (those named in ``cases``, or all)."""
        manifest = load_manifest(folder)
        entry: dict[str, Any] = dict(find_artifact(manifest, "c_library"))
        names = [entry["file"], *(c["file"] for c in entry["companions"])]
        files = {name: (Path(folder) / name).read_bytes() for name in names}
        lib = HarnessLibrary(entry, files, {})
        for v in manifest["vectors"]:
            if cases is None or v["case"] in cases:
                lib.cases[v["case"]] = lib.case_bits(*vectors.read_case(Path(folder) / v["dir"]))
        return lib

    @staticmethod
    def of_model(model: ExportModel, name: str,
                 inputs: Mapping[str, tuple[np.ndarray, dict[str, np.ndarray]]]) -> HarnessLibrary:
        """``model``'s library with the cases ``{case: (x, initial states)}`` and eager PyTorch's outputs,
        computed here: golden vectors without an export (see :func:`catalogue`)."""
        generated = library(model, name)
        lib = HarnessLibrary(dict(generated.entry), {f"{name}.c": generated.source.encode(),
                                                     f"{name}.h": generated.header.encode()}, {})
        for case, (x, states) in inputs.items():
            lib.cases[case] = lib.case_bits({"x": x, **states}, model.reference(x, states))
        return lib

    @property
    def name(self) -> str:
        return self.entry["method"].removesuffix("_step")

    @property
    def dtype(self) -> str:
        return self.entry["inputs"][0]["dtype"]

    def size(self, tensor: str) -> int:
        """Values per sample of an input or output tensor."""
        shape = next(t["shape"] for t in self.entry["inputs"] + self.entry["outputs"] if t["name"] == tensor)
        return math.prod(shape[1:])

    @property
    def x_size(self) -> int:
        return self.size("x")

    @property
    def out_size(self) -> int:
        return self.size(self.entry["outputs"][0]["name"])

    @property
    def fields(self) -> list[tuple[str, str, int]]:
        """``(state input name, C field, values per sample)`` in struct order."""
        return [(s["input"], field_name(s["input"]), self.size(s["input"])) for s in self.entry["state"]]

    @property
    def state_size(self) -> int:
        return sum(size for _, _, size in self.fields)

    @property
    def offsets(self) -> list[int]:
        """Where each state starts in the struct, in values."""
        return [sum(size for _, _, size in self.fields[:k]) for k in range(len(self.fields))]

    @property
    def bits(self) -> str:
        return CTYPES[self.dtype].bits

    def case_bits(self, ins: dict[str, np.ndarray], outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A case's inputs and outputs by manifest name as the harness's ``x``, ``init``, ``out``,
        ``trace``, ``final``: unsigned bit patterns in C order (``[T][B][X]``, ``[B][S]``, ``[T][B][O]``,
        ``[T][B][S]``, ``[B][S]``, S every state in struct order)."""
        x = ins["x"]
        steps, batch = x.shape[:2]

        def states(key: str, source: dict[str, np.ndarray], lead: tuple[int, ...]) -> np.ndarray:
            parts = [source[s[key]].reshape(*lead, size) for s, (_, _, size) in zip(self.entry["state"], self.fields,
                                                                                     strict=True)]
            return np.concatenate(parts, axis=-1) if parts else np.zeros((*lead, 0), x.dtype)

        arrays = {"x": x.reshape(steps, batch, self.x_size), "init": states("input", ins, (batch,)),
                  "out": outs[self.entry["outputs"][0]["name"]].reshape(steps, batch, self.out_size),
                  "trace": states("trace", outs, (steps, batch)), "final": states("output", outs, (batch,))}
        unsigned = np.uint32 if self.dtype == "float32" else np.uint64
        return {k: np.ascontiguousarray(v).view(unsigned) for k, v in arrays.items()}


def catalogue(model: ExportModel, names: Sequence[str]) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The inputs of the catalogue's cases ``names`` (:mod:`lif_export.cases`) for ``model``."""
    return {name: CASES[name].build(model.signature()) for name in names}


def _bits_array(type_name: str, name: str, values: np.ndarray) -> str:
    flat = [f"0x{int(v):x}u" for v in values.reshape(-1)] or ["0u"]
    lines = [", ".join(flat[i:i + 8]) for i in range(0, len(flat), 8)]
    return f"static const {type_name} {name}[{len(flat)}] = {{\n    " + ",\n    ".join(lines) + "\n};"


def harness_header(libraries: Sequence[HarnessLibrary]) -> str:
    lines = ["#include <stddef.h>", "#include <stdint.h>", ""]
    for bits in sorted({lib.bits for lib in libraries}):
        lines.append(f"typedef struct {{ const char *name; size_t steps, batch; const {bits} *x, *init, *out, *trace, "
                     f"*final; }} case_{bits};")
    for lib in libraries:
        lines += [f"extern const case_{lib.bits} {lib.name}_cases[];", f"extern const size_t {lib.name}_case_count;"]
    return "\n".join(lines) + "\n"


def harness_data(libraries: Sequence[HarnessLibrary]) -> str:
    """``data.c``: every golden case's bits and the case tables."""
    parts = ['#include "harness.h"']
    for lib in libraries:
        rows = []
        for k, (case, arrays) in enumerate(lib.cases.items()):
            for key, values in arrays.items():
                parts.append(_bits_array(lib.bits, f"{lib.name}_{k}_{key}", values))
            steps, batch = arrays["x"].shape[:2]
            rows.append(f'    {{"{case}", {steps}, {batch}, '
                        + ", ".join(f"{lib.name}_{k}_{key}" for key in arrays) + "}")
        parts.append(f"const case_{lib.bits} {lib.name}_cases[] = {{\n" + ",\n".join(rows) + "\n};")
        parts.append(f"const size_t {lib.name}_case_count = {len(lib.cases)};")
    return "\n".join(parts) + "\n"


def _checker(lib: HarnessLibrary) -> str:
    """``check_<name>``: every case through step (each step's output and states) and run."""
    n, t, u = lib.name, CTYPES[lib.dtype].name, lib.bits
    max_steps = max((arrays["x"].shape[0] for arrays in lib.cases.values()), default=1)
    offsets, copy_in, compare = 0, [], []
    for _, c_field, size in lib.fields:
        copy_in.append(f"for (i = 0; i < {size}; ++i) s->{c_field}[i] = as_{t}(bits[{offsets} + i]);")
        compare.append(f"for (i = 0; i < {size}; ++i) if (bits_{t}(s->{c_field}[i]) != bits[{offsets} + i]) "
                       f'return report("{c_field}", i, bits_{t}(s->{c_field}[i]), bits[{offsets} + i]);')
        offsets += size
    return f"""
static void {n}_load({n}_state *s, const {u} *bits) {{
    size_t i;
    (void)s; (void)bits;
    {chr(10).join("    " + line for line in copy_in).strip()}
}}

static int {n}_same({n}_state *s, const {u} *bits) {{
    size_t i;
    (void)s; (void)bits; (void)i;
    {chr(10).join("    " + line for line in compare).strip()}
    return 1;
}}

static {t} {n}_harness_x[{max_steps} * {n.upper()}_X_SIZE], {n}_harness_out[{max_steps} * {n.upper()}_OUT_SIZE];

static int check_{n}(const case_{u} *c) {{
    size_t b, t, i;
    {n}_state s;
    const size_t S = {lib.state_size}, X = {n.upper()}_X_SIZE, O = {n.upper()}_OUT_SIZE;
    for (b = 0; b < c->batch; ++b) {{
        where("step", b, 0);
        {n}_load(&s, c->init + b * S);
        for (t = 0; t < c->steps; ++t) {{
            where("step", b, t);
            for (i = 0; i < X; ++i) {n}_harness_x[i] = as_{t}(c->x[(t * c->batch + b) * X + i]);
            {n}_step(&s, {n}_harness_x, {n}_harness_out);
            for (i = 0; i < O; ++i) {{
                const {u} want = c->out[(t * c->batch + b) * O + i];
                if (bits_{t}({n}_harness_out[i]) != want) return report("out", i, bits_{t}({n}_harness_out[i]), want);
            }}
            if (!{n}_same(&s, c->trace + (t * c->batch + b) * S)) return 0;
        }}
        where("final state", b, c->steps);
        if (!{n}_same(&s, c->final + b * S)) return 0;
        where("run", b, 0);
        {n}_load(&s, c->init + b * S);
        for (t = 0; t < c->steps; ++t)
            for (i = 0; i < X; ++i) {n}_harness_x[t * X + i] = as_{t}(c->x[(t * c->batch + b) * X + i]);
        {n}_run(&s, {n}_harness_x, {n}_harness_out, c->steps);
        for (t = 0; t < c->steps; ++t)
            for (i = 0; i < O; ++i) {{
                const {u} want = c->out[(t * c->batch + b) * O + i];
                const {u} got = bits_{t}({n}_harness_out[t * O + i]);
                where("run", b, t);
                if (got != want) return report("out", i, got, want);
            }}
        where("run final state", b, c->steps);
        if (!{n}_same(&s, c->final + b * S)) return 0;
    }}
    return 1;
}}
"""


_MAIN = r"""
/* Output and exit: semihosting on a bare-metal Cortex-M, stdio elsewhere. */
#if defined(LIF_HARNESS_SEMIHOSTING)
static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
static void say(const char *text) { semihost(0x04, text); }  /* SYS_WRITE0 */
static int finish(int ok) {  /* SYS_EXIT: ApplicationExit (status 0) or RunTimeErrorUnknown (1) */
    semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));
    for (;;) {}
}
#else
#include <stdio.h>
static void say(const char *text) { fputs(text, stdout); }
static int finish(int ok) { fflush(stdout); return ok ? 0 : 1; }
#endif

static void say_number(uint64_t value, unsigned base) {
    char text[24];
    int at = 23;
    text[at] = 0;
    do { text[--at] = "0123456789abcdef"[value % base]; value /= base; } while (value);
    say(text + at);
}

static const char *where_what = "";
static size_t where_sample, where_step;
static void where(const char *what, size_t sample, size_t step) {
    where_what = what;
    where_sample = sample;
    where_step = step;
}

static int report(const char *what, size_t index, uint64_t got, uint64_t want) {
    say("  first difference: "); say(where_what); say(" sample "); say_number(where_sample, 10);
    say(" step "); say_number(where_step, 10); say(", "); say(what); say("["); say_number(index, 10);
    say("]: 0x"); say_number(got, 16); say(" where 0x"); say_number(want, 16); say(" expected\n");
    return 0;
}

static float as_float(uint32_t u) { union { uint32_t u; float f; } b; b.u = u; return b.f; }
static uint32_t bits_float(float f) { union { uint32_t u; float f; } b; b.f = f; return b.u; }
static double as_double(uint64_t u) { union { uint64_t u; double f; } b; b.u = u; return b.f; }
static uint64_t bits_double(double f) { union { uint64_t u; double f; } b; b.f = f; return b.u; }
"""


def harness_main(libraries: Sequence[HarnessLibrary]) -> str:
    """``main.c``: the checks of every library; exit status 0 when every case passes."""
    includes = "\n".join(f'#include "{lib.name}.h"' for lib in libraries)
    runs = []
    for lib in libraries:
        runs.append(f"""    for (k = 0; k < {lib.name}_case_count; ++k) {{
        const int ok = check_{lib.name}(&{lib.name}_cases[k]);
        say(ok ? "ok   " : "FAIL "); say("{lib.name} "); say({lib.name}_cases[k].name); say("\\n");
        failed += !ok;
    }}""")
    return f"""#include "harness.h"
{includes}
{_MAIN}
{"".join(_checker(lib) for lib in libraries)}
int main(void) {{
    size_t k, failed = 0;
    (void)as_float; (void)bits_float; (void)as_double; (void)bits_double;
{chr(10).join(runs)}
    say(failed ? "FAIL\\n" : "PASS\\n");
    return finish(failed == 0);
}}
"""


# -- targets ---------------------------------------------------------------------------------------

_CORTEX_M_STARTUP = r"""
#include <stdint.h>
extern uint32_t __bss_start__, __bss_end__, __stack_top;
int main(void);
static int semihost_exit_fault(void) {
    register int r0 __asm__("r0") = 0x04;
    register const void *r1 __asm__("r1") = "FAIL hard fault\n";
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    r0 = 0x18;
    r1 = (const void *)0x20023u;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
void fault_handler(void) { semihost_exit_fault(); for (;;) {} }
void reset_handler(void) {
    uint32_t *p;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: full access to CP10/CP11, the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
    main();
    for (;;) {}
}
__attribute__((section(".vectors"), used)) static const void *const vectors[] = {
    &__stack_top, (const void *)reset_handler, (const void *)fault_handler, (const void *)fault_handler,
};
"""

_CORTEX_M_LINKER = """
MEMORY {
    FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M  /* MPS2 AN386 ZBT SSRAM1 */
    RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M   /* ZBT SSRAM2/3 */
}
ENTRY(reset_handler)
SECTIONS {
    .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH
    .ARM.exidx : { *(.ARM.exidx*) } > FLASH
    .data : { *(.data*) } > RAM  /* loaded in place by QEMU */
    .bss (NOLOAD) : { __bss_start__ = .; *(.bss*) *(COMMON) . = ALIGN(4); __bss_end__ = .; } > RAM
    __stack_top = ORIGIN(RAM) + LENGTH(RAM);
}
"""

#: The Cortex-M4F's code generation: an FPU with single-precision fused multiply-add (vfma.f32).
CORTEX_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")


@dataclass(frozen=True)
class Target:
    """Where the harness runs: how to compile it and how to start it."""

    name: str
    compiler: str
    flags: tuple[str, ...]
    link: tuple[str, ...] = ()
    runner: tuple[str, ...] = ()  # command prefix that runs the program; empty: run it directly
    files: tuple[tuple[str, str], ...] = ()  # extra sources (name, text) built in

    def missing(self) -> str | None:
        """Why the target cannot run here (the first missing tool), or ``None``."""
        for tool in (self.compiler, *self.runner[:1]):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (scripts/install_system_deps.sh)"
        return None

    def data_object(self, libraries: Sequence[HarnessLibrary]) -> Path:
        """``data.c`` compiled once (its bits do not depend on the optimisation flags)."""
        files = {"harness.h": harness_header(libraries).encode(), "data.c": harness_data(libraries).encode()}
        arch = [f for f in self.flags if f.startswith(("-m", "-std"))]
        return cached_build([self.compiler, *arch, "-c"], files, ["data.c"], "data.o")

    def build(self, libraries: Sequence[HarnessLibrary], defines: Sequence[str] = ()) -> Path:
        files = {"harness.h": harness_header(libraries).encode(), "main.c": harness_main(libraries).encode(),
                 "data.o": self.data_object(libraries).read_bytes(),
                 **{name: text.encode() for name, text in self.files}}
        for lib in libraries:
            files.update(lib.files)
        sources = ["main.c", *(f"{lib.name}.c" for lib in libraries), *(n for n, _ in self.files if n.endswith(".c")),
                   "data.o"]
        return cached_build([self.compiler, *self.flags, *(f"-D{d}" for d in defines)], files, sources,
                            "harness.elf", self.link)

    def run(self, libraries: Sequence[HarnessLibrary], defines: Sequence[str] = (),
            timeout: float = 120) -> HarnessResult:
        program = self.build(libraries, defines)
        result = subprocess.run([*self.runner, str(program)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=timeout)  # QEMU writes semihosting output to stderr
        return HarnessResult(self.name, result.returncode == 0 and result.stdout.rstrip().endswith("PASS"),
                             result.stdout)


@dataclass(frozen=True)
class HarnessResult:
    """``passed``: the program exited 0 after printing ``PASS``; ``output``: everything it printed."""

    target: str
    passed: bool
    output: str


def host_target(compiler: str, flags: Sequence[str]) -> Target:
    """The host's compiler in its default (GNU) mode with the given flags."""
    return Target(f"{compiler} {' '.join(flags)}", compiler, tuple(flags))


AARCH64 = Target("aarch64 (qemu-aarch64)", "aarch64-linux-gnu-gcc", ("-O2",), ("-static",), ("qemu-aarch64",))
CORTEX_M = Target(
    "cortex-m4f (qemu-system-arm mps2-an386)", "arm-none-eabi-gcc", (*CORTEX_M4F, "-O2", "-DLIF_HARNESS_SEMIHOSTING"),
    ("-nostartfiles", "-Tcortex_m.ld", "--specs=nano.specs", "-Wl,--gc-sections", "-lgcc"),
    ("qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
     "-semihosting-config", "enable=on,target=native", "-kernel"),
    (("startup.c", _CORTEX_M_STARTUP), ("cortex_m.ld", _CORTEX_M_LINKER)))


def cortex_m_footprint(lib: HarnessLibrary) -> dict[str, int]:
    """The library alone built for the Cortex-M4F (``-O2``), in bytes: ``flash`` (code and constants),
    ``data`` (the rounding barrier's volatile zero), ``bss`` (0: no mutable globals), ``state``
    (``sizeof(<name>_state)``, the caller's RAM) and ``stack`` (``<name>_step``'s frame plus its largest
    layer function's, those the compiler did not inline, from ``-fstack-usage``)."""
    with tempfile.TemporaryDirectory(prefix="lif-c-size-") as tmp:
        for name, data in lib.files.items():
            (Path(tmp) / name).write_bytes(data)
        subprocess.run([CORTEX_M.compiler, *CORTEX_M4F, "-O2", "-fstack-usage", "-c", f"{lib.name}.c"], cwd=tmp,
                       check=True, capture_output=True)
        size = subprocess.run(["arm-none-eabi-size", f"{lib.name}.o"], cwd=tmp, check=True, capture_output=True,
                              text=True).stdout.splitlines()[1].split()
        frames = {}
        for line in (Path(tmp) / f"{lib.name}.su").read_text().splitlines():
            where, frame, _ = line.split("\t")
            frames[where.rsplit(":", 1)[1]] = int(frame)
    layers = [frame for function, frame in frames.items() if not function.startswith(f"{lib.name}_")]
    return {"flash": int(size[0]), "data": int(size[1]), "bss": int(size[2]),
            "state": lib.state_size * np.dtype(lib.dtype).itemsize,
            "stack": frames[f"{lib.name}_step"] + max(layers, default=0)}
