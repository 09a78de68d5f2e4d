"""Cross-stage benchmarks: how the cost of each stage grows with its input (`make bench-scale`)."""
