"""`python -m playbook` runs the command line."""

from playbook.cli import main

main()
