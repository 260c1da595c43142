"""``ragpress serve``: the options of the command line turned into a running server."""

from __future__ import annotations

import os
from typing import Any

from ragpress.integrations import missing_extra


def serve_command(
    args: dict[str, Any],
    *,
    api_key_env: str | None,
    host: str,
    port: int,
    ray: bool,
    replicas: int,
    ray_address: str | None,
) -> None:
    """Run uvicorn in the foreground, or deploy on Ray Serve and wait (Ctrl-C stops)."""
    if replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {replicas}")
    if ray:
        try:
            from ragpress.serve import ray as ray_serve
        except ImportError as error:
            raise ImportError(missing_extra("ray[serve]", "serve")) from error
        if api_key_env is not None:
            args = {**args, "api_key_env": api_key_env}
        ray_serve.run(args, replicas=replicas, host=host, port=port, address=ray_address)
        return
    try:
        from ragpress.serve.server import run
        from ragpress.serve.service import CompressionService, ServeConfig
    except ImportError as error:
        raise ImportError(missing_extra("fastapi/uvicorn", "serve")) from error
    if api_key_env is not None:
        key = os.environ.get(api_key_env)
        if not key:
            raise ValueError(f"--api-key-env {api_key_env}: that variable is unset or empty")
        args = {**args, "api_key": key}
    config = ServeConfig(**args)
    config.check_methods()
    run(CompressionService(config), host=host, port=port)
