"""Model layer: catalogue and sources, export to ONNX, onnxruntime serving.

Lives inside the package (``ragpress.onnx``) so it never shadows the ``onnx`` library.
"""

from ragpress.onnx.catalogue import CATALOGUE, ModelSpec, get_spec

__all__ = ["CATALOGUE", "ModelSpec", "get_spec"]
