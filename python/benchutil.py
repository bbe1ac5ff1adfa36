"""Timing helper shared by the python/bench_*.py scripts."""
import statistics
import time


def timeit(fn, repeat, warm=2):
    """Median wall time of `repeat` calls of fn() after `warm` untimed calls (page faults,
    caches, thread pools and optimizer state settle in the warm calls)."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
