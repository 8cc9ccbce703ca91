"""Plotting and file output of the reproduction jobs of :mod:`jaxspec.reproduce`.

``<name>_figures(result)`` draws a job's result as matplotlib figures keyed by their file names (plain
:class:`matplotlib.figure.Figure` objects, not attached to pyplot: nothing to close, no backend needed);
``<name>_markdown(summary)`` renders a summary table; :func:`write_outputs` writes everything a job produces
(PNG, netCDF, JSON, Markdown), each file atomically.

Example:
    >>> from jaxspec.figures import init_figures, write_outputs
    >>> from jaxspec.reproduce import run_init
    >>> result = run_init(width=8, depth=24, progress=False)  # doctest: +SKIP
    >>> write_outputs(result, "figures/init")  # doctest: +SKIP
"""

from jaxspec.figures._bottleneck import bottleneck_figures, bottleneck_markdown
from jaxspec.figures._dynamics import dynamics_figures, dynamics_markdown
from jaxspec.figures._init import init_figures
from jaxspec.figures._output import write_atomic, write_outputs
from jaxspec.figures._saddle import saddle_figures, saddle_markdown
from jaxspec.figures._ufm import ufm_figures, ufm_markdown

__all__ = [
    "bottleneck_figures",
    "bottleneck_markdown",
    "dynamics_figures",
    "dynamics_markdown",
    "init_figures",
    "saddle_figures",
    "saddle_markdown",
    "ufm_figures",
    "ufm_markdown",
    "write_atomic",
    "write_outputs",
]
