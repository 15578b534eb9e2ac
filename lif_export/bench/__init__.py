"""``lif-export bench``: W1 simulate, W2 stream, W3 train, W4/W5 a network, on every path, with ratios.

Workloads (fixed, so results compare over time):

* **W1 simulate** - forward over ``x[T=500, B=32, N=1024]`` float32, default neuron.
* **W2 stream** - one step at a time on ``[1, 128]``, 1000 steps, state fed back.
* **W3 train** - forward and backward through ``T=100, B=32, N=1024``, default surrogate
  (and with learned ``beta`` and ``threshold``).
* **W4 network stream** - the digits network (:mod:`.networks`), batch 1, 1000 steps: per-step latency.
* **W5 network train** - the digits network, 12 steps of 64 images: training throughput.

Each path runs twice to warm up; then each of ``rounds`` rounds times every path once, one after
the other (the native reference too), so that load on a shared machine weighs on all paths alike
and their ratios hold. The median and minimum are reported with the process's CPU time,
neuron-steps per second, the peak resident memory (during the warm-up), and the ratios to the
native C loop (``native_lif.c`` built with ``-O3 -march=native -ffp-contract=off``) and to the
workload's first path (the naive eager loop; for W4/W5 the network's ``nn.Linear`` twin). Every
path's spikes (W1, W2), gradients (W3, W5) or outputs (W4) are checked bit for bit against the
first path.
"""

from .runner import WORKLOADS, BenchResult, run_bench

__all__ = ["WORKLOADS", "BenchResult", "run_bench"]
