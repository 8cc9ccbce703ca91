"""``python -m jaxspec.cli``: the same as the ``jaxspec`` command."""

from jaxspec.cli import main

if __name__ == "__main__":
    main()
