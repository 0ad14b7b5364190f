"""Benchmark sets and image folders. NumPy and Pillow only (no torch)."""
