"""The `imgtrace` command: joins the trace core and the recorder, replayer and analyzer.

Also home of the bundled reference server (`imgtrace serve`) and the end-to-end demo.
"""

from traces import __version__

__all__ = ["__version__"]
