"""Benchmarks: `python -m bench [names...]` prints one JSON object of ratios.

Each benchmark measures the service and a baseline in the same run, on the
same machine and the same servers, and reports their ratio: machines here are
noisy, so absolute times are not comparable between runs. See bench/README.md.

Importing this package has no side effect (no Django setup): the load
generator's processes import it too.
"""
