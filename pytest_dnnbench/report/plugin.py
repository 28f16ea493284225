"""Reports at the end of a run (pytest glue).

Placeholder registered by the plugin; the reports issue fills it in.
"""
