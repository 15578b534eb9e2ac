"""``lif-export``: export, verify and plot LIF neurons from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .validation import RESETS

# TorchScript is what this tool ships; torch>=2.9 warns on every use of it.
warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


def _add_neuron_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("neuron")
    group.add_argument("--threshold", type=float, default=1.0, help="firing threshold, > 0 (default 1.0)")
    group.add_argument("--beta", type=float, default=0.9, help="membrane decay in [0, 1] (default 0.9)")
    group.add_argument("--v-reset", type=float, default=0.0, help="reset potential (default 0.0)")
    group.add_argument("--reset", choices=RESETS, default="zero", help="reset mechanism (default zero)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lif-export",
        description="Leaky Integrate-and-Fire neurons that run bit-identically in eager PyTorch, "
        "TorchScript and ONNX Runtime.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = sub.add_parser(
        "export", help="write TorchScript and ONNX step/sequence graphs, manifest and golden vectors",
        description="Write TorchScript and ONNX step and sequence graphs with explicit state, "
        "manifest.json and golden vectors into --out.",
    )
    export.add_argument("--out", type=Path, default=Path("models"), help="output folder (default models/)")
    export.add_argument("--opset", type=int, default=None,
                        help="ONNX opset, 17 to the newest the installed onnxruntime runs (default 17)")
    export.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="dtype of the graphs (default float32, or the state_dict's)")
    export.add_argument("--features", default="neurons",
                        help="per-sample shape after the batch dim: 'neurons' (dynamic, default), "
                        "'16', '4,4'; fixed by per-neuron parameters")
    export.add_argument("--state-dict", type=Path, default=None,
                        help="take (per-neuron) beta/threshold/v_reset from a saved state_dict")
    export.add_argument("--prefix", default="", help="key prefix of the LIF module in --state-dict (e.g. 'lif.')")
    export.add_argument("--network", type=Path, default=None,
                        help="export a whole SpikingSequential saved with torch.save(net, PATH) (a pickle: "
                        "load only files you trust); --features gives its input shape, e.g. 64")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_neuron_args(export)

    verify = sub.add_parser(
        "verify", help="run every artifact against eager PyTorch, bit for bit",
        description="Check checksums, then run every artifact fresh from disk through eager "
        "PyTorch, TorchScript and onnxruntime on the conformance suites and golden vectors, "
        "comparing spikes and membrane potentials bit for bit. Exit 1 on any mismatch.",
    )
    verify.add_argument("models_dir", nargs="?", type=Path, default=Path("models"),
                        help="folder written by `lif-export export` (default models/)")
    level = verify.add_mutually_exclusive_group()
    level.add_argument("--quick", action="store_true", help="short suites, main variations (default)")
    level.add_argument("--full", action="store_true",
                       help="long suites, every variation, and a matrix of fresh exports "
                       "(dtypes, resets, per-neuron parameters, opsets)")
    verify.add_argument("--backend", action="append", default=None, metavar="FAMILY",
                        help="only this backend family (repeatable): eager, numpy, torchscript, onnxruntime")
    verify.add_argument("--case", action="append", default=None, metavar="NAME",
                        help="only this suite case or golden:<case> (repeatable)")
    verify.add_argument("--summary", action="store_true", help="one row per backend instead of backend x case")
    verify.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")

    bench = sub.add_parser(
        "bench", help="benchmark W1 simulate, W2 stream, W3 train on every path",
        description="Time W1 (simulate [500, 32, 1024]), W2 (stream [1, 128], 1000 steps) and W3 "
        "(train [100, 32, 1024]) on every path against a native C loop and the naive eager loop, "
        "and check that every path gives the same bits.",
    )
    bench.add_argument("--workload", action="append", default=None, choices=["W1", "W2", "W3"],
                       help="only this workload (repeatable; default all)")
    bench.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    bench.add_argument("--rounds", type=int, default=5, help="timed rounds after a warm-up (default 5)")
    bench.add_argument("--small", action="store_true", help="tiny sizes: checks the paths, not their speed")
    bench.add_argument("--json", type=Path, default=None, help="also write the results as JSON")

    digits = sub.add_parser(
        "digits", help="train a spiking network on the bundled 8x8 digits, export it, verify every backend",
        description="Train ExactLinear/LIF/LIF/SynapticLIF/LeakyIntegrator on scikit-learn's bundled digits "
        "with surrogate gradients, export it (ONNX and TorchScript, every state explicit), verify it, and "
        "check that eager PyTorch, TorchScript, onnxruntime and the C++ runners give identical predictions "
        "on the whole test set.",
    )
    digits.add_argument("--out", type=Path, default=Path("models/digits"), help="export folder (default models/digits)")
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
                        help="constant input current of one neuron (repeatable; default 0.15 and 0.3)")
    source.add_argument("--random", action="store_true", help="random input (normal, see --mean/--std)")
    plot.add_argument("--neurons", type=int, default=3, help="neurons for --random (default 3)")
    plot.add_argument("--mean", type=float, default=0.2, help="mean current for --random (default 0.2)")
    plot.add_argument("--std", type=float, default=0.3, help="std of the current for --random (default 0.3)")
    plot.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    plot.add_argument("--steps", type=int, default=100, help="time steps (default 100)")
    plot.add_argument("--out", type=Path, default=Path("lif_dynamics.png"), help="PNG path")
    _add_neuron_args(plot)
    return parser


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export
    from .export.formats import DEFAULT_OPSET
    from .export.spec import NeuronSpec, parse_feature_shape, spec_from_state_dict

    if args.network is not None:
        return _export_network(args)
    if args.state_dict is not None:
        if not args.state_dict.is_file():
            raise CliError(f"--state-dict {str(args.state_dict)!r} does not exist")
        spec = spec_from_state_dict(args.state_dict, args.prefix, args.reset, args.dtype or "float32")
    else:
        spec = NeuronSpec(threshold=args.threshold, beta=args.beta, v_reset=args.v_reset, reset=args.reset,
                          dtype=args.dtype or "float32", feature_shape=parse_feature_shape(args.features))
    report = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    result = export(spec, args.out, opset=args.opset or DEFAULT_OPSET, report=report)
    if not args.quiet:
        print(f"\nwrote {len(result.manifest['artifacts'])} artifacts, {len(result.manifest['vectors'])} "
              f"golden-vector cases and manifest.json to {args.out}/")
        print(f"{'file':<20} {'format':<12} {'kind':<16} {'inputs':<8} {'outputs':<22} sha256")
        for a in result.manifest["artifacts"]:
            ins = ",".join(t["name"] for t in a["inputs"])
            outs = ",".join(t["name"] for t in a["outputs"])
            print(f"{a['file']:<20} {a['format']:<12} {a['kind']:<16} {ins:<8} {outs:<22} {a['sha256'][:16]}")
        neuron = result.manifest["neuron"]
        print(f"neuron: reset={neuron['reset']} dtype={neuron['dtype']} feature_shape={neuron['feature_shape']}")
    return 0


def _export_network(args: argparse.Namespace) -> int:
    import torch

    from .export import export_network
    from .export.formats import DEFAULT_OPSET
    from .export.spec import parse_feature_shape
    from .network import SpikingSequential

    if not args.network.is_file():
        raise CliError(f"--network {str(args.network)!r} does not exist")
    features = parse_feature_shape(args.features)
    if not all(isinstance(d, int) for d in features):
        raise CliError(f"--features must give the network's input shape as integers (e.g. 64), got {args.features!r}")
    net = torch.load(args.network, map_location="cpu", weights_only=False)
    if not isinstance(net, SpikingSequential):
        raise CliError(f"--network must hold a SpikingSequential, got {type(net).__name__}")
    report = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    result = export_network(net, features, args.out, dtype=args.dtype or "float32",
                            opset=args.opset or DEFAULT_OPSET, report=report)
    if not args.quiet:
        names = result.manifest["network"]["state_names"]
        print(f"\nwrote {len(result.manifest['artifacts'])} artifacts and manifest.json to {args.out}/; "
              f"{len(names)} state tensors: {', '.join(names)}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .conformance.verify import format_table, verify_dir, verify_matrix

    report = verify_dir(args.models_dir, full=args.full, families=args.backend, cases=args.case,
                        progress=not args.no_progress)
    print(format_table(report.comparisons, summary=args.summary))
    if args.full:
        print("\nmatrix of fresh exports:")
        report.extend(verify_matrix(progress=not args.no_progress))
    for line in report.checksum_failures:
        print(f"CHECKSUM  {line}")
    for c in report.mismatches[:20]:
        print(f"MISMATCH  {c.backend} / {c.case}: {c.first_difference}")
    if len(report.mismatches) > 20:
        print(f"... and {len(report.mismatches) - 20} more mismatching runs")
    runs = len(report.comparisons)
    backends = len({c.backend for c in report.comparisons})
    verdict = "OK" if report.ok else "FAILED"
    print(f"\n{verdict}: {runs} runs over {backends} backends, {len(report.mismatches)} mismatching, "
          f"{len(report.checksum_failures)} checksum failures")
    if args.json:
        from dataclasses import asdict

        from .io import atomic_write_text

        atomic_write_text(args.json, json.dumps({
            "ok": report.ok, "checksum_failures": report.checksum_failures,
            "comparisons": [asdict(c) for c in report.comparisons]}, indent=1))
    return 0 if report.ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.runner import format_results, run_bench, save_json

    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        raise CliError(f"--threads must be comma-separated integers, got {args.threads!r}") from None
    if any(t < 1 for t in threads):
        raise CliError(f"--threads must be >= 1, got {args.threads!r}")
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

    for flag, value in (("--epochs", args.epochs), ("--steps", args.steps)):
        if value < 1:
            raise CliError(f"{flag} must be >= 1, got {value}")
    summary = run_example(args.out, args.epochs, args.steps, args.figure, args.seed)
    identical = all(b["identical_to_eager"] for b in summary["backends"].values()) and all(
        v != "MISMATCH" for v in summary["cpp"].values())
    return 0 if summary["verify_ok"] and identical else 1


def _cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from .modules import LIFSequence
    from .plot import plot_dynamics

    if args.steps < 1:
        raise CliError(f"--steps must be >= 1, got {args.steps}")
    neuron = LIFSequence(threshold=args.threshold, beta=args.beta, v_reset=args.v_reset, reset=args.reset)
    if args.random:
        if args.neurons < 1:
            raise CliError(f"--neurons must be >= 1, got {args.neurons}")
        g = torch.Generator().manual_seed(args.seed)
        currents = args.mean + args.std * torch.randn(args.steps, args.neurons, generator=g)
    else:
        currents = torch.tensor(args.current or [0.15, 0.3])
    out = plot_dynamics(currents, args.steps, neuron, args.out)
    print(f"wrote {out}")
    return 0


COMMANDS = {"export": _cmd_export, "verify": _cmd_verify, "bench": _cmd_bench, "digits": _cmd_digits,
            "plot": _cmd_plot}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .export.manifest import ManifestError

    try:
        return COMMANDS[args.command](args)
    except (CliError, ValueError, TypeError, KeyError, PermissionError, ManifestError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"lif-export {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lif-export {args.command}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
