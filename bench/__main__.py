"""``python -m bench ...``: the benchmark CLI (see bench/README.md)."""

from bench.bench_stem import main

raise SystemExit(main())
