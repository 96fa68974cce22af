from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token for a user; the token is printed once, on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        _row, token = ApiToken.issue(user)
        self.stdout.write(
            f"API token for {username} (send it as 'Authorization: Bearer <token>'; shown only now):"
        )
        self.stdout.write(token)
