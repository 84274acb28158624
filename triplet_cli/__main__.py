"""python -m triplet_cli"""

from .cli import main

main()
