"""edgesr: data-free distillation, export and on-device benchmarking of super-resolution models."""

__version__ = "0.1.0"
