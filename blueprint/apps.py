from django.apps import AppConfig


class BlueprintConfig(AppConfig):
    """The blueprint's own tooling: `manage.py kiln setup|run|ctl|check`. No models."""

    name = "blueprint"
    verbose_name = "Deployment blueprint"
