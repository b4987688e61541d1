"""Built-in components (declared in compiler/builtin_components.py, implemented here)."""
