"""The `lpir` command line: `lpir layout`, `lpir opt`, `lpir run`, `lpir emit`.

Each subcommand is a small function that receives the parsed arguments. Any `LpirError` is
printed as one diagnostic (no traceback) and the process exits with status 1.
"""

from __future__ import annotations

import argparse
import sys

from lpir.errors import LpirError


def _cmd_layout(args: argparse.Namespace) -> int:
    from lpir import layout

    parsed = layout.parse(args.layout)
    print(layout.render_grid(parsed))
    if args.png:
        layout.save_png(parsed, args.png)
        print(f"wrote {args.png}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpir", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    layout_cmd = commands.add_parser("layout", help="print a register layout as a grid")
    layout_cmd.add_argument("layout", help='a layout, e.g. "local(2,1).spatial(8,4).local(1,2)"')
    layout_cmd.add_argument("--png", metavar="FILE", help="also draw it into a PNG file")
    layout_cmd.set_defaults(handler=_cmd_layout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LpirError as error:
        print(str(error), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
