"""Reusable parts of the book's application chapters.

One small module per application (``hypercore.apps.continual``,
``hypercore.apps.federated``, ...). Modules here import only torch at module
level; a field library (flwr, optuna, gymnasium, econml, ...) is imported inside
the function that needs it and is an optional extra, never a requirement of
hypercore. Nothing here is imported by ``import hypercore``.
"""
