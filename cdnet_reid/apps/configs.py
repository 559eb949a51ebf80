"""The configs shipped with the package: each name works as ``--config-file NAME`` from any folder
(a path on disk of the same name wins).

    cdnet-reid configs
    cdnet-reid train --config-file Market/cdnet.yml
"""

from collections.abc import Sequence

from ..config.packaged import configs_folder, list_configs
from ..version import __version__
from .args import tool_parser


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    tool_parser(prog, __doc__).parse_args(argv)
    print(f"configs shipped with cdnet-reid {__version__} ({configs_folder()}):")
    for name in list_configs():
        print(f"  {name}")
