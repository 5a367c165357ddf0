"""A workflow in one request: jobs of several processes whose parents may be earlier items
of the same request (``"#N"``), stored in one transaction.

Only earlier items may be named, so the items are already in an order where every parent
comes first: a reference to the item itself or a later one is refused, and with it every
cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..errors import InvalidInput, InvalidRequest
from ..models import Job, JobState, is_job_id, new_job_id, now_ms
from .dependencies import MAX_PARENTS
from .registry import Registry

_FIELDS = {"process", "data", "depends_on", "priority", "run_at_ms"}


def workflow_jobs(registry: Registry, items: Sequence[dict[str, Any]], *,
                  owner: str | None, callback_url: str | None = None,
                  notify_email: str | None = None) -> tuple[list[Job], set[str]]:
    """The queued jobs of ``items`` (each with ``process``, ``data``, ``depends_on``,
    ``priority``, ``run_at_ms``), and the ids of existing jobs they name as parents.

    ``InvalidRequest`` names the first bad item: an unknown field or process, input that
    fails its schema, or a reference to itself or a later item (a cycle).
    """
    now = now_ms()
    ids = [new_job_id() for _ in items]
    jobs: list[Job] = []
    existing: set[str] = set()
    for index, item in enumerate(items):
        where = f"jobs[{index}]"
        unknown = set(item) - _FIELDS
        if unknown:
            raise InvalidRequest(f"{where}: unknown field {sorted(unknown)[0]!r}",
                                 details={"index": index})
        proc = registry.get(item.get("process", ""))
        data = item.get("data")
        try:
            proc.validate(data)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}",
                               details={"index": index, "violations": exc.details}) from None
        parents = []
        for ref in dict.fromkeys(item.get("depends_on") or ()):
            parents.append(_resolve(ref, index, ids, where))
            if not ref.startswith("#"):
                existing.add(ref)
        if len(parents) > MAX_PARENTS:
            raise InvalidRequest(f"{where}: depends_on names at most {MAX_PARENTS} jobs",
                                 details={"index": index})
        jobs.append(Job(
            id=ids[index], process=proc.name, state=JobState.QUEUED, input=orjson.dumps(data),
            result=None, error=None, progress=None, attempts=0,
            max_attempts=proc.max_attempts, priority=item.get("priority", 0),
            created_at_ms=now, scheduled_at_ms=max(now, item.get("run_at_ms") or now),
            started_at_ms=None, ended_at_ms=None, owner=owner, callback_url=callback_url,
            notify_email=notify_email, depends_on=tuple(parents),
        ))
    return jobs, existing


def _resolve(ref: Any, index: int, ids: list[str], where: str) -> str:
    """``"#N"`` as the id of item N (an earlier one), or an existing job's id."""
    if isinstance(ref, str) and ref.startswith("#") and ref[1:].isdigit():
        target = int(ref[1:])
        if target >= index:
            named = "itself" if target == index else "a later item"
            raise InvalidRequest(
                f"{where}: depends_on {ref!r} names {named}; only earlier items may be "
                "parents (no cycles)",
                details={"index": index, "ref": ref})
        return ids[target]
    if isinstance(ref, str) and is_job_id(ref):
        return ref
    raise InvalidRequest(f"{where}: depends_on must hold job ids or \"#N\", not {str(ref)[:40]!r}",
                         details={"index": index})
