"""Write docs/cli.md and docs/components.md from the live CLI and registry; `--check` fails when stale.

python docs/generate.py          # rewrite the pages
python docs/generate.py --check  # exit 1 if a page differs from what the code says (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pages() -> dict[str, str]:
    from moviekit.cli import app
    from moviekit.describe import cli_markdown, components_markdown
    from moviekit.plugins import get_registry

    registry = get_registry()
    registry.register_commands(app)
    return {"cli.md": cli_markdown(app), "components.md": components_markdown(registry)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the pages are stale instead of writing them")
    args = parser.parse_args()
    stale = []
    for name, text in pages().items():
        path = HERE / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale docs: {', '.join(stale)}; run `python docs/generate.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
