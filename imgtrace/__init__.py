"""The `imgtrace` command: joins the trace core and the recorder, replayer and analyzer.

Also home of the bundled reference server (`imgtrace serve`) and the end-to-end demo. From
Python, `main(["show", "trace.imgtrace"])` runs a command and returns its exit code, and
`serve(ServerConfig(...))` runs the reference server in the foreground.
"""

from traces import __version__

from ._commands import main
from ._server import ServerConfig, serve

__all__ = ["ServerConfig", "__version__", "main", "serve"]
