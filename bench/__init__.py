"""Benchmarks: `make bench` prints the figures; nothing here runs in `make test`."""
