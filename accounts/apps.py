from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who calls Kiln's JSON API: tokens for scripts, sessions for the browser (accounts/api.py)."""

    name = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from accounts import throttle  # noqa: F401 - connects the lockout receiver
