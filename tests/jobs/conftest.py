from __future__ import annotations

import pytest


@pytest.fixture
def operator(django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def grant(user, *codenames: str):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


def failure(
    task_id: str,
    error: BaseException,
    *,
    task_name: str = "thumbnails.generate",
    queue: str = "high",
    finished_at=None,
    args: list | None = None,
    args_truncated: bool = False,
):
    """A failed job recorded as a worker records one (jobs.history's upsert), with the traceback `error`
    carries, or one raised here if it carries none."""
    from django.utils import timezone

    from jobs.history import JobEvent, exception_fields, job_events_write
    from jobs.models import Job

    if error.__traceback__ is None:
        try:
            raise error
        except BaseException as raised:
            error = raised
    job_events_write(
        [
            JobEvent(
                task_id=task_id,
                state=Job.State.FAILED,
                attempt=1,
                task_name=task_name,
                queue=queue,
                args=[task_id] if args is None else args,
                args_truncated=args_truncated,
                finished_at=finished_at or timezone.now(),
                **exception_fields(error),
            )
        ]
    )
    return Job.objects.get(task_id=task_id)
