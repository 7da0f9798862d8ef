"""The benchmark suite: the service against a plain CRUD baseline, side by side (see
docs/benchmarks.md). Run it with `./run bench`."""
