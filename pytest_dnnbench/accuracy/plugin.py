"""Accuracy evaluation (pytest glue).

Placeholder registered by the plugin; the accuracy issue fills it in.
"""
