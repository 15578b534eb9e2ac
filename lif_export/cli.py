"""``lif-export``: export, verify and plot LIF neurons from the command line.

A user's mistake (a bad flag, value, file or folder) is a :class:`~lif_export.errors.LifExportError`:
printed as one line, exit status 2. An operating-system error (disk full, permission denied) is
printed as one line naming the file, exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import LifExportError
from .validation import RESETS

if TYPE_CHECKING:
    from .conformance.compare import Comparison
    from .export.formats import ExportOptions
    from .export.model import ExportModel

# TorchScript is what this tool ships; torch>=2.9 warns on every use of it.
warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
# torch.export's pytree warns about its own LeafSpec while loading programs (torch 2.13).
warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)

#: Upper bounds of the plot command (a figure has one panel per neuron).
MAX_PLOT_STEPS = 100_000
MAX_PLOT_NEURONS = 32
#: Upper bound of bench --rounds.
MAX_BENCH_ROUNDS = 1000


class CliError(LifExportError):
    """A user error found by the command line itself: printed as one line, exit status 2."""


def _add_neuron_args(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The neuron's flags; without ``defaults`` they stay ``None`` when not given (so that the export
    command can tell them apart from a state_dict's or a network's own parameters)."""
    group = parser.add_argument_group("neuron")
    group.add_argument("--threshold", type=float, default=1.0 if defaults else None,
                       help="firing threshold, > 0 (default 1.0)")
    group.add_argument("--beta", type=float, default=0.9 if defaults else None,
                       help="membrane decay in [0, 1] (default 0.9)")
    group.add_argument("--v-reset", type=float, default=0.0 if defaults else None,
                       help="reset potential (default 0.0)")
    group.add_argument("--reset", choices=RESETS, default="zero" if defaults else None,
                       help="reset mechanism (default zero)")


def _build_parser() -> argparse.ArgumentParser:
    from .backends import REGISTRY
    from .bench.runner import WORKLOADS
    from .conformance.compare import Tolerance
    from .export.formats import FORMATS
    from .export.pipeline import DEFAULT_FORMATS

    parser = argparse.ArgumentParser(
        prog="lif-export",
        description="Leaky Integrate-and-Fire neurons that run bit-identically in eager PyTorch, "
        "TorchScript, ONNX Runtime and every further backend.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = sub.add_parser(
        "export", help="write step/sequence graphs in every format, manifest and golden vectors",
        description="Write step and sequence graphs with explicit state in each --format, manifest.json and "
        "golden vectors into --out, replacing a previous export there in one atomic step (files lif-export "
        "did not write are left alone). Parameters come from the neuron flags, from --state-dict, or from "
        "--network.",
    )
    export.add_argument("--out", default="models", help="output folder (default models/)")
    export.add_argument("--format", action="append", default=None, choices=list(FORMATS), metavar="NAME",
                        help=f"write this format (repeatable): {', '.join(FORMATS)} "
                        f"(default {' and '.join(DEFAULT_FORMATS)})")
    export.add_argument("--name", default=None,
                        help="name of the generated C library, for the formats that write one")
    export.add_argument("--opset", type=int, default=None,
                        help="ONNX opset, 17 to the newest the installed onnxruntime runs (default 17)")
    export.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="dtype of the graphs (default float32)")
    export.add_argument("--features", default=None,
                        help="per-sample shape after the batch dim: 'neurons' (dynamic, the default for a neuron), "
                        "'16', '4,4'; the input shape of a --network (required there)")
    export.add_argument("--state-dict", type=Path, default=None,
                        help="take (per-neuron) beta/threshold/v_reset from a saved state_dict "
                        "(not with --beta, --threshold, --v-reset, --features)")
    export.add_argument("--prefix", default=None, help="key prefix of the LIF module in --state-dict (e.g. 'lif.')")
    export.add_argument("--clamp-learned", action="store_true",
                        help="with --state-dict: take beta and threshold as learned parameters and export what "
                        "forward uses (beta clamped to [0, 1], threshold to >= 1e-6) instead of refusing "
                        "values out of range")
    export.add_argument("--network", type=Path, default=None,
                        help="export a whole SpikingSequential saved with torch.save(net, PATH) (a pickle: "
                        "load only files you trust); --features gives its input shape, e.g. 64")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_neuron_args(export, defaults=False)

    verify = sub.add_parser(
        "verify", help="run every artifact against eager PyTorch, bit for bit",
        description="Check every file against the manifest (checksums, embedded manifests, golden .pb against "
        ".npy), then run every artifact fresh from disk through every backend on the conformance suites "
        "and golden vectors, comparing spikes and membrane potentials bit for bit. Exit 1 on any mismatch.",
    )
    verify.add_argument("models_dir", nargs="?", type=Path, default=Path("models"),
                        help="folder written by `lif-export export` (default models/)")
    verify.add_argument("--full", action="store_true",
                        help="long suites, every variation, and a matrix of fresh exports "
                        "(dtypes, resets, per-neuron parameters, opsets); default: short suites, main variations")
    families = sorted(REGISTRY)
    verify.add_argument("--backend", action="append", default=None, metavar="FAMILY",
                        help=f"only this backend family (repeatable): {', '.join(families)}")
    verify.add_argument("--case", action="append", default=None, metavar="NAME",
                        help="only this suite case or golden:<case> (repeatable)")
    verify.add_argument("--summary", action="store_true", help="one row per backend instead of backend x case")
    verify.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    tier = verify.add_argument_group(
        "float tier", "a float-tier export (manifest exactness \"float\": ordinary Linear, Conv2d, AvgPool2d, "
        "BatchNorm) is judged within these tolerances instead of bit for bit; an exact one ignores them")
    tier.add_argument("--spike-agreement", type=float, default=Tolerance.spike_agreement, metavar="RATE",
                      help="least fraction of spike values equal to eager PyTorch's, and of readout and potential "
                      f"values within the tolerance (default {Tolerance.spike_agreement})")
    tier.add_argument("--atol", type=float, default=Tolerance.atol,
                      help=f"absolute tolerance of readouts and potentials (default {Tolerance.atol:g})")
    tier.add_argument("--rtol", type=float, default=Tolerance.rtol,
                      help=f"relative tolerance of readouts and potentials (default {Tolerance.rtol:g})")

    bench = sub.add_parser(
        "bench", help=f"benchmark the workloads {', '.join(WORKLOADS)} on every path",
        description="Time W1 (simulate [500, 32, 1024]), W2 (stream [1, 128], 1000 steps), W3 "
        "(train [100, 32, 1024]) and the other workloads of lif_export.bench.runner on every path against "
        "a native C loop and the naive eager loop, and check that every path gives the same bits.",
    )
    bench.add_argument("--workload", action="append", default=None, choices=list(WORKLOADS),
                       help="only this workload (repeatable; default all)")
    bench.add_argument("--threads", default="1,2",
                       help="comma-separated thread counts, each from 1 to 4x the cores (default 1,2)")
    bench.add_argument("--rounds", type=int, default=5,
                       help=f"timed rounds after a warm-up, 1 to {MAX_BENCH_ROUNDS} (default 5)")
    bench.add_argument("--small", action="store_true", help="tiny sizes: checks the paths, not their speed")
    bench.add_argument("--json", type=Path, default=None, help="also write the results as JSON")

    digits = sub.add_parser(
        "digits", help="train a spiking network on the bundled 8x8 digits, export it, verify every backend",
        description="Train ExactLinear/LIF/LIF/SynapticLIF/LeakyIntegrator on scikit-learn's bundled digits "
        "with surrogate gradients, export it (ONNX and TorchScript, every state explicit), verify it, and "
        "check that eager PyTorch, TorchScript, onnxruntime and the C++ runners give identical predictions "
        "on the whole test set.",
    )
    digits.add_argument("--out", default="models/digits", help="export folder (default models/digits)")
    digits.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    digits.add_argument("--steps", type=int, default=12, help="time steps per image (default 12)")
    digits.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    digits.add_argument("--figure", type=Path, default=Path("digits_raster.png"),
                        help="spike raster of one test example (PNG)")

    plot = sub.add_parser(
        "plot", help="plot membrane potential over time (PNG)",
        description="Simulate neurons under a constant or random input and write a PNG of the "
        "membrane potential with the threshold and the spikes marked.",
    )
    source = plot.add_mutually_exclusive_group()
    source.add_argument("--current", type=float, action="append", default=None,
                        help=f"constant input current of one neuron (repeatable, up to {MAX_PLOT_NEURONS}; "
                        "default 0.15 and 0.3)")
    source.add_argument("--random", action="store_true", help="random input (normal, see --mean/--std)")
    plot.add_argument("--neurons", type=int, default=3,
                      help=f"neurons for --random, 1 to {MAX_PLOT_NEURONS} (default 3)")
    plot.add_argument("--mean", type=float, default=0.2, help="mean current for --random (default 0.2)")
    plot.add_argument("--std", type=float, default=0.3, help="std of the current for --random (default 0.3)")
    plot.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    plot.add_argument("--steps", type=int, default=100, help=f"time steps, 1 to {MAX_PLOT_STEPS:,} (default 100)")
    plot.add_argument("--out", type=Path, default=Path("lif_dynamics.png"), help="PNG path")
    _add_neuron_args(plot, defaults=True)

    triton = sub.add_parser(
        "triton", help="write a Triton Inference Server model repository for an exported folder",
        description="Write a Triton Inference Server model repository (config.pbtxt and versioned model "
        "files) for the artifacts of an exported folder.",
    )
    triton.add_argument("models_dir", type=Path, help="folder written by `lif-export export` (with --format onnx)")
    triton.add_argument("--out", required=True, help="model repository folder to write")
    triton.add_argument("--model-name", default=None, help="the model's name in Triton (default the step graph's)")
    triton.add_argument("--max-batch-size", type=int, default=8, help="sequences per batch (default 8)")
    triton.add_argument("--feature-size", action="append", default=None, metavar="DIM=SIZE",
                        help="a size for a named feature dim (repeatable), e.g. neurons=128: Triton keeps "
                        "states of a fixed shape")
    nir_import = sub.add_parser(
        "import", help="import a NIR graph and export it in every format",
        description="Read a NIR file (the Neuromorphic Intermediate Representation, written by snnTorch, Norse, "
        "lif_export and others), discretise it at --dt (docs/nir.md), round its weights to the exact grid "
        "(each layer's rounding error reported; --tier float keeps them as written), and export it in every "
        "format with golden vectors and a manifest, as `lif-export export` does. A graph with pooling exports "
        "in the float tier (docs/networks.md), without the C library. Needs the [convert] extra.",
    )
    nir_import.add_argument("nir_file", type=Path, help="a .nir file")
    nir_import.add_argument("--dt", type=float, default=None,
                            help="time step in seconds (default: the dt stored in the graph's metadata)")
    nir_import.add_argument("--method", choices=["euler", "exp"], default=None,
                            help="discretisation (default: the graph's, else euler)")
    nir_import.add_argument("--out", required=True, help="output folder")
    nir_import.add_argument("--tier", choices=["exact", "float"], default="exact",
                            help="exact: weights rounded to the exact grid, every backend bit-identical (default); "
                            "float: weights as written, backends agree within verify's tolerances")

    example = sub.add_parser(
        "example", help="run a worked example (snntorch: train in snnTorch, import, prove identical spikes)",
        description="snntorch: train a small snnTorch network on the bundled digits, import it with "
        "lif_export.convert.from_snntorch, show that its spikes equal snnTorch's bit for bit, convert it to "
        "the exact tier and report each accuracy. Needs the [convert] extra.",
    )
    example.add_argument("name", choices=["snntorch"], help="the example")
    example.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    example.add_argument("--steps", type=int, default=10, help="time steps per image (default 10)")
    example.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    example.add_argument("--out", default=None, help="also export the imported network (float tier) and its to_exact "
                         "version into OUT/float and OUT/exact, and run every backend of each on the test set")
    return parser


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise CliError(f"{flag} must be from {low:,} to {high:,}, got {value:,}")


def _reporter(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stdout (none with ``quiet``); ``note:`` lines always, on stderr."""

    def report(line: str) -> None:
        if line.startswith("note: "):
            print(line, file=sys.stderr, flush=True)
        elif not quiet:
            print(line, flush=True)

    return report


def _check_export_flags(args: argparse.Namespace) -> None:
    """Refuse flags that the chosen source of parameters would silently ignore."""
    neuron = {"--beta": args.beta, "--threshold": args.threshold, "--v-reset": args.v_reset}
    state_dict = {"--state-dict": args.state_dict, "--prefix": args.prefix, "--clamp-learned": args.clamp_learned}
    if args.network is not None:
        clash = [f for f, v in {**neuron, **state_dict, "--reset": args.reset}.items() if v not in (None, False)]
        if clash:
            raise CliError(f"{clash[0]} cannot be combined with --network: the network's layers carry their own "
                           "parameters")
        if args.features is None:
            raise CliError("--network needs --features, the network's input shape (e.g. 64)")
    elif args.state_dict is not None:
        clash = [f for f, v in {**neuron, "--features": args.features}.items() if v is not None]
        if clash:
            raise CliError(f"{clash[0]} cannot be combined with --state-dict: the state_dict gives the neuron's "
                           "parameters and shape")
    else:
        clash = [f for f, v in state_dict.items() if v not in (None, False)]
        if clash:
            raise CliError(f"{clash[0]} needs --state-dict")
    if args.opset is not None and "onnx" not in (args.format or ["onnx"]):
        raise CliError("--opset applies to the onnx format only; add --format onnx")


def _export_options(args: argparse.Namespace, formats: list[str]) -> ExportOptions:
    from .export.formats import DEFAULT_OPSET, ExportOptions
    from .export.formats import onnx as onnx_format

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if "onnx" in formats:
        opset = onnx_format.check_opset(opset)
    if args.name is not None and "c" not in formats:
        raise CliError("--name is the name of the generated C library: add --format c")
    return ExportOptions(opset=opset, c_name=args.name)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export.commit import out_path
    from .export.model import NeuronModel
    from .export.pipeline import DEFAULT_FORMATS, export_model
    from .export.spec import NeuronSpec, parse_feature_shape, spec_from_state_dict

    _check_export_flags(args)
    out = out_path(args.out)
    formats = list(dict.fromkeys(args.format or DEFAULT_FORMATS))
    options = _export_options(args, formats)
    model: ExportModel
    if args.network is not None:
        model = _network_model(args)
    else:
        if args.state_dict is not None:
            spec = spec_from_state_dict(args.state_dict, args.prefix or "", args.reset or "zero",
                                        args.dtype or "float32", clamp_learned=args.clamp_learned)
        else:
            defaults = NeuronSpec()
            spec = NeuronSpec(
                threshold=defaults.threshold if args.threshold is None else args.threshold,
                beta=defaults.beta if args.beta is None else args.beta,
                v_reset=defaults.v_reset if args.v_reset is None else args.v_reset,
                reset=args.reset or defaults.reset, dtype=args.dtype or "float32",
                feature_shape=parse_feature_shape(args.features or "neurons"))
        model = NeuronModel(spec)
    result = export_model(model, out, formats, options, _reporter(args.quiet))
    if args.quiet:
        return 0
    manifest = result.manifest
    print(f"\nwrote {len(manifest['artifacts'])} artifacts, {len(manifest['vectors'])} golden-vector cases and "
          f"manifest.json to {out}/")
    if manifest.get("exactness") == "float":
        print("float tier: ordinary Linear/Conv2d/AvgPool2d layers sum in each backend's own order, so `lif-export "
              "verify` judges this export within tolerances (lif_export.network.to_exact makes it bit-identical)")
    print(f"{'file':<20} {'format':<12} {'kind':<16} {'inputs':<8} {'outputs':<22} sha256")
    for a in manifest["artifacts"]:
        ins = ",".join(t["name"] for t in a["inputs"])
        outs = ",".join(t["name"] for t in a["outputs"])
        print(f"{a['file']:<20} {a['format']:<12} {a['kind']:<16} {ins:<8} {outs:<22} {a['sha256'][:16]}")
    if "neuron" in manifest:
        neuron = manifest["neuron"]
        print(f"neuron: reset={neuron['reset']} dtype={neuron['dtype']} feature_shape={neuron['feature_shape']}")
    else:
        names = manifest["network"]["state_names"]
        print(f"network: {len(names)} state tensors: {', '.join(names)}")
    return 0


def _network_model(args: argparse.Namespace) -> ExportModel:
    from .export.model import NetworkModel
    from .export.spec import parse_feature_shape
    from .io import load_torch_file
    from .network import SpikingSequential

    features = parse_feature_shape(args.features)
    if not all(isinstance(d, int) for d in features):
        raise CliError(f"--features must give the network's input shape as integers (e.g. 64), got {args.features!r}")
    net = load_torch_file(args.network, "--network", weights_only=False)
    if not isinstance(net, SpikingSequential):
        raise CliError(f"--network must hold a SpikingSequential, got {type(net).__name__}")
    return NetworkModel(net, tuple(int(d) for d in features), args.dtype or "float32")


def _cmd_verify(args: argparse.Namespace) -> int:
    from .conformance.compare import Tolerance
    from .conformance.verify import format_table, verify_dir, verify_matrix
    from .io import check_output_file

    if args.json is not None:
        check_output_file(args.json, "--json")
    tolerance = Tolerance(args.spike_agreement, args.atol, args.rtol)
    report = verify_dir(args.models_dir, full=args.full, families=args.backend, cases=args.case,
                        progress=not args.no_progress, tolerance=tolerance)
    if report.tolerance is not None:
        print(f"float tier: judged within tolerance, not bit for bit ({report.tolerance.describe()})\n")
    print(format_table(report.comparisons, summary=args.summary))
    if args.full:
        print("\nmatrix of fresh exports:")
        report.extend(verify_matrix(progress=not args.no_progress))
    for line in report.checksum_failures:
        print(f"CHECKSUM  {line}")
    for line in report.errors:
        print(f"ERROR     {line}")
    for line in report.notes:
        print(f"NOTE      {line}")
    label = "MISMATCH" if report.tolerance is None else "OUT OF TOLERANCE"
    for c in report.mismatches[:20]:
        print(f"{label}  {c.backend} / {c.case}: {_account(c)}")
    if len(report.mismatches) > 20:
        print(f"... and {len(report.mismatches) - 20} more mismatching runs")
    runs = len(report.comparisons)
    backends = len({c.backend for c in report.comparisons})
    verdict = "OK" if report.ok else "FAILED"
    if report.tolerance is not None:
        verdict += " (float tier, within tolerance)" if report.ok else " (float tier)"
    print(f"\n{verdict}: {runs} runs over {backends} backends, {len(report.mismatches)} mismatching, "
          f"{len(report.checksum_failures)} checksum failures, {len(report.errors)} errors")
    if args.json:
        from .io import atomic_write_text

        tier = {} if report.tolerance is None else {"exactness": report.exactness,
                                                    "tolerance": dataclasses.asdict(report.tolerance)}
        atomic_write_text(args.json, json.dumps({
            "ok": report.ok, **tier, "checksum_failures": report.checksum_failures, "errors": report.errors,
            "notes": report.notes,
            "comparisons": [dataclasses.asdict(c) for c in report.comparisons]}, indent=1))
    return 0 if report.ok else 1


def _account(c: Comparison) -> str:
    """A failing run in one line: its first difference, and for the float tier its rates."""
    from .conformance.compare import ToleranceComparison

    if not isinstance(c, ToleranceComparison):
        return str(c.first_difference)
    first = "" if c.first_spike_step is None else f", first spike difference at step {c.first_spike_step}"
    return (f"spike agreement {c.spike_agreement:.6f}{first}, readouts within tolerance {c.readout_agreement:.6f} "
            f"(max |Δ| {c.max_abs_dv:.3g}); {c.first_difference}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.runner import format_results, run_bench, save_json
    from .io import check_output_file

    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise CliError(f"--threads must be comma-separated integers, got {args.threads!r}") from None
    most = 4 * (os.cpu_count() or 1)
    if any(not 1 <= t <= most for t in threads):
        raise CliError(f"--threads must be from 1 to {most} (4x the {os.cpu_count()} cores), got {args.threads!r}")
    _check_range("--rounds", args.rounds, 1, MAX_BENCH_ROUNDS)
    if args.json is not None:
        check_output_file(args.json, "--json")
    data = run_bench(args.workload, threads, args.rounds, args.small,
                     report=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_results(data))
    if args.json:
        save_json(data, args.json)
    different = [r["path"] for r in data["results"] if r["identical"] is False]
    if different:
        print(f"FAILED: these paths gave different bits: {different}")
        return 1
    return 0


def _cmd_digits(args: argparse.Namespace) -> int:
    from .examples.digits import run_example
    from .export.commit import check_writable
    from .io import check_output_file

    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps)):
        if value < 1:
            raise CliError(f"{flag} must be >= 1, got {value}")
    out = check_writable(args.out)  # before training, not after
    check_output_file(args.figure, "--figure")
    summary = run_example(out, args.epochs, args.steps, args.figure, args.seed)
    identical = all(b["identical_to_eager"] for b in summary["backends"].values()) and all(
        v != "MISMATCH" for v in summary["cpp"].values())
    return 0 if summary["verify_ok"] and identical else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from .io import check_output_file
    from .modules import LIFSequence
    from .plot import plot_dynamics

    _check_range("--steps", args.steps, 1, MAX_PLOT_STEPS)
    if args.current is not None and len(args.current) > MAX_PLOT_NEURONS:
        raise CliError(f"--current can be given at most {MAX_PLOT_NEURONS} times (one panel each), "
                       f"got {len(args.current)}")
    check_output_file(args.out, "--out")
    neuron = LIFSequence(threshold=args.threshold, beta=args.beta, v_reset=args.v_reset, reset=args.reset)
    if args.random:
        _check_range("--neurons", args.neurons, 1, MAX_PLOT_NEURONS)
        g = torch.Generator().manual_seed(args.seed)
        currents = args.mean + args.std * torch.randn(args.steps, args.neurons, generator=g)
    else:
        currents = torch.tensor(args.current or [0.15, 0.3])
    out = plot_dynamics(currents, args.steps, neuron, args.out)
    print(f"wrote {out}")
    return 0


def _cmd_triton(args: argparse.Namespace) -> int:
    from .export.commit import check_writable
    from .triton import write_model_repository

    sizes = {}
    for item in args.feature_size or []:
        name, _, size = item.partition("=")
        if not name or not size.isdigit() or int(size) < 1:
            raise CliError(f"--feature-size must be DIM=SIZE with a positive integer SIZE, got {item!r}")
        sizes[name] = int(size)
    out = check_writable(args.out)
    folder = write_model_repository(args.models_dir, out, model_name=args.model_name,
                                    max_batch_size=args.max_batch_size, feature_sizes=sizes)
    print(f"wrote a Triton model repository for {args.models_dir} to {folder}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from .convert.cli_import import import_nir
    from .export.commit import check_writable

    if not args.nir_file.is_file():
        raise CliError(f"nir_file {str(args.nir_file)!r} is not a file")
    if args.dt is not None and not (args.dt > 0 and args.dt < float("inf")):
        raise CliError(f"--dt must be a positive number of seconds, got {args.dt}")
    result = import_nir(args.nir_file, args.dt, check_writable(args.out), args.method, exact=args.tier == "exact")
    print(f"wrote {len(result.manifest['artifacts'])} artifacts and manifest.json to {args.out}/")
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    from .examples.snntorch_example import run

    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps)):
        _check_range(flag, value, 1, 1000)
    result = run(args.epochs, args.steps, args.seed, Path(args.out) if args.out else None)
    print(f"snnTorch accuracy {result.accuracy_snntorch:.4f}; imported {result.accuracy_imported:.4f} "
          f"({result.spike_mismatches} of {result.spikes_compared} output spikes differ from snnTorch's); "
          f"exact tier {result.accuracy_exact:.4f}")
    return 0 if result.spike_mismatches == 0 else 1


COMMANDS = {"export": _cmd_export, "verify": _cmd_verify, "bench": _cmd_bench, "digits": _cmd_digits,
            "plot": _cmd_plot, "triton": _cmd_triton, "import": _cmd_import, "example": _cmd_example}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LifExportError as err:
        print(f"lif-export {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"lif-export {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lif-export {args.command}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
