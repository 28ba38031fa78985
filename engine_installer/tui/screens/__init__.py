"""The screens in order, with the predicates that decide whether each shows."""

from __future__ import annotations

from typing import Any

from ..sequencer import Step
from .choice import ChoiceScreen
from .done import DoneScreen
from .eula import EulaScreen
from .existing import ChooseInstallScreen, DetectScreen, ExistingInstallScreen, TargetScreen
from .keyboard import KeyboardScreen
from .progress import ProgressScreen
from .summary import SummaryScreen
from .welcome import WelcomeScreen


def _several_installs(app: Any) -> bool:
    from ..decisions import engine_installs

    return app.detection is not None and len(engine_installs(app.detection.installs)) > 1


def build_steps() -> list[Step]:
    return [
        Step("choice", ChoiceScreen),
        Step("welcome", WelcomeScreen),
        Step("eula", EulaScreen, complete=lambda app: app.plan.eula_accepted),
        Step("keyboard", KeyboardScreen),
        Step("detect", DetectScreen, shows=lambda app: app.detection is None, transient=True),
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
