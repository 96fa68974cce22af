from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Who calls Kiln's JSON API: tokens for scripts, sessions for the browser (accounts/api.py)."""

    name = "accounts"
    verbose_name = "Accounts and API tokens"
