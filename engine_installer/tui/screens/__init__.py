"""The screens in order, with the predicates that decide whether each shows."""

from __future__ import annotations

from typing import Any

from engine_installer.tui.screens.choice import ChoiceScreen
from engine_installer.tui.screens.done import DoneScreen
from engine_installer.tui.screens.eula import EulaScreen
from engine_installer.tui.screens.existing import (
    ChooseInstallScreen,
    DetectScreen,
    ExistingInstallScreen,
    TargetScreen,
    engine_installs,
)
from engine_installer.tui.screens.keyboard import KeyboardScreen
from engine_installer.tui.screens.progress import ProgressScreen
from engine_installer.tui.screens.summary import SummaryScreen
from engine_installer.tui.screens.welcome import WelcomeScreen
from engine_installer.tui.sequencer import Step


def _several_installs(app: Any) -> bool:
    return app.machine is not None and len(engine_installs(app)) > 1


def build_steps() -> list[Step]:
    return [
        Step("choice", ChoiceScreen),
        Step("welcome", WelcomeScreen),
        Step("eula", EulaScreen, complete=lambda app: app.plan.eula_accepted),
        Step("keyboard", KeyboardScreen),
        Step("detect", DetectScreen, shows=lambda app: app.machine is None, transient=True),
        Step("choose-install", ChooseInstallScreen, shows=_several_installs),
        Step(
            "existing",
            ExistingInstallScreen,
            shows=lambda app: app.chosen is not None,
            complete=lambda app: app.plan.target is not None,
        ),
        Step(
            "target",
            TargetScreen,
            shows=lambda app: app.chosen is None,
            complete=lambda app: app.plan.target is not None,
        ),
        Step("summary", SummaryScreen, complete=lambda app: app.plan.confirmed),
        Step("progress", ProgressScreen, final=True),
        Step("done", DoneScreen, final=True),
    ]
