"""REDS data: indexing and validation (``reds``), the val-300 rule, synthetic REDS (``synth``), patches (``patches``),
training/validation datasets (``dataset``) and the data stage (``prepare``).

Import the submodule you need: this package imports nothing eagerly, so the training stage (which needs only
``dataset``) does not depend on the synthesis code, and DVC reruns exactly the stages whose code changed.
"""
