"""Entry point of the front door: `fineserve-server` or `python -m service`."""

from __future__ import annotations

import asyncio
import logging

from service.config import parse_settings
from service.server import serve


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(parse_settings(argv)))


if __name__ == "__main__":
    main()
