"""``python -m spindle._head``: run a head process (what `spindle start --head` and ``init()`` spawn)."""

from spindle._lifeline import die_with_parent

die_with_parent()  # before anything else: a head whose starter is gone must not linger

from spindle._head.server import main  # noqa: E402

main()
