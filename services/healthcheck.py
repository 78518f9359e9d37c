"""Container health probes: ``python -m services.healthcheck grpc HOST:PORT`` or ``http URL``.

Exit 0 when healthy, 1 otherwise — the shape compose and Kubernetes probes expect.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.error
import urllib.request

import grpc

from services.grpc_server import wait_for_serving


async def _grpc_ok(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await wait_for_serving(channel, timeout=3.0)
            return True
        except TimeoutError:
            return False


def _http_ok(url: str) -> bool:
    """200, or 401: a gateway whose API keys are on answers, it only wants a key the probe
    does not hold (and must not: a key in a compose file would be a secret in plain sight)."""
    try:
        with urllib.request.urlopen(url, timeout=3.0) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grpc", "http"):
        print("usage: python -m services.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    kind, target = argv
    healthy = asyncio.run(_grpc_ok(target)) if kind == "grpc" else _http_ok(target)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
