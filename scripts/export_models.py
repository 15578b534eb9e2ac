#!/usr/bin/env python3
"""Export the models: the same as `lif-export export` (all its flags apply)."""

import sys

from lif_export.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
