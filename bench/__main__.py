"""`python -m bench [--quick] [names...]`: run the benchmarks, print one JSON object.

stdout gets only the JSON: {"<benchmark>": {"ratio", "target", "baseline",
"measured", "meets_target"}, ...}. Progress goes to stderr. The exit status
is 0 when every benchmark ran, whether or not it met its target (this is a
measurement); it is non-zero only when something could not run.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# name -> module; imported only when run (the load generator's processes import this file).
BENCHMARKS = {
    "orders_cpu": "bench.orders_cpu",
    "orders_concurrency": "bench.orders_concurrency",
    "ipn_throughput": "bench.ipn_throughput",
    "reconcile_scale": "bench.reconcile_scale",
    "admin_scale": "bench.admin_scale",
    "mixed_load": "bench.mixed_load",
    "health": "bench.health",
    "shops_scale": "bench.shops_scale",
}


def finite(value: Any) -> Any:
    """The value with NaN and infinities as null: the output must be strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the merchant service: ratios against a baseline measured "
        "in the same run on the same machine. Prints one JSON object on stdout.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--quick", action="store_true", help="a short run, for smoke tests")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return args


def _docstring(module_name: str) -> str:
    """A benchmark module's docstring, read from its source: importing it needs Django set up."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, module_name in BENCHMARKS.items():
            doc = _docstring(module_name).strip().splitlines()
            first = doc[0].removeprefix(f"{name}: ") if doc else ""
            print(f"{name}: {first}")
        return 0

    from bench.servers import BenchError, Infrastructure, log

    names = args.names or list(BENCHMARKS)
    results: dict[str, Any] = {}
    failed = False
    started = time.monotonic()
    try:
        with Infrastructure() as infra:
            for name in names:
                log(f"=== {name}{' (quick)' if args.quick else ''} ===")
                module = importlib.import_module(BENCHMARKS[name])
                began = time.monotonic()
                try:
                    results[name] = module.run(infra, args.quick)
                except BenchError as exc:
                    log(f"{name} could not run: {exc}")
                    results[name] = {"error": str(exc)}
                    failed = True
                    infra.keep_tmp = True
                except Exception as exc:
                    log(f"{name} failed:\n{traceback.format_exc()}")
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    failed = True
                    infra.keep_tmp = True
                finally:
                    for server in list(infra.servers):
                        infra.stop_server(server)
                log(f"{name}: {time.monotonic() - began:.0f} s")
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        return 130
    except BenchError as exc:
        log(str(exc))
        return 2
    log(f"all done in {time.monotonic() - started:.0f} s")
    print(json.dumps(finite(results), indent=2, allow_nan=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
