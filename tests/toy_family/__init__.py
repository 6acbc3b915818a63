"""A toy model family defined only under ``tests/``: proof that a family is one folder.

It reuses the analytic parts of ``tests/app/tiny_family.py`` and recognises one file: a
``*.safetensors`` whose only tensor is ``toy.colour_gain`` ``[3]``.
"""
