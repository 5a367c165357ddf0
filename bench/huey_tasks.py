"""The peer's side of bench/peers.py: a no-op huey task on huey's SQLite storage."""

import os

from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ["HUEY_DB"], fsync=True)


@huey.task()
def noop(n: int) -> int:
    return n
