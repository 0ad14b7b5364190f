"""Latency and quality of exported artifacts on the device's runtime; tables, JSON, plots.

Torch-free: the optional torch reference row is built by :mod:`edgesr.reference` (host side)
and handed in by the CLI.
"""
