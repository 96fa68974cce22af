"""`manage.py kiln check`: Kiln's live settings and the files in deploy/ against the contracts they must keep.

Split by what is checked: the process files of supervisord and systemd (`programs.py`), nginx (`nginx.py`)
and the live settings with Django's `check --deploy` (`configuration.py`). Pure functions over a settings
object and a directory, so tests feed them broken copies; what Kiln runs (its queues, pools and time limits)
comes from the settings, never from literals here. Each finding names a file (relative to the deploy dir, or
`settings`) and a setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Finding:
    file: str
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.setting}: {self.message}"


def check_deploy_dir(deploy_dir: Path, settings: Any) -> list[Finding]:
    """Every finding in the files of deploy_dir (supervisor/*.conf, systemd/*.service, nginx/*.conf)."""
    from blueprint.checks import nginx, programs

    findings: list[Finding] = []
    supervisor = [
        program
        for path in sorted((deploy_dir / "supervisor").glob("*.conf"))
        for program in programs.supervisor_programs(path, str(path.relative_to(deploy_dir)))
    ]
    findings += programs.check_programs(supervisor, settings, systemd=False, where="supervisor/")
    systemd_dir = deploy_dir / "systemd"
    if systemd_dir.is_dir():
        units = programs.systemd_programs(systemd_dir, deploy_dir)
        findings += programs.check_programs(units, settings, systemd=True, where="systemd/")
    for path in sorted((deploy_dir / "nginx").glob("*.conf")):
        findings += nginx.check_nginx(path, str(path.relative_to(deploy_dir)), settings)
    return findings
