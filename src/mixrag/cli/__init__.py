"""The command-line interface (``mixrag``): thin wrappers over the library."""
