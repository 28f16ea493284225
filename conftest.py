"""Root conftest of the pytest-dnnbench repository (the plugin's own test suite).

The plugin itself is loaded through its ``pytest11`` entry point once the
package is installed (``pip install -e .``).
"""
