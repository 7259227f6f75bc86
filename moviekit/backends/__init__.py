"""Library back-ends shared by plugins: thin glue over a third-party model library, imported lazily.

Importing :mod:`moviekit.backends` (or one of its modules) never imports the library itself; only
calling a function that needs it does, so the core installs and runs without it.

* :mod:`moviekit.backends.openclip`: open_clip models (tag -> weights spec, both towers,
  preprocessing, image size and embedding size, and a labelled test-only tiny model).
* :mod:`moviekit.backends.mmaction`: mmaction2's model registry (with the 1.2.0 wheel's workarounds),
  the configs its wheel ships, and building a model from a config dict.
"""
