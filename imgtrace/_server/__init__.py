"""The bundled reference server behind `imgtrace serve`.

An OpenAI/SGLang-compatible `/v1/images/edits` that behaves like a GPU diffusion server (a
latency model with queueing, batching and cold start) while doing only cheap, deterministic
image work. Importing this package is light: uvicorn, numpy and Pillow load in `serve()`.
"""

from ._config import DEFAULT_PORT, ServerConfig
from ._run import build_app, serve

__all__ = ["DEFAULT_PORT", "ServerConfig", "build_app", "serve"]
