"""`python -m avlab ...`: the command line (see `avlab.cli`)."""
from avlab.cli import main

main()
