"""Baselines, deployment constraints and regression gating (pytest glue).

Placeholder registered by the plugin; the baselines issue fills it in.
"""
