from django.apps import AppConfig


class PurgeConfig(AppConfig):
    name = "purge"
    verbose_name = "Purges"
