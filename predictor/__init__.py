"""Serving side of leadscore: the feature contract, the artifact format and the Vertex AI predictor.

Self-contained on purpose: this package is the source directory of the serving image, so it
imports nothing from ``training`` or ``pipeline``.
"""
