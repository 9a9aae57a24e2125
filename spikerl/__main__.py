import sys

from spikerl.cli import main

sys.exit(main())
