"""Reproduction jobs behind ``jaxspec figures <name>`` and ``scripts/reproduce_<name>.py``.

Each module exposes ``register(figures_app)`` (adds its ``jaxspec figures <name>`` command) and a pure-Python
``run(out_dir, full=False, ...)`` that writes PNG figures plus the underlying labelled data.
"""
