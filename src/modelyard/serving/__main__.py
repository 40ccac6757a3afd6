"""``python -m modelyard.serving [--model REF ...]``: run the server.

Settings come from ``MODELYARD_*`` environment variables and ``modelyard.toml``
as usual; the flags below override the few that are handy on a command line.
"""

from __future__ import annotations

import argparse
import sys

from modelyard.config import load_settings
from modelyard.errors import ModelyardError
from modelyard.serving.process.launch import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelyard.serving")
    parser.add_argument(
        "--model",
        "-m",
        action="append",
        default=[],
        help="reference to serve: name, name@alias or name/3 (repeatable)",
    )
    parser.add_argument("--home", help="modelyard home directory")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--backend", help="builtin or ray (Ray Serve replicas)")
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="allow pickle-based versions marked trusted when registered (they run code "
        "when loaded)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback without a token",
    )
    args = parser.parse_args(argv)
    try:
        overrides = {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "backend": args.backend,
        }
        settings = load_settings(
            home=args.home, serving={k: v for k, v in overrides.items() if v is not None}
        )
        return serve(settings, args.model, trusted=args.trusted, insecure=args.insecure)
    except ModelyardError as error:
        sys.stderr.write(f"modelyard: {error.message}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
