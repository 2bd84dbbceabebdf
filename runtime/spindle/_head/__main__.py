"""``python -m spindle._head``: run a head process (what `spindle start --head` and ``init()`` spawn)."""

from spindle._head.server import main

main()
