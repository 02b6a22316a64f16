"""`python -m studio` runs the poetstudio command, for machines where the script is not on PATH."""

from studio.cli import main

main()
