"""``lif-export bench``: W1 simulate, W2 stream, W3 train on every path, with ratios.

Workloads (fixed, so results compare over time):

* **W1 simulate** - forward over ``x[T=500, B=32, N=1024]`` float32, default neuron.
* **W2 stream** - one step at a time on ``[1, 128]``, 1000 steps, state fed back.
* **W3 train** - forward and backward through ``T=100, B=32, N=1024``, default surrogate.

Each path runs once to warm up, then ``rounds`` times; the median and minimum
are reported with neuron-steps per second and the ratio to the native C loop
and to the naive eager loop of the same run. Every path's spikes (W1, W2) or
input gradients (W3) are checked bit for bit against the naive eager loop.
"""

from .runner import WORKLOADS, BenchResult, run_bench

__all__ = ["WORKLOADS", "BenchResult", "run_bench"]
