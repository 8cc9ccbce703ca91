"""The ``jaxspec`` command line (see :mod:`jaxspec.cli.main`)."""
