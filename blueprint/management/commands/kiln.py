"""`manage.py kiln setup|run|ctl|check|elect`: set up Kiln, run its whole stack under supervisord, check a
deploy, run beat on the one host a lock elects."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from blueprint import stack
from blueprint.checks import check_deploy_dir, configuration
from mediastore import store as media_store

# supervisorctl's exit code for `status` when one or more programs are not running (LSB's "not running").
SUPERVISORCTL_NOT_RUNNING = 3


class Command(BaseCommand):
    help = "Set up Kiln (migrate, admin user) and run or control its supervisord stack."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("setup", help="Create runtime directories, migrate, make sure an admin user exists.")
        sub.add_parser("run", help="Start the whole stack under supervisord in the foreground.")
        ctl = sub.add_parser("ctl", help="Pass a command to the running stack's supervisorctl.")
        ctl.add_argument(
            "ctl_args",
            nargs="*",
            metavar="ARG",
            help="supervisorctl arguments, e.g. `status` or `restart kiln:web`",
        )
        elect = sub.add_parser(
            "elect",
            help="Run a command (beat) on one host at a time: single-beat's Redis leader lock around it. "
            "Hosts that do not hold the lock wait and take over when it expires.",
        )
        elect.add_argument(
            "command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="e.g. -- celery --app=config beat"
        )
        check = sub.add_parser(
            "check",
            help="Check the live settings and the deploy files against Kiln's contracts, "
            "with Django's `check --deploy`; exit 1 on any finding.",
        )
        check.add_argument(
            "--deploy-dir",
            type=Path,
            default=settings.BASE_DIR / "deploy",
            help="the directory with supervisor/, systemd/ and nginx/ (default: the checkout's deploy/)",
        )
        check.add_argument(
            "--fail-level",
            choices=["WARNING", "ERROR"],
            default="WARNING",
            help="Django's messages from this level up are findings, the others notes (default: WARNING)",
        )

    def handle(self, *args, action: str, **options) -> None:
        actions = {
            "setup": self.setup,
            "run": self.run,
            "ctl": self.ctl,
            "check": self.check_deploy,
            "elect": self.elect,
        }
        actions[action](**options)

    def setup(self, **options) -> None:
        stack.runtime_directories_create()
        self.media_check()
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        self.ensure_superuser()

    def media_check(self) -> None:
        """Refuse to start on a media store that cannot store anything: the reason, not a 503 on every upload."""
        problem = media_store.problem()
        if problem:
            raise CommandError(f"KILN_MEDIA_STORAGE: {problem}")

    def ensure_superuser(self) -> None:
        User = get_user_model()
        username = settings.KILN_SUPERUSER_USERNAME
        if User.objects.filter(username=username).exists():
            # Never touch an existing user's password: setup runs on every `make run`.
            self.stdout.write(f"Admin user {username!r} exists.")
            return
        password = settings.KILN_SUPERUSER_PASSWORD or secrets.token_urlsafe(12)
        User.objects.create_superuser(username, settings.KILN_SUPERUSER_EMAIL, password)
        if settings.KILN_SUPERUSER_PASSWORD:
            self.stdout.write(f"Admin user {username!r} created with DJANGO_SUPERUSER_PASSWORD.")
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"Admin user {username!r} created with password: {password}\n"
                    "It is shown only this once; change it in the admin."
                )
            )

    def run(self, **options) -> None:
        busy = [
            f"{name}={port}"
            for name, port in (
                ("KILN_PORT", settings.KILN_PORT),
                ("KILN_FLOWER_PORT", settings.KILN_FLOWER_PORT),
            )
            if stack.port_in_use(port)
        ]
        if busy:
            raise CommandError(
                f"Port already in use: {', '.join(busy)}. Is Kiln already running (`make status`)? "
                "Otherwise choose free ports with those variables."
            )
        stack.runtime_directories_create()
        self.media_check()
        base = f"http://127.0.0.1:{settings.KILN_PORT}"
        self.stdout.write(
            "Starting Kiln under supervisord (Ctrl-C stops everything):\n"
            f"  site    {base}/\n"
            f"  admin   {base}/admin/\n"
            f"  jobs    {base}/admin/jobs/dashboard/\n"
            f"  flower  {settings.KILN_FLOWER_URL}\n"
            f"  logs    {settings.KILN_LOG_DIR}/\n"
            'In another terminal: `make status`, `make ctl CMD="restart kiln:worker-high"`, `make stop`.'
        )
        self.stdout.flush()
        self.exec_tool("supervisord", ["--nodaemon", "--configuration", str(stack.DEV_CONF)])

    def ctl(self, ctl_args: list[str], **options) -> None:
        if not (settings.KILN_RUN_DIR / "supervisor.sock").exists():
            raise CommandError("Kiln is not running here (no supervisor socket): start it with `make run`.")
        if ctl_args[:1] == ["status"]:
            # supervisorctl exits 3 when a program is not running: `status` printed what was asked, and a
            # stopped program is an answer, not a failure (`make status` must not end in "Error 3").
            # Other codes (supervisord unreachable: 2 or 4...) pass through.
            completed = subprocess.run(
                [self.tool("supervisorctl"), "--configuration", str(stack.DEV_CONF), *ctl_args],
                env={**os.environ, **stack.supervisor_environment()},
                check=False,
            )
            sys.exit(0 if completed.returncode == SUPERVISORCTL_NOT_RUNNING else completed.returncode)
        self.exec_tool("supervisorctl", ["--configuration", str(stack.DEV_CONF), *ctl_args])

    def elect(self, command: list[str], **options) -> None:
        """Replace this process with blueprint/elect.py (single-beat, Django-free) holding the lock for
        `command`: supervisord's or systemd's TERM reaches it, and through it the command."""
        command = command[1:] if command[:1] == ["--"] else command
        if not command:
            raise CommandError("Say what to run: `manage.py kiln elect -- celery --app=config beat`.")
        runner = str(settings.BASE_DIR / "blueprint" / "elect.py")
        os.execve(
            sys.executable, [sys.executable, runner, *command], {**os.environ, **stack.election_environment()}
        )

    def tool(self, name: str) -> str:
        path = shutil.which(name, path=os.path.join(sys.prefix, "bin")) or shutil.which(name)
        if path is None:
            raise CommandError(f"{name} not found: install the requirements (`make setup`).")
        return path

    def exec_tool(self, name: str, args: list[str]) -> None:
        """Replace this process with a supervisor tool, so signals and the exit code are the tool's own."""
        path = self.tool(name)
        os.execve(path, [path, *args], {**os.environ, **stack.supervisor_environment()})

    def check_deploy(self, deploy_dir: Path, fail_level: str, **options) -> None:
        if not deploy_dir.is_dir():
            raise CommandError(f"{deploy_dir} is not a directory")
        django_findings, notes = configuration.django_findings(
            configuration.django_deploy_checks(), getattr(checks, fail_level)
        )
        findings = [
            *configuration.check_settings(settings),
            *check_deploy_dir(deploy_dir, settings),
            *django_findings,
        ]
        for line in [*map(str, findings), *notes]:
            self.stdout.write(line)
        if findings:
            raise CommandError(f"{len(findings)} finding(s) in {deploy_dir} and the settings", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"No findings in {deploy_dir} and the settings."))
