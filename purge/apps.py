from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PurgeConfig(AppConfig):
    name = "purge"
    verbose_name = "Purges"

    def ready(self) -> None:
        from purge import registry

        registry.register(
            registry.FileTarget(
                key="orphan_media",
                # The catch-all: folders that other apps' file targets own are theirs alone (registry.py).
                label="Unreferenced media files that no other policy covers",
                prefix="",
                default_days=1,  # the grace period: an upload in flight is never touched
                # MEDIA_ROOT is not where media lives on an S3 bucket.
                former_labels=(
                    "Orphaned files under MEDIA_ROOT",
                    "Unreferenced files in MEDIA_ROOT that no other policy covers",
                ),
            )
        )
        post_migrate.connect(install_defaults, sender=self)


def install_defaults(sender, **kwargs) -> None:
    """After every migrate: a policy for each registered target and the nightly beat entry, if missing."""
    from purge.schedule import nightly_install
    from purge.services import policies_install

    policies_install()
    nightly_install()
