"""Run the fuzz targets for a time budget.

    python python/fuzz.py --seconds 60                  # all targets, the budget split evenly
    python python/fuzz.py --seconds 30 --target loader  # one target

Targets (the same code the test suite runs under the hypothesis "ci" profile):
  parser   quantizer strings -> parse_quantizer_string / get_quantizer / the quantizer
  loader   mutated model files -> saving.load_model (+ predict when accepted)
  deploy   mutated deploy files -> deploy.load (+ predict when accepted)
  kernels  the hypothesis properties of tests/test_fuzz_kernels.py (kernels vs NumPy references,
           every ISA level, 1 or 2 threads) under the "fuzz" profile (random, not derandomized)

parser/loader/deploy draw input number i from random.Random(base + i); a failure prints the
target, the seed and the exception, saves the input under --crash-dir, and makes the exit status 1.
Reproduce one with: python -c "import sys; sys.path.insert(0, 'tests'); import fuzz_targets as F;
F.run_one('loader', SEED)".
"""
import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
os.environ.setdefault("HYPOTHESIS_PROFILE", "fuzz")
sys.path.insert(0, TESTS)
sys.path.insert(1, os.path.join(HERE, ".."))

import conftest  # noqa: E402,F401 -- registers and loads the hypothesis profiles
import fuzz_targets as F  # noqa: E402

ALL = ["parser", "loader", "deploy", "kernels"]


def run_file_target(target, seconds, base, crash_dir):
    gen, run = F.TARGETS[target]
    crashes = []
    t_end = time.monotonic() + seconds
    i = 0
    import random
    while time.monotonic() < t_end:
        seed = base + i
        i += 1
        x = gen(random.Random(seed))
        try:
            run(x)
        except Exception as e:  # noqa: BLE001 -- every escape is a finding
            crashes.append((seed, e))
            os.makedirs(crash_dir, exist_ok=True)
            path = os.path.join(crash_dir, f"{target}-{seed}" + (".txt" if isinstance(x, str) else ".bin"))
            with open(path, "wb") as f:
                f.write(x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x)
            print(f"  CRASH {target} seed {seed}: {type(e).__name__}: {str(e)[:300]}  input {F.describe(x)[:200]} "
                  f"saved {path}", flush=True)
            traceback.print_exc(limit=-3)
    return i, crashes


def run_kernels(seconds):
    import test_fuzz_kernels as K
    tests = [getattr(K, n) for n in sorted(dir(K)) if n.startswith("test_")]
    crashes = []
    t_end = time.monotonic() + seconds
    before = F.COUNTS["kernels"]
    k = 0
    while time.monotonic() < t_end:
        fn = tests[k % len(tests)]
        k += 1
        try:
            fn()  # max_examples of the "fuzz" profile, fresh random examples each call
        except Exception as e:  # noqa: BLE001 -- hypothesis re-raises the shrunk failure
            crashes.append((fn.__name__, e))
            print(f"  CRASH kernels {fn.__name__}: {type(e).__name__}: {str(e)[:500]}", flush=True)
    return F.COUNTS["kernels"] - before, crashes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="total time budget")
    ap.add_argument("--target", choices=ALL, action="append", help="repeatable; default: all")
    ap.add_argument("--seed", type=int, default=None, help="base seed (default: from the clock)")
    ap.add_argument("--crash-dir", default=os.path.join("/tmp", "qnn_ext_fuzz_crashes"))
    args = ap.parse_args()
    targets = args.target or ALL
    base = args.seed if args.seed is not None else int(time.time()) % 1_000_000 * 1000
    per = args.seconds / len(targets)
    print(f"fuzz: {args.seconds:g} s over {', '.join(targets)} (base seed {base})", flush=True)
    total_crashes = 0
    rows = []
    for t in targets:
        t0 = time.monotonic()
        if t == "kernels":
            n, crashes = run_kernels(per)
        else:
            n, crashes = run_file_target(t, per, base, args.crash_dir)
        dt = time.monotonic() - t0
        rows.append((t, n, dt, len(crashes)))
        total_crashes += len(crashes)
    print(f"{'target':8s} {'executions':>10s} {'seconds':>8s} {'exec/s':>8s} {'crashes':>7s}")
    for t, n, dt, c in rows:
        print(f"{t:8s} {n:10d} {dt:8.1f} {n / max(dt, 1e-9):8.0f} {c:7d}")
    print(f"total executions {sum(r[1] for r in rows)}, crashes {total_crashes}")
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main())
