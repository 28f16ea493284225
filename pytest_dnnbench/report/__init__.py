"""Reports: the paper's tables (tables.py), fits (fits.py), figures (figures.py), Markdown/HTML/CSV
renderers, the report builder (build.py), report inputs (inputs.py) and the pytest glue (plugin.py)."""
