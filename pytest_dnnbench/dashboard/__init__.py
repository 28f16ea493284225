"""The dashboard: ``python -m pytest_dnnbench publish`` writes a static site of the results store.

:mod:`.data` reads the store, :mod:`.pages` writes the pages, :mod:`.publish` is the command (and puts Plotly's
JavaScript and ``assets/`` into the site). Importing this package imports nothing of SQLAlchemy or Plotly.
"""
