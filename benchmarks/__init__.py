"""The benchmark suite of tempolor_async: every figure a ratio against raw aiohttp, measured
in one run against the simulator in its own process. Run it with ``python -m benchmarks``."""
