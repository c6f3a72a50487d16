"""The handshake's states and the one table of which step moves it where (docs/handshake.md).

Read the nine steps' order here, in one screen (``h11/_state.py`` style)::

    step 1→2  handshake_request    (new)        → started
    step 3→4  identity_proof       started      → identified
    step 5→6  scope_request        identified   → pending_user    (the user is asked, steps 6–7)
    step 5→8  scope_request        identified   → approved        (no confirmation required)
    step 7    confirmation         pending_user → approved | denied
              (no answer in time)  pending_user → timeout
    step 8    scope_result         approved     (a read: nothing moves)
    step 9    complete             approved     → completed

A step asked of a handshake in another state is refused by :func:`require` with
``HANDSHAKE_OUT_OF_ORDER`` (409), except where :data:`FINAL_ANSWERS` gives the answer the
agent needs instead (the user denied, or never answered). Each move is then one
compare-and-set from the step's source state (:func:`move`), so two racing requests cannot
both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from athkit.protocol.errors import ATHError, ErrorCode


class State(StrEnum):
    """``ath_handshakes.status``."""

    STARTED = "started"
    IDENTIFIED = "identified"
    PENDING_USER = "pending_user"
    APPROVED = "approved"
    DENIED = "denied"
    TIMEOUT = "timeout"
    COMPLETED = "completed"


class Step(StrEnum):
    """The steps that need the handshake in a given state (step 1 creates it)."""

    IDENTITY_PROOF = "identity_proof"  # step 3
    SCOPE_REQUEST = "scope_request"  # step 5
    CONFIRMATION = "confirmation"  # step 7 (the user's answer)
    CONFIRMATION_TIMEOUT = "confirmation_timeout"  # step 7 never came
    SCOPE_RESULT = "scope_result"  # step 8
    COMPLETE = "complete"  # step 9


@dataclass(frozen=True)
class Transition:
    """The state a step needs, and the states it may leave the handshake in."""

    source: State
    targets: frozenset[State]


TABLE: dict[Step, Transition] = {
    Step.IDENTITY_PROOF: Transition(State.STARTED, frozenset({State.IDENTIFIED})),
    Step.SCOPE_REQUEST: Transition(
        State.IDENTIFIED, frozenset({State.PENDING_USER, State.APPROVED})
    ),
    Step.CONFIRMATION: Transition(State.PENDING_USER, frozenset({State.APPROVED, State.DENIED})),
    Step.CONFIRMATION_TIMEOUT: Transition(State.PENDING_USER, frozenset({State.TIMEOUT})),
    Step.SCOPE_RESULT: Transition(State.APPROVED, frozenset()),
    Step.COMPLETE: Transition(State.APPROVED, frozenset({State.COMPLETED})),
}

_DENIED = (ErrorCode.USER_DENIED, "the user denied this authorization")

#: A step that meets one of these states answers with the handshake's outcome, not 409.
FINAL_ANSWERS: dict[tuple[Step, str], tuple[ErrorCode, str]] = {
    (Step.SCOPE_RESULT, State.TIMEOUT): (
        ErrorCode.CONFIRMATION_TIMEOUT,
        "the user did not answer the confirmation in time",
    ),
    (Step.SCOPE_RESULT, State.DENIED): _DENIED,
    (Step.COMPLETE, State.DENIED): _DENIED,
}


def out_of_order(step: Step, status: str) -> ATHError:
    """``HANDSHAKE_OUT_OF_ORDER``: ``step`` needs its source state; the handshake is in another."""
    return ATHError(
        ErrorCode.HANDSHAKE_OUT_OF_ORDER,
        f"this step needs the handshake in state {TABLE[step].source.value!r}",
        {"state": status},
    )


def require(step: Step, status: str) -> None:
    """Refuse ``step`` unless the table allows it from ``status``."""
    final = FINAL_ANSWERS.get((step, status))
    if final is not None:
        raise ATHError(*final)
    if status != TABLE[step].source:
        raise out_of_order(step, status)


def move(step: Step, to: State) -> tuple[str, str]:
    """``(from, to)`` for the compare-and-set of ``step``; ``to`` must be in the table."""
    transition = TABLE[step]
    if to not in transition.targets:
        raise ValueError(f"{step.value} never moves a handshake to {to.value}")
    return transition.source.value, to.value
