"""Layer Studio core: the layer catalog, the graph model, validation, project files and the CLI.

This package never imports Qt, and imports torch and TensorFlow only inside
the functions that need them.
"""

__version__ = "0.1.0"
