"""Export of trained models for other tools: ONNX, TorchScript and bioimage.io packages.

:mod:`model.export.cli` is the ``deepscope export`` command; :mod:`model.export.graphs` writes
and checks ONNX and TorchScript graphs; :mod:`model.export.bmz` builds bioimage.io packages.
"""
