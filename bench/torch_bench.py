#!/usr/bin/python3
"""Times PyTorch's CPU batch norm for the benches, in the same run: reads a JSON list of cases on stdin
({shape, op, threads, budgetMs}) and prints {key: median milliseconds} as JSON; with --serve, one case
per line in and one result per line out (bench/run.mjs times each case of PyTorch right beside its own).
Forward goes through torch.nn.functional.batch_norm (what users call; it allocates its output, as ours does without `out`),
backward through aten.native_batch_norm_backward ("sums": only grad_weight and grad_bias, the backward's
reductions without its grad_input pass; bench/phases.mjs). bench/timing.mjs starts it with MALLOC_TOP_PAD_
set (see there)."""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def median_ms(fn, budget_ms, min_reps=5, max_reps=2000, batch=1):
    fn()
    samples = []
    deadline = time.perf_counter() + budget_ms / 1000
    while len(samples) < min_reps or (time.perf_counter() < deadline and len(samples) < max_reps):
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter_ns() - start) / 1e6 / batch)
    return statistics.median(samples)


def time_case(case):
    """Median milliseconds of one case ({shape, op, threads, budgetMs, channelsLast?, batch?})."""
    torch.set_num_threads(case["threads"])
    shape = case["shape"]
    c = shape[1]
    x = torch.randn(shape)
    dy = torch.randn(shape)
    if case.get("channelsLast"):
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    w, b = torch.rand(c) + 0.5, torch.randn(c)
    rm, rv = torch.zeros(c), torch.ones(c)
    batch = case.get("batch", 1)
    if case["op"] == "eval":
        fn = lambda: F.batch_norm(x, rm, rv, w, b, False)
    elif case["op"] == "train":
        fn = lambda: F.batch_norm(x, rm, rv, w, b, True)
    else:
        _, save_mean, save_invstd = torch.native_batch_norm(x, w, b, rm.clone(), rv.clone(), True, 0.1, 1e-5)
        mask = [case["op"] == "backward", True, True]
        fn = lambda: torch.ops.aten.native_batch_norm_backward(dy, x, w, rm, rv, save_mean, save_invstd, True,
                                                               1e-5, mask)
    return median_ms(fn, case["budgetMs"], batch=batch)


def main():
    if "--serve" in sys.argv:
        # One case per line in, one result per line out, so that a caller can interleave PyTorch's
        # timing of a case with its own (bench/run.mjs): the first line out is the version.
        print(json.dumps({"torch": torch.__version__}), flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps({"ms": time_case(json.loads(line))}), flush=True)
        return
    cases = json.load(sys.stdin)
    results = {case["key"]: time_case(case) for case in cases}
    json.dump({"torch": torch.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
