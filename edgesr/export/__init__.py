"""Export for devices: ONNX (FP32, FP16, INT8 QDQ in TensorRT and CPU forms), TensorRT bundles
and engines, CoreML packages. :func:`edgesr.export.pipeline.export_model` is the entry point;
each module does one step (see ``docs/architecture.md``). Importing this package imports nothing
heavy."""
