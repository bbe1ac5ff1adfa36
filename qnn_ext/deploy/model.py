"""IntegerModel: the converted model. ``predict`` runs its steps batch by batch; ``summary``
measures each step; ``save`` writes a deploy file (see fileio.py)."""
import time

import numpy as np

from .stages import IntConv

F32 = np.float32


class IntegerModel:
    def __init__(self, steps, input_shape, output_shape, name="integer_model"):
        self.steps = list(steps)
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.name = name

    def _check(self, x):
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"IntegerModel '{self.name}': input must be numeric, got dtype {a.dtype}")
        if a.ndim != len(self.input_shape) + 1 or tuple(a.shape[1:]) != self.input_shape:
            raise ValueError(f"IntegerModel '{self.name}': input must have shape "
                             f"(batch,) + {self.input_shape}, got {a.shape}")
        return np.ascontiguousarray(a, dtype=F32)

    def _forward(self, x, times=None):
        for i, step in enumerate(self.steps):
            t0 = time.perf_counter() if times is not None else 0.0
            x = step.run(x)
            if times is not None:
                times[i].append(time.perf_counter() - t0)
        return np.array(x, dtype=F32, copy=True).reshape((x.shape[0],) + self.output_shape)

    def predict(self, x, batch_size=None, verbose=0):
        """Outputs for x (batch first), computed batch_size samples at a time (default 32,
        like Model.predict)."""
        x = self._check(x)
        if x.shape[0] == 0:
            raise ValueError(f"IntegerModel '{self.name}': predict got 0 samples")
        bs = 32 if batch_size is None else int(batch_size)
        if bs < 1:
            raise ValueError(f"IntegerModel '{self.name}': batch_size must be >= 1, got {batch_size}")
        return np.concatenate([self._forward(x[s:s + bs]) for s in range(0, x.shape[0], bs)])

    __call__ = predict

    def profile(self, x, runs=5):
        """Median seconds of each step over `runs` forward passes of x (after one warm-up)."""
        x = self._check(x)
        self._forward(x)
        times = [[] for _ in self.steps]
        for _ in range(runs):
            self._forward(x, times)
        return [float(np.median(t)) for t in times]

    def summary(self, batch_size=1, runs=5, print_fn=print, x=None):
        """Per step: the layers it computes, kernel, weight bits, packed weight bytes, MACs per
        batch and the measured median latency (µs) at `batch_size` (random input unless x is
        given). Returns the rows as dicts."""
        if x is None:
            x = np.random.default_rng(0).standard_normal((batch_size,) + self.input_shape).astype(F32)
        lat = self.profile(x, runs)
        n = np.asarray(x).shape[0]
        rows = []
        for step, t in zip(self.steps, lat):
            rows.append(dict(layers="+".join(step.layers), kernel=step.kernel(),
                             weight_bits=step.weight_bits(), packed_bytes=int(step.packed_bytes()),
                             macs=int(step.macs(n)), latency_us=t * 1e6,
                             exact=getattr(step, "exact", True)))
        if print_fn is not None:
            print_fn(f"IntegerModel '{self.name}': input {self.input_shape}, batch {n}, "
                     f"median of {runs} runs")
            print_fn(f"{'layers':34s} {'kernel':36s} {'wbits':>5s} {'bytes':>9s} {'MACs':>11s} {'µs':>9s}")
            for r in rows:
                wb = "" if r["weight_bits"] is None else str(r["weight_bits"])
                flag = "" if r["exact"] else " ~"
                print_fn(f"{r['layers'][:34]:34s} {r['kernel'][:36]:36s} {wb:>5s} {r['packed_bytes']:9d} "
                         f"{r['macs']:11d} {r['latency_us']:9.1f}{flag}")
            tot = sum(r["latency_us"] for r in rows)
            print_fn(f"total {tot:.1f} µs, {sum(r['packed_bytes'] for r in rows)} weight bytes"
                     + ("; ~ = wide layer: the float model's own sums may pass 2^24 units, where the "
                        "integer result is the exact one" if not all(r["exact"] for r in rows) else ""))
        return rows

    def integer_layers(self):
        return [s for s in self.steps if isinstance(s, IntConv)]

    def save(self, path):
        from .fileio import save
        save(self, path)
