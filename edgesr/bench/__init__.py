"""Latency and quality of exported artifacts on the device's runtime; tables, JSON, plots.

Torch-free: only the optional torch reference row (:mod:`edgesr.bench.torch_ref`) imports
torch, and only when it is installed.
"""
