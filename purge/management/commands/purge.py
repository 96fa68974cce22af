"""`manage.py purge plan|run|resume`: retention policies from the shell."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from purge import services
from purge.models import PurgeRun, RetentionPolicy


class Command(BaseCommand):
    help = "Show what each retention policy would remove now, or run policies on the default queue."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("plan", help="What each policy would remove now (counts only; removes nothing).")
        run = sub.add_parser("run", help="Queue a run of every enabled policy, or of one.")
        run.add_argument("--policy", metavar="NAME", help="only this policy (its name or target)")
        run.add_argument("--dry-run", action="store_true", help="count what would go; remove nothing")
        run.add_argument("--wait", action="store_true", help="wait for the runs to finish and print them")
        run.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most (3600)")

        resume = sub.add_parser("resume", help="Carry a failed run on from where it stopped (its cursor).")
        resume.add_argument("run_id", type=int, metavar="RUN", help="the run's number")
        resume.add_argument("--wait", action="store_true", help="wait for the run to finish and print it")
        resume.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most (3600)")

    def handle(self, *args, action: str, **options) -> None:
        {"plan": self.plan, "run": self.run, "resume": self.resume}[action](**options)

    def resume(self, run_id: int, wait: bool, timeout: float, **options) -> None:
        run = PurgeRun.objects.filter(pk=run_id).select_related("policy").first()
        if run is None:
            raise CommandError(f"no purge run #{run_id}")
        with transaction.atomic():
            resumed = services.purge_run_resume(run=run)
        if not resumed:
            raise CommandError(
                f"{run} is {run.state}: only a run that failed after it started can be resumed"
            )
        self.stdout.write(f"resumed {run} from {run.cursor or 'its start'}, {run.examined} examined so far")
        if wait:
            self.wait([run], timeout)

    def plan(self, **options) -> None:
        for policy in RetentionPolicy.objects.all():
            if policy.target_spec is None:
                self.stdout.write(f"{policy.name}: unknown target {policy.target!r}")
                continue
            plan = services.purge_plan(policy)
            size = f" ({filesizeformat(plan.removed_bytes)})" if plan.removed_bytes else ""
            state = "" if policy.enabled else " [disabled]"
            self.stdout.write(
                f"{policy.name}{state}: would remove {plan.removed}{size} of {plan.examined} examined, "
                f"older than {policy.max_age_days} day(s)"
            )

    def run(self, policy: str | None, dry_run: bool, wait: bool, timeout: float, **options) -> None:
        if policy:
            policies = list(RetentionPolicy.objects.filter(name=policy)) or list(
                RetentionPolicy.objects.filter(target=policy)
            )
            if not policies:
                names = ", ".join(RetentionPolicy.objects.values_list("name", flat=True))
                raise CommandError(f"no policy named {policy!r}; there are: {names}")
        else:
            policies = list(RetentionPolicy.objects.filter(enabled=True))
        with transaction.atomic():
            runs = [
                services.purge_run_request(policy=p, dry_run=dry_run, trigger=PurgeRun.Trigger.COMMAND)
                for p in policies
            ]
        for run in runs:
            self.stdout.write(f"queued {run} on the default queue")
        if wait:
            self.wait(runs, timeout)

    def wait(self, runs: list[PurgeRun], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {run.pk for run in runs}
        while pending:
            for run in PurgeRun.objects.filter(pk__in=pending):
                if run.final:
                    pending.discard(run.pk)
                    verb = "would remove" if run.dry_run else "removed"
                    error = f": {run.error}" if run.error else ""
                    self.stdout.write(
                        f"{run}: {run.state}, {verb} {run.removed} of {run.examined} examined "
                        f"in {run.batches} batch(es){error}"
                    )
            if pending and time.monotonic() > deadline:
                raise CommandError(
                    f"runs {sorted(pending)} not finished after {timeout:.0f} s: is worker-default up?"
                )
            if pending:
                time.sleep(0.5)
