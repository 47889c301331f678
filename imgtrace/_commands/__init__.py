"""The command line of imgtrace: one module per command, the shared rules in `_shared`.

The libraries (traces, recorder, replayer, analyzer) know nothing of argparse, `--json`,
progress bars or exit codes; everything the user types and sees on the command line is here.
"""

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
