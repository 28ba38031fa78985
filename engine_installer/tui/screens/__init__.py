"""The screens in order, with the predicates (over the session) that decide whether each shows."""

from __future__ import annotations

from engine_installer.tui.screens.choice import ChoiceScreen
from engine_installer.tui.screens.done import DoneScreen
from engine_installer.tui.screens.eula import EulaScreen
from engine_installer.tui.screens.existing import (
    ChooseInstallScreen,
    DetectScreen,
    ExistingInstallScreen,
    TargetScreen,
)
from engine_installer.tui.screens.keyboard import KeyboardScreen
from engine_installer.tui.screens.progress import ProgressScreen
from engine_installer.tui.screens.summary import SummaryScreen
from engine_installer.tui.screens.welcome import WelcomeScreen
from engine_installer.tui.sequencer import Step
from engine_installer.tui.session import Session


def _several_installs(session: Session) -> bool:
    return session.machine is not None and len(session.engine_installs()) > 1


def _target_chosen(session: Session) -> bool:
    return session.plan.target is not None


def build_steps() -> list[Step]:
    return [
        Step("choice", ChoiceScreen),
        Step("welcome", WelcomeScreen),
        Step("eula", EulaScreen, complete=lambda s: s.plan.eula_accepted),
        Step("keyboard", KeyboardScreen),
        Step("detect", DetectScreen, shows=lambda s: s.machine is None, transient=True),
        Step("choose-install", ChooseInstallScreen, shows=_several_installs),
        Step(
            "existing",
            ExistingInstallScreen,
            shows=lambda s: s.chosen is not None,
            complete=_target_chosen,
        ),
        Step("target", TargetScreen, shows=lambda s: s.chosen is None, complete=_target_chosen),
        Step("summary", SummaryScreen, complete=lambda s: s.plan.confirmed),
        Step("progress", ProgressScreen, final=True),
        Step("done", DoneScreen, final=True),
    ]
