"""``python -m spikerl``: the ``spikerl`` command. Importing this module (as the API reference does) runs nothing."""

import sys

from spikerl.cli import main

if __name__ == "__main__":
    sys.exit(main())
