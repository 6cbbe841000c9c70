"""mlplab's speed, measured side by side: `make bench`, or `python -m benchmarks [--smoke]`.

Claims (issue 4): on MNIST, mlplab's trainer runs >= 8x the samples/s of the tutorial loop at
equal accuracy, reaches 98% in <= 5 s and 99% in <= 120 s from process start, is >= 15x faster
than scikit-learn's MLPClassifier(512, 512) to 98%, and trains a wide MLP at >= 60% of this
machine's matmul peak. Every case runs in its own process, timed from launch; medians of
>= 3 repeats; baselines in the same run. The full run writes BENCHMARKS.md.

Every section and script stands on the same few modules: processes (start one, bounded by a
timeout, and end it with its whole group), harness (a case in a child process, and what its
records say), healthz_probe (the one /healthz prober), stats (medians, the percentile),
report (tables and verdicts), machine (the facts beside the numbers), browser (chromium) and
timing (calls into code we do not own).
"""
