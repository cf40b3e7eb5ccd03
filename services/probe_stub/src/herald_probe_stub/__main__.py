"""Lets ``python -m herald_probe_stub`` start the stub like the console script does."""

from herald_probe_stub.main import main

main()
