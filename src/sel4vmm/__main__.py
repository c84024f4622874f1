"""`python -m sel4vmm` runs the command line."""

from sel4vmm.cli import main

main()
