"""`manage.py outbox sweep` publishes what the outbox holds now (an operator draining it by hand once the
broker is back); `manage.py outbox status` says what waits."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from outbox import selectors, services


class Command(BaseCommand):
    help = "The task outbox: publish what waits (sweep) or show it (status)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["sweep", "status"])
        parser.add_argument(
            "--all",
            action="store_true",
            help="sweep: also intents younger than KILN_OUTBOX_GRACE_SECONDS (their first publish may still be under way)",
        )

    def handle(self, *args, action: str, all: bool = False, **options) -> None:
        if action == "status":
            waiting = selectors.backlog()
            oldest = "" if waiting.oldest_age is None else f", the oldest {waiting.oldest_age:.0f} s old"
            self.stdout.write(f"{waiting.unpublished} tasks wait to be published{oldest}")
            return
        sent = 0
        while True:
            batch = services.intents_sweep(grace=0 if all else None)
            sent += batch
            if not batch:
                break
        waiting = selectors.backlog()
        self.stdout.write(f"published {sent}; {waiting.unpublished} still wait")
        if waiting.unpublished and sent == 0 and services.intents_due().exists():
            raise CommandError("the broker is unreachable: nothing could be published")
