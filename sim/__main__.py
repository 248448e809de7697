"""`python -m sim ...`: the relaysim command (sim.cli.main)."""

import sys

try:
    from sim.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python is still importing
    sys.stderr.write("relaysim: interrupted; earlier results left as they were\n")
    sys.exit(130)

sys.exit(main())
