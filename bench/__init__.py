"""Reproducible benchmarks; each script prints one JSON object per figure."""
